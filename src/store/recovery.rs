//! Opening a cache: lock, format check, index open (or rebuild), replay of the log after
//! the checkpoint watermark, lost and orphaned segments, a fresh active segment. Also the
//! checkpoint itself and the rebuild of the index from the segments alone.
//!
//! Opening never scans every object: it reads one header per segment file and replays only
//! the records written after the last checkpoint (about a second of writes).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::store::config::{FsyncPolicy, StoreConfig};
use crate::store::dir::CacheDir;
use crate::store::directory::ObjectId;
use crate::store::error::{Result, StoreError};
use crate::store::index::{
    BlobEntry, BlobRelease, Checkpoint, CounterValues, Counters, Index, ObjectEntry, Pos,
    SegmentContents, SegmentEntry, SegmentMap, INDEX_LAYOUT,
};
use crate::store::log::Log;
use crate::store::recency::Recency;
use crate::store::record::{
    decode_payload, BlobRecord, ObjectRecord, RecordKind, TombstoneRecord, WalkEnd, WalkItem,
    Walker, SEGMENT_HEADER_LEN,
};
use crate::store::segment::{self, Segment};
use crate::store::{Events, Inner, OpenReport, Wake};

pub(crate) const POS_MAX: Pos = Pos {
    segment: u64::MAX,
    offset: u64::MAX,
};

