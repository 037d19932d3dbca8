//! The value rules of the configuration, as pure functions on single values: names, host
//! names, origin URLs and paths, header names and values, path patterns, listen addresses,
//! and generated distribution ids. Each returns the normalised value or a message that
//! names the value; the loader adds the location. File and quick mode share them.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::model::Scheme;

/// Edge name: `[A-Za-z0-9._-]{1,64}` (it goes into `Via` and log lines verbatim).
pub(crate) fn edge_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 64 {
        return Err(format!("{s:?} must be 1 to 64 characters long"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "{s:?} may contain only letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// A DNS name (letters, digits, '-' in labels of 1 to 63 characters, at most 253 in all),
/// returned lower-cased. `underscore` also admits '_' (container and service names).
/// `[edge] admin_token`: 16 to 256 characters of the bearer token alphabet (RFC 6750
/// b64token: letters, digits and `-._~+/`, '=' only at the end).
pub(crate) fn admin_token(s: &str) -> Result<(), String> {
    if s.len() < 16 || s.len() > 256 {
        return Err(format!(
            "must be 16 to 256 characters long (got {})",
            s.len()
        ));
    }
    let body = s.trim_end_matches('=');
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Err(
            "only letters, digits and -._~+/ are allowed ('=' only at the end)".to_string(),
        );
    }
    Ok(())
}

pub(crate) fn dns_name(s: &str, underscore: bool) -> Result<String, String> {
    if s.is_empty() {
        return Err("a host name must not be empty".to_string());
    }
    if !s.is_ascii() {
        return Err(format!(
            "{s:?} is not ASCII; write an internationalised name in its xn-- form"
        ));
    }
    let lower = s.to_ascii_lowercase();
    if lower.len() > 253 {
        return Err(format!("{s:?} is longer than 253 characters"));
    }
    if lower.ends_with('.') {
        return Err(format!("{s:?} must not end with '.'"));
    }
    for label in lower.split('.') {
        if label.is_empty() {
            return Err(format!("{s:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("{s:?} has a label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || (underscore && b == b'_'))
        {
            return Err(format!(
                "{s:?} is not a valid host name (letters, digits, '-' and '.' only)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("{s:?} has a label that starts or ends with '-'"));
        }
    }
    Ok(lower)
}

/// A distribution alias: a host name, or `*.` followed by one; lower-cased.
pub(crate) fn alias(s: &str) -> Result<String, String> {
    if s.contains(':') {
        return Err(format!(
            "{s:?}: an alias is a host name without a port or scheme"
        ));
    }
    if s.contains('/') {
        return Err(format!("{s:?}: an alias is a host name, not a URL"));
    }
    let (wild, rest) = match s.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if rest.contains('*') {
        return Err(format!(
            "{s:?}: a wildcard is allowed only as a leading \"*.\""
        ));
    }
    let name = dns_name(rest, false)?;
    Ok(if wild { format!("*.{name}") } else { name })
}

/// Distribution id: `[a-z0-9][a-z0-9-]{0,62}`, and not ending in '-' because it becomes
/// the first label of the assigned domain.
pub(crate) fn distribution_id(s: &str) -> Result<(), String> {
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if s.is_empty() || s.len() > 63 || !ok_chars || s.starts_with('-') || s.ends_with('-') {
        return Err(format!(
            "{s:?} is not a valid distribution id: 1 to 63 lower-case letters, digits and '-', \
             not starting or ending with '-'"
        ));
    }
    Ok(())
}

/// Origin and origin group ids: `[A-Za-z0-9_.-]+`, at most 128 characters.
pub(crate) fn origin_id(s: &str) -> Result<(), String> {
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if s.is_empty() || s.len() > 128 || !ok_chars {
        return Err(format!(
            "{s:?} is not a valid id: 1 to 128 letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

/// A stable id for a distribution without one: "d" and 13 base32 characters of the BLAKE3
/// hash of `seed` (its first alias, or its first origin's URL).
pub(crate) fn generated_id(seed: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let hash = blake3::hash(seed.as_bytes());
    let mut out = String::from("d");
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in hash.as_bytes() {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
            if out.len() == 14 {
                return out;
            }
        }
        acc &= (1 << bits) - 1;
    }
    out
}

/// `ip:port`, for the listeners. Host names are refused: a listener binds an address.
pub(crate) fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "{s:?} is not an IP address and port, such as \"127.0.0.1:8080\" or \"[::1]:8080\" \
             (host names are not resolved)"
        )
    })
}

/// An origin URL split up; `path` is "" or starts with '/', and is the caller's to refuse
/// or to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OriginUrl {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// `http[s]://host[:port][/path]`; user info, queries and fragments are refused.
pub(crate) fn origin_url(s: &str) -> Result<OriginUrl, String> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?} contains whitespace or control characters"));
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!(
            "{s:?} is not a URL; expected http://host[:port] or https://host[:port]"
        ));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => {
            return Err(format!(
                "unsupported scheme {scheme:?} in {s:?}: an origin URL must start with \
                 http:// or https://"
            ))
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(format!(
            "{s:?} contains user info (user@); set credentials with `headers` instead"
        ));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((v6, after)) = bracketed.split_once(']') else {
            return Err(format!("{s:?} has an unclosed '[' in its host"));
        };
        let ip: Ipv6Addr = v6
            .parse()
            .map_err(|_| format!("{s:?} has an invalid IPv6 address {v6:?}"))?;
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => {
                    return Err(format!(
                        "{s:?} has characters after ']' that are not a port"
                    ))
                }
            },
        };
        (ip.to_string(), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.contains(':') {
            return Err(format!(
                "{s:?}: write an IPv6 address in brackets, as in http://[::1]:8000"
            ));
        }
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        let host = if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            host.parse::<Ipv4Addr>()
                .map_err(|_| format!("{s:?} has an invalid IPv4 address {host:?}"))?
                .to_string()
        } else {
            dns_name(host, true).map_err(|e| format!("in {s:?}: {e}"))?
        };
        (host, port)
    };
    let port = match port {
        None => match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        },
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(format!("{s:?} has an invalid port {p:?} (1 to 65535)")),
        },
    };
    if tail.contains('#') {
        return Err(format!("{s:?} must not have a fragment ('#')"));
    }
    if tail.contains('?') {
        return Err(format!("{s:?} must not have a query string"));
    }
    Ok(OriginUrl {
        scheme,
        host,
        port,
        path: tail.to_string(),
    })
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'%'
        )
}

