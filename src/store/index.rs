//! The index: which objects exist and where their blobs' bytes are (the object directory,
//! `directory.rs`), which segments exist and how far the index reflects the log (sled).
//! Everything here can be rebuilt from the segments (see `recovery.rs`); the index only
//! makes lookups fast and opening cheap.
//!
//! sled holds what grows with the segment count, never with the object count: its open
//! time and memory grow with what it holds (storage-format.md §5). Every sled value is
//! `[version byte] ++ bincode 2 (fixed-width little-endian integers)`.
//! Mutations are written so that replaying the same record twice leaves the index as
//! replaying it once (the entry that makes a change visible is written last), which is what
//! lets recovery replay everything after the checkpoint watermark without knowing how much
//! of it had already been absorbed.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::store::directory::{BlobSlot, Directory, ObjectId, ObjectSlot, ScanCursor};
use crate::store::error::{Result, StoreError};
use crate::store::record::{
    check_payload, decode_payload, BlobRecord, DecodeError, ObjectRecord, RecordHeader, RecordKind,
    Run, RECORD_HEADER_LEN,
};
use crate::store::segment::Segment;
use crate::store::slot_table::TableError;

/// Version byte in front of every index value. A different version makes the store rebuild
/// the index from the segments (the index is derived data, so this is its migration).
pub const INDEX_VALUE_VERSION: u8 = 1;

/// Upper bound on a decoded index value.
const MAX_VALUE_LEN: usize = 32 * 1024 * 1024;

/// A place in the log: records are totally ordered by (segment id, offset).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Pos {
    pub segment: u64,
    pub offset: u64,
}

impl Pos {
    pub const ZERO: Pos = Pos {
        segment: 0,
        offset: 0,
    };
}

/// What the directory holds for an object's current version. Its key, distribution, tags
/// and metadata are in the object record at `pos` ([`Index::object_record`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// Where the object record that made this version is.
    pub pos: Pos,
    /// Length of that record, header included.
    pub record_len: u32,
    pub stored_at_ms: u64,
    pub expires_at_ms: u64,
    pub blob: [u8; 32],
    pub body_len: u64,
}

/// Where a body's chunks are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    pub len: u64,
    pub chunk_size: u32,
    pub runs: Vec<Run>,
    /// Where the blob record that placed these runs is, and its length.
    pub manifest: Pos,
    pub manifest_len: u32,
}

impl BlobEntry {
    /// Checks the placement is well formed (see [`crate::store::record::validate_runs`]).
    pub fn validate(&self) -> Result<(), DecodeError> {
        crate::store::record::validate_runs(self.len, self.chunk_size, &self.runs)
    }

    /// Whether this blob needs segment `id`: for its chunks, or for its blob record (an
    /// empty body has no chunks, but without its record a rebuild would not know it).
    pub fn needs_segment(&self, id: u64) -> bool {
        self.manifest.segment == id || self.runs.iter().any(|r| r.segment == id)
    }

    /// Every segment this blob needs, ascending, without repeats.
    pub fn segments(&self) -> Vec<u64> {
        let mut segs: Vec<u64> = self.runs.iter().map(|r| r.segment).collect();
        segs.push(self.manifest.segment);
        segs.sort_unstable();
        segs.dedup();
        segs
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SegmentState {
    /// Being appended to (at most one).
    Active,
    /// Full or closed; read only until reclaimed.
    Sealed,
}

impl SegmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentState::Active => "active",
            SegmentState::Sealed => "sealed",
        }
    }
}

/// `segments` tree value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub state: SegmentState,
    pub created_at_ms: u64,
}

/// `state` tree, key `checkpoint`: what the index had durably absorbed at `watermark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Every record before this place is reflected in the index (sled was flushed after
    /// it was reached and before this checkpoint was written).
    pub watermark: Pos,
    /// The next segment id to hand out.
    pub next_segment: u64,
    pub counters: CounterValues,
}

/// Counts of what the index holds, kept in memory and saved with each checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CounterValues {
    pub objects: u64,
    pub blobs: u64,
    /// Body bytes of live blobs plus bytes of live object records.
    pub live_bytes: u64,
    /// Body bytes not stored again because an identical body was already stored.
    pub dedup_saved_bytes: u64,
}

/// In-memory counters of the index's contents.
#[derive(Debug, Default)]
pub struct Counters {
    objects: AtomicU64,
    blobs: AtomicU64,
    live_bytes: AtomicU64,
    dedup_saved_bytes: AtomicU64,
}

