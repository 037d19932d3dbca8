//! What an origin request carries from the viewer's request: everything the cache key
//! includes, exactly as keyed ([`KeyedRequest`]), plus what the behaviour's origin request
//! policy adds, which is never keyed (CloudFront's split between cache policy and origin
//! request policy). A forwarded-but-unkeyed value cannot poison the cache: responses that
//! depend on one must say so with `Vary` (stored per variant) or are not shared.
//!
//! Never copied from the viewer, whatever the policy: hop-by-hop fields and those the
//! viewer's Connection names, Cookie (rebuilt from the cookie policies), the fields the
//! edge writes itself (Host unless forwarded, Via and X-Forwarded-For, which it extends,
//! Content-Length and Expect, since it frames bodies itself) and, on a cache fill, the
//! conditional fields and Range, which the cache answers itself.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, COOKIE, HOST, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::Uri;

use super::{cookies_of_any, query_of_any, KeyError, KeyedRequest};
use crate::config::{Behavior, CacheKeyPolicy, HeaderPolicy, ListPolicy, OriginRequestPolicy};
use crate::httpcache::is_hop_by_hop;

/// The request fields the cache answers itself on GET and HEAD (RFC 9111 §4.3, RFC 9110
/// §13, §14): never copied onto a fill, which asks for the whole object.
pub const CACHE_HANDLED: [HeaderName; 6] = [
    RANGE,
    IF_RANGE,
    IF_MATCH,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_UNMODIFIED_SINCE,
];

/// Fields the edge writes itself on every origin request.
const EDGE_WRITTEN: [&str; 6] = [
    "host",
    "cookie",
    "via",
    "x-forwarded-for",
    "content-length",
    "expect",
];

/// What the origin request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// A fill of the cache (GET for the whole object, or its revalidation).
    Fill,
    /// A request the edge does not cache (other methods), passed through as it is.
    PassThrough,
}

/// The two policies of a behaviour that decide what is forwarded.
#[derive(Debug, Clone, Copy)]
pub struct Policies<'a> {
    pub cache_key: &'a CacheKeyPolicy,
    pub origin_request: &'a OriginRequestPolicy,
}

impl<'a> Policies<'a> {
    /// A behaviour's policies.
    pub fn of(b: &'a Behavior) -> Self {
        Policies {
            cache_key: &b.cache_key,
            origin_request: &b.origin_request,
        }
    }
}

/// The viewer's request parts an origin request carries.
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// Request header fields, the keyed ones as keyed, the Cookie rebuilt.
    pub headers: HeaderMap,
    /// The Host to send when it is the viewer's (keyed, or forwarded by the policy);
    /// otherwise the origin's own host is sent.
    pub host: Option<HeaderValue>,
}

/// The query string to forward: the parameters the cache key or the origin request policy
/// includes, in the viewer's order. `keyed` is what the key holds (the same when the policy
/// adds none, which costs nothing more). An invalid escape is an error as in the key.
pub fn forwarded_query(
    raw: Option<&str>,
    keyed: Option<&str>,
    policies: Policies,
) -> Result<Option<String>, KeyError> {
    let (key, more) = (
        &policies.cache_key.query_strings,
        &policies.origin_request.query_strings,
    );
    if *more == ListPolicy::None || *key == ListPolicy::All {
        return Ok(keyed.map(str::to_string));
    }
    query_of_any(raw, &[key, more])
}

