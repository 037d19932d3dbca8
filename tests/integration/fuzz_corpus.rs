//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and crash inputs
//! (`fuzz/regressions/<target>/`) through the same `cairn::fuzzing` functions the cargo-fuzz
//! targets run, so that CI (stable, no libFuzzer) keeps every input the fuzzer ever kept
//! passing. A missing or empty corpus directory fails the test.
//!
//! `decoding_allocates_in_proportion_to_the_input` replays the same inputs under an
//! allocator that records the largest single allocation, because "never allocate what a
//! corrupt length asks for" is not something a panic would show.
//!
//! The seeds in the `record_decode` and `index_decode` corpora are written by `write_seeds`
//! below from real encodings:
//! `CAIRN_WRITE_FUZZ_SEEDS=1 cargo test --test integration fuzz_corpus::write_seeds`. The
//! seeds of the text targets (`cache_control`, `range`, `config_toml`, `cache_key`) are
//! hand-written files (`corpus/<target>/seed-*`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use cairn::fuzzing::store_model::StoreModelStats;
use cairn::fuzzing::{FUZZ_SALT, FUZZ_SEGMENT_ID, STRUCTURED_TAG};
use cairn::store::directory::{BlobSlot, ObjectSlot};
use cairn::store::index::{
    encode_value, Checkpoint, CounterValues, Pos, SegmentEntry, SegmentState,
};
use cairn::store::record::{
    encode_payload, BlobRecord, ObjectRecord, RecordHeader, RecordKind, Run, SegmentHeader,
    TombstoneRecord, CHUNK_SIZE, FORMAT_VERSION, SEGMENT_HEADER_LEN,
};
use cairn::store::slot_table::{encode_header, TableKind, HEADER_LEN, MIN_SLOTS, SLOT_LEN};

type Target = fn(&[u8]);

/// Named inputs.
type Seeds = Vec<(String, Vec<u8>)>;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; `None` if it does not exist.
fn files(dir: &Path) -> Option<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).ok()?;
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.expect("read corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Some(v)
}

/// The inputs of `dir`; panics if it is missing or empty.
fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let paths = files(dir).unwrap_or_else(|| panic!("{} is missing", dir.display()));
    assert!(!paths.is_empty(), "{} is empty", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).expect("read corpus file");
            (p, data)
        })
        .collect()
}

/// Runs `target` over every file of `dir`; panics naming every input that panicked.
fn replay(target: Target, dir: &Path) -> usize {
    replay_collecting(target, dir).len()
}

