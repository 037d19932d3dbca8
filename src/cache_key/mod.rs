//! Cache keys, CloudFront style: which parts of a viewer's request identify a cached
//! object. [`cache_key`] builds the keyed path, query, headers and cookies first and then
//! encodes exactly those into the key; everything the key includes is forwarded to the
//! origin exactly as keyed, so nobody can poison an entry with a value the key holds
//! differently. What a behaviour's origin request policy forwards besides the key is
//! [`forward`]'s business, and never keyed: a response that depends on such a value must
//! say so with `Vary`. The normalised path is the path the edge matches behaviours on,
//! keys and forwards (the caller adds the origin path prefix; the normalised path never
//! climbs above '/').
//!
//! Key layout (bytes), fields separated by 0x00:
//!
//! ```text
//! distribution 0x00 path 0x00 query 0x00 headers 0x00 cookies
//! ```
//!
//! - `path`: the normalised path ([`normalize_path`], default root object applied).
//! - `query`: the keyed query string without '?' (the parameters the cache key policy
//!   includes, in the viewer's order), empty when nothing is keyed.
//! - `headers`: one item per header of the policy, in policy order, joined with 0x01:
//!   `name:value` when the viewer sent it (all values joined with ", "), just `name` when
//!   it did not, so an absent header differs from an empty one. `host` is the viewer's
//!   host, lower case, without port; `accept-encoding` is `br`, `gzip` or absent.
//! - `cookies`: the keyed cookies as a rebuilt Cookie header (`a=1; b=2`), empty when
//!   none is included.
//!
//! Bytes 0x00, 0x01 and 0x02 inside any field are written as 0x02 followed by `0`, `1` or
//! `2`. Normalised paths and queries never contain them and `http::HeaderValue` refuses
//! them, so this only guards against values built unchecked; it keeps the separators
//! unambiguous whatever the input. The escaping is byte by byte, so an escaped prefix is a
//! prefix of the escaped whole: [`exact_path_prefix`] (`distribution 0x00 path 0x00`) and
//! [`path_prefix`] (`distribution 0x00 path-prefix`, no terminator) select keys for
//! invalidations. [`parse_key`] is the inverse, for cache inspection.

use http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT_ENCODING, COOKIE, HOST};
use http::Uri;

use crate::config::{CacheKeyPolicy, ListPolicy};

pub mod forward;

/// Longest key accepted, in bytes; longer requests are answered 414.
pub const MAX_KEY_LEN: usize = 8192;

/// Separates the five fields of a key.
const FIELD_SEP: u8 = 0x00;
/// Separates the header items of the headers field.
const HEADER_SEP: u8 = 0x01;
/// Introduces an escaped 0x00, 0x01 or 0x02 inside a field.
const ESCAPE: u8 = 0x02;

/// What a key is built from: one viewer request and the behaviour that matched it.
#[derive(Debug, Clone, Copy)]
pub struct KeyInput<'a> {
    /// Distribution id.
    pub distribution: &'a str,
    /// The viewer's request target (origin-form, or absolute-form: only its path, query
    /// and authority are used).
    pub uri: &'a Uri,
    /// The viewer's request headers.
    pub headers: &'a HeaderMap,
    /// The matched behaviour's cache key policy.
    pub policy: &'a CacheKeyPolicy,
    /// Object served for exactly "/" (e.g. "index.html"), if any.
    pub default_root_object: Option<&'a str>,
}

/// A cache key and the request parts it includes, which are forwarded to the origin as
/// keyed (the origin request policy may add more: [`forward`]).
#[derive(Debug, Clone)]
pub struct KeyedRequest {
    /// The store key (layout in the module documentation).
    pub key: Vec<u8>,
    /// Normalised path to forward (the caller adds the origin path prefix).
    pub path: String,
    /// The keyed query string without '?'; None when nothing is included (what is
    /// forwarded adds the origin request policy's parameters: [`forward::forwarded_query`]).
    pub query: Option<String>,
    /// Exactly the policy's headers the viewer sent (accept-encoding normalised, host
    /// excluded), plus a rebuilt Cookie header with the included cookies only: what is
    /// forwarded of the key, as keyed.
    pub forwarded_headers: HeaderMap,
    /// The viewer's host, lower case without port, when "host" is in the policy and the
    /// viewer sent one: the caller forwards it as Host. This is the keyed value, so the
    /// origin never sees a host variant the key does not distinguish.
    pub viewer_host: Option<String>,
}

/// Why no key could be built. The edge answers 400 or 414 ([`KeyError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("bad request path: {0}")]
    BadPath(String),
    #[error("bad query string: {0}")]
    BadQuery(String),
    #[error("the cache key would be {len} bytes, more than the limit of {max}")]
    TooLong { len: usize, max: usize },
}

impl KeyError {
    /// The status the edge answers with: 414 for [`KeyError::TooLong`], else 400.
    pub fn status(&self) -> http::StatusCode {
        match self {
            KeyError::TooLong { .. } => http::StatusCode::URI_TOO_LONG,
            KeyError::BadPath(_) | KeyError::BadQuery(_) => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// The fields of a key, as [`parse_key`] reads them back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParts {
    pub distribution: String,
    pub path: String,
    /// None when the query field is empty.
    pub query: Option<String>,
    /// Policy order; the value is None when the viewer did not send the header.
    pub headers: Vec<(String, Option<String>)>,
    /// None when the cookies field is empty.
    pub cookies: Option<String>,
}

impl KeyParts {
    /// Encodes these parts as a key: `parse_key(k).map(|p| p.to_key()) == Some(k)` for
    /// every key `k` that parses.
    pub fn to_key(&self) -> Vec<u8> {
        let headers: Vec<(&[u8], Option<&[u8]>)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_deref().map(str::as_bytes)))
            .collect();
        encode_key(
            self.distribution.as_bytes(),
            self.path.as_bytes(),
            self.query.as_deref().unwrap_or("").as_bytes(),
            &headers,
            self.cookies.as_deref().unwrap_or("").as_bytes(),
        )
    }
}

