//! Invalidation after unsafe methods (RFC 9111 §4.4): which stored paths a non-error
//! response to an unsafe request makes the cache drop. The target URI itself always, and
//! the URIs in Location and Content-Location when they have the target's origin: relative
//! references are resolved against the request path (RFC 3986 §5.2), absolute ones count
//! only when their authority is the request's. Paths are returned without their query,
//! because the edge invalidates every stored variant of a path.
//!
//! Returned paths have their dot segments removed (RFC 3986 §5.2.4) but are otherwise as
//! the origin wrote them (no percent-encoding normalisation): the caller brings them into
//! the form of its keys (e.g. `cache_key::normalize_path`) before matching.

use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderMap, Method, StatusCode};

/// Safe methods (RFC 9110 §9.2.1): GET, HEAD, OPTIONS and TRACE. Every other method,
/// including an unknown one, counts as unsafe (RFC 9111 §4.4 includes "methods whose
/// safety is unknown").
pub fn is_safe(method: &Method) -> bool {
    [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE].contains(method)
}

/// The paths whose stored responses must be invalidated after a response with `status` to
/// a `method` request for `request_path` (origin-form; a query is ignored) with authority
/// `request_authority` (the Host, `host[:port]`), given the response's fields `resp`.
///
/// Empty when the method is safe or the status is not a non-error one (RFC 9111 §4.4: only
/// 2xx and 3xx invalidate). Otherwise the request's own path (when it is origin-form;
/// empty means "/"), then the path of each Location and Content-Location field line that
/// refers to the same origin, without repeats and in that order:
///
/// - A relative reference (`/a`, `b/c`, `../d`, `?q`) is resolved against the request path
///   (RFC 3986 §5.2).
/// - An absolute URI (`http://h/a`) or network-path reference (`//h/a`) counts only when
///   its scheme is http or https and its authority equals `request_authority`, ignoring
///   ASCII case, an empty port and (for absolute URIs) the scheme's default port
///   (RFC 3986 §6.2.3; RFC 9110 §4.2.3). The scheme is not compared: the edge does not key
///   by scheme. Without `request_authority` no absolute URI counts.
/// - Anything else is ignored: other hosts, user info, other schemes, values with spaces,
///   control characters or non-ASCII bytes, and unparseable references (RFC 9111 §4.4:
///   a cache MUST NOT invalidate URIs of another origin).
///
/// Fragments and queries are dropped; an empty path is "/".
pub fn invalidation_targets(
    method: &Method,
    status: StatusCode,
    request_path: &str,
    request_authority: Option<&str>,
    resp: &HeaderMap,
) -> Vec<String> {
    if is_safe(method) || !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let base = strip_query(request_path);
    let base = if base.is_empty() { "/" } else { base };
    let mut targets: Vec<String> = Vec::new();
    if base.starts_with('/') {
        targets.push(base.to_string());
    }
    for field in [LOCATION, CONTENT_LOCATION] {
        for value in resp.get_all(field) {
            let Some(path) = same_origin_path(value.as_bytes(), base, request_authority) else {
                continue;
            };
            if !targets.contains(&path) {
                targets.push(path);
            }
        }
    }
    targets
}

/// The path a Location or Content-Location value refers to, when it is on the request's
/// origin.
fn same_origin_path(value: &[u8], base: &str, authority: Option<&str>) -> Option<String> {
    let value = trim_ows(value);
    // URI-reference characters are visible ASCII (RFC 3986 §2); anything else is not a
    // reference this function can resolve safely.
    if !value.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return None;
    }
    let reference = std::str::from_utf8(value).ok()?;
    // RFC 3986 §5.2.2 keeps the fragment out of resolution; the query is not part of
    // the stored path.
    let reference = reference.split('#').next().unwrap_or_default();
    let path = if let Some(rest) = reference.strip_prefix("//") {
        // Network-path reference: the base's scheme, whatever it is.
        let (auth, path) = split_authority(rest);
        if !same_authority(auth, authority?, None) {
            return None;
        }
        absolute_path(path)
    } else if let Some((scheme, rest)) = split_scheme(reference)? {
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        // An http(s) URI has an authority (RFC 9110 §4.2.1, §4.2.2).
        let rest = rest.strip_prefix("//")?;
        let (auth, path) = split_authority(rest);
        if !same_authority(auth, authority?, Some(default_port)) {
            return None;
        }
        absolute_path(path)
    } else {
        let path = strip_query(reference);
        if path.is_empty() {
            // RFC 3986 §5.2.2: an empty path keeps the base path.
            base.to_string()
        } else if path.starts_with('/') {
            remove_dot_segments(path)
        } else {
            remove_dot_segments(&merge(base, path))
        }
    };
    path.starts_with('/').then_some(path)
}

