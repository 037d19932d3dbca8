//! The admin API listener: `GET /status` (version, uptime, configuration version,
//! distributions), `GET /metrics` (Prometheus), `POST /reload`, `POST /invalidations` and
//! `GET /invalidations/{id}` (see [`invalidations`]), `GET /inspect/...` (the
//! `cache-inspect` reports of the running edge; see [`inspect`]). With `[edge]
//! admin_token` set, every request needs `Authorization: Bearer TOKEN` ([`auth`]).

pub mod auth;
pub mod distributions;
pub mod inspect;
pub mod invalidations;

mod metrics;

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::body::{self, BoxBody};
use crate::control::{self, Control};
use crate::edge::server::{accept_loop, ConnLimits, ListenerSettings};
use crate::edge::Edge;

pub use invalidations::Invalidations;

/// What the admin handlers work on.
pub struct Admin {
    pub edge: Arc<Edge>,
    /// Where `POST /reload` reads the configuration from, and the API's distributions live.
    pub control: Arc<Control>,
    pub invalidations: Arc<Invalidations>,
}

pub async fn serve(
    admin: Arc<Admin>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let cfg = admin.edge.runtime().config.edge.clone();
    let e2 = admin.edge.clone();
    accept_loop(
        listener,
        shutdown,
        move || e2.runtime().config.edge.drain_timeout,
        ListenerSettings {
            what: "admin",
            header_read_timeout: cfg.header_read_timeout,
            // Loopback or token-protected: the viewer limits are not for it.
            limits: ConnLimits::default,
            metrics: None,
        },
        move |req, _peer| {
            let admin = admin.clone();
            async move { handle(&admin, req).await }
        },
    )
    .await
}

async fn handle(admin: &Arc<Admin>, req: Request<Incoming>) -> Response<BoxBody> {
    let edge: &Edge = &admin.edge;
    let token = edge.runtime().config.edge.admin_token.clone();
    if let Some(refused) = auth::check(token.as_deref(), req.headers()) {
        return refused;
    }
    let path = req.uri().path().to_string();
    if path == "/distributions" || path.starts_with("/distributions/") {
        if let Some(resp) = distributions::handle(admin, req, &path).await {
            return resp;
        }
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "no such distribution endpoint", "endpoints": [
                "GET /distributions", "POST /distributions", "GET /distributions/{id}",
                "PUT /distributions/{id}", "DELETE /distributions/{id}",
                "GET /distributions/{id}/status",
            ]}),
        );
    }
    match (req.method(), path.as_str()) {
        (&Method::GET, "/status") => json(StatusCode::OK, status(edge)),
        (&Method::GET, "/metrics") => metrics::metrics(edge),
        (&Method::POST, "/reload") => reload(admin).await,
        (&Method::POST, "/invalidations") => invalidations::post(admin, req).await,
        (&Method::GET, p) if p.starts_with("/invalidations/") => {
            invalidations::get(admin, &p["/invalidations/".len()..])
        }
        (&Method::GET, p) if p.starts_with("/inspect/") => {
            inspect::get(admin, &p["/inspect/".len()..], req.uri().query()).await
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "no such admin endpoint", "endpoints": [
                "GET /status", "GET /metrics", "POST /reload", "POST /invalidations",
                "GET /invalidations/{id}", "GET /inspect/summary", "GET /inspect/segments",
                "GET /distributions", "POST /distributions",
                "GET /inspect/ls", "GET /inspect/show", "GET /inspect/explain",
            ]}),
        ),
    }
}

/// `POST /reload`: what SIGHUP does, with the outcome in the answer.
async fn reload(admin: &Arc<Admin>) -> Response<BoxBody> {
    let a = admin.clone();
    let done = tokio::task::spawn_blocking(move || control::reload(&a.edge, &a.control)).await;
    match done {
        Ok(Ok(v)) => json(StatusCode::OK, serde_json::json!({ "config_version": v })),
        Ok(Err(e)) => json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": e.to_string(), "config_version": admin.edge.runtime().version }),
        ),
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "error": e.to_string() }),
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

pub(crate) fn json(status: StatusCode, v: serde_json::Value) -> Response<BoxBody> {
    let text = format!("{v:#}\n");
    let mut r = Response::new(body::full(text));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