/// Builds the cache key of a viewer request, and the path, query, headers and cookies to
/// forward, which are exactly what the key includes.
pub fn cache_key(input: &KeyInput) -> Result<KeyedRequest, KeyError> {
    let mut path = normalize_path(input.uri.path())?;
    if path == "/" {
        if let Some(object) = input.default_root_object {
            path = root_object_path(object)?;
        }
    }
    let query = forwarded_query(input.uri.query(), &input.policy.query_strings)?;

    let mut forwarded_headers = HeaderMap::new();
    let mut viewer_host = None;
    let mut keyed: Vec<(HeaderName, Option<Vec<u8>>)> = Vec::new();
    for name in &input.policy.headers {
        // Config validation refuses invalid names; such a header can never be sent anyway.
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        // Cookies go through the cookie policy only: forwarding the raw Cookie header
        // would forward cookies the key does not include.
        if name == COOKIE || keyed.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let value = if name == HOST {
            viewer_host = host_of(input.uri, input.headers);
            viewer_host.clone().map(String::into_bytes)
        } else if name == ACCEPT_ENCODING {
            normalize_accept_encoding(input.headers).map(|coding| {
                forwarded_headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(coding));
                coding.as_bytes().to_vec()
            })
        } else {
            // Forwarded as one joined value, so the origin sees exactly the keyed bytes.
            join_values(input.headers, &name).and_then(|joined| {
                let value = HeaderValue::from_bytes(&joined).ok()?;
                forwarded_headers.insert(name.clone(), value);
                Some(joined)
            })
        };
        keyed.push((name, value));
    }

    let cookies = included_cookies(input.headers, &input.policy.cookies)
        .and_then(|c| HeaderValue::from_bytes(&c).ok().map(|v| (c, v)));
    let cookie_bytes = match cookies {
        Some((bytes, value)) => {
            forwarded_headers.insert(COOKIE, value);
            bytes
        }
        None => Vec::new(),
    };

    let headers: Vec<(&[u8], Option<&[u8]>)> = keyed
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_deref()))
        .collect();
    let key = encode_key(
        input.distribution.as_bytes(),
        path.as_bytes(),
        query.as_deref().unwrap_or("").as_bytes(),
        &headers,
        &cookie_bytes,
    );
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(KeyedRequest {
        key,
        path,
        query,
        forwarded_headers,
        viewer_host,
    })
}

/// Normalises a request path (RFC 3986 §6.2.2): percent-encoding normalised (§6.2.2.1,
/// §6.2.2.2), characters not allowed in a path encoded, then dot segments removed
/// (§5.2.4) without ever climbing above '/'. Duplicate slashes are kept, as CloudFront
/// does. Empty means "/"; anything else must start with '/'. A ".." between encoded
/// slashes or backslashes (`..%2F`, `%5C..`) is refused: origins that decode them before
/// resolving dot segments would climb above the origin path.
pub fn normalize_path(raw: &str) -> Result<String, KeyError> {
    if raw.is_empty() {
        return Ok("/".to_owned());
    }
    if !raw.starts_with('/') {
        return Err(KeyError::BadPath(format!(
            "it must start with '/' (got {})",
            preview(raw.as_bytes())
        )));
    }
    let encoded = normalize_path_encoding(raw.as_bytes())?;
    let path = remove_dot_segments(&encoded);
    if has_hidden_dot_dot(&path) {
        return Err(KeyError::BadPath(format!(
            "a \"..\" next to an encoded '/' or '\\' (%2F, %5C) is refused, as an origin \
             that decodes it would climb above its path (got {})",
            preview(raw.as_bytes())
        )));
    }
    Ok(path)
}

/// Whether a segment of a normalised path holds a ".." delimited by `%2F` or `%5C`
/// (the only encodings of separators left after normalisation; escapes are upper-case).
fn has_hidden_dot_dot(path: &str) -> bool {
    path.split('/')
        .filter(|s| s.contains("%2F") || s.contains("%5C"))
        .any(|s| {
            s.split("%2F")
                .flat_map(|p| p.split("%5C"))
                .any(|p| p == "..")
        })
}

/// Key prefix of every key of `distribution` whose normalised path starts with `path`
/// (for invalidations such as "/images/*": pass "/images/"). `path` is used as given, so
/// it should be normalised the way request paths are.
pub fn path_prefix(distribution: &str, path: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(distribution.len() + path.len() + 1);
    push_escaped(&mut out, distribution.as_bytes());
    out.push(FIELD_SEP);
    push_escaped(&mut out, path.as_bytes());
    out
}

/// Key prefix of every key of `distribution` for exactly the normalised path `path`,
/// whatever its query, headers and cookies.
pub fn exact_path_prefix(distribution: &str, path: &str) -> Vec<u8> {
    let mut out = path_prefix(distribution, path);
    out.push(FIELD_SEP);
    out
}

/// The key of the variant of `primary` that `req` selects, for a response that varies on
/// `names` (storage-format.md §8): `primary ++ 0x00 ++ suffix`. 0x00 never occurs inside a
/// key field (it is escaped), so the suffix cannot be confused with the primary key's
/// fields, and exact-path prefixes still match every variant.
pub fn variant_key(primary: &[u8], names: &[String], req: &HeaderMap) -> Vec<u8> {
    let names: Vec<HeaderName> = names
        .iter()
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    let mut k = primary.to_vec();
    k.push(0);
    k.extend_from_slice(&crate::httpcache::variant_suffix(&names, req));
    k
}

/// Reads a key back into its fields; None when `key` is not a key this module builds
/// (wrong number of fields, bad escape, a field that is not UTF-8, a path not starting
/// with '/', an empty header name). Header and cookie values the viewer sent as non-UTF-8
/// bytes (obs-text) make the key unreadable here; show such keys raw.
pub fn parse_key(key: &[u8]) -> Option<KeyParts> {
    let mut fields = key.split(|&b| b == FIELD_SEP);
    let distribution = unescape_utf8(fields.next()?)?;
    let path = unescape_utf8(fields.next()?)?;
    let query = unescape_utf8(fields.next()?)?;
    let headers_field = fields.next()?;
    let cookies = unescape_utf8(fields.next()?)?;
    if fields.next().is_some() || !path.starts_with('/') {
        return None;
    }
    let mut headers = Vec::new();
    if !headers_field.is_empty() {
        for item in headers_field.split(|&b| b == HEADER_SEP) {
            let item = unescape_utf8(item)?;
            let (name, value) = match item.split_once(':') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (item, None),
            };
            if name.is_empty() {
                return None;
            }
            headers.push((name, value));
        }
    }
    Some(KeyParts {
        distribution,
        path,
        query: non_empty(query),
        headers,
        cookies: non_empty(cookies),
    })
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

