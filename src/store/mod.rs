//! The persistent cache: content-addressed bodies in append-only, mmap'd segment files,
//! indexed in sled. This module knows keys, opaque metadata bytes and bodies, not HTTP.
//!
//! storage-format.md is the on-disk contract. In short: segments are the source of truth
//! (blob chunks, blob manifests, object records and tombstones, each with checksums); sled
//! is an index that can be rebuilt from them; a checkpoint watermark bounds how much of the
//! log is replayed at open.
//!
//! The record, index, directory and table modules are the store's own; the `fuzzing`
//! feature (fuzz targets, corpus replay and the tests that build damaged caches) makes them
//! public.

mod batch;
mod body;
pub mod clock;
mod config;
mod dir;
#[cfg(feature = "fuzzing")]
pub mod directory;
#[cfg(not(feature = "fuzzing"))]
mod directory;
mod error;
#[cfg(feature = "fuzzing")]
pub mod index;
#[cfg(not(feature = "fuzzing"))]
mod index;
mod liveness;
mod log;
mod recency;
#[cfg(feature = "fuzzing")]
pub mod record;
#[cfg(not(feature = "fuzzing"))]
mod record;
mod recovery;
mod segment;
#[cfg(feature = "fuzzing")]
pub mod slot_table;
#[cfg(not(feature = "fuzzing"))]
mod slot_table;
mod sweeper;
mod usage;
mod verify;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

pub use body::Body;
pub use clock::{from_ms, to_ms, Clock, ManualClock, SystemClock};
pub use config::{FsyncPolicy, StoreConfig, MIB};
pub use error::{Result, StoreError};
pub use index::{Pos, SegmentState};
pub use sweeper::SweepReport;
pub use usage::SegmentUsage;
pub use verify::{
    CorruptRecord, Dangling, EntryKind, RefMismatch, SegmentCheck, VerifyPhase, VerifyProgress,
    VerifyReport,
};
pub use writer::ObjectWriter;

use crate::store::dir::CacheDir;
use crate::store::index::{Counters, Index};
use crate::store::log::Log;
use crate::store::recency::Recency;
use crate::store::segment::Segment;

/// Longest cache key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 8 * 1024;

/// What a new object is: its identity and its metadata. The body follows through
/// [`ObjectWriter::write`].
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub key: Vec<u8>,
    pub distribution: String,
    pub tags: Vec<String>,
    /// Bytes the store keeps without interpreting (the edge stores response metadata here).
    pub meta: Vec<u8>,
    pub stored_at: SystemTime,
    pub expires_at: SystemTime,
}

/// An object's metadata as the index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: Vec<u8>,
    pub distribution: String,
    pub tags: Vec<String>,
    pub meta: Vec<u8>,
    pub stored_at: SystemTime,
    pub expires_at: SystemTime,
    pub body_len: u64,
    /// blake3 of the body: its address in the store.
    pub blob: [u8; 32],
    /// Where the object record of this version is.
    pub record: Pos,
}

impl ObjectInfo {
    /// The object as its record at `pos` describes it.
    fn from_record(o: record::ObjectRecord, pos: Pos) -> Self {
        Self {
            key: o.key,
            distribution: o.distribution,
            tags: o.tags,
            meta: o.meta,
            stored_at: clock::from_ms(o.stored_at_ms),
            expires_at: clock::from_ms(o.expires_at_ms),
            body_len: o.body_len,
            blob: o.blob,
            record: pos,
        }
    }
}

/// A found object: its metadata and its body, served from the segment mapping.
#[derive(Debug)]
pub struct Hit {
    pub info: ObjectInfo,
    pub body: Body,
}

/// Where a blob's bytes are (for inspection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub hash: [u8; 32],
    pub len: u64,
    pub runs: Vec<record::Run>,
    pub manifest: Pos,
    pub references: usize,
}

/// Counters of events since the store was opened.
#[derive(Debug, Default)]
pub(crate) struct Events {
    pub checksum_failures: AtomicU64,
    pub expired: AtomicU64,
    pub evicted_objects: AtomicU64,
    pub reclaimed_segments: AtomicU64,
    pub copied_forward_objects: AtomicU64,
    pub copied_forward_bytes: AtomicU64,
    pub over_capacity_refusals: AtomicU64,
    pub disk_full_refusals: AtomicU64,
    pub lost_segments: AtomicU64,
    pub index_rebuilds: AtomicU64,
}

