//! Cache-Control parsing (RFC 9111 §5.2) into a [`CacheControl`] holding every request and
//! response directive the RFC defines, plus delta-seconds (RFC 9111 §1.2.2). The field is a
//! comma-separated list (RFC 9110 §5.6.1) whose arguments are tokens or quoted-strings
//! (RFC 9110 §5.6.4); all field lines of a message are parsed as one list (RFC 9110 §5.3).
//!
//! Leniency: optional whitespace around `=` is accepted, both argument forms are accepted for
//! every directive (RFC 9111 §5.2 "recipients ought to accept both forms"), and arguments
//! on directives that define none are ignored. Nothing here panics on any input.

use http::header::CACHE_CONTROL;
use http::HeaderMap;

/// The largest delta-seconds value kept: larger values are treated as this (RFC 9111 §1.2.2).
pub const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// Parses delta-seconds (RFC 9111 §1.2.2): one or more ASCII digits, nothing else. Values
/// above 2^31 saturate to [`DELTA_SECONDS_MAX`]; anything else (empty, a sign, a space, a
/// fraction) is `None`.
pub fn parse_delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for b in s.bytes() {
        let digit = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            _ => return None,
        };
        // Saturate early so that a long run of digits cannot overflow.
        value = value
            .saturating_mul(10)
            .saturating_add(digit)
            .min(DELTA_SECONDS_MAX + 1);
    }
    Some(value.min(DELTA_SECONDS_MAX))
}

/// A delta-seconds argument of `max-age` or `s-maxage`, where an invalid value matters:
/// RFC 9111 §4.2.1 says such a response is to be treated as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    /// A valid value, in seconds (at most [`DELTA_SECONDS_MAX`]).
    Valid(u64),
    /// Missing, malformed (negative, non-digits, empty) or conflicting duplicates.
    Invalid,
}

impl Delta {
    /// The value in seconds, if valid.
    pub fn secs(self) -> Option<u64> {
        match self {
            Delta::Valid(s) => Some(s),
            Delta::Invalid => None,
        }
    }
}

/// `no-cache` and `private`, which have an unqualified and a qualified (field list) form
/// (RFC 9111 §5.2.2.4, §5.2.2.7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FieldDirective {
    /// The directive is not present.
    #[default]
    Absent,
    /// The unqualified form: applies to the whole response.
    All,
    /// The qualified form, e.g. `private="set-cookie, x-foo"`: lower-cased field names.
    Fields(Vec<String>),
}

impl FieldDirective {
    /// True unless [`FieldDirective::Absent`].
    pub fn is_present(&self) -> bool {
        !matches!(self, FieldDirective::Absent)
    }

    /// True for the unqualified form.
    pub fn is_all(&self) -> bool {
        matches!(self, FieldDirective::All)
    }

    /// Merges a further occurrence: the unqualified form dominates, field lists are unioned.
    fn merge(&mut self, other: FieldDirective) {
        match (&mut *self, other) {
            (_, FieldDirective::Absent) | (FieldDirective::All, _) => {}
            (FieldDirective::Fields(have), FieldDirective::Fields(more)) => {
                for name in more {
                    if !have.contains(&name) {
                        have.push(name);
                    }
                }
            }
            (slot, other) => *slot = other,
        }
    }
}