/// Runs `run` over every file of `dir` and returns what it returned for each; panics
/// naming every input that panicked.
fn replay_collecting<T>(run: impl Fn(&[u8]) -> T, dir: &Path) -> Vec<T> {
    let inputs = inputs(dir);
    let mut failed = Vec::new();
    let mut out = Vec::with_capacity(inputs.len());
    for (path, data) in &inputs {
        match catch_unwind(AssertUnwindSafe(|| run(data))) {
            Ok(v) => out.push(v),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failed.push(format!(
                    "{}: {msg}\n  input ({} bytes): {}",
                    path.display(),
                    data.len(),
                    hex(data)
                ));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs in {} panicked:\n{}",
        failed.len(),
        inputs.len(),
        dir.display(),
        failed.join("\n")
    );
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn replay_corpus(name: &str, target: Target) {
    let n = replay(target, &fuzz_dir().join("corpus").join(name));
    eprintln!("{name}: replayed {n} corpus inputs");
}

/// Crash inputs are kept apart from the corpus; the directory is optional.
fn replay_regressions(name: &str, target: Target) {
    let dir = fuzz_dir().join("regressions").join(name);
    if dir.exists() {
        let n = replay(target, &dir);
        eprintln!("{name}: replayed {n} regression inputs");
    }
}

#[test]
fn record_decode_corpus() {
    replay_corpus("record_decode", cairn::fuzzing::record_decode);
}

#[test]
fn record_decode_regressions() {
    replay_regressions("record_decode", cairn::fuzzing::record_decode);
}

#[test]
fn index_decode_corpus() {
    replay_corpus("index_decode", cairn::fuzzing::index_decode);
}

#[test]
fn index_decode_regressions() {
    replay_regressions("index_decode", cairn::fuzzing::index_decode);
}

#[test]
fn cache_control_corpus() {
    replay_corpus("cache_control", cairn::fuzzing::cache_control);
}

#[test]
fn cache_control_regressions() {
    replay_regressions("cache_control", cairn::fuzzing::cache_control);
}

#[test]
fn range_corpus() {
    replay_corpus("range", cairn::fuzzing::range);
}

#[test]
fn range_regressions() {
    replay_regressions("range", cairn::fuzzing::range);
}

#[test]
fn config_toml_corpus() {
    replay_corpus("config_toml", cairn::fuzzing::config_toml);
}

#[test]
fn config_toml_regressions() {
    replay_regressions("config_toml", cairn::fuzzing::config_toml);
}

#[test]
fn cache_key_corpus() {
    replay_corpus("cache_key", cairn::fuzzing::cache_key);
}

#[test]
fn cache_key_regressions() {
    replay_regressions("cache_key", cairn::fuzzing::cache_key);
}

/// Replays the `store_model` corpus and checks that, taken together, its inputs reach
/// every path the model is there for (a corpus that never evicts or never rebuilds would
/// pass while checking little).
#[test]
fn store_model_corpus() {
    let dir = fuzz_dir().join("corpus").join("store_model");
    let runs = replay_collecting(cairn::fuzzing::store_model::store_model_stats, &dir);
    let mut t = StoreModelStats::default();
    for r in &runs {
        t.ops += r.ops;
        t.hits += r.hits;
        t.large_hits += r.large_hits;
        t.dedup_saved_bytes += r.dedup_saved_bytes;
        t.reclaimed_segments += r.reclaimed_segments;
        t.vanished += r.vanished;
        t.expired += r.expired;
        t.removed += r.removed;
        t.abandoned += r.abandoned;
        t.over_capacity_refusals += r.over_capacity_refusals;
        t.reopens += r.reopens;
        t.rebuilds += r.rebuilds;
        t.damaged += r.damaged;
        t.older_versions += r.older_versions;
    }
    eprintln!("store_model: replayed {} corpus inputs: {t:?}", runs.len());
    let reached = [
        ("hits", t.hits),
        ("large_hits", t.large_hits),
        ("dedup_saved_bytes", t.dedup_saved_bytes),
        ("reclaimed_segments", t.reclaimed_segments),
        ("vanished", t.vanished),
        ("expired", t.expired),
        ("removed", t.removed),
        ("abandoned", t.abandoned),
        ("over_capacity_refusals", t.over_capacity_refusals),
        ("reopens", t.reopens),
        ("rebuilds", t.rebuilds),
        ("damaged", t.damaged),
    ];
    for (what, n) in reached {
        assert!(n > 0, "no store_model corpus input reaches {what}: {t:?}");
    }
}

#[test]
fn store_model_regressions() {
    replay_regressions("store_model", cairn::fuzzing::store_model);
}

// ---- allocation bound ----

/// The system allocator, recording the largest single request made by the current thread
/// while `largest_allocation` runs (other threads and other tests are not affected).
struct Tracking;

thread_local! {
    static LARGEST: Cell<Option<usize>> = const { Cell::new(None) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|c| {
        if let Some(m) = c.get() {
            c.set(Some(m.max(size)));
        }
    });
}

// SAFETY: every method forwards to the system allocator with the caller's arguments
// unchanged; `note` only records a size in a thread-local Cell (no allocation, no
// re-entry), so the GlobalAlloc contract is exactly System's.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: our caller upholds `alloc`'s contract for `layout`; passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`: the caller's `layout`, passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr`/`layout` came from `System` through this allocator; the caller
        // upholds `realloc`'s contract for `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// The largest single allocation `f` made on this thread.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|c| c.set(Some(0)));
    f();
    LARGEST.with(|c| c.take()).unwrap_or(0)
}

/// What a target may allocate at once for an input of `len` bytes: serde preallocates at
/// most 1 MiB for a sequence whatever its claimed length, and a structured `record_decode`
/// input builds a segment of up to ~35 KiB however short it is; anything beyond that must
/// be justified by the input's own length.
fn allocation_bound(len: usize) -> usize {
    (1 << 20) + (128 << 10) + 16 * len
}

/// Replays corpora and regressions once more, failing for every input whose largest
/// single allocation exceeds `allocation_bound` (a length field asking for more than the
/// bytes that follow it must be refused before it is allocated). Inputs that panic are
/// left to the replay tests.
#[test]
fn decoding_allocates_in_proportion_to_the_input() {
    let mut over = Vec::new();
    let mut n = 0;
    for (name, target) in TARGETS {
        for kind in ["corpus", "regressions"] {
            let dir = fuzz_dir().join(kind).join(name);
            if kind == "regressions" && !dir.exists() {
                continue;
            }
            for (path, data) in inputs(&dir) {
                let mut panicked = false;
                let largest = largest_allocation(|| {
                    panicked = catch_unwind(AssertUnwindSafe(|| target(&data))).is_err();
                });
                // A panic's backtrace allocates megabytes; the replay tests report those.
                if panicked {
                    continue;
                }
                n += 1;
                if largest > allocation_bound(data.len()) {
                    over.push(format!(
                        "{}: {largest} bytes at once for a {}-byte input: {}",
                        path.display(),
                        data.len(),
                        hex(&data)
                    ));
                }
            }
        }
    }
    assert!(
        over.is_empty(),
        "{} of {n} inputs allocated more than their length justifies:\n{}",
        over.len(),
        over.join("\n")
    );
}

/// The decoders and parsers. (`store_model` is not among them: it writes real bodies of up
/// to 1.2 MB whatever the input's length.)
const TARGETS: [(&str, Target); 6] = [
    ("record_decode", cairn::fuzzing::record_decode),
    ("index_decode", cairn::fuzzing::index_decode),
    ("cache_control", cairn::fuzzing::cache_control),
    ("range", cairn::fuzzing::range),
    ("config_toml", cairn::fuzzing::config_toml),
    ("cache_key", cairn::fuzzing::cache_key),
];

// ---- seeds ----

/// Runs the seeds through their targets; with `CAIRN_WRITE_FUZZ_SEEDS=1` also writes them
/// to `fuzz/corpus/<target>/seed-<name>`.
#[test]
fn write_seeds() {
    let write = std::env::var_os("CAIRN_WRITE_FUZZ_SEEDS").is_some_and(|v| v == "1");
    let sets: [(&str, Target, Seeds); 3] = [
        (
            "record_decode",
            cairn::fuzzing::record_decode,
            record_seeds(),
        ),
        ("index_decode", cairn::fuzzing::index_decode, index_seeds()),
        (
            "store_model",
            cairn::fuzzing::store_model,
            store_model_seeds(),
        ),
    ];
    for (target, run, seeds) in sets {
        let dir = fuzz_dir().join("corpus").join(target);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
        }
        for (name, data) in seeds {
            assert!(data.len() < 64 * 1024, "seed {name} is too large");
            run(&data);
            if write {
                std::fs::write(dir.join(format!("seed-{name}")), &data).unwrap();
            }
        }
    }
}