/// Splits `scheme:rest` (RFC 3986 §3.1). Ok(None) when the reference has no scheme (no
/// ':' before the first '/', '?' or '#'); None when what precedes the ':' is not a
/// scheme, since a relative reference's first segment cannot contain ':' (RFC 3986 §4.2).
fn split_scheme(reference: &str) -> Option<Option<(&str, &str)>> {
    let Some(end) = reference.find([':', '/', '?', '#']) else {
        return Some(None);
    };
    if !reference[end..].starts_with(':') {
        return Some(None);
    }
    let scheme = &reference[..end];
    let mut chars = scheme.bytes();
    let valid = chars.next().is_some_and(|b| b.is_ascii_alphabetic())
        && chars.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid {
        return None;
    }
    Some(Some((scheme, &reference[end + 1..])))
}

/// Splits `authority path-abempty [?query]` after "//" at the first '/' or '?'.
fn split_authority(rest: &str) -> (&str, &str) {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    rest.split_at(end)
}

/// The path of an http(s) URI: query dropped, dot segments removed, empty meaning "/"
/// (RFC 9110 §4.2.3).
fn absolute_path(path: &str) -> String {
    let path = strip_query(path);
    if path.is_empty() {
        "/".to_string()
    } else {
        remove_dot_segments(path)
    }
}

