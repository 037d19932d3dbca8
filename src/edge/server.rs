//! Connections: an accept loop over an already-bound listener (tests bind port 0), one
//! hyper connection task per viewer (HTTP/1.1, and HTTP/2 prior knowledge), a header read
//! timeout, and a graceful stop that lets in-flight requests finish for a bounded time.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::body::BoxBody;
use crate::edge::{pipeline, Edge};

/// Serves viewers on `listener` until `shutdown` resolves, then drains.
pub async fn serve(edge: Arc<Edge>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let header_read_timeout = edge.runtime().config.edge.header_read_timeout;
    let e2 = edge.clone();
    accept_loop(
        listener,
        shutdown,
        // Read when the stop begins, so a reloaded drain_timeout applies.
        move || e2.runtime().config.edge.drain_timeout,
        header_read_timeout,
        "viewer",
        move |req, peer| pipeline::handle(edge.clone(), req, peer),
    )
    .await
}

/// Accepts connections and runs `handler` for each request, until `shutdown`; then stops
/// accepting and waits up to `drain` for open connections to finish their requests.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain: impl FnOnce() -> Duration,
    header_read_timeout: Duration,
    what: &'static str,
    handler: F,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<BoxBody>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
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
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let svc = service_fn(move |req| {
                    let fut = handler(req, peer);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    let drain = drain();
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(listener = what, after = ?drain, "connections still open after the drain timeout; closing them");
    }
}