fn encode_key(
    distribution: &[u8],
    path: &[u8],
    query: &[u8],
    headers: &[(&[u8], Option<&[u8]>)],
    cookies: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(distribution.len() + path.len() + query.len() + 64);
    push_escaped(&mut out, distribution);
    out.push(FIELD_SEP);
    push_escaped(&mut out, path);
    out.push(FIELD_SEP);
    push_escaped(&mut out, query);
    out.push(FIELD_SEP);
    for (i, (name, value)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(HEADER_SEP);
        }
        push_escaped(&mut out, name);
        if let Some(value) = value {
            out.push(b':');
            push_escaped(&mut out, value);
        }
    }
    out.push(FIELD_SEP);
    push_escaped(&mut out, cookies);
    out
}

fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b <= ESCAPE {
            out.push(ESCAPE);
            out.push(b'0' + b);
        } else {
            out.push(b);
        }
    }
}

fn unescape_utf8(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut it = bytes.iter();
    while let Some(&b) = it.next() {
        if b == ESCAPE {
            match it.next() {
                Some(&e @ b'0'..=b'2') => out.push(e - b'0'),
                _ => return None,
            }
        } else if b < ESCAPE {
            return None;
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// The path a behaviour's pattern is matched against: the normalised request path, or for
/// `/` the normalised default root object (`root`, from [`root_object_path`]) when there
/// is one, as the key is formed.
pub fn behavior_path<'a>(path: &'a str, root: Option<&'a str>) -> &'a str {
    match (root, path) {
        (Some(root), "/") => root,
        _ => path,
    }
}

/// The path of the default root object, normalised like any request path.
pub fn root_object_path(object: &str) -> Result<String, KeyError> {
    let object = object.trim_start_matches('/');
    if object.is_empty() {
        return Ok("/".to_owned());
    }
    normalize_path(&format!("/{object}"))
        .map_err(|e| KeyError::BadPath(format!("default root object: {e}")))
}

/// Unreserved characters (RFC 3986 §2.3): their escapes are decoded (§6.2.2.2).
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// sub-delims (RFC 3986 §2.2).
fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Allowed raw in a path: pchar and '/' (RFC 3986 §3.3), '%' aside. '?' and '#' are not,
/// so a path can never turn into a query or fragment at the origin.
fn is_path_raw(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@' | b'/')
}

/// Allowed raw in a query: pchar, '/' and '?' (RFC 3986 §3.4), '%' aside.
fn is_query_raw(b: u8) -> bool {
    is_path_raw(b) || b == b'?'
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte of the escape starting at `bytes[at]` (a '%'), if two hex digits follow.
fn decode_escape(bytes: &[u8], at: usize) -> Option<u8> {
    let hi = hex_value(*bytes.get(at.checked_add(1)?)?)?;
    let lo = hex_value(*bytes.get(at.checked_add(2)?)?)?;
    Some(hi << 4 | lo)
}

/// Upper-case hex (RFC 3986 §6.2.2.1).
fn push_pct(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0f)]));
}

fn bad_escape(bytes: &[u8], at: usize, what: &str) -> String {
    let end = bytes.len().min(at.saturating_add(3));
    let escape = bytes.get(at..end).unwrap_or_default();
    format!(
        "invalid percent-escape {} at byte {at} of the {what}",
        preview(escape)
    )
}

/// A short, printable rendering of user input for error messages.
fn preview(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let shown = bytes.get(..MAX).unwrap_or(bytes);
    let mut s = format!("\"{}\"", String::from_utf8_lossy(shown).escape_debug());
    if bytes.len() > MAX {
        s.push_str("...");
    }
    s
}

/// Percent-encoding normalisation of a path: escapes validated, escapes of unreserved
/// characters decoded (so `%2E%2E` is a dot segment afterwards), others kept upper-cased
/// (`%2F` is data, not a separator), disallowed raw bytes encoded (backslash included:
/// it is never a separator).
fn normalize_path_encoding(bytes: &[u8]) -> Result<String, KeyError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let v = decode_escape(bytes, i)
                .ok_or_else(|| KeyError::BadPath(bad_escape(bytes, i, "path")))?;
            if is_unreserved(v) {
                out.push(char::from(v));
            } else {
                push_pct(&mut out, v);
            }
            i += 3;
        } else {
            if is_path_raw(b) {
                out.push(char::from(b));
            } else {
                push_pct(&mut out, b);
            }
            i += 1;
        }
    }
    Ok(out)
}

/// RFC 3986 §5.2.4 on a path starting with '/', segment by segment: "." is dropped, ".."
/// drops the previous segment (nothing at the root), and either one last leaves a
/// trailing '/'. Empty segments (duplicate slashes) are ordinary segments.
fn remove_dot_segments(path: &str) -> String {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let mut out: Vec<&str> = Vec::new();
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        if last {
            out.push("");
        }
    }
    let mut result = String::with_capacity(path.len());
    for segment in &out {
        result.push('/');
        result.push_str(segment);
    }
    if result.is_empty() {
        result.push('/');
    }
    result
}

/// Does `policy` include the (decoded) name? Non-UTF-8 names can equal no listed name.
fn list_includes(policy: &ListPolicy, name: &[u8]) -> bool {
    match std::str::from_utf8(name) {
        Ok(name) => policy.includes(name),
        Err(_) => matches!(policy, ListPolicy::All | ListPolicy::AllExcept(_)),
    }
}

/// The query string to forward (and key): included parameters in the viewer's order with
/// their own encoding, except raw bytes not allowed in a query (RFC 3986 §3.4) which are
/// encoded. An invalid escape anywhere is an error unless the policy forwards nothing.
fn forwarded_query(raw: Option<&str>, policy: &ListPolicy) -> Result<Option<String>, KeyError> {
    query_of_any(raw, &[policy])
}

