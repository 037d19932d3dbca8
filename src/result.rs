//! How a viewer request was answered, as CloudFront names it: the result type of
//! `X-Cache`, the access log and the metrics. Its own module because the edge, the access
//! log and the metrics all speak it and none of them owns the others.

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultType {
    Hit,
    RefreshHit,
    Miss,
    Error,
}

impl ResultType {
    /// A response fetched from the origin: Miss, or Error when the origin answered 4xx or
    /// 5xx (CloudFront's `X-Cache: Error from cloudfront`).
    pub fn from_origin_status(status: http::StatusCode) -> Self {
        if status.is_client_error() || status.is_server_error() {
            ResultType::Error
        } else {
            ResultType::Miss
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResultType::Hit => "Hit",
            ResultType::RefreshHit => "RefreshHit",
            ResultType::Miss => "Miss",
            ResultType::Error => "Error",
        }
    }
}