pub(crate) fn open(cfg: StoreConfig, force_rebuild: bool) -> Result<Inner> {
    cfg.validate()?;
    let started = Instant::now();
    let dir = CacheDir::open(&cfg.dir)?;
    let seg_dir = dir.segments();
    let (files, max_named) = open_segment_files(&seg_dir, dir.salt)?;

    let mut report = OpenReport::default();
    let mut rebuild_reason: Option<String> = force_rebuild.then(|| "requested".to_string());
    let segment_map: SegmentMap = Arc::new(RwLock::new(files));
    let mut index = if force_rebuild {
        fresh_index(&dir, &cfg, &segment_map)?
    } else {
        match Index::open(
            &dir.index(),
            cfg.index_cache_bytes,
            dir.salt,
            segment_map.clone(),
        ) {
            Ok(ix) => ix,
            Err(failure) => {
                tracing::error!(dir = %dir.index().display(), %failure, "cache index cannot be opened; rebuilding it from the segments");
                rebuild_reason = Some(failure.to_string());
                fresh_index(&dir, &cfg, &segment_map)?
            }
        }
    };
    let mut checkpoint = None;
    if rebuild_reason.is_none() {
        // Without a checkpoint the index is new (or empty): a directory created just now is
        // expected. With one, the directory had to be there and whole.
        let has_checkpoint = matches!(index.read_checkpoint(), Ok(Some(_)));
        if let (Some(problem), true) = (index.directory_problem(), has_checkpoint) {
            rebuild_reason = Some(format!("the object directory is not usable: {problem}"));
        }
    }
    if rebuild_reason.is_none() {
        match index.read_checkpoint() {
            Ok(Some(cp)) => match index.layout() {
                Ok(Some(INDEX_LAYOUT)) => checkpoint = Some(cp),
                Ok(other) => {
                    rebuild_reason = Some(format!(
                        "the index has layout {other:?}; this cairn uses {INDEX_LAYOUT}"
                    ))
                }
                Err(e) => rebuild_reason = Some(format!("the index layout is unreadable: {e}")),
            },
            Ok(None) => match index.is_empty() {
                Ok(true) => {}
                Ok(false) => {
                    rebuild_reason = Some("the index has entries but no checkpoint".into())
                }
                Err(e) => rebuild_reason = Some(format!("the index is unreadable: {e}")),
            },
            Err(e) => rebuild_reason = Some(format!("the checkpoint is unreadable: {e}")),
        }
        if let Some(reason) = &rebuild_reason {
            // Never rebuild into a database that is wrong: start from an empty one.
            tracing::error!(dir = %dir.index().display(), %reason, "cache index is not usable; rebuilding it from the segments");
            drop(index);
            index = fresh_index(&dir, &cfg, &segment_map)?;
        }
    }
    report.clean_shutdown = rebuild_reason.is_none() && index.was_clean().unwrap_or(false);

    // The new active segment: after every id on disk (a file removed above for its bad
    // header included) and every id the index handed out.
    let (max_file, bytes_on_disk) = {
        let segs = segment_map.read().unwrap_or_else(|e| e.into_inner());
        (
            segs.keys().next_back().copied().unwrap_or(0).max(max_named),
            segs.values().map(|s| s.allocated()).sum::<u64>(),
        )
    };
    let next = max_file.max(
        checkpoint
            .map(|c| c.next_segment.saturating_sub(1))
            .unwrap_or(0),
    ) + 1;

    let mut inner = Inner {
        recency: Recency::new(cfg.recency_bits),
        log: Mutex::new(Log {
            active: None,
            write_pos: SEGMENT_HEADER_LEN as u64,
            next_segment: next,
        }),
        seg_dir,
        index,
        segments: segment_map,
        counters: Counters::default(),
        bytes_on_disk: AtomicU64::new(bytes_on_disk),
        quarantine: Mutex::new(HashMap::new()),
        quarantined: AtomicUsize::new(0),
        pending_tombstones: Mutex::new(Vec::new()),
        unsynced_segments: Mutex::new(Vec::new()),
        events: Events::default(),
        wake: Arc::new(Wake::default()),
        counts_exact: AtomicBool::new(true),
        closed: AtomicBool::new(false),
        open_report: OpenReport::default(),
        dir,
        cfg,
    };

    let old: Vec<Arc<Segment>> = {
        let segs = inner.segments.read().unwrap_or_else(|e| e.into_inner());
        segs.values().cloned().collect()
    };
    match (&rebuild_reason, checkpoint) {
        (None, Some(cp)) => {
            inner.counters.set(cp.counters);
            let known: BTreeMap<u64, SegmentEntry> = inner.index.segments()?.into_iter().collect();
            // Segments the index knows but the disk lost.
            for id in known.keys() {
                if !old.iter().any(|s| s.id == *id) {
                    tracing::error!(
                        segment = id,
                        "segment file is missing; dropping the objects stored in it"
                    );
                    let (ids, hashes) = inner.index.entries_needing_segment(*id)?;
                    inner.drop_entries_in_segment(*id, &ids, &hashes)?;
                    inner.index.remove_segment(*id)?;
                    inner.events.lost_segments.fetch_add(1, Ordering::Relaxed);
                    report.lost_segments.push(*id);
                }
            }
            // Files older than the watermark that the index no longer knows were reclaimed
            // just before a crash: finish the unlink.
            let mut replay_from = Vec::new();
            for s in &old {
                if s.id < cp.watermark.segment && !known.contains_key(&s.id) {
                    report.removed_orphan_segments.push(s.id);
                } else if s.id >= cp.watermark.segment {
                    replay_from.push(s.clone());
                }
            }
            for id in &report.removed_orphan_segments {
                inner.forget_segment_file(*id)?;
            }
            let r = replay(&inner, cp.watermark, &replay_from)?;
            report.replayed_records = r.records;
            report.torn_tail = r.torn_tail;
            if !report.clean_shutdown {
                inner.counts_exact.store(false, Ordering::Relaxed);
            }
        }
        (None, None) => {
            // A new cache (or an empty index over existing segments: rebuild is cheap).
            if !old.is_empty() {
                let reason = "the index is empty (or missing) but segments exist";
                tracing::warn!(%reason, segments = old.len(), "rebuilding the cache index from the segments");
                rebuild_reason = Some(reason.into());
                let r = replay(&inner, Pos::ZERO, &old)?;
                report.replayed_records = r.records;
                report.torn_tail = r.torn_tail;
            }
        }
        (Some(reason), _) => {
            tracing::warn!(%reason, segments = old.len(), "rebuilding the cache index from the segments");
            let r = replay(&inner, Pos::ZERO, &old)?;
            report.replayed_records = r.records;
            report.torn_tail = r.torn_tail;
        }
    }
    if !report.clean_shutdown {
        // What the stopped process wrote after its last checkpoint may still be only in the
        // page cache.
        let from = checkpoint.map_or(0, |c| c.watermark.segment);
        *inner
            .unsynced_segments
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = inner
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .range(from..)
            .map(|(_, s)| s.clone())
            .collect();
    }
    report.rebuilt = rebuild_reason.is_some();
    if report.rebuilt {
        inner.events.index_rebuilds.fetch_add(1, Ordering::Relaxed);
    }
    report.rebuild_reason = rebuild_reason;

    let current: Vec<Arc<Segment>> = inner
        .segments
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    for s in &current {
        inner.index.put_segment(s.id, &s.entry())?;
    }
    // A plain open (a usable index, only the records after its watermark replayed) keeps
    // its watermark: replay is idempotent, and the next checkpoint (the background thread's,
    // within a second) makes the replayed state durable and moves the watermark. Flushing the
    // directory here would make the first open after a crash wait for the writeback of every
    // table page the stopped process left dirty (40 ms of a 66 ms open at a million objects).
    // Anything else checkpoints at once. Either way the index is marked not clean, durably,
    // before the first write.
    let plain = checkpoint.is_some()
        && !report.rebuilt
        && report.torn_tail.is_none()
        && report.lost_segments.is_empty()
        && report.removed_orphan_segments.is_empty();
    if plain {
        inner.index.set_clean(false)?;
        inner.index.flush_db()?;
    } else {
        inner.checkpoint(false)?;
    }
    let c = inner.counters.load();
    report.segments = inner.segments.read().map(|s| s.len()).unwrap_or(0) as u64;
    report.objects = c.objects;
    tracing::info!(
        dir = %inner.dir.root.display(),
        objects = c.objects,
        blobs = c.blobs,
        segments = report.segments,
        replayed_records = report.replayed_records,
        clean_shutdown = report.clean_shutdown,
        rebuilt = report.rebuilt,
        torn_tail = ?report.torn_tail,
        lost_segments = report.lost_segments.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "cache opened"
    );
    inner.open_report = report;
    Ok(inner)
}

