//! Targeted cache-control fields (RFC 9213): `Cairn-CDN-Cache-Control`, aimed at this edge
//! only, and `CDN-Cache-Control` (RFC 9213 §3), aimed at every CDN. This cache's target list
//! is those two, in that order (RFC 9213 §2.2). Each is an sf-dictionary (RFC 8941 §3.2)
//! parsed with `sfv`; a field that does not parse, or is empty, is ignored as if absent
//! (RFC 9213 §2.1). The first valid, non-empty field of the list governs caching: its
//! directives replace both Cache-Control and Expires for this cache (RFC 9213 §2.2), while
//! the plain Cache-Control stays in the response for downstream caches.
//!
//! Member mapping (RFC 9213 §2.1): delta-seconds directives (`max-age`, `s-maxage`,
//! `stale-while-revalidate`, `stale-if-error`) must be non-negative sf-integers, valueless
//! directives (`no-store`, `public`, …) sf-boolean true; a member whose value is of another
//! type is ignored. `?0` means the directive is off. `private` and `no-cache` with any value
//! but `?0` count as their unqualified forms, the stricter reading. Parameters are ignored;
//! unknown members are kept as extensions. Nothing here panics on any input.

use http::{HeaderMap, HeaderName};
use sfv::{BareItem, Dictionary, ListEntry, Parser, Version};

use super::cache_control::{CacheControl, Delta, FieldDirective, DELTA_SECONDS_MAX};

/// `Cairn-CDN-Cache-Control`: directives for this edge only (RFC 9213 §2).
pub const CAIRN_CDN_CACHE_CONTROL: &str = "cairn-cdn-cache-control";
/// `CDN-Cache-Control`: directives for every CDN (RFC 9213 §3).
pub const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// Which field's directives govern caching of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcSource {
    /// `Cairn-CDN-Cache-Control` (targeted; Cache-Control and Expires are ignored).
    CairnCdn,
    /// `CDN-Cache-Control` (targeted; Cache-Control and Expires are ignored).
    Cdn,
    /// Plain `Cache-Control` together with `Expires` (RFC 9111 §5.2, §5.3).
    CacheControl,
}

impl CcSource {
    /// True for a targeted field: Expires must be ignored as well as Cache-Control
    /// (RFC 9213 §2.2).
    pub fn ignores_expires(self) -> bool {
        !matches!(self, CcSource::CacheControl)
    }

    /// The lower-case field name.
    pub fn as_str(self) -> &'static str {
        match self {
            CcSource::CairnCdn => CAIRN_CDN_CACHE_CONTROL,
            CcSource::Cdn => CDN_CACHE_CONTROL,
            CcSource::CacheControl => "cache-control",
        }
    }
}

/// The directives that govern this cache's handling of a response with headers `resp`,
/// and where they came from: the first valid non-empty targeted field of the target list
/// (`Cairn-CDN-Cache-Control`, then `CDN-Cache-Control`), else Cache-Control. With a
/// targeted source, Expires must be ignored too (see [`CcSource::ignores_expires`]).
pub fn governing_cache_control(resp: &HeaderMap) -> (CacheControl, CcSource) {
    for (name, source) in [
        (CAIRN_CDN_CACHE_CONTROL, CcSource::CairnCdn),
        (CDN_CACHE_CONTROL, CcSource::Cdn),
    ] {
        if let Some(cc) = parse_targeted(resp, name) {
            return (cc, source);
        }
    }
    (CacheControl::from_headers(resp), CcSource::CacheControl)
}

/// Parses the targeted field `name` of `resp`: `None` when it is absent, empty or not a
/// valid sf-dictionary (RFC 9213 §2.1). Several field lines are combined with commas
/// first (RFC 8941 §4.2); lines that are empty or only whitespace contribute nothing.
pub fn parse_targeted(resp: &HeaderMap, name: &str) -> Option<CacheControl> {
    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
    let mut combined: Vec<u8> = Vec::new();
    for line in resp.get_all(&name) {
        let bytes = line.as_bytes();
        if bytes.iter().all(|&b| b == b' ' || b == b'\t') {
            continue;
        }
        if !combined.is_empty() {
            combined.extend_from_slice(b", ");
        }
        combined.extend_from_slice(bytes);
    }
    if combined.is_empty() {
        return None;
    }
    // RFC 9213 §2.1 uses the RFC 8941 types (no Dates, no Display Strings).
    let dict: Dictionary = Parser::new(&combined)
        .with_version(Version::Rfc8941)
        .parse()
        .ok()?;
    if dict.is_empty() {
        return None;
    }
    Some(from_dictionary(&dict))
}

