//! Filling the store: streaming object writers, metadata updates and removals. Each writer
//! stages about 1 MiB of chunks in memory and appends them under a short lock, so slow
//! fills never hold up others; the commit writes the blob and object records and updates
//! the index under the same lock, in record order.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use crate::store::batch::RecordBatch;
use crate::store::clock::to_ms;
use crate::store::directory::{ObjectId, ScanCursor};
use crate::store::error::{Result, StoreError};
use crate::store::index::{BlobEntry, BlobRelease, ObjectEntry, Pos};
use crate::store::log::{runs_from, Log};
use crate::store::record::{
    encode_payload, BlobRecord, ObjectRecord, RecordKind, Run, TombstoneRecord, CHUNK_SIZE,
    RECORD_HEADER_LEN,
};
use crate::store::{Inner, ObjectInfo, ObjectSpec, MAX_KEY_LEN};

/// Chunks staged before a writer appends them (16 x 64 KiB = 1 MiB).
const FLUSH_CHUNKS: usize = 16;

/// Prefix-removal work is done this many keys per lock hold.
const REMOVE_BATCH: usize = 512;

/// A fill in progress. Dropping it without [`ObjectWriter::commit`] leaves nothing visible:
/// the chunks already appended become dead space that reclaim recovers.
pub struct ObjectWriter {
    inner: Arc<Inner>,
    spec: ObjectSpec,
    hasher: blake3::Hasher,
    staged: RecordBatch,
    /// Runs already appended.
    runs: Vec<Run>,
    len: u64,
    failed: Option<String>,
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("key", &String::from_utf8_lossy(&self.spec.key))
            .field("len", &self.len)
            .finish()
    }
}

impl ObjectWriter {
    pub(crate) fn new(inner: Arc<Inner>, spec: ObjectSpec) -> Result<Self> {
        check_key(&spec.key)?;
        Ok(Self {
            inner,
            spec,
            hasher: blake3::Hasher::new(),
            staged: RecordBatch::new(),
            runs: Vec::new(),
            len: 0,
            failed: None,
        })
    }

