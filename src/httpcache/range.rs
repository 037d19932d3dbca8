//! Range requests answered from a complete stored representation (RFC 9110 §14): parsing the
//! Range field (§14.1, §14.2), resolving it against the representation's length into one
//! range (206), several (206 multipart/byteranges, §14.6), none satisfiable (416, §15.5.17)
//! or "ignore the Range field" (200), the If-Range condition (§13.1.5), the Content-Range
//! values (§14.4) and the framing of a multipart/byteranges body whose exact length is known
//! before any byte is read, so the edge can stream the parts from the store behind a
//! Content-Length. Work is bounded: at most [`MAX_RANGES`] ranges, and a set with more than
//! two overlapping ranges is ignored, as RFC 9110 §14.2 allows. Arithmetic is checked or
//! saturating; nothing panics on any input.

use std::time::Duration;

use bytes::Bytes;
use http::header::{DATE, IF_RANGE, LAST_MODIFIED, RANGE};
use http::{HeaderMap, HeaderValue, Method};

use super::conditional::{header_date, stored_etag, trim_ows, EntityTag};
use super::date::parse_http_date;

/// The most range-specs a Range field may hold; beyond it the field is ignored (RFC 9110
/// §14.2 lets a server ignore range sets that look like a denial-of-service attempt).
pub const MAX_RANGES: usize = 100;

/// The most overlap events tolerated while coalescing: one (two overlapping ranges). A set
/// with more than two overlapping ranges is ignored (RFC 9110 §14.2).
const MAX_OVERLAPS: usize = 1;

/// How long before the stored Date a Last-Modified must be for a cache to treat it as a
/// strong validator (RFC 9110 §8.8.2.2, the intermediate-cache rule).
pub const STRONG_LAST_MODIFIED_MARGIN: Duration = Duration::from_secs(60);

/// One range-spec of a `bytes` Range field (RFC 9110 §14.1.1), not yet resolved against a
/// length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// int-range `first-last` or `first-` (then `last` is `None`). Positions are inclusive;
    /// digits beyond `u64::MAX` saturate.
    Int { first: u64, last: Option<u64> },
    /// suffix-range `-length`: the last `length` bytes.
    Suffix { length: u64 },
}

/// A range of bytes resolved against a representation length: `start..=end`, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    /// The number of bytes, `end - start + 1`; 0 when `end < start`, saturating at `u64::MAX`.
    pub fn length(&self) -> u64 {
        if self.end < self.start {
            0
        } else {
            (self.end - self.start).saturating_add(1)
        }
    }
}

/// What to answer to a Range request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Ignore the Range field: 200 with the whole representation.
    Full,
    /// 206 with one range and Content-Range ([`content_range`]).
    Single(ByteRange),
    /// 206 multipart/byteranges ([`multipart`]): two or more disjoint, non-adjacent ranges in
    /// the order the request asked for them.
    Multi(Vec<ByteRange>),
    /// 416 with Content-Range [`unsatisfied_content_range`].
    Unsatisfiable,
}

/// `1*DIGIT`, saturating at `u64::MAX`.
fn digits_saturating(b: &[u8]) -> Option<u64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// `1*DIGIT`, `None` on overflow.
fn digits_exact(b: &[u8]) -> Option<u64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// One range-spec (RFC 9110 §14.1.1, §14.1.2): `first-pos "-" [ last-pos ]` or
/// `"-" suffix-length`. An int-range whose last-pos is below its first-pos is invalid.
fn parse_spec(b: &[u8]) -> Option<RangeSpec> {
    let dash = b.iter().position(|&c| c == b'-')?;
    let (first, last) = (b.get(..dash)?, b.get(dash + 1..)?);
    if first.is_empty() {
        return Some(RangeSpec::Suffix {
            length: digits_saturating(last)?,
        });
    }
    let first = digits_saturating(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(digits_saturating(last)?)
    };
    if last.is_some_and(|l| l < first) {
        return None;
    }
    Some(RangeSpec::Int { first, last })
}