/// Maps dictionary members to directives (RFC 9213 §2.1). Members of the wrong type are
/// ignored and their names recorded in `invalid`.
fn from_dictionary(dict: &Dictionary) -> CacheControl {
    let mut cc = CacheControl::default();
    for (key, entry) in dict {
        let name = key.as_str();
        let item = match entry {
            ListEntry::Item(item) => Some(&item.bare_item),
            ListEntry::InnerList(_) => None,
        };
        let ok = match name {
            "max-age" => set(&mut cc.max_age, delta(item).map(Delta::Valid)),
            "s-maxage" => set(&mut cc.s_maxage, delta(item).map(Delta::Valid)),
            "stale-while-revalidate" => set(&mut cc.stale_while_revalidate, delta(item)),
            "stale-if-error" => set(&mut cc.stale_if_error, delta(item)),
            "no-store" => set_flag(&mut cc.no_store, item),
            "no-transform" => set_flag(&mut cc.no_transform, item),
            "must-revalidate" => set_flag(&mut cc.must_revalidate, item),
            "proxy-revalidate" => set_flag(&mut cc.proxy_revalidate, item),
            "must-understand" => set_flag(&mut cc.must_understand, item),
            "public" => set_flag(&mut cc.public, item),
            "immutable" => set_flag(&mut cc.immutable, item),
            "private" => {
                cc.private = field_directive(item);
                true
            }
            "no-cache" => {
                cc.no_cache = field_directive(item);
                true
            }
            _ => {
                cc.extensions.push((name.to_string(), item.and_then(text)));
                true
            }
        };
        if !ok {
            cc.invalid.push(name.to_string());
        }
    }
    cc
}

/// Stores `value` if the member had the expected type; false otherwise.
fn set<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    let ok = value.is_some();
    if ok {
        *slot = value;
    }
    ok
}

/// A non-negative sf-integer as delta-seconds, saturating at [`DELTA_SECONDS_MAX`]
/// (RFC 9111 §1.2.2). Negative integers and other types are not delta-seconds.
fn delta(item: Option<&BareItem>) -> Option<u64> {
    let value = i64::from(item?.as_integer()?);
    u64::try_from(value).ok().map(|v| v.min(DELTA_SECONDS_MAX))
}

/// A valueless directive: sf-boolean (true sets it, `?0` leaves it off).
fn set_flag(slot: &mut bool, item: Option<&BareItem>) -> bool {
    match item.and_then(BareItem::as_boolean) {
        Some(value) => {
            *slot = value;
            true
        }
        None => false,
    }
}

/// `private` / `no-cache`: `?0` is off, anything else the unqualified form (a field-name
/// list cannot be told apart reliably from other values, so the stricter reading wins).
fn field_directive(item: Option<&BareItem>) -> FieldDirective {
    match item.and_then(BareItem::as_boolean) {
        Some(false) => FieldDirective::Absent,
        _ => FieldDirective::All,
    }
}