impl Counters {
    pub fn load(&self) -> CounterValues {
        CounterValues {
            objects: self.objects.load(Ordering::Relaxed),
            blobs: self.blobs.load(Ordering::Relaxed),
            live_bytes: self.live_bytes.load(Ordering::Relaxed),
            dedup_saved_bytes: self.dedup_saved_bytes.load(Ordering::Relaxed),
        }
    }

    pub fn set(&self, v: CounterValues) {
        self.objects.store(v.objects, Ordering::Relaxed);
        self.blobs.store(v.blobs, Ordering::Relaxed);
        self.live_bytes.store(v.live_bytes, Ordering::Relaxed);
        self.dedup_saved_bytes
            .store(v.dedup_saved_bytes, Ordering::Relaxed);
    }

    pub fn add_dedup_saved(&self, n: u64) {
        self.dedup_saved_bytes.fetch_add(n, Ordering::Relaxed);
    }

    fn add(c: &AtomicU64, delta: i64) {
        if delta >= 0 {
            c.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            // Saturate: after an unclean stop the counters are approximate until recounted.
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(delta.unsigned_abs()))
            });
        }
    }
}

fn value_config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<MAX_VALUE_LEN>()
}

/// Encodes an index value: version byte, then bincode.
pub fn encode_value<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![INDEX_VALUE_VERSION];
    bincode::serde::encode_into_std_write(v, &mut out, value_config())
        .expect("in-memory encoding cannot fail");
    out
}

/// Decodes an index value, checking its version byte and refusing trailing bytes.
pub fn decode_value<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (&version, rest) = bytes.split_first().ok_or(DecodeError::Truncated {
        needed: 1,
        available: 0,
    })?;
    if version != INDEX_VALUE_VERSION {
        return Err(DecodeError::UnsupportedVersion(version as u32));
    }
    let (v, used) = bincode::serde::decode_from_slice(rest, value_config())
        .map_err(|e| DecodeError::Encoding(e.to_string()))?;
    if used != rest.len() {
        return Err(DecodeError::TrailingBytes(rest.len() - used));
    }
    Ok(v)
}

const CHECKPOINT_KEY: &[u8] = b"checkpoint";
const LAYOUT_KEY: &[u8] = b"layout";
/// How the index is laid out (3: sled for segments and state, the object directory for
/// objects and blobs, storage-format.md §5). An index with another layout is rebuilt from
/// the segments.
pub const INDEX_LAYOUT: u32 = 3;
const CLEAN_KEY: &[u8] = b"clean";

/// What happens to a blob whose last reference goes away.
pub enum BlobRelease<'a> {
    /// Its entry is dropped at once (normal operation).
    Now,
    /// It is only collected here, to be freed later if still unreferenced. Replay needs
    /// this: its first pass may already have placed the blob from a record written after
    /// the removal being replayed (the body was stored again later).
    Defer(&'a mut std::collections::HashSet<[u8; 32]>),
}

/// The objects (by id) and blob hashes that (may) need a segment.
pub type SegmentContents = (Vec<ObjectId>, Vec<[u8; 32]>);

/// The live segments, shared by the store and the index (which reads object and blob
/// records through it).
pub type SegmentMap = Arc<RwLock<BTreeMap<u64, Arc<Segment>>>>;

/// Why sled could not be used.
#[derive(Debug)]
pub enum OpenFailure {
    Error(String),
    Panicked(String),
}

impl std::fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenFailure::Error(e) => write!(f, "sled refused to open: {e}"),
            OpenFailure::Panicked(e) => write!(f, "sled panicked while opening: {e}"),
        }
    }
}

/// sled (segments, checkpoint state, blob hints) and the object directory.
pub struct Index {
    dir: PathBuf,
    db: sled::Db,
    seg_blobs: sled::Tree,
    segments: sled::Tree,
    state: sled::Tree,
    directory: Directory,
    /// Why the directory files could not be used at open (they were recreated empty).
    directory_problem: Option<String>,
    salt: u64,
    segment_map: SegmentMap,
    /// Where the expiry scan goes on from.
    expiry_cursor: Mutex<Option<ScanCursor>>,
}