// ---- seeds for record_decode ----

fn object() -> ObjectRecord {
    ObjectRecord {
        key: b"E1TEST/img/logo.png?v=3".to_vec(),
        distribution: "E1TEST".into(),
        tags: vec!["img".into(), "static".into()],
        meta: br#"{"content-type":"image/png"}"#.to_vec(),
        stored_at_ms: 1_700_000_000_000,
        expires_at_ms: 1_700_000_360_000,
        blob: [0xb1; 32],
        body_len: 70_000,
    }
}

fn blob() -> BlobRecord {
    BlobRecord {
        hash: [0xb1; 32],
        len: 70_000,
        chunk_size: CHUNK_SIZE,
        runs: vec![
            Run {
                segment: FUZZ_SEGMENT_ID,
                offset: 64,
                len: 65_536,
            },
            Run {
                segment: FUZZ_SEGMENT_ID + 1,
                offset: 64,
                len: 4_464,
            },
        ],
    }
}

fn segment_header() -> Vec<u8> {
    SegmentHeader {
        version: FORMAT_VERSION,
        segment_id: FUZZ_SEGMENT_ID,
        salt: FUZZ_SALT,
        created_at_ms: 1_700_000_000_000,
    }
    .encode()
    .to_vec()
}

/// A segment holding `records`, written as the store writes them.
fn segment(records: &[(RecordKind, Vec<u8>)]) -> Vec<u8> {
    let mut seg = segment_header();
    for (kind, payload) in records {
        let off = seg.len() as u64;
        let h = RecordHeader::for_payload(*kind, payload);
        seg.extend_from_slice(&h.encode(FUZZ_SALT, FUZZ_SEGMENT_ID, off));
        seg.extend_from_slice(payload);
    }
    seg
}