/// Parses a Range field value (RFC 9110 §14.2): `bytes=` (the unit case-insensitively)
/// followed by a comma-separated list of range-specs (§14.1.1), whitespace allowed around
/// the members and empty members skipped (§5.6.1.2). `None` — ignore the field — for another
/// unit, any invalid range-spec, no range-spec, or more than [`MAX_RANGES`] of them.
pub fn parse_range(value: &HeaderValue) -> Option<Vec<RangeSpec>> {
    let b = trim_ows(value.as_bytes());
    let eq = b.iter().position(|&c| c == b'=')?;
    if !b.get(..eq)?.eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for member in b.get(eq + 1..)?.split(|&c| c == b',') {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        if specs.len() == MAX_RANGES {
            return None;
        }
        specs.push(parse_spec(member)?);
    }
    if specs.is_empty() {
        None
    } else {
        Some(specs)
    }
}

/// Resolves range-specs against a representation of `len` bytes (RFC 9110 §14.1.1–§14.1.3):
///
/// - an int-range is satisfiable when `first < len` (its last-pos is clamped to `len - 1`),
///   a suffix-range when its length is non-zero (longer than `len` means everything);
///   unsatisfiable members are dropped, and when none is left the answer is
///   [`RangeOutcome::Unsatisfiable`] (416);
/// - overlapping and adjacent ranges are coalesced (RFC 9110 §15.3.7.2); the result keeps the
///   order of the request, each coalesced range at the place of its earliest member;
/// - one range left gives [`RangeOutcome::Single`], more give [`RangeOutcome::Multi`].
///
/// [`RangeOutcome::Full`] (ignore the field, RFC 9110 §14.2) when `specs` is empty, holds
/// more than [`MAX_RANGES`] members or an invalid int-range (last below first), or when more
/// than two of its satisfiable ranges overlap. A zero-length representation with a non-zero
/// suffix-range is also `Full`: that range is "satisfiable" (§14.1.1) but empty, and a 200
/// with an empty body says the same without an impossible Content-Range.
pub fn resolve(specs: &[RangeSpec], len: u64) -> RangeOutcome {
    if specs.is_empty() || specs.len() > MAX_RANGES {
        return RangeOutcome::Full;
    }
    let last_byte = len.saturating_sub(1);
    let mut ranges: Vec<(ByteRange, usize)> = Vec::with_capacity(specs.len());
    let mut empty_suffix = false;
    for (i, spec) in specs.iter().enumerate() {
        match *spec {
            RangeSpec::Int { first, last } => {
                if last.is_some_and(|l| l < first) {
                    return RangeOutcome::Full;
                }
                if first < len {
                    let end = last.unwrap_or(u64::MAX).min(last_byte);
                    ranges.push((ByteRange { start: first, end }, i));
                }
            }
            RangeSpec::Suffix { length } => {
                if length == 0 {
                    continue;
                }
                if len == 0 {
                    empty_suffix = true;
                    continue;
                }
                let start = len - length.min(len);
                ranges.push((
                    ByteRange {
                        start,
                        end: last_byte,
                    },
                    i,
                ));
            }
        }
    }
    if ranges.is_empty() {
        return if empty_suffix {
            RangeOutcome::Full
        } else {
            RangeOutcome::Unsatisfiable
        };
    }
    ranges.sort_unstable_by_key(|&(r, i)| (r.start, i));
    let mut merged: Vec<(ByteRange, usize)> = Vec::with_capacity(ranges.len());
    let mut overlaps = 0usize;
    for (r, i) in ranges {
        match merged.last_mut() {
            Some((m, first_index)) if r.start <= m.end.saturating_add(1) => {
                if r.start <= m.end {
                    overlaps += 1;
                    if overlaps > MAX_OVERLAPS {
                        return RangeOutcome::Full;
                    }
                }
                m.end = m.end.max(r.end);
                *first_index = (*first_index).min(i);
            }
            _ => merged.push((r, i)),
        }
    }
    merged.sort_unstable_by_key(|&(_, i)| i);
    let mut out: Vec<ByteRange> = merged.into_iter().map(|(r, _)| r).collect();
    if out.len() == 1 {
        match out.pop() {
            Some(r) => RangeOutcome::Single(r),
            None => RangeOutcome::Full,
        }
    } else {
        RangeOutcome::Multi(out)
    }
}

