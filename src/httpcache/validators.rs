//! Validators (RFC 9110 §8.8) of a stored response and the conditional request fields that
//! revalidate it (RFC 9111 §4.3.1): If-None-Match from ETag, If-Modified-Since from
//! Last-Modified. Only syntactically valid validators are used.

use http::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue};

use super::date::parse_http_date;

/// entity-tag (RFC 9110 §8.8.3): `[ "W/" ] DQUOTE *etagc DQUOTE`, where etagc is `%x21`,
/// `%x23-7E` or obs-text. Surrounding whitespace is not allowed.
pub fn is_valid_etag(value: &[u8]) -> bool {
    let opaque = value.strip_prefix(b"W/").unwrap_or(value);
    match opaque {
        [b'"', inner @ .., b'"'] => inner
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80),
        _ => false,
    }
}

/// The first ETag value, if valid.
fn etag(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers.get(ETAG).filter(|v| is_valid_etag(v.as_bytes()))
}

/// The first Last-Modified value, if it is a valid HTTP-date.
fn last_modified(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers
        .get(LAST_MODIFIED)
        .filter(|v| parse_http_date(*v).is_some())
}

/// True when the response carries a usable validator: a valid ETag or Last-Modified.
pub fn has_validator(headers: &HeaderMap) -> bool {
    etag(headers).is_some() || last_modified(headers).is_some()
}

/// [`has_validator`] over header fields as (lower-case name, value) pairs, in order (a
/// stored response's, without building a map on the hit path).
pub fn has_validator_in<'a>(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> bool {
    let (mut etag, mut last_modified) = (None, None);
    for (name, value) in fields {
        match name {
            "etag" if etag.is_none() => etag = Some(value),
            "last-modified" if last_modified.is_none() => last_modified = Some(value),
            _ => {}
        }
    }
    etag.is_some_and(is_valid_etag) || last_modified.is_some_and(|v| parse_http_date(v).is_some())
}

/// The fields of a conditional request revalidating the stored response with headers
/// `stored` (RFC 9111 §4.3.1): If-None-Match with its entity-tag and If-Modified-Since with
/// its Last-Modified date, each copied verbatim when valid. Empty when it has neither.
pub fn conditional_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(tag) = etag(stored) {
        out.insert(IF_NONE_MATCH, tag.clone());
    }
    if let Some(date) = last_modified(stored) {
        out.insert(IF_MODIFIED_SINCE, date.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_in_field_lists_agree_with_maps() {
        let cases: [&[(&'static str, &[u8])]; 7] = [
            &[],
            &[("etag", b"\"v1\"")],
            &[("etag", b"v1")],
            &[("etag", b"bad"), ("etag", b"\"good\"")],
            &[("last-modified", b"Sun, 06 Nov 1994 08:49:37 GMT")],
            &[("last-modified", b"yesterday")],
            &[
                ("etag", b"bad"),
                ("last-modified", b"Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
        ];
        for fields in cases {
            let in_list = has_validator_in(fields.iter().map(|(n, v)| (*n, *v)));
            assert_eq!(in_list, has_validator(&map(fields)), "{fields:?}");
        }
    }

    fn map(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        h
    }

    const LM: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    #[test]
    fn etag_syntax() {
        for good in [
            &b"\"abc\""[..],
            b"W/\"abc\"",
            b"\"\"",
            b"W/\"\"",
            b"\"a\x80\xff!#~\"",
        ] {
            assert!(is_valid_etag(good), "{good:?}");
        }
        for bad in [
            &b""[..],
            b"\"",
            b"W/",
            b"W/\"",
            b"abc",
            b"w/\"abc\"",
            b"\"a\"b\"",
            b"\"a b\"",
            b" \"a\"",
            b"\"a\"\t",
            b"W/W/\"a\"",
        ] {
            assert!(!is_valid_etag(bad), "{bad:?}");
        }
    }

    #[test]
    fn validators_present() {
        assert!(!has_validator(&HeaderMap::new()));
        assert!(has_validator(&map(&[("etag", b"\"v1\"")])));
        assert!(has_validator(&map(&[("last-modified", LM)])));
        assert!(!has_validator(&map(&[
            ("etag", b"v1"),
            ("last-modified", b"yesterday")
        ])));
        assert!(has_validator(&map(&[
            ("etag", b"v1"),
            ("last-modified", LM)
        ])));
    }

    #[test]
    fn conditional_from_both() {
        let stored = map(&[
            ("etag", b"W/\"v1\""),
            ("last-modified", LM),
            ("content-type", b"x"),
        ]);
        let cond = conditional_headers(&stored);
        assert_eq!(cond.len(), 2);
        assert_eq!(cond.get(IF_NONE_MATCH).unwrap(), "W/\"v1\"");
        assert_eq!(cond.get(IF_MODIFIED_SINCE).unwrap().as_bytes(), LM);
    }

    #[test]
    fn conditional_skips_invalid() {
        let cond = conditional_headers(&map(&[("etag", b"unquoted"), ("last-modified", LM)]));
        assert_eq!(cond.len(), 1);
        assert!(cond.contains_key(IF_MODIFIED_SINCE));
        let cond = conditional_headers(&map(&[("etag", b"\"x\""), ("last-modified", b"0")]));
        assert_eq!(cond.len(), 1);
        assert!(cond.contains_key(IF_NONE_MATCH));
        assert!(conditional_headers(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn first_value_is_used() {
        let cond = conditional_headers(&map(&[("etag", b"\"a\""), ("etag", b"\"b\"")]));
        assert_eq!(cond.get(IF_NONE_MATCH).unwrap(), "\"a\"");
        assert_eq!(cond.get_all(IF_NONE_MATCH).iter().count(), 1);
    }
}