fn flip(mut b: Vec<u8>, byte: usize, bit: u8) -> Vec<u8> {
    b[byte] ^= 1 << bit;
    b
}

/// Builds structured inputs (the layout is documented on `cairn::fuzzing::build_segment`).
#[derive(Default)]
struct Structured(Vec<u8>);

impl Structured {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn short(mut self, b: &[u8]) -> Self {
        self.0.push(b.len() as u8);
        self.0.extend_from_slice(b);
        self
    }
    fn extent(self, b: &[u8]) -> Self {
        let mut s = self.u8(0).u16(b.len() as u16);
        s.0.extend_from_slice(b);
        s
    }
    fn blob(self, runs: &[(u64, u64, u64)]) -> Self {
        let mut s = self.u8(1).u8(0xb1).u32(CHUNK_SIZE).u8(runs.len() as u8);
        for &(seg, off, len) in runs {
            s = s.u64(seg).u64(off).u64(len);
        }
        s.u8(1) // len = sum of the runs
    }
    fn object(self, key: &[u8]) -> Self {
        self.u8(2)
            .short(key)
            .short(b"E1TEST")
            .u8(2)
            .short(b"img")
            .short(b"static")
            .short(b"{}")
            .u64(1_700_000_000_000)
            .u64(1_700_000_360_000)
            .u8(0xb1)
            .u64(100)
    }
    fn tombstone(self, prefix: bool, key: &[u8]) -> Self {
        self.u8(3).u8(prefix as u8).short(key)
    }
    fn raw(self, kind: u8, b: &[u8]) -> Self {
        self.u8(4).u8(kind).short(b)
    }
}

fn structured(flags: u8, pad: Option<u8>, count: u8) -> Structured {
    let s = Structured::default().u8(STRUCTURED_TAG).u8(flags);
    let s = match pad {
        Some(p) => s.u8(p),
        None => s,
    };
    s.u8(count)
}

