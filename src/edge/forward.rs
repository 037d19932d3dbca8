//! The request the edge sends to an origin: the viewer's request parts the behaviour's
//! policies forward (`cache_key::forward`: exactly what the key includes, plus what the
//! origin request policy adds), the edge's own fields (Host — the viewer's for a parent
//! edge, the origin's otherwise —, X-Forwarded-For and Via
//! extended with the viewer's, User-Agent when the viewer's is not forwarded) and the
//! origin's custom headers, which win over any viewer value.

use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue, HOST, USER_AGENT, VIA};
use http::{HeaderMap, Method, Uri};

use crate::body::BoxBody;
use crate::cache_key::forward::{forwarded_headers, Exchange, Forwarded, Policies};
use crate::cache_key::KeyedRequest;
use crate::config::{Origin, OriginKind, Scheme};
use crate::origin::OutgoingRequest;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Who asked, for X-Forwarded-For and Via.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub ip: IpAddr,
    /// The viewer's own X-Forwarded-For, to which the edge appends the viewer's address.
    pub forwarded_for: Option<String>,
    /// The viewer's own Via, to which the edge appends itself (RFC 9110 §7.6.3).
    pub via: Option<String>,
    /// The viewer's Host, sent to a parent edge so that it routes to the same distribution.
    pub host: Option<String>,
}

/// A viewer's request, as the origin requests made for it need it.
#[derive(Debug, Clone)]
pub struct ViewerRequest {
    pub keyed: KeyedRequest,
    pub viewer: Viewer,
    /// The viewer's request target.
    pub uri: Uri,
    /// The query string to forward: what the key or the origin request policy includes.
    pub query: Option<String>,
}

impl ViewerRequest {
    /// The origin request for this viewer request (`headers`: the viewer's) with `method`,
    /// forwarding what `policies` say for `exchange`, plus `extra`.
    pub fn forward(
        &self,
        method: Method,
        headers: &HeaderMap,
        policies: Policies,
        exchange: Exchange,
        extra: HeaderMap,
    ) -> ForwardRequest {
        ForwardRequest {
            method,
            path: self.keyed.path.clone(),
            query: self.query.clone(),
            forwarded: forwarded_headers(&self.keyed, &self.uri, headers, policies, exchange),
            viewer: self.viewer.clone(),
            extra,
        }
    }
}

/// One request to send to whichever origin the fetch plan picks.
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    pub method: Method,
    /// The normalised path (the origin's path prefix is added per origin).
    pub path: String,
    /// The query string to forward, without '?'.
    pub query: Option<String>,
    pub forwarded: Forwarded,
    pub viewer: Viewer,
    /// Fields beyond the viewer's (conditional headers of a revalidation, a Range passed
    /// through, a body's Content-Type).
    pub extra: HeaderMap,
}

impl ForwardRequest {
    /// The request for `origin`.
    pub fn to(&self, origin: &Origin, edge_name: &str, body: Option<BoxBody>) -> OutgoingRequest {
        let mut headers = self.forwarded.headers.clone();
        // The edge's own values replace any the viewer's request carried.
        for name in self.extra.keys() {
            headers.remove(name);
        }
        for (name, value) in self.extra.iter() {
            headers.append(name.clone(), value.clone());
        }
        let viewer_host = self.viewer.host.as_deref();
        let host = match (&self.forwarded.host, origin.kind, viewer_host) {
            (Some(h), _, _) => Some(h.clone()),
            (None, OriginKind::Edge, Some(h)) => HeaderValue::from_str(h).ok(),
            (None, _, _) => HeaderValue::from_str(&origin_authority(origin)).ok(),
        };
        if let Some(h) = host {
            headers.insert(HOST, h);
        }
        let xff = match &self.viewer.forwarded_for {
            Some(prev) if !prev.trim().is_empty() => {
                format!("{}, {}", prev.trim(), self.viewer.ip)
            }
            _ => self.viewer.ip.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert(HeaderName::from_static(X_FORWARDED_FOR), v);
        }
        let ours = format!("1.1 {edge_name} (cairn)");
        let via = match &self.viewer.via {
            Some(prev) if !prev.trim().is_empty() => format!("{}, {ours}", prev.trim()),
            _ => ours,
        };
        if let Ok(v) = HeaderValue::from_str(&via) {
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
        let mut path_and_query = format!("{}{}", origin.path, self.path);
        if let Some(q) = &self.query {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        OutgoingRequest {
            method: self.method.clone(),
            path_and_query,
            headers,
            body,
        }
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