/// A snapshot of what the store holds and has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub objects: u64,
    pub blobs: u64,
    /// Bytes of live bodies plus live object records.
    pub live_bytes: u64,
    /// Bytes of segment files on disk (what capacity counts).
    pub bytes_on_disk: u64,
    /// Bytes of the sled index on disk (not counted against capacity).
    pub index_bytes_on_disk: u64,
    pub capacity: u64,
    pub segment_size: u64,
    pub segments: u64,
    /// The segment being appended to (none until the first write after opening).
    pub active_segment: Option<u64>,
    pub dedup_saved_bytes: u64,
    /// Fixed memory of the recency table, in bytes.
    pub recency_bytes: u64,
    /// False right after an unclean stop, until the background recount has finished.
    pub counts_exact: bool,
    pub checksum_failures: u64,
    pub expired: u64,
    pub evicted_objects: u64,
    pub reclaimed_segments: u64,
    pub copied_forward_objects: u64,
    pub copied_forward_bytes: u64,
    pub over_capacity_refusals: u64,
    pub disk_full_refusals: u64,
    /// Segment files found missing or damaged, at open or while running.
    pub lost_segments: u64,
    /// Times the index was rebuilt from the segments (at open or on request).
    pub index_rebuilds: u64,
}

/// One segment as the store sees it (for inspection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: u64,
    pub state: SegmentState,
    pub bytes_on_disk: u64,
    pub created_at: SystemTime,
    pub path: PathBuf,
}

/// What opening the store found and did (also logged as one line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    pub rebuilt: bool,
    pub rebuild_reason: Option<String>,
    pub clean_shutdown: bool,
    pub replayed_records: u64,
    pub torn_tail: Option<(u64, u64)>,
    pub lost_segments: Vec<u64>,
    pub removed_orphan_segments: Vec<u64>,
    pub segments: u64,
    pub objects: u64,
}

/// Wakes the background thread early (segment sealed, capacity reached) and stops it.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    state: Mutex<(bool, bool)>, // (woken, stop)
    cv: Condvar,
}

impl Wake {
    pub fn wake(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 = true;
        self.cv.notify_all();
    }

    fn stop(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.1 = true;
        self.cv.notify_all();
    }

    /// Waits up to `timeout` for a wake-up; returns false when told to stop.
    fn wait(&self, timeout: Duration) -> bool {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (mut s, _) = self
            .cv
            .wait_timeout_while(s, timeout, |s| !s.0 && !s.1)
            .unwrap_or_else(|e| e.into_inner());
        s.0 = false;
        !s.1
    }
}

pub(crate) struct Inner {
    pub cfg: StoreConfig,
    pub dir: CacheDir,
    pub seg_dir: PathBuf,
    pub index: Index,
    /// Every live segment, by id; lookups clone the `Arc` so that a reclaimed segment's
    /// mapping outlives its last reader.
    pub segments: index::SegmentMap,
    /// The active segment and write position. Every index mutation happens under this lock,
    /// in the order of the records that cause it, so a checkpoint taken under it is exact.
    pub log: Mutex<Log>,
    pub counters: Counters,
    pub bytes_on_disk: AtomicU64,
    pub recency: Recency,
    /// Objects whose bytes failed a check, by key, with the version that failed.
    /// Versions not to return again, removed at the next write: key → (version, whether
    /// its body is damaged, so that the blob goes too).
    pub quarantine: Mutex<HashMap<Vec<u8>, (Pos, bool)>>,
    pub quarantined: AtomicUsize,
    /// Tombstones whose removals are still being applied: the checkpoint watermark must not
    /// pass them.
    /// Prefix tombstones whose removals are still being applied (position, prefix).
    pub pending_tombstones: Mutex<Vec<(Pos, Vec<u8>)>>,
    /// Segments a process killed before its last checkpoint may have left unsynced: synced by
    /// the next checkpoint before it moves the watermark past them (power-loss safety).
    pub unsynced_segments: Mutex<Vec<Arc<Segment>>>,
    pub events: Events,
    pub wake: Arc<Wake>,
    pub counts_exact: AtomicBool,
    pub closed: AtomicBool,
    pub open_report: OpenReport,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("dir", &self.dir.root)
            .finish()
    }
}