/// [`forwarded_query`] for the parameters any of `policies` includes.
pub(crate) fn query_of_any(
    raw: Option<&str>,
    policies: &[&ListPolicy],
) -> Result<Option<String>, KeyError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if policies.iter().all(|p| **p == ListPolicy::None) {
        return Ok(None);
    }
    let bytes = raw.as_bytes();
    let mut out = String::new();
    let mut start = 0;
    for piece in bytes.split(|&b| b == b'&') {
        let piece_start = start;
        start += piece.len() + 1;
        if piece.is_empty() {
            continue;
        }
        let mut encoded = String::with_capacity(piece.len());
        let mut name = Vec::new();
        let mut in_name = true;
        let mut i = 0;
        while let Some(&b) = piece.get(i) {
            if b == b'%' {
                let v = decode_escape(piece, i).ok_or_else(|| {
                    KeyError::BadQuery(bad_escape(bytes, piece_start + i, "query"))
                })?;
                // Kept as sent: only the comparison with the policy uses the decoded name.
                encoded.push_str(raw.get(piece_start + i..piece_start + i + 3).unwrap_or(""));
                if in_name {
                    name.push(v);
                }
                i += 3;
                continue;
            }
            if b == b'=' {
                in_name = false;
            }
            if in_name {
                name.push(b);
            }
            if is_query_raw(b) {
                encoded.push(char::from(b));
            } else {
                push_pct(&mut encoded, b);
            }
            i += 1;
        }
        if !policies.iter().any(|p| list_includes(p, &name)) {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&encoded);
    }
    Ok(non_empty(out))
}

/// All the viewer's values of `name`, joined with ", " (RFC 9110 §5.3); None if absent.
fn join_values(headers: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut joined: Option<Vec<u8>> = None;
    for value in headers.get_all(name) {
        match &mut joined {
            None => joined = Some(value.as_bytes().to_vec()),
            Some(j) => {
                j.extend_from_slice(b", ");
                j.extend_from_slice(value.as_bytes());
            }
        }
    }
    joined
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Is this qvalue zero (RFC 9110 §12.4.2: "0", "0.", "0.0", ...)?
fn is_zero_q(v: &[u8]) -> bool {
    match v {
        [b'0'] => true,
        [b'0', b'.', rest @ ..] => rest.iter().all(|&b| b == b'0'),
        _ => false,
    }
}

/// Accept-Encoding reduced to what the origin may use: "br" if acceptable, else "gzip",
/// else None (identity). A coding is acceptable when listed without q=0, or when not
/// listed and `*` is (RFC 9110 §12.5.3). A coding listed twice with q=0 once is refused.
fn normalize_accept_encoding(headers: &HeaderMap) -> Option<&'static str> {
    let (mut br, mut gzip, mut star) = (None::<bool>, None::<bool>, None::<bool>);
    for value in headers.get_all(ACCEPT_ENCODING) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let mut parts = item.split(|&b| b == b';');
            let coding = trim_ows(parts.next().unwrap_or_default());
            let acceptable = !parts.any(|param| {
                let param = trim_ows(param);
                match param.iter().position(|&b| b == b'=') {
                    Some(eq) => {
                        let (k, v) = param.split_at(eq);
                        trim_ows(k).eq_ignore_ascii_case(b"q")
                            && is_zero_q(trim_ows(v.get(1..).unwrap_or_default()))
                    }
                    None => false,
                }
            });
            let slot = if coding.eq_ignore_ascii_case(b"br") {
                &mut br
            } else if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip")
            {
                &mut gzip
            } else if coding == b"*" {
                &mut star
            } else {
                continue;
            };
            *slot = Some(slot.unwrap_or(true) && acceptable);
        }
    }
    let accepts = |explicit: Option<bool>| explicit.or(star).unwrap_or(false);
    if accepts(br) {
        Some("br")
    } else if accepts(gzip) {
        Some("gzip")
    } else {
        None
    }
}

/// The viewer's host, lower case without port: the request target's authority when it
/// has one (absolute-form, HTTP/2 :authority; RFC 9112 §3.2.2 says it wins over Host),
/// else the first Host header. None when absent, empty or not visible ASCII.
fn host_of(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let raw = match uri.authority() {
        Some(authority) => authority.as_str(),
        None => headers.get(HOST)?.to_str().ok()?,
    };
    // Userinfo is not part of the host (RFC 3986 §3.2.1).
    let host_port = raw.rsplit('@').next().unwrap_or(raw);
    // RFC 3986 §3.2.2: an IP literal is bracketed and contains ':' itself.
    let host = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(end) => host_port.get(..=end).unwrap_or(host_port),
            None => host_port,
        }
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    if host.is_empty() {
        None
    } else {
        Some(host.to_ascii_lowercase())
    }
}

/// The Cookie header to forward (and key): every cookie of every Cookie header whose name
/// the policy includes, in the viewer's order, as `name=value; name2=value2`. Pieces are
/// trimmed and empty ones dropped (RFC 6265 §5.4 joins with "; "); a piece without '='
/// is kept as it is, its whole text being its name. None when nothing is included.
fn included_cookies(headers: &HeaderMap, policy: &ListPolicy) -> Option<Vec<u8>> {
    cookies_of_any(headers, &[policy])
}

