//! One pooled client per origin: hyper-util's legacy client (it owns the connection pool)
//! over rustls, with the origin's connect timeout, keep-alive and trust roots.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Sleep;

use crate::body::{BoxBody, BoxError};
use crate::config::{Origin, Scheme};
use crate::origin::OriginError;

/// A request for one origin: everything but the scheme and authority, which the client
/// adds. `body: None` means no body, so the request may be replayed on a connect error.
pub struct OutgoingRequest {
    pub method: Method,
    /// Path and query, already including the origin path prefix.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Option<BoxBody>,
}

/// A pooled client for one origin.
pub struct OriginClient {
    pub origin: Origin,
    client: Client<HttpsConnector<HttpConnector>, BoxBody>,
}

impl std::fmt::Debug for OriginClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginClient")
            .field("origin", &self.origin.base_url())
            .finish()
    }
}

impl OriginClient {
    pub fn new(origin: &Origin) -> Result<Self, OriginError> {
        let tls = tls_config(origin)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(origin.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(origin.keepalive_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Self {
            origin: origin.clone(),
            client,
        })
    }

    /// Sends `req`: connect attempts as configured (only for requests without a body),
    /// headers within connect + response timeout, then a body whose every pause between
    /// frames is bounded by the response timeout.
    pub async fn send(&self, req: OutgoingRequest) -> Result<Response<BoxBody>, OriginError> {
        let name = self.origin.base_url();
        let uri: Uri = format!("{}{}", name, req.path_and_query)
            .parse()
            .map_err(|e| OriginError::BadResponse {
                origin: name.clone(),
                detail: format!("cannot form the request URI: {e}"),
            })?;
        let replayable = req.body.is_none();
        let attempts = if replayable {
            self.origin.connect_attempts.max(1)
        } else {
            1
        };
        let mut body = req.body;
        let budget = self.origin.connect_timeout + self.origin.response_timeout;
        let mut last_connect_error = String::new();
        // One extra try for a request the origin closed its connection on before sending
        // any response: the race of a pooled keep-alive connection closing as it is reused.
        let mut closed_retry_left = replayable && req.method.is_idempotent();
        let mut attempt = 0;
        while attempt < attempts {
            attempt += 1;
            let mut builder = Request::builder()
                .method(req.method.clone())
                .uri(uri.clone());
            if let Some(h) = builder.headers_mut() {
                *h = req.headers.clone();
            }
            let outgoing = builder
                .body(body.take().unwrap_or_else(crate::body::empty))
                .map_err(|e| OriginError::BadResponse {
                    origin: name.clone(),
                    detail: format!("cannot form the request: {e}"),
                })?;
            match tokio::time::timeout(budget, self.client.request(outgoing)).await {
                Err(_) => {
                    return Err(OriginError::Timeout {
                        origin: name,
                        after: budget,
                    })
                }
                Ok(Ok(mut resp)) => {
                    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and an
                    // intermediary must remove the received Content-Length before
                    // forwarding; kept, it would cut the viewer's copy short.
                    if resp.headers().contains_key(TRANSFER_ENCODING) {
                        resp.headers_mut().remove(CONTENT_LENGTH);
                    }
                    let timeout = self.origin.response_timeout;
                    let origin = name.clone();
                    return Ok(resp.map(|b| {
                        IdleTimeout::new(
                            b.map_err(move |e| {
                                Box::new(OriginError::BadResponse {
                                    origin: origin.clone(),
                                    detail: format!("body: {}", chain(&e)),
                                }) as BoxError
                            }),
                            timeout,
                            name,
                        )
                        .boxed_unsync()
                    }));
                }
                Ok(Err(e)) if e.is_connect() => {
                    last_connect_error = chain(&e);
                    tracing::debug!(origin = %name, error = %last_connect_error, "connect attempt failed");
                }
                Ok(Err(e)) if closed_retry_left && closed_before_response(&e) => {
                    closed_retry_left = false;
                    attempt -= 1;
                    tracing::debug!(origin = %name, error = %chain(&e), "connection closed before any response; retrying once");
                }
                Ok(Err(e)) => {
                    return Err(OriginError::BadResponse {
                        origin: name,
                        detail: chain(&e),
                    })
                }
            }
        }
        Err(OriginError::Connect {
            origin: name,
            attempts,
            detail: last_connect_error,
        })
    }
}

/// Whether the origin closed the connection before a response began (RFC 9112 §9.3.1:
/// a request with an idempotent method may then be retried automatically).
fn closed_before_response(e: &hyper_util::client::legacy::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<hyper::Error>())
        .is_some_and(|h| h.is_incomplete_message())
}

/// An error and its sources on one line (hyper's own message alone is often just
/// "client error (Connect)").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn tls_config(origin: &Origin) -> Result<rustls::ClientConfig, OriginError> {
    let tls_err = |detail: String| OriginError::Tls {
        origin: origin.base_url(),
        detail,
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let (Scheme::Https, Some(path)) = (origin.scheme, &origin.ca_file) {
        let pem = std::fs::read(path)
            .map_err(|e| tls_err(format!("cannot read ca_file {}: {e}", path.display())))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| tls_err(format!("bad PEM in {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| tls_err(format!("bad certificate in {}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(tls_err(format!(
                "ca_file {} holds no certificate",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A body whose every wait for the next frame is bounded, so a stalled origin ends the
/// response with an error instead of holding the viewer forever.
struct IdleTimeout<B> {
    inner: B,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    origin: String,
}

impl<B> IdleTimeout<B> {
    fn new(inner: B, timeout: Duration, origin: String) -> Self {
        Self {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            origin,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                let deadline = tokio::time::Instant::now() + this.timeout;
                this.sleep.as_mut().reset(deadline);
                Poll::Ready(r)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(OriginError::Timeout {
                    origin: this.origin.clone(),
                    after: this.timeout,
                })))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
