//! Bodies of the fuzz targets in `fuzz/fuzz_targets/`, kept in the library so that the
//! cargo-fuzz binaries and the corpus replay test (`tests/integration/fuzz_corpus.rs`, run
//! by `cargo test` on stable) execute exactly the same code.
//!
//! Each target takes arbitrary bytes, must never panic, and asserts a few properties that
//! hold for every input (round trips, what a walk over a valid segment must find). A panic
//! here is a bug in the store's codec or in these assertions, never an expected outcome.
//!
//! Input layout:
//! - [`record_decode`]: the whole input is always fed, as is, to every decoder of
//!   `store::record` (segment header, record header, `check_extent`, the three payload
//!   types, a `Walker`). If it starts with [`STRUCTURED_TAG`], the rest additionally
//!   describes a list of records that are written as a *valid* segment, checked, then
//!   mutated and walked again (the layout is documented on `build_segment`), so that the fuzzer
//!   reaches records with valid checksums.
//! - [`index_decode`]: the whole input is fed to `decode_value` for each sled value type
//!   (whatever decodes must re-encode to the same bytes), to the object directory's table
//!   header check, and, 128 bytes at a time, to the object and blob slot decoders (a
//!   decoded slot must re-encode to a slot that decodes the same). If it starts with
//!   [`STRUCTURED_TAG`], the rest describes one value of each type that must survive
//!   encoding then decoding unchanged.
//! - [`cache_control`], [`range`], [`config_toml`], [`cache_key`]: text parsers that see
//!   untrusted input (caching headers, Range, the configuration file, request targets);
//!   each documents its own input layout.
//! - [`store_model`]: a real store driven by operations decoded from the input and compared
//!   with a map of the last committed versions (module [`store_model`](mod@store_model)).

