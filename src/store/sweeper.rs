//! The sweeper: drops segments whose files were lost (`liveness.rs`), drops objects past
//! expiry plus grace, removes objects whose bytes failed a check, and keeps bytes on disk
//! under capacity by reclaiming whole sealed segments, oldest first, after copying forward
//! (within a budget) the recently read, still fresh objects they hold. Also the background thread that runs it and the checkpoints.
//!
//! Reclaim is strictly oldest first. Tombstones rely on this: a tombstone only has to
//! outlive the records it deletes, and those are always in the same or older segments.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::store::batch::RecordBatch;
use crate::store::body::read_extent;
use crate::store::error::{Result, StoreError};
use crate::store::index::{BlobEntry, BlobRelease, ObjectEntry};
use crate::store::log::runs_from;
use crate::store::record::{encode_payload, RecordKind, CHUNK_SIZE};
use crate::store::recovery::POS_MAX;
use crate::store::segment::Segment;
use crate::store::{Inner, Wake};

/// What one sweeper pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Segment files found deleted, replaced or truncated (see `liveness.rs`).
    pub lost_segments: u64,
    pub quarantined_removed: u64,
    pub expired: u64,
    pub reclaimed_segments: u64,
    pub evicted_objects: u64,
    pub copied_objects: u64,
    pub copied_bytes: u64,
}

/// Directory slots the expiry scan reads per lock hold, and per sweeper pass.
const EXPIRY_BATCH: usize = 4096;
const EXPIRY_SCAN_SLOTS: usize = 256 * 1024;

impl Inner {
    pub(crate) fn sweep(&self) -> Result<SweepReport> {
        let mut r = SweepReport {
            lost_segments: self.check_segment_files()?,
            ..SweepReport::default()
        };
        {
            let _log = self.lock_log();
            r.quarantined_removed = self.drain_quarantine_locked()?;
        }
        self.expire(&mut r)?;
        let target = self.cfg.capacity.saturating_sub(self.cfg.segment_size);
        let mut budget = self.cfg.copy_forward_budget();
        // Each round removes a segment; the bound only guards against a logic error.
        for _ in 0..100_000 {
            if self.bytes_on_disk.load(Ordering::Relaxed) <= target {
                break;
            }
            let Some(oldest) = self.oldest_sealed() else {
                break;
            };
            self.reclaim(&oldest, &mut budget, &mut r)?;
        }
        Ok(r)
    }

    fn oldest_sealed(&self) -> Option<Arc<Segment>> {
        let active = self.lock_log().active_id();
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        segs.values().find(|s| Some(s.id) != active).cloned()
    }

    /// Goes on with the incremental scan of the directory: objects past expiry plus grace
    /// are dropped, and so are objects whose blob is gone (it was reclaimed or damaged under
    /// another key that shared it). A pass looks at up to `EXPIRY_SCAN_SLOTS` slots, so a
    /// full cycle over N objects takes about N / EXPIRY_SCAN_SLOTS passes.
    fn expire(&self, r: &mut SweepReport) -> Result<()> {
        let now = self.now_ms();
        let grace = self.cfg.stale_grace.as_millis() as u64;
        // expires_at + grace <= now  <=>  expires_at < now - grace + 1
        let before = now.checked_sub(grace).map_or(0, |c| c.saturating_add(1));
        let mut scanned = 0;
        while scanned < EXPIRY_SCAN_SLOTS {
            let (batch, wrapped) = self.index.expiry_scan(before, EXPIRY_BATCH);
            scanned += EXPIRY_BATCH;
            if !batch.is_empty() {
                let _log = self.lock_log();
                for (id, seen) in batch {
                    // Only the version the scan saw: a newer one may have been written since.
                    if self.index.remove_seen_version(&id, &seen, &self.counters)? {
                        r.expired += 1;
                    }
                }
            }
            if wrapped {
                break;
            }
        }
        self.events.expired.fetch_add(r.expired, Ordering::Relaxed);
        Ok(())
    }

    fn is_hot_and_fresh(&self, key: &[u8], e: &ObjectEntry, now: u64) -> bool {
        e.expires_at_ms > now && self.recency.is_hot(key)
    }