/// Only URL path characters, and every '%' starts a valid escape.
fn path_chars(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if !is_path_byte(c) {
            let shown = s.get(i..).and_then(|r| r.chars().next()).unwrap_or('?');
            return Err(format!(
                "{s:?} contains {shown:?}, which is not allowed in a URL path (percent-encode it)"
            ));
        }
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(|h| h.is_ascii_hexdigit());
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(format!(
                    "{s:?} has a '%' that is not followed by two hex digits"
                ));
            }
        }
    }
    Ok(())
}

/// Origin path prefix: "/a/b" — a leading '/', none trailing, no '.' or '..' segments,
/// no empty segments, no query or fragment.
pub(crate) fn origin_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("{s:?} must start with '/'"));
    }
    if s == "/" {
        return Err("\"/\" is no prefix; leave `path` out instead".to_string());
    }
    if s.ends_with('/') {
        return Err(format!("{s:?} must not end with '/'"));
    }
    if s.contains(['?', '#']) {
        return Err(format!("{s:?} must not contain '?' or '#'"));
    }
    for seg in s[1..].split('/') {
        match seg {
            "" => return Err(format!("{s:?} must not contain \"//\"")),
            "." | ".." => return Err(format!("{s:?} must not contain '.' or '..' segments")),
            _ => {}
        }
    }
    path_chars(s)
}

/// Object served for `/`: a relative object name, as CloudFront's default root object.
pub(crate) fn default_root_object(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 255 {
        return Err(format!("{s:?} must be 1 to 255 characters long"));
    }
    if s.starts_with('/') {
        return Err(format!(
            "{s:?} must not start with '/' (write \"index.html\", not \"/index.html\")"
        ));
    }
    if s.contains(['?', '#']) {
        return Err(format!("{s:?} must not contain '?' or '#'"));
    }
    path_chars(s)
}

