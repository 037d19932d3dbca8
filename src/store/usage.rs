//! What each segment holds (for `cache-inspect segments`): its records, found by walking
//! their headers, and its live bytes, found by scanning the index (object records, blob
//! records and the extents of live blobs). Both are full passes: an inspection tool's cost,
//! never paid on the serving path.

use std::collections::{BTreeMap, HashMap};

use crate::store::error::Result;
use crate::store::record::{RecordKind, WalkItem, Walker, SEGMENT_HEADER_LEN};
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
    // Lengths of blob records by position, to count live blob records below.
    let mut blob_records: HashMap<(u64, u64), u64> = HashMap::new();
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
                if r.header.kind == RecordKind::Blob {
                    blob_records.insert((seg.id, r.offset), r.header.record_len());
                }
            }
        }
        out.insert(seg.id, u);
    }
    let mut add = |segment: u64, bytes: u64| {
        if let Some(u) = out.get_mut(&segment) {
            u.live_bytes = u.live_bytes.saturating_add(bytes);
        }
    };
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = inner.index.objects_page_raw(after.as_deref(), PAGE)?;
        for (_, e) in &page {
            if let Ok(e) = e {
                add(e.pos.segment, e.record_len as u64);
            }
        }
        match page.last() {
            Some((k, _)) if page.len() == PAGE => after = Some(k.clone()),
            _ => break,
        }
    }
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = inner.index.blobs_page_raw(after.as_deref(), PAGE)?;
        for (_, b) in &page {
            if let Ok(b) = b {
                if let Some(len) = blob_records.get(&(b.manifest.segment, b.manifest.offset)) {
                    add(b.manifest.segment, *len);
                }
                for run in &b.runs {
                    add(run.segment, run.disk_len(b.chunk_size));
                }
            }
        }
        match page.last() {
            Some((k, _)) if page.len() == PAGE => after = Some(k.clone()),
            _ => break,
        }
    }
    Ok(out.into_values().collect())
}