/// An extension's argument as text: `None` for boolean true (valueless form).
fn text(item: &BareItem) -> Option<String> {
    match item {
        BareItem::Boolean(true) => None,
        BareItem::Boolean(false) => Some("?0".to_string()),
        BareItem::Integer(v) => Some(v.to_string()),
        BareItem::Decimal(v) => Some(v.to_string()),
        BareItem::String(v) => Some(v.as_str().to_string()),
        BareItem::Token(v) => Some(v.as_str().to_string()),
        BareItem::DisplayString(v) => Some(v.clone()),
        BareItem::ByteSequence(_) | BareItem::Date(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn governing(pairs: &[(&'static str, &str)]) -> (CacheControl, CcSource) {
        governing_cache_control(&headers(pairs))
    }

    #[test]
    fn plain_cache_control_without_targeted_fields() {
        let (cc, src) = governing(&[("cache-control", "max-age=60, public")]);
        assert_eq!(src, CcSource::CacheControl);
        assert!(!src.ignores_expires());
        assert_eq!(cc.max_age_secs(), Some(60));
        assert!(cc.public);
    }

    #[test]
    fn targeted_field_overrides_cache_control_and_expires() {
        let (cc, src) = governing(&[
            ("cache-control", "no-store, max-age=5"),
            ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("cdn-cache-control", "max-age=600"),
        ]);
        assert_eq!(src, CcSource::Cdn);
        assert!(src.ignores_expires());
        assert_eq!(cc.max_age_secs(), Some(600));
        // Nothing of Cache-Control leaks in.
        assert!(!cc.no_store);
    }

    #[test]
    fn cairn_targeted_beats_cdn_targeted() {
        let (cc, src) = governing(&[
            ("cdn-cache-control", "max-age=10"),
            ("cairn-cdn-cache-control", "s-maxage=20"),
            ("cache-control", "max-age=30"),
        ]);
        assert_eq!(src, CcSource::CairnCdn);
        assert_eq!(cc.s_maxage_secs(), Some(20));
        assert_eq!(cc.max_age, None);
        assert_eq!(CcSource::CairnCdn.as_str(), "cairn-cdn-cache-control");
    }

    #[test]
    fn malformed_targeted_field_is_ignored() {
        // Upper-case keys, a trailing comma, a bad string, non-ASCII: not sf-dictionaries.
        for bad in [
            "Max-Age=10",
            "max-age=10,",
            "a=\"x",
            "max-age=10;",
            "é",
            "=5",
            "1a",
        ] {
            let (cc, src) = governing(&[
                ("cairn-cdn-cache-control", bad),
                ("cdn-cache-control", "max-age=77"),
            ]);
            assert_eq!(src, CcSource::Cdn, "{bad:?}");
            assert_eq!(cc.max_age_secs(), Some(77), "{bad:?}");
        }
        let (cc, src) = governing(&[
            ("cdn-cache-control", "max-age=10, max-age"),
            ("cache-control", "max-age=3"),
        ]);
        // Duplicate keys are valid (last wins, RFC 8941 §4.2.2): boolean max-age ignored.
        assert_eq!(src, CcSource::Cdn);
        assert_eq!(cc.max_age, None);
        assert_eq!(cc.invalid, vec!["max-age".to_string()]);
        let (_, src) = governing(&[
            ("cdn-cache-control", "max-age=(1 2"),
            ("cache-control", "max-age=3"),
        ]);
        assert_eq!(src, CcSource::CacheControl);
    }

    #[test]
    fn empty_targeted_field_is_ignored() {
        for empty in ["", "  ", "\t"] {
            let (cc, src) =
                governing(&[("cdn-cache-control", empty), ("cache-control", "max-age=3")]);
            assert_eq!(src, CcSource::CacheControl, "{empty:?}");
            assert_eq!(cc.max_age_secs(), Some(3));
        }
    }

    #[test]
    fn several_field_lines_are_one_dictionary() {
        let (cc, src) = governing(&[
            ("cdn-cache-control", "max-age=10"),
            ("cdn-cache-control", ""),
            ("cdn-cache-control", "no-store, stale-if-error=30"),
        ]);
        assert_eq!(src, CcSource::Cdn);
        assert_eq!(cc.max_age_secs(), Some(10));
        assert!(cc.no_store);
        assert_eq!(cc.stale_if_error, Some(30));
    }

    #[test]
    fn member_types() {
        let (cc, _) = governing(&[(
            "cdn-cache-control",
            "max-age=60, s-maxage=30, stale-while-revalidate=5, stale-if-error=7, no-store, \
             no-transform, must-revalidate, proxy-revalidate, must-understand, public, \
             immutable, private, no-cache",
        )]);
        assert_eq!(cc.max_age, Some(Delta::Valid(60)));
        assert_eq!(cc.s_maxage, Some(Delta::Valid(30)));
        assert_eq!(cc.stale_while_revalidate, Some(5));
        assert_eq!(cc.stale_if_error, Some(7));
        assert!(cc.no_store && cc.no_transform && cc.must_revalidate && cc.proxy_revalidate);
        assert!(cc.must_understand && cc.public && cc.immutable);
        assert_eq!(cc.private, FieldDirective::All);
        assert_eq!(cc.no_cache, FieldDirective::All);
        assert!(cc.invalid.is_empty() && cc.extensions.is_empty());
    }

    #[test]
    fn directive_of_unexpected_type_is_ignored() {
        let (cc, src) = governing(&[
            (
                "cdn-cache-control",
                "max-age=\"60\", s-maxage=-1, stale-if-error=1.5, no-store=1, public=tok, \
                 must-revalidate=(a b), stale-while-revalidate=?1",
            ),
            ("cache-control", "max-age=99, no-store"),
        ]);
        // The field is valid, so it governs; every member is of the wrong type.
        assert_eq!(src, CcSource::Cdn);
        assert_eq!(cc.max_age, None);
        assert_eq!(cc.s_maxage, None);
        assert_eq!(cc.stale_if_error, None);
        assert_eq!(cc.stale_while_revalidate, None);
        assert!(!cc.no_store && !cc.public && !cc.must_revalidate);
        assert_eq!(cc.invalid.len(), 7);
    }

    #[test]
    fn false_booleans_are_off_and_private_values_are_unqualified() {
        let (cc, _) = governing(&[(
            "cdn-cache-control",
            "no-store=?0, public=?0, private=?0, no-cache=?0, max-age=5",
        )]);
        assert!(!cc.no_store && !cc.public);
        assert_eq!(cc.private, FieldDirective::Absent);
        assert_eq!(cc.no_cache, FieldDirective::Absent);
        for v in [
            "private=\"set-cookie\"",
            "private=set-cookie",
            "private=(a b)",
            "private=1",
        ] {
            let (cc, _) = governing(&[("cdn-cache-control", v)]);
            assert_eq!(cc.private, FieldDirective::All, "{v}");
        }
        let (cc, _) = governing(&[("cdn-cache-control", "no-cache=\"x-a, x-b\"")]);
        assert_eq!(cc.no_cache, FieldDirective::All);
    }

    #[test]
    fn parameters_ignored_large_values_saturate_extensions_kept() {
        let (cc, _) = governing(&[(
            "cdn-cache-control",
            "max-age=999999999999999;x=1, no-store;y, foo, bar=\"baz\", qux=2",
        )]);
        assert_eq!(cc.max_age_secs(), Some(DELTA_SECONDS_MAX));
        assert!(cc.no_store);
        assert_eq!(
            cc.extensions,
            vec![
                ("foo".to_string(), None),
                ("bar".to_string(), Some("baz".to_string())),
                ("qux".to_string(), Some("2".to_string())),
            ]
        );
    }

    #[test]
    fn only_unknown_members_still_govern() {
        let (cc, src) = governing(&[("cdn-cache-control", "foo"), ("cache-control", "no-store")]);
        assert_eq!(src, CcSource::Cdn);
        assert!(!cc.no_store);
    }

    #[test]
    fn never_panics() {
        let nasty = [
            "",
            ",",
            "=",
            "\"",
            "\\",
            "a=(",
            "a=:",
            "a=:AAA=:",
            "a=@1",
            "a=%\"x\"",
            "*",
            "a=?2",
            "a=1.1234",
            "a=-999999999999999",
            "a=9999999999999999",
            "a;b;c=1, d=(1 2);e",
        ];
        for s in nasty {
            for name in [CAIRN_CDN_CACHE_CONTROL, CDN_CACHE_CONTROL] {
                let mut h = HeaderMap::new();
                h.append(
                    HeaderName::from_static(name),
                    HeaderValue::from_str(s).unwrap(),
                );
                h.append(
                    HeaderName::from_static(name),
                    HeaderValue::from_bytes(b"\xff\x80").unwrap(),
                );
                let _ = governing_cache_control(&h);
            }
        }
        assert_eq!(parse_targeted(&HeaderMap::new(), "not a name"), None);
    }
}
