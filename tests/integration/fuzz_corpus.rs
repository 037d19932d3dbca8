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

use cairn::fuzzing::{FUZZ_SALT, FUZZ_SEGMENT_ID, STRUCTURED_TAG};
use cairn::store::index::{
    encode_value, BlobEntry, Checkpoint, CounterValues, ObjectEntry, Pos, SegmentEntry,
    SegmentState,
};
use cairn::store::record::{
    encode_payload, BlobRecord, ObjectRecord, RecordHeader, RecordKind, Run, SegmentHeader,
    TombstoneRecord, CHUNK_SIZE, FORMAT_VERSION, SEGMENT_HEADER_LEN,
};

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
    let inputs = inputs(dir);
    let mut failed = Vec::new();
    for (path, data) in &inputs {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(data))) {
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
    assert!(
        failed.is_empty(),
        "{} of {} inputs in {} panicked:\n{}",
        failed.len(),
        inputs.len(),
        dir.display(),
        failed.join("\n")
    );
    inputs.len()
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
    let sets: [(&str, Target, Seeds); 2] = [
        (
            "record_decode",
            cairn::fuzzing::record_decode,
            record_seeds(),
        ),
        ("index_decode", cairn::fuzzing::index_decode, index_seeds()),
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
    let o = ObjectEntry {
        pos,
        record_len: 214,
        distribution: "E1TEST".into(),
        tags: vec!["img".into(), "static".into()],
        meta: br#"{"content-type":"image/png"}"#.to_vec(),
        stored_at_ms: 1_700_000_000_000,
        expires_at_ms: 1_700_000_360_000,
        blob: [0xb1; 32],
        body_len: 70_000,
    };
    let b = BlobEntry {
        len: 70_000,
        chunk_size: CHUNK_SIZE,
        runs: blob().runs,
        manifest: pos,
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
    let oe = encode_value(&o);
    let be = encode_value(&b);
    let mut out: Seeds = vec![
        ("object".into(), oe.clone()),
        (
            "object-empty".into(),
            encode_value(&ObjectEntry {
                distribution: String::new(),
                tags: vec![],
                meta: vec![],
                ..o.clone()
            }),
        ),
        ("blob".into(), be.clone()),
        (
            "blob-no-runs".into(),
            encode_value(&BlobEntry {
                len: 0,
                runs: vec![],
                ..b.clone()
            }),
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
        ("object-trailing".into(), {
            let mut v = oe.clone();
            v.push(0);
            v
        }),
        ("object-version-2".into(), {
            let mut v = oe.clone();
            v[0] = 2;
            v
        }),
        ("segment-bad-state".into(), {
            let mut v = encode_value(&s);
            v[1] = 2;
            v
        }),
        ("object-bad-utf8".into(), {
            // distribution starts after pos (16), record_len (4) and its length (8).
            let mut v = oe.clone();
            v[1 + 16 + 4 + 8] = 0xff;
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
