//! What each segment holds (for `cache-inspect segments`): its records, found by walking
//! their headers, and its live bytes, found by scanning the index (object records, blob
//! records and the extents of live blobs). Both are full passes: an inspection tool's cost,
//! never paid on the serving path.

use std::collections::BTreeMap;

use crate::store::directory::ScanCursor;
use crate::store::error::Result;
use crate::store::record::{WalkItem, Walker, SEGMENT_HEADER_LEN};
use crate::store::Inner;

/// One segment's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentUsage {
    pub id: u64,
    /// Records whose headers check out, from the start to the first unwritten (or
    /// damaged) byte.
    pub records: u64,
    /// Bytes of those records (headers included).
    pub record_bytes: u64,
    /// Bytes the index still needs: live object records, blob records and extents.
    pub live_bytes: u64,
}

const PAGE: usize = 1024;

pub(crate) fn segment_usage(inner: &Inner) -> Result<Vec<SegmentUsage>> {
    let segs: Vec<_> = inner
        .segments
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    let mut out: BTreeMap<u64, SegmentUsage> = BTreeMap::new();
    for seg in &segs {
        let mut u = SegmentUsage {
            id: seg.id,
            ..Default::default()
        };
        let map = seg.bytes()?;
        let readable = seg.allocated().min(map.len() as u64) as usize;
        let walker = Walker::new(
            &map[..readable],
            inner.dir.salt,
            seg.id,
            SEGMENT_HEADER_LEN as u64,
        )
        .skip_extent_checks();
        for item in walker {
            if let WalkItem::Record(r) = item {
                u.records += 1;
                u.record_bytes += r.header.record_len();
            }
        }
        out.insert(seg.id, u);
    }
    let mut add = |segment: u64, bytes: u64| {
        if let Some(u) = out.get_mut(&segment) {
            u.live_bytes = u.live_bytes.saturating_add(bytes);
        }
    };
    let mut cursor = Some(ScanCursor::default());
    while let Some(c) = cursor {
        let (page, next) = inner.index.objects_page(c, PAGE);
        for (_, e) in &page {
            add(e.pos.segment, e.record_len as u64);
        }
        cursor = next;
    }
    let mut cursor = Some(ScanCursor::default());
    while let Some(c) = cursor {
        let (page, next) = inner.index.blobs_page(c, PAGE);
        for (slot, b) in &page {
            add(slot.manifest.segment, slot.manifest_len as u64);
            if let Some(b) = b {
                for run in &b.runs {
                    add(run.segment, run.disk_len(b.chunk_size));
                }
            }
        }
        cursor = next;
    }
    Ok(out.into_values().collect())
}