impl Inner {
    pub fn now_ms(&self) -> u64 {
        self.cfg.clock.now_ms()
    }

    /// Whether an object with this expiry is past its grace period and must not be returned.
    pub fn is_dead(&self, expires_at_ms: u64, now_ms: u64) -> bool {
        expires_at_ms.saturating_add(self.cfg.stale_grace.as_millis() as u64) <= now_ms
    }

    pub fn segment(&self, id: u64) -> Option<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Records that the bytes of `key` at version `pos` failed a check: it is not returned
    /// again, and the sweeper removes it.
    pub fn quarantine_object(&self, key: &[u8], pos: Pos, segment: u64, offset: u64, why: &str) {
        if !self.quarantine(key, pos, true) {
            return;
        }
        self.events
            .checksum_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            key = %String::from_utf8_lossy(key),
            segment,
            offset,
            reason = why,
            "cached object failed its checksum; dropping it"
        );
        self.wake.wake();
    }

    /// Records that version `pos` of `key` refers to a blob the index no longer has (a crash
    /// or a scan left it behind when the blob was dropped): it is removed at the next write,
    /// before a refetch of the same body can take it for a counted reference.
    pub fn forget_dangling_object(&self, key: &[u8], pos: Pos) {
        if self.quarantine(key, pos, false) {
            tracing::debug!(key = %String::from_utf8_lossy(key), "object refers to a dropped blob; removing it");
        }
    }

    /// Whether this (key, version) was newly quarantined.
    fn quarantine(&self, key: &[u8], pos: Pos, damaged: bool) -> bool {
        let mut q = self.quarantine.lock().unwrap_or_else(|e| e.into_inner());
        // Concurrent readers of one body may all fail on it: count and log it once.
        if q.get(key).is_some_and(|(p, _)| *p == pos) {
            return false;
        }
        if q.len() < 65536 {
            q.insert(key.to_vec(), (pos, damaged));
            self.quarantined.store(q.len(), Ordering::Release);
        }
        true
    }

    /// Whether version `version` of `key` is being removed by a prefix invalidation still
    /// under way: it must not be written again (a metadata update or a copy forward would
    /// put a record after the tombstone, and the invalidation would miss it).
    pub fn invalidated_by_pending(&self, key: &[u8], version: Pos) -> bool {
        self.pending_tombstones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|(tomb, prefix)| version < *tomb && key.starts_with(prefix))
    }

    pub fn is_quarantined(&self, key: &[u8], pos: Pos) -> bool {
        if self.quarantined.load(Ordering::Acquire) == 0 {
            return false;
        }
        let q = self.quarantine.lock().unwrap_or_else(|e| e.into_inner());
        q.get(key).is_some_and(|(p, _)| *p == pos)
    }

    fn stats(&self) -> StoreStats {
        let c = self.counters.load();
        // The lock order is log, then segments (a rotation adds its segment while it holds
        // the log): each is taken and released on its own here, never one while
        // waiting for the other, or a stats call racing a rotation deadlocks both.
        let active = self.lock_log().active_id();
        let segments = self
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        let ev = &self.events;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreStats {
            objects: c.objects,
            blobs: c.blobs,
            live_bytes: c.live_bytes,
            bytes_on_disk: self.bytes_on_disk.load(Ordering::Relaxed),
            index_bytes_on_disk: self.index.size_on_disk(),
            capacity: self.cfg.capacity,
            segment_size: self.cfg.segment_size,
            segments: segments as u64,
            active_segment: active,
            dedup_saved_bytes: c.dedup_saved_bytes,
            recency_bytes: self.recency.memory_bytes() as u64,
            counts_exact: self.counts_exact.load(Ordering::Relaxed),
            checksum_failures: l(&ev.checksum_failures),
            expired: l(&ev.expired),
            evicted_objects: l(&ev.evicted_objects),
            reclaimed_segments: l(&ev.reclaimed_segments),
            copied_forward_objects: l(&ev.copied_forward_objects),
            copied_forward_bytes: l(&ev.copied_forward_bytes),
            over_capacity_refusals: l(&ev.over_capacity_refusals),
            disk_full_refusals: l(&ev.disk_full_refusals),
            lost_segments: l(&ev.lost_segments),
            index_rebuilds: l(&ev.index_rebuilds),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.wake.stop();
        if !self.closed.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.checkpoint(true) {
                tracing::error!(error = %e, "closing the cache: final checkpoint failed");
            }
        }
    }
}