/// Behaviour path pattern: 1 to 255 URL path characters, '*' and '?' being wildcards.
pub(crate) fn path_pattern(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 255 {
        return Err(format!("{s:?} must be 1 to 255 characters long"));
    }
    match s.bytes().find(|&b| !(is_path_byte(b) || b == b'?')) {
        Some(_) => {
            let bad = s
                .chars()
                .find(|&c| !(c.is_ascii() && (is_path_byte(c as u8) || c == '?')))
                .unwrap_or('?');
            Err(format!(
                "{s:?} contains {bad:?}; a path pattern may contain URL path characters, \
                 '*' and '?' only"
            ))
        }
        None => Ok(()),
    }
}

/// A custom origin header: a valid name that the edge does not manage itself (CloudFront's
/// refused list), and a valid value.
pub(crate) fn custom_header(name: &str, value: &str) -> Result<(), String> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{name:?} is not a valid header name"));
    }
    let lower = name.to_ascii_lowercase();
    if crate::httpcache::HOP_BY_HOP.contains(&lower.as_str()) {
        return Err(format!(
            "{name:?} is a hop-by-hop header and cannot be set on origin requests"
        ));
    }
    if [
        "host",
        "content-length",
        "via",
        "x-forwarded-for",
        "cache-control",
    ]
    .contains(&lower.as_str())
    {
        return Err(format!(
            "{name:?} is managed by the edge and cannot be set as a custom origin header"
        ));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "the value of {name:?} contains characters not allowed in a header (such as a \
             line break)"
        ));
    }
    Ok(())
}

/// A request header in the cache key, returned lower-cased.
pub(crate) fn key_header(name: &str) -> Result<String, String> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{name:?} is not a valid header name"));
    }
    let lower = name.to_ascii_lowercase();
    if crate::httpcache::HOP_BY_HOP.contains(&lower.as_str()) || lower == "content-length" {
        return Err(format!(
            "{name:?} cannot be part of the cache key (it describes the connection or the body)"
        ));
    }
    if lower == "cookie" {
        return Err("\"cookie\" cannot be listed in `headers`; use `cookies`".to_string());
    }
    Ok(lower)
}

/// A header an origin request policy names (allow or all_except), returned lower-cased.
/// Headers the edge never copies from the viewer are refused with the reason.
pub(crate) fn forwarded_header(name: &str) -> Result<String, String> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{name:?} is not a valid header name"));
    }
    let lower = name.to_ascii_lowercase();
    let why = match lower.as_str() {
        "cookie" => Some("cookies are forwarded by `cookies`, not `headers`"),
        "content-length" | "expect" => Some("the edge frames request bodies itself"),
        "x-forwarded-for" | "via" => {
            Some("the edge always sends it, extended with the viewer's own value")
        }
        n if crate::httpcache::HOP_BY_HOP.contains(&n) => {
            Some("it is hop-by-hop (it describes the viewer's connection)")
        }
        _ => None,
    };
    match why {
        Some(why) => Err(format!("{name:?} cannot be listed here: {why}")),
        None => Ok(lower),
    }
}

/// A cookie name (an HTTP token).
pub(crate) fn cookie_name(s: &str) -> Result<(), String> {
    let token = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            )
    };
    if s.is_empty() || !s.bytes().all(token) {
        return Err(format!("{s:?} is not a valid cookie name"));
    }
    Ok(())
}

