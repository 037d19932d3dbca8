//! `cache-inspect verify`: a full check of a cache directory against storage-format.md.
//!
//! Two passes, memory bounded by the index's size (a few words per blob run), never by
//! body bytes: one record or one extent is in hand at a time.
//!
//! 1. **Index**: every blob's runs must point at extent records of the right lengths whose
//!    crc32 holds, its bytes (streamed through blake3 extent by extent) must hash to its
//!    address, and its blob record must be intact; every object's record must be intact
//!    and its blob present, sound and of its length; each blob's reference count must
//!    equal the number of objects using it.
//! 2. **Segments**: every record of every segment is walked ([`Walker`]): header crc
//!    (bound to cache, segment and offset), payload crc32 and blake3. Damaged records the
//!    index still points at are *live* damage; the rest are dead space. Extent and blob
//!    records no index entry refers to are reported as orphans (reclaimable dead space).
//!
//! `repair` (offline) removes every dangling object with [`Store::remove`] (a durable
//! tombstone), drops broken blobs and fixes reference counts, so nothing broken is served.
//! Damaged records stay where they are as dead space: segments are never rewritten.

use std::collections::{HashMap, HashSet};

use crate::store::directory::{ObjectId, ScanCursor};
use crate::store::error::Result;
use crate::store::index::{BlobEntry, BlobRelease, Pos};
use crate::store::record::{
    check_extent, check_payload, decode_payload, ObjectRecord, RecordHeader, RecordKind, WalkEnd,
    WalkItem, Walker, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use crate::store::segment::Segment;
use crate::store::{writer, Store};

/// Entries fetched from the index per page.
const PAGE: usize = 512;
/// How often (in walked bytes) progress is reported within a segment.
const PROGRESS_STEP: u64 = 4 << 20;

/// Which pass a progress report belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyPhase {
    /// Checking index entries: `done`/`total` count blobs, then objects.
    Index,
    /// Walking segment records: `done`/`total` count bytes.
    Segments,
}

impl VerifyPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyPhase::Index => "index",
            VerifyPhase::Segments => "segments",
        }
    }
}

/// Where verification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProgress {
    pub phase: VerifyPhase,
    pub done: u64,
    pub total: u64,
    /// The segment being walked (segments phase).
    pub segment: Option<u64>,
}

/// A record in a segment that fails its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRecord {
    pub segment: u64,
    pub offset: u64,
    /// The record's kind when its header is sound.
    pub kind: Option<RecordKind>,
    pub reason: String,
    /// The header itself is bad: the walk of this segment stopped here and the
    /// `unreachable_bytes` after it cannot be located by a rebuild.
    pub header: bool,
    pub unreachable_bytes: u64,
    /// The index points at this record (an object or blob depends on it). Damage that
    /// nothing points at is dead space and only reported.
    pub live: bool,
}

/// What a dangling entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Object,
    Blob,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Object => "object",
            EntryKind::Blob => "blob",
        }
    }
}

/// An index entry that cannot be served correctly: an object whose record or blob is
/// missing or damaged, or a blob whose runs are broken or whose bytes do not hash to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dangling {
    pub kind: EntryKind,
    /// The object's key (objects).
    pub key: Option<Vec<u8>>,
    /// The blob (blobs; for objects the blob they use, when known).
    pub blob: Option<[u8; 32]>,
    /// Where the damage was found, when it is in a segment.
    pub segment: Option<u64>,
    pub offset: Option<u64>,
    pub reason: String,
    /// Removed by `--repair`.
    pub repaired: bool,
}

/// A blob whose reference count disagrees with the objects that use it (or that nothing
/// uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefMismatch {
    pub blob: [u8; 32],
    /// The count the directory holds.
    pub declared: u32,
    /// Objects found using it.
    pub used: u32,
    pub reason: String,
    pub repaired: bool,
}

/// One segment as the walk found it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentCheck {
    pub id: u64,
    pub bytes: u64,
    /// Where the written records end.
    pub end_offset: u64,
    /// How the walk ended: `end`, `unwritten`, `bad-header`.
    pub end: &'static str,
    pub records: u64,
    pub extent_records: u64,
    pub blob_records: u64,
    pub object_records: u64,
    pub tombstone_records: u64,
    pub corrupt_records: u64,
    pub orphan_records: u64,
    pub orphan_bytes: u64,
}