use crate::store::directory::{BlobSlot, ObjectSlot};
use crate::store::index::{
    decode_value, encode_value, Checkpoint, CounterValues, Pos, SegmentEntry, SegmentState,
};
use crate::store::record::{
    check_extent, decode_payload, encode_payload, BlobRecord, ObjectRecord, RecordHeader,
    RecordKind, Run, SegmentHeader, TombstoneRecord, WalkEnd, WalkItem, Walker, FORMAT_VERSION,
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use crate::store::slot_table::{check_header, slot_is_intact, TableKind, SLOT_LEN};

pub mod store_model;
pub use store_model::store_model;

/// Salt every target decodes with (and the seeds are written with).
pub const FUZZ_SALT: u64 = 0x5eed_ca1e_f00d_0001;
/// Segment id every target decodes with (and the seeds are written with).
pub const FUZZ_SEGMENT_ID: u64 = 7;
/// First byte of an input that selects the structured mode of a target.
pub const STRUCTURED_TAG: u8 = b'S';

/// Most records a structured `record_decode` input builds.
const MAX_RECORDS: usize = 32;
/// Most byte mutations a structured `record_decode` input applies.
const MAX_MUTATIONS: usize = 16;

/// Fuzz target `record_decode`: the segment and record codec of `store::record`.
pub fn record_decode(data: &[u8]) {
    raw_record_checks(data);
    if let Some((&STRUCTURED_TAG, rest)) = data.split_first() {
        structured_segment(rest);
    }
}

/// Fuzz target `index_decode`: the sled value codec of `store::index` and the object
/// directory's table header and slot codecs.
pub fn index_decode(data: &[u8]) {
    for kind in [TableKind::Objects, TableKind::Blobs] {
        let _ = check_header(data, kind, 0, FUZZ_SALT, data.len() as u64);
    }
    for slot in data.chunks_exact(SLOT_LEN) {
        let _ = slot_is_intact(FUZZ_SALT, slot);
        let o = ObjectSlot::decode(slot);
        assert_eq!(ObjectSlot::decode(&o.encode()), o, "object slot round trip");
        let b = BlobSlot::decode(slot);
        assert_eq!(BlobSlot::decode(&b.encode()), b, "blob slot round trip");
    }
    value_round_trips::<SegmentEntry>(data);
    value_round_trips::<Checkpoint>(data);
    if let Some((&STRUCTURED_TAG, rest)) = data.split_first() {
        structured_values(rest);
    }
}

// ---------------------------------------------------------------------------------------
// record_decode

/// Every decoder over the raw bytes. Nothing may panic; decoded payloads must re-encode to
/// the bytes they came from.
fn raw_record_checks(data: &[u8]) {
    let _ = SegmentHeader::decode(data, FUZZ_SEGMENT_ID, FUZZ_SALT);
    // As a lone record header (offset 64: the first record of a segment) and as the header
    // of the first record after a segment header.
    let _ = RecordHeader::decode(data, FUZZ_SALT, FUZZ_SEGMENT_ID, SEGMENT_HEADER_LEN as u64);
    let first = data
        .get(SEGMENT_HEADER_LEN..)
        .and_then(|rest| {
            RecordHeader::decode(rest, FUZZ_SALT, FUZZ_SEGMENT_ID, SEGMENT_HEADER_LEN as u64).ok()
        })
        .map(|h| h.payload_len);

    // check_extent at the first record, with the length its header claims and with the
    // length of what follows it, and at offsets that are out of range.
    let off = SEGMENT_HEADER_LEN as u64;
    let rest_len = data
        .len()
        .saturating_sub(SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u32;
    for len in first.into_iter().chain([rest_len, 0, u32::MAX]) {
        if let Ok(r) = check_extent(data, FUZZ_SALT, FUZZ_SEGMENT_ID, off, len) {
            assert_eq!(r.len(), len as usize, "check_extent range length");
            assert!(r.end <= data.len(), "check_extent range out of bounds");
        }
    }
    for off in [0, data.len() as u64, u64::MAX, 1 << 40] {
        let _ = check_extent(data, FUZZ_SALT, FUZZ_SEGMENT_ID, off, rest_len);
    }

    payload_checks(data);

    for start in [SEGMENT_HEADER_LEN as u64, 0] {
        walk(data, start, true);
        walk(data, start, false);
    }
}

/// The three payload decoders (and blob validation) over `payload`.
fn payload_checks(payload: &[u8]) {
    payload_round_trips::<ObjectRecord>(payload);
    payload_round_trips::<TombstoneRecord>(payload);
    if let Some(b) = payload_round_trips::<BlobRecord>(payload) {
        check_blob_record(&b);
    }
}

fn payload_round_trips<T>(payload: &[u8]) -> Option<T>
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + std::fmt::Debug,
{
    let v = decode_payload::<T>(payload).ok()?;
    assert_eq!(
        encode_payload(&v),
        payload,
        "decoded payload does not re-encode to its bytes: {v:?}"
    );
    Some(v)
}

/// `BlobRecord::validate`, then what recovery and lookups do with a record it accepted:
/// the disk length of each run and the places of its first extents.
fn check_blob_record(b: &BlobRecord) {
    if b.validate().is_err() {
        return;
    }
    for r in &b.runs {
        let _ = r.disk_len(b.chunk_size);
        for (_off, len) in r.extents(b.chunk_size).take(4) {
            assert!(len > 0 && len <= b.chunk_size, "extent length {len}");
        }
    }
}

/// Walks `bytes` as segment [`FUZZ_SEGMENT_ID`] from `start` and checks the walk's own
/// invariants; returns what it found.
fn walk(bytes: &[u8], start: u64, verify_extents: bool) -> Vec<(u64, RecordKind, bool)> {
    let mut w = Walker::new(bytes, FUZZ_SALT, FUZZ_SEGMENT_ID, start);
    if !verify_extents {
        w = w.skip_extent_checks();
    }
    let mut found = Vec::new();
    let mut expect_at = start;
    while let Some(item) = w.next() {
        let (offset, header, good) = match &item {
            WalkItem::Record(r) => {
                assert_eq!(
                    r.payload.len() as u64,
                    r.header.payload_len as u64,
                    "payload slice length"
                );
                (r.offset, r.header, true)
            }
            WalkItem::BadPayload { offset, header, .. } => (*offset, *header, false),
        };
        assert_eq!(offset, expect_at, "records must follow each other");
        expect_at = offset + header.record_len();
        assert_eq!(w.position(), expect_at, "walker position");
        assert!(expect_at <= bytes.len() as u64, "record past the end");
        if let WalkItem::Record(r) = item {
            match header.kind {
                RecordKind::Extent if verify_extents => {
                    let range = check_extent(
                        bytes,
                        FUZZ_SALT,
                        FUZZ_SEGMENT_ID,
                        offset,
                        header.payload_len,
                    )
                    .expect("an extent the walker checked must pass check_extent");
                    assert_eq!(&bytes[range], r.payload, "check_extent range");
                }
                RecordKind::Extent => {
                    let _ = check_extent(
                        bytes,
                        FUZZ_SALT,
                        FUZZ_SEGMENT_ID,
                        offset,
                        header.payload_len,
                    );
                }
                _ => payload_checks(r.payload),
            }
        }
        found.push((offset, header.kind, good));
    }
    assert!(w.next().is_none(), "walker resumed after its end");
    let end = w.end().expect("a finished walk says why it ended");
    match end {
        WalkEnd::End => assert!(w.position() >= bytes.len() as u64, "early end"),
        WalkEnd::Unwritten { offset } | WalkEnd::BadHeader { offset, .. } => {
            assert_eq!(*offset, expect_at, "end offset")
        }
    }
    found
}

/// A record a structured input asks for.
enum Spec {
    Extent(Vec<u8>),
    Blob(BlobRecord),
    Object(ObjectRecord),
    Tombstone(TombstoneRecord),
    /// Arbitrary payload bytes under a non-extent kind.
    Raw(RecordKind, Vec<u8>),
}

impl Spec {
    fn kind_and_payload(&self) -> (RecordKind, Vec<u8>) {
        match self {
            Spec::Extent(p) => (RecordKind::Extent, p.clone()),
            Spec::Blob(b) => (RecordKind::Blob, encode_payload(b)),
            Spec::Object(o) => (RecordKind::Object, encode_payload(o)),
            Spec::Tombstone(t) => (RecordKind::Tombstone, encode_payload(t)),
            Spec::Raw(k, p) => (*k, p.clone()),
        }
    }
}

/// A valid segment built from a structured input, with the damage the input asks for
/// (not applied yet).
struct Built {
    seg: Vec<u8>,
    /// (position modulo the segment length, xor mask)
    mutations: Vec<(usize, u8)>,
    /// Length to cut the mutated segment to (modulo its length + 1).
    truncate: Option<usize>,
}

/// Builds a valid segment from a structured input and checks that it reads back exactly as
/// written.
///
/// Layout (every read past the end yields zeroes, so any input is a valid description):
/// - `flags: u8`: bit 0 pads the segment with zeroes (an unwritten tail of 1 to 256
///   bytes, length from the next `u8`), bit 1 truncates the mutated segment (length from a
///   `u16` read after the records), bit 2 applies mutations.
/// - `count: u8` records (at most 32), each a `selector: u8` (mod 5: extent, blob, object,
///   tombstone, raw payload of a non-extent kind) followed by its fields (`read_spec`).
/// - then, with bit 2, mutations of 3 bytes each (`u16` position, `u8` xor mask, where 0
///   means 1), at most 16.
fn build_segment(input: &[u8]) -> Built {
    let mut r = Reader::new(input);
    let flags = r.u8();
    let pad = if flags & 1 != 0 {
        r.u8() as usize + 1
    } else {
        0
    };
    let count = (r.u8() as usize).min(MAX_RECORDS);
    let specs: Vec<Spec> = (0..count).map(|_| read_spec(&mut r)).collect();
    let truncate = (flags & 2 != 0).then(|| r.u16() as usize);
    let mut mutations = Vec::new();
    if flags & 4 != 0 {
        while !r.is_empty() && mutations.len() < MAX_MUTATIONS {
            let pos = r.u16() as usize;
            let mask = r.u8();
            mutations.push((pos, mask.max(1)));
        }
    }

    let mut seg = SegmentHeader {
        version: FORMAT_VERSION,
        segment_id: FUZZ_SEGMENT_ID,
        salt: FUZZ_SALT,
        created_at_ms: 1_700_000_000_000,
    }
    .encode()
    .to_vec();
    let mut placed = Vec::with_capacity(specs.len());
    for s in &specs {
        let (kind, payload) = s.kind_and_payload();
        let off = seg.len() as u64;
        let h = RecordHeader::for_payload(kind, &payload);
        seg.extend_from_slice(&h.encode(FUZZ_SALT, FUZZ_SEGMENT_ID, off));
        seg.extend_from_slice(&payload);
        placed.push((off, kind));
    }
    let end_of_records = seg.len() as u64;
    seg.resize(seg.len() + pad, 0);
    check_valid_segment(&seg, &specs, &placed, (pad > 0).then_some(end_of_records));
    Built {
        seg,
        mutations,
        truncate,
    }
}

fn structured_segment(input: &[u8]) {
    let Built {
        mut seg,
        mutations,
        truncate,
    } = build_segment(input);
    if mutations.is_empty() && truncate.is_none() {
        return;
    }
    let len = seg.len(); // never 0: the segment header is there
    for (pos, mask) in mutations {
        seg[pos % len] ^= mask;
    }
    if let Some(t) = truncate {
        seg.truncate(t % (len + 1));
    }
    // No oracle beyond "no panic" and the walk's own invariants.
    let _ = SegmentHeader::decode(&seg, FUZZ_SEGMENT_ID, FUZZ_SALT);
    walk(&seg, SEGMENT_HEADER_LEN as u64, true);
    walk(&seg, SEGMENT_HEADER_LEN as u64, false);
}

/// The oracle for an undamaged segment: the header decodes, both walks find exactly the
/// records written, each payload decodes to what was encoded, and the walk ends at the end
/// of the file or (with padding) at the unwritten tail.
fn check_valid_segment(
    seg: &[u8],
    specs: &[Spec],
    placed: &[(u64, RecordKind)],
    unwritten_at: Option<u64>,
) {
    let h = SegmentHeader::decode(seg, FUZZ_SEGMENT_ID, FUZZ_SALT)
        .expect("a freshly encoded segment header decodes");
    assert_eq!(h.segment_id, FUZZ_SEGMENT_ID);
    let want: Vec<_> = placed.iter().map(|&(o, k)| (o, k, true)).collect();
    for verify in [true, false] {
        let found = walk(seg, SEGMENT_HEADER_LEN as u64, verify);
        assert_eq!(found, want, "walk over a valid segment (verify={verify})");
    }
    let mut w = Walker::new(seg, FUZZ_SALT, FUZZ_SEGMENT_ID, SEGMENT_HEADER_LEN as u64);
    for (spec, item) in specs.iter().zip(w.by_ref()) {
        let WalkItem::Record(r) = item else {
            panic!("a valid record was reported as a bad payload");
        };
        match spec {
            Spec::Extent(p) | Spec::Raw(_, p) => assert_eq!(r.payload, &p[..]),
            Spec::Blob(b) => assert_eq!(decode_payload::<BlobRecord>(r.payload).as_ref(), Ok(b)),
            Spec::Object(o) => {
                assert_eq!(decode_payload::<ObjectRecord>(r.payload).as_ref(), Ok(o))
            }
            Spec::Tombstone(t) => {
                assert_eq!(decode_payload::<TombstoneRecord>(r.payload).as_ref(), Ok(t))
            }
        }
    }
    assert!(w.next().is_none());
    let want_end = match unwritten_at {
        Some(offset) => WalkEnd::Unwritten { offset },
        None => WalkEnd::End,
    };
    assert_eq!(w.end(), Some(&want_end), "end of a valid segment");
}

fn read_spec(r: &mut Reader) -> Spec {
    match r.u8() % 5 {
        0 => {
            // Extent: u16 length (modulo 1024), then that many bytes.
            let len = r.u16() as usize % 1024;
            Spec::Extent(r.bytes(len))
        }
        1 => Spec::Blob(read_blob(r)),
        2 => Spec::Object(ObjectRecord {
            key: r.short_bytes(),
            distribution: r.string(),
            tags: (0..r.u8() % 4).map(|_| r.string()).collect(),
            meta: r.short_bytes(),
            stored_at_ms: r.u64(),
            expires_at_ms: r.u64(),
            blob: r.hash(),
            body_len: r.u64(),
        }),
        3 => {
            let prefix = r.u8() & 1 == 1;
            let b = r.short_bytes();
            Spec::Tombstone(if prefix {
                TombstoneRecord::Prefix(b)
            } else {
                TombstoneRecord::Key(b)
            })
        }
        _ => {
            // Raw: kind (blob, object or tombstone), u8 length, bytes.
            let kind = match r.u8() % 3 {
                0 => RecordKind::Blob,
                1 => RecordKind::Object,
                _ => RecordKind::Tombstone,
            };
            Spec::Raw(kind, r.short_bytes())
        }
    }
}

/// A blob record: hash byte, chunk size (`u32`), run count (mod 5), runs (`u64` segment,
/// offset, length each), then a `u8` that, when odd, makes `len` the sum of the run lengths
/// (wrapping), otherwise a `u64` read next.
fn read_blob(r: &mut Reader) -> BlobRecord {
    let hash = r.hash();
    let chunk_size = r.u32();
    let runs: Vec<Run> = (0..r.u8() % 5)
        .map(|_| Run {
            segment: r.u64(),
            offset: r.u64(),
            len: r.u64(),
        })
        .collect();
    let len = if r.u8() & 1 == 1 {
        runs.iter().fold(0u64, |a, r| a.wrapping_add(r.len))
    } else {
        r.u64()
    };
    BlobRecord {
        hash,
        len,
        chunk_size,
        runs,
    }
}

// ---------------------------------------------------------------------------------------
// index_decode

fn value_round_trips<T>(bytes: &[u8])
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + std::fmt::Debug,
{
    if let Ok(v) = decode_value::<T>(bytes) {
        assert_eq!(
            encode_value(&v),
            bytes,
            "decoded index value does not re-encode to its bytes: {v:?}"
        );
    }
}

fn encode_decode<T>(v: &T)
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + std::fmt::Debug + PartialEq,
{
    let enc = encode_value(v);
    assert_eq!(
        decode_value::<T>(&enc).as_ref(),
        Ok(v),
        "index value round trip"
    );
    // Every strict prefix and the value with a trailing byte are refused.
    for cut in [0, 1, enc.len() / 2, enc.len() - 1] {
        assert!(
            decode_value::<T>(&enc[..cut]).is_err(),
            "a {cut}-byte prefix of a {}-byte value decoded",
            enc.len()
        );
    }
    let mut longer = enc;
    longer.push(0);
    assert!(
        decode_value::<T>(&longer).is_err(),
        "trailing byte accepted"
    );
}

fn structured_values(input: &[u8]) {
    let mut r = Reader::new(input);
    let pos = |r: &mut Reader| Pos {
        segment: r.u64(),
        offset: r.u64(),
    };
    let o = ObjectSlot {
        id: r.hash()[..16].try_into().expect("16 bytes"),
        pos: pos(&mut r),
        record_len: r.u32(),
        stored_at_ms: r.u64(),
        expires_at_ms: r.u64(),
        body_len: r.u64(),
        blob: r.hash(),
    };
    assert_eq!(ObjectSlot::decode(&o.encode()), o, "object slot round trip");
    let b = read_blob(&mut r);
    let b = BlobSlot {
        hash: b.hash,
        len: b.len,
        chunk_size: b.chunk_size,
        run_count: b.runs.len() as u32,
        first_run: b.runs.first().copied().unwrap_or(Run {
            segment: 0,
            offset: 0,
            len: 0,
        }),
        manifest: pos(&mut r),
        manifest_len: r.u32(),
        refs: r.u32(),
        gone: r.u8() & 1 == 1,
    };
    assert_eq!(BlobSlot::decode(&b.encode()), b, "blob slot round trip");
    let s = SegmentEntry {
        state: if r.u8() & 1 == 0 {
            SegmentState::Active
        } else {
            SegmentState::Sealed
        },
        created_at_ms: r.u64(),
    };
    encode_decode(&s);
    let c = Checkpoint {
        watermark: pos(&mut r),
        next_segment: r.u64(),
        counters: CounterValues {
            objects: r.u64(),
            blobs: r.u64(),
            live_bytes: r.u64(),
            dedup_saved_bytes: r.u64(),
        },
    };
    encode_decode(&c);
}

// ---------------------------------------------------------------------------------------

/// Reads fields from a structured input; past its end every read yields zeroes.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n_avail = n.min(self.data.len());
        let (head, tail) = self.data.split_at(n_avail);
        self.data = tail;
        let mut v = head.to_vec();
        v.resize(n, 0);
        v
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let v = self.bytes(N);
        a.copy_from_slice(&v);
        a
    }

    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A 32-byte hash from one byte (all 32 bytes equal to it).
    fn hash(&mut self) -> [u8; 32] {
        [self.u8(); 32]
    }

    /// A `u8` length, then that many bytes (only what the input still has).
    fn short_bytes(&mut self) -> Vec<u8> {
        let n = (self.u8() as usize).min(self.data.len());
        self.bytes(n)
    }

    fn string(&mut self) -> String {
        String::from_utf8_lossy(&self.short_bytes()).into_owned()
    }
}