/// A handle to an open store. Clones share it; the store closes cleanly when the last
/// handle is dropped (or explicitly with [`Store::close`]).
#[derive(Clone)]
pub struct Store {
    // Declared first so that it is dropped (its thread stopped) before `inner`.
    _background: Option<Arc<sweeper::Background>>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir.root)
            .finish()
    }
}

impl Store {
    /// Opens (or creates) the cache in `cfg.dir`. See `recovery.rs` for what opening checks
    /// and repairs.
    pub fn open(cfg: StoreConfig) -> Result<Store> {
        Self::open_with(cfg, false)
    }

    /// Opens the cache and rebuilds its index from the segments, whatever state the index
    /// is in (the old index is moved aside).
    pub fn open_rebuilding(cfg: StoreConfig) -> Result<Store> {
        Self::open_with(cfg, true)
    }

    fn open_with(cfg: StoreConfig, rebuild: bool) -> Result<Store> {
        let interval = cfg.background_interval;
        let inner = Arc::new(recovery::open(cfg, rebuild)?);
        let background = match interval {
            // The background thread recounts after an unclean stop.
            Some(i) => Some(Arc::new(sweeper::Background::spawn(&inner, i))),
            None => {
                if !inner.counts_exact.load(Ordering::Relaxed) {
                    inner.recount()?;
                }
                None
            }
        };
        Ok(Store {
            inner,
            _background: background,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir.root
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// What opening found and repaired.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.open_report
    }

    /// Starts writing a new object. Nothing is visible until [`ObjectWriter::commit`].
    pub fn begin(&self, spec: ObjectSpec) -> Result<ObjectWriter> {
        ObjectWriter::new(self.inner.clone(), spec)
    }

    /// Writes a whole object at once.
    pub fn insert(&self, spec: ObjectSpec, body: &[u8]) -> Result<ObjectInfo> {
        let mut w = self.begin(spec)?;
        w.write(body)?;
        w.commit()
    }

    /// Looks up `key`. Small bodies are verified before this returns; larger ones chunk by
    /// chunk as they are read from the [`Body`]. Never writes to the index. A body that
    /// fails its check makes this a miss (and the object is dropped).
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Hit>> {
        body::lookup(&self.inner, key)
    }

    /// Like [`Store::lookup`], but pages that are not resident in memory are read on
    /// tokio's blocking pool, so an async worker never stalls on a disk page fault.
    pub async fn lookup_async(&self, key: &[u8]) -> Result<Option<Hit>> {
        body::lookup_async(&self.inner, key).await
    }

    /// Metadata of `key` without its body (no body checks, no recency). An object whose
    /// record cannot be read is reported absent.
    pub fn info(&self, key: &[u8]) -> Result<Option<ObjectInfo>> {
        let now = self.inner.now_ms();
        let Some(e) = self
            .inner
            .index
            .get_object(key)?
            .filter(|e| !self.inner.is_dead(e.expires_at_ms, now))
            .filter(|e| self.inner.index.has_blob(&e.blob))
        else {
            return Ok(None);
        };
        Ok(self
            .inner
            .index
            .object_record(Some(key), &e)
            .ok()
            .map(|o| ObjectInfo::from_record(o, e.pos)))
    }

    /// Replaces the metadata and times of `key` without touching its body (a 304
    /// revalidation). Returns false when the key is absent.
    pub fn update_meta(
        &self,
        key: &[u8],
        meta: Vec<u8>,
        stored_at: SystemTime,
        expires_at: SystemTime,
    ) -> Result<bool> {
        writer::update_meta(&self.inner, key, meta, stored_at, expires_at)
    }

    /// Removes `key` (durably: a tombstone keeps a rebuild from bringing it back).
    pub fn remove(&self, key: &[u8]) -> Result<bool> {
        writer::remove(&self.inner, key)
    }

    /// Removes every object whose key starts with `prefix`; returns how many were removed.
    pub fn remove_prefix(&self, prefix: &[u8]) -> Result<u64> {
        writer::remove_prefix(&self.inner, prefix)
    }

    /// Up to `limit` objects whose key starts with `prefix` (a scan of the directory; no
    /// particular order).
    pub fn list(&self, prefix: &[u8], limit: usize) -> Result<Vec<ObjectInfo>> {
        self.iter_prefix(prefix).take(limit).collect()
    }

    /// Every object whose key starts with `prefix`, in directory order (not key order: the
    /// directory is keyed by hash, so this reads every object's record).
    pub fn iter_prefix<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = Result<ObjectInfo>> + 'a {
        self.iter()
            .filter(move |o| o.as_ref().map_or(true, |o| o.key.starts_with(prefix)))
    }

    /// Every object, in directory order, fetched a page at a time. Objects whose record
    /// cannot be read are left out.
    pub fn iter(&self) -> impl Iterator<Item = Result<ObjectInfo>> + '_ {
        let mut cursor = Some(directory::ScanCursor::default());
        let mut page: std::vec::IntoIter<ObjectInfo> = Vec::new().into_iter();
        std::iter::from_fn(move || loop {
            if let Some(o) = page.next() {
                return Some(Ok(o));
            }
            let c = cursor?;
            let (p, next) = self.inner.index.objects_page(c, 1024);
            cursor = next;
            let now = self.inner.now_ms();
            let v: Vec<_> = p
                .into_iter()
                .filter(|(_, e)| !self.inner.is_dead(e.expires_at_ms, now))
                .filter(|(_, e)| self.inner.index.has_blob(&e.blob))
                .filter_map(|(_, e)| {
                    let o = self.inner.index.object_record(None, &e).ok()?;
                    Some(ObjectInfo::from_record(o, e.pos))
                })
                .collect();
            page = v.into_iter();
        })
    }