/// The If-Range condition (RFC 9110 §13.1.5) against the stored response: true without
/// If-Range. An entity-tag must be strong and match the stored ETag by strong comparison
/// (a weak one, or a weak stored ETag, never matches). An HTTP-date must equal the stored
/// Last-Modified and that must be a strong validator: the stored Date at least
/// [`STRONG_LAST_MODIFIED_MARGIN`] after it (RFC 9110 §8.8.2.2). Anything else — an invalid
/// value, several If-Range lines, a missing stored validator — is false, so the whole
/// representation is sent.
pub fn if_range_allows(req: &HeaderMap, stored: &HeaderMap) -> bool {
    let mut values = req.get_all(IF_RANGE).iter();
    let Some(value) = values.next() else {
        return true;
    };
    if values.next().is_some() {
        return false;
    }
    let b = trim_ows(value.as_bytes());
    if b.starts_with(b"\"") || b.starts_with(b"W/") {
        let Some(tag) = EntityTag::parse(b) else {
            return false;
        };
        return stored_etag(stored).is_some_and(|current| tag.strong_eq(&current));
    }
    let (Some(date), Some(last_modified), Some(stored_date)) = (
        parse_http_date(b),
        header_date(stored, LAST_MODIFIED),
        header_date(stored, DATE),
    ) else {
        return false;
    };
    date == last_modified
        && last_modified
            .checked_add(STRONG_LAST_MODIFIED_MARGIN)
            .is_some_and(|strong_from| stored_date >= strong_from)
}

/// The range answer to a viewer's request for a stored representation of `len` bytes:
/// [`RangeOutcome::Full`] unless the method is GET (the only one with range semantics,
/// RFC 9110 §14.2), one valid Range field is present ([`parse_range`]) and If-Range holds
/// ([`if_range_allows`]); then [`resolve`]. Evaluate after [`super::evaluate`] (RFC 9110
/// §13.2.2 step 5).
pub fn range_request(
    method: &Method,
    req: &HeaderMap,
    stored: &HeaderMap,
    len: u64,
) -> RangeOutcome {
    if method != Method::GET {
        return RangeOutcome::Full;
    }
    let mut values = req.get_all(RANGE).iter();
    let Some(value) = values.next() else {
        return RangeOutcome::Full;
    };
    if values.next().is_some() {
        return RangeOutcome::Full;
    }
    let Some(specs) = parse_range(value) else {
        return RangeOutcome::Full;
    };
    if !if_range_allows(req, stored) {
        return RangeOutcome::Full;
    }
    resolve(&specs, len)
}

/// The Content-Range of a 206 or of a multipart part (RFC 9110 §14.4): `bytes 0-99/1000`.
pub fn content_range(r: &ByteRange, len: u64) -> String {
    format!("bytes {}-{}/{}", r.start, r.end, len)
}

/// The Content-Range of a 416 (RFC 9110 §14.4, §15.5.17): `bytes */1000`.
pub fn unsatisfied_content_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// The framing of a multipart/byteranges body (RFC 9110 §14.6): the body is, in order, each
/// part's header bytes followed by the representation's bytes `start..=end` of its range,
/// then `closing`. `content_length` is the exact length of all that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    pub boundary: String,
    pub parts: Vec<(Bytes, ByteRange)>,
    pub closing: Bytes,
    pub content_length: u64,
}

impl Multipart {
    /// The response's Content-Type: `multipart/byteranges; boundary=BOUNDARY`.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }
}

