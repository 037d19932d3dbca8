//! A response body that reports how it ended (bytes sent, complete, failed, or dropped
//! because the viewer hung up), so the access log line is written once the response is
//! really over.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxBody, BoxError};

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub body_bytes: u64,
    /// Every byte was handed to the connection.
    pub complete: bool,
    /// The body ended with an error (origin failure, checksum failure).
    pub failed: bool,
}

pub struct Tracked {
    inner: BoxBody,
    /// The response's Content-Length, if it has one.
    expected_len: Option<u64>,
    outcome: Outcome,
    on_end: Option<Box<dyn FnOnce(Outcome) + Send>>,
}

impl Tracked {
    pub fn new(
        inner: BoxBody,
        expected_len: Option<u64>,
        on_end: impl FnOnce(Outcome) + Send + 'static,
    ) -> Self {
        Self {
            inner,
            expected_len,
            outcome: Outcome {
                body_bytes: 0,
                complete: false,
                failed: false,
            },
            on_end: Some(Box::new(on_end)),
        }
    }

    fn finish(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(self.outcome);
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.outcome.body_bytes += d.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.outcome.failed = true;
                this.finish();
            }
            Poll::Ready(None) => {
                this.outcome.complete = true;
                this.finish();
            }
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // hyper may drop a body it knows is finished without polling it to the end: when
        // is_end_stream says so, or once it has written all the Content-Length bytes it
        // framed the response with. That is a complete response, not a viewer hanging up.
        let all_sent = self
            .expected_len
            .is_some_and(|n| self.outcome.body_bytes >= n);
        if (all_sent || self.inner.is_end_stream()) && !self.outcome.failed {
            self.outcome.complete = true;
        }
        self.finish();
    }
}