// ---------------------------------------------------------------------------------------
// cache_control

/// Fixed "now" of the HTTP targets (deterministic replays).
fn fuzz_now() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)
}

/// Fuzz target `cache_control`: `CacheControl::parse`, the RFC 9213 governing field,
/// `decide_store` and `initial_age`.
///
/// Input layout: the whole input (lossily decoded) is parsed as one Cache-Control value.
/// It is also split at `\n` into up to five field values, in order Cache-Control,
/// CDN-Cache-Control, Expires, Age, Date; each non-empty line that `HeaderValue` accepts is
/// set on a response header map.
pub fn cache_control(data: &[u8]) {
    use crate::httpcache::{
        decide_store, governing_cache_control, initial_age, parse_age, CacheControl, CcSource,
        RequestFacts, StorePolicy, TtlSettings,
    };
    use http::header::{AGE, CACHE_CONTROL, DATE, EXPIRES};
    use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
    use std::time::Duration;

    let s = String::from_utf8_lossy(data);
    let cc = CacheControl::parse(&s);
    assert_eq!(cc, CacheControl::parse(&s), "parse is deterministic");

    let names = [
        CACHE_CONTROL,
        HeaderName::from_static("cdn-cache-control"),
        EXPIRES,
        AGE,
        DATE,
    ];
    let mut resp = HeaderMap::new();
    for (name, line) in names.iter().zip(data.split(|&b| b == b'\n')) {
        if line.is_empty() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(line) {
            resp.insert(name.clone(), v);
        }
    }

    // A single Cache-Control line parses as `parse` of its (lossy) text.
    if let Some(v) = resp.get(CACHE_CONTROL) {
        assert_eq!(
            CacheControl::from_headers(&resp),
            CacheControl::parse(&String::from_utf8_lossy(v.as_bytes())),
            "from_headers of one line equals parse"
        );
    }
    let (governing, source) = governing_cache_control(&resp);
    if source == CcSource::CacheControl {
        assert_eq!(governing, CacheControl::from_headers(&resp));
    } else {
        assert!(
            resp.contains_key("cdn-cache-control"),
            "targeted source without its field"
        );
    }

    let now = fuzz_now();
    let req = RequestFacts::plain_get();
    let cloudfront = TtlSettings::default();
    let strict = TtlSettings {
        default_ttl: 0,
        ..TtlSettings::default()
    };
    for ttl in [cloudfront, strict] {
        let policy = StorePolicy::new(ttl);
        for status in [
            StatusCode::OK,
            StatusCode::NOT_FOUND,
            StatusCode::BAD_GATEWAY,
        ] {
            let d = decide_store(&policy, &req, status, &resp, now);
            assert_eq!(d.source, source, "decide_store uses the governing field");
            if d.store {
                if status == StatusCode::OK {
                    assert!(
                        d.freshness <= Duration::from_secs(ttl.max_ttl),
                        "freshness {:?} above max_ttl {} ({:?})",
                        d.freshness,
                        ttl.max_ttl,
                        d.rule
                    );
                }
            } else {
                assert_eq!(d.freshness, Duration::ZERO, "not stored with a freshness");
            }
        }
    }

    let delay = Duration::from_secs(2);
    let age = initial_age(&resp, now - delay, now);
    let age_value = Duration::from_secs(parse_age(&resp).unwrap_or(0));
    assert!(
        age >= age_value.saturating_add(delay),
        "initial age {age:?} below age value {age_value:?} + response delay"
    );
    // A request sent after the response arrived (clock skew): no panic, no negative delay.
    let skewed = initial_age(&resp, now + delay, now);
    assert!(
        skewed >= age_value,
        "skewed initial age below the Age value"
    );
}