/// The header fields (and Host) to forward for `keyed`, the viewer's request `uri` and
/// `viewer` headers.
pub fn forwarded_headers(
    keyed: &KeyedRequest,
    uri: &Uri,
    viewer: &HeaderMap,
    policies: Policies,
    exchange: Exchange,
) -> Forwarded {
    let (key, more) = (policies.cache_key, policies.origin_request);
    let mut headers = keyed.forwarded_headers.clone();
    if more.cookies != ListPolicy::None {
        headers.remove(COOKIE);
        let cookies = cookies_of_any(viewer, &[&key.cookies, &more.cookies]);
        if let Some(v) = cookies.and_then(|c| HeaderValue::from_bytes(&c).ok()) {
            headers.insert(COOKIE, v);
        }
    }
    if more.headers != HeaderPolicy::None {
        let named = connection_named(viewer);
        for (name, value) in viewer {
            let n = name.as_str();
            let never = is_hop_by_hop(name)
                || named.contains(name)
                || EDGE_WRITTEN.contains(&n)
                || key.headers.iter().any(|k| k == n)
                || (exchange == Exchange::Fill && CACHE_HANDLED.contains(name));
            if !never && more.headers.includes(n) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    let host = match &keyed.viewer_host {
        Some(h) => HeaderValue::from_str(h).ok(),
        None if more.headers.includes("host") => viewer_host(uri, viewer),
        None => None,
    };
    Forwarded { headers, host }
}

/// The fields the viewer's Connection header names (RFC 9110 §7.6.1).
fn connection_named(viewer: &HeaderMap) -> Vec<HeaderName> {
    viewer
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok())
        .collect()
}

/// The host as the viewer sent it: the request target's authority (HTTP/2 :authority,
/// absolute-form), else the Host header.
fn viewer_host(uri: &Uri, viewer: &HeaderMap) -> Option<HeaderValue> {
    match uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => viewer.get(HOST).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_key::{cache_key, KeyInput};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn forward(
        uri: &str,
        viewer: &HeaderMap,
        key: &CacheKeyPolicy,
        more: &OriginRequestPolicy,
        exchange: Exchange,
    ) -> (KeyedRequest, Option<String>, Forwarded) {
        let uri: Uri = uri.parse().unwrap();
        let keyed = cache_key(&KeyInput {
            distribution: "d",
            uri: &uri,
            headers: viewer,
            policy: key,
            default_root_object: None,
        })
        .unwrap();
        let policies = Policies {
            cache_key: key,
            origin_request: more,
        };
        let query = forwarded_query(uri.query(), keyed.query.as_deref(), policies).unwrap();
        let fwd = forwarded_headers(&keyed, &uri, viewer, policies, exchange);
        (keyed, query, fwd)
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        h.keys().map(|n| n.as_str()).collect()
    }

    #[test]
    fn without_a_policy_exactly_the_key_is_forwarded() {
        let key = CacheKeyPolicy {
            headers: vec!["accept-language".into()],
            ..CacheKeyPolicy::default()
        };
        let viewer = headers(&[
            ("accept-language", "fr"),
            ("user-agent", "ua"),
            ("cookie", "a=1"),
        ]);
        let (keyed, q, f) = forward(
            "/p?x=1",
            &viewer,
            &key,
            &OriginRequestPolicy::default(),
            Exchange::Fill,
        );
        assert_eq!(names(&f.headers), ["accept-language"]);
        assert_eq!((q, keyed.query), (None, None));
        assert!(f.host.is_none());
    }

    #[test]
    fn all_forwards_every_end_to_end_header_but_host_and_what_the_cache_answers() {
        let more = OriginRequestPolicy {
            headers: HeaderPolicy::All,
            ..OriginRequestPolicy::default()
        };
        let viewer = headers(&[
            ("host", "viewer.example"),
            ("authorization", "Bearer t"),
            ("x-trace", "1"),
            ("x-trace", "2"),
            ("connection", "x-secret, keep-alive"),
            ("x-secret", "s"),
            ("keep-alive", "300"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "p"),
            ("if-none-match", "\"v\""),
            ("range", "bytes=0-1"),
            ("cookie", "a=1"),
            ("via", "1.1 other"),
            ("x-forwarded-for", "10.0.0.1"),
            ("content-length", "0"),
            ("expect", "100-continue"),
        ]);
        let key = CacheKeyPolicy::default();
        let (_, _, fill) = forward("/p", &viewer, &key, &more, Exchange::Fill);
        assert_eq!(names(&fill.headers), ["authorization", "x-trace"]);
        let both: Vec<_> = fill.headers.get_all("x-trace").iter().collect();
        assert_eq!(both, ["1", "2"], "every value, in order");
        assert!(fill.host.is_none(), "all: the origin's own Host");
        let (_, _, pass) = forward("/p", &viewer, &key, &more, Exchange::PassThrough);
        assert_eq!(
            names(&pass.headers),
            ["authorization", "x-trace", "if-none-match", "range"],
            "a pass-through carries the viewer's preconditions"
        );
    }

    #[test]
    fn keyed_headers_keep_their_keyed_value() {
        // accept-encoding keyed (normalised) and forwarded by "all": the keyed form wins,
        // also when the key holds it as absent.
        let key = CacheKeyPolicy {
            headers: vec!["accept-encoding".into()],
            ..CacheKeyPolicy::default()
        };
        let more = OriginRequestPolicy {
            headers: HeaderPolicy::All,
            ..OriginRequestPolicy::default()
        };
        let gzip = headers(&[("accept-encoding", "gzip, deflate")]);
        let (_, _, f) = forward("/", &gzip, &key, &more, Exchange::Fill);
        assert_eq!(f.headers["accept-encoding"], "gzip");
        let deflate = headers(&[("accept-encoding", "deflate")]);
        let (_, _, f) = forward("/", &deflate, &key, &more, Exchange::Fill);
        assert!(f.headers.get("accept-encoding").is_none());
    }

    #[test]
    fn host_is_sent_as_keyed_or_as_the_viewer_sent_it() {
        let viewer = headers(&[("host", "Viewer.Example:8080")]);
        let keyed_host = CacheKeyPolicy {
            headers: vec!["host".into()],
            ..CacheKeyPolicy::default()
        };
        let none = OriginRequestPolicy::default();
        let (_, _, f) = forward("/", &viewer, &keyed_host, &none, Exchange::Fill);
        assert_eq!(f.host.unwrap(), "viewer.example");
        let all_viewer = OriginRequestPolicy {
            headers: HeaderPolicy::AllViewer,
            ..OriginRequestPolicy::default()
        };
        let key = CacheKeyPolicy::default();
        let (k, _, f) = forward("/", &viewer, &key, &all_viewer, Exchange::Fill);
        assert_eq!(f.host.unwrap(), "Viewer.Example:8080");
        assert!(k.viewer_host.is_none(), "forwarded, not keyed");
        assert!(
            f.headers.get("host").is_none(),
            "Host is written once, by the edge"
        );
        let (_, _, f) = forward(
            "http://abs.example/x",
            &viewer,
            &key,
            &all_viewer,
            Exchange::Fill,
        );
        assert_eq!(f.host.unwrap(), "abs.example");
        let allow = OriginRequestPolicy {
            headers: HeaderPolicy::AllowList(vec!["host".into()]),
            ..OriginRequestPolicy::default()
        };
        assert!(forward("/", &viewer, &key, &allow, Exchange::Fill)
            .2
            .host
            .is_some());
        let except = OriginRequestPolicy {
            headers: HeaderPolicy::AllExcept(vec!["x-a".into()]),
            ..OriginRequestPolicy::default()
        };
        assert!(forward("/", &viewer, &key, &except, Exchange::Fill)
            .2
            .host
            .is_none());
    }

    #[test]
    fn queries_and_cookies_are_the_union_in_viewer_order() {
        let key = CacheKeyPolicy {
            query_strings: ListPolicy::AllowList(vec!["b".into()]),
            cookies: ListPolicy::AllowList(vec!["s".into()]),
            ..CacheKeyPolicy::default()
        };
        let more = OriginRequestPolicy {
            query_strings: ListPolicy::AllExcept(vec!["utm".into()]),
            cookies: ListPolicy::AllowList(vec!["t".into()]),
            ..OriginRequestPolicy::default()
        };
        let viewer = headers(&[("cookie", "t=2; x=9"), ("cookie", "s=1")]);
        let (keyed, q, f) = forward("/p?a=1&utm=x&b=2", &viewer, &key, &more, Exchange::Fill);
        assert_eq!(
            keyed.query.as_deref(),
            Some("b=2"),
            "only the key's in the key"
        );
        assert_eq!(q.as_deref(), Some("a=1&b=2"));
        assert_eq!(f.headers[COOKIE], "t=2; s=1");
        // Without added cookies, the keyed Cookie is what goes.
        let (_, _, f) = forward(
            "/",
            &viewer,
            &key,
            &OriginRequestPolicy::default(),
            Exchange::Fill,
        );
        assert_eq!(f.headers[COOKIE], "s=1");
        // A bad escape in a parameter only the policy forwards is still refused.
        let uri: Uri = "/p?a=%zz".parse().unwrap();
        let policies = Policies {
            cache_key: &key,
            origin_request: &more,
        };
        assert!(forwarded_query(uri.query(), None, policies).is_err());
    }
}
