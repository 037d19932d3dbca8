//! Cache tags (surrogate keys): the origin labels a response with `Surrogate-Key`
//! (Fastly: space-separated) or `Cache-Tag` (Cloudflare: comma-separated), the edge stores
//! the tags with the object, and a tag invalidation removes every object carrying one of
//! them. Neither header is sent on to viewers.

use http::header::HeaderName;
use http::HeaderMap;

pub const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
pub const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 128;
/// Most tags kept per object (the first ones in header order).
pub const MAX_TAGS_PER_OBJECT: usize = 32;

/// Why `tag` is not a valid tag (empty, longer than [`MAX_TAG_LEN`], or with whitespace
/// or control characters), or `None` when it is valid.
pub fn tag_problem(tag: &str) -> Option<&'static str> {
    if tag.is_empty() {
        Some("a tag cannot be empty")
    } else if tag.len() > MAX_TAG_LEN {
        Some("a tag is at most 128 bytes")
    } else if tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("a tag cannot contain whitespace or control characters")
    } else {
        None
    }
}

/// The tags of a response: the `Surrogate-Key` values split on whitespace, then the
/// `Cache-Tag` values split on commas, trimmed, deduplicated (first occurrence kept),
/// invalid ones (see [`tag_problem`]) and values that are not UTF-8 ignored, at most
/// [`MAX_TAGS_PER_OBJECT`].
pub fn response_tags(headers: &HeaderMap) -> Vec<String> {
    let surrogate = headers
        .get_all(SURROGATE_KEY)
        .iter()
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
        .flat_map(|v| v.split_whitespace());
    let cache_tag = headers
        .get_all(CACHE_TAG)
        .iter()
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
        .flat_map(|v| v.split(','));
    let mut out: Vec<String> = Vec::new();
    for t in surrogate.chain(cache_tag) {
        if out.len() == MAX_TAGS_PER_OBJECT {
            break;
        }
        let t = t.trim();
        if tag_problem(t).is_none() && !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    out
}

/// Removes the tag headers (they are for the edge, not for viewers).
pub fn strip_tag_headers(headers: &mut HeaderMap) {
    headers.remove(SURROGATE_KEY);
    headers.remove(CACHE_TAG);
}

/// [`response_tags`], then [`strip_tag_headers`].
pub fn take_tags(headers: &mut HeaderMap) -> Vec<String> {
    let tags = response_tags(headers);
    strip_tag_headers(headers);
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(fields: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn surrogate_key_is_space_separated() {
        let h = map(&[("surrogate-key", b"  product-1   all\tx ")]);
        assert_eq!(response_tags(&h), ["product-1", "all", "x"]);
    }

    #[test]
    fn cache_tag_is_comma_separated() {
        let h = map(&[("cache-tag", b"a, b ,,c,a"), ("cache-tag", b"d")]);
        assert_eq!(response_tags(&h), ["a", "b", "c", "d"]);
        // A comma-separated tag with an inner space is not a valid tag.
        let h = map(&[("cache-tag", b"a b, c")]);
        assert_eq!(response_tags(&h), ["c"]);
    }

    #[test]
    fn both_headers_deduplicated() {
        let h = map(&[("surrogate-key", b"a b"), ("cache-tag", b"b,c")]);
        assert_eq!(response_tags(&h), ["a", "b", "c"]);
    }

    #[test]
    fn limits_and_invalid_bytes() {
        let long = "x".repeat(MAX_TAG_LEN + 1);
        let ok = "y".repeat(MAX_TAG_LEN);
        let v = format!("{long} {ok}");
        let h = map(&[("surrogate-key", v.as_bytes())]);
        assert_eq!(response_tags(&h), [ok]);
        let many: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        let h = map(&[("surrogate-key", many.join(" ").as_bytes())]);
        let tags = response_tags(&h);
        assert_eq!(tags.len(), MAX_TAGS_PER_OBJECT);
        assert_eq!(tags[..], many[..MAX_TAGS_PER_OBJECT]);
        // Not UTF-8: the whole value is ignored, the other values are kept.
        let h = map(&[("surrogate-key", b"a \xff b"), ("surrogate-key", b"c")]);
        assert_eq!(response_tags(&h), ["c"]);
        // UTF-8 tags are fine.
        let h = map(&[("cache-tag", "caf\u{e9}".as_bytes())]);
        assert_eq!(response_tags(&h), ["caf\u{e9}"]);
        assert!(response_tags(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn problems() {
        assert!(tag_problem("product-1").is_none());
        assert!(tag_problem("").is_some());
        assert!(tag_problem("a b").is_some());
        assert!(tag_problem("a\u{1}").is_some());
        assert!(tag_problem("a\u{a0}b").is_some());
        assert!(tag_problem(&"z".repeat(129)).is_some());
    }

    #[test]
    fn take_strips() {
        let mut h = map(&[
            ("surrogate-key", b"a"),
            ("cache-tag", b"b"),
            ("x-other", b"1"),
        ]);
        assert_eq!(take_tags(&mut h), ["a", "b"]);
        assert!(!h.contains_key("surrogate-key") && !h.contains_key("cache-tag"));
        assert!(h.contains_key("x-other"));
    }
}
