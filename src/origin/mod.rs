//! Origin clients: one pooled hyper-util client per configured origin (its own connect
//! timeout, keep-alive and trust roots), requests with CloudFront's connect attempts and
//! response timeout, and origin-group failover. Everything else about the request (what is
//! forwarded) is decided by the edge; this module only delivers it.

mod client;
mod failover;

pub use client::OriginClient;
pub use client::OutgoingRequest;
pub use failover::{fetch, FetchPlan, Fetched};

use std::time::Duration;

/// Why an origin did not deliver a response. The edge answers 502 for `Connect` and
/// `BadResponse`, 504 for `Timeout`.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("origin {origin}: could not connect after {attempts} attempt(s): {detail}")]
    Connect {
        origin: String,
        attempts: u32,
        detail: String,
    },
    #[error("origin {origin}: no response within {after:?}")]
    Timeout { origin: String, after: Duration },
    #[error("origin {origin}: bad response: {detail}")]
    BadResponse { origin: String, detail: String },
    #[error("origin {origin}: TLS setup failed: {detail}")]
    Tls { origin: String, detail: String },
}

impl OriginError {
    /// The status the viewer gets.
    pub fn status(&self) -> http::StatusCode {
        match self {
            OriginError::Timeout { .. } => http::StatusCode::GATEWAY_TIMEOUT,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }

    /// The cause, as the viewer's error body says it (without the origin's address,
    /// which is the operator's business: the log has it).
    pub fn viewer_message(&self) -> &'static str {
        match self {
            OriginError::Connect { .. } => "The edge could not connect to the origin.",
            OriginError::Timeout { .. } => "The origin did not answer in time.",
            OriginError::BadResponse { .. } => "The origin sent a malformed response.",
            OriginError::Tls { .. } => "The TLS connection to the origin could not be set up.",
        }
    }

    /// CloudFront's x-edge-detailed-result-type for this failure.
    pub fn detailed_result(&self) -> &'static str {
        match self {
            OriginError::Connect { .. } | OriginError::Tls { .. } => "OriginConnectError",
            OriginError::Timeout { .. } => "OriginReadTimeout",
            OriginError::BadResponse { .. } => "OriginInvalidResponseError",
        }
    }

    /// Does this failure let an origin group try its next member?
    pub fn fails_over(&self) -> bool {
        matches!(
            self,
            OriginError::Connect { .. } | OriginError::Timeout { .. }
        )
    }
}