/// A fresh boundary: 32 lowercase hex digits from 16 random bytes (RFC 2046 §5.1.1 allows up
/// to 70 characters). If the OS has no randomness, std's per-process random hash keys and a
/// counter stand in: the boundary only has to be absent from the body, it is no secret.
fn new_boundary() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        for chunk in bytes.chunks_mut(8) {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u64(count);
            for (dst, src) in chunk.iter_mut().zip(hasher.finish().to_le_bytes()) {
                *dst = src;
            }
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A part's Content-Type when it is safe to copy into the body: non-empty after trimming,
/// printable ASCII (SP and HTAB allowed) only, so it cannot break the part framing.
fn part_content_type(content_type: Option<&str>) -> Option<&str> {
    let ct = content_type?.trim_matches([' ', '\t']);
    let printable = ct.bytes().all(|b| b == b'\t' || (0x20..=0x7e).contains(&b));
    (!ct.is_empty() && printable).then_some(ct)
}

/// Frames `ranges` of a `len`-byte representation as a multipart/byteranges body
/// (RFC 9110 §14.6) with a random boundary. Each part's header bytes are
/// `\r\n--BOUNDARY\r\nContent-Type: CT\r\nContent-Range: bytes a-b/len\r\n\r\n` (the
/// Content-Type line only when `content_type` is given and printable ASCII); the closing
/// delimiter is `\r\n--BOUNDARY--\r\n`. Ranges that are not within the representation
/// (`end < start` or `end >= len`) are left out. The total saturates at `u64::MAX`.
pub fn multipart(ranges: &[ByteRange], len: u64, content_type: Option<&str>) -> Multipart {
    multipart_with_boundary(ranges, len, content_type, new_boundary())
}

fn multipart_with_boundary(
    ranges: &[ByteRange],
    len: u64,
    content_type: Option<&str>,
    boundary: String,
) -> Multipart {
    let type_line = part_content_type(content_type)
        .map(|ct| format!("Content-Type: {ct}\r\n"))
        .unwrap_or_default();
    let mut content_length = 0u64;
    let mut parts = Vec::with_capacity(ranges.len());
    for r in ranges {
        if r.end < r.start || r.end >= len {
            continue;
        }
        let head = format!(
            "\r\n--{boundary}\r\n{type_line}Content-Range: {}\r\n\r\n",
            content_range(r, len)
        );
        content_length = content_length
            .saturating_add(u64::try_from(head.len()).unwrap_or(u64::MAX))
            .saturating_add(r.length());
        parts.push((Bytes::from(head), *r));
    }
    let closing = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    content_length =
        content_length.saturating_add(u64::try_from(closing.len()).unwrap_or(u64::MAX));
    Multipart {
        boundary,
        parts,
        closing,
        content_length,
    }
}

/// Parses the Content-Range of a stored 206 (RFC 9110 §14.4): `bytes first-last/complete` or
/// `bytes first-last/*` (the unit case-insensitively), giving the range and the complete
/// length when known. `None` for an unsatisfied-range (`bytes */len`), another unit, numbers
/// beyond `u64`, last below first, or a complete length not above last (§14.4 calls those
/// invalid).
pub fn parse_content_range(value: &HeaderValue) -> Option<(ByteRange, Option<u64>)> {
    let b = trim_ows(value.as_bytes());
    let space = b.iter().position(|&c| c == b' ')?;
    if !b.get(..space)?.eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let rest = b.get(space + 1..)?;
    let slash = rest.iter().position(|&c| c == b'/')?;
    let (range, complete) = (rest.get(..slash)?, rest.get(slash + 1..)?);
    let dash = range.iter().position(|&c| c == b'-')?;
    let start = digits_exact(range.get(..dash)?)?;
    let end = digits_exact(range.get(dash + 1..)?)?;
    if end < start {
        return None;
    }
    let complete = if complete == b"*" {
        None
    } else {
        let n = digits_exact(complete)?;
        if n <= end {
            return None;
        }
        Some(n)
    };
    Some((ByteRange { start, end }, complete))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpcache::date::format_http_date;
    use std::time::UNIX_EPOCH;

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

    fn br(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    /// Parses and resolves a Range value against `len`.
    fn outcome(range: &str, len: u64) -> RangeOutcome {
        let req = map(&[("range", range)]);
        range_request(&Method::GET, &req, &HeaderMap::new(), len)
    }

    #[test]
    fn parses_the_three_forms() {
        let specs = parse_range(&HeaderValue::from_static("bytes=0-99, 200-, -50")).unwrap();
        assert_eq!(
            specs,
            [
                RangeSpec::Int {
                    first: 0,
                    last: Some(99)
                },
                RangeSpec::Int {
                    first: 200,
                    last: None
                },
                RangeSpec::Suffix { length: 50 },
            ]
        );
        let specs = parse_range(&HeaderValue::from_static("BYTES= ,\t1-1 ,,")).unwrap();
        assert_eq!(
            specs,
            [RangeSpec::Int {
                first: 1,
                last: Some(1)
            }]
        );
    }

    #[test]
    fn first_bytes() {
        assert_eq!(outcome("bytes=0-99", 1000), RangeOutcome::Single(br(0, 99)));
        assert_eq!(outcome("bytes=0-0", 1), RangeOutcome::Single(br(0, 0)));
        // last-pos beyond the end is clamped.
        assert_eq!(
            outcome("bytes=900-5000", 1000),
            RangeOutcome::Single(br(900, 999))
        );
        assert_eq!(
            outcome("bytes=0-99999999999999999999999", 1000),
            RangeOutcome::Single(br(0, 999))
        );
    }

    #[test]
    fn suffix_range() {
        assert_eq!(
            outcome("bytes=-50", 1000),
            RangeOutcome::Single(br(950, 999))
        );
        assert_eq!(
            outcome("bytes=-1", 1000),
            RangeOutcome::Single(br(999, 999))
        );
        // Longer than the representation: all of it (RFC 9110 §14.1.3).
        assert_eq!(
            outcome("bytes=-5000", 1000),
            RangeOutcome::Single(br(0, 999))
        );
        assert_eq!(
            outcome("bytes=-99999999999999999999999", 10),
            RangeOutcome::Single(br(0, 9))
        );
        // A zero suffix is unsatisfiable.
        assert_eq!(outcome("bytes=-0", 1000), RangeOutcome::Unsatisfiable);
    }

    #[test]
    fn open_range() {
        assert_eq!(
            outcome("bytes=200-", 1000),
            RangeOutcome::Single(br(200, 999))
        );
        assert_eq!(outcome("bytes=0-", 1000), RangeOutcome::Single(br(0, 999)));
        assert_eq!(
            outcome("bytes=999-", 1000),
            RangeOutcome::Single(br(999, 999))
        );
        assert_eq!(outcome("bytes=1000-", 1000), RangeOutcome::Unsatisfiable);
    }

    #[test]
    fn overlapping_ranges_coalesce() {
        assert_eq!(
            outcome("bytes=0-99, 50-149", 1000),
            RangeOutcome::Single(br(0, 149))
        );
        assert_eq!(
            outcome("bytes=500-599, 0-9, 550-", 1000),
            RangeOutcome::Multi(vec![br(500, 999), br(0, 9)])
        );
        // Enclosed, and duplicates.
        assert_eq!(
            outcome("bytes=0-99, 10-20", 1000),
            RangeOutcome::Single(br(0, 99))
        );
        assert_eq!(
            outcome("bytes=5-5, 5-5", 1000),
            RangeOutcome::Single(br(5, 5))
        );
        // A suffix overlapping an open range.
        assert_eq!(
            outcome("bytes=-100, 850-", 1000),
            RangeOutcome::Single(br(850, 999))
        );
    }

    #[test]
    fn adjacent_ranges_coalesce() {
        assert_eq!(
            outcome("bytes=0-9, 10-19, 20-29", 1000),
            RangeOutcome::Single(br(0, 29))
        );
        // A one-byte gap is a gap.
        assert_eq!(
            outcome("bytes=0-9, 11-19", 1000),
            RangeOutcome::Multi(vec![br(0, 9), br(11, 19)])
        );
    }

    #[test]
    fn multi_keeps_request_order() {
        assert_eq!(
            outcome("bytes=800-899, 0-99, 400-499", 1000),
            RangeOutcome::Multi(vec![br(800, 899), br(0, 99), br(400, 499)])
        );
        // The coalesced range goes where its earliest member was.
        assert_eq!(
            outcome("bytes=800-899, 0-99, 850-949", 1000),
            RangeOutcome::Multi(vec![br(800, 949), br(0, 99)])
        );
    }

    #[test]
    fn more_than_two_overlapping_ranges_is_full() {
        assert_eq!(
            outcome("bytes=0-99, 50-149, 100-199", 1000),
            RangeOutcome::Full
        );
        assert_eq!(outcome("bytes=0-, 0-, 0-", 1000), RangeOutcome::Full);
        assert_eq!(
            outcome("bytes=0-9, 5-15, 100-109, 105-115", 1000),
            RangeOutcome::Full
        );
    }

    #[test]
    fn too_many_ranges_is_full() {
        let many = |n: u64| {
            let list: Vec<String> = (0..n)
                .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
                .collect();
            format!("bytes={}", list.join(","))
        };
        match outcome(&many(100), 10_000) {
            RangeOutcome::Multi(v) => assert_eq!(v.len(), 100),
            other => panic!("{other:?}"),
        }
        assert_eq!(outcome(&many(101), 10_000), RangeOutcome::Full);
        let specs = vec![RangeSpec::Suffix { length: 1 }; MAX_RANGES + 1];
        assert_eq!(resolve(&specs, 10), RangeOutcome::Full);
        assert_eq!(resolve(&[], 10), RangeOutcome::Full);
    }

    #[test]
    fn unsatisfiable_range_is_416() {
        assert_eq!(
            outcome("bytes=1000-1999", 1000),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(
            outcome("bytes=5000-, 1000-", 1000),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(outcome("bytes=0-", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(unsatisfied_content_range(1000), "bytes */1000");
    }

    #[test]
    fn unsatisfiable_members_are_dropped() {
        assert_eq!(
            outcome("bytes=5000-6000, 0-9", 1000),
            RangeOutcome::Single(br(0, 9))
        );
        assert_eq!(
            outcome("bytes=-0, 0-9, 2000-, 20-29", 1000),
            RangeOutcome::Multi(vec![br(0, 9), br(20, 29)])
        );
    }

    #[test]
    fn zero_length_with_suffix_is_full() {
        assert_eq!(outcome("bytes=-10", 0), RangeOutcome::Full);
    }

    #[test]
    fn invalid_range_header_is_ignored() {
        for bad in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=a-b",
            "bytes=10-5",
            "bytes=0-99,10-5",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes = 0-1",
            "bytes=0 - 1",
            "bytes=--1",
            "items=0-1",
            "0-99",
            "bytes=0-99;x",
        ] {
            let value = HeaderValue::from_str(bad).unwrap();
            assert_eq!(parse_range(&value), None, "{bad:?}");
            assert_eq!(outcome(bad, 1000), RangeOutcome::Full, "{bad:?}");
        }
        // Two Range lines: ignored.
        let mut req = map(&[("range", "bytes=0-1")]);
        req.append(RANGE, HeaderValue::from_static("bytes=2-3"));
        assert_eq!(
            range_request(&Method::GET, &req, &HeaderMap::new(), 1000),
            RangeOutcome::Full
        );
        // An invalid spec handed to resolve directly.
        let specs = [RangeSpec::Int {
            first: 5,
            last: Some(4),
        }];
        assert_eq!(resolve(&specs, 1000), RangeOutcome::Full);
    }

    #[test]
    fn ranges_only_for_get() {
        let req = map(&[("range", "bytes=0-1")]);
        for method in [Method::HEAD, Method::POST, Method::PUT] {
            assert_eq!(
                range_request(&method, &req, &HeaderMap::new(), 1000),
                RangeOutcome::Full
            );
        }
        assert_eq!(
            range_request(&Method::GET, &HeaderMap::new(), &HeaderMap::new(), 1000),
            RangeOutcome::Full
        );
    }

    fn stored() -> HeaderMap {
        map(&[
            ("etag", "\"v1\""),
            ("last-modified", &at(T - 3600)),
            ("date", &at(T)),
        ])
    }

    #[test]
    fn if_range_with_strong_etag() {
        assert!(if_range_allows(&HeaderMap::new(), &stored()));
        assert!(if_range_allows(&map(&[("if-range", "\"v1\"")]), &stored()));
        assert!(if_range_allows(
            &map(&[("if-range", " \"v1\" ")]),
            &stored()
        ));
        assert!(!if_range_allows(&map(&[("if-range", "\"v2\"")]), &stored()));
        assert!(!if_range_allows(
            &map(&[("if-range", "\"v1\", \"v2\"")]),
            &stored()
        ));
        assert!(!if_range_allows(
            &map(&[("if-range", "\"v1\"")]),
            &HeaderMap::new()
        ));
        let req = map(&[("range", "bytes=0-1"), ("if-range", "\"v1\"")]);
        assert_eq!(
            range_request(&Method::GET, &req, &stored(), 10),
            RangeOutcome::Single(br(0, 1))
        );
        let req = map(&[("range", "bytes=0-1"), ("if-range", "\"v0\"")]);
        assert_eq!(
            range_request(&Method::GET, &req, &stored(), 10),
            RangeOutcome::Full
        );
    }

    #[test]
    fn if_range_with_weak_etag_never_matches() {
        assert!(!if_range_allows(
            &map(&[("if-range", "W/\"v1\"")]),
            &stored()
        ));
        let weak_stored = map(&[("etag", "W/\"v1\"")]);
        assert!(!if_range_allows(
            &map(&[("if-range", "W/\"v1\"")]),
            &weak_stored
        ));
        assert!(!if_range_allows(
            &map(&[("if-range", "\"v1\"")]),
            &weak_stored
        ));
    }

    #[test]
    fn if_range_with_date_must_equal_a_strong_last_modified() {
        assert!(if_range_allows(
            &map(&[("if-range", &at(T - 3600))]),
            &stored()
        ));
        // Not exactly Last-Modified.
        assert!(!if_range_allows(
            &map(&[("if-range", &at(T - 3599))]),
            &stored()
        ));
        assert!(!if_range_allows(
            &map(&[("if-range", &at(T - 3601))]),
            &stored()
        ));
        // Last-Modified too close to Date: weak (RFC 9110 §8.8.2.2).
        let lm = at(T - 59);
        let close = map(&[("last-modified", &lm), ("date", &at(T))]);
        assert!(!if_range_allows(&map(&[("if-range", &lm)]), &close));
        let lm = at(T - 60);
        let enough = map(&[("last-modified", &lm), ("date", &at(T))]);
        assert!(if_range_allows(&map(&[("if-range", &lm)]), &enough));
        // No Date: cannot tell, so weak.
        let no_date = map(&[("last-modified", &lm)]);
        assert!(!if_range_allows(&map(&[("if-range", &lm)]), &no_date));
        // Garbage and repeated fields.
        assert!(!if_range_allows(
            &map(&[("if-range", "yesterday")]),
            &stored()
        ));
        let mut req = map(&[("if-range", "\"v1\"")]);
        req.append(IF_RANGE, HeaderValue::from_static("\"v1\""));
        assert!(!if_range_allows(&req, &stored()));
    }

    #[test]
    fn content_range_strings() {
        assert_eq!(content_range(&br(0, 99), 1000), "bytes 0-99/1000");
        assert_eq!(
            content_range(&br(u64::MAX - 1, u64::MAX - 1), u64::MAX),
            format!("bytes {0}-{0}/{1}", u64::MAX - 1, u64::MAX)
        );
    }

    /// Assembles the body a client would receive.
    fn assemble(m: &Multipart, data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for (head, r) in &m.parts {
            body.extend_from_slice(head);
            body.extend_from_slice(&data[r.start as usize..=r.end as usize]);
        }
        body.extend_from_slice(&m.closing);
        body
    }

    #[test]
    fn multipart_content_length_is_exact() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let ranges = [br(500, 999), br(0, 9), br(20, 20)];
        let m = multipart(&ranges, 1000, Some("text/plain"));
        let body = assemble(&m, &data);
        assert_eq!(m.content_length, body.len() as u64);
        assert_eq!(m.parts.len(), 3);
        assert_eq!(m.boundary.len(), 32);
        assert!(m.boundary.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            m.content_type(),
            format!("multipart/byteranges; boundary={}", m.boundary)
        );
        let mut expected = Vec::new();
        for (r, ct) in ranges.iter().zip(["500-999", "0-9", "20-20"]) {
            expected.extend_from_slice(
                format!(
                    "\r\n--{}\r\nContent-Type: text/plain\r\nContent-Range: bytes {ct}/1000\r\n\r\n",
                    m.boundary
                )
                .as_bytes(),
            );
            expected.extend_from_slice(&data[r.start as usize..=r.end as usize]);
        }
        expected.extend_from_slice(format!("\r\n--{}--\r\n", m.boundary).as_bytes());
        assert_eq!(body, expected);

        // Without a Content-Type, and with one that would break the framing.
        for ct in [None, Some("text/plain\r\nX-Evil: 1"), Some("  ")] {
            let m = multipart(&ranges, 1000, ct);
            let body = assemble(&m, &data);
            assert_eq!(m.content_length, body.len() as u64);
            assert!(!body.windows(13).any(|w| w == b"Content-Type:"), "{ct:?}");
        }
    }

    #[test]
    fn multipart_boundaries_differ_and_invalid_ranges_are_left_out() {
        let a = multipart(&[br(0, 1), br(3, 4)], 10, None);
        let b = multipart(&[br(0, 1), br(3, 4)], 10, None);
        assert_ne!(a.boundary, b.boundary);
        let m = multipart_with_boundary(
            &[br(5, 4), br(0, 10), br(9, 9), br(u64::MAX, u64::MAX)],
            10,
            None,
            "B".to_owned(),
        );
        assert_eq!(m.parts.len(), 1);
        assert_eq!(
            m.parts[0].0,
            Bytes::from_static(b"\r\n--B\r\nContent-Range: bytes 9-9/10\r\n\r\n")
        );
        assert_eq!(m.closing, Bytes::from_static(b"\r\n--B--\r\n"));
        assert_eq!(m.content_length, 38 + 1 + 9);
        // Huge ranges saturate rather than overflow.
        let m = multipart(&[br(0, u64::MAX - 1), br(0, u64::MAX - 1)], u64::MAX, None);
        assert_eq!(m.content_length, u64::MAX);
    }

    #[test]
    fn parse_content_range_forms() {
        let p = |s: &str| parse_content_range(&HeaderValue::from_str(s).unwrap());
        assert_eq!(p("bytes 0-99/1000"), Some((br(0, 99), Some(1000))));
        assert_eq!(p("bytes 0-99/*"), Some((br(0, 99), None)));
        assert_eq!(p(" Bytes 5-5/6 "), Some((br(5, 5), Some(6))));
        let max = u64::MAX;
        assert_eq!(
            p(&format!("bytes 0-{}/{max}", max - 1)),
            Some((br(0, max - 1), Some(max)))
        );
        for bad in [
            "bytes */1000",
            "bytes 0-99/99",
            "bytes 10-9/100",
            "bytes 0-99/",
            "bytes 0-/100",
            "bytes -5/100",
            "bytes=0-99/1000",
            "items 0-99/1000",
            "bytes 0-99",
            "bytes  0-99/1000",
            "bytes 0-99/18446744073709551616",
            "bytes 0-18446744073709551616/*",
            "bytes 0 - 99/1000",
            "",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn never_panics() {
        const ALPHABET: &[&str] = &[
            "bytes",
            "=",
            "-",
            ",",
            " ",
            "\t",
            "0",
            "1",
            "9",
            "*",
            "/",
            "99999999999999999999",
            "18446744073709551615",
            "\"",
            "W/",
            "v1",
            "é",
            "Sun, 06 Nov 1994 08:49:37 GMT",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let lens = [0, 1, 2, 10, 1000, u64::MAX - 1, u64::MAX];
        for _ in 0..5000 {
            let n = next() % 14;
            let s: String = (0..n)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let Ok(value) = HeaderValue::from_str(&s) else {
                continue;
            };
            let len = lens[(next() % lens.len() as u64) as usize];
            let _ = parse_content_range(&value);
            let mut req = HeaderMap::new();
            req.insert(RANGE, value.clone());
            if next() % 2 == 0 {
                req.insert(IF_RANGE, value.clone());
            }
            let mut stored = HeaderMap::new();
            for name in [http::header::ETAG, LAST_MODIFIED, DATE] {
                if next() % 2 == 0 {
                    stored.insert(name, value.clone());
                }
            }
            let _ = if_range_allows(&req, &stored);
            if let RangeOutcome::Multi(ranges) = range_request(&Method::GET, &req, &stored, len) {
                let m = multipart(&ranges, len, Some(&s));
                assert_eq!(m.parts.len(), ranges.len());
            }
            if let Some(specs) = parse_range(&value) {
                match resolve(&specs, len) {
                    RangeOutcome::Single(r) => {
                        assert!(r.start <= r.end && r.end < len);
                        let _ = content_range(&r, len);
                    }
                    RangeOutcome::Multi(rs) => {
                        assert!(rs.len() >= 2 && rs.len() <= MAX_RANGES);
                        assert!(rs.iter().all(|r| r.start <= r.end && r.end < len));
                    }
                    RangeOutcome::Full | RangeOutcome::Unsatisfiable => {}
                }
            }
            let specs: Vec<RangeSpec> = (0..next() % 6)
                .map(|_| {
                    let a = next() % 20;
                    let b = next() % 20;
                    match next() % 3 {
                        0 => RangeSpec::Int {
                            first: a,
                            last: Some(b),
                        },
                        1 => RangeSpec::Int {
                            first: a,
                            last: None,
                        },
                        _ => RangeSpec::Suffix { length: a },
                    }
                })
                .collect();
            if let RangeOutcome::Multi(rs) = resolve(&specs, next() % 25) {
                let m = multipart(&rs, 25, None);
                assert_eq!(m.parts.len(), rs.len());
            }
        }
    }
}