/// All Cache-Control directives of a message (RFC 9111 §5.2.1 request, §5.2.2 response).
///
/// Duplicates (RFC 9111 §4.2.1): for `max-age` and `s-maxage`, duplicates that disagree make
/// the directive [`Delta::Invalid`] (the response is then to be treated as stale), equal
/// duplicates are harmless. For the other valued directives the first occurrence wins, even
/// if it is invalid. Boolean directives are set by any occurrence; `no-cache` and `private`
/// occurrences are merged (the unqualified form dominates, field lists are unioned).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `max-age` (RFC 9111 §5.2.1.1, §5.2.2.1).
    pub max_age: Option<Delta>,
    /// `s-maxage` (RFC 9111 §5.2.2.10).
    pub s_maxage: Option<Delta>,
    /// `max-stale` (RFC 9111 §5.2.1.2): `Some(None)` when present without a value (any
    /// staleness). An invalid value makes the directive absent (recorded in `invalid`).
    pub max_stale: Option<Option<u64>>,
    /// `min-fresh` (RFC 9111 §5.2.1.3).
    pub min_fresh: Option<u64>,
    /// `stale-while-revalidate` (RFC 5861 §3).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (RFC 5861 §4).
    pub stale_if_error: Option<u64>,
    /// `no-store` (RFC 9111 §5.2.1.5, §5.2.2.5).
    pub no_store: bool,
    /// `no-transform` (RFC 9111 §5.2.1.6, §5.2.2.6).
    pub no_transform: bool,
    /// `only-if-cached` (RFC 9111 §5.2.1.7).
    pub only_if_cached: bool,
    /// `must-revalidate` (RFC 9111 §5.2.2.2).
    pub must_revalidate: bool,
    /// `proxy-revalidate` (RFC 9111 §5.2.2.8).
    pub proxy_revalidate: bool,
    /// `must-understand` (RFC 9111 §5.2.2.3).
    pub must_understand: bool,
    /// `public` (RFC 9111 §5.2.2.9).
    pub public: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `no-cache` (RFC 9111 §5.2.1.4, §5.2.2.4). A malformed argument counts as unqualified.
    pub no_cache: FieldDirective,
    /// `private` (RFC 9111 §5.2.2.7). A malformed argument counts as unqualified.
    pub private: FieldDirective,
    /// Unknown directives (RFC 9111 §5.2.3), lower-cased name and unescaped argument, in order.
    pub extensions: Vec<(String, Option<String>)>,
    /// Lower-cased names of known directives whose argument was invalid, in order (for logs).
    pub invalid: Vec<String>,
}

impl CacheControl {
    /// Parses every Cache-Control field line of `headers` as one list. Lines that are not
    /// UTF-8 are read lossily (their non-UTF-8 bytes can only appear in arguments).
    pub fn from_headers(headers: &HeaderMap) -> CacheControl {
        let mut parser = Parser::default();
        for value in headers.get_all(CACHE_CONTROL) {
            parser.feed(&String::from_utf8_lossy(value.as_bytes()));
        }
        parser.cc
    }

    /// Parses a single Cache-Control field value.
    pub fn parse(value: &str) -> CacheControl {
        let mut parser = Parser::default();
        parser.feed(value);
        parser.cc
    }

    /// The `max-age` value if present and valid.
    pub fn max_age_secs(&self) -> Option<u64> {
        self.max_age.and_then(Delta::secs)
    }

    /// The `s-maxage` value if present and valid.
    pub fn s_maxage_secs(&self) -> Option<u64> {
        self.s_maxage.and_then(Delta::secs)
    }

    /// True when `max-age` is present but invalid: treat the response as stale (§4.2.1).
    pub fn max_age_invalid(&self) -> bool {
        self.max_age == Some(Delta::Invalid)
    }

    /// True when `s-maxage` is present but invalid: treat the response as stale (§4.2.1).
    pub fn s_maxage_invalid(&self) -> bool {
        self.s_maxage == Some(Delta::Invalid)
    }
}

/// A directive's argument after unescaping.
struct Arg {
    value: String,
    /// Unterminated quoted-string, junk after it, or a token with non-tchar characters.
    malformed: bool,
}

/// Accumulates directives over several field lines, remembering which have been seen so
/// that the first occurrence wins.
#[derive(Default)]
struct Parser {
    cc: CacheControl,
    seen_max_stale: bool,
    seen_min_fresh: bool,
    seen_swr: bool,
    seen_sie: bool,
}

impl Parser {
    fn feed(&mut self, value: &str) {
        for_each_directive(value, |name, arg| self.directive(name, arg));
    }

