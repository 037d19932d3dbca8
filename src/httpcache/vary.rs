//! Vary (RFC 9111 §4.1): which request fields select among the stored responses of one
//! URI. [`vary_spec`] reads a response's Vary fields, [`normalized_value`] brings one
//! request field into the form that is compared, and [`variant_suffix`] encodes the values
//! of all the named fields into a byte string that identifies the variant, so that two
//! requests select the same stored response exactly when their suffixes are equal.
//!
//! Normalisation (RFC 9111 §4.1 allows what the field's own semantics permit), exactly:
//!
//! - All field lines of the name are combined in order with ", " (RFC 9110 §5.3).
//! - The value is split at commas that are outside quoted-strings (RFC 9110 §5.6.4) and
//!   comments (RFC 9110 §5.6.5); spaces and tabs (OWS) at both ends of each member are
//!   removed, and the members are joined again with "," (no space). So `a , b`, `a,b`
//!   and the two lines `a` and `b` all normalise to `a,b`. Nothing inside a member changes.
//! - For the case-insensitive list fields Accept, Accept-Charset, Accept-Encoding and
//!   Accept-Language (RFC 9110 §12.5): empty list members are dropped (RFC 9110 §5.6.1.2),
//!   OWS around the ';' of parameters and weights is removed (RFC 9110 §5.6.6, §12.4.2),
//!   and everything outside quoted-strings is lower-cased (media types, codings, charsets
//!   and language tags are case-insensitive: RFC 9110 §8.3.1, §8.4.1, §12.5.1, RFC 5646
//!   §2.1.1). The order of the members is kept: two requests listing the same members in a
//!   different order are different variants (the conservative choice: equal weights may
//!   be broken by order, RFC 9110 §12.4.2).
//! - An absent field (no line at all) differs from a present but empty one; for
//!   Accept-Encoding, for example, they mean different things (RFC 9110 §12.5.3).
//!
//! Values are compared as bytes: obs-text (bytes 0x80 to 0xFF) is kept as is, and
//! [`normalized_value`] shows each such byte as the character of the same code point
//! (ISO-8859-1), a one-to-one mapping.

use http::header::{HeaderMap, HeaderName, VARY};

/// What a response's Vary fields say (RFC 9111 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarySpec {
    /// `Vary: *`: no later request matches the stored response without revalidation.
    Star,
    /// The named request fields, lower case, sorted by name and without repeats. Empty
    /// when the response has no Vary field (or none with a valid name).
    Names(Vec<HeaderName>),
}

/// Field names whose values are case-insensitive lists (RFC 9110 §12.5).
const CASE_INSENSITIVE_LISTS: [&str; 4] = [
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
];

/// Separates a field name from its value in a variant suffix.
const NAME_END: u8 = 0x01;
/// Stands for an absent field in a variant suffix.
const ABSENT: u8 = 0x02;
/// Separates the fields of a variant suffix.
const FIELD_SEP: u8 = 0x03;
/// Introduces an escaped byte 0x00 to 0x04 inside a value of a variant suffix.
const ESCAPE: u8 = 0x04;

