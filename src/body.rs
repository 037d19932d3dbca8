//! Body types shared by the viewer side and the origin side: one boxed body type for
//! everything the edge sends or forwards, and the error type its frames carry.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Error carried by a body frame; ends the stream (the connection is then closed, so a
/// truncated body is never presented as complete).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the edge produces or forwards.
pub type BoxBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body's chunks in order, as they come (from the store or from a fill).
pub type Chunks = Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, BoxError>> + Send>>;

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

/// A viewer's request body, forwarded as it arrives, that fails once more than `limit`
/// bytes have come: the origin request is then aborted, never completed with a cut body.
/// `exceeded` is set when that happens, so the edge can answer 413 rather than 502.
pub fn incoming_limited(
    body: hyper::body::Incoming,
    limit: u64,
    exceeded: Arc<AtomicBool>,
) -> BoxBody {
    LimitedBody {
        inner: incoming(body),
        limit,
        seen: 0,
        exceeded,
    }
    .boxed_unsync()
}

/// The request body was larger than `max_request_body`.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than the edge accepts ({limit} bytes)")]
pub struct BodyTooLarge {
    pub limit: u64,
}

struct LimitedBody {
    inner: BoxBody,
    limit: u64,
    /// Bytes passed on so far.
    seen: u64,
    exceeded: Arc<AtomicBool>,
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
            let seen = self.seen.saturating_add(data.len() as u64);
            if seen > self.limit {
                self.exceeded.store(true, Ordering::SeqCst);
                let limit = self.limit;
                return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit }))));
            }
            self.seen = seen;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limited_body_fails_past_its_limit() {
        let exceeded = Arc::new(AtomicBool::new(false));
        let chunks = ["abc", "def", "g"].map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from(c))));
        let inner = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        let mut body = LimitedBody {
            inner: inner.boxed_unsync(),
            limit: 6,
            seen: 0,
            exceeded: exceeded.clone(),
        };
        let mut got = Vec::new();
        let err = loop {
            match body.frame().await {
                Some(Ok(f)) => got.extend_from_slice(f.data_ref().unwrap()),
                Some(Err(e)) => break e,
                None => panic!("the body ended instead of failing"),
            }
        };
        assert_eq!(got, b"abcdef");
        assert!(exceeded.load(Ordering::SeqCst));
        assert!(err.to_string().contains("(6 bytes)"), "{err}");
    }
}