    /// Empties segment `seg` (copy forward or drop everything in it) and deletes it.
    fn reclaim(&self, seg: &Arc<Segment>, budget: &mut u64, r: &mut SweepReport) -> Result<()> {
        let id = seg.id;
        let now = self.now_ms();
        let started = Instant::now();
        let mut copied_objects = 0u64;
        let mut evicted = 0u64;
        // Keys and blobs given their second chance in this reclaim.
        let mut survivors: Vec<Vec<u8>> = Vec::new();
        // Copies that failed (a full cache refuses them while it reclaims): one warning
        // per reclaimed segment, not one per object.
        let mut copy_failures = 0u64;
        let mut first_copy_error: Option<StoreError> = None;

        let (ids, hashes) = self.segment_contents(seg)?;
        let mut dropped_blobs = std::collections::HashSet::new();
        for hash in hashes {
            let Some(blob) = self.index.get_blob(&hash)? else {
                continue;
            };
            if !blob.needs_segment(id) {
                continue;
            }
            // Lookups mark the blob as well as the key: read since written means some key
            // still wants these bytes.
            let hot = self.recency.is_hot(&hash) && self.index.blob_ref_count(&hash) > Some(0);
            if hot && blob.len <= *budget {
                match self.copy_blob(&hash, &blob) {
                    Ok(true) => {
                        *budget -= blob.len;
                        r.copied_bytes += blob.len;
                        // Its bit is cleared at the end, after the records of the keys that
                        // read it (which may be in this segment too) have been judged as well.
                        survivors.push(hash.to_vec());
                        continue;
                    }
                    Ok(false) => continue,
                    Err(e) => {
                        copy_failures += 1;
                        first_copy_error.get_or_insert(e);
                    }
                }
            }
            let _log = self.lock_log();
            let Some(blob) = self.index.get_blob(&hash)? else {
                continue;
            };
            if blob.needs_segment(id) && self.index.drop_blob_entry(&hash, &self.counters)? {
                // Objects sharing it go below (records in this segment) or after the
                // directory scan that follows (records elsewhere).
                dropped_blobs.insert(hash);
            }
        }

        for oid in ids {
            let mut log = self.lock_log();
            let Some(e) = self.index.get_object_id(&oid) else {
                continue;
            };
            if e.pos.segment != id {
                continue;
            }
            // The record is in the segment being reclaimed, still mapped: read it to copy it.
            let record = self
                .index
                .object_record(None, &e)
                .ok()
                .filter(|o| self.index.has_blob(&o.blob));
            let copy = record.filter(|o| {
                self.is_hot_and_fresh(&o.key, &e, now)
                    && e.record_len as u64 <= *budget
                    && !self.invalidated_by_pending(&o.key, e.pos)
            });
            if let Some(record) = copy {
                let key = record.key.clone();
                match self.append_one(&mut log, RecordKind::Object, &encode_payload(&record)) {
                    Ok((pos, record_len)) => {
                        let entry = ObjectEntry {
                            pos,
                            record_len,
                            ..e
                        };
                        self.index.put_object(&key, &entry, &self.counters)?;
                        *budget -= record_len as u64;
                        copied_objects += 1;
                        survivors.push(key);
                        continue;
                    }
                    Err(err) => {
                        copy_failures += 1;
                        first_copy_error.get_or_insert(err);
                    }
                }
            }
            if self
                .index
                .remove_object_id(&oid, POS_MAX, &self.counters, BlobRelease::Now)?
                .is_some()
            {
                evicted += 1;
            }
        }

        // Objects elsewhere that shared a dropped blob (deduplicated bodies).
        evicted += self.remove_sharers(&dropped_blobs)?;

        // Final step under the lock: anything that came to depend on this segment while the
        // passes above ran goes too, and the segment leaves the map so that no commit can
        // refer to it any more. Index entries go before the file does.
        let detached = {
            let _log = self.lock_log();
            let stragglers = self.index.segment_blob_hints(id)?;
            evicted += self.drop_entries_in_segment(id, &[], &stragglers)?;
            self.index.remove_segment(id)?;
            self.detach_segment(id)
        };
        self.index.flush()?;
        if let Some(seg) = detached {
            self.unlink_segment(&seg)?;
        }
        // Second chance used: to survive the next reclaim they must be read again.
        for k in &survivors {
            self.recency.clear(k);
        }

        match first_copy_error {
            // Expected while fills keep a full cache full: the evicted counter shows it.
            Some(e @ StoreError::OverCapacity { .. }) => tracing::debug!(
                segment = id,
                failed_copies = copy_failures,
                first_error = %e,
                "no room to copy recently read objects forward; they were dropped"
            ),
            Some(e) => tracing::warn!(
                segment = id,
                failed_copies = copy_failures,
                first_error = %e,
                "could not copy recently read objects forward while reclaiming; they were dropped"
            ),
            None => {}
        }
        r.reclaimed_segments += 1;
        r.evicted_objects += evicted;
        r.copied_objects += copied_objects;
        let ev = &self.events;
        ev.reclaimed_segments.fetch_add(1, Ordering::Relaxed);
        ev.evicted_objects.fetch_add(evicted, Ordering::Relaxed);
        ev.copied_forward_objects
            .fetch_add(copied_objects, Ordering::Relaxed);
        tracing::debug!(
            segment = id,
            evicted,
            copied_objects,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "reclaimed segment"
        );
        Ok(())
    }