    /// Body bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds body bytes. Appends to the segment (under a short lock) once about 1 MiB is
    /// staged. After an error the writer can only be dropped.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        if let Some(why) = &self.failed {
            return Err(StoreError::FillFailed(why.clone()));
        }
        let max = self.inner.cfg.max_object_size();
        if self.len + data.len() as u64 > max {
            self.failed = Some("object too large".into());
            return Err(StoreError::ObjectTooLarge { max });
        }
        self.hasher.update(data);
        self.staged.push_body(data);
        self.len += data.len() as u64;
        if self.staged.len() >= FLUSH_CHUNKS {
            let mut finished = self.staged.take_finished();
            if let Err(e) = self.append_extents(&mut finished) {
                self.failed = Some(e.to_string());
                return Err(e);
            }
        }
        Ok(())
    }

    fn append_extents(&mut self, batch: &mut RecordBatch) -> Result<()> {
        let lens: Vec<u32> = batch.recs.iter().map(|r| r.1.payload_len).collect();
        let positions = {
            let mut log = self.inner.lock_log();
            self.inner.append(&mut log, batch)?
        };
        runs_from(&positions, &lens, &mut self.runs);
        Ok(())
    }

    /// Abandons the fill (same as dropping it).
    pub fn abort(self) {}

    /// Makes the object visible: blob placed (or shared with an identical body already
    /// stored), object record written, index updated. Once this returns, the object
    /// survives a crash of the process.
    pub fn commit(mut self) -> Result<ObjectInfo> {
        if let Some(why) = self.failed.take() {
            return Err(StoreError::FillFailed(why));
        }
        self.staged.close_extent();
        let hash: [u8; 32] = *self.hasher.finalize().as_bytes();
        let inner = self.inner.clone();
        let record = ObjectRecord {
            key: std::mem::take(&mut self.spec.key),
            distribution: std::mem::take(&mut self.spec.distribution),
            tags: std::mem::take(&mut self.spec.tags),
            meta: std::mem::take(&mut self.spec.meta),
            stored_at_ms: to_ms(self.spec.stored_at),
            expires_at_ms: to_ms(self.spec.expires_at),
            blob: hash,
            body_len: self.len,
        };
        let object_payload = encode_payload(&record);
        check_record_len(&inner, object_payload.len())?;

        let mut log = inner.lock_log();
        inner.drain_quarantine_locked()?;
        for r in &self.runs {
            if inner.segment(r.segment).is_none() {
                return Err(StoreError::FillLost);
            }
        }
        let existing = inner.index.get_blob(&hash)?;
        let keep_existing = match &existing {
            Some(b) => !inner.is_in_old_segment(b),
            None => false,
        };
        let mut new_blob = None;
        if keep_existing {
            // Identical body already stored: share it; what this fill appended is dead.
            inner.counters.add_dedup_saved(self.len);
        } else {
            let mut staged = std::mem::take(&mut self.staged);
            if !staged.is_empty() {
                let lens: Vec<u32> = staged.recs.iter().map(|r| r.1.payload_len).collect();
                let positions = inner.append(&mut log, &mut staged)?;
                runs_from(&positions, &lens, &mut self.runs);
            }
            let manifest = BlobRecord {
                hash,
                len: self.len,
                chunk_size: CHUNK_SIZE,
                runs: std::mem::take(&mut self.runs),
            };
            new_blob = Some(inner.write_blob_record(&mut log, manifest)?);
        }
        let (pos, record_len) = inner.append_one(&mut log, RecordKind::Object, &object_payload)?;
        if let Some(b) = &new_blob {
            inner.index.put_blob(&hash, b, &inner.counters)?;
        }
        let entry = ObjectEntry {
            pos,
            record_len,
            stored_at_ms: record.stored_at_ms,
            expires_at_ms: record.expires_at_ms,
            blob: hash,
            body_len: record.body_len,
        };
        inner
            .index
            .put_object(&record.key, &entry, &inner.counters)?;
        drop(log);
        inner.recency.clear(&record.key);
        Ok(ObjectInfo::from_record(record, pos))
    }
}

impl Inner {
    pub(crate) fn lock_log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one record; returns its position and total length.
    pub(crate) fn append_one(
        &self,
        log: &mut Log,
        kind: RecordKind,
        payload: &[u8],
    ) -> Result<(Pos, u32)> {
        let mut b = RecordBatch::new();
        b.push(kind, payload);
        let pos = self.append(log, &mut b)?[0];
        Ok((pos, (RECORD_HEADER_LEN + payload.len()) as u32))
    }

    /// Appends a blob record and returns the index entry that points at it.
    pub(crate) fn write_blob_record(&self, log: &mut Log, m: BlobRecord) -> Result<BlobEntry> {
        let payload = encode_payload(&m);
        if payload.len() > self.cfg.max_blob_record() {
            return Err(StoreError::ObjectTooLarge {
                max: self.cfg.max_object_size(),
            });
        }
        let (manifest, manifest_len) = self.append_one(log, RecordKind::Blob, &payload)?;
        Ok(BlobEntry {
            len: m.len,
            chunk_size: m.chunk_size,
            runs: m.runs,
            manifest,
            manifest_len,
        })
    }

    /// Whether a blob's bytes sit in the older half of the segments, where reclaim will
    /// reach them soon: a fresh duplicate is then kept instead, so that popular content
    /// does not die with the oldest segment.
    pub(crate) fn is_in_old_segment(&self, b: &BlobEntry) -> bool {
        let Some(first) = b.runs.iter().map(|r| r.segment).min() else {
            return false;
        };
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        let older = segs.range(..first).count();
        segs.len() >= 2 && older < segs.len() / 2
    }

    /// Removes the objects still using one of `dropped` (blobs whose entries were dropped
    /// while other keys shared them). Scans the directory without the log lock, then takes
    /// it once to remove what it found, each only if its version is still the one seen.
    pub(crate) fn remove_sharers(&self, dropped: &HashSet<[u8; 32]>) -> Result<u64> {
        let found = self.index.objects_using(dropped);
        if found.is_empty() {
            return Ok(0);
        }
        let _log = self.lock_log();
        self.remove_sharers_locked(found)
    }

