//! The sled index: which objects exist, where their blobs' bytes are, what expires when and
//! which segments exist. Everything here can be rebuilt from the segments
//! (see `recovery.rs`); the index only makes lookups fast and opening cheap.
//!
//! Every value is `[version byte] ++ bincode 2 (fixed-width little-endian integers)`.
//! Mutations are written so that replaying the same record twice leaves the index as
//! replaying it once (the entry that makes a change visible is written last), which is what
//! lets recovery replay everything after the checkpoint watermark without knowing how much
//! of it sled had already absorbed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::store::error::{Result, StoreError};
use crate::store::record::{DecodeError, Run};

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

/// `objects` tree value: everything needed to answer a lookup without touching the
/// object record on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// Where the object record that made this version is.
    pub pos: Pos,
    /// Length of that record, header included.
    pub record_len: u32,
    #[serde(deserialize_with = "crate::store::record::bounded::string")]
    pub distribution: String,
    #[serde(deserialize_with = "crate::store::record::bounded::strings")]
    pub tags: Vec<String>,
    pub meta: Vec<u8>,
    pub stored_at_ms: u64,
    pub expires_at_ms: u64,
    pub blob: [u8; 32],
    pub body_len: u64,
}

/// `blobs` tree value: where a body's chunks are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    pub len: u64,
    pub chunk_size: u32,
    pub runs: Vec<Run>,
    /// Where the blob record that placed these runs is.
    pub manifest: Pos,
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
/// How the trees are laid out in sled (2: as in storage-format.md §5). An index with another layout is rebuilt from the segments.
pub const INDEX_LAYOUT: u32 = 2;
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

/// The object keys and blob hashes that (may) need a segment.
pub type SegmentContents = (Vec<Vec<u8>>, Vec<[u8; 32]>);

/// One index entry as stored: its key and its value, decoded or why not.
pub type RawEntry<T> = (Vec<u8>, std::result::Result<T, DecodeError>);

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

/// The sled database and its trees.
pub struct Index {
    dir: PathBuf,
    db: sled::Db,
    objects: sled::Tree,
    blobs: sled::Tree,
    blob_refs: sled::Tree,
    expiry: sled::Tree,
    seg_blobs: sled::Tree,
    segments: sled::Tree,
    state: sled::Tree,
}

impl Index {
    /// Opens (or creates) the index in `dir` with a bounded cache. sled can panic on
    /// corrupt files, so the open runs under `catch_unwind`.
    pub fn open(dir: &Path, cache_bytes: u64) -> std::result::Result<Index, OpenFailure> {
        // The cache directory lock guarantees no other process uses this index, so a sled
        // file lock held here belongs to this process's previous instance, whose background
        // threads are still letting go of it: wait for them (bounded).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Self::open_once(dir, cache_bytes) {
                Err(OpenFailure::Error(e))
                    if e.contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn open_once(dir: &Path, cache_bytes: u64) -> std::result::Result<Index, OpenFailure> {
        let dir_owned = dir.to_path_buf();
        let opened = std::panic::catch_unwind(move || -> sled::Result<Index> {
            let db = sled::Config::new()
                .path(&dir_owned)
                .cache_capacity(cache_bytes)
                .flush_every_ms(Some(500))
                .mode(sled::Mode::LowSpace)
                .open()?;
            Ok(Index {
                objects: db.open_tree("objects")?,
                blobs: db.open_tree("blobs")?,
                blob_refs: db.open_tree("blob_refs")?,
                expiry: db.open_tree("expiry")?,
                seg_blobs: db.open_tree("seg_blobs")?,
                segments: db.open_tree("segments")?,
                state: db.open_tree("state")?,
                dir: dir_owned,
                db,
            })
        });
        match opened {
            Ok(Ok(ix)) => Ok(ix),
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

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes sled occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Blocks until everything written so far is durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }

    /// Whether the index holds no objects and no blobs.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.objects.first().map_err(|e| self.err(e))?.is_none()
            && self.blobs.first().map_err(|e| self.err(e))?.is_none())
    }