    fn directive(&mut self, name: String, arg: Option<Arg>) {
        let delta = |arg: &Option<Arg>| match arg {
            Some(a) if !a.malformed => parse_delta_seconds(&a.value),
            _ => None,
        };
        match name.as_str() {
            "max-age" => {
                let d = delta(&arg);
                if d.is_none() {
                    self.cc.invalid.push(name);
                }
                merge_delta(&mut self.cc.max_age, d);
            }
            "s-maxage" => {
                let d = delta(&arg);
                if d.is_none() {
                    self.cc.invalid.push(name);
                }
                merge_delta(&mut self.cc.s_maxage, d);
            }
            "max-stale" => {
                let v = match &arg {
                    None => Some(None),
                    Some(_) => delta(&arg).map(Some),
                };
                if v.is_none() {
                    self.cc.invalid.push(name);
                }
                if !std::mem::replace(&mut self.seen_max_stale, true) {
                    self.cc.max_stale = v;
                }
            }
            "min-fresh" => first_delta(
                &mut self.cc,
                &mut self.seen_min_fresh,
                name,
                delta(&arg),
                |c| &mut c.min_fresh,
            ),
            "stale-while-revalidate" => {
                first_delta(&mut self.cc, &mut self.seen_swr, name, delta(&arg), |c| {
                    &mut c.stale_while_revalidate
                })
            }
            "stale-if-error" => {
                first_delta(&mut self.cc, &mut self.seen_sie, name, delta(&arg), |c| {
                    &mut c.stale_if_error
                })
            }
            "no-store" => self.cc.no_store = true,
            "no-transform" => self.cc.no_transform = true,
            "only-if-cached" => self.cc.only_if_cached = true,
            "must-revalidate" => self.cc.must_revalidate = true,
            "proxy-revalidate" => self.cc.proxy_revalidate = true,
            "must-understand" => self.cc.must_understand = true,
            "public" => self.cc.public = true,
            "immutable" => self.cc.immutable = true,
            "no-cache" => self.cc.no_cache.merge(field_directive(arg)),
            "private" => self.cc.private.merge(field_directive(arg)),
            _ => self.cc.extensions.push((name, arg.map(|a| a.value))),
        }
    }
}

/// `max-age` / `s-maxage` duplicates: equal values are fine, any disagreement (or any
/// invalid occurrence) makes the directive invalid, i.e. stale (RFC 9111 §4.2.1).
fn merge_delta(slot: &mut Option<Delta>, new: Option<u64>) {
    let new = new.map_or(Delta::Invalid, Delta::Valid);
    *slot = match *slot {
        None => Some(new),
        Some(old) if old == new => Some(old),
        Some(_) => Some(Delta::Invalid),
    };
}

/// First occurrence wins for the other delta-seconds directives; an invalid value makes the
/// directive absent and is recorded.
fn first_delta(
    cc: &mut CacheControl,
    seen: &mut bool,
    name: String,
    value: Option<u64>,
    slot: impl FnOnce(&mut CacheControl) -> &mut Option<u64>,
) {
    if value.is_none() {
        cc.invalid.push(name);
    }
    if !std::mem::replace(seen, true) {
        *slot(cc) = value;
    }
}

/// `no-cache` / `private` argument: a comma-separated list of field names (RFC 9111
/// §5.2.2.4, §5.2.2.7). A malformed argument falls back to the unqualified form, which is
/// the stricter reading.
fn field_directive(arg: Option<Arg>) -> FieldDirective {
    let Some(arg) = arg else {
        return FieldDirective::All;
    };
    if arg.malformed {
        return FieldDirective::All;
    }
    let mut names: Vec<String> = Vec::new();
    for name in arg.value.split(',') {
        let name = name.trim_matches(is_ows);
        if name.is_empty() || !is_token(name) {
            continue;
        }
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    FieldDirective::Fields(names)
}

/// OWS (RFC 9110 §5.6.3).
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// tchar (RFC 9110 §5.6.2).
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// token (RFC 9110 §5.6.2): one or more tchar.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_tchar)
}

/// Splits a Cache-Control value into directives (RFC 9110 §5.6.1 lists, empty elements
/// ignored) and calls `f` with the lower-cased name and the unescaped argument. Commas inside
/// quoted-strings do not split (RFC 9110 §5.6.4). Elements without a name are skipped.
fn for_each_directive(s: &str, mut f: impl FnMut(String, Option<Arg>)) {
    let mut chars = s.chars().peekable();
    loop {
        // Skip separators and empty list elements.
        while chars.next_if(|&c| c == ',' || is_ows(c)).is_some() {}
        if chars.peek().is_none() {
            return;
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|&c| c != ',' && c != '=') {
            name.push(c);
        }
        let name = name.trim_matches(is_ows).to_ascii_lowercase();
        let arg = if chars.next_if_eq(&'=').is_some() {
            while chars.next_if(|&c| is_ows(c)).is_some() {}
            Some(if chars.next_if_eq(&'"').is_some() {
                read_quoted(&mut chars)
            } else {
                let mut value = String::new();
                while let Some(c) = chars.next_if(|&c| c != ',') {
                    value.push(c);
                }
                let value = value.trim_end_matches(is_ows).to_string();
                Arg {
                    malformed: !is_token(&value),
                    value,
                }
            })
        } else {
            None
        };
        if !name.is_empty() {
            f(name, arg);
        }
    }
}