fn fresh_index(dir: &CacheDir, cfg: &StoreConfig, segment_map: &SegmentMap) -> Result<Index> {
    if let Some(aside) = dir.move_index_aside()? {
        tracing::warn!(moved_to = %aside.display(), "moved the old cache index aside");
    }
    Index::open(
        &dir.index(),
        cfg.index_cache_bytes,
        dir.salt,
        segment_map.clone(),
    )
    .map_err(|f| StoreError::Index {
        dir: dir.index(),
        message: f.to_string(),
    })
}

/// Opens every segment file. A file whose header does not check out is not ours to trust:
/// it is removed with an error in the log (its objects become misses). Also returns the
/// largest id named by a segment file, removed ones included (ids are never reused).
fn open_segment_files(
    seg_dir: &std::path::Path,
    salt: u64,
) -> Result<(BTreeMap<u64, Arc<Segment>>, u64)> {
    let mut out = BTreeMap::new();
    let mut max_named = 0;
    let rd = std::fs::read_dir(seg_dir).map_err(|e| StoreError::io(seg_dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::io(seg_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = segment::parse_file_name(&name) else {
            tracing::warn!(file = %entry.path().display(), "ignoring a file that is not a segment");
            continue;
        };
        max_named = max_named.max(id);
        match Segment::open(seg_dir, id, salt) {
            Ok((seg, _)) => {
                out.insert(id, Arc::new(seg));
            }
            Err(StoreError::Corrupt { source, .. }) => {
                tracing::error!(file = %entry.path().display(), error = %source, "segment header is invalid; removing the segment");
                std::fs::remove_file(entry.path()).map_err(|e| StoreError::io(entry.path(), e))?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok((out, max_named))
}

#[derive(Debug, Default)]
struct ReplayStats {
    records: u64,
    torn_tail: Option<(u64, u64)>,
}

/// Applies every record from `from` on, over `segs` (ascending ids), to the index.
/// Two passes: blob records first (an object may name a blob whose only surviving record
/// was written later, by a copy-forward), then objects and tombstones in log order.
fn replay(inner: &Inner, from: Pos, segs: &[Arc<Segment>]) -> Result<ReplayStats> {
    let now = inner.now_ms();
    let mut stats = ReplayStats::default();
    // Blobs placed in pass 0 or released in pass 1: freed at the end if unreferenced.
    let mut touched: HashSet<[u8; 32]> = HashSet::new();
    let last_id = segs.last().map(|s| s.id);
    for pass in 0..2 {
        for seg in segs {
            if seg.id < from.segment {
                continue;
            }
            let start = if seg.id == from.segment {
                from.offset.max(SEGMENT_HEADER_LEN as u64)
            } else {
                SEGMENT_HEADER_LEN as u64
            };
            let map = seg.bytes()?;
            let readable = seg.allocated().min(map.len() as u64) as usize;
            if start as usize >= readable {
                continue;
            }
            let mut walker =
                Walker::new(&map[..readable], inner.dir.salt, seg.id, start).skip_extent_checks();
            for item in walker.by_ref() {
                match item {
                    WalkItem::Record(r) => {
                        let pos = Pos {
                            segment: seg.id,
                            offset: r.offset,
                        };
                        if pass == 0 {
                            stats.records += 1;
                            if r.header.kind == RecordKind::Blob {
                                if let Some(h) =
                                    inner.replay_blob(pos, r.header.record_len(), r.payload)?
                                {
                                    touched.insert(h);
                                }
                            }
                        } else {
                            match r.header.kind {
                                RecordKind::Object => inner.replay_object(
                                    pos,
                                    r.header.record_len(),
                                    r.payload,
                                    now,
                                    &mut touched,
                                )?,
                                RecordKind::Tombstone => {
                                    inner.replay_tombstone(pos, r.payload, &mut touched)?
                                }
                                _ => {}
                            }
                        }
                    }
                    WalkItem::BadPayload {
                        offset,
                        header,
                        error,
                    } => {
                        if pass == 0 {
                            tracing::warn!(segment = seg.id, offset, kind = header.kind.as_str(), %error, "skipping a damaged record");
                        }
                    }
                }
            }
            if pass == 0 {
                match walker.end() {
                    Some(WalkEnd::BadHeader { offset, error }) => {
                        if Some(seg.id) == last_id {
                            tracing::warn!(segment = seg.id, offset, %error, "torn record at the tail of the last segment; ignoring it");
                            stats.torn_tail = Some((seg.id, *offset));
                        } else {
                            tracing::error!(segment = seg.id, offset, %error, "damaged record header; the rest of this segment is unreadable");
                        }
                    }
                    Some(WalkEnd::Unwritten { .. }) | Some(WalkEnd::End) | None => {}
                }
            }
        }
    }
    for h in touched {
        inner.index.free_blob_if_unreferenced(&h, &inner.counters)?;
    }
    Ok(stats)
}

impl Inner {
    fn replay_blob(&self, pos: Pos, record_len: u64, payload: &[u8]) -> Result<Option<[u8; 32]>> {
        let m: BlobRecord = match decode_payload(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(segment = pos.segment, offset = pos.offset, error = %e, "undecodable blob record; skipping it");
                return Ok(None);
            }
        };
        if m.validate().is_err() {
            return Ok(None);
        }
        // Every run must lie in a segment that still exists, within its allocated bytes.
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        for r in &m.runs {
            match segs.get(&r.segment) {
                Some(s)
                    if r.validate(m.chunk_size)
                        .is_ok_and(|end| end <= s.allocated()) => {}
                _ => return Ok(None),
            }
        }
        drop(segs);
        let entry = BlobEntry {
            len: m.len,
            chunk_size: m.chunk_size,
            runs: m.runs,
            manifest: pos,
            manifest_len: record_len as u32,
        };
        self.index.put_blob(&m.hash, &entry, &self.counters)?;
        Ok(Some(m.hash))
    }

    fn replay_object(
        &self,
        pos: Pos,
        record_len: u64,
        payload: &[u8],
        now: u64,
        released: &mut HashSet<[u8; 32]>,
    ) -> Result<()> {
        let o: ObjectRecord = match decode_payload(payload) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(segment = pos.segment, offset = pos.offset, error = %e, "undecodable object record; skipping it");
                return Ok(());
            }
        };
        if self.is_dead(o.expires_at_ms, now) {
            // This version is past its grace period: no older version may stand in for it.
            self.index.remove_object_with(
                &o.key,
                pos,
                &self.counters,
                BlobRelease::Defer(released),
            )?;
            return Ok(());
        }
        if !self.index.has_blob(&o.blob) {
            // Its body is gone (evicted, or its blob record is damaged): the key has no
            // usable version from here on, and an older one must not stand in for it.
            self.index.remove_object_with(
                &o.key,
                pos,
                &self.counters,
                BlobRelease::Defer(released),
            )?;
            return Ok(());
        }
        let entry = ObjectEntry {
            pos,
            record_len: record_len as u32,
            stored_at_ms: o.stored_at_ms,
            expires_at_ms: o.expires_at_ms,
            blob: o.blob,
            body_len: o.body_len,
        };
        self.index
            .put_object_with(&o.key, &entry, &self.counters, BlobRelease::Defer(released))?;
        Ok(())
    }

    fn replay_tombstone(
        &self,
        pos: Pos,
        payload: &[u8],
        released: &mut HashSet<[u8; 32]>,
    ) -> Result<()> {
        match decode_payload::<TombstoneRecord>(payload) {
            Ok(TombstoneRecord::Key(k)) => {
                self.index.remove_object_with(
                    &k,
                    pos,
                    &self.counters,
                    BlobRelease::Defer(released),
                )?;
            }
            Ok(TombstoneRecord::Prefix(p)) => {
                for k in self.index.keys_with_prefix(&p)? {
                    self.index.remove_object_with(
                        &k,
                        pos,
                        &self.counters,
                        BlobRelease::Defer(released),
                    )?;
                }
            }
            Err(e) => {
                tracing::warn!(segment = pos.segment, offset = pos.offset, error = %e, "undecodable tombstone; skipping it");
            }
        }
        Ok(())
    }

    /// Drops, of the given candidates, every blob that needs segment `id` (with every object
    /// using it, found by a scan of the directory) and every object whose record is in `id`.
    /// Returns the objects dropped.
    pub(crate) fn drop_entries_in_segment(
        &self,
        id: u64,
        ids: &[ObjectId],
        hashes: &[[u8; 32]],
    ) -> Result<u64> {
        let mut dropped = 0;
        let mut dropped_blobs = HashSet::new();
        for h in hashes {
            let needs = match self.index.get_blob(h)? {
                Some(b) => b.needs_segment(id),
                // Present but its record is unreadable: unusable either way.
                None => self.index.has_blob(h),
            };
            if needs && self.index.drop_blob_entry(h, &self.counters)? {
                dropped_blobs.insert(*h);
            }
        }
        for oid in ids {
            if let Some(e) = self.index.get_object_id(oid) {
                if e.pos.segment == id
                    && self
                        .index
                        .remove_object_id(oid, POS_MAX, &self.counters, BlobRelease::Now)?
                        .is_some()
                {
                    dropped += 1;
                }
            }
        }
        for (oid, seen) in self.index.objects_using(&dropped_blobs) {
            if self
                .index
                .remove_seen_version(&oid, &seen, &self.counters)?
            {
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// The objects (by id) and blob hashes whose records are in `seg`, found by walking it,
    /// plus the hinted blobs with chunks there. If the walk cannot reach the end (a damaged
    /// header), the index is scanned instead, so nothing is left pointing into the segment.
    pub(crate) fn segment_contents(&self, seg: &Segment) -> Result<SegmentContents> {
        let map = seg.bytes()?;
        let readable = seg.allocated().min(map.len() as u64) as usize;
        let mut keys = Vec::new();
        let mut hashes = self.index.segment_blob_hints(seg.id)?;
        let mut walker = Walker::new(
            &map[..readable],
            self.dir.salt,
            seg.id,
            SEGMENT_HEADER_LEN as u64,
        )
        .skip_extent_checks();
        for item in walker.by_ref() {
            let WalkItem::Record(r) = item else {
                continue;
            };
            match r.header.kind {
                RecordKind::Object => {
                    if let Ok(o) = decode_payload::<ObjectRecord>(r.payload) {
                        keys.push(self.index.object_id(&o.key));
                    }
                }
                RecordKind::Blob => {
                    if let Ok(b) = decode_payload::<BlobRecord>(r.payload) {
                        hashes.push(b.hash);
                    }
                }
                _ => {}
            }
        }
        if let Some(WalkEnd::BadHeader { offset, .. }) = walker.end() {
            tracing::warn!(
                segment = seg.id,
                offset,
                "segment is damaged; scanning the index for what it holds"
            );
            return self.index.entries_needing_segment(seg.id);
        }
        keys.sort();
        keys.dedup();
        hashes.sort();
        hashes.dedup();
        Ok((keys, hashes))
    }

    /// Removes a segment from the map and unlinks its file (index entries must be gone).
    pub(crate) fn forget_segment_file(&self, id: u64) -> Result<()> {
        match self.detach_segment(id) {
            Some(seg) => self.unlink_segment(&seg),
            None => Ok(()),
        }
    }

    /// Takes a segment out of the map (under the log lock, a commit that checks its runs
    /// then sees it gone) and out of the bytes on disk. Its file stays until
    /// [`Inner::unlink_segment`].
    pub(crate) fn detach_segment(&self, id: u64) -> Option<Arc<Segment>> {
        let seg = self
            .segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)?;
        let len = seg.allocated();
        let _ = self
            .bytes_on_disk
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(len))
            });
        Some(seg)
    }

    /// Deletes a detached segment's file (its pages stay readable to mappings still held).
    pub(crate) fn unlink_segment(&self, seg: &Segment) -> Result<()> {
        match std::fs::remove_file(seg.path()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(seg.path(), e)),
        }
    }

    /// Makes the index durable and records how far it reflects the log. With `clean`, also
    /// marks the shutdown clean (the next open trusts the counters).
    pub(crate) fn checkpoint(&self, clean: bool) -> Result<()> {
        let (mut watermark, counters, next_segment, active) = {
            let log = self.lock_log();
            (
                log.position(),
                self.counters.load(),
                log.next_segment,
                log.active.clone(),
            )
        };
        if let Some(floor) = self
            .pending_tombstones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(pos, _)| *pos)
            .min()
        {
            watermark = watermark.min(floor);
        }
        if self.cfg.fsync != FsyncPolicy::Never {
            if let Some(a) = active {
                a.sync()?;
            }
            let mut unsynced = self
                .unsynced_segments
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for s in unsynced.iter() {
                s.sync()?;
            }
            unsynced.clear();
        }
        self.index.flush()?;
        self.index.write_checkpoint(&Checkpoint {
            watermark,
            next_segment,
            counters,
        })?;
        self.index.set_clean(clean)?;
        self.index.flush()
    }

    /// Recomputes the counters from the index (after an unclean stop).
    pub(crate) fn recount(&self) -> Result<()> {
        let _log = self.lock_log();
        let dedup = self.counters.load().dedup_saved_bytes;
        let v = self.index.recount(dedup)?;
        self.counters.set(v);
        self.counts_exact.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// Rebuilds the index of an open store from its segments.
pub(crate) fn rebuild_live(inner: &Inner) -> Result<u64> {
    let started = Instant::now();
    let log = inner.lock_log();
    inner.index.clear_all()?;
    inner.counters.set(CounterValues::default());
    let segs: Vec<Arc<Segment>> = inner
        .segments
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    let stats = replay(inner, Pos::ZERO, &segs)?;
    inner.events.index_rebuilds.fetch_add(1, Ordering::Relaxed);
    for s in &segs {
        inner.index.put_segment(s.id, &s.entry())?;
    }
    drop(log);
    inner.checkpoint(false)?;
    let c = inner.counters.load();
    tracing::info!(
        objects = c.objects,
        records = stats.records,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "cache index rebuilt from the segments"
    );
    Ok(c.objects)
}
