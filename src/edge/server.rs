//! Connections: an accept loop over an already-bound listener (tests bind port 0), one
//! hyper connection task per viewer (HTTP/1.1, and HTTP/2 prior knowledge), the limits
//! on connections (how many at once, requests per connection, time to the first request
//! and to each request head) and a graceful stop that lets in-flight requests finish for
//! a bounded time.
//!
//! hyper answers malformed HTTP/1 request heads itself, before any service runs: 400
//! (bad request line, method, target or header bytes, conflicting Content-Length or
//! Transfer-Encoding), 431 (a head beyond [`MAX_HEAD_BYTES`] or more than 100 header
//! fields), 414 (a target beyond 65534 bytes, which the head limit already catches).
//! Those connections end with an error that is counted by kind.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::header::{HeaderValue, CONNECTION};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use crate::body::BoxBody;
use crate::edge::state::Edge;
use crate::edge::{pipeline, respond};
use crate::fault::panic_message;
use crate::metrics::{ConnectionMetrics, PanicSite, ProtocolError};

/// Largest HTTP/1 request head (request line and headers) hyper buffers; a larger one is
/// answered 431 by hyper.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Connections being refused at once (503 written, the viewer's bytes drained); beyond
/// it, a connection over the limit is closed without a word.
const MAX_REFUSING: usize = 256;

/// How long a refusal may take: writing the 503 and reading what the viewer sent.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// What a listener enforces on its connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnLimits {
    /// Connections served at once; `None`: unlimited.
    pub max_connections: Option<u32>,
    /// Requests served on one connection; `None`: unlimited.
    pub max_requests_per_connection: Option<u32>,
}

/// How one listener runs.
pub struct ListenerSettings<L> {
    /// "viewer" or "admin", for logs.
    pub what: &'static str,
    /// Time to the first request, and to each request head (HTTP/1).
    pub header_read_timeout: Duration,
    /// Read at each accept, so a reload applies to new connections.
    pub limits: L,
    /// Where connection events are counted (the viewer listener's only).
    pub metrics: Option<ConnectionMetrics>,
}

/// Serves viewers on `listener` until `shutdown` resolves, then drains.
pub async fn serve(edge: Arc<Edge>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let header_read_timeout = edge.runtime().config.edge.header_read_timeout;
    let (e2, e3) = (edge.clone(), edge.clone());
    let settings = ListenerSettings {
        what: "viewer",
        header_read_timeout,
        limits: move || {
            let e = &e3.runtime().config.edge;
            ConnLimits {
                max_connections: Some(e.max_connections),
                max_requests_per_connection: Some(e.max_requests_per_connection),
            }
        },
        metrics: Some(edge.metrics.connections()),
    };
    accept_loop(
        listener,
        shutdown,
        // Read when the stop begins, so a reloaded drain_timeout applies.
        move || e2.runtime().config.edge.drain_timeout,
        settings,
        move |req, peer| contained(edge.clone(), req, peer),
    )
    .await
}

/// One viewer request, with a panic anywhere in it contained: that request gets a 500,
/// the panic is logged and counted, and the edge goes on serving.
async fn contained(edge: Arc<Edge>, req: Request<Incoming>, peer: SocketAddr) -> Response<BoxBody> {
    // Kept for the log line of a panic (a reference-counted copy, not a string).
    let target = req.uri().clone();
    let answered = AssertUnwindSafe(pipeline::handle(edge.clone(), req, peer))
        .catch_unwind()
        .await;
    match answered {
        Ok(resp) => resp,
        Err(panic) => {
            edge.metrics.panicked(PanicSite::Request);
            tracing::error!(peer = %peer, target = %target, panic = panic_message(&*panic), "a request panicked; answered 500");
            respond::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The edge failed while answering this request.",
                edge.runtime().edge_name(),
            )
        }
    }
}

/// Open connections, and a wake-up when the last one closes (for the drain).
#[derive(Default)]
struct OpenConnections {
    count: AtomicUsize,
    none_left: Notify,
}

/// One open connection; counted until dropped.
struct OpenGuard {
    open: Arc<OpenConnections>,
    metrics: Option<ConnectionMetrics>,
}

impl OpenGuard {
    fn new(open: &Arc<OpenConnections>, metrics: Option<ConnectionMetrics>) -> Self {
        open.count.fetch_add(1, Ordering::SeqCst);
        if let Some(m) = &metrics {
            m.opened();
        }
        Self {
            open: open.clone(),
            metrics,
        }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics {
            m.closed();
        }
        if self.open.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.open.none_left.notify_waiters();
        }
    }
}

