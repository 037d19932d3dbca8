//! Appending records: the active segment, its write position, fallocate ahead of writes,
//! admission against capacity and free disk space, and rotation to a new segment.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::store::batch::RecordBatch;
use crate::store::config::{FsyncPolicy, MIB};
use crate::store::error::{Result, StoreError};
use crate::store::index::Pos;
use crate::store::record::{Run, CHUNK_SIZE, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::store::segment::Segment;
use crate::store::Inner;

/// Files grow by this much at a time (or the segment size, if smaller).
const GROW_STEP: u64 = 4 * MIB;

/// The active segment and where the next record goes. There is no active segment until
/// the first write after opening (so that opening a cache to inspect it writes no file).
#[derive(Debug)]
pub struct Log {
    pub active: Option<Arc<Segment>>,
    pub write_pos: u64,
    pub next_segment: u64,
}

impl Log {
    /// Where the next record will be written (every record written so far is before it).
    pub fn position(&self) -> Pos {
        match &self.active {
            Some(a) => Pos {
                segment: a.id,
                offset: self.write_pos,
            },
            None => Pos {
                segment: self.next_segment,
                offset: 0,
            },
        }
    }

    pub fn active_id(&self) -> Option<u64> {
        self.active.as_ref().map(|a| a.id)
    }
}

impl Inner {
    /// Appends the records staged in `batch`, in order, rotating to a new segment when one
    /// does not fit. Returns each record's position. Must be called with the log locked.
    pub(crate) fn append(&self, log: &mut Log, batch: &mut RecordBatch) -> Result<Vec<Pos>> {
        let mut positions = Vec::with_capacity(batch.len());
        if log.active.is_none() && !batch.recs.is_empty() {
            self.rotate(log)?;
        }
        let mut i = 0;
        while i < batch.recs.len() {
            // Gather the records that fit in the active segment from here.
            let group_start = batch.recs[i].0;
            let mut end = log.write_pos;
            let mut j = i;
            while j < batch.recs.len() {
                let len = batch.record_len(j) as u64;
                if end + len > self.cfg.segment_size {
                    break;
                }
                end += len;
                j += 1;
            }
            if j == i {
                let len = batch.record_len(i) as u64;
                if SEGMENT_HEADER_LEN as u64 + len > self.cfg.segment_size {
                    return Err(StoreError::RecordTooLarge {
                        len: len as usize,
                        max: self.cfg.segment_size as usize - SEGMENT_HEADER_LEN,
                    });
                }
                self.rotate(log)?;
                continue;
            }
            self.ensure_allocated(log, end)?;
            let seg = log.active.clone().expect("rotated above");
            let mut off = log.write_pos;
            for k in i..j {
                let (start, header) = batch.recs[k];
                let h = header.encode(self.dir.salt, seg.id, off);
                batch.buf[start..start + RECORD_HEADER_LEN].copy_from_slice(&h);
                positions.push(Pos {
                    segment: seg.id,
                    offset: off,
                });
                off += batch.record_len(k) as u64;
            }
            let group_end = if j < batch.recs.len() {
                batch.recs[j].0
            } else {
                batch.buf.len()
            };
            seg.write_at(&batch.buf[group_start..group_end], log.write_pos)?;
            log.write_pos = end;
            i = j;
        }
        if self.cfg.fsync == FsyncPolicy::Commit {
            if let Some(a) = &log.active {
                a.sync()?;
            }
        }
        Ok(positions)
    }

    /// Allocates the active segment up to `end`, checking capacity and free disk space.
    fn ensure_allocated(&self, log: &mut Log, end: u64) -> Result<()> {
        let seg = log.active.as_ref().expect("active segment");
        let have = seg.allocated();
        if end <= have {
            return Ok(());
        }
        let want = end.div_ceil(GROW_STEP) * GROW_STEP;
        let want = want.min(self.cfg.segment_size).max(end);
        self.admit(want - have)?;
        seg.grow_to(want)?;
        self.bytes_on_disk.fetch_add(want - have, Ordering::Relaxed);
        Ok(())
    }

    /// Refuses growth that would take the store over capacity or the disk under its
    /// reserve. Wakes the sweeper either way when space is short.
    fn admit(&self, growth: u64) -> Result<()> {
        let on_disk = self.bytes_on_disk.load(Ordering::Relaxed);
        if on_disk + growth > self.cfg.capacity {
            self.events
                .over_capacity_refusals
                .fetch_add(1, Ordering::Relaxed);
            self.wake.wake();
            return Err(StoreError::OverCapacity {
                on_disk,
                capacity: self.cfg.capacity,
            });
        }
        if on_disk + growth + self.cfg.segment_size > self.cfg.capacity {
            self.wake.wake();
        }
        if let Ok(st) = rustix::fs::statvfs(&self.seg_dir) {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            if free < growth.saturating_add(self.cfg.min_free_disk) {
                self.events
                    .disk_full_refusals
                    .fetch_add(1, Ordering::Relaxed);
                self.wake.wake();
                return Err(StoreError::DiskFull {
                    dir: self.dir.root.clone(),
                    free,
                    reserve: self.cfg.min_free_disk,
                });
            }
        }
        Ok(())
    }

    /// Seals the active segment and starts the next one.
    pub(crate) fn rotate(&self, log: &mut Log) -> Result<()> {
        let id = log.next_segment;
        let initial = GROW_STEP.min(self.cfg.segment_size);
        self.admit(initial)?;
        let seg = Arc::new(Segment::create(
            &self.seg_dir,
            id,
            self.dir.salt,
            self.now_ms(),
            initial,
            self.cfg.segment_size,
        )?);
        self.bytes_on_disk
            .fetch_add(seg.allocated(), Ordering::Relaxed);
        if self.cfg.fsync != FsyncPolicy::Never {
            // Header and name durable before anything can point into the file: a segment
            // lost to a power cut must not have its id handed out again.
            seg.sync()?;
            sync_dir(&self.seg_dir)?;
        }
        if let Some(old) = log.active.replace(seg.clone()) {
            old.seal();
            if self.cfg.fsync != FsyncPolicy::Never {
                old.sync()?;
            }
            self.index.put_segment(old.id, &old.entry())?;
        }
        self.index.put_segment(id, &seg.entry())?;
        self.segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, seg);
        log.write_pos = SEGMENT_HEADER_LEN as u64;
        log.next_segment = id + 1;
        self.wake.wake();
        Ok(())
    }
}

