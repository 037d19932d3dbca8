//! Segment files lost while the store runs: deleted, replaced or truncated by someone else.
//! Each maintenance pass fstat()s every open segment and stat()s its path (two system calls
//! per segment); a segment that is no longer the file we opened, or is shorter than what we
//! allocated, leaves the store: its index entries are dropped (its objects become misses,
//! refetched by the edge), its tombstones are copied forward when its bytes are still
//! readable, and if it was the active segment the next write starts a new one.
//!
//! Detection narrows, but cannot close, the window in which a reader of a segment that
//! someone truncates touches a page past the new end of file and gets SIGBUS (see
//! storage-format.md, "Faults from outside the process").

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::store::error::Result;
use crate::store::record::{RecordKind, WalkItem, Walker, SEGMENT_HEADER_LEN};
use crate::store::segment::Segment;
use crate::store::Inner;

/// Why a segment file is no longer usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loss {
    /// The file has no name any more (st_nlink is 0).
    Unlinked,
    /// Its path names nothing.
    Missing,
    /// Its path names another file.
    Replaced,
    /// The file is shorter than the bytes allocated (and mapped) for it.
    Truncated { len: u64 },
}

impl Loss {
    pub fn as_str(self) -> &'static str {
        match self {
            Loss::Unlinked => "unlinked",
            Loss::Missing => "missing",
            Loss::Replaced => "replaced by another file",
            Loss::Truncated { .. } => "truncated",
        }
    }

    /// Whether the bytes we allocated can still be read through the mapping (the inode we
    /// hold is intact; only its name changed).
    fn bytes_readable(self) -> bool {
        !matches!(self, Loss::Truncated { .. })
    }
}

/// Checks that `seg` is still the file it was opened as, at its full length. `None` when it
/// is, or when the check itself cannot be made (then nothing is concluded).
pub(crate) fn check(seg: &Segment) -> Option<Loss> {
    // Read before the fstat: the allocated length is published only after fallocate has
    // grown the file, so a file still at least this long has not been cut, even if a
    // write grows it meanwhile.
    let allocated = seg.allocated();
    let held = seg.file_metadata().ok()?;
    if held.len() < allocated {
        return Some(Loss::Truncated { len: held.len() });
    }
    if held.nlink() == 0 {
        return Some(Loss::Unlinked);
    }
    match std::fs::metadata(seg.path()) {
        Ok(named) if named.ino() != held.ino() || named.dev() != held.dev() => Some(Loss::Replaced),
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Loss::Missing),
        Err(_) => None,
    }
}

impl Inner {
    /// Checks every segment file and removes the lost ones from the store. Returns how many
    /// were lost in this pass.
    pub(crate) fn check_segment_files(&self) -> Result<u64> {
        let segs: Vec<Arc<Segment>> = self
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut lost = 0;
        for seg in segs {
            if let Some(loss) = check(&seg) {
                self.drop_lost_segment(&seg, loss)?;
                lost += 1;
            }
        }
        Ok(lost)
    }

    /// Takes a lost segment out of the store. Called once per segment: the first step
    /// removes it from the segment map, which is what the detection walks.
    fn drop_lost_segment(&self, seg: &Arc<Segment>, loss: Loss) -> Result<()> {
        let id = seg.id;
        // 1. Out of the map (no lookup resolves into it, no commit or copy-forward may refer
        //    to it) and, if it was being appended to, no longer the active segment: the next
        //    write rotates to a new file instead of writing into a lost one.
        let was_active = {
            let mut log = self.lock_log();
            let removed = self
                .segments
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id)
                .is_some();
            if !removed {
                return Ok(());
            }
            let active = log.active_id() == Some(id);
            if active {
                log.active = None;
                log.write_pos = SEGMENT_HEADER_LEN as u64;
            }
            active
        };
        let len = seg.allocated();
        let _ = self
            .bytes_on_disk
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(len))
            });
        self.events.lost_segments.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            segment = id,
            file = %seg.path().display(),
            reason = loss.as_str(),
            active = was_active,
            "segment file lost while the cache was running; dropping the objects stored in it \
             (they will be fetched again)"
        );

        // 2. What points into it: found by scanning the index (the file may be unreadable),
        //    outside the log lock since nothing new can come to depend on it now.
        let (keys, hashes) = self.index.entries_needing_segment(id)?;
        // 3. Its tombstones, while their bytes can still be read: a rebuild must not bring
        //    back what they removed from older segments.
        let tombstones = if loss.bytes_readable() {
            tombstone_payloads(self, seg)
        } else {
            Vec::new()
        };
        let dropped = {
            let mut log = self.lock_log();
            for payload in &tombstones {
                if let Err(e) = self.append_one(&mut log, RecordKind::Tombstone, payload) {
                    tracing::error!(segment = id, error = %e, "could not copy a tombstone out of a lost segment; a later index rebuild may bring back objects it removed");
                    break;
                }
            }
            let mut hashes = hashes;
            hashes.extend(self.index.segment_blob_hints(id)?);
            let dropped = self.drop_entries_in_segment(id, &keys, &hashes)?;
            self.index.remove_segment(id)?;
            dropped
        };
        self.index.flush()?;
        // A truncated file still has our name: nothing may use it again (index entries are
        // gone and flushed first, as for a reclaim). Unlinking never faults a mapping.
        if matches!(loss, Loss::Truncated { .. }) {
            if let Err(e) = std::fs::remove_file(seg.path()) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %seg.path().display(), error = %e, "could not remove a truncated segment file");
                }
            }
        }
        tracing::info!(
            segment = id,
            dropped_objects = dropped,
            copied_tombstones = tombstones.len(),
            "lost segment removed from the cache index"
        );
        Ok(())
    }
}

/// The payloads of the tombstones in `seg`, read through its mapping (only up to the
/// allocated length, which the caller has checked the file still has).
fn tombstone_payloads(inner: &Inner, seg: &Segment) -> Vec<Vec<u8>> {
    let Ok(map) = seg.bytes() else {
        return Vec::new();
    };
    let readable = seg.allocated().min(map.len() as u64) as usize;
    let walker = Walker::new(
        &map[..readable],
        inner.dir.salt,
        seg.id,
        SEGMENT_HEADER_LEN as u64,
    )
    .skip_extent_checks();
    walker
        .filter_map(|item| match item {
            WalkItem::Record(r) if r.header.kind == RecordKind::Tombstone => {
                Some(r.payload.to_vec())
            }
            _ => None,
        })
        .collect()
}