impl Index {
    /// Opens (or creates) the index in `dir` with a bounded sled cache. sled can panic on
    /// corrupt files, so the open runs under `catch_unwind`.
    pub fn open(
        dir: &Path,
        cache_bytes: u64,
        salt: u64,
        segment_map: SegmentMap,
    ) -> std::result::Result<Index, OpenFailure> {
        // The cache directory lock guarantees no other process uses this index, so a sled
        // file lock held here belongs to this process's previous instance, whose background
        // threads are still letting go of it: wait for them (bounded).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let db = loop {
            match Self::open_sled(dir, cache_bytes) {
                Err(OpenFailure::Error(e))
                    if e.contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| OpenFailure::Error(e.to_string()))
        };
        let (seg_blobs, segments, state) = (tree("seg_blobs")?, tree("segments")?, tree("state")?);
        let existed = dir.join(crate::store::directory::DIRECTORY_DIR).exists();
        let (directory, directory_problem) = match Directory::open(dir, salt) {
            Ok(d) => (d, None),
            Err(problem) => {
                let d = Directory::create(dir, salt).map_err(|e| {
                    OpenFailure::Error(format!("cannot create the object directory: {e}"))
                })?;
                // A new cache (or one from before the directory existed) has no
                // directory at all; recovery decides from the checkpoint whether that is
                // a problem. A directory with some tables missing always is one.
                let why = match problem {
                    TableError::Missing(_) if !existed => {
                        "the object directory is missing".to_string()
                    }
                    other => other.to_string(),
                };
                (d, Some(why))
            }
        };
        Ok(Index {
            dir: dir.to_path_buf(),
            db,
            seg_blobs,
            segments,
            state,
            directory,
            directory_problem,
            salt,
            segment_map,
            expiry_cursor: Mutex::new(None),
        })
    }

    fn open_sled(dir: &Path, cache_bytes: u64) -> std::result::Result<sled::Db, OpenFailure> {
        let dir_owned = dir.to_path_buf();
        let opened = std::panic::catch_unwind(move || {
            sled::Config::new()
                .path(&dir_owned)
                .cache_capacity(cache_bytes)
                .flush_every_ms(Some(500))
                .mode(sled::Mode::LowSpace)
                .open()
        });
        match opened {
            Ok(Ok(db)) => Ok(db),
            Ok(Err(e)) => Err(OpenFailure::Error(e.to_string())),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                Err(OpenFailure::Panicked(msg))
            }
        }
    }

    fn err(&self, e: sled::Error) -> StoreError {
        StoreError::Index {
            dir: self.dir.clone(),
            message: e.to_string(),
        }
    }

    /// Why the object directory's files could not be used when the index was opened.
    pub fn directory_problem(&self) -> Option<&str> {
        self.directory_problem.as_deref()
    }

    /// Bytes the index occupies on disk (sled and the directory's allocated blocks).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.directory.bytes_on_disk()
    }

    /// Blocks until everything written so far is durable.
    pub fn flush(&self) -> Result<()> {
        self.directory.flush()?;
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }

    /// Flushes sled alone; the directory's dirty pages wait for the next checkpoint.
    pub fn flush_db(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }

    /// Whether the index holds no objects and no blobs.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.directory.live_counts() == (0, 0))
    }

    /// Removes every entry (before a rebuild into an existing index).
    pub fn clear_all(&self) -> Result<()> {
        self.directory.clear()?;
        for t in [&self.seg_blobs, &self.segments, &self.state] {
            t.clear().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    pub fn object_id(&self, key: &[u8]) -> ObjectId {
        self.directory.object_id(key)
    }

    // ---- reads ----

    pub fn get_object(&self, key: &[u8]) -> Result<Option<ObjectEntry>> {
        Ok(self.get_object_id(&self.object_id(key)))
    }

    pub fn get_object_id(&self, id: &ObjectId) -> Option<ObjectEntry> {
        self.directory.get_object(id).map(|s| ObjectEntry {
            pos: s.pos,
            record_len: s.record_len,
            stored_at_ms: s.stored_at_ms,
            expires_at_ms: s.expires_at_ms,
            blob: s.blob,
            body_len: s.body_len,
        })
    }

    /// A record's payload, checked (header checksum bound to its place, both payload
    /// checksums, kind and length): a slice of the segment mapping.
    pub fn record_payload(
        &self,
        pos: Pos,
        record_len: u32,
        kind: RecordKind,
    ) -> std::result::Result<Bytes, String> {
        let seg = self
            .segment_map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&pos.segment)
            .cloned()
            .ok_or_else(|| format!("segment {} is gone", pos.segment))?;
        let map = seg.bytes().map_err(|e| e.to_string())?;
        let readable = seg.allocated().min(map.len() as u64);
        let end = pos
            .offset
            .checked_add(record_len as u64)
            .filter(|&e| e <= readable && record_len as usize >= RECORD_HEADER_LEN)
            .ok_or_else(|| {
                format!(
                    "record at {}:{} lies beyond its segment",
                    pos.segment, pos.offset
                )
            })?;
        let at = pos.offset as usize;
        let header = RecordHeader::decode(
            &map[at..at + RECORD_HEADER_LEN],
            self.salt,
            seg.id,
            pos.offset,
        )
        .map_err(|e| format!("record header at {}:{}: {e}", pos.segment, pos.offset))?;
        if header.kind != kind || header.record_len() != record_len as u64 {
            return Err(format!(
                "expected a {} record of {record_len} bytes at {}:{}, found a {} record of {}",
                kind.as_str(),
                pos.segment,
                pos.offset,
                header.kind.as_str(),
                header.record_len()
            ));
        }
        let payload = map.slice(at + RECORD_HEADER_LEN..end as usize);
        check_payload(&header, &payload)
            .map_err(|e| format!("record at {}:{}: {e}", pos.segment, pos.offset))?;
        Ok(payload)
    }

    /// The object record behind `entry`, checked, and naming `key` when one is given.
    pub fn object_record(
        &self,
        key: Option<&[u8]>,
        entry: &ObjectEntry,
    ) -> std::result::Result<ObjectRecord, String> {
        let payload = self.record_payload(entry.pos, entry.record_len, RecordKind::Object)?;
        let o: ObjectRecord = decode_payload(&payload).map_err(|e| e.to_string())?;
        if key.is_some_and(|k| k != o.key) || o.blob != entry.blob {
            return Err(format!(
                "object record at {}:{} is not the one the directory names",
                entry.pos.segment, entry.pos.offset
            ));
        }
        Ok(o)
    }

    /// Whether blob `hash` is in the directory (without reading its record).
    pub fn has_blob(&self, hash: &[u8; 32]) -> bool {
        self.directory.get_blob(hash).is_some()
    }

    /// Where blob `hash`'s chunks are. Runs beyond the first are read from its blob record;
    /// a blob whose record cannot be read is reported as absent.
    pub fn get_blob(&self, hash: &[u8; 32]) -> Result<Option<BlobEntry>> {
        Ok(self
            .directory
            .get_blob(hash)
            .and_then(|b| self.blob_entry(&b)))
    }

    fn blob_entry(&self, b: &BlobSlot) -> Option<BlobEntry> {
        let runs = match b.run_count {
            0 => Vec::new(),
            1 => vec![b.first_run],
            _ => {
                let rec = self
                    .record_payload(b.manifest, b.manifest_len, RecordKind::Blob)
                    .and_then(|p| decode_payload::<BlobRecord>(&p).map_err(|e| e.to_string()));
                match rec {
                    Ok(r) if r.hash == b.hash && r.len == b.len => r.runs,
                    Ok(_) => {
                        tracing::warn!(
                            segment = b.manifest.segment,
                            offset = b.manifest.offset,
                            "blob record does not match the directory; treating the blob as gone"
                        );
                        return None;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "blob record unreadable; treating the blob as gone");
                        return None;
                    }
                }
            }
        };
        Some(BlobEntry {
            len: b.len,
            chunk_size: b.chunk_size,
            runs,
            manifest: b.manifest,
            manifest_len: b.manifest_len,
        })
    }

    /// How many objects refer to blob `hash` (None: no such blob).
    pub fn blob_ref_count(&self, hash: &[u8; 32]) -> Option<u32> {
        self.directory.get_blob(hash).map(|b| b.refs)
    }

    /// One page of objects in directory order from `cursor`, and where to go on.
    pub fn objects_page(
        &self,
        cursor: ScanCursor,
        limit: usize,
    ) -> (Vec<(ObjectId, ObjectEntry)>, Option<ScanCursor>) {
        let (page, next) = self.directory.scan_objects(cursor, limit);
        let out = page
            .into_iter()
            .map(|s| {
                (
                    s.id,
                    ObjectEntry {
                        pos: s.pos,
                        record_len: s.record_len,
                        stored_at_ms: s.stored_at_ms,
                        expires_at_ms: s.expires_at_ms,
                        blob: s.blob,
                        body_len: s.body_len,
                    },
                )
            })
            .collect();
        (out, next)
    }

    /// One page of blobs in directory order from `cursor` (hash, entry or why its record
    /// is unreadable, reference count), and where to go on.
    pub fn blobs_page(
        &self,
        cursor: ScanCursor,
        limit: usize,
    ) -> (Vec<(BlobSlot, Option<BlobEntry>)>, Option<ScanCursor>) {
        let (page, next) = self.directory.scan_blobs(cursor, limit);
        let out = page
            .into_iter()
            .map(|b| {
                let e = self.blob_entry(&b);
                (b, e)
            })
            .collect();
        (out, next)
    }

    /// Objects whose expiry is before `before_ms`, or whose blob is gone, found by going
    /// on with a scan of at most `budget` slots from where the last call stopped. Returns
    /// them and whether the scan wrapped around (a full cycle ended).
    pub fn expiry_scan(
        &self,
        before_ms: u64,
        budget: usize,
    ) -> (Vec<(ObjectId, ObjectEntry)>, bool) {
        let mut cur = self.expiry_cursor.lock().unwrap_or_else(|e| e.into_inner());
        let from = cur.unwrap_or_default();
        let (page, next) = self.objects_page(from, budget);
        *cur = next;
        let out = page
            .into_iter()
            .filter(|(_, e)| e.expires_at_ms < before_ms || !self.has_blob(&e.blob))
            .collect();
        (out, next.is_none())
    }

    /// Hashes of blobs that have chunks in `segment` while their blob record is in a later
    /// segment (hints; check `runs`). Blob records in `segment` itself are found by walking
    /// it.
    pub fn segment_blob_hints(&self, segment: u64) -> Result<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        for item in self.seg_blobs.scan_prefix(segment.to_be_bytes()) {
            let (k, _) = item.map_err(|e| self.err(e))?;
            if let Ok(h) = <[u8; 32]>::try_from(&k[8..]) {
                out.push(h);
            }
        }
        Ok(out)
    }

    pub fn segments(&self) -> Result<Vec<(u64, SegmentEntry)>> {
        let mut out = Vec::new();
        for item in self.segments.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let id = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| {
                StoreError::CorruptIndex {
                    tree: "segments",
                    source: DecodeError::Invalid("segment key is not 8 bytes"),
                }
            })?);
            let entry = decode_value(&v).map_err(|source| StoreError::CorruptIndex {
                tree: "segments",
                source,
            })?;
            out.push((id, entry));
        }
        Ok(out)
    }

    pub fn read_checkpoint(&self) -> Result<Option<Checkpoint>> {
        match self.state.get(CHECKPOINT_KEY).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => decode_value(&v)
                .map(Some)
                .map_err(|source| StoreError::CorruptIndex {
                    tree: "state",
                    source,
                }),
        }
    }

    pub fn was_clean(&self) -> Result<bool> {
        Ok(self
            .state
            .get(CLEAN_KEY)
            .map_err(|e| self.err(e))?
            .is_some_and(|v| v.as_ref() == [1]))
    }

    /// The layout version recorded in the index, if any.
    pub fn layout(&self) -> Result<Option<u32>> {
        Ok(self
            .state
            .get(LAYOUT_KEY)
            .map_err(|e| self.err(e))?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_le_bytes))
    }

    // ---- writes ----

    pub fn write_checkpoint(&self, cp: &Checkpoint) -> Result<()> {
        self.state
            .insert(LAYOUT_KEY, &INDEX_LAYOUT.to_le_bytes())
            .map_err(|e| self.err(e))?;
        self.state
            .insert(CHECKPOINT_KEY, encode_value(cp))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn set_clean(&self, clean: bool) -> Result<()> {
        self.state
            .insert(CLEAN_KEY, &[clean as u8])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn put_segment(&self, id: u64, entry: &SegmentEntry) -> Result<()> {
        self.segments
            .insert(id.to_be_bytes(), encode_value(entry))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Forgets a segment and its hints (before its file is unlinked).
    pub fn remove_segment(&self, id: u64) -> Result<()> {
        let prefix = id.to_be_bytes();
        let mut batch = sled::Batch::default();
        for item in self.seg_blobs.scan_prefix(prefix) {
            let (k, _) = item.map_err(|e| self.err(e))?;
            batch.remove(k);
        }
        self.seg_blobs.apply_batch(batch).map_err(|e| self.err(e))?;
        self.segments.remove(prefix).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Makes `entry` the version of `key` unless the index already has one written at or
    /// after `entry.pos`. Returns whether it changed anything.
    pub fn put_object(&self, key: &[u8], entry: &ObjectEntry, c: &Counters) -> Result<bool> {
        self.put_object_with(key, entry, c, BlobRelease::Now)
    }

    /// [`Index::put_object`] with a choice of what happens to a blob left unreferenced.
    /// The new blob's count goes up before the object points at it and the old blob's goes
    /// down after, so a crash in between can only leave a count too high (a blob freed
    /// late), never too low.
    pub fn put_object_with(
        &self,
        key: &[u8],
        entry: &ObjectEntry,
        c: &Counters,
        release: BlobRelease<'_>,
    ) -> Result<bool> {
        let id = self.object_id(key);
        let old = self.directory.get_object(&id);
        if let Some(old) = &old {
            if old.pos >= entry.pos {
                return Ok(false);
            }
        }
        let same_blob = old.as_ref().is_some_and(|o| o.blob == entry.blob);
        if !same_blob {
            self.directory.add_refs(&entry.blob, 1);
        }
        self.directory.put_object(&ObjectSlot {
            id,
            pos: entry.pos,
            record_len: entry.record_len,
            stored_at_ms: entry.stored_at_ms,
            expires_at_ms: entry.expires_at_ms,
            body_len: entry.body_len,
            blob: entry.blob,
        })?;
        match &old {
            Some(old) => {
                if !same_blob {
                    self.release_ref(&old.blob, c, release)?;
                }
                Counters::add(
                    &c.live_bytes,
                    entry.record_len as i64 - old.record_len as i64,
                );
            }
            None => {
                Counters::add(&c.objects, 1);
                Counters::add(&c.live_bytes, entry.record_len as i64);
            }
        }
        Ok(true)
    }

    /// Removes `key` if its current version was written before `before`. Returns the
    /// removed entry.
    pub fn remove_object(
        &self,
        key: &[u8],
        before: Pos,
        c: &Counters,
    ) -> Result<Option<ObjectEntry>> {
        self.remove_object_id(&self.object_id(key), before, c, BlobRelease::Now)
    }

    /// [`Index::remove_object`] with a choice of what happens to a blob left unreferenced.
    pub fn remove_object_with(
        &self,
        key: &[u8],
        before: Pos,
        c: &Counters,
        release: BlobRelease<'_>,
    ) -> Result<Option<ObjectEntry>> {
        self.remove_object_id(&self.object_id(key), before, c, release)
    }

    /// [`Index::remove_object_with`] by object id (for objects whose record is unreadable).
    pub fn remove_object_id(
        &self,
        id: &ObjectId,
        before: Pos,
        c: &Counters,
        release: BlobRelease<'_>,
    ) -> Result<Option<ObjectEntry>> {
        let Some(old) = self.get_object_id(id) else {
            return Ok(None);
        };
        if old.pos >= before {
            return Ok(None);
        }
        self.directory.remove_object(id);
        self.release_ref(&old.blob, c, release)?;
        Counters::add(&c.objects, -1);
        Counters::add(&c.live_bytes, -(old.record_len as i64));
        Ok(Some(old))
    }

    /// Removes object `id` if its current version is still the one a scan saw (a newer
    /// version written since stays). Whether it was removed.
    pub fn remove_seen_version(
        &self,
        id: &ObjectId,
        seen: &ObjectEntry,
        c: &Counters,
    ) -> Result<bool> {
        let after = Pos {
            segment: seen.pos.segment,
            offset: seen.pos.offset + 1,
        };
        Ok(self
            .remove_object_id(id, after, c, BlobRelease::Now)?
            .is_some())
    }

    /// Keys (read from their object records) of objects whose key starts with `prefix`: a
    /// scan of the whole directory.
    pub fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut cursor = Some(ScanCursor::default());
        while let Some(c) = cursor {
            let (page, next) = self.objects_page(c, 4096);
            for (_, e) in page {
                if let Ok(o) = self.object_record(None, &e) {
                    if o.key.starts_with(prefix) {
                        out.push(o.key);
                    }
                }
            }
            cursor = next;
        }
        Ok(out)
    }

    /// Places blob `hash` at `entry.runs` unless the index already has a placement made at
    /// or after `entry.manifest`. Returns whether it changed anything.
    pub fn put_blob(&self, hash: &[u8; 32], entry: &BlobEntry, c: &Counters) -> Result<bool> {
        // Only chunks outside the blob record's own segment need a hint (see
        // `segment_blob_hints`). Written even when the directory already has this
        // placement: after a SIGKILL the directory (mapped) can be ahead of sled (buffered),
        // and a replay is then the only chance to restore a hint that reclaim depends on.
        for s in entry
            .segments()
            .into_iter()
            .filter(|&s| s != entry.manifest.segment)
        {
            let mut k = s.to_be_bytes().to_vec();
            k.extend_from_slice(hash);
            self.seg_blobs.insert(k, &[]).map_err(|e| self.err(e))?;
        }
        let old = self.directory.get_blob(hash);
        if let Some(old) = &old {
            if old.manifest >= entry.manifest {
                return Ok(false);
            }
        }
        self.directory.put_blob(&BlobSlot {
            hash: *hash,
            len: entry.len,
            chunk_size: entry.chunk_size,
            run_count: entry.runs.len() as u32,
            first_run: entry.runs.first().copied().unwrap_or(Run {
                segment: 0,
                offset: 0,
                len: 0,
            }),
            manifest: entry.manifest,
            manifest_len: entry.manifest_len,
            refs: 0,
            gone: false,
        })?;
        if old.is_none() {
            Counters::add(&c.blobs, 1);
            Counters::add(&c.live_bytes, entry.len as i64);
        }
        Ok(true)
    }

    fn release_ref(&self, hash: &[u8; 32], c: &Counters, release: BlobRelease<'_>) -> Result<()> {
        let left = self.directory.add_refs(hash, -1);
        match release {
            BlobRelease::Now => {
                if left == Some(0) {
                    self.drop_blob_entry(hash, c)?;
                }
            }
            BlobRelease::Defer(set) => {
                set.insert(*hash);
            }
        }
        Ok(())
    }

    /// Drops a blob's entry when no object refers to it any more. Whether a usable blob
    /// was dropped.
    pub fn free_blob_if_unreferenced(&self, hash: &[u8; 32], c: &Counters) -> Result<bool> {
        if self.directory.blob_slot(hash).is_some_and(|b| b.refs > 0) {
            return Ok(false);
        }
        self.drop_blob_entry(hash, c)
    }

    /// Drops a blob's body from the index. Objects still naming it become misses (lookups,
    /// the expiry scan and the sharers' removal drop them); until they are gone its slot
    /// stays, marked gone, counting their references, so that a later placement of the
    /// same body starts from the right count. Whether a usable blob was dropped.
    pub fn drop_blob_entry(&self, hash: &[u8; 32], c: &Counters) -> Result<bool> {
        match self.directory.drop_blob(hash)? {
            Some(b) => {
                Counters::add(&c.blobs, -1);
                Counters::add(&c.live_bytes, -(b.len as i64));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Sets blob `hash`'s reference count (verify's repair).
    pub fn set_blob_refs(&self, hash: &[u8; 32], refs: u32) -> bool {
        self.directory.set_refs(hash, refs)
    }

    /// Recomputes the counters by scanning the directory.
    pub fn recount(&self, dedup_saved_bytes: u64) -> Result<CounterValues> {
        let mut v = CounterValues {
            dedup_saved_bytes,
            ..Default::default()
        };
        let mut cursor = Some(ScanCursor::default());
        while let Some(c) = cursor {
            let (page, next) = self.directory.scan_objects(c, 4096);
            for o in page {
                v.objects += 1;
                v.live_bytes += o.record_len as u64;
            }
            cursor = next;
        }
        let mut cursor = Some(ScanCursor::default());
        while let Some(c) = cursor {
            let (page, next) = self.directory.scan_blobs(c, 4096);
            for b in page {
                v.blobs += 1;
                v.live_bytes += b.len;
            }
            cursor = next;
        }
        Ok(v)
    }

    /// Every object and blob that needs segment `id` (a full scan: for a segment file that
    /// disappeared, whose records cannot be walked).
    pub fn entries_needing_segment(&self, id: u64) -> Result<SegmentContents> {
        let mut ids = Vec::new();
        let mut cursor = Some(ScanCursor::default());
        while let Some(c) = cursor {
            let (page, next) = self.directory.scan_objects(c, 4096);
            ids.extend(
                page.into_iter()
                    .filter(|o| o.pos.segment == id)
                    .map(|o| o.id),
            );
            cursor = next;
        }
        let mut hashes = Vec::new();
        let mut cursor = Some(ScanCursor::default());
        while let Some(c) = cursor {
            let (page, next) = self.directory.scan_blobs(c, 4096);
            for b in page {
                // A multi-run blob whose record is readable lists its runs; if the record
                // itself is unreadable the blob is unusable anyway.
                let needs = b.manifest.segment == id
                    || (b.run_count > 0 && b.first_run.segment == id)
                    || (b.run_count > 1 && self.blob_entry(&b).is_none_or(|e| e.needs_segment(id)));
                if needs {
                    hashes.push(b.hash);
                }
            }
            cursor = next;
        }
        Ok((ids, hashes))
    }

    /// Objects (id and the version seen) that use one of `blobs`: a scan of the directory,
    /// for removing the sharers of blobs that were dropped.
    pub fn objects_using(&self, blobs: &HashSet<[u8; 32]>) -> Vec<(ObjectId, ObjectEntry)> {
        let mut out = Vec::new();
        if blobs.is_empty() {
            return out;
        }
        let mut cursor = Some(ScanCursor::default());
        while let Some(c) = cursor {
            let (page, next) = self.objects_page(c, 4096);
            out.extend(page.into_iter().filter(|(_, e)| blobs.contains(&e.blob)));
            cursor = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pos: Pos, blob: u8, exp: u64) -> ObjectEntry {
        ObjectEntry {
            pos,
            record_len: 100,
            stored_at_ms: 1,
            expires_at_ms: exp,
            blob: [blob; 32],
            body_len: 5,
        }
    }

    fn blob(manifest: Pos) -> BlobEntry {
        BlobEntry {
            len: 5,
            chunk_size: 65536,
            runs: vec![Run {
                segment: manifest.segment,
                offset: 64,
                len: 5,
            }],
            manifest,
            manifest_len: 100,
        }
    }

    fn open(dir: &Path) -> Index {
        Index::open(dir, 1 << 20, 7, SegmentMap::default()).unwrap()
    }

    #[test]
    fn values_round_trip_with_version_byte() {
        let cp = Checkpoint {
            watermark: Pos {
                segment: 4,
                offset: 5,
            },
            next_segment: 6,
            counters: CounterValues {
                objects: 1,
                blobs: 2,
                live_bytes: 3,
                dedup_saved_bytes: 4,
            },
        };
        let enc = encode_value(&cp);
        assert_eq!(enc[0], INDEX_VALUE_VERSION);
        assert_eq!(decode_value::<Checkpoint>(&enc), Ok(cp));
        let s = SegmentEntry {
            state: SegmentState::Sealed,
            created_at_ms: 9,
        };
        assert_eq!(decode_value::<SegmentEntry>(&encode_value(&s)), Ok(s));
    }

    #[test]
    fn value_decoding_refuses_bad_input() {
        assert!(matches!(
            decode_value::<Checkpoint>(&[]),
            Err(DecodeError::Truncated { .. })
        ));
        let mut enc = encode_value(&Checkpoint {
            watermark: Pos::ZERO,
            next_segment: 1,
            counters: CounterValues::default(),
        });
        enc[0] = 9;
        assert_eq!(
            decode_value::<Checkpoint>(&enc),
            Err(DecodeError::UnsupportedVersion(9))
        );
        enc[0] = INDEX_VALUE_VERSION;
        enc.push(0);
        assert_eq!(
            decode_value::<Checkpoint>(&enc),
            Err(DecodeError::TrailingBytes(1))
        );
        // Huge claimed lengths fail without allocating.
        let mut evil = vec![INDEX_VALUE_VERSION];
        evil.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_value::<Vec<u8>>(&evil).is_err());
    }

    #[test]
    fn put_and_remove_are_idempotent_and_ordered_by_position() {
        let dir = tempfile::tempdir().unwrap();
        let ix = open(dir.path());
        let c = Counters::default();
        let p1 = Pos {
            segment: 1,
            offset: 100,
        };
        let p2 = Pos {
            segment: 1,
            offset: 200,
        };
        assert!(ix.put_blob(&[7; 32], &blob(p1), &c).unwrap());
        assert!(!ix.put_blob(&[7; 32], &blob(p1), &c).unwrap());
        assert!(ix.put_object(b"k", &entry(p1, 7, 10), &c).unwrap());
        assert!(!ix.put_object(b"k", &entry(p1, 7, 10), &c).unwrap());
        assert_eq!(c.load().objects, 1);
        assert_eq!(c.load().blobs, 1);
        assert_eq!(ix.blob_ref_count(&[7; 32]), Some(1));
        // A tombstone written before the object does not remove it.
        assert!(ix.remove_object(b"k", p1, &c).unwrap().is_none());
        assert!(ix.remove_object(b"k", p2, &c).unwrap().is_some());
        assert!(ix.get_object(b"k").unwrap().is_none());
        // Its blob went with its last reference.
        assert!(ix.get_blob(&[7; 32]).unwrap().is_none());
        assert_eq!(c.load(), CounterValues::default());
        assert_eq!(ix.recount(0).unwrap(), CounterValues::default());
    }

    #[test]
    fn shared_blob_lives_while_referenced() {
        let dir = tempfile::tempdir().unwrap();
        let ix = open(dir.path());
        let c = Counters::default();
        let p = |o| Pos {
            segment: 1,
            offset: o,
        };
        ix.put_blob(&[1; 32], &blob(p(1)), &c).unwrap();
        ix.put_object(b"a", &entry(p(2), 1, 10), &c).unwrap();
        ix.put_object(b"b", &entry(p(3), 1, 10), &c).unwrap();
        assert_eq!(ix.blob_ref_count(&[1; 32]), Some(2));
        ix.remove_object(b"a", p(4), &c).unwrap();
        assert!(ix.get_blob(&[1; 32]).unwrap().is_some());
        // Replacing b's body frees the old blob.
        ix.put_blob(&[2; 32], &blob(p(5)), &c).unwrap();
        ix.put_object(b"b", &entry(p(6), 2, 10), &c).unwrap();
        assert!(ix.get_blob(&[1; 32]).unwrap().is_none());
        assert_eq!(ix.recount(0).unwrap(), c.load());
        let (expired, wrapped) = ix.expiry_scan(11, 1 << 20);
        assert!(wrapped);
        assert_eq!(expired.len(), 1);
    }
}