impl OpenConnections {
    async fn all_closed(&self) {
        loop {
            let notified = self.none_left.notified();
            tokio::pin!(notified);
            // Registered before the check, so a close in between is not missed.
            notified.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Accepts connections and runs `handler` for each request, until `shutdown`; then stops
/// accepting, asks open connections to finish (HTTP/1: close after the current response;
/// HTTP/2: GOAWAY) and waits up to `drain` for them.
pub async fn accept_loop<F, Fut, L>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain: impl FnOnce() -> Duration,
    settings: ListenerSettings<L>,
    handler: F,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<BoxBody>> + Send + 'static,
    L: Fn() -> ConnLimits,
{
    let what = settings.what;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let builder = Arc::new(builder);
    let open = Arc::new(OpenConnections::default());
    let refusing = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(listener = what, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let limits = (settings.limits)();
                let max = limits.max_connections.map_or(usize::MAX, |m| m as usize);
                if open.count.load(Ordering::SeqCst) >= max {
                    if let Some(m) = &settings.metrics {
                        m.rejected();
                    }
                    tracing::debug!(listener = what, peer = %peer, "connection refused: max_connections reached");
                    refuse(stream, &refusing);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let conn = Connection {
                    guard: OpenGuard::new(&open, settings.metrics.clone()),
                    peer,
                    max_requests: limits.max_requests_per_connection,
                    first_request_timeout: settings.header_read_timeout,
                    stop: stop_rx.clone(),
                };
                tokio::spawn(conn.run(stream, builder.clone(), handler.clone()));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = drain();
    if tokio::time::timeout(drain, open.all_closed())
        .await
        .is_err()
    {
        tracing::warn!(listener = what, after = ?drain, "connections still open after the drain timeout; closing them");
    }
}

/// One accepted connection and what it must respect.
struct Connection {
    guard: OpenGuard,
    peer: SocketAddr,
    max_requests: Option<u32>,
    /// The first request head must have arrived within this (this also covers HTTP/2,
    /// and the time before hyper knows which protocol the viewer speaks, which hyper's own
    /// header timeout does not).
    first_request_timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run<F, Fut>(
        mut self,
        stream: TcpStream,
        builder: Arc<auto::Builder<TokioExecutor>>,
        handler: F,
    ) where
        F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<BoxBody>> + Send + 'static,
    {
        let served = Arc::new(AtomicU32::new(0));
        // Set when an HTTP/2 connection reached its request limit: send GOAWAY.
        let h2_limit = Arc::new(Notify::new());
        let svc = {
            let (served, h2_limit) = (served.clone(), h2_limit.clone());
            let (peer, max, metrics) = (self.peer, self.max_requests, self.guard.metrics.clone());
            service_fn(move |req: Request<Incoming>| {
                let n = served.fetch_add(1, Ordering::SeqCst).saturating_add(1);
                let h2 = req.version() == Version::HTTP_2;
                let last = max.is_some_and(|m| n >= m);
                if max == Some(n) {
                    if let Some(m) = &metrics {
                        m.request_limit_reached();
                    }
                    if h2 {
                        h2_limit.notify_one();
                    }
                }
                let fut = handler(req, peer);
                async move {
                    let mut resp = fut.await;
                    if last && !h2 {
                        // hyper closes the connection after a response that says so.
                        resp.headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok::<_, Infallible>(resp)
                }
            })
        };
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        tokio::pin!(conn);
        let first_deadline = tokio::time::sleep(self.first_request_timeout);
        tokio::pin!(first_deadline);
        let mut stopping = *self.stop.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        let result = loop {
            tokio::select! {
                r = conn.as_mut() => break r,
                _ = self.stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = h2_limit.notified(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = &mut first_deadline, if served.load(Ordering::SeqCst) == 0 => {
                    // Checked again: the first request may have begun in this very poll.
                    if served.load(Ordering::SeqCst) == 0 {
                        if let Some(m) = &self.guard.metrics {
                            m.protocol_error(ProtocolError::HeaderTimeout);
                        }
                        tracing::debug!(peer = %self.peer, "no request within the header read timeout; closing");
                        return;
                    }
                }
            }
        };
        if let Err(e) = result {
            let kind = match ProtocolError::of(&*e) {
                ProtocolError::HeaderTimeout if served.load(Ordering::SeqCst) > 0 => {
                    ProtocolError::KeepAliveTimeout
                }
                k => k,
            };
            if let Some(m) = &self.guard.metrics {
                m.protocol_error(kind);
            }
            tracing::debug!(peer = %self.peer, kind = kind.as_str(), error = %e, "connection ended with an error");
        }
    }
}

/// The answer to a connection over `max_connections`.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 80\r\n\
retry-after: 1\r\n\
cache-control: no-store\r\n\
connection: close\r\n\
\r\n\
503 Service Unavailable\nThis edge has too many open connections; retry shortly.\n";

/// Answers `stream` with [`REFUSAL`] in a task of its own, bounded in time, without
/// reading a request: the viewer's bytes are drained after the answer so that closing
/// does not reset the connection before the viewer reads it.
fn refuse(stream: TcpStream, refusing: &Arc<AtomicUsize>) {
    if refusing.fetch_add(1, Ordering::SeqCst) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::SeqCst);
        // Dropping it closes it: under such a flood, words cost too much.
        return;
    }
    let refusing = refusing.clone();
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            stream.write_all(REFUSAL).await?;
            stream.shutdown().await?;
            let mut buf = [0u8; 4096];
            let mut drained = 0usize;
            while drained < MAX_HEAD_BYTES {
                match stream.read(&mut buf).await? {
                    0 => break,
                    n => drained += n,
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        refusing.fetch_sub(1, Ordering::SeqCst);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_content_length_matches_its_body() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
    }
}