fn record_seeds() -> Seeds {
    let obj = encode_payload(&object());
    let blb = encode_payload(&blob());
    let key = encode_payload(&TombstoneRecord::Key(b"E1TEST/a".to_vec()));
    let prefix = encode_payload(&TombstoneRecord::Prefix(b"E1TEST/".to_vec()));
    let small_blob = encode_payload(&BlobRecord {
        hash: [0x22; 32],
        len: 300,
        chunk_size: CHUNK_SIZE,
        runs: vec![Run {
            segment: FUZZ_SEGMENT_ID,
            offset: SEGMENT_HEADER_LEN as u64,
            len: 300,
        }],
    });
    let records = vec![
        (RecordKind::Extent, vec![0xab; 300]),
        (RecordKind::Blob, small_blob.clone()),
        (RecordKind::Object, obj.clone()),
        (RecordKind::Tombstone, key.clone()),
        (RecordKind::Tombstone, prefix.clone()),
    ];
    let seg = segment(&records);
    let one_extent = segment(&[(RecordKind::Extent, b"hello, edge".to_vec())]);
    let mut padded = seg.clone();
    padded.resize(seg.len() + 256, 0);

    let second = SEGMENT_HEADER_LEN + 64 + 300; // offset of the blob record
    let mut out: Seeds = vec![
        ("segment-header".into(), segment_header()),
        ("segment-5-records".into(), seg.clone()),
        ("segment-unwritten-tail".into(), padded),
        ("segment-one-extent".into(), one_extent.clone()),
        ("segment-empty-zero-tail".into(), {
            let mut s = segment_header();
            s.resize(256, 0);
            s
        }),
        ("payload-object".into(), obj.clone()),
        ("payload-blob".into(), blb),
        ("payload-blob-small".into(), small_blob),
        ("payload-tombstone-key".into(), key),
        ("payload-tombstone-prefix".into(), prefix),
        ("payload-object-empty".into(), {
            encode_payload(&ObjectRecord {
                key: vec![],
                distribution: String::new(),
                tags: vec![],
                meta: vec![],
                stored_at_ms: 0,
                expires_at_ms: 0,
                blob: [0; 32],
                body_len: 0,
            })
        }),
        ("payload-blob-invalid-len".into(), {
            let mut b = blob();
            b.len += 1;
            encode_payload(&b)
        }),
        ("payload-blob-zero-chunk".into(), {
            let mut b = blob();
            b.chunk_size = 0;
            encode_payload(&b)
        }),
    ];
    // Truncations of the multi-record segment: inside the segment header, inside a record
    // header, inside a payload, one byte short.
    for cut in [10, 64, 100, 200, second + 20, seg.len() - 1] {
        out.push((format!("segment-cut-{cut}"), seg[..cut].to_vec()));
    }
    // Bit flips: segment header, record header (kind, length, checksum), extent payload,
    // object payload.
    for (byte, bit) in [
        (20, 0),
        (64 + 4, 1),
        (64 + 9, 3),
        (64 + 61, 7),
        (64 + 64 + 5, 2),
        (second + 64 + 3, 0),
        (seg.len() - 10, 4),
    ] {
        out.push((
            format!("segment-flip-{byte}-{bit}"),
            flip(seg.clone(), byte, bit),
        ));
    }
    // The extent record alone at offset 0: only check_extent/walk from 0 see it whole.
    out.push((
        "record-at-0".into(),
        one_extent[SEGMENT_HEADER_LEN..].to_vec(),
    ));

    // Structured inputs: valid segments built by the target, then damaged.
    out.push((
        "structured-all-kinds".into(),
        structured(0, None, 5)
            .extent(b"body bytes")
            .blob(&[(FUZZ_SEGMENT_ID, 64, 10)])
            .object(b"E1TEST/a")
            .tombstone(false, b"E1TEST/a")
            .raw(1, &[0xff; 12])
            .0,
    ));
    out.push((
        "structured-padded".into(),
        structured(1, Some(100), 2)
            .extent(&[7; 40])
            .tombstone(true, b"E1TEST/")
            .0,
    ));
    out.push((
        "structured-mutated".into(),
        structured(4, None, 3)
            .extent(&[1; 64])
            .object(b"k")
            .blob(&[(1, 64, 100), (2, 64, 28)])
            .u16(64 + 9)
            .u8(0x10)
            .u16(200)
            .u8(0x01)
            .0,
    ));
    out.push((
        "structured-truncated".into(),
        structured(2 | 1, Some(0), 2)
            .object(b"E1TEST/x")
            .extent(&[9; 100])
            .u16(150)
            .0,
    ));
    out.push(("structured-empty".into(), structured(0, None, 0).0));
    out
}

// ---- seeds for index_decode ----