/// Groups consecutive extent positions into runs (extents written back to back in one
/// segment form one run).
pub(crate) fn runs_from(positions: &[Pos], lens: &[u32], runs: &mut Vec<Run>) {
    for (p, &len) in positions.iter().zip(lens) {
        if let Some(last) = runs.last_mut() {
            let chunks = last.len.div_ceil(CHUNK_SIZE as u64);
            let next = last.offset + chunks * RECORD_HEADER_LEN as u64 + last.len;
            if last.segment == p.segment && next == p.offset && last.len % CHUNK_SIZE as u64 == 0 {
                last.len += len as u64;
                continue;
            }
        }
        runs.push(Run {
            segment: p.segment,
            offset: p.offset,
            len: len as u64,
        });
    }
}

pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_only_back_to_back_full_chunks() {
        let step = RECORD_HEADER_LEN as u64 + CHUNK_SIZE as u64;
        let p = |s, o| Pos {
            segment: s,
            offset: o,
        };
        let mut runs = Vec::new();
        runs_from(
            &[p(1, 64), p(1, 64 + step), p(1, 64 + 3 * step), p(2, 64)],
            &[CHUNK_SIZE, CHUNK_SIZE, 10, 5],
            &mut runs,
        );
        assert_eq!(
            runs,
            vec![
                Run {
                    segment: 1,
                    offset: 64,
                    len: 2 * CHUNK_SIZE as u64
                },
                Run {
                    segment: 1,
                    offset: 64 + 3 * step,
                    len: 10
                },
                Run {
                    segment: 2,
                    offset: 64,
                    len: 5
                },
            ]
        );
        // A short chunk ends a run even if the next extent happens to follow it.
        let mut runs = Vec::new();
        runs_from(
            &[p(1, 64), p(1, 64 + RECORD_HEADER_LEN as u64 + 10)],
            &[10, 10],
            &mut runs,
        );
        assert_eq!(runs.len(), 2);
    }
}
