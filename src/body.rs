//! Body types shared by the viewer side and the origin side: one boxed body type for
//! everything the edge sends or forwards, and the error type its frames carry.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Error carried by a body frame; ends the stream (the connection is then closed, so a
/// truncated body is never presented as complete).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the edge produces or forwards.
pub type BoxBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn empty() -> BoxBody {
    Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync()
}

pub fn full(bytes: impl Into<Bytes>) -> BoxBody {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// A viewer's request body, forwarded to the origin as it arrives.
pub fn incoming(body: hyper::body::Incoming) -> BoxBody {
    body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()
}