// ---------------------------------------------------------------------------------------
// range

/// Fuzz target `range`: the whole input as a Range field value through `parse_range` and
/// `resolve` against a few lengths, then `multipart` and `content_range` /
/// `parse_content_range` on what resolves; the input is also fed to `parse_content_range`.
pub fn range(data: &[u8]) {
    use crate::httpcache::range::{
        content_range, multipart, parse_content_range, parse_range, resolve, ByteRange,
        RangeOutcome, MAX_RANGES,
    };
    use http::HeaderValue;

    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };

    if let Some((r, complete)) = parse_content_range(&value) {
        assert!(r.start <= r.end, "parsed Content-Range with end < start");
        if let Some(c) = complete {
            assert!(c > r.end, "complete length not above last");
            let again = HeaderValue::from_str(&content_range(&r, c)).expect("ascii");
            assert_eq!(parse_content_range(&again), Some((r, Some(c))));
        }
    }

    let Some(specs) = parse_range(&value) else {
        return;
    };
    assert!(
        !specs.is_empty() && specs.len() <= MAX_RANGES,
        "parse_range gave {} specs",
        specs.len()
    );
    for len in [0, 1, 1000, u64::MAX / 2] {
        let ranges: Vec<ByteRange> = match resolve(&specs, len) {
            RangeOutcome::Full | RangeOutcome::Unsatisfiable => continue,
            RangeOutcome::Single(r) => vec![r],
            RangeOutcome::Multi(rs) => {
                assert!(rs.len() >= 2, "Multi with {} ranges", rs.len());
                assert!(rs.len() <= specs.len(), "more ranges than specs");
                rs
            }
        };
        for r in &ranges {
            assert!(
                r.start <= r.end && r.end < len,
                "range {r:?} outside a {len}-byte representation"
            );
            let cr = HeaderValue::from_str(&content_range(r, len)).expect("ascii");
            assert_eq!(
                parse_content_range(&cr),
                Some((*r, Some(len))),
                "content_range round trip"
            );
        }
        let mut sorted = ranges.clone();
        sorted.sort_by_key(|r| r.start);
        for w in sorted.windows(2) {
            assert!(
                w[0].end.saturating_add(1) < w[1].start,
                "ranges overlap or touch: {:?} {:?}",
                w[0],
                w[1]
            );
        }
        let m = multipart(&ranges, len, Some("text/plain"));
        assert_eq!(m.parts.len(), ranges.len(), "multipart dropped a range");
        let total: u128 = m
            .parts
            .iter()
            .map(|(head, r)| head.len() as u128 + r.length() as u128)
            .sum::<u128>()
            + m.closing.len() as u128;
        assert_eq!(
            m.content_length as u128,
            total.min(u64::MAX as u128),
            "multipart content_length"
        );
    }
}

