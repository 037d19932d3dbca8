//! The admin API listener. For now it answers `GET /status` (version, uptime,
//! configuration version, distributions with their domains and state); metrics,
//! invalidations and inspection come with the admin issue.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::body::{self, BoxBody};
use crate::edge::server::accept_loop;
use crate::edge::Edge;

pub async fn serve(
    edge: Arc<Edge>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let cfg = edge.runtime().config.edge.clone();
    let e2 = edge.clone();
    accept_loop(
        listener,
        shutdown,
        move || e2.runtime().config.edge.drain_timeout,
        cfg.header_read_timeout,
        "admin",
        move |req, _peer| {
            let edge = edge.clone();
            async move { handle(&edge, req) }
        },
    )
    .await
}

fn handle(edge: &Edge, req: Request<Incoming>) -> Response<BoxBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/status") => json(StatusCode::OK, status(edge)),
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "no such admin endpoint", "endpoints": ["GET /status"]}),
        ),
    }
}

fn status(edge: &Edge) -> serde_json::Value {
    let rt = edge.runtime();
    let uptime = SystemTime::now()
        .duration_since(edge.started)
        .unwrap_or_default()
        .as_secs();
    let dists: Vec<_> = rt
        .config
        .distributions
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id,
                "domain": d.assigned_domain(&rt.config.edge.domain),
                "aliases": d.aliases,
                "enabled": d.enabled,
                "catch_all": d.catch_all,
                "comment": d.comment,
            })
        })
        .collect();
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "edge": rt.config.edge.name,
        "uptime_seconds": uptime,
        "config_version": rt.version,
        "distributions": dists,
        "fills_in_flight": edge.fills_in_flight(),
    })
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<BoxBody> {
    let text = format!("{v:#}\n");
    let mut r = Response::new(body::full(text));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