fn index_seeds() -> Seeds {
    let pos = Pos {
        segment: 3,
        offset: 4096,
    };
    let o = ObjectSlot {
        id: [0x0b; 16],
        pos,
        record_len: 214,
        stored_at_ms: 1_700_000_000_000,
        expires_at_ms: 1_700_000_360_000,
        blob: [0xb1; 32],
        body_len: 70_000,
    };
    let runs = blob().runs;
    let b = BlobSlot {
        hash: [0xb1; 32],
        len: 70_000,
        chunk_size: CHUNK_SIZE,
        run_count: runs.len() as u32,
        first_run: runs[0],
        manifest: pos,
        manifest_len: 180,
        refs: 2,
        gone: false,
    };
    let s = SegmentEntry {
        state: SegmentState::Sealed,
        created_at_ms: 1_700_000_000_000,
    };
    let c = Checkpoint {
        watermark: pos,
        next_segment: 9,
        counters: CounterValues {
            objects: 10,
            blobs: 8,
            live_bytes: 1 << 30,
            dedup_saved_bytes: 12345,
        },
    };
    let oe = o.encode().to_vec();
    let be = b.encode().to_vec();
    let header = |kind| {
        let mut h = encode_header(kind, 0, MIN_SLOTS, FUZZ_SALT).to_vec();
        h.resize(HEADER_LEN + MIN_SLOTS as usize * SLOT_LEN, 0);
        h
    };
    let mut out: Seeds = vec![
        ("object-slot".into(), oe.clone()),
        (
            "slots".into(),
            [oe.clone(), be.clone(), vec![0; SLOT_LEN]].concat(),
        ),
        ("blob-slot".into(), be.clone()),
        ("table-header-objects".into(), header(TableKind::Objects)),
        ("table-header-blobs".into(), header(TableKind::Blobs)),
        (
            "table-header-cut".into(),
            header(TableKind::Objects)[..100].to_vec(),
        ),
        ("segment-active".into(), {
            encode_value(&SegmentEntry {
                state: SegmentState::Active,
                ..s
            })
        }),
        ("segment-sealed".into(), encode_value(&s)),
        ("checkpoint".into(), encode_value(&c)),
        ("object-cut".into(), oe[..oe.len() / 2].to_vec()),
        ("blob-cut".into(), be[..be.len() - 1].to_vec()),
        ("checkpoint-version-2".into(), {
            let mut v = encode_value(&c);
            v[0] = 2;
            v
        }),
        ("segment-bad-state".into(), {
            let mut v = encode_value(&s);
            v[1] = 2;
            v
        }),
        ("empty".into(), vec![]),
        ("version-only".into(), vec![1]),
    ];
    // Structured inputs: values built from the bytes, encoded, decoded back.
    let mut st = vec![STRUCTURED_TAG];
    st.extend((0u8..=255).map(|i| i.wrapping_mul(37)));
    out.push(("structured-pattern".into(), st));
    out.push(("structured-zeroes".into(), vec![STRUCTURED_TAG]));
    out
}

// ---- seeds for store_model ----

/// Builds `store_model` inputs (the layout is documented on `cairn::fuzzing::store_model`):
/// indices into its key, prefix, size, TTL and clock-advance tables.
struct ModelOps(Vec<u8>);

/// `KEYS` indices of the target.
const K_A0: u8 = 0;
const K_A1: u8 = 1;
const K_A10: u8 = 2;
const K_A2: u8 = 3;
const K_B0: u8 = 4;
const K_B00: u8 = 5;
const K_B1: u8 = 6;
const K_E0: u8 = 7;
/// `SIZES` indices: 700 bytes, 200,001 (4 chunks), 700,000, 1,048,577 and 1,200,000 bytes
/// (more than a writer stages, spanning segments).
const S_700: u8 = 2;
const S_200K: u8 = 8;
const S_700K: u8 = 9;
const S_1M: u8 = 10;
const S_1200K: u8 = 11;
/// `TTLS_MS` indices: 0 s, 30 s, 1 h, 1 day. `ADVANCES_MS`: 1 s, 60 s, 15 min, 2 h.
const TTL_0: u8 = 0;
const TTL_30S: u8 = 1;
const TTL_HOUR: u8 = 2;
const TTL_DAY: u8 = 3;
const ADV_1S: u8 = 0;
const ADV_2H: u8 = 3;