/// Reads a quoted-string after its opening quote, unescaping quoted-pairs (RFC 9110
/// §5.6.4), then skips to the next comma; anything but OWS there, or a missing closing
/// quote, marks the argument malformed.
fn read_quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Arg {
    let mut value = String::new();
    let mut closed = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                closed = true;
                break;
            }
            '\\' => match chars.next() {
                Some(escaped) => value.push(escaped),
                None => break,
            },
            c => value.push(c),
        }
    }
    let mut junk = false;
    while let Some(c) = chars.next_if(|&c| c != ',') {
        junk |= !is_ows(c);
    }
    Arg {
        value,
        malformed: !closed || junk,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn fields(names: &[&str]) -> FieldDirective {
        FieldDirective::Fields(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_delta_seconds("0"), Some(0));
        assert_eq!(parse_delta_seconds("0042"), Some(42));
        assert_eq!(parse_delta_seconds("2147483647"), Some(2147483647));
        assert_eq!(parse_delta_seconds("2147483648"), Some(2147483648));
        assert_eq!(parse_delta_seconds("2147483649"), Some(DELTA_SECONDS_MAX));
        assert_eq!(
            parse_delta_seconds("99999999999999999999999999999999999999"),
            Some(DELTA_SECONDS_MAX)
        );
        for bad in ["", "-1", "+1", "1.5", " 1", "1 ", "abc", "1e3", "٣"] {
            assert_eq!(parse_delta_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn simple_response_directives() {
        let cc = CacheControl::parse("public, max-age=60, s-maxage=30, must-revalidate");
        assert!(cc.public);
        assert!(cc.must_revalidate);
        assert_eq!(cc.max_age, Some(Delta::Valid(60)));
        assert_eq!(cc.s_maxage, Some(Delta::Valid(30)));
        assert_eq!(cc.max_age_secs(), Some(60));
        assert_eq!(cc.s_maxage_secs(), Some(30));
        assert!(!cc.no_store && !cc.private.is_present() && !cc.no_cache.is_present());
        assert!(cc.extensions.is_empty() && cc.invalid.is_empty());
    }

    #[test]
    fn every_directive() {
        let cc = CacheControl::parse(
            "max-age=1, s-maxage=2, max-stale=3, min-fresh=4, stale-while-revalidate=5, \
             stale-if-error=6, no-store, no-transform, only-if-cached, must-revalidate, \
             proxy-revalidate, must-understand, public, immutable, no-cache, private",
        );
        let expected = CacheControl {
            max_age: Some(Delta::Valid(1)),
            s_maxage: Some(Delta::Valid(2)),
            max_stale: Some(Some(3)),
            min_fresh: Some(4),
            stale_while_revalidate: Some(5),
            stale_if_error: Some(6),
            no_store: true,
            no_transform: true,
            only_if_cached: true,
            must_revalidate: true,
            proxy_revalidate: true,
            must_understand: true,
            public: true,
            immutable: true,
            no_cache: FieldDirective::All,
            private: FieldDirective::All,
            extensions: vec![],
            invalid: vec![],
        };
        assert_eq!(cc, expected);
    }

    #[test]
    fn names_are_case_insensitive() {
        let cc = CacheControl::parse("MAX-AGE=10, No-Store, PRIVATE=\"Set-Cookie\", X-Ext=Val");
        assert_eq!(cc.max_age_secs(), Some(10));
        assert!(cc.no_store);
        assert_eq!(cc.private, fields(&["set-cookie"]));
        // Extension names are lower-cased, their arguments kept as sent.
        assert_eq!(
            cc.extensions,
            vec![("x-ext".to_string(), Some("Val".to_string()))]
        );
    }

    #[test]
    fn quoted_strings_with_commas_and_escapes() {
        let cc =
            CacheControl::parse(r#"private="set-cookie, x-foo", ext="a, b \"c\" \\ d", max-age=5"#);
        assert_eq!(cc.private, fields(&["set-cookie", "x-foo"]));
        assert_eq!(
            cc.extensions,
            vec![("ext".to_string(), Some(r#"a, b "c" \ d"#.to_string()))]
        );
        assert_eq!(cc.max_age_secs(), Some(5));
    }

    #[test]
    fn qualified_no_cache_and_private() {
        let cc = CacheControl::parse(r#"no-cache="Set-Cookie,  X-A ,,", private=set-cookie"#);
        assert_eq!(cc.no_cache, fields(&["set-cookie", "x-a"]));
        assert_eq!(cc.private, fields(&["set-cookie"]));
        assert!(cc.private.is_present() && !cc.private.is_all());

        // Unqualified dominates; lists are unioned.
        let cc = CacheControl::parse(r#"private="a", private="b, a", no-cache="x", no-cache"#);
        assert_eq!(cc.private, fields(&["a", "b"]));
        assert_eq!(cc.no_cache, FieldDirective::All);
        let cc = CacheControl::parse(r#"private, private="a""#);
        assert_eq!(cc.private, FieldDirective::All);

        // Malformed argument: the stricter, unqualified reading.
        for v in [
            r#"private="a"#,
            r#"private="a"junk"#,
            "private=a b",
            "private=",
        ] {
            assert_eq!(CacheControl::parse(v).private, FieldDirective::All, "{v}");
        }
        // An empty list is a (vacuous) qualified form.
        assert_eq!(CacheControl::parse(r#"private="""#).private, fields(&[]));
    }

    #[test]
    fn multiple_field_lines() {
        let mut h = HeaderMap::new();
        h.append(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=10"),
        );
        h.append(CACHE_CONTROL, HeaderValue::from_static("no-transform"));
        h.append(
            CACHE_CONTROL,
            HeaderValue::from_static("s-maxage=20, private=\"x\""),
        );
        let cc = CacheControl::from_headers(&h);
        assert!(cc.public && cc.no_transform);
        assert_eq!(cc.max_age_secs(), Some(10));
        assert_eq!(cc.s_maxage_secs(), Some(20));
        assert_eq!(cc.private, fields(&["x"]));

        // Duplicates across lines are seen as duplicates.
        let mut h = HeaderMap::new();
        h.append(CACHE_CONTROL, HeaderValue::from_static("max-age=10"));
        h.append(CACHE_CONTROL, HeaderValue::from_static("max-age=20"));
        assert!(CacheControl::from_headers(&h).max_age_invalid());

        assert_eq!(
            CacheControl::from_headers(&HeaderMap::new()),
            CacheControl::default()
        );
    }

    #[test]
    fn non_utf8_field_line_is_read_lossily() {
        let mut h = HeaderMap::new();
        h.append(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=7, x=\"\xff\"").unwrap(),
        );
        let cc = CacheControl::from_headers(&h);
        assert_eq!(cc.max_age_secs(), Some(7));
        assert_eq!(cc.extensions.len(), 1);
    }

    #[test]
    fn duplicates() {
        // Equal duplicates are fine.
        assert_eq!(
            CacheControl::parse("max-age=5, max-age=5").max_age,
            Some(Delta::Valid(5))
        );
        // Disagreeing duplicates: stale.
        let cc = CacheControl::parse("max-age=5, max-age=6, s-maxage=1, S-MAXAGE=2");
        assert!(cc.max_age_invalid() && cc.s_maxage_invalid());
        assert_eq!(cc.max_age_secs(), None);
        // An invalid occurrence poisons a valid one either way round.
        assert!(CacheControl::parse("max-age=x, max-age=6").max_age_invalid());
        assert!(CacheControl::parse("max-age=6, max-age=x").max_age_invalid());
        // Others: first occurrence wins, even when invalid.
        let cc = CacheControl::parse(
            "min-fresh=1, min-fresh=2, stale-if-error=x, stale-if-error=3, max-stale, max-stale=9",
        );
        assert_eq!(cc.min_fresh, Some(1));
        assert_eq!(cc.stale_if_error, None);
        assert_eq!(cc.max_stale, Some(None));
        assert_eq!(cc.invalid, vec!["stale-if-error".to_string()]);
    }

    #[test]
    fn invalid_delta_seconds() {
        for v in [
            "max-age=-1",
            "max-age=abc",
            "max-age=",
            "max-age",
            "max-age=1.5",
            "max-age=\"\"",
            "max-age=\"5\"x",
            "max-age=5 6",
            "max-age=\"5",
        ] {
            let cc = CacheControl::parse(v);
            assert_eq!(cc.max_age, Some(Delta::Invalid), "{v}");
            assert!(cc.max_age_invalid(), "{v}");
            assert_eq!(cc.invalid, vec!["max-age".to_string()], "{v}");
        }
        let cc = CacheControl::parse("s-maxage=-5, min-fresh=x, stale-while-revalidate=");
        assert!(cc.s_maxage_invalid());
        assert_eq!(cc.min_fresh, None);
        assert_eq!(cc.stale_while_revalidate, None);
        assert_eq!(cc.invalid.len(), 3);
        let cc = CacheControl::parse("max-stale=-1");
        assert_eq!(cc.max_stale, None);
    }

    #[test]
    fn quoted_and_spaced_delta_forms_are_accepted() {
        assert_eq!(CacheControl::parse("max-age=\"5\"").max_age_secs(), Some(5));
        assert_eq!(CacheControl::parse("max-age = 5").max_age_secs(), Some(5));
        assert_eq!(
            CacheControl::parse("max-age=\"5\" , public").max_age_secs(),
            Some(5)
        );
    }

    #[test]
    fn overflow_saturates_at_two_to_the_31() {
        let cc = CacheControl::parse(
            "max-age=4294967296, s-maxage=2147483649, min-fresh=9999999999999999999999",
        );
        assert_eq!(cc.max_age_secs(), Some(2147483648));
        assert_eq!(cc.s_maxage_secs(), Some(2147483648));
        assert_eq!(cc.min_fresh, Some(2147483648));
        // Two different huge values saturate to the same value: they agree.
        assert_eq!(
            CacheControl::parse("max-age=3000000000, max-age=4000000000").max_age_secs(),
            Some(2147483648)
        );
    }

    #[test]
    fn max_stale_forms() {
        assert_eq!(CacheControl::parse("max-stale").max_stale, Some(None));
        assert_eq!(
            CacheControl::parse("max-stale=30").max_stale,
            Some(Some(30))
        );
        assert_eq!(CacheControl::parse("public").max_stale, None);
    }

    #[test]
    fn empty_elements_and_whitespace() {
        let cc = CacheControl::parse(" ,, \t no-store ,\t, max-age=3 ,");
        assert!(cc.no_store);
        assert_eq!(cc.max_age_secs(), Some(3));
        assert_eq!(CacheControl::parse(""), CacheControl::default());
        assert_eq!(CacheControl::parse(" , ,"), CacheControl::default());
        // A value without a name is skipped.
        assert_eq!(CacheControl::parse("=5, =\"a,b\""), CacheControl::default());
    }

    #[test]
    fn arguments_on_boolean_directives_are_ignored() {
        let cc = CacheControl::parse("no-store=\"x\", public=1");
        assert!(cc.no_store && cc.public);
    }

    #[test]
    fn extensions_kept_in_order() {
        let cc = CacheControl::parse("foo, bar=1, baz=\"q, r\", public");
        assert_eq!(
            cc.extensions,
            vec![
                ("foo".to_string(), None),
                ("bar".to_string(), Some("1".to_string())),
                ("baz".to_string(), Some("q, r".to_string())),
            ]
        );
        assert!(cc.public);
    }

    #[test]
    fn never_panics() {
        let nasty = [
            "",
            ",",
            "=",
            "\"",
            "\\",
            "\"\\",
            "max-age=\"\\",
            "max-age=\"",
            "private=\"",
            "private=\"\\\"",
            "===,,,\"\"\"",
            "max-age=18446744073709551616",
            "max-age=-9223372036854775808",
            "no-cache=\"a\\",
            "é=ü, ☃=\"☃\\☃\", max-age=☃",
            "\t\t\t",
            "a=b=c=d",
            "max-age=1=2",
            "\u{0}\u{7f}",
        ];
        for s in nasty {
            let _ = CacheControl::parse(s);
            let long = s.repeat(50);
            let _ = CacheControl::parse(&long);
        }
        let _ = CacheControl::parse(&"9".repeat(10_000));
        let _ = CacheControl::parse(&format!("max-age={}", "9".repeat(10_000)));
        let _ = CacheControl::parse(&"\\\"".repeat(1000));
    }
}