/// Everything `verify` found (and repaired).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    pub segments: Vec<SegmentCheck>,
    /// Records walked (sound or not).
    pub records_checked: u64,
    /// Segment bytes walked.
    pub bytes_checked: u64,
    pub corrupt_records: Vec<CorruptRecord>,
    /// Extent records no blob refers to, and their bytes (headers included).
    pub orphan_extent_records: u64,
    pub orphan_extent_bytes: u64,
    /// Blob records that are not the current placement of any blob.
    pub orphan_blob_records: u64,
    pub orphan_blob_bytes: u64,
    pub objects_checked: u64,
    pub blobs_checked: u64,
    /// Body bytes streamed through blake3.
    pub blob_bytes_hashed: u64,
    pub dangling: Vec<Dangling>,
    /// Objects whose blob was dropped while another key shared it (reclaimed, or damaged
    /// under that key): misses until the sweeper's scan removes them; not damage.
    pub blobless_objects: u64,
    pub ref_mismatches: Vec<RefMismatch>,
    /// Whether this run repaired what it found.
    pub repair: bool,
    pub removed_objects: u64,
    pub dropped_blobs: u64,
    pub fixed_refs: u64,
}

impl VerifyReport {
    /// Damaged records an index entry depends on.
    pub fn live_corrupt_records(&self) -> usize {
        self.corrupt_records.iter().filter(|r| r.live).count()
    }

    /// Nothing is corrupt or dangling (damage in dead space does not count: it is never
    /// read and is reclaimed with its segment).
    pub fn is_clean(&self) -> bool {
        self.live_corrupt_records() == 0
            && self.dangling.is_empty()
            && self.ref_mismatches.is_empty()
    }

    pub fn dangling_objects(&self) -> usize {
        self.dangling
            .iter()
            .filter(|d| d.kind == EntryKind::Object)
            .count()
    }

    pub fn dangling_blobs(&self) -> usize {
        self.dangling
            .iter()
            .filter(|d| d.kind == EntryKind::Blob)
            .count()
    }
}

/// Where one run lies in its segment, for classifying walked records.
#[derive(Debug, Clone, Copy)]
struct RunSpan {
    start: u64,
    end: u64,
    step: u64,
}

/// What the index refers to, per segment: extent runs, blob records, object records.
#[derive(Default)]
struct References {
    runs: HashMap<u64, Vec<RunSpan>>,
    manifests: HashSet<Pos>,
    objects: HashSet<Pos>,
}

impl References {
    fn sort(&mut self) {
        for v in self.runs.values_mut() {
            v.sort_unstable_by_key(|r| r.start);
        }
    }

    fn is_extent(&self, segment: u64, offset: u64) -> bool {
        let Some(v) = self.runs.get(&segment) else {
            return false;
        };
        let i = v.partition_point(|r| r.start <= offset);
        // Runs of different blobs never overlap, but look back a little in case a
        // damaged index makes them.
        v[..i]
            .iter()
            .rev()
            .take(4)
            .any(|r| offset < r.end && (offset - r.start).is_multiple_of(r.step))
    }

    fn is_live(&self, segment: u64, offset: u64) -> bool {
        let p = Pos { segment, offset };
        self.manifests.contains(&p) || self.objects.contains(&p) || self.is_extent(segment, offset)
    }
}

/// Why a blob cannot be served: the failing place and the reason.
type BlobFault = (Option<u64>, Option<u64>, String);

/// A blob's reference count and the objects found using it.
#[derive(Debug, Default, Clone, Copy)]
struct RefCount {
    declared: u32,
    used: u32,
}

/// An object `repair` removes (its key when its record is readable).
struct BadObject {
    id: ObjectId,
    key: Option<Vec<u8>>,
    blob: [u8; 32],
}