impl ModelOps {
    fn new(roomy: bool) -> Self {
        Self(vec![roomy as u8])
    }
    fn insert(mut self, key: u8, seed: u8, size: u8, ttl: u8, pieces: u8, meta: &[u8]) -> Self {
        let t = ttl | ((pieces - 1) << 6);
        self.0
            .extend_from_slice(&[0, key, seed, size, t, meta.len() as u8]);
        self.0.extend_from_slice(meta);
        self
    }
    fn put(self, key: u8, seed: u8, size: u8) -> Self {
        self.insert(key, seed, size, TTL_DAY, 1, b"m")
    }
    /// `how`: 0 abort, 1 drop, 2 write past the largest object size.
    fn abandon(mut self, key: u8, seed: u8, size: u8, how: u8) -> Self {
        self.0.extend_from_slice(&[4, key, seed, size, how]);
        self
    }
    fn interleaved(mut self, a: (u8, u8, u8), b: (u8, u8, u8), second_first: bool) -> Self {
        self.0
            .extend_from_slice(&[5, a.0, a.1, a.2, b.0, b.1, b.2, second_first as u8]);
        self
    }
    fn lookup(mut self, key: u8) -> Self {
        self.0.extend_from_slice(&[6, key]);
        self
    }
    fn update_meta(mut self, key: u8, ttl: u8, meta: &[u8]) -> Self {
        self.0.extend_from_slice(&[8, key, ttl, meta.len() as u8]);
        self.0.extend_from_slice(meta);
        self
    }
    fn remove(mut self, key: u8) -> Self {
        self.0.extend_from_slice(&[9, key]);
        self
    }
    /// `prefix`: index into `d/`, `d/a/`, `d/a/1`, `d/b/0`, `e/`, `x/`.
    fn remove_prefix(mut self, prefix: u8) -> Self {
        self.0.extend_from_slice(&[10, prefix]);
        self
    }
    fn advance(mut self, a: u8) -> Self {
        self.0.extend_from_slice(&[11, a]);
        self
    }
    fn sweep(mut self) -> Self {
        self.0.push(12);
        self
    }
    fn checkpoint(mut self) -> Self {
        self.0.push(13);
        self
    }
    /// `how`: 0 close, 1 drop, 2 open_rebuilding, 3 delete the index, 4 live rebuild (5 to
    /// 7 damage a segment: see `flip`, `truncate`, `delete_segment`).
    fn reopen(mut self, how: u8) -> Self {
        self.0.extend_from_slice(&[14, how]);
        self
    }
    fn lookup_all(mut self) -> Self {
        self.0.push(15);
        self
    }
    /// Close, XOR a byte of the `segment`-th segment file, open.
    fn flip(mut self, segment: u8, offset: u32, mask: u8) -> Self {
        self.0.extend_from_slice(&[14, 5, segment]);
        self.0.extend_from_slice(&offset.to_le_bytes());
        self.0.push(mask);
        self
    }
    /// Close, cut the `segment`-th segment file to `len` bytes, open.
    fn truncate(mut self, segment: u8, len: u32) -> Self {
        self.0.extend_from_slice(&[14, 6, segment]);
        self.0.extend_from_slice(&len.to_le_bytes());
        self
    }
    /// Close, delete the `segment`-th segment file, open.
    fn delete_segment(mut self, segment: u8) -> Self {
        self.0.extend_from_slice(&[14, 7, segment]);
        self
    }
}

