//! Tiered caching: an origin of type "edge" is another Cairn edge (a parent tier). Each
//! hop adds itself to `Via`; an edge that finds its own name there answers 508 (the tier
//! loops back to it). A parent's `X-Cache` comes back to the viewer as `X-Cache-Parent`
//! (the child's own `X-Cache` and log result stay the child's).

use http::header::{HeaderName, HeaderValue, VIA};
use http::HeaderMap;

use crate::config::{Origin, OriginKind};
use crate::edge::respond::X_CACHE;

pub const X_CACHE_PARENT: &str = "x-cache-parent";

/// The `received-by` of each `Via` entry (RFC 9110 §7.6.3: `protocol received-by
/// [comment]`), in order.
fn received_by(via: &str) -> impl Iterator<Item = &str> {
    via.split(',')
        .filter_map(|entry| entry.split_whitespace().nth(1))
}

/// Has a request carrying this `Via` already passed through the edge named `edge_name`?
pub fn loops_back(via: &str, edge_name: &str) -> bool {
    received_by(via).any(|by| by.eq_ignore_ascii_case(edge_name))
}

/// For a response from a parent edge: its `X-Cache` ("Hit from cairn") becomes
/// `X-Cache-Parent: Hit from <parent>`, the parent named by the last `Via` entry (its own)
/// or else by the origin's id; a parent's own `X-Cache-Parent` (a grandparent) follows.
pub fn from_parent(origin: &Origin, headers: &mut HeaderMap) {
    if origin.kind != OriginKind::Edge {
        return;
    }
    let Some(parent_cache) = headers.remove(X_CACHE) else {
        return;
    };
    let result = parent_cache.to_str().unwrap_or("");
    let result = result.split(" from ").next().unwrap_or(result).trim();
    let via = headers.get(VIA).and_then(|v| v.to_str().ok()).unwrap_or("");
    let parent = received_by(via).last().unwrap_or(&origin.id);
    let mut value = format!("{result} from {parent}");
    let further = HeaderName::from_static(X_CACHE_PARENT);
    if let Some(grand) = headers.get(&further).and_then(|v| v.to_str().ok()) {
        value = format!("{value}, {grand}");
    }
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(further, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge_origin() -> Origin {
        let toml = r#"
            [[distribution]]
            id = "d"
            [[distribution.origin]]
            id = "parent-origin"
            type = "edge"
            url = "http://127.0.0.1:9"
        "#;
        let config =
            crate::config::load_str(toml, "test", std::path::Path::new(".")).expect("valid config");
        let origin = config.distributions[0].origins[0].clone();
        assert_eq!(origin.kind, OriginKind::Edge);
        origin
    }

    #[test]
    fn loop_is_found_by_received_by() {
        assert!(loops_back("1.1 a (cairn), 1.1 edge-b (cairn)", "edge-b"));
        assert!(loops_back("1.0 EDGE-B", "edge-b"));
        assert!(!loops_back("1.1 edge-bb (cairn), 1.1 x", "edge-b"));
        assert!(!loops_back("", "edge-b"));
        assert!(!loops_back("garbage", "edge-b"));
    }

    #[test]
    fn parent_x_cache_is_renamed_and_chained() {
        let mut h = HeaderMap::new();
        h.insert(X_CACHE, HeaderValue::from_static("Miss from cairn"));
        h.insert(
            VIA,
            HeaderValue::from_static("1.1 up, 1.1 shield-1 (cairn)"),
        );
        h.insert(
            X_CACHE_PARENT,
            HeaderValue::from_static("Hit from shield-2"),
        );
        from_parent(&edge_origin(), &mut h);
        assert!(h.get(X_CACHE).is_none());
        assert_eq!(h[X_CACHE_PARENT], "Miss from shield-1, Hit from shield-2");
    }

    #[test]
    fn parent_without_via_is_named_by_origin_id() {
        let mut h = HeaderMap::new();
        h.insert(X_CACHE, HeaderValue::from_static("Hit from cairn"));
        from_parent(&edge_origin(), &mut h);
        assert_eq!(h[X_CACHE_PARENT], "Hit from parent-origin");
    }

    #[test]
    fn http_origin_headers_are_left_alone() {
        let mut o = edge_origin();
        o.kind = OriginKind::Http;
        let mut h = HeaderMap::new();
        h.insert(X_CACHE, HeaderValue::from_static("Hit from somewhere"));
        from_parent(&o, &mut h);
        assert_eq!(h[X_CACHE], "Hit from somewhere");
        assert!(h.get(X_CACHE_PARENT).is_none());
    }
}
