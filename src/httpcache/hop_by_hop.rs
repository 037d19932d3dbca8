//! Hop-by-hop fields (RFC 9110 §7.6.1): fields that describe one connection and must not be
//! forwarded or stored, namely the fixed set below plus every field named in Connection.

use http::header::{HeaderName, CONNECTION};
use http::HeaderMap;

/// Fields that are always connection-specific: Connection and the fields RFC 9110 §7.6.1
/// lists (Proxy-Connection, Keep-Alive, TE, Transfer-Encoding, Upgrade), plus Trailer
/// (RFC 9110 §6.6.2) and Proxy-Authenticate / Proxy-Authorization (RFC 9110 §11.7), which
/// concern only the next hop. Lower case, as `HeaderName::as_str` returns names.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// True for the fixed hop-by-hop fields (not for those a Connection field names).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// Removes the fixed hop-by-hop fields and every field named in any Connection field line
/// (comma-separated, case-insensitive; names that are not valid field names are ignored).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .filter_map(|option| HeaderName::from_bytes(option.trim_ascii()).ok())
        .collect();
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    for name in &named {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        h
    }

    #[test]
    fn fixed_set() {
        for name in HOP_BY_HOP {
            assert!(is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
        assert!(is_hop_by_hop(&header::TRANSFER_ENCODING));
        assert!(is_hop_by_hop(
            &HeaderName::from_bytes(b"Keep-Alive").unwrap()
        ));
        for name in [
            header::CONTENT_LENGTH,
            header::CACHE_CONTROL,
            header::ETAG,
            header::AUTHORIZATION,
        ] {
            assert!(!is_hop_by_hop(&name), "{name}");
        }
    }

    #[test]
    fn strips_fixed_and_connection_named_fields() {
        let mut h = map(&[
            ("connection", b"close, X-Private-Hop , ,x-other"),
            ("connection", b"Upgrade, bad name, \xff, x-third"),
            ("keep-alive", b"timeout=5"),
            ("proxy-connection", b"keep-alive"),
            ("te", b"trailers"),
            ("trailer", b"x-checksum"),
            ("transfer-encoding", b"chunked"),
            ("upgrade", b"h2c"),
            ("proxy-authenticate", b"Basic"),
            ("proxy-authorization", b"Basic abc"),
            ("x-private-hop", b"1"),
            ("x-other", b"2"),
            ("x-other", b"3"),
            ("x-third", b"4"),
            ("x-keep", b"5"),
            ("content-type", b"text/plain"),
            ("cache-control", b"max-age=5"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["cache-control", "content-type", "x-keep"]);
    }

    #[test]
    fn connection_can_name_end_to_end_fields() {
        let mut h = map(&[
            ("connection", b"cache-control"),
            ("cache-control", b"no-store"),
        ]);
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn nothing_to_strip() {
        let mut h = map(&[("etag", b"\"x\"")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        let mut empty = HeaderMap::new();
        strip_hop_by_hop(&mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn never_panics() {
        for v in [
            &b""[..],
            b",",
            b",,,,",
            b" ",
            b"\t,\t",
            b"\x80\xff",
            b"a\tb",
            b"\"x\"",
        ] {
            let mut h = map(&[("connection", v), ("x", b"1")]);
            strip_hop_by_hop(&mut h);
            assert_eq!(h.len(), 1);
        }
    }
}