    /// Copies a blob's bytes (checked on the way) into the active segment and points the
    /// index at the copy. Returns false if the blob changed meanwhile (the copy is dead).
    fn copy_blob(&self, hash: &[u8; 32], blob: &BlobEntry) -> Result<bool> {
        blob.validate().map_err(|source| StoreError::CorruptIndex {
            tree: "blobs",
            source,
        })?;
        let mut staged = RecordBatch::new();
        let mut runs = Vec::new();
        let mut hasher = blake3::Hasher::new();
        for run in &blob.runs {
            let seg = self.segment(run.segment).ok_or(StoreError::FillLost)?;
            for (off, len) in run.extents(blob.chunk_size) {
                let data =
                    read_extent(self, &seg, off, len).map_err(|source| StoreError::Corrupt {
                        segment: seg.id,
                        offset: off,
                        source,
                    })?;
                hasher.update(&data);
                staged.push_body(&data);
                if staged.len() >= 16 {
                    let mut done = staged.take_finished();
                    self.append_tracked(&mut done, &mut runs)?;
                }
            }
        }
        if hasher.finalize().as_bytes() != hash {
            return Err(StoreError::Corrupt {
                segment: blob.manifest.segment,
                offset: blob.manifest.offset,
                source: crate::store::record::DecodeError::PayloadHash,
            });
        }
        staged.close_extent();
        let mut log = self.lock_log();
        match self.index.get_blob(hash)? {
            Some(cur) if cur.manifest == blob.manifest => {}
            _ => return Ok(false),
        }
        if !staged.is_empty() {
            let lens: Vec<u32> = staged.recs.iter().map(|r| r.1.payload_len).collect();
            let positions = self.append(&mut log, &mut staged)?;
            runs_from(&positions, &lens, &mut runs);
        }
        for run in &runs {
            if self.segment(run.segment).is_none() {
                return Ok(false);
            }
        }
        let entry = self.write_blob_record(
            &mut log,
            crate::store::record::BlobRecord {
                hash: *hash,
                len: blob.len,
                chunk_size: CHUNK_SIZE,
                runs,
            },
        )?;
        self.index.put_blob(hash, &entry, &self.counters)?;
        self.events
            .copied_forward_bytes
            .fetch_add(blob.len, Ordering::Relaxed);
        Ok(true)
    }

    fn append_tracked(
        &self,
        batch: &mut RecordBatch,
        runs: &mut Vec<crate::store::record::Run>,
    ) -> Result<()> {
        let lens: Vec<u32> = batch.recs.iter().map(|r| r.1.payload_len).collect();
        let positions = {
            let mut log = self.lock_log();
            self.append(&mut log, batch)?
        };
        runs_from(&positions, &lens, runs);
        Ok(())
    }
}

/// The store's background thread: sweeps and checkpoints every interval, or sooner when
/// woken (a segment was sealed, capacity ran short, an object failed its check).
pub(crate) struct Background {
    wake: Arc<Wake>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Background {
    pub fn spawn(inner: &Arc<Inner>, interval: Duration) -> Background {
        let weak: Weak<Inner> = Arc::downgrade(inner);
        let wake = inner.wake.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-store".into())
            .spawn({
                let wake = wake.clone();
                move || background_loop(weak, wake, interval)
            })
            .expect("spawning the store's background thread");
        Background {
            wake,
            thread: Mutex::new(Some(thread)),
        }
    }
}

fn background_loop(weak: Weak<Inner>, wake: Arc<Wake>, interval: Duration) {
    let mut last_error: Option<(String, Instant)> = None;
    loop {
        {
            let Some(inner) = weak.upgrade() else {
                return;
            };
            if inner.closed.load(Ordering::SeqCst) {
                return;
            }
            let mut result = Ok(());
            if !inner.counts_exact.load(Ordering::Relaxed) {
                result = inner.recount();
            }
            let result = result
                .and_then(|_| inner.sweep().map(|_| ()))
                .and_then(|_| inner.checkpoint(false));
            if let Err(e) = result {
                // Log a repeated error once a minute, not on every pass.
                let msg = e.to_string();
                let repeat = matches!(&last_error, Some((m, t)) if *m == msg && t.elapsed() < Duration::from_secs(60));
                if !repeat {
                    tracing::error!(error = %msg, "cache maintenance failed");
                    last_error = Some((msg, Instant::now()));
                }
            }
        }
        if !wake.wait(interval) {
            return;
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.wake.stop();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}
