//! Conditional requests from viewers answered from a stored response (RFC 9110 §13): the
//! preconditions If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since are
//! evaluated against the stored response's validators in the order of RFC 9110 §13.2.2, giving
//! "serve normally", 304 (Not Modified) or 412 (Precondition Failed), and the header fields a
//! 304 carries (RFC 9110 §15.4.5). Entity-tag lists are parsed without allocating; a malformed
//! list never matches, which makes a malformed If-Match fail (412) and a malformed
//! If-None-Match pass. Parsing is linear in the field size and never panics.

use std::time::SystemTime;

use http::header::{
    CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::date::parse_http_date;
use super::validators::is_valid_etag;

/// The result of evaluating a request's preconditions against a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// No precondition applies or all of them hold: serve the stored response normally.
    None,
    /// Answer 304 (Not Modified, RFC 9110 §15.4.5) with [`not_modified_headers`].
    NotModified,
    /// Answer 412 (Precondition Failed, RFC 9110 §15.5.13).
    Failed,
}

/// An entity-tag (RFC 9110 §8.8.3) borrowed from a field value: its weakness flag and its
/// opaque-tag without the surrounding quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EntityTag<'a> {
    pub(super) weak: bool,
    pub(super) opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    /// One entity-tag with exactly the syntax of RFC 9110 §8.8.3 (no surrounding whitespace).
    pub(super) fn parse(value: &'a [u8]) -> Option<Self> {
        if !is_valid_etag(value) {
            return None;
        }
        let (weak, quoted) = match value.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        // is_valid_etag guarantees the quotes; `get` keeps this panic-free regardless.
        let opaque = quoted.get(1..quoted.len().saturating_sub(1))?;
        Some(EntityTag { weak, opaque })
    }

    /// Strong comparison (RFC 9110 §8.8.3.2): neither is weak and the opaque-tags are equal.
    pub(super) fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison (RFC 9110 §8.8.3.2): the opaque-tags are equal, weakness ignored.
    pub(super) fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// The stored response's entity-tag: its first ETag value, when that is valid (surrounding
/// whitespace ignored).
pub(super) fn stored_etag(stored: &HeaderMap) -> Option<EntityTag<'_>> {
    stored
        .get(ETAG)
        .and_then(|v| EntityTag::parse(trim_ows(v.as_bytes())))
}

/// The first value of `name` in `headers` as an HTTP-date, if valid.
pub(super) fn header_date(headers: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    headers.get(name).and_then(parse_http_date)
}

/// The single value of a singleton date field of a request, or `None` when it is absent,
/// appears more than once (a list of dates) or is not a valid HTTP-date: RFC 9110 §13.1.3 and
/// §13.1.4 say to ignore the field then.
fn singleton_date(req: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    let mut values = req.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_http_date(first)
}

/// Strips leading and trailing optional whitespace (SP / HTAB, RFC 9110 §5.6.3).
pub(super) fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// What an `If-Match` / `If-None-Match` field (`"*" / #entity-tag`, RFC 9110 §13.1.1,
/// §13.1.2) said about the current entity-tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagList {
    /// Not the grammar: a missing quote, a bad character, `*` with other members, ….
    Malformed,
    /// `*`.
    Any,
    /// A list of entity-tags (possibly empty); whether one of them matched.
    Tags { matched: bool },
}

/// Which entity-tag comparison function a field uses (RFC 9110 §8.8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// etagc (RFC 9110 §8.8.3): `%x21 / %x23-7E / obs-text`.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