// ---------------------------------------------------------------------------------------
// config_toml

/// Fuzz target `config_toml`: the whole input (lossily decoded) as a configuration file.
pub fn config_toml(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let Err(errors) =
        crate::config::load_str(&s, "fuzz.toml", std::path::Path::new("/nonexistent"))
    else {
        return;
    };
    assert!(!errors.problems.is_empty(), "an error without problems");
    let lines = s.lines().count();
    for p in &errors.problems {
        assert!(
            !p.message.trim().is_empty(),
            "problem without a message: {p:?}"
        );
        if p.line > 0 {
            assert!(
                p.line <= lines + 1,
                "problem at line {} of a {lines}-line input: {p:?}",
                p.line
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// cache_key

/// Fuzz target `cache_key`: request targets and headers through `normalize_path` and
/// `cache_key`, and keys back through `parse_key`.
///
/// Input layout: up to the first 0x00 byte, the request target (path and query); after it,
/// `\n`-separated values for Accept-Encoding, Cookie and Host (each set when
/// `HeaderValue` accepts it).
pub fn cache_key(data: &[u8]) {
    use crate::cache_key::{cache_key, parse_key, KeyInput, MAX_KEY_LEN};
    use crate::config::{CacheKeyPolicy, ListPolicy};
    use http::header::{ACCEPT_ENCODING, COOKIE, HOST};
    use http::{HeaderMap, HeaderValue, Uri};

    let (target, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };

    check_normalize_path(&String::from_utf8_lossy(target));
    // The path part alone, as `Uri` would split it.
    let raw = String::from_utf8_lossy(target);
    check_normalize_path(raw.split('?').next().unwrap_or(""));

    let mut headers = HeaderMap::new();
    for (name, line) in [ACCEPT_ENCODING, COOKIE, HOST]
        .into_iter()
        .zip(rest.split(|&b| b == b'\n'))
    {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.insert(name, v);
        }
    }
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let policy = CacheKeyPolicy {
        query_strings: ListPolicy::All,
        headers: vec!["accept-encoding".into(), "host".into()],
        cookies: ListPolicy::All,
    };
    for root in [None, Some("index.html")] {
        let input = KeyInput {
            distribution: "E1FUZZ",
            uri: &uri,
            headers: &headers,
            policy: &policy,
            default_root_object: root,
        };
        let Ok(k) = cache_key(&input) else {
            continue;
        };
        assert!(k.key.len() <= MAX_KEY_LEN, "key of {} bytes", k.key.len());
        assert!(k.path.starts_with('/'), "keyed path {:?}", k.path);
        if let Some(parts) = parse_key(&k.key) {
            assert_eq!(parts.to_key(), k.key, "parse_key/to_key round trip");
            assert_eq!(parts.distribution, "E1FUZZ");
            assert_eq!(parts.path, k.path, "parsed path");
            assert_eq!(parts.query, k.query.clone().filter(|q| !q.is_empty()));
        } else {
            // Only non-UTF-8 header or cookie values make a key unreadable.
            assert!(
                headers.values().any(|v| v.to_str().is_err()),
                "a key built from UTF-8 input does not parse: {:?}",
                k.key
            );
        }
    }
    // Any bytes that parse as a key round-trip too.
    if let Some(parts) = parse_key(rest) {
        assert_eq!(
            parts.to_key(),
            rest,
            "parse_key/to_key round trip on raw bytes"
        );
    }
}

/// `normalize_path` properties: a result starts with '/', has no dot segment and is a
/// fixed point.
fn check_normalize_path(raw: &str) {
    use crate::cache_key::normalize_path;
    let Ok(p) = normalize_path(raw) else {
        return;
    };
    assert!(p.starts_with('/'), "normalised {raw:?} to {p:?}");
    assert!(
        !p.contains("/../") && !p.contains("/./"),
        "dot segment left in {p:?} (from {raw:?})"
    );
    let again = normalize_path(&p).unwrap_or_else(|e| panic!("{p:?} (from {raw:?}): {e:?}"));
    assert_eq!(again, p, "normalize_path is not idempotent on {raw:?}");
}
