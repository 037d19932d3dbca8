//! The request the edge sends to an origin: exactly what the cache key includes (path,
//! query, policy headers, cookies), plus the edge's own headers (Host, X-Forwarded-For,
//! Via, User-Agent) and the origin's custom headers. Nothing the key excludes is sent, so
//! the cache cannot be poisoned by a value it does not key on.

use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue, HOST, USER_AGENT, VIA};
use http::{HeaderMap, Method};

use crate::body::BoxBody;
use crate::cache_key::KeyedRequest;
use crate::config::{Origin, Scheme};
use crate::origin::OutgoingRequest;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Who asked, for X-Forwarded-For.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub ip: IpAddr,
    /// The viewer's own X-Forwarded-For, to which the edge appends the viewer's address.
    pub forwarded_for: Option<String>,
}

/// Builds the request for `origin`. `extra` carries headers beyond the key (conditional
/// headers on revalidation; a body's Content-Type on pass-through methods).
pub fn origin_request(
    origin: &Origin,
    edge_name: &str,
    method: Method,
    keyed: &KeyedRequest,
    viewer: &Viewer,
    extra: HeaderMap,
    body: Option<BoxBody>,
) -> OutgoingRequest {
    let mut headers = keyed.forwarded_headers.clone();
    for (name, value) in extra.iter() {
        headers.append(name.clone(), value.clone());
    }
    let host = match &keyed.viewer_host {
        Some(h) => HeaderValue::from_str(h).ok(),
        None => HeaderValue::from_str(&origin_authority(origin)).ok(),
    };
    if let Some(h) = host {
        headers.insert(HOST, h);
    }
    let xff = match &viewer.forwarded_for {
        Some(prev) if !prev.trim().is_empty() => format!("{}, {}", prev.trim(), viewer.ip),
        _ => viewer.ip.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(HeaderName::from_static(X_FORWARDED_FOR), v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("1.1 {edge_name} (cairn)")) {
        headers.insert(VIA, v);
    }
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static("cairn"));
    }
    for (name, value) in &origin.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    let mut path_and_query = format!("{}{}", origin.path, keyed.path);
    if let Some(q) = &keyed.query {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    OutgoingRequest {
        method,
        path_and_query,
        headers,
        body,
    }
}

/// `host[:port]` as the Host header for the origin (the port only when not the default).
fn origin_authority(origin: &Origin) -> String {
    let host = if origin.host.contains(':') {
        format!("[{}]", origin.host)
    } else {
        origin.host.clone()
    };
    let default_port = match origin.scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    };
    if origin.port == default_port {
        host
    } else {
        format!("{host}:{}", origin.port)
    }
}