/// A query string parameter name: non-empty, no separators, spaces or control characters.
pub(crate) fn query_name(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.chars()
            .any(|c| matches!(c, '&' | '=' | '#') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{s:?} is not a valid query string parameter name (non-empty; no '&', '=', '#' \
             or spaces)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(dns_name("Example.COM", false).as_deref(), Ok("example.com"));
        assert_eq!(dns_name("localhost", false).as_deref(), Ok("localhost"));
        for bad in [
            "",
            "a..b",
            "a.",
            "-a.b",
            "a-.b",
            "a_b.c",
            "é.com",
            &"a".repeat(64),
        ] {
            assert!(dns_name(bad, false).is_err(), "{bad}");
        }
        assert!(dns_name("my_service", true).is_ok());
        assert_eq!(
            alias("*.IMG.example.com").as_deref(),
            Ok("*.img.example.com")
        );
        for bad in [
            "a.com:80",
            "http://a.com",
            "a.*.com",
            "*a.com",
            "*",
            "a.com/x",
        ] {
            assert!(alias(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids() {
        assert!(distribution_id("site-1").is_ok());
        for bad in ["", "-a", "a-", "Site", "a_b", &"a".repeat(64)] {
            assert!(distribution_id(bad).is_err(), "{bad}");
        }
        assert!(origin_id("Web_1.a-b").is_ok());
        assert!(origin_id("a b").is_err());
        let g = generated_id("www.example.com");
        assert_eq!(g.len(), 14);
        assert!(g.starts_with('d'));
        assert!(distribution_id(&g).is_ok());
        assert_eq!(g, generated_id("www.example.com"));
        assert_ne!(g, generated_id("www.example.org"));
    }

    #[test]
    fn origin_urls() {
        let u = origin_url("http://127.0.0.1:8000").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
            (Scheme::Http, "127.0.0.1", 8000, "")
        );
        let u = origin_url("HTTPS://Example.com/static/x").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
            (Scheme::Https, "example.com", 443, "/static/x")
        );
        let u = origin_url("http://[::1]:9000/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 9000, "/")
        );
        let u = origin_url("http://[::1]").unwrap();
        assert_eq!(u.port, 80);
        for (bad, says) in [
            ("ftp://x", "http:// or https://"),
            ("127.0.0.1:8000", "not a URL"),
            ("http://", "no host"),
            ("http://:80", "no host"),
            ("http://u:p@h", "user info"),
            ("http://h:0", "invalid port"),
            ("http://h:99999", "invalid port"),
            ("http://h:+80", "invalid port"),
            ("http://h:", "invalid port"),
            ("http://h?x=1", "query"),
            ("http://h/#x", "fragment"),
            ("http://::1:80", "brackets"),
            ("http://[::1", "unclosed"),
            ("http://[::1]x", "port"),
            ("http://[zz]", "IPv6"),
            ("http://300.1.1.1", "IPv4"),
            ("http://a b", "whitespace"),
            ("http://-a.com", "'-'"),
        ] {
            let e = origin_url(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn paths_and_patterns() {
        assert!(origin_path("/static").is_ok());
        assert!(origin_path("/a/b%20c").is_ok());
        for bad in [
            "static", "/", "/a/", "/a?b", "/a#b", "/a/../b", "/a/./b", "/..", "//a", "/a b",
            "/a%zz", "/é",
        ] {
            assert!(origin_path(bad).is_err(), "{bad}");
        }
        assert!(default_root_object("index.html").is_ok());
        for bad in ["", "/index.html", "a?b", "a#b", "a b"] {
            assert!(default_root_object(bad).is_err(), "{bad}");
        }
        for ok in ["/images/*", "*.jpg", "/a?c", "*", "images/x.png"] {
            assert!(path_pattern(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in ["", "/a b", "/a#b", "/é", long.as_str()] {
            assert!(path_pattern(bad).is_err(), "{bad}");
        }
        assert!(path_pattern("/a b").unwrap_err().contains("' '"));
    }

    #[test]
    fn headers() {
        assert!(custom_header("X-Origin-Token", "secret").is_ok());
        for name in [
            "Host",
            "connection",
            "TE",
            "Content-Length",
            "via",
            "X-Forwarded-For",
            "Cache-Control",
            "Proxy-Authorization",
        ] {
            assert!(custom_header(name, "x").is_err(), "{name}");
        }
        assert!(custom_header("bad name", "x").is_err());
        assert!(custom_header("x-a", "a\r\nb").is_err());
        assert_eq!(
            key_header("Accept-Encoding").as_deref(),
            Ok("accept-encoding")
        );
        assert!(key_header("Cookie").unwrap_err().contains("cookies"));
        assert!(key_header("transfer-encoding").is_err());
        assert!(key_header("a b").is_err());
        assert!(cookie_name("session_id").is_ok());
        assert!(cookie_name("a=b").is_err());
        assert!(query_name("page").is_ok());
        assert!(query_name("a&b").is_err());
        assert!(query_name("").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert!(socket_addr("127.0.0.1:8080").is_ok());
        assert!(socket_addr("[::1]:8080").is_ok());
        assert!(socket_addr("localhost:8080")
            .unwrap_err()
            .contains("not resolved"));
        assert!(socket_addr("127.0.0.1").is_err());
    }
}