/// Do two authorities name the same host and port? ASCII case is ignored, an empty port
/// is no port, and a port equal to `default_port` is no port (RFC 3986 §6.2.3). User info
/// and empty hosts never match.
fn same_authority(a: &str, b: &str, default_port: Option<u16>) -> bool {
    match (
        normalize_authority(a, default_port),
        normalize_authority(b, default_port),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn normalize_authority(authority: &str, default_port: Option<u16>) -> Option<String> {
    if authority.contains('@') {
        return None;
    }
    let lower = authority.to_ascii_lowercase();
    // A port follows the last ':' unless the authority ends in an IP literal's ']'.
    let (host, port) = match lower.rsplit_once(':') {
        Some((host, port)) if !lower.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port))
        }
        _ => (lower.as_str(), None),
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        // Leading zeros are the same port; a number too large is kept as written.
        Some(p) => match p.parse::<u32>() {
            Ok(n) if default_port.is_some_and(|d| u32::from(d) == n) => None,
            Ok(n) => Some(n.to_string()),
            Err(_) => Some(p.to_string()),
        },
    };
    Some(match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// The part before '?' (and '#').
fn strip_query(target: &str) -> &str {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    &target[..end]
}

/// RFC 3986 §5.2.3: the base path up to and including its last '/', then the reference.
fn merge(base: &str, reference: &str) -> String {
    match base.rfind('/') {
        Some(i) => format!("{}{reference}", &base[..=i]),
        None => format!("/{reference}"),
    }
}

/// RFC 3986 §5.2.4, step by step as written there.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    let pop = |output: &mut String| match output.rfind('/') {
        Some(i) => output.truncate(i),
        None => output.clear(),
    };
    while !input.is_empty() {
        if let Some(rest) = input
            .strip_prefix("../")
            .or_else(|| input.strip_prefix("./"))
        {
            // A.
            input = rest;
        } else if let Some(rest) = input.strip_prefix("/./") {
            // B: "/./" becomes "/".
            input = &input[input.len() - rest.len() - 1..];
        } else if input == "/." {
            input = "/";
        } else if let Some(rest) = input.strip_prefix("/../") {
            // C: "/../" becomes "/" and the last output segment goes.
            input = &input[input.len() - rest.len() - 1..];
            pop(&mut output);
        } else if input == "/.." {
            input = "/";
            pop(&mut output);
        } else if input == "." || input == ".." {
            // D.
            input = "";
        } else {
            // E: the first segment, with its leading '/', moves to the output.
            let from = usize::from(input.starts_with('/'));
            let end = input[from..].find('/').map_or(input.len(), |i| i + from);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

/// Removes OWS (spaces and horizontal tabs, RFC 9110 §5.6.3) at both ends.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        h
    }

    /// Targets of a 201 to POST /a/b/c?x=1 on example.com with these fields.
    fn post(pairs: &[(&str, &[u8])]) -> Vec<String> {
        invalidation_targets(
            &Method::POST,
            StatusCode::CREATED,
            "/a/b/c?x=1",
            Some("Example.com"),
            &map(pairs),
        )
    }

    #[test]
    fn safe_methods() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(is_safe(&m), "{m}");
        }
        for m in [
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::CONNECT,
            Method::from_bytes(b"PURGE").unwrap(),
            Method::from_bytes(b"get").unwrap(),
        ] {
            assert!(!is_safe(&m), "{m}");
        }
    }

    #[test]
    fn safe_methods_and_error_statuses_invalidate_nothing() {
        let h = map(&[("location", b"/x")]);
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(invalidation_targets(&m, StatusCode::OK, "/a", Some("h"), &h).is_empty());
        }
        for s in [100, 101, 103, 400, 404, 409, 500, 503, 599] {
            let s = StatusCode::from_u16(s).unwrap();
            assert!(
                invalidation_targets(&Method::POST, s, "/a", Some("h"), &h).is_empty(),
                "{s}"
            );
        }
        for s in [200, 201, 204, 299, 301, 302, 303, 304, 307, 399] {
            let s = StatusCode::from_u16(s).unwrap();
            assert_eq!(
                invalidation_targets(&Method::DELETE, s, "/a", Some("h"), &h),
                ["/a", "/x"],
                "{s}"
            );
        }
    }

    #[test]
    fn own_path_without_query() {
        assert_eq!(post(&[]), ["/a/b/c"]);
        let t = |path: &str| {
            invalidation_targets(&Method::PUT, StatusCode::OK, path, None, &HeaderMap::new())
        };
        assert_eq!(t(""), ["/"]);
        assert_eq!(t("?a=1"), ["/"]);
        assert_eq!(t("/x?"), ["/x"]);
        assert!(t("*").is_empty());
    }

    #[test]
    fn relative_references_resolve_against_the_request_path() {
        assert_eq!(post(&[("location", b"/new/1?a=b#f")]), ["/a/b/c", "/new/1"]);
        assert_eq!(post(&[("location", b"d")]), ["/a/b/c", "/a/b/d"]);
        assert_eq!(post(&[("location", b"./d/")]), ["/a/b/c", "/a/b/d/"]);
        assert_eq!(post(&[("location", b"../d")]), ["/a/b/c", "/a/d"]);
        assert_eq!(post(&[("location", b"../../../../d")]), ["/a/b/c", "/d"]);
        assert_eq!(post(&[("location", b".")]), ["/a/b/c", "/a/b/"]);
        assert_eq!(post(&[("location", b"..")]), ["/a/b/c", "/a/"]);
        assert_eq!(post(&[("location", b"/x/./y/../z")]), ["/a/b/c", "/x/z"]);
        assert_eq!(post(&[("location", b"d;p?q")]), ["/a/b/c", "/a/b/d;p"]);
        assert_eq!(post(&[("location", b"g:h")]), ["/a/b/c"]);
        assert_eq!(post(&[("location", b"./g:h")]), ["/a/b/c", "/a/b/g:h"]);
        // Empty path: the request's own path, not repeated.
        assert_eq!(post(&[("location", b"?y=2")]), ["/a/b/c"]);
        assert_eq!(post(&[("location", b"#frag")]), ["/a/b/c"]);
        assert_eq!(post(&[("location", b"")]), ["/a/b/c"]);
        // RFC 3986 §5.4.1 examples (base http://a/b/c/d;p?q).
        let base = |r: &[u8]| {
            invalidation_targets(
                &Method::POST,
                StatusCode::OK,
                "/b/c/d;p?q",
                Some("a"),
                &map(&[("location", r)]),
            )
            .pop()
            .unwrap()
        };
        for (r, want) in [
            ("g", "/b/c/g"),
            ("./g", "/b/c/g"),
            ("g/", "/b/c/g/"),
            ("/g", "/g"),
            ("//a/g", "/g"),
            ("http://a/g", "/g"),
            ("?y", "/b/c/d;p"),
            ("g?y", "/b/c/g"),
            ("g#s", "/b/c/g"),
            (";x", "/b/c/;x"),
            ("g;x", "/b/c/g;x"),
            (".", "/b/c/"),
            ("./", "/b/c/"),
            ("..", "/b/"),
            ("../", "/b/"),
            ("../g", "/b/g"),
            ("../..", "/"),
            ("../../", "/"),
            ("../../g", "/g"),
            ("../../../g", "/g"),
            ("/./g", "/g"),
            ("/../g", "/g"),
            ("g.", "/b/c/g."),
            (".g", "/b/c/.g"),
            ("g..", "/b/c/g.."),
            ("..g", "/b/c/..g"),
            ("./../g", "/b/g"),
            ("./g/.", "/b/c/g/"),
            ("g/./h", "/b/c/g/h"),
            ("g/../h", "/b/c/h"),
            ("g;x=1/./y", "/b/c/g;x=1/y"),
            ("g;x=1/../y", "/b/c/y"),
        ] {
            assert_eq!(base(r.as_bytes()), want, "{r}");
        }
    }

    #[test]
    fn absolute_uris_count_only_on_the_same_authority() {
        assert_eq!(
            post(&[("location", b"https://EXAMPLE.com/p?q")]),
            ["/a/b/c", "/p"]
        );
        assert_eq!(
            post(&[("location", b"http://example.com")]),
            ["/a/b/c", "/"]
        );
        assert_eq!(
            post(&[("location", b"HTTP://example.com:80/p")]),
            ["/a/b/c", "/p"]
        );
        assert_eq!(
            post(&[("location", b"https://example.com:443/p")]),
            ["/a/b/c", "/p"]
        );
        assert_eq!(
            post(&[("location", b"http://example.com:/p")]),
            ["/a/b/c", "/p"]
        );
        assert_eq!(
            post(&[("location", b"//example.com/p/../q")]),
            ["/a/b/c", "/q"]
        );
        for other in [
            &b"http://other.com/p"[..],
            b"https://example.com.evil/p",
            b"http://example.com:8080/p",
            b"https://example.com:80/p",
            b"//example.com:80/p",
            b"http://user@example.com/p",
            b"ftp://example.com/p",
            b"mailto:x@example.com",
            b"http:/p",
            b"http:p",
            b"http:///p",
            b"1http://example.com/p",
            b"/p q",
            b"/caf\xc3\xa9",
            b"\"/p\"x y",
        ] {
            assert_eq!(post(&[("location", other)]), ["/a/b/c"], "{other:?}");
        }
        // Explicit ports match when both sides agree.
        let t = |auth: &str, loc: &[u8]| {
            invalidation_targets(
                &Method::PUT,
                StatusCode::NO_CONTENT,
                "/",
                Some(auth),
                &map(&[("content-location", loc)]),
            )
        };
        assert_eq!(t("h:8080", b"http://H:8080/x"), ["/", "/x"]);
        assert_eq!(t("h:443", b"https://h/x"), ["/", "/x"]);
        assert_eq!(t("h:443", b"http://h/x"), ["/"]);
        assert_eq!(t("[::1]:8080", b"http://[::1]:08080/x"), ["/", "/x"]);
        assert_eq!(t("[::1]", b"http://[::1]/x"), ["/", "/x"]);
        assert_eq!(t("[::1]", b"http://[::2]/x"), ["/"]);
        assert_eq!(t("", b"http:///x"), ["/"]);
        // Without the request authority, only relative references count.
        let h = map(&[("location", b"http://h/x"), ("content-location", b"/y")]);
        assert_eq!(
            invalidation_targets(&Method::POST, StatusCode::OK, "/", None, &h),
            ["/", "/y"]
        );
    }

    #[test]
    fn both_fields_and_every_line_count_without_repeats() {
        assert_eq!(
            post(&[
                ("location", b"/l"),
                ("content-location", b" /cl "),
                ("content-location", b"http://example.com/l"),
                ("location", b"http://other/x"),
                ("location", b"/a/b/c?other"),
            ]),
            ["/a/b/c", "/l", "/cl"]
        );
    }

    #[test]
    fn dot_segments() {
        for (input, want) in [
            ("/a/b/c/./../../g", "/a/g"),
            ("mid/content=5/../6", "mid/6"),
            ("/..", "/"),
            ("/.", "/"),
            ("/a//../b", "/a/b"),
            ("../a", "a"),
            ("", ""),
        ] {
            assert_eq!(remove_dot_segments(input), want, "{input}");
        }
    }

    /// Generated references, paths and authorities: nothing panics and every target is an
    /// origin-form path without query.
    #[test]
    fn never_panics_on_generated_input() {
        const ALPHABET: &[&str] = &[
            "/", ".", "..", "?", "#", ":", "//", "@", "[", "]", "a", "H", "http", "https", "80",
            ":443", "%2e", " ", "\u{e9}", ";", "",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut gen = |max: u64| -> String {
            let len = next() % max;
            (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect()
        };
        for _ in 0..4000 {
            let path = gen(6);
            let auth = gen(4);
            let loc = gen(8);
            let Ok(value) = HeaderValue::from_str(&loc) else {
                continue;
            };
            let mut h = HeaderMap::new();
            h.insert(LOCATION, value.clone());
            h.insert(CONTENT_LOCATION, value);
            for a in [None, Some(auth.as_str())] {
                for t in invalidation_targets(&Method::POST, StatusCode::OK, &path, a, &h) {
                    assert!(t.starts_with('/') && !t.contains(['?', '#']), "{t:?}");
                }
            }
        }
    }
}