impl Store {
    /// Checks every record of every segment and every index entry; with `repair`, removes
    /// what cannot be served. See the module documentation. Meant for a store opened
    /// offline (no background thread, nothing else writing).
    pub fn verify(
        &self,
        repair: bool,
        progress: &mut dyn FnMut(VerifyProgress),
    ) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            repair,
            ..Default::default()
        };
        let mut refs = References::default();
        let mut counts: HashMap<[u8; 32], RefCount> = HashMap::new();
        let bad_blobs = self.verify_blobs(&mut report, &mut refs, &mut counts, progress)?;
        let bad_objects =
            self.verify_objects(&mut report, &mut refs, &bad_blobs, &mut counts, progress)?;
        // Reference counts: each blob's must equal the objects that use it.
        for (hash, c) in &counts {
            if c.declared != c.used {
                report.ref_mismatches.push(RefMismatch {
                    blob: *hash,
                    declared: c.declared,
                    used: c.used,
                    reason: if c.used == 0 {
                        "no object refers to this blob (it should have been freed)".into()
                    } else {
                        format!(
                            "reference count is {}, {} objects use the blob",
                            c.declared, c.used
                        )
                    },
                    repaired: false,
                });
            }
        }
        report.ref_mismatches.sort_by_key(|m| m.blob);
        refs.sort();
        self.verify_segments(&mut report, &refs, progress)?;
        if repair {
            self.repair(&mut report, &bad_blobs, &bad_objects)?;
        }
        Ok(report)
    }

    fn verify_blobs(
        &self,
        report: &mut VerifyReport,
        refs: &mut References,
        counts: &mut HashMap<[u8; 32], RefCount>,
        progress: &mut dyn FnMut(VerifyProgress),
    ) -> Result<HashMap<[u8; 32], BlobFault>> {
        let inner = &self.inner;
        let total = inner.counters.load().blobs;
        let mut bad: HashMap<[u8; 32], BlobFault> = HashMap::new();
        let mut cursor = Some(ScanCursor::default());
        while let Some(c) = cursor {
            let (page, next) = inner.index.blobs_page(c, PAGE);
            cursor = next;
            for (slot, entry) in page {
                report.blobs_checked += 1;
                let hash = slot.hash;
                counts.entry(hash).or_default().declared = slot.refs;
                refs.manifests.insert(slot.manifest);
                let fault = match entry {
                    None => Some((
                        Some(slot.manifest.segment),
                        Some(slot.manifest.offset),
                        "its blob record (listing its runs) is unreadable".to_string(),
                    )),
                    Some(b) => {
                        let f = self.check_blob(&hash, &b, report);
                        let step = RECORD_HEADER_LEN as u64 + b.chunk_size.max(1) as u64;
                        for r in &b.runs {
                            refs.runs.entry(r.segment).or_default().push(RunSpan {
                                start: r.offset,
                                end: r.offset.saturating_add(r.disk_len(b.chunk_size)),
                                step,
                            });
                        }
                        f
                    }
                };
                if let Some((segment, offset, reason)) = fault {
                    report.dangling.push(Dangling {
                        kind: EntryKind::Blob,
                        key: None,
                        blob: Some(hash),
                        segment,
                        offset,
                        reason: reason.clone(),
                        repaired: false,
                    });
                    bad.insert(hash, (segment, offset, reason));
                }
                progress(VerifyProgress {
                    phase: VerifyPhase::Index,
                    done: report.blobs_checked,
                    total: total.max(report.blobs_checked),
                    segment: None,
                });
            }
        }
        Ok(bad)
    }

    /// Checks one blob: placement well formed, blob record intact, every extent sound and
    /// of its length, the whole body hashing to its address.
    fn check_blob(
        &self,
        hash: &[u8; 32],
        b: &BlobEntry,
        report: &mut VerifyReport,
    ) -> Option<BlobFault> {
        let inner = &self.inner;
        if let Err(e) = b.validate() {
            return Some((None, None, format!("blob entry is malformed: {e}")));
        }
        if let Err(why) = self.check_record_at(b.manifest, RecordKind::Blob, None) {
            return Some((
                Some(b.manifest.segment),
                Some(b.manifest.offset),
                format!("blob record: {why}"),
            ));
        }
        let mut hasher = blake3::Hasher::new();
        for run in &b.runs {
            let Some(seg) = inner.segment(run.segment) else {
                return Some((
                    Some(run.segment),
                    Some(run.offset),
                    "run points into a missing segment".into(),
                ));
            };
            let map = match seg.bytes() {
                Ok(m) => m,
                Err(e) => return Some((Some(run.segment), None, e.to_string())),
            };
            let readable = seg.allocated().min(map.len() as u64) as usize;
            for (offset, len) in run.extents(b.chunk_size) {
                match check_extent(&map[..readable], inner.dir.salt, seg.id, offset, len) {
                    Ok(range) => {
                        hasher.update(&map[range]);
                        report.blob_bytes_hashed += len as u64;
                    }
                    Err(e) => {
                        return Some((Some(seg.id), Some(offset), format!("extent record: {e}")))
                    }
                }
            }
        }
        if hasher.finalize().as_bytes() != hash {
            return Some((
                None,
                None,
                "body bytes do not hash to the blob's address".into(),
            ));
        }
        None
    }

    /// Checks the record at `pos`: header (at its place), kind, length, both payload
    /// checksums; for objects, that it names `key`.
    fn check_record_at(
        &self,
        pos: Pos,
        kind: RecordKind,
        expect: Option<(&[u8], u32)>,
    ) -> std::result::Result<(), String> {
        let inner = &self.inner;
        let seg = inner
            .segment(pos.segment)
            .ok_or_else(|| format!("segment {} is missing", pos.segment))?;
        let map = seg.bytes().map_err(|e| e.to_string())?;
        let readable = seg.allocated().min(map.len() as u64);
        let start = pos.offset;
        let hend = start
            .checked_add(RECORD_HEADER_LEN as u64)
            .filter(|&e| e <= readable)
            .ok_or("record lies beyond the end of its segment")?;
        let header = RecordHeader::decode(
            &map[start as usize..hend as usize],
            inner.dir.salt,
            seg.id,
            pos.offset,
        )
        .map_err(|e| format!("header: {e}"))?;
        if header.kind != kind {
            return Err(format!(
                "expected a {} record, found a {} record",
                kind.as_str(),
                header.kind.as_str()
            ));
        }
        let end = hend
            .checked_add(header.payload_len as u64)
            .filter(|&e| e <= readable)
            .ok_or("payload lies beyond the end of its segment")?;
        let payload = &map[hend as usize..end as usize];
        check_payload(&header, payload).map_err(|e| e.to_string())?;
        if let Some((key, record_len)) = expect {
            if header.record_len() != record_len as u64 {
                return Err(format!(
                    "record is {} bytes, the index says {record_len}",
                    header.record_len()
                ));
            }
            match decode_payload::<ObjectRecord>(payload) {
                Ok(o) if o.key == key => {}
                Ok(_) => return Err("object record is for another key".into()),
                Err(e) => return Err(format!("object record does not decode: {e}")),
            }
        }
        Ok(())
    }

    fn verify_objects(
        &self,
        report: &mut VerifyReport,
        refs: &mut References,
        bad_blobs: &HashMap<[u8; 32], BlobFault>,
        counts: &mut HashMap<[u8; 32], RefCount>,
        progress: &mut dyn FnMut(VerifyProgress),
    ) -> Result<Vec<BadObject>> {
        let inner = &self.inner;
        let total = inner.counters.load().objects;
        let mut bad = Vec::new();
        let mut cursor = Some(ScanCursor::default());
        while let Some(c) = cursor {
            let (page, next) = inner.index.objects_page(c, PAGE);
            cursor = next;
            for (id, o) in page {
                report.objects_checked += 1;
                refs.objects.insert(o.pos);
                if let Some(c) = counts.get_mut(&o.blob) {
                    c.used += 1;
                }
                let mut key = None;
                let fault: Option<BlobFault> = match inner.index.object_record(None, &o) {
                    Err(why) => Some((
                        Some(o.pos.segment),
                        Some(o.pos.offset),
                        format!("object record: {why}"),
                    )),
                    Ok(r) if inner.index.object_id(&r.key) != id => {
                        key = Some(r.key);
                        Some((
                            Some(o.pos.segment),
                            Some(o.pos.offset),
                            "object record is for another key".into(),
                        ))
                    }
                    Ok(r) => {
                        key = Some(r.key);
                        if let Some((s, off, why)) = bad_blobs.get(&o.blob) {
                            Some((*s, *off, format!("its blob is broken: {why}")))
                        } else {
                            match inner.index.get_blob(&o.blob)? {
                                None => {
                                    // Its blob was dropped (reclaimed or damaged) while
                                    // another key shared it: the sweeper's scan removes it.
                                    report.blobless_objects += 1;
                                    bad.push(BadObject {
                                        id,
                                        key,
                                        blob: o.blob,
                                    });
                                    continue;
                                }
                                Some(b) if b.len != o.body_len => Some((
                                    None,
                                    None,
                                    format!(
                                        "body length {} but its blob holds {} bytes",
                                        o.body_len, b.len
                                    ),
                                )),
                                Some(_) => None,
                            }
                        }
                    }
                };
                if let Some((segment, offset, reason)) = fault {
                    report.dangling.push(Dangling {
                        kind: EntryKind::Object,
                        key: key.clone(),
                        blob: Some(o.blob),
                        segment,
                        offset,
                        reason,
                        repaired: false,
                    });
                    bad.push(BadObject {
                        id,
                        key,
                        blob: o.blob,
                    });
                }
                progress(VerifyProgress {
                    phase: VerifyPhase::Index,
                    done: report.objects_checked,
                    total: total.max(report.objects_checked),
                    segment: None,
                });
            }
        }
        Ok(bad)
    }

    fn verify_segments(
        &self,
        report: &mut VerifyReport,
        refs: &References,
        progress: &mut dyn FnMut(VerifyProgress),
    ) -> Result<()> {
        let segs: Vec<std::sync::Arc<Segment>> = self
            .inner
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let total: u64 = segs.iter().map(|s| s.allocated()).sum();
        let mut base = 0u64;
        for seg in segs {
            let check = self.walk_segment(&seg, report, refs, &mut |done| {
                progress(VerifyProgress {
                    phase: VerifyPhase::Segments,
                    done: base + done,
                    total,
                    segment: Some(seg.id),
                })
            })?;
            base += seg.allocated();
            report.bytes_checked += check.end_offset;
            report.segments.push(check);
            progress(VerifyProgress {
                phase: VerifyPhase::Segments,
                done: base,
                total,
                segment: Some(seg.id),
            });
        }
        Ok(())
    }

    fn walk_segment(
        &self,
        seg: &Segment,
        report: &mut VerifyReport,
        refs: &References,
        progress: &mut dyn FnMut(u64),
    ) -> Result<SegmentCheck> {
        let map = seg.bytes()?;
        let readable = seg.allocated().min(map.len() as u64);
        let mut check = SegmentCheck {
            id: seg.id,
            bytes: readable,
            ..Default::default()
        };
        let mut walker = Walker::new(
            &map[..readable as usize],
            self.inner.dir.salt,
            seg.id,
            SEGMENT_HEADER_LEN as u64,
        );
        let mut next_report = PROGRESS_STEP;
        for item in walker.by_ref() {
            check.records += 1;
            let (offset, header, error) = match item {
                WalkItem::Record(r) => (r.offset, r.header, None),
                WalkItem::BadPayload {
                    offset,
                    header,
                    error,
                } => (offset, header, Some(error)),
            };
            let len = header.record_len();
            match header.kind {
                RecordKind::Extent => check.extent_records += 1,
                RecordKind::Blob => check.blob_records += 1,
                RecordKind::Object => check.object_records += 1,
                RecordKind::Tombstone => check.tombstone_records += 1,
            }
            let live = refs.is_live(seg.id, offset);
            if let Some(error) = error {
                check.corrupt_records += 1;
                report.corrupt_records.push(CorruptRecord {
                    segment: seg.id,
                    offset,
                    kind: Some(header.kind),
                    reason: error.to_string(),
                    header: false,
                    unreachable_bytes: 0,
                    live,
                });
            } else if !live {
                match header.kind {
                    RecordKind::Extent => {
                        report.orphan_extent_records += 1;
                        report.orphan_extent_bytes += len;
                    }
                    RecordKind::Blob => {
                        report.orphan_blob_records += 1;
                        report.orphan_blob_bytes += len;
                    }
                    _ => continue,
                }
                check.orphan_records += 1;
                check.orphan_bytes += len;
            }
            if offset + len >= next_report {
                next_report = offset + len + PROGRESS_STEP;
                progress(offset + len);
            }
        }
        report.records_checked += check.records;
        match walker.end() {
            Some(WalkEnd::Unwritten { offset }) => {
                check.end = "unwritten";
                check.end_offset = *offset;
            }
            Some(WalkEnd::BadHeader { offset, error }) => {
                check.end = "bad-header";
                check.end_offset = *offset;
                check.corrupt_records += 1;
                report.corrupt_records.push(CorruptRecord {
                    segment: seg.id,
                    offset: *offset,
                    kind: None,
                    reason: error.to_string(),
                    header: true,
                    unreachable_bytes: readable - offset,
                    live: refs.is_live(seg.id, *offset),
                });
            }
            Some(WalkEnd::End) | None => {
                check.end = "end";
                check.end_offset = walker.position();
            }
        }
        Ok(check)
    }

    fn repair(
        &self,
        report: &mut VerifyReport,
        bad_blobs: &HashMap<[u8; 32], BlobFault>,
        bad_objects: &[BadObject],
    ) -> Result<()> {
        let inner = &self.inner;
        let mut removed: HashSet<ObjectId> = HashSet::new();
        for b in bad_objects {
            match &b.key {
                // A durable tombstone: a rebuild cannot bring it back either.
                Some(k) => {
                    writer::remove(inner, k)?;
                }
                // The record is unreadable, so no rebuild can find it either.
                None => {
                    let _log = inner.lock_log();
                    inner.index.remove_object_id(
                        &b.id,
                        crate::store::recovery::POS_MAX,
                        &inner.counters,
                        BlobRelease::Now,
                    )?;
                }
            }
            removed.insert(b.id);
            report.removed_objects += 1;
        }
        // Broken blobs: their users were among the bad objects; then the entry itself.
        for hash in bad_blobs.keys() {
            let _log = inner.lock_log();
            // Usually already freed with its last reference.
            inner.index.drop_blob_entry(hash, &inner.counters)?;
            if !inner.index.has_blob(hash) {
                report.dropped_blobs += 1;
            }
        }
        for d in &mut report.dangling {
            match (d.kind, &d.key, &d.blob) {
                (EntryKind::Object, Some(k), _) => {
                    d.repaired = removed.contains(&inner.index.object_id(k))
                }
                (EntryKind::Object, None, _) => d.repaired = true,
                (EntryKind::Blob, _, Some(h)) => d.repaired = !inner.index.has_blob(h),
                _ => {}
            }
        }
        // Reference counts: make them agree with the objects that use each blob (counted
        // before the removals above, which released their own references).
        for m in &mut report.ref_mismatches {
            let _log = inner.lock_log();
            let gone = bad_objects.iter().filter(|b| b.blob == m.blob).count() as u32;
            let used = m.used.saturating_sub(gone);
            if used == 0 {
                if inner.index.drop_blob_entry(&m.blob, &inner.counters)? {
                    report.dropped_blobs += 1;
                }
            } else {
                inner.index.set_blob_refs(&m.blob, used);
            }
            m.repaired = true;
            report.fixed_refs += 1;
        }
        inner.checkpoint(false)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_classify_extents_manifests_and_objects() {
        let mut refs = References::default();
        let step = RECORD_HEADER_LEN as u64 + 100;
        refs.runs.entry(1).or_default().push(RunSpan {
            start: 1000,
            end: 1000 + 3 * step,
            step,
        });
        refs.runs.entry(1).or_default().push(RunSpan {
            start: 64,
            end: 64 + step,
            step,
        });
        refs.manifests.insert(Pos {
            segment: 2,
            offset: 64,
        });
        refs.objects.insert(Pos {
            segment: 2,
            offset: 500,
        });
        refs.sort();
        assert!(refs.is_live(1, 64));
        assert!(refs.is_live(1, 1000));
        assert!(refs.is_live(1, 1000 + 2 * step));
        // Inside a run but not at an extent boundary, past its end, other segments.
        assert!(!refs.is_live(1, 1001));
        assert!(!refs.is_live(1, 1000 + 3 * step));
        assert!(!refs.is_live(3, 64));
        assert!(refs.is_live(2, 64));
        assert!(refs.is_live(2, 500));
        assert!(!refs.is_live(2, 501));
    }

    #[test]
    fn a_report_is_clean_unless_live_damage_or_dangling_entries() {
        let mut r = VerifyReport::default();
        assert!(r.is_clean());
        r.corrupt_records.push(CorruptRecord {
            segment: 1,
            offset: 64,
            kind: Some(RecordKind::Extent),
            reason: "payload crc32 mismatch".into(),
            header: false,
            unreachable_bytes: 0,
            live: false,
        });
        assert!(r.is_clean(), "damage in dead space is only reported");
        r.corrupt_records[0].live = true;
        assert!(!r.is_clean());
        r.corrupt_records.clear();
        r.ref_mismatches.push(RefMismatch {
            blob: [0; 32],
            declared: 1,
            used: 0,
            reason: "unreferenced".into(),
            repaired: true,
        });
        assert!(!r.is_clean());
    }
}