/// Parses every line of a `"*" / #entity-tag` field, combined as one list (RFC 9110 §5.3), and
/// compares each member with `current` using `comparison`. Empty list elements are skipped
/// (RFC 9110 §5.6.1.2); commas inside quotes belong to the opaque-tag. One pass, no
/// allocation.
fn eval_tag_list<'h>(
    values: impl IntoIterator<Item = &'h HeaderValue>,
    current: Option<EntityTag<'_>>,
    comparison: Comparison,
) -> TagList {
    let mut star = false;
    let mut tags = false;
    let mut matched = false;
    for value in values {
        let b = value.as_bytes();
        let mut i = 0;
        loop {
            // Whitespace and empty elements before the next member.
            while matches!(b.get(i), Some(b' ' | b'\t' | b',')) {
                i += 1;
            }
            let Some(&first) = b.get(i) else { break };
            if first == b'*' {
                if star || tags {
                    return TagList::Malformed;
                }
                star = true;
                i += 1;
            } else {
                if star {
                    return TagList::Malformed;
                }
                let weak = b.get(i..i.saturating_add(2)) == Some(b"W/".as_slice());
                if weak {
                    i += 2;
                }
                if b.get(i) != Some(&b'"') {
                    return TagList::Malformed;
                }
                i += 1;
                let start = i;
                loop {
                    match b.get(i) {
                        Some(b'"') => break,
                        Some(&c) if is_etagc(c) => i += 1,
                        _ => return TagList::Malformed,
                    }
                }
                let tag = EntityTag {
                    weak,
                    opaque: b.get(start..i).unwrap_or_default(),
                };
                i += 1; // the closing quote
                tags = true;
                let equal = |c: EntityTag<'_>| match comparison {
                    Comparison::Strong => tag.strong_eq(&c),
                    Comparison::Weak => tag.weak_eq(&c),
                };
                if current.is_some_and(equal) {
                    matched = true;
                }
            }
            // After a member: optional whitespace, then a comma or the end.
            while matches!(b.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            match b.get(i) {
                None => break,
                Some(b',') => i += 1,
                Some(_) => return TagList::Malformed,
            }
        }
    }
    if star {
        TagList::Any
    } else {
        TagList::Tags { matched }
    }
}

/// If-Match (RFC 9110 §13.1.1) against a stored (hence current) representation: `*` holds;
/// a list holds when one member matches the stored ETag by strong comparison; otherwise —
/// including no stored ETag, an empty list and a malformed field — it does not.
fn if_match_holds(req: &HeaderMap, current: Option<EntityTag<'_>>) -> bool {
    match eval_tag_list(req.get_all(IF_MATCH), current, Comparison::Strong) {
        TagList::Any => true,
        TagList::Tags { matched } => matched,
        TagList::Malformed => false,
    }
}

/// If-None-Match (RFC 9110 §13.1.2): `*` is false (a current representation exists); a list
/// is false when one member matches by weak comparison; otherwise — including a malformed
/// field, which matches nothing — true.
fn if_none_match_holds(req: &HeaderMap, current: Option<EntityTag<'_>>) -> bool {
    match eval_tag_list(req.get_all(IF_NONE_MATCH), current, Comparison::Weak) {
        TagList::Any => false,
        TagList::Tags { matched } => !matched,
        TagList::Malformed => true,
    }
}

/// If-Unmodified-Since (RFC 9110 §13.1.4): `Some(false)` when the stored Last-Modified is
/// later than the field's date. `None` (ignored) when the field is absent, invalid or a list,
/// or when the stored response has no valid Last-Modified (which §13.1.4 allows).
fn if_unmodified_since(req: &HeaderMap, stored: &HeaderMap) -> Option<bool> {
    let since = singleton_date(req, IF_UNMODIFIED_SINCE)?;
    let last_modified = header_date(stored, LAST_MODIFIED)?;
    Some(last_modified <= since)
}

/// If-Modified-Since (RFC 9110 §13.1.3): `Some(false)` ("not modified") when the stored
/// modification date is no later than the field's date. The modification date is
/// Last-Modified, else the stored Date (RFC 9111 §4.3.2). `None` (ignored) when the field is
/// absent, invalid or a list, when its date is later than the stored Date (it cannot be a
/// validator the origin gave out, RFC 9110 §13.1.3 reads it on the origin's clock), or when
/// the stored response has neither date.
fn if_modified_since(req: &HeaderMap, stored: &HeaderMap) -> Option<bool> {
    let since = singleton_date(req, IF_MODIFIED_SINCE)?;
    let date = header_date(stored, DATE);
    if date.is_some_and(|d| since > d) {
        return None;
    }
    let modified = header_date(stored, LAST_MODIFIED).or(date)?;
    Some(modified > since)
}