    /// Removes every entry (before a rebuild into an existing database).
    pub fn clear_all(&self) -> Result<()> {
        for t in [
            &self.objects,
            &self.blobs,
            &self.blob_refs,
            &self.expiry,
            &self.seg_blobs,
            &self.segments,
            &self.state,
        ] {
            t.clear().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    // ---- reads ----

    pub fn get_object(&self, key: &[u8]) -> Result<Option<ObjectEntry>> {
        match self.objects.get(key).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => decode_value(&v)
                .map(Some)
                .map_err(|source| StoreError::CorruptIndex {
                    tree: "objects",
                    source,
                }),
        }
    }

    pub fn get_blob(&self, hash: &[u8; 32]) -> Result<Option<BlobEntry>> {
        match self.blobs.get(hash).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => decode_value(&v)
                .map(Some)
                .map_err(|source| StoreError::CorruptIndex {
                    tree: "blobs",
                    source,
                }),
        }
    }

    pub fn blob_refs(&self, hash: &[u8; 32]) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for item in self.blob_refs.scan_prefix(hash) {
            let (k, _) = item.map_err(|e| self.err(e))?;
            out.push(k[32..].to_vec());
        }
        Ok(out)
    }

    fn blob_has_refs(&self, hash: &[u8; 32]) -> Result<bool> {
        Ok(self
            .blob_refs
            .scan_prefix(hash)
            .next()
            .transpose()
            .map_err(|e| self.err(e))?
            .is_some())
    }

    /// Objects in key order starting after `after` (exclusive), with an optional prefix.
    pub fn objects_from(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, ObjectEntry)>> {
        let mut out = Vec::new();
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match after {
            Some(a) => {
                let mut start = a.to_vec();
                start.push(0);
                Box::new(self.objects.range(start..))
            }
            None => Box::new(self.objects.scan_prefix(prefix)),
        };
        for item in iter {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if !k.starts_with(prefix) {
                break;
            }
            let entry = decode_value(&v).map_err(|source| StoreError::CorruptIndex {
                tree: "objects",
                source,
            })?;
            out.push((k.to_vec(), entry));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Keys and expiry times of objects whose `expires_at_ms` is before `before_ms`.
    pub fn expired_before(&self, before_ms: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.expiry.range(..before_ms.to_be_bytes().to_vec()) {
            let (k, _) = item.map_err(|e| self.err(e))?;
            if k.len() < 8 {
                continue;
            }
            let t = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
            out.push((t, k[8..].to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
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

    // ---- writes ----

    /// The layout version recorded in the index, if any.
    pub fn layout(&self) -> Result<Option<u32>> {
        Ok(self
            .state
            .get(LAYOUT_KEY)
            .map_err(|e| self.err(e))?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_le_bytes))
    }

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
        for t in [&self.seg_blobs] {
            let mut batch = sled::Batch::default();
            for item in t.scan_prefix(prefix) {
                let (k, _) = item.map_err(|e| self.err(e))?;
                batch.remove(k);
            }
            t.apply_batch(batch).map_err(|e| self.err(e))?;
        }
        self.segments.remove(prefix).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Makes `entry` the version of `key` unless the index already has one written at or
    /// after `entry.pos`. Returns whether it changed anything.
    pub fn put_object(&self, key: &[u8], entry: &ObjectEntry, c: &Counters) -> Result<bool> {
        self.put_object_with(key, entry, c, BlobRelease::Now)
    }

    /// [`Index::put_object`] with a choice of what happens to a blob left unreferenced.
    pub fn put_object_with(
        &self,
        key: &[u8],
        entry: &ObjectEntry,
        c: &Counters,
        release: BlobRelease<'_>,
    ) -> Result<bool> {
        let old = self.get_object(key)?;
        if let Some(old) = &old {
            if old.pos >= entry.pos {
                return Ok(false);
            }
        }
        self.blob_refs
            .insert(ref_key(&entry.blob, key), &[])
            .map_err(|e| self.err(e))?;
        self.expiry
            .insert(be_key(entry.expires_at_ms, key), &[])
            .map_err(|e| self.err(e))?;
        if let Some(old) = &old {
            if old.expires_at_ms != entry.expires_at_ms {
                self.expiry
                    .remove(be_key(old.expires_at_ms, key))
                    .map_err(|e| self.err(e))?;
            }
            if old.blob != entry.blob {
                self.blob_refs
                    .remove(ref_key(&old.blob, key))
                    .map_err(|e| self.err(e))?;
            }
        }
        // Written last: from here on the new version is visible.
        self.objects
            .insert(key, encode_value(entry))
            .map_err(|e| self.err(e))?;
        if let Some(old) = &old {
            if old.blob != entry.blob {
                self.release_blob(&old.blob, c, release)?;
            }
            Counters::add(
                &c.live_bytes,
                entry.record_len as i64 - old.record_len as i64,
            );
        } else {
            Counters::add(&c.objects, 1);
            Counters::add(&c.live_bytes, entry.record_len as i64);
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
        self.remove_object_with(key, before, c, BlobRelease::Now)
    }

    /// [`Index::remove_object`] with a choice of what happens to a blob left unreferenced.
    pub fn remove_object_with(
        &self,
        key: &[u8],
        before: Pos,
        c: &Counters,
        release: BlobRelease<'_>,
    ) -> Result<Option<ObjectEntry>> {
        let Some(old) = self.get_object(key)? else {
            return Ok(None);
        };
        if old.pos >= before {
            return Ok(None);
        }
        self.objects.remove(key).map_err(|e| self.err(e))?;
        self.expiry
            .remove(be_key(old.expires_at_ms, key))
            .map_err(|e| self.err(e))?;
        self.blob_refs
            .remove(ref_key(&old.blob, key))
            .map_err(|e| self.err(e))?;
        self.release_blob(&old.blob, c, release)?;
        Counters::add(&c.objects, -1);
        Counters::add(&c.live_bytes, -(old.record_len as i64));
        Ok(Some(old))
    }

    /// Removes an expiry entry that no longer matches its object.
    pub fn remove_expiry_entry(&self, t: u64, key: &[u8]) -> Result<()> {
        self.expiry
            .remove(be_key(t, key))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Keys that start with `prefix`.
    pub fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for item in self.objects.scan_prefix(prefix) {
            let (k, _) = item.map_err(|e| self.err(e))?;
            out.push(k.to_vec());
        }
        Ok(out)
    }

    /// Places blob `hash` at `entry.runs` unless the index already has a placement made at
    /// or after `entry.manifest`. Returns whether it changed anything.
    pub fn put_blob(&self, hash: &[u8; 32], entry: &BlobEntry, c: &Counters) -> Result<bool> {
        let old = self.get_blob(hash)?;
        if let Some(old) = &old {
            if old.manifest >= entry.manifest {
                return Ok(false);
            }
        }
        // Only chunks outside the blob record's own segment need a hint (see
        // `segment_blob_hints`).
        for s in entry
            .segments()
            .into_iter()
            .filter(|&s| s != entry.manifest.segment)
        {
            let mut k = s.to_be_bytes().to_vec();
            k.extend_from_slice(hash);
            self.seg_blobs.insert(k, &[]).map_err(|e| self.err(e))?;
        }
        self.blobs
            .insert(hash, encode_value(entry))
            .map_err(|e| self.err(e))?;
        if old.is_none() {
            Counters::add(&c.blobs, 1);
            Counters::add(&c.live_bytes, entry.len as i64);
        }
        Ok(true)
    }

    fn release_blob(&self, hash: &[u8; 32], c: &Counters, release: BlobRelease<'_>) -> Result<()> {
        match release {
            BlobRelease::Now => {
                self.free_blob_if_unreferenced(hash, c)?;
            }
            BlobRelease::Defer(set) => {
                set.insert(*hash);
            }
        }
        Ok(())
    }

    /// Drops a blob's entry when no object refers to it any more.
    pub fn free_blob_if_unreferenced(&self, hash: &[u8; 32], c: &Counters) -> Result<bool> {
        if self.blob_has_refs(hash)? {
            return Ok(false);
        }
        self.drop_blob_entry(hash, c)
    }

    /// Drops a blob's entry (its objects must already be gone or be removed by the caller).
    pub fn drop_blob_entry(&self, hash: &[u8; 32], c: &Counters) -> Result<bool> {
        match self.blobs.remove(hash).map_err(|e| self.err(e))? {
            Some(v) => {
                let len = decode_value::<BlobEntry>(&v).map(|b| b.len).unwrap_or(0);
                Counters::add(&c.blobs, -1);
                Counters::add(&c.live_bytes, -(len as i64));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Recomputes the counters by walking the objects and blobs trees.
    pub fn recount(&self, dedup_saved_bytes: u64) -> Result<CounterValues> {
        let mut v = CounterValues {
            dedup_saved_bytes,
            ..Default::default()
        };
        for item in self.objects.iter() {
            let (_, val) = item.map_err(|e| self.err(e))?;
            if let Ok(e) = decode_value::<ObjectEntry>(&val) {
                v.objects += 1;
                v.live_bytes += e.record_len as u64;
            }
        }
        for item in self.blobs.iter() {
            let (_, val) = item.map_err(|e| self.err(e))?;
            if let Ok(b) = decode_value::<BlobEntry>(&val) {
                v.blobs += 1;
                v.live_bytes += b.len;
            }
        }
        Ok(v)
    }

    /// Every object and blob that needs segment `id` (a full scan: for a segment file that
    /// disappeared, whose records cannot be walked).
    pub fn entries_needing_segment(&self, id: u64) -> Result<SegmentContents> {
        let mut keys = Vec::new();
        for item in self.objects.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if decode_value::<ObjectEntry>(&v).is_ok_and(|e| e.pos.segment == id) {
                keys.push(k.to_vec());
            }
        }
        let mut hashes = Vec::new();
        for item in self.blobs.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if decode_value::<BlobEntry>(&v).is_ok_and(|b| b.needs_segment(id)) {
                if let Ok(h) = <[u8; 32]>::try_from(k.as_ref()) {
                    hashes.push(h);
                }
            }
        }
        Ok((keys, hashes))
    }

    /// One page of the objects tree after `after`, each value decoded on its own (an
    /// undecodable entry is returned as its error rather than failing the page): for
    /// `verify`, which must report damage instead of stopping at it.
    pub fn objects_page_raw(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<RawEntry<ObjectEntry>>> {
        Self::page_raw(self, &self.objects, after, limit)
    }

    /// [`Index::objects_page_raw`] for the blobs tree.
    pub fn blobs_page_raw(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<RawEntry<BlobEntry>>> {
        Self::page_raw(self, &self.blobs, after, limit)
    }

    fn page_raw<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &sled::Tree,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<RawEntry<T>>> {
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match after {
            Some(a) => {
                let mut start = a.to_vec();
                start.push(0);
                Box::new(tree.range(start..))
            }
            None => Box::new(tree.iter()),
        };
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push((k.to_vec(), decode_value(&v)));
        }
        Ok(out)
    }

    /// Whether `blob_refs` holds the reference of `key` to `hash`.
    pub fn has_blob_ref(&self, hash: &[u8; 32], key: &[u8]) -> Result<bool> {
        self.blob_refs
            .contains_key(ref_key(hash, key))
            .map_err(|e| self.err(e))
    }

    /// Adds or removes one `blob_refs` entry (verify's repair of a reference set that
    /// disagrees with the objects tree).
    pub fn set_blob_ref(&self, hash: &[u8; 32], key: &[u8], present: bool) -> Result<()> {
        if present {
            self.blob_refs
                .insert(ref_key(hash, key), &[])
                .map_err(|e| self.err(e))?;
        } else {
            self.blob_refs
                .remove(ref_key(hash, key))
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Removes an objects-tree entry whose value cannot be decoded (its references, if
    /// any, are found and removed as stale by `verify`).
    pub fn remove_undecodable_object(&self, key: &[u8], c: &Counters) -> Result<bool> {
        let removed = self.objects.remove(key).map_err(|e| self.err(e))?.is_some();
        if removed {
            Counters::add(&c.objects, -1);
        }
        Ok(removed)
    }

    /// Removes a blobs-tree entry whatever its value holds.
    pub fn remove_blob_key(&self, key: &[u8], c: &Counters) -> Result<bool> {
        match self.blobs.remove(key).map_err(|e| self.err(e))? {
            Some(v) => {
                let len = decode_value::<BlobEntry>(&v).map(|b| b.len).unwrap_or(0);
                Counters::add(&c.blobs, -1);
                Counters::add(&c.live_bytes, -(len as i64));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Hashes of all blobs (for cleanup after a rebuild).
    pub fn blob_hashes(&self) -> Result<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        for item in self.blobs.iter() {
            let (k, _) = item.map_err(|e| self.err(e))?;
            if let Ok(h) = <[u8; 32]>::try_from(k.as_ref()) {
                out.push(h);
            }
        }
        Ok(out)
    }
}

fn ref_key(hash: &[u8; 32], key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + key.len());
    k.extend_from_slice(hash);
    k.extend_from_slice(key);
    k
}

/// An 8-byte big-endian number (time or segment id) followed by a key: sorts by number.
fn be_key(t: u64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&t.to_be_bytes());
    k.extend_from_slice(key);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pos: Pos, blob: u8, exp: u64) -> ObjectEntry {
        ObjectEntry {
            pos,
            record_len: 100,
            distribution: "d".into(),
            tags: vec![],
            meta: vec![1, 2],
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
        }
    }

    #[test]
    fn values_round_trip_with_version_byte() {
        let e = entry(
            Pos {
                segment: 3,
                offset: 99,
            },
            7,
            1000,
        );
        let enc = encode_value(&e);
        assert_eq!(enc[0], INDEX_VALUE_VERSION);
        assert_eq!(decode_value::<ObjectEntry>(&enc), Ok(e));
        let b = blob(Pos {
            segment: 1,
            offset: 2,
        });
        assert_eq!(decode_value::<BlobEntry>(&encode_value(&b)), Ok(b));
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
        assert_eq!(decode_value::<Checkpoint>(&encode_value(&cp)), Ok(cp));
    }

    #[test]
    fn value_decoding_refuses_bad_input() {
        assert!(matches!(
            decode_value::<ObjectEntry>(&[]),
            Err(DecodeError::Truncated { .. })
        ));
        let mut enc = encode_value(&entry(Pos::ZERO, 1, 1));
        enc[0] = 9;
        assert_eq!(
            decode_value::<ObjectEntry>(&enc),
            Err(DecodeError::UnsupportedVersion(9))
        );
        enc[0] = INDEX_VALUE_VERSION;
        enc.push(0);
        assert_eq!(
            decode_value::<ObjectEntry>(&enc),
            Err(DecodeError::TrailingBytes(1))
        );
        // Huge claimed lengths fail without allocating.
        let mut evil = vec![INDEX_VALUE_VERSION];
        evil.extend_from_slice(&[0u8; 24]);
        evil.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_value::<ObjectEntry>(&evil).is_err());
    }

    #[test]
    fn put_and_remove_are_idempotent_and_ordered_by_position() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::open(dir.path(), 1 << 20).unwrap();
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
        let ix = Index::open(dir.path(), 1 << 20).unwrap();
        let c = Counters::default();
        let p = |o| Pos {
            segment: 1,
            offset: o,
        };
        ix.put_blob(&[1; 32], &blob(p(1)), &c).unwrap();
        ix.put_object(b"a", &entry(p(2), 1, 10), &c).unwrap();
        ix.put_object(b"b", &entry(p(3), 1, 10), &c).unwrap();
        assert_eq!(ix.blob_refs(&[1; 32]).unwrap().len(), 2);
        ix.remove_object(b"a", p(4), &c).unwrap();
        assert!(ix.get_blob(&[1; 32]).unwrap().is_some());
        // Replacing b's body frees the old blob.
        ix.put_blob(&[2; 32], &blob(p(5)), &c).unwrap();
        ix.put_object(b"b", &entry(p(6), 2, 10), &c).unwrap();
        assert!(ix.get_blob(&[1; 32]).unwrap().is_none());
        assert_eq!(ix.recount(0).unwrap(), c.load());
        assert_eq!(ix.expired_before(11, 10).unwrap().len(), 1);
    }
}
