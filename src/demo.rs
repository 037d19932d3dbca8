//! The built-in demo origin: a small HTTP server on a loopback port serving the example
//! site bundled into the binary (examples/site/), with Cache-Control, ETag and
//! Last-Modified, and a `/time` page that changes on every origin request. `cairn serve`
//! with no configuration runs an edge in front of it, so a fresh clone has something real
//! to cache.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::SystemTime;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LAST_MODIFIED};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::body::{self, BoxBody};

struct Page {
    path: &'static str,
    content_type: &'static str,
    cache_control: &'static str,
    bytes: &'static [u8],
}

const PAGES: &[Page] = &[
    Page {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        cache_control: "max-age=60",
        bytes: include_bytes!("../examples/site/index.html"),
    },
    Page {
        path: "/about.html",
        content_type: "text/html; charset=utf-8",
        cache_control: "max-age=60",
        bytes: include_bytes!("../examples/site/about.html"),
    },
    Page {
        path: "/style.css",
        content_type: "text/css",
        cache_control: "max-age=3600",
        bytes: include_bytes!("../examples/site/style.css"),
    },
    Page {
        path: "/logo.svg",
        content_type: "image/svg+xml",
        cache_control: "max-age=3600",
        bytes: include_bytes!("../examples/site/logo.svg"),
    },
];

/// Starts the demo origin on 127.0.0.1 (an ephemeral port) and returns its address.
pub async fn start() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let started = SystemTime::now();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc =
                    service_fn(
                        move |req| async move { Ok::<_, Infallible>(answer(&req, started)) },
                    );
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn answer(req: &Request<Incoming>, started: SystemTime) -> Response<BoxBody> {
    let path = match req.uri().path() {
        "/" => "/index.html",
        p => p,
    };
    if path == "/time" {
        let text = format!(
            "origin time: {}\n",
            httpdate::fmt_http_date(SystemTime::now())
        );
        return response(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "max-age=5",
            text.into_bytes(),
            None,
            started,
        );
    }
    let Some(page) = PAGES.iter().find(|p| p.path == path) else {
        return response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "max-age=10",
            b"not found\n".to_vec(),
            None,
            started,
        );
    };
    let etag = format!("\"{}\"", &blake3::hash(page.bytes).to_hex()[..16]);
    let matches = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return response(
            StatusCode::NOT_MODIFIED,
            page.content_type,
            page.cache_control,
            Vec::new(),
            Some(&etag),
            started,
        );
    }
    response(
        StatusCode::OK,
        page.content_type,
        page.cache_control,
        page.bytes.to_vec(),
        Some(&etag),
        started,
    )
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    cache_control: &'static str,
    bytes: Vec<u8>,
    etag: Option<&str>,
    modified: SystemTime,
) -> Response<BoxBody> {
    let mut r = Response::new(body::full(bytes));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if let Some(Ok(v)) = etag.map(HeaderValue::from_str) {
        h.insert(ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
        h.insert(LAST_MODIFIED, v);
    }
    r
}