/// Evaluates the preconditions of a viewer's request (`method`, headers `req`) against a
/// stored response (headers `stored`, status `stored_status`) in the order of RFC 9110
/// §13.2.2:
///
/// 1. If-Match present: false → [`Precondition::Failed`].
/// 2. Else If-Unmodified-Since: false → [`Precondition::Failed`].
/// 3. If-None-Match present: false → [`Precondition::NotModified`] for GET and HEAD,
///    [`Precondition::Failed`] for other methods.
/// 4. Else, for GET and HEAD, If-Modified-Since: false → [`Precondition::NotModified`].
/// 5. Otherwise [`Precondition::None`]. (Range and If-Range come after this, see
///    [`super::range_request`].)
///
/// Preconditions only apply when the response without them would be 2xx (RFC 9110 §13.2.1):
/// any other `stored_status` gives [`Precondition::None`].
pub fn evaluate(
    method: &Method,
    req: &HeaderMap,
    stored: &HeaderMap,
    stored_status: StatusCode,
) -> Precondition {
    if !stored_status.is_success() {
        return Precondition::None;
    }
    let current = stored_etag(stored);
    if req.contains_key(IF_MATCH) {
        if !if_match_holds(req, current) {
            return Precondition::Failed;
        }
    } else if if_unmodified_since(req, stored) == Some(false) {
        return Precondition::Failed;
    }
    let get_or_head = method == Method::GET || method == Method::HEAD;
    if req.contains_key(IF_NONE_MATCH) {
        if !if_none_match_holds(req, current) {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if get_or_head && if_modified_since(req, stored) == Some(false) {
        return Precondition::NotModified;
    }
    Precondition::None
}

/// The fields a 304 answering from `stored` carries (RFC 9110 §15.4.5): those of
/// Cache-Control, Content-Location, Date, ETag, Expires and Vary that the 200 would have had,
/// plus Last-Modified (useful to guide cache updates). Every line of each is copied verbatim,
/// in order.
pub fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    const FIELDS: [HeaderName; 7] = [
        CACHE_CONTROL,
        CONTENT_LOCATION,
        DATE,
        ETAG,
        EXPIRES,
        VARY,
        LAST_MODIFIED,
    ];
    let mut out = HeaderMap::new();
    for name in FIELDS {
        for value in stored.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpcache::date::format_http_date;
    use std::time::{Duration, UNIX_EPOCH};

    const T: u64 = 1_700_000_000;

    fn at(secs: u64) -> String {
        format_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    /// A stored 200 with ETag "v1", Last-Modified T-3600 and Date T.
    fn stored() -> HeaderMap {
        map(&[
            ("etag", "\"v1\""),
            ("last-modified", &at(T - 3600)),
            ("date", &at(T)),
            ("content-type", "text/plain"),
        ])
    }

    fn get(req: &[(&'static str, &str)]) -> Precondition {
        evaluate(&Method::GET, &map(req), &stored(), StatusCode::OK)
    }

    fn put(req: &[(&'static str, &str)]) -> Precondition {
        evaluate(&Method::PUT, &map(req), &stored(), StatusCode::OK)
    }

    #[test]
    fn no_preconditions_serve_normally() {
        assert_eq!(get(&[]), Precondition::None);
        assert_eq!(put(&[]), Precondition::None);
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        // The ETag differs: 200 even though If-Modified-Since alone would give 304.
        let ims = at(T - 60);
        assert_eq!(
            get(&[("if-none-match", "\"v0\""), ("if-modified-since", &ims)]),
            Precondition::None
        );
        assert_eq!(
            get(&[("if-modified-since", &ims)]),
            Precondition::NotModified
        );
        // The ETag matches: 304 even though If-Modified-Since alone would give 200.
        let old = at(T - 7200);
        assert_eq!(
            get(&[("if-none-match", "\"v1\""), ("if-modified-since", &old)]),
            Precondition::NotModified
        );
        assert_eq!(get(&[("if-modified-since", &old)]), Precondition::None);
        // Even a malformed If-None-Match makes If-Modified-Since ignored.
        assert_eq!(
            get(&[("if-none-match", "v1"), ("if-modified-since", &ims)]),
            Precondition::None
        );
    }

    #[test]
    fn weak_comparison_for_if_none_match() {
        assert_eq!(
            get(&[("if-none-match", "W/\"v1\"")]),
            Precondition::NotModified
        );
        let weak_stored = map(&[("etag", "W/\"v1\"")]);
        for inm in ["\"v1\"", "W/\"v1\""] {
            let req = map(&[("if-none-match", inm)]);
            assert_eq!(
                evaluate(&Method::GET, &req, &weak_stored, StatusCode::OK),
                Precondition::NotModified,
                "{inm}"
            );
        }
        assert_eq!(get(&[("if-none-match", "W/\"v2\"")]), Precondition::None);
    }

    #[test]
    fn strong_comparison_for_if_match() {
        assert_eq!(get(&[("if-match", "\"v1\"")]), Precondition::None);
        assert_eq!(put(&[("if-match", "\"v0\", \"v1\"")]), Precondition::None);
        assert_eq!(get(&[("if-match", "W/\"v1\"")]), Precondition::Failed);
        assert_eq!(get(&[("if-match", "\"v2\"")]), Precondition::Failed);
        let weak_stored = map(&[("etag", "W/\"v1\"")]);
        for im in ["\"v1\"", "W/\"v1\""] {
            let req = map(&[("if-match", im)]);
            assert_eq!(
                evaluate(&Method::GET, &req, &weak_stored, StatusCode::OK),
                Precondition::Failed,
                "{im}"
            );
        }
    }

    #[test]
    fn if_match_without_stored_etag_fails_except_star() {
        let no_etag = map(&[("last-modified", &at(T - 3600))]);
        let req = map(&[("if-match", "\"v1\"")]);
        assert_eq!(
            evaluate(&Method::GET, &req, &no_etag, StatusCode::OK),
            Precondition::Failed
        );
        let req = map(&[("if-match", "*")]);
        assert_eq!(
            evaluate(&Method::GET, &req, &no_etag, StatusCode::OK),
            Precondition::None
        );
    }

    #[test]
    fn if_match_star_matches_any_current_representation() {
        assert_eq!(get(&[("if-match", "*")]), Precondition::None);
        assert_eq!(put(&[("if-match", " * ")]), Precondition::None);
    }

    #[test]
    fn malformed_if_match_fails() {
        for bad in [
            "v1",
            "\"v1",
            "\"v1\" \"v2\"",
            "*, \"v1\"",
            "\"v1\", *",
            "w/\"v1\"",
            "",
        ] {
            assert_eq!(get(&[("if-match", bad)]), Precondition::Failed, "{bad:?}");
        }
    }

    #[test]
    fn malformed_if_none_match_is_no_match() {
        for bad in [
            "v1",
            "\"v1",
            "\"v1\" \"v1\"",
            "*, \"v1\"",
            "\"v1\"x",
            "\"v 1\"",
        ] {
            assert_eq!(
                get(&[("if-none-match", bad)]),
                Precondition::None,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn if_none_match_star_is_304_for_get_and_412_for_put() {
        assert_eq!(get(&[("if-none-match", "*")]), Precondition::NotModified);
        let req = map(&[("if-none-match", "*")]);
        assert_eq!(
            evaluate(&Method::HEAD, &req, &stored(), StatusCode::OK),
            Precondition::NotModified
        );
        assert_eq!(put(&[("if-none-match", "*")]), Precondition::Failed);
        assert_eq!(put(&[("if-none-match", "\"v1\"")]), Precondition::Failed);
        assert_eq!(put(&[("if-none-match", "\"v2\"")]), Precondition::None);
    }

    #[test]
    fn etag_lists_with_commas_inside_quotes_and_empty_elements() {
        let stored = map(&[("etag", "\"a,b\"")]);
        for (inm, expected) in [
            ("\"x\", \"a,b\"", Precondition::NotModified),
            ("\"a\", \"b\"", Precondition::None),
            (" , ,\"x\" ,, W/\"a,b\" ,", Precondition::NotModified),
            ("\"a,b\"\t", Precondition::NotModified),
        ] {
            let req = map(&[("if-none-match", inm)]);
            assert_eq!(
                evaluate(&Method::GET, &req, &stored, StatusCode::OK),
                expected,
                "{inm}"
            );
        }
    }

    #[test]
    fn etag_list_spans_field_lines() {
        let mut req = map(&[("if-none-match", "\"a\"")]);
        req.append(IF_NONE_MATCH, HeaderValue::from_static("\"b\", \"v1\""));
        assert_eq!(
            evaluate(&Method::GET, &req, &stored(), StatusCode::OK),
            Precondition::NotModified
        );
        // `*` must stand alone, also across lines.
        req.append(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(
            evaluate(&Method::GET, &req, &stored(), StatusCode::OK),
            Precondition::None
        );
    }

    #[test]
    fn if_match_takes_precedence_over_if_unmodified_since() {
        let old = at(T - 7200); // before Last-Modified: would fail alone
        assert_eq!(get(&[("if-unmodified-since", &old)]), Precondition::Failed);
        assert_eq!(
            get(&[("if-match", "\"v1\""), ("if-unmodified-since", &old)]),
            Precondition::None
        );
    }

    #[test]
    fn if_unmodified_since_rules() {
        assert_eq!(
            get(&[("if-unmodified-since", &at(T - 3600))]),
            Precondition::None
        );
        assert_eq!(
            get(&[("if-unmodified-since", &at(T - 3601))]),
            Precondition::Failed
        );
        // Invalid or a list: ignored.
        assert_eq!(
            get(&[("if-unmodified-since", "yesterday")]),
            Precondition::None
        );
        let mut req = map(&[("if-unmodified-since", &at(T - 7200))]);
        req.append(
            IF_UNMODIFIED_SINCE,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(
            evaluate(&Method::GET, &req, &stored(), StatusCode::OK),
            Precondition::None
        );
        // No Last-Modified: ignored.
        let req = map(&[("if-unmodified-since", &at(T - 7200))]);
        let no_lm = map(&[("etag", "\"v1\""), ("date", &at(T))]);
        assert_eq!(
            evaluate(&Method::GET, &req, &no_lm, StatusCode::OK),
            Precondition::None
        );
    }

    #[test]
    fn precondition_failure_before_not_modified() {
        assert_eq!(
            get(&[("if-match", "\"v2\""), ("if-none-match", "\"v1\"")]),
            Precondition::Failed
        );
    }

    #[test]
    fn if_modified_since_not_modified_at_or_after_last_modified() {
        assert_eq!(
            get(&[("if-modified-since", &at(T - 3600))]),
            Precondition::NotModified
        );
        assert_eq!(
            get(&[("if-modified-since", &at(T))]),
            Precondition::NotModified
        );
        assert_eq!(
            get(&[("if-modified-since", &at(T - 3601))]),
            Precondition::None
        );
    }

    #[test]
    fn if_modified_since_ignored_when_invalid() {
        for bad in [
            "",
            "yesterday",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "-1",
            "1700000000",
        ] {
            assert_eq!(
                get(&[("if-modified-since", bad)]),
                Precondition::None,
                "{bad:?}"
            );
        }
        // A list of dates is invalid too.
        let mut req = map(&[("if-modified-since", &at(T))]);
        req.append(IF_MODIFIED_SINCE, HeaderValue::from_str(&at(T)).unwrap());
        assert_eq!(
            evaluate(&Method::GET, &req, &stored(), StatusCode::OK),
            Precondition::None
        );
    }

    #[test]
    fn if_modified_since_in_the_future_of_date_is_ignored() {
        assert_eq!(
            get(&[("if-modified-since", &at(T + 1))]),
            Precondition::None
        );
    }

    #[test]
    fn if_modified_since_falls_back_to_date() {
        let no_lm = map(&[("date", &at(T))]);
        let eval = |ims: &str| {
            let req = map(&[("if-modified-since", ims)]);
            evaluate(&Method::GET, &req, &no_lm, StatusCode::OK)
        };
        assert_eq!(eval(&at(T)), Precondition::NotModified);
        assert_eq!(eval(&at(T - 1)), Precondition::None);
        // Neither Last-Modified nor Date: ignored.
        let req = map(&[("if-modified-since", &at(T))]);
        assert_eq!(
            evaluate(&Method::GET, &req, &HeaderMap::new(), StatusCode::OK),
            Precondition::None
        );
    }

    #[test]
    fn if_modified_since_only_for_get_and_head() {
        let ims = at(T);
        assert_eq!(
            evaluate(
                &Method::HEAD,
                &map(&[("if-modified-since", &ims)]),
                &stored(),
                StatusCode::OK
            ),
            Precondition::NotModified
        );
        assert_eq!(put(&[("if-modified-since", &ims)]), Precondition::None);
        assert_eq!(
            evaluate(
                &Method::POST,
                &map(&[("if-modified-since", &ims)]),
                &stored(),
                StatusCode::OK
            ),
            Precondition::None
        );
    }

    #[test]
    fn only_2xx_stored_responses() {
        let req = map(&[("if-none-match", "*"), ("if-match", "\"nope\"")]);
        for status in [
            StatusCode::NOT_FOUND,
            StatusCode::MOVED_PERMANENTLY,
            StatusCode::BAD_GATEWAY,
        ] {
            assert_eq!(
                evaluate(&Method::GET, &req, &stored(), status),
                Precondition::None
            );
        }
        assert_eq!(
            evaluate(&Method::GET, &req, &stored(), StatusCode::PARTIAL_CONTENT),
            Precondition::Failed
        );
    }

    #[test]
    fn not_modified_headers_carry_only_the_listed_fields() {
        let mut stored = stored();
        stored.append("cache-control", HeaderValue::from_static("max-age=60"));
        stored.append("cache-control", HeaderValue::from_static("public"));
        stored.append("vary", HeaderValue::from_static("accept-encoding"));
        stored.append("expires", HeaderValue::from_static("0"));
        stored.append("content-location", HeaderValue::from_static("/a"));
        stored.append("content-length", HeaderValue::from_static("10"));
        stored.append("set-cookie", HeaderValue::from_static("a=b"));
        let h = not_modified_headers(&stored);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "cache-control",
                "content-location",
                "date",
                "etag",
                "expires",
                "vary",
                "last-modified"
            ]
        );
        let cc: Vec<_> = h.get_all(CACHE_CONTROL).iter().collect();
        assert_eq!(cc, ["max-age=60", "public"]);
        assert_eq!(h.get(ETAG).unwrap(), "\"v1\"");
        assert!(not_modified_headers(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn entity_tag_parsing() {
        assert_eq!(
            EntityTag::parse(b"W/\"x\""),
            Some(EntityTag {
                weak: true,
                opaque: b"x"
            })
        );
        assert_eq!(
            EntityTag::parse(b"\"\""),
            Some(EntityTag {
                weak: false,
                opaque: b""
            })
        );
        assert_eq!(EntityTag::parse(b"x"), None);
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b" \t "), b"");
    }

    #[test]
    fn never_panics() {
        const ALPHABET: &[&str] = &[
            "\"",
            "W/",
            "w/",
            "*",
            ",",
            " ",
            "\t",
            "v1",
            "a",
            "\u{80}",
            "é",
            "!",
            "#",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "GMT",
            "9",
            "\\",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let names = [
            "if-match",
            "if-none-match",
            "if-modified-since",
            "if-unmodified-since",
            "etag",
            "last-modified",
            "date",
        ];
        let methods = [Method::GET, Method::HEAD, Method::PUT, Method::DELETE];
        for _ in 0..5000 {
            let mut req = HeaderMap::new();
            let mut stored = HeaderMap::new();
            for name in names {
                for _ in 0..next() % 3 {
                    let len = next() % 8;
                    let s: String = (0..len)
                        .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                        .collect();
                    let Ok(value) = HeaderValue::from_str(&s) else {
                        continue;
                    };
                    if next() % 2 == 0 {
                        req.append(name, value);
                    } else {
                        stored.append(name, value);
                    }
                }
            }
            let method = &methods[(next() % 4) as usize];
            let status = if next() % 4 == 0 {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            let _ = evaluate(method, &req, &stored, status);
            let _ = not_modified_headers(&stored);
        }
    }
}