/// Reads all Vary field lines of `resp` as one comma-separated list (RFC 9110 §12.5.5):
/// a `*` member anywhere gives [`VarySpec::Star`]; other members are field names,
/// case-insensitive, with OWS around them removed. Empty members and members that are not
/// valid field names are ignored.
pub fn vary_spec(resp: &HeaderMap) -> VarySpec {
    let mut names: Vec<HeaderName> = Vec::new();
    for value in resp.get_all(VARY) {
        for member in value.as_bytes().split(|&b| b == b',') {
            let member = trim_ows(member);
            if member == b"*" {
                return VarySpec::Star;
            }
            if member.is_empty() {
                continue;
            }
            // `from_bytes` lower-cases; it refuses anything that is not a token.
            if let Ok(name) = HeaderName::from_bytes(member) {
                names.push(name);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    VarySpec::Names(names)
}

/// The value of request field `name` in the form that is compared (see the module
/// documentation for exactly what is normalised); None when `req` has no line of that
/// name. Bytes 0x80 to 0xFF appear as the characters U+0080 to U+00FF.
pub fn normalized_value(req: &HeaderMap, name: &HeaderName) -> Option<String> {
    normalized_bytes(req, name).map(|bytes| bytes.iter().map(|&b| char::from(b)).collect())
}

/// A byte string identifying the variant `req` selects among responses that vary on
/// `spec_names` (pass the names of [`VarySpec::Names`], whose order is canonical). For
/// each name in order: the name, 0x01, then 0x02 when the field is absent or else its
/// normalised value; the items are joined with 0x03. Empty when `spec_names` is.
///
/// Bytes 0x00 to 0x04 inside a value (which `http::HeaderValue` refuses, so they only come
/// from values built unchecked) are written as 0x04 followed by the byte plus 0x40. Names
/// are tokens, so the separators stay unambiguous and two requests share a suffix exactly
/// when every named field matches after normalisation; the suffix never contains 0x00.
pub fn variant_suffix(spec_names: &[HeaderName], req: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, name) in spec_names.iter().enumerate() {
        if i > 0 {
            out.push(FIELD_SEP);
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.push(NAME_END);
        match normalized_bytes(req, name) {
            None => out.push(ABSENT),
            Some(value) => push_escaped(&mut out, &value),
        }
    }
    out
}

/// A value inside a variant suffix: bytes 0x00 to 0x04 become 0x04 and the byte plus 0x40.
fn push_escaped(out: &mut Vec<u8>, value: &[u8]) {
    for &b in value {
        if b <= ESCAPE {
            out.push(ESCAPE);
            out.push(b + 0x40);
        } else {
            out.push(b);
        }
    }
}

/// The normalised value as bytes; None when the field is absent.
fn normalized_bytes(req: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut lines = req.get_all(name).iter().peekable();
    lines.peek()?;
    // RFC 9110 §5.3: field lines combine, in order, with a comma.
    let mut combined: Vec<u8> = Vec::new();
    for (i, line) in lines.enumerate() {
        if i > 0 {
            combined.extend_from_slice(b", ");
        }
        combined.extend_from_slice(line.as_bytes());
    }
    let list = CASE_INSENSITIVE_LISTS.contains(&name.as_str());
    let mut out: Vec<u8> = Vec::with_capacity(combined.len());
    let mut first = true;
    for member in split_outside_quotes(&combined, b',') {
        let member = trim_ows(member);
        if list && member.is_empty() {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if list {
            push_list_member(&mut out, member);
        } else {
            out.extend_from_slice(member);
        }
    }
    Some(out)
}

/// A member of a case-insensitive list: OWS around each ';' removed, lower-cased outside
/// quoted-strings.
fn push_list_member(out: &mut Vec<u8>, member: &[u8]) {
    for (i, part) in split_outside_quotes(member, b';').enumerate() {
        if i > 0 {
            out.push(b';');
        }
        let mut quoted = false;
        let mut escaped = false;
        for &b in trim_ows(part) {
            if quoted {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    quoted = false;
                }
                out.push(b);
            } else {
                quoted = b == b'"';
                out.push(b.to_ascii_lowercase());
            }
        }
    }
}

/// Splits `value` at each `sep` that is outside quoted-strings (RFC 9110 §5.6.4) and
/// comments (RFC 9110 §5.6.5, nested), honouring quoted-pairs in both. An unclosed quote
/// or comment runs to the end, so its separators are kept as data.
fn split_outside_quotes(value: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut start = 0usize;
    let mut i = 0usize;
    let mut quoted = false;
    let mut comment_depth = 0usize;
    let mut escaped = false;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while let Some(&b) = value.get(i) {
            i += 1;
            if escaped {
                escaped = false;
            } else if quoted || comment_depth > 0 {
                match b {
                    b'\\' => escaped = true,
                    b'"' if quoted => quoted = false,
                    b'(' if !quoted => comment_depth += 1,
                    b')' if !quoted => comment_depth -= 1,
                    _ => {}
                }
            } else if b == b'"' {
                quoted = true;
            } else if b == b'(' {
                comment_depth = 1;
            } else if b == sep {
                let piece = value.get(start..i - 1).unwrap_or_default();
                start = i;
                return Some(piece);
            }
        }
        done = true;
        Some(value.get(start..).unwrap_or_default())
    })
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
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        h
    }

    fn name(s: &str) -> HeaderName {
        HeaderName::from_bytes(s.as_bytes()).unwrap()
    }

    fn names(list: &[&str]) -> VarySpec {
        VarySpec::Names(list.iter().map(|s| name(s)).collect())
    }

    fn norm(pairs: &[(&str, &[u8])], field: &str) -> Option<String> {
        normalized_value(&map(pairs), &name(field))
    }

    fn suffix(spec: &[&str], pairs: &[(&str, &[u8])]) -> Vec<u8> {
        let spec: Vec<HeaderName> = spec.iter().map(|s| name(s)).collect();
        variant_suffix(&spec, &map(pairs))
    }

    #[test]
    fn vary_names_are_combined_sorted_and_deduplicated() {
        assert_eq!(vary_spec(&HeaderMap::new()), names(&[]));
        assert_eq!(
            vary_spec(&map(&[("vary", b"Accept-Encoding, accept-encoding")])),
            names(&["accept-encoding"])
        );
        assert_eq!(
            vary_spec(&map(&[
                ("vary", b"User-Agent ,Accept-Encoding"),
                ("vary", b" accept-language,,"),
                ("vary", b""),
            ])),
            names(&["accept-encoding", "accept-language", "user-agent"])
        );
        // Not tokens: ignored.
        assert_eq!(
            vary_spec(&map(&[("vary", b"bad name, x@y, \"q\", origin")])),
            names(&["origin"])
        );
        assert_eq!(vary_spec(&map(&[("vary", b", ,")])), names(&[]));
    }

    #[test]
    fn star_anywhere_wins() {
        assert_eq!(vary_spec(&map(&[("vary", b"*")])), VarySpec::Star);
        assert_eq!(
            vary_spec(&map(&[("vary", b"accept"), ("vary", b"origin , * ")])),
            VarySpec::Star
        );
        // A member that merely contains '*' is not a star (and is a valid token).
        assert_eq!(vary_spec(&map(&[("vary", b"x*")])), names(&["x*"]));
    }

    #[test]
    fn absent_differs_from_empty() {
        assert_eq!(norm(&[], "accept-encoding"), None);
        assert_eq!(
            norm(&[("accept-encoding", b"")], "accept-encoding").as_deref(),
            Some("")
        );
        assert_eq!(norm(&[("x-a", b"  ")], "x-a").as_deref(), Some(""));
        let absent = suffix(&["accept-encoding"], &[]);
        let empty = suffix(&["accept-encoding"], &[("accept-encoding", b"")]);
        assert_ne!(absent, empty);
        assert_eq!(absent, b"accept-encoding\x01\x02");
        assert_eq!(empty, b"accept-encoding\x01");
    }

    #[test]
    fn case_insensitive_lists_are_normalised() {
        let a = suffix(&["accept-encoding"], &[("accept-encoding", b"gzip,br")]);
        let b = suffix(&["accept-encoding"], &[("accept-encoding", b"  GZIP , br")]);
        assert_eq!(a, b);
        assert_eq!(
            norm(&[("accept-encoding", b"  GZIP , br")], "accept-encoding").as_deref(),
            Some("gzip,br")
        );
        assert_eq!(
            norm(
                &[("accept-language", b"en-US ; Q=0.8,, DE")],
                "accept-language"
            )
            .as_deref(),
            Some("en-us;q=0.8,de")
        );
        // Quoted-strings keep their case and their commas.
        assert_eq!(
            norm(
                &[("accept", b"Text/HTML;Level=1 ; X=\"A, B\\\"C\" , */*")],
                "accept"
            )
            .as_deref(),
            Some("text/html;level=1;x=\"A, B\\\"C\",*/*")
        );
        assert_eq!(
            norm(
                &[("accept-charset", b"UTF-8, ISO-8859-1;q=0.5")],
                "accept-charset"
            )
            .as_deref(),
            Some("utf-8,iso-8859-1;q=0.5")
        );
    }

    #[test]
    fn member_order_matters() {
        let a = suffix(&["accept-encoding"], &[("accept-encoding", b"gzip, br")]);
        let b = suffix(&["accept-encoding"], &[("accept-encoding", b"br, gzip")]);
        assert_ne!(a, b);
    }

    #[test]
    fn multiple_lines_are_combined() {
        let one = suffix(&["accept-encoding"], &[("accept-encoding", b"gzip, br")]);
        let two = suffix(
            &["accept-encoding"],
            &[("accept-encoding", b"gzip"), ("accept-encoding", b"br")],
        );
        assert_eq!(one, two);
        assert_eq!(
            norm(&[("x-list", b"a"), ("x-list", b" b ,c")], "x-list").as_deref(),
            Some("a,b,c")
        );
        // An empty line of a case-insensitive list adds nothing.
        assert_eq!(
            norm(
                &[("accept-encoding", b""), ("accept-encoding", b"br")],
                "accept-encoding"
            )
            .as_deref(),
            Some("br")
        );
    }

    #[test]
    fn other_fields_keep_case_and_inner_whitespace() {
        assert_eq!(
            norm(
                &[("user-agent", b"  Mozilla/5.0 (X11,  Linux)  ")],
                "user-agent"
            )
            .as_deref(),
            Some("Mozilla/5.0 (X11,  Linux)")
        );
        assert_ne!(
            suffix(&["x-token"], &[("x-token", b"Abc")]),
            suffix(&["x-token"], &[("x-token", b"abc")])
        );
        // Empty members of an unknown field are data.
        assert_eq!(norm(&[("x-a", b"a, ,b")], "x-a").as_deref(), Some("a,,b"));
        // Commas inside a quoted-string do not split.
        assert_eq!(
            norm(&[("x-a", b"\"a , b\" , c")], "x-a").as_deref(),
            Some("\"a , b\",c")
        );
        // An unclosed quote keeps the rest as it is.
        assert_eq!(
            norm(&[("x-a", b"a , \"b , c")], "x-a").as_deref(),
            Some("a,\"b , c")
        );
    }

    #[test]
    fn obs_text_is_kept_one_to_one() {
        let v = norm(
            &[("accept-language", b"\xe9N, \xc3\xa9")],
            "accept-language",
        );
        assert_eq!(v.as_deref(), Some("\u{e9}n,\u{c3}\u{a9}"));
        assert_ne!(
            suffix(&["x-a"], &[("x-a", b"\xe9")]),
            suffix(&["x-a"], &[("x-a", b"\xc3\xa9")])
        );
    }

    #[test]
    fn suffix_layout_and_independence_of_other_fields() {
        let s = suffix(
            &["accept-encoding", "origin"],
            &[
                ("accept-encoding", b"BR"),
                ("cookie", b"a=1"),
                ("origin", b"https://a.example"),
            ],
        );
        assert_eq!(s, b"accept-encoding\x01br\x03origin\x01https://a.example");
        assert_eq!(
            suffix(&["origin"], &[("origin", b"x"), ("cookie", b"a=1")]),
            suffix(&["origin"], &[("origin", b"x"), ("cookie", b"b=2")])
        );
        assert!(suffix(&[], &[("origin", b"x")]).is_empty());
        // Values built unchecked cannot imitate an absent field or the next item.
        let escaped = |v: &[u8]| {
            let mut out = Vec::new();
            push_escaped(&mut out, v);
            out
        };
        let forged = escaped(b"\x02\x03x-b\x01\x02\x00");
        assert!(!forged.iter().any(|&b| b <= FIELD_SEP), "{forged:?}");
        assert_eq!(forged, b"\x04B\x04Cx-b\x04A\x04B\x04@");
        assert_ne!(escaped(b"\x00"), escaped(b"\x04@"));
        assert_eq!(escaped(b"gzip"), b"gzip");
    }

    /// Generated values and Vary lists: nothing panics, normalisation is idempotent, and
    /// suffixes agree with the normalised values.
    #[test]
    fn never_panics_and_is_consistent() {
        const ALPHABET: &[&[u8]] = &[
            b",",
            b";",
            b" ",
            b"\t",
            b"\"",
            b"\\",
            b"(",
            b")",
            b"*",
            b"=",
            b"Gzip",
            b"br",
            b"q=0.5",
            b"\xff",
            b"\xc3\xa9",
            b"EN",
            b"x-y",
            b"",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let fields = ["accept-encoding", "accept", "x-a", "vary"];
        for _ in 0..4000 {
            let mut h = HeaderMap::new();
            for _ in 0..next() % 3 {
                let len = next() % 8;
                let v: Vec<u8> = (0..len)
                    .flat_map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize].to_vec())
                    .collect();
                let Ok(value) = HeaderValue::from_bytes(&v) else {
                    continue;
                };
                let field = fields[(next() % fields.len() as u64) as usize];
                h.append(name(field), value);
            }
            let spec = match vary_spec(&h) {
                VarySpec::Star => vec![name("x-a")],
                VarySpec::Names(n) => n,
            };
            for field in fields {
                let n = name(field);
                let Some(v) = normalized_value(&h, &n) else {
                    continue;
                };
                // Normalising a normalised value changes nothing.
                let bytes: Vec<u8> = v.chars().map(|c| c as u32 as u8).collect();
                let mut again = HeaderMap::new();
                again.insert(n.clone(), HeaderValue::from_bytes(&bytes).unwrap());
                assert_eq!(normalized_value(&again, &n).as_deref(), Some(v.as_str()));
                assert_eq!(
                    variant_suffix(std::slice::from_ref(&n), &again),
                    variant_suffix(std::slice::from_ref(&n), &h)
                );
            }
            let _ = variant_suffix(&spec, &h);
        }
    }
}
