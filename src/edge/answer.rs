//! How a request was answered ([`Answer`]: the response, its result type and detail, the
//! distribution that answered), and a fill's body as a response body or as chunks.

use std::sync::Arc;

use futures_util::stream;
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use crate::body::{BoxBody, BoxError, Chunks};
use crate::collapse::Reader;
use crate::edge::head::FillHead;
use crate::edge::respond;
use crate::edge::runtime::DistRuntime;
use crate::result::ResultType;

/// How the request was answered, for headers, the log and the metrics.
pub struct Answer {
    pub resp: Response<BoxBody>,
    pub result: ResultType,
    /// CloudFront's x-edge-detailed-result-type (e.g. OriginConnectError).
    pub detailed: &'static str,
    /// None when no distribution answered (no Host, unknown host, an edge failure).
    pub dist: Option<Arc<DistRuntime>>,
}

impl Answer {
    pub fn new(
        resp: Response<BoxBody>,
        result: ResultType,
        dist: Option<Arc<DistRuntime>>,
    ) -> Self {
        Self {
            resp,
            result,
            detailed: result.as_str(),
            dist,
        }
    }

    /// The edge's own error response.
    pub fn error(
        status: StatusCode,
        message: &str,
        edge_name: &str,
        dist: Option<Arc<DistRuntime>>,
    ) -> Self {
        Answer::new(
            respond::error(status, message, edge_name),
            ResultType::Error,
            dist,
        )
    }

    /// With this detailed result type.
    pub fn detailed(mut self, detailed: &'static str) -> Self {
        self.detailed = detailed;
        self
    }
}

/// A fill's body chunks as they arrive.
pub fn fill_chunks(reader: Reader<FillHead>) -> Chunks {
    Box::pin(stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.next().await {
            Ok(Some(b)) => Some((Ok(b), Some(reader))),
            Ok(None) => None,
            Err(e) => Some((Err(Box::new(e) as BoxError), None)),
        }
    }))
}

/// A fill's body as a response body.
pub fn follow_body(reader: Reader<FillHead>) -> BoxBody {
    use futures_util::StreamExt;
    StreamBody::new(fill_chunks(reader).map(|chunk| chunk.map(Frame::data))).boxed_unsync()
}