    fn remove_sharers_locked(&self, found: Vec<(ObjectId, ObjectEntry)>) -> Result<u64> {
        let mut removed = 0;
        for (id, seen) in found {
            if self.index.remove_seen_version(&id, &seen, &self.counters)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes quarantined objects whose failing version is still current.
    pub(crate) fn drain_quarantine_locked(&self) -> Result<u64> {
        if self.quarantined.load(Ordering::Acquire) == 0 {
            return Ok(0);
        }
        let q: Vec<_> = {
            let mut q = self.quarantine.lock().unwrap_or_else(|e| e.into_inner());
            self.quarantined.store(0, Ordering::Release);
            q.drain().collect()
        };
        let mut removed = 0;
        let mut dropped = HashSet::new();
        for (key, (pos, damaged)) in q {
            if let Some(e) = self.index.get_object(&key)? {
                if e.pos == pos {
                    let after = Pos {
                        segment: pos.segment,
                        offset: pos.offset + 1,
                    };
                    if self
                        .index
                        .remove_object(&key, after, &self.counters)?
                        .is_some()
                    {
                        removed += 1;
                    }
                    // The damage is in the body, which other keys may share: the blob goes
                    // with them, so that a refetch of the same bytes stores a fresh copy
                    // instead of sharing the damaged one.
                    if damaged && self.index.drop_blob_entry(&e.blob, &self.counters)? {
                        dropped.insert(e.blob);
                    }
                }
            }
        }
        // Rare (damage): scanning under the lock keeps this function's contract simple.
        let found = self.index.objects_using(&dropped);
        removed += self.remove_sharers_locked(found)?;
        Ok(removed)
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::KeyTooLarge {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

fn check_record_len(inner: &Inner, len: usize) -> Result<()> {
    let max = inner.cfg.max_object_record();
    if len > max {
        return Err(StoreError::RecordTooLarge { len, max });
    }
    Ok(())
}

pub(crate) fn update_meta(
    inner: &Arc<Inner>,
    key: &[u8],
    meta: Vec<u8>,
    stored_at: SystemTime,
    expires_at: SystemTime,
) -> Result<bool> {
    check_key(key)?;
    let mut log = inner.lock_log();
    let Some(old) = inner.index.get_object(key)? else {
        return Ok(false);
    };
    if inner.is_dead(old.expires_at_ms, inner.now_ms())
        || !inner.index.has_blob(&old.blob)
        || inner.invalidated_by_pending(key, old.pos)
    {
        // Past its grace period, or its body was dropped with another key that shared it:
        // as absent as it is to lookups. Or an invalidation under way is removing it: a new
        // record after its tombstone would escape it.
        return Ok(false);
    }
    let old_record = match inner.index.object_record(Some(key), &old) {
        Ok(r) => r,
        Err(why) => {
            // Its record is damaged or gone: the object is as good as absent.
            tracing::warn!(key = %String::from_utf8_lossy(key), %why, "cannot update an object whose record is unreadable");
            return Ok(false);
        }
    };
    let record = ObjectRecord {
        key: key.to_vec(),
        distribution: old_record.distribution,
        tags: old_record.tags,
        meta,
        stored_at_ms: to_ms(stored_at),
        expires_at_ms: to_ms(expires_at),
        blob: old.blob,
        body_len: old.body_len,
    };
    let payload = encode_payload(&record);
    check_record_len(inner, payload.len())?;
    let (pos, record_len) = inner.append_one(&mut log, RecordKind::Object, &payload)?;
    let entry = ObjectEntry {
        pos,
        record_len,
        stored_at_ms: record.stored_at_ms,
        expires_at_ms: record.expires_at_ms,
        blob: record.blob,
        body_len: record.body_len,
    };
    inner.index.put_object(key, &entry, &inner.counters)?;
    Ok(true)
}

pub(crate) fn remove(inner: &Arc<Inner>, key: &[u8]) -> Result<bool> {
    check_key(key)?;
    let mut log = inner.lock_log();
    // Written even when the key is absent: an old record of it may still be in a segment.
    let payload = encode_payload(&TombstoneRecord::Key(key.to_vec()));
    let (pos, _) = inner.append_one(&mut log, RecordKind::Tombstone, &payload)?;
    let now = inner.now_ms();
    // An object past its grace period is already absent to lookups: removing it is
    // housekeeping, not a removal to report.
    Ok(inner
        .index
        .remove_object(key, pos, &inner.counters)?
        .is_some_and(|old| !inner.is_dead(old.expires_at_ms, now)))
}

pub(crate) fn remove_prefix(inner: &Arc<Inner>, prefix: &[u8]) -> Result<u64> {
    check_key(prefix)?;
    let tomb = {
        let mut log = inner.lock_log();
        let payload = encode_payload(&TombstoneRecord::Prefix(prefix.to_vec()));
        let (pos, _) = inner.append_one(&mut log, RecordKind::Tombstone, &payload)?;
        // Until every matching key is gone, checkpoints must not move past the tombstone,
        // or a crash now would leave the rest in place after replay.
        inner
            .pending_tombstones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((pos, prefix.to_vec()));
        pos
    };
    let result = (|| -> Result<u64> {
        // The directory is keyed by hash: every object's record is read to see its key.
        let mut removed = 0;
        let mut cursor = Some(ScanCursor::default());
        while let Some(c) = cursor {
            let (page, next) = inner.index.objects_page(c, REMOVE_BATCH);
            cursor = next;
            let matching: Vec<ObjectId> = page
                .iter()
                .filter(|(_, e)| {
                    inner
                        .index
                        .object_record(None, e)
                        .is_ok_and(|o| o.key.starts_with(prefix))
                })
                .map(|(id, _)| *id)
                .collect();
            let _log = inner.lock_log();
            let now = inner.now_ms();
            for id in &matching {
                if let Some(old) =
                    inner
                        .index
                        .remove_object_id(id, tomb, &inner.counters, BlobRelease::Now)?
                {
                    if !inner.is_dead(old.expires_at_ms, now) {
                        removed += 1;
                    }
                }
            }
        }
        Ok(removed)
    })();
    inner
        .pending_tombstones
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| *p != tomb);
    result
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use crate::store::index::Pos;
    use crate::store::{ObjectSpec, Store, StoreConfig, MIB};

    fn spec(key: &str) -> ObjectSpec {
        let now = SystemTime::now();
        ObjectSpec {
            key: key.as_bytes().to_vec(),
            distribution: "E1".into(),
            tags: vec![],
            meta: b"m1".to_vec(),
            stored_at: now,
            expires_at: now + Duration::from_secs(3600),
        }
    }

    /// A 304 refresh racing a prefix invalidation must not write a record after its
    /// tombstone (the object would escape the invalidation, also after a rebuild).
    #[test]
    fn update_meta_refuses_a_version_an_invalidation_under_way_is_removing() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(d.path(), 64 * MIB);
        cfg.segment_size = MIB;
        cfg.background_interval = None;
        cfg.min_free_disk = 0;
        let store = Store::open(cfg).unwrap();
        for k in ["a/1", "b/1"] {
            store.insert(spec(k), b"body").unwrap();
        }
        let later = SystemTime::now() + Duration::from_secs(7200);
        let update = |k: &str| store.update_meta(k.as_bytes(), b"m2".to_vec(), later, later);
        // As `remove_prefix` does between writing its tombstone and finishing its scan.
        let tomb = Pos {
            segment: u64::MAX,
            offset: 0,
        };
        let pending = || store.inner.pending_tombstones.lock().unwrap();
        pending().push((tomb, b"a/".to_vec()));
        assert!(!update("a/1").unwrap(), "a/1 is being invalidated");
        assert!(update("b/1").unwrap(), "b/1 is outside the prefix");
        pending().clear();
        assert!(update("a/1").unwrap(), "no invalidation under way any more");
    }
}