    /// Where blob `hash` lives and how many objects share it.
    pub fn blob_info(&self, hash: &[u8; 32]) -> Result<Option<BlobInfo>> {
        let Some(b) = self.inner.index.get_blob(hash)? else {
            return Ok(None);
        };
        let references = self.inner.index.blob_ref_count(hash).unwrap_or(0) as usize;
        Ok(Some(BlobInfo {
            hash: *hash,
            len: b.len,
            runs: b.runs,
            manifest: b.manifest,
            references,
        }))
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let segs = self
            .inner
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner());
        segs.values()
            .map(|s| SegmentInfo {
                id: s.id,
                state: if s.is_sealed() {
                    SegmentState::Sealed
                } else {
                    SegmentState::Active
                },
                bytes_on_disk: s.allocated(),
                created_at: clock::from_ms(s.created_at_ms()),
                path: s.path().to_path_buf(),
            })
            .collect()
    }

    /// Records and live bytes of every segment (a full pass over segments and index: for
    /// inspection, not for the serving path).
    pub fn segment_usage(&self) -> Result<Vec<SegmentUsage>> {
        usage::segment_usage(&self.inner)
    }

    pub fn stats(&self) -> StoreStats {
        self.inner.stats()
    }

    /// One sweeper pass: drop objects past expiry plus grace, remove quarantined objects,
    /// and reclaim the oldest segments while bytes on disk exceed the target.
    pub fn sweep(&self) -> Result<SweepReport> {
        self.inner.sweep()
    }

    /// Makes the index durable up to now and records the replay watermark.
    pub fn checkpoint(&self) -> Result<()> {
        self.inner.checkpoint(false)
    }

    /// Rebuilds the index from the segments while open (lookups miss meanwhile).
    pub fn rebuild(&self) -> Result<u64> {
        recovery::rebuild_live(&self.inner)
    }

    /// Drops the cached pages of every segment (for cold-read benchmarks).
    pub fn drop_cached_pages(&self) -> Result<()> {
        let segs: Vec<_> = self
            .inner
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for s in segs {
            s.drop_cached_pages()?;
        }
        Ok(())
    }

    /// Closes the store: final checkpoint, index flushed, marked clean. Other clones of this
    /// handle keep working but the store will not be checkpointed again on drop.
    pub fn close(self) -> Result<()> {
        self.inner.wake.stop();
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.checkpoint(true)
    }
}