/// [`included_cookies`] for the cookies any of `policies` includes.
pub(crate) fn cookies_of_any(headers: &HeaderMap, policies: &[&ListPolicy]) -> Option<Vec<u8>> {
    if policies.iter().all(|p| **p == ListPolicy::None) {
        return None;
    }
    let mut out = Vec::new();
    for value in headers.get_all(COOKIE) {
        for piece in value.as_bytes().split(|&b| b == b';') {
            let piece = trim_ows(piece);
            if piece.is_empty() {
                continue;
            }
            let (name, value) = match piece.iter().position(|&b| b == b'=') {
                Some(eq) => {
                    let (n, v) = piece.split_at(eq);
                    (trim_ows(n), Some(trim_ows(v.get(1..).unwrap_or_default())))
                }
                None => (piece, None),
            };
            if !policies.iter().any(|p| list_includes(p, name)) {
                continue;
            }
            if !out.is_empty() {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(name);
            if let Some(value) = value {
                out.push(b'=');
                out.extend_from_slice(value);
            }
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(query: ListPolicy, headers: &[&str], cookies: ListPolicy) -> CacheKeyPolicy {
        CacheKeyPolicy {
            query_strings: query,
            headers: headers.iter().map(|h| h.to_string()).collect(),
            cookies,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn key_with(
        uri: &str,
        hdrs: &HeaderMap,
        pol: &CacheKeyPolicy,
        root: Option<&str>,
    ) -> Result<KeyedRequest, KeyError> {
        let uri: Uri = uri.parse().unwrap();
        cache_key(&KeyInput {
            distribution: "d1",
            uri: &uri,
            headers: hdrs,
            policy: pol,
            default_root_object: root,
        })
    }

    fn key(uri: &str, hdrs: &HeaderMap, pol: &CacheKeyPolicy) -> KeyedRequest {
        key_with(uri, hdrs, pol, None).unwrap()
    }

    #[test]
    fn path_table() {
        let ok = [
            ("/a/./b/../c", "/a/c"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/%2e%2e/%2E%2E/x", "/x"),
            ("/.%2e/x", "/x"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb/..", "/"),
            ("/%7Euser", "/~user"),
            ("/%41%62%2D%5f", "/Ab-_"),
            ("/a b", "/a%20b"),
            ("/a\\b", "/a%5Cb"),
            // A backslash is data, never a separator; but ".." between backslashes is
            // refused (see dot_dot_behind_encoded_separators_is_refused).
            ("/a\\.\\b", "/a%5C.%5Cb"),
            ("", "/"),
            ("/", "/"),
            ("//a//b", "//a//b"),
            ("/a//../b", "/a/b"),
            ("/a/..", "/"),
            ("/a/.", "/a/"),
            ("/a/b/..", "/a/"),
            ("/..", "/"),
            ("/.", "/"),
            ("/a/...", "/a/..."),
            ("/.a/..b", "/.a/..b"),
            ("/%00", "/%00"),
            ("/%c3%a9", "/%C3%A9"),
            ("/é", "/%C3%A9"),
            ("/a?b#c", "/a%3Fb%23c"),
            ("/\"<>^`{|}", "/%22%3C%3E%5E%60%7B%7C%7D"),
            ("/\u{1}\u{7f}", "/%01%7F"),
            ("/!$&'()*+,;=:@", "/!$&'()*+,;=:@"),
            ("/%21", "/%21"),
            ("/a/", "/a/"),
        ];
        for (raw, want) in ok {
            assert_eq!(normalize_path(raw).as_deref(), Ok(want), "{raw:?}");
        }
        for bad in ["/%zz", "/%4", "/%", "/a%g0", "a/b", "*", "%2Fa"] {
            let err = normalize_path(bad).unwrap_err();
            assert!(matches!(err, KeyError::BadPath(_)), "{bad:?}: {err}");
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        }
        let msg = normalize_path("/a%zz").unwrap_err().to_string();
        assert!(msg.contains("%zz") && msg.contains("path"), "{msg}");
    }

    #[test]
    fn dot_dot_behind_encoded_separators_is_refused() {
        for bad in [
            "/..%2fsecret",
            "/a/%2E%2E%2F%2e%2e%2fx",
            "/x%2F..",
            "/%5C..%5C",
            "/\\..\\",
            "/a/..%5cb",
        ] {
            let err = normalize_path(bad).unwrap_err();
            assert!(matches!(err, KeyError::BadPath(_)), "{bad:?}: {err}");
            assert!(err.to_string().contains("climb"), "{bad:?}: {err}");
        }
        // Encoded separators next to anything but "..", and ".." as a real segment, are
        // fine: the first is data, the second is resolved here.
        for (ok, want) in [
            ("/a%2fb", "/a%2Fb"),
            ("/a%2F...%2Fb", "/a%2F...%2Fb"),
            ("/..a%2F", "/..a%2F"),
            ("/a/%2e%2e/b", "/b"),
            ("/%2e%2e/secret", "/secret"),
            ("//x", "//x"),
        ] {
            assert_eq!(normalize_path(ok).unwrap(), want, "{ok:?}");
        }
    }

    #[test]
    fn keyed_path_is_forwarded_path() {
        let pol = CacheKeyPolicy::default();
        let r = key("/a/../%7e/b%2f", &HeaderMap::new(), &pol);
        assert_eq!(r.path, "/~/b%2F");
        assert_eq!(parse_key(&r.key).unwrap().path, r.path);
        let abs = key("http://Example.com:8080/x/./y?q=1", &HeaderMap::new(), &pol);
        assert_eq!(abs.path, "/x/y");
        assert_eq!(abs.query, None);
        assert_eq!(
            abs.key,
            key("/x/y", &HeaderMap::new(), &pol).key,
            "absolute-form keys like origin-form"
        );
    }

    #[test]
    fn query_policies() {
        let h = HeaderMap::new();
        let uri = "/p?b=2&a=1&&c=%2f&a=3&d";
        let cases = [
            (ListPolicy::None, None),
            (ListPolicy::All, Some("b=2&a=1&c=%2f&a=3&d")),
            (ListPolicy::AllowList(names(&["a", "d"])), Some("a=1&a=3&d")),
            (ListPolicy::AllExcept(names(&["a", "c"])), Some("b=2&d")),
            (ListPolicy::AllowList(names(&["zz"])), None),
        ];
        for (qp, want) in cases {
            let pol = policy(qp.clone(), &[], ListPolicy::None);
            let r = key(uri, &h, &pol);
            assert_eq!(r.query.as_deref(), want, "{qp:?}");
            assert_eq!(parse_key(&r.key).unwrap().query.as_deref(), want);
        }
        // Names are compared decoded, case-sensitively; values keep their encoding.
        let pol = policy(
            ListPolicy::AllowList(names(&["a b"])),
            &[],
            ListPolicy::None,
        );
        let r = key("/?a%20b=%7e&A%20B=1&a+b=2", &h, &pol);
        assert_eq!(r.query.as_deref(), Some("a%20b=%7e"));
        // Raw characters not allowed in a query are encoded.
        let pol = policy(ListPolicy::All, &[], ListPolicy::None);
        let r = key("/?x={a}|^`[\\]&y=/?:@", &h, &pol);
        assert_eq!(
            r.query.as_deref(),
            Some("x=%7Ba%7D%7C%5E%60%5B%5C%5D&y=/?:@")
        );
        assert_eq!(key("/?", &h, &pol).query, None);
        assert_eq!(key("/?&&", &h, &pol).query, None);
        // Invalid escapes.
        for bad in ["/?a=%zz", "/?a=1%", "/?%4=1"] {
            let err = key_with(bad, &h, &pol, None).unwrap_err();
            assert!(matches!(err, KeyError::BadQuery(_)), "{bad}: {err}");
        }
        let none = policy(ListPolicy::None, &[], ListPolicy::None);
        assert_eq!(key("/?a=%zz", &h, &none).query, None);
    }

    #[test]
    fn excluded_params_do_not_change_the_key() {
        let h = HeaderMap::new();
        let pol = policy(
            ListPolicy::AllExcept(names(&["utm"])),
            &[],
            ListPolicy::None,
        );
        let a = key("/p?x=1&utm=a", &h, &pol);
        let b = key("/p?utm=b&x=1", &h, &pol);
        assert_eq!(a.key, b.key);
        assert_eq!(a.query.as_deref(), Some("x=1"));
        let c = key("/p?x=2&utm=a", &h, &pol);
        assert_ne!(a.key, c.key);
        let allow = policy(ListPolicy::AllowList(names(&["x"])), &[], ListPolicy::None);
        assert_eq!(
            key("/p?x=1&y=1", &h, &allow).key,
            key("/p?x=1&y=2", &h, &allow).key
        );
        assert_ne!(
            key("/p?x=1&y=1", &h, &allow).key,
            key("/p?x=2&y=1", &h, &allow).key
        );
        let none = CacheKeyPolicy::default();
        assert_eq!(key("/p?x=1", &h, &none).key, key("/p?x=2", &h, &none).key);
        assert_eq!(key("/p?x=1", &h, &none).key, key("/p", &h, &none).key);
    }

    #[test]
    fn headers_absent_empty_and_unlisted() {
        let pol = policy(ListPolicy::None, &["x-a", "x-b"], ListPolicy::None);
        let absent = key("/", &headers(&[]), &pol);
        let empty = key("/", &headers(&[("x-a", "")]), &pol);
        assert_ne!(absent.key, empty.key);
        assert_eq!(empty.forwarded_headers.get("x-a").unwrap(), "");
        assert!(absent.forwarded_headers.is_empty());
        let parts = parse_key(&empty.key).unwrap();
        assert_eq!(
            parts.headers,
            vec![
                ("x-a".to_owned(), Some(String::new())),
                ("x-b".to_owned(), None)
            ]
        );

        let multi = key(
            "/",
            &headers(&[("x-a", "1"), ("x-b", "q"), ("x-a", "2")]),
            &pol,
        );
        let fwd: Vec<_> = multi.forwarded_headers.get_all("x-a").iter().collect();
        assert_eq!(fwd, vec!["1, 2"]);
        assert_eq!(
            parse_key(&multi.key).unwrap().headers,
            vec![
                ("x-a".to_owned(), Some("1, 2".to_owned())),
                ("x-b".to_owned(), Some("q".to_owned()))
            ]
        );

        let base = key("/", &headers(&[("x-a", "1")]), &pol);
        let extra = key(
            "/",
            &headers(&[("x-a", "1"), ("x-evil", "poison"), ("cookie", "s=1")]),
            &pol,
        );
        assert_eq!(base.key, extra.key);
        assert!(extra.forwarded_headers.get("x-evil").is_none());
        assert!(extra.forwarded_headers.get(COOKIE).is_none());
        assert_eq!(extra.forwarded_headers.len(), 1);

        // "cookie" in the header list never forwards the raw Cookie header.
        let sneaky = policy(
            ListPolicy::None,
            &["cookie", "x-a", "x-a"],
            ListPolicy::None,
        );
        let r = key("/", &headers(&[("cookie", "s=1"), ("x-a", "1")]), &sneaky);
        assert!(r.forwarded_headers.get(COOKIE).is_none());
        assert_eq!(parse_key(&r.key).unwrap().headers.len(), 1);
    }

    #[test]
    fn accept_encoding_table() {
        let pol = policy(ListPolicy::None, &["accept-encoding"], ListPolicy::None);
        let table: [(&[&str], Option<&str>); 14] = [
            (&["gzip, deflate, br"], Some("br")),
            (&["gzip;q=0, br;q=0"], None),
            (&["*"], Some("br")),
            (&["identity"], None),
            (&["GZIP"], Some("gzip")),
            (&["gzip", "br"], Some("br")),
            (&["br;q=0, gzip"], Some("gzip")),
            (&["br; q=0.000, *"], Some("gzip")),
            (&["*;q=0, gzip"], Some("gzip")),
            (&["*;q=0"], None),
            (&["br;q=0.5"], Some("br")),
            (&["deflate"], None),
            (&["x-gzip"], Some("gzip")),
            (&[], None),
        ];
        for (values, want) in table {
            let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("accept-encoding", *v)).collect();
            let r = key("/", &headers(&pairs), &pol);
            assert_eq!(
                r.forwarded_headers
                    .get(ACCEPT_ENCODING)
                    .map(|v| v.to_str().unwrap()),
                want,
                "{values:?}"
            );
            assert_eq!(
                parse_key(&r.key).unwrap().headers,
                vec![("accept-encoding".to_owned(), want.map(str::to_owned))]
            );
        }
        // Not in the policy: never forwarded, never keyed.
        let r = key(
            "/",
            &headers(&[("accept-encoding", "br")]),
            &CacheKeyPolicy::default(),
        );
        assert!(r.forwarded_headers.is_empty());
    }

    #[test]
    fn host_header() {
        let pol = policy(ListPolicy::None, &["host"], ListPolicy::None);
        let a = key("/", &headers(&[("host", "Example.COM:8080")]), &pol);
        assert_eq!(a.viewer_host.as_deref(), Some("example.com"));
        assert!(a.forwarded_headers.is_empty());
        let b = key("/", &headers(&[("host", "example.com")]), &pol);
        assert_eq!(a.key, b.key);
        let c = key("/", &headers(&[("host", "other.com")]), &pol);
        assert_ne!(a.key, c.key);
        let v6 = key("/", &headers(&[("host", "[::1]:80")]), &pol);
        assert_eq!(v6.viewer_host.as_deref(), Some("[::1]"));
        let none = key("/", &headers(&[]), &pol);
        assert_eq!(none.viewer_host, None);
        assert_eq!(
            parse_key(&none.key).unwrap().headers,
            vec![("host".to_owned(), None)]
        );
        // Absolute-form: the target's authority wins over Host.
        let abs = key(
            "http://u@Abs.example:81/",
            &headers(&[("host", "h.example")]),
            &pol,
        );
        assert_eq!(abs.viewer_host.as_deref(), Some("abs.example"));
        // Not in the policy: not keyed, not returned.
        let r = key("/", &headers(&[("host", "x")]), &CacheKeyPolicy::default());
        assert_eq!(r.viewer_host, None);
        assert_eq!(
            r.key,
            key("/", &headers(&[("host", "y")]), &CacheKeyPolicy::default()).key
        );
    }

    #[test]
    fn cookies_allow_and_except() {
        let hdrs = headers(&[("cookie", "a=1; b=2;c=3"), ("cookie", ";; d = 4 ;flag")]);
        let allow = policy(
            ListPolicy::None,
            &[],
            ListPolicy::AllowList(names(&["c", "a", "flag"])),
        );
        let r = key("/", &hdrs, &allow);
        assert_eq!(r.forwarded_headers.get(COOKIE).unwrap(), "a=1; c=3; flag");
        assert_eq!(
            parse_key(&r.key).unwrap().cookies.as_deref(),
            Some("a=1; c=3; flag")
        );
        assert_eq!(r.forwarded_headers.get_all(COOKIE).iter().count(), 1);

        let except = policy(ListPolicy::None, &[], ListPolicy::AllExcept(names(&["b"])));
        let r = key("/", &hdrs, &except);
        assert_eq!(
            r.forwarded_headers.get(COOKIE).unwrap(),
            "a=1; c=3; d=4; flag"
        );

        let all = policy(ListPolicy::None, &[], ListPolicy::All);
        assert_eq!(
            key("/", &hdrs, &all).forwarded_headers.get(COOKIE).unwrap(),
            "a=1; b=2; c=3; d=4; flag"
        );

        // Nothing included: no Cookie header forwarded, empty cookies field.
        let zz = policy(ListPolicy::None, &[], ListPolicy::AllowList(names(&["zz"])));
        let r = key("/", &hdrs, &zz);
        assert!(r.forwarded_headers.get(COOKIE).is_none());
        assert_eq!(parse_key(&r.key).unwrap().cookies, None);
        assert_eq!(r.key, key("/", &HeaderMap::new(), &zz).key);

        // Excluded cookies do not change the key; included ones do.
        let a1 = key("/", &headers(&[("cookie", "a=1; b=x")]), &allow);
        let a2 = key("/", &headers(&[("cookie", "b=y;a=1")]), &allow);
        let a3 = key("/", &headers(&[("cookie", "a=2")]), &allow);
        assert_eq!(a1.key, a2.key);
        assert_ne!(a1.key, a3.key);
        let none = CacheKeyPolicy::default();
        let r = key("/", &hdrs, &none);
        assert!(r.forwarded_headers.is_empty());
    }

    #[test]
    fn default_root_object() {
        let pol = CacheKeyPolicy::default();
        let h = HeaderMap::new();
        for uri in ["/", "/a/..", "/./"] {
            let r = key_with(uri, &h, &pol, Some("index.html")).unwrap();
            assert_eq!(r.path, "/index.html", "{uri}");
        }
        assert_eq!(
            key_with("/a/", &h, &pol, Some("index.html")).unwrap().path,
            "/a/"
        );
        assert_eq!(
            key_with("//", &h, &pol, Some("index.html")).unwrap().path,
            "//"
        );
        assert_eq!(
            key_with("/", &h, &pol, Some("/x y")).unwrap().path,
            "/x%20y"
        );
        assert_eq!(key_with("/", &h, &pol, None).unwrap().path, "/");
        assert!(key_with("/", &h, &pol, Some("%zz")).is_err());
    }

    #[test]
    fn prefixes_select_keys() {
        let pol = policy(
            ListPolicy::All,
            &["x-a", "accept-encoding"],
            ListPolicy::All,
        );
        let h = headers(&[("x-a", "1"), ("cookie", "s=1"), ("accept-encoding", "gzip")]);
        let a = key("/a?x=1", &h, &pol).key;
        let ab = key("/ab", &h, &pol).key;
        let img = key("/images/x/y.png?v=2", &h, &pol).key;
        assert!(a.starts_with(&exact_path_prefix("d1", "/a")));
        assert!(!ab.starts_with(&exact_path_prefix("d1", "/a")));
        assert!(ab.starts_with(&path_prefix("d1", "/a")));
        assert!(img.starts_with(&path_prefix("d1", "/images/")));
        assert!(img.starts_with(&path_prefix("d1", "")));
        assert!(!img.starts_with(&path_prefix("d1", "/img")));
        assert!(!img.starts_with(&path_prefix("d", "")));
        assert!(!a.starts_with(&exact_path_prefix("d2", "/a")));
        assert!(img.starts_with(&exact_path_prefix("d1", "/images/x/y.png")));
    }

    #[test]
    fn parse_key_round_trips() {
        let pol = policy(
            ListPolicy::All,
            &["host", "x-a", "accept-encoding", "x-missing"],
            ListPolicy::AllExcept(vec![]),
        );
        let h = headers(&[
            ("host", "H.example"),
            ("x-a", "v:1, \u{7e}"),
            ("cookie", "k=v; j=w"),
            ("accept-encoding", "br"),
        ]);
        let r = key("/p/%2f/q?a=1&b", &h, &pol);
        let parts = parse_key(&r.key).unwrap();
        assert_eq!(
            parts,
            KeyParts {
                distribution: "d1".to_owned(),
                path: "/p/%2F/q".to_owned(),
                query: Some("a=1&b".to_owned()),
                headers: vec![
                    ("host".to_owned(), Some("h.example".to_owned())),
                    ("x-a".to_owned(), Some("v:1, ~".to_owned())),
                    ("accept-encoding".to_owned(), Some("br".to_owned())),
                    ("x-missing".to_owned(), None),
                ],
                cookies: Some("k=v; j=w".to_owned()),
            }
        );
        assert_eq!(parts.to_key(), r.key);
        let plain = key("/", &HeaderMap::new(), &CacheKeyPolicy::default());
        assert_eq!(plain.key, b"d1\0/\0\0\0".to_vec());
        let parts = parse_key(&plain.key).unwrap();
        assert_eq!(parts.headers, vec![]);
        assert_eq!(parts.to_key(), plain.key);

        // Separator bytes inside fields are escaped and come back.
        let odd = KeyParts {
            distribution: "a\0b\u{1}\u{2}".to_owned(),
            path: "/".to_owned(),
            query: None,
            headers: vec![("n".to_owned(), Some("\0".to_owned()))],
            cookies: Some("\u{1}".to_owned()),
        };
        assert_eq!(parse_key(&odd.to_key()), Some(odd));

        for bad in [
            &b""[..],
            b"d\0/\0\0",
            b"d\0/\0\0\0\0",
            b"d\0x\0\0\0",
            b"d\0/\0\0\x01\0",
            b"d\0/\0\0:v\0",
            b"d\x02\0/\0\0\0",
            b"d\x029\0/\0\0\0",
            b"d\x01\0/\0\0\0",
            b"d\0/\xff\0\0\0",
        ] {
            assert_eq!(parse_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn too_long() {
        let pol = CacheKeyPolicy::default();
        let long = format!("/{}", "a".repeat(MAX_KEY_LEN));
        let err = key_with(&long, &HeaderMap::new(), &pol, None).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::TooLong {
                    max: MAX_KEY_LEN,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.status(), http::StatusCode::URI_TOO_LONG);
        let fits = format!("/{}", "a".repeat(MAX_KEY_LEN - 7));
        let r = key_with(&fits, &HeaderMap::new(), &pol, None).unwrap();
        assert_eq!(r.key.len(), MAX_KEY_LEN);
    }

    /// xorshift64*: deterministic pseudo-random bytes without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[(self.next() % from.len() as u64) as usize]
        }

        fn bytes(&mut self, alphabet: &[u8], max: u64) -> Vec<u8> {
            let len = self.next() % max;
            (0..len)
                .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
                .collect()
        }
    }

    #[test]
    fn never_panics_on_nasty_input() {
        let pieces = [
            "/", "//", ".", "..", "%", "%2", "%2e", "%2E", "%2f", "%00", "%zz", "%%", "\\", "?",
            "&", "=", "#", ";", " ", "é", "\u{0}", "\u{1}", "\u{2}", "a", "~", "[", "]", "@", ":",
        ];
        let hdr_alphabet: Vec<u8> = (0u8..=255).collect();
        let policies = [
            policy(ListPolicy::None, &[], ListPolicy::None),
            policy(
                ListPolicy::All,
                &["host", "accept-encoding", "x-a", "Bad Name", "cookie", ""],
                ListPolicy::All,
            ),
            policy(
                ListPolicy::AllowList(names(&["a", "", "é"])),
                &["x-a"],
                ListPolicy::AllExcept(names(&["a", ""])),
            ),
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let n = rng.next() % 12;
            let mut raw = String::new();
            for _ in 0..n {
                raw.push_str(rng.pick(&pieces));
            }
            // normalize_path: idempotent, rooted, no dot segments, only allowed bytes.
            if let Ok(p) = normalize_path(&raw) {
                assert!(p.starts_with('/'), "{raw:?} -> {p:?}");
                assert_eq!(normalize_path(&p).as_ref(), Ok(&p), "{raw:?}");
                assert!(p.bytes().all(|b| is_path_raw(b) || b == b'%'), "{p:?}");
                assert!(!p.split('/').any(|s| s == "." || s == ".."), "{p:?}");
            }
            let _ = normalize_path(&String::from_utf8_lossy(&rng.bytes(&hdr_alphabet, 40)));

            let mut hdrs = HeaderMap::new();
            for name in ["host", "accept-encoding", "x-a", "cookie"] {
                for _ in 0..rng.next() % 3 {
                    if let Ok(v) = HeaderValue::from_bytes(&rng.bytes(&hdr_alphabet, 24)) {
                        hdrs.append(name, v);
                    }
                    let text: String = (0..rng.next() % 4)
                        .map(|_| rng.pick(&["br", "gzip", "*", ";q=0", ",", "=", ";", " ", "a"]))
                        .collect();
                    if let Ok(v) = HeaderValue::from_str(&text) {
                        hdrs.append(name, v);
                    }
                }
            }
            let target = if round % 3 == 0 {
                format!("http://h{raw}")
            } else {
                format!("/{raw}")
            };
            let Ok(uri) = target.parse::<Uri>() else {
                continue;
            };
            let pol = &policies[round % policies.len()];
            let input = KeyInput {
                distribution: rng.pick(&["d", "", "\u{0}x", "a\u{2}"]),
                uri: &uri,
                headers: &hdrs,
                policy: pol,
                default_root_object: [None, Some("index.html"), Some("%"), Some("..")][round % 4],
            };
            if let Ok(r) = cache_key(&input) {
                assert!(r.key.len() <= MAX_KEY_LEN);
                assert!(r
                    .key
                    .starts_with(&exact_path_prefix(input.distribution, &r.path)));
                if let Some(parts) = parse_key(&r.key) {
                    assert_eq!(parts.to_key(), r.key);
                    assert_eq!(parts.path, r.path);
                    assert_eq!(parts.query, r.query);
                    assert_eq!(parts.distribution, input.distribution);
                }
                // Whatever is forwarded is in the key.
                for (name, value) in &r.forwarded_headers {
                    let needle = if name == COOKIE {
                        value.as_bytes().to_vec()
                    } else {
                        [name.as_str().as_bytes(), b":", value.as_bytes()].concat()
                    };
                    assert!(
                        r.key.windows(needle.len()).any(|w| w == needle.as_slice()),
                        "{name}: {value:?} not in key"
                    );
                }
            }
            // parse_key on arbitrary bytes and on damaged keys.
            let junk = rng.bytes(&[0, 1, 2, b'0', b'/', b':', b'a', 0xff], 16);
            if let Some(parts) = parse_key(&junk) {
                assert_eq!(parts.to_key(), junk);
            }
        }
    }
}