fn store_model_seeds() -> Seeds {
    let mut out: Seeds = vec![("empty".into(), ModelOps::new(false).0)];
    out.push((
        "roomy-dedup-update-remove-expire".into(),
        ModelOps::new(true)
            .put(K_A0, 0, S_700)
            .insert(K_A1, 0, S_700, TTL_DAY, 1, b"same body") // shares a0's blob
            .insert(K_A10, 1, S_200K, TTL_DAY, 4, b"four pieces")
            .lookup(K_A0)
            .lookup(K_A1)
            .lookup(K_A10)
            .update_meta(K_A0, TTL_HOUR, b"revalidated")
            .lookup(K_A0)
            .remove(K_A1)
            .lookup(K_A1)
            .remove_prefix(2)
            .lookup_all()
            .insert(K_B0, 2, S_1200K, TTL_30S, 3, b"short-lived")
            .advance(ADV_2H)
            .sweep()
            .lookup_all()
            .checkpoint()
            .reopen(0)
            .lookup_all()
            .0,
    ));
    out.push((
        "tight-eviction-and-refusals".into(),
        ModelOps::new(false)
            .put(K_A0, 0, S_1200K)
            .put(K_A1, 1, S_1200K)
            .put(K_A2, 2, S_1M)
            .put(K_B0, 3, S_700K)
            .lookup(K_A0)
            .put(K_B1, 0, S_1M)
            .put(K_E0, 1, S_1200K)
            .sweep()
            .lookup_all()
            .put(K_A10, 2, S_1200K)
            .put(K_B00, 3, S_1200K)
            .sweep()
            .lookup_all()
            .reopen(3)
            .lookup_all()
            .0,
    ));
    out.push((
        "fills-abandoned-and-interleaved".into(),
        ModelOps::new(false)
            .put(K_A0, 3, S_700)
            .abandon(K_A0, 0, S_1200K, 0)
            .abandon(K_A1, 1, S_1M, 1)
            .abandon(K_A2, 2, S_200K, 2)
            .interleaved((K_A0, 1, S_700K), (K_A0, 2, S_200K), true)
            .lookup(K_A0)
            .interleaved((K_B0, 3, S_200K), (K_B1, 3, S_200K), false)
            .lookup_all()
            .reopen(2)
            .lookup_all()
            .0,
    ));
    out.push((
        "reopen-drop-rebuilding-live".into(),
        ModelOps::new(true)
            .put(K_A0, 0, S_200K)
            .put(K_B0, 1, S_700)
            .remove(K_A0)
            .reopen(1)
            .lookup_all()
            .put(K_A0, 0, S_200K) // the same body, stored again after its blob was freed
            .reopen(2)
            .lookup_all()
            .remove_prefix(0)
            .reopen(4)
            .lookup_all()
            .0,
    ));
    out.push((
        "stale-then-dead-update-meta".into(),
        ModelOps::new(true)
            .insert(K_E0, 0, S_700, TTL_0, 1, b"expires at once")
            .advance(ADV_1S)
            .update_meta(K_E0, TTL_0, b"revalidated while stale")
            .lookup(K_E0)
            .advance(ADV_2H)
            .update_meta(K_E0, TTL_DAY, b"too late")
            .lookup(K_E0)
            .remove(K_E0)
            .sweep()
            .0,
    ));
    // Damage between runs. The first segment holds a0's body from offset 64 (a record
    // header, then 64 KiB chunks), then b0's and the blob and object records.
    out.push((
        "damage-flip-body-then-rebuild".into(),
        ModelOps::new(true)
            .put(K_A0, 0, S_200K)
            .put(K_B0, 1, S_700)
            .update_meta(K_B0, TTL_DAY, b"newer")
            .flip(0, 64 + 64 + 1000, 0xff)
            .lookup_all()
            .sweep()
            .reopen(3)
            .lookup_all()
            .put(K_A0, 0, S_200K)
            .lookup(K_A0)
            .0,
    ));
    out.push((
        "damage-truncate-and-delete-segments".into(),
        ModelOps::new(false)
            .put(K_A0, 0, S_700K)
            .put(K_A1, 1, S_700K)
            .put(K_A2, 2, S_700K)
            .remove(K_A1)
            .put(K_B0, 3, S_700)
            .truncate(0, 300_000)
            .lookup_all()
            .delete_segment(1)
            .lookup_all()
            .put(K_B1, 1, S_200K)
            .remove_prefix(0)
            .lookup_all()
            .0,
    ));
    out
}
