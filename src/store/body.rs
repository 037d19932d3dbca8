//! Reading objects: index lookup, then the body as `Bytes` slices of the segment mapping.
//! Every byte handed out has passed its chunk's crc32 check first: small bodies (one chunk)
//! before the lookup returns, larger ones chunk by chunk as they are read.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use crate::store::error::{Result, StoreError};
use crate::store::index::{BlobEntry, ObjectEntry, Pos};
use crate::store::record::{check_extent, DecodeError, ObjectRecord, RECORD_HEADER_LEN};
use crate::store::segment::{is_resident, Segment};
use crate::store::{Hit, Inner, ObjectInfo};

/// One extent to read: its segment (kept alive by this `Arc`) and record offset.
#[derive(Debug, Clone)]
struct ChunkRef {
    segment: Arc<Segment>,
    offset: u64,
    len: u32,
}

/// An object's body. Iterate it with [`Body::next_chunk`] (or `next_chunk_async`); each
/// chunk is checked before it is returned, and a chunk that fails ends the body with an
/// error and drops the object from the store.
#[derive(Debug)]
pub struct Body {
    len: u64,
    repr: Repr,
}

#[derive(Debug)]
enum Repr {
    /// Already verified (small bodies), or fully consumed.
    Whole(Option<Bytes>),
    Chunks {
        inner: Arc<Inner>,
        key: Vec<u8>,
        pos: Pos,
        chunks: VecDeque<ChunkRef>,
    },
}

impl Body {
    /// Body length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next verified chunk, `None` at the end, or an error if a chunk failed its check.
    pub fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        match &mut self.repr {
            Repr::Whole(b) => b.take().map(Ok),
            Repr::Chunks {
                inner,
                key,
                pos,
                chunks,
            } => {
                let c = chunks.pop_front()?;
                let r = verify_chunk(inner, key, *pos, &c);
                if r.is_err() {
                    chunks.clear();
                }
                Some(r)
            }
        }
    }

    /// Like [`Body::next_chunk`], but a chunk whose pages are not resident is read and
    /// checked on tokio's blocking pool, so the calling async worker never waits on disk.
    pub async fn next_chunk_async(&mut self) -> Option<Result<Bytes>> {
        match &mut self.repr {
            Repr::Whole(b) => b.take().map(Ok),
            Repr::Chunks {
                inner,
                key,
                pos,
                chunks,
            } => {
                let c = chunks.pop_front()?;
                let r = verify_chunk_off_worker(inner, key, *pos, c).await;
                if r.is_err() {
                    chunks.clear();
                }
                Some(r)
            }
        }
    }

    /// Reads the whole body into one buffer (tests and tools; serving streams chunks).
    pub fn read_all(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len as usize);
        while let Some(c) = self.next_chunk() {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }
}

/// Whether reading chunk `c` would not touch the disk.
fn is_chunk_resident(c: &ChunkRef) -> bool {
    c.segment
        .bytes()
        .map(|m| {
            let s = c.offset as usize;
            let e = (s + RECORD_HEADER_LEN + c.len as usize).min(m.len());
            s < e && is_resident(&m[s..e])
        })
        .unwrap_or(false)
}

/// Verifies a chunk inline when its pages are resident, else on the blocking pool.
async fn verify_chunk_off_worker(
    inner: &Arc<Inner>,
    key: &[u8],
    pos: Pos,
    c: ChunkRef,
) -> Result<Bytes> {
    if is_chunk_resident(&c) {
        return verify_chunk(inner, key, pos, &c);
    }
    let (inner2, key2) = (inner.clone(), key.to_vec());
    tokio::task::spawn_blocking(move || verify_chunk(&inner2, &key2, pos, &c))
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::io(
                inner.seg_dir.clone(),
                std::io::Error::other(format!("blocking read task failed: {e}")),
            ))
        })
}

fn verify_chunk(inner: &Inner, key: &[u8], pos: Pos, c: &ChunkRef) -> Result<Bytes> {
    match read_extent(inner, &c.segment, c.offset, c.len) {
        Ok(b) => Ok(b),
        Err(e) => {
            inner.quarantine_object(key, pos, c.segment.id, c.offset, &e.to_string());
            Err(StoreError::BodyCorrupt {
                key: String::from_utf8_lossy(key).into_owned(),
                segment: c.segment.id,
                offset: c.offset,
            })
        }
    }
}

/// Reads and checks one extent; the returned `Bytes` points into the mapping.
pub(crate) fn read_extent(
    inner: &Inner,
    seg: &Segment,
    offset: u64,
    len: u32,
) -> std::result::Result<Bytes, DecodeError> {
    let map = seg
        .bytes()
        .map_err(|e| DecodeError::Encoding(format!("cannot map segment: {e}")))?;
    // Never read past what is allocated: that would fault.
    let readable = seg.allocated().min(map.len() as u64) as usize;
    let range = check_extent(&map[..readable], inner.dir.salt, seg.id, offset, len)?;
    Ok(map.slice(range))
}

/// What the index says about a key, with its chunks resolved to segments.
struct Located {
    key: Vec<u8>,
    entry: ObjectEntry,
    record: ObjectRecord,
    chunks: VecDeque<ChunkRef>,
}

fn locate(inner: &Arc<Inner>, key: &[u8]) -> Result<Option<Located>> {
    let Some(entry) = inner.index.get_object(key)? else {
        return Ok(None);
    };
    if inner.is_dead(entry.expires_at_ms, inner.now_ms()) || inner.is_quarantined(key, entry.pos) {
        return Ok(None);
    }
    // The key, metadata and tags are in the object record; reading it also proves the
    // directory's hash match is this key.
    let record = match inner.index.object_record(Some(key), &entry) {
        Ok(r) => r,
        Err(why) => {
            if inner.segment(entry.pos.segment).is_some() {
                inner.quarantine_object(key, entry.pos, entry.pos.segment, entry.pos.offset, &why);
            }
            return Ok(None);
        }
    };
    let Some(blob) = inner.index.get_blob(&entry.blob)? else {
        // Raced with a removal or reclaim, or its blob was dropped: a miss. If this version
        // is still current it refers to nothing: it goes at the next write.
        if inner
            .index
            .get_object(key)?
            .is_some_and(|e| e.pos == entry.pos)
        {
            inner.forget_dangling_object(key, entry.pos);
        }
        return Ok(None);
    };
    if blob.len != entry.body_len || blob.validate().is_err() {
        inner.quarantine_object(
            key,
            entry.pos,
            blob.manifest.segment,
            blob.manifest.offset,
            "index disagrees on the body length",
        );
        return Ok(None);
    }
    let chunks = match resolve(inner, &blob) {
        Resolved::Chunks(c) => c,
        // Raced with a reclaim or a lost segment: a miss.
        Resolved::SegmentGone => return Ok(None),
        Resolved::PastEnd { segment, offset } => {
            // The file is shorter than the index says (cut between runs): the object is
            // damaged like one whose bytes fail their check.
            inner.quarantine_object(
                key,
                entry.pos,
                segment,
                offset,
                "the body reaches past the end of its segment file",
            );
            return Ok(None);
        }
    };
    Ok(Some(Located {
        key: key.to_vec(),
        entry,
        record,
        chunks,
    }))
}

/// A blob's chunks, or why they cannot be read.
enum Resolved {
    Chunks(VecDeque<ChunkRef>),
    /// A segment the blob needs has left the store.
    SegmentGone,
    /// A run is malformed or reaches past what its file holds.
    PastEnd {
        segment: u64,
        offset: u64,
    },
}

fn resolve(inner: &Inner, blob: &BlobEntry) -> Resolved {
    let mut chunks = VecDeque::new();
    let segs = inner.segments.read().unwrap_or_else(|e| e.into_inner());
    for run in &blob.runs {
        let Some(seg) = segs.get(&run.segment) else {
            return Resolved::SegmentGone;
        };
        // A run reaching past what the file holds is a damaged entry: a miss, not a fault.
        if !run
            .validate(blob.chunk_size)
            .is_ok_and(|end| end <= seg.allocated())
        {
            return Resolved::PastEnd {
                segment: run.segment,
                offset: run.offset,
            };
        }
        for (offset, len) in run.extents(blob.chunk_size) {
            chunks.push_back(ChunkRef {
                segment: seg.clone(),
                offset,
                len,
            });
        }
    }
    Resolved::Chunks(chunks)
}

fn finish(inner: &Arc<Inner>, loc: Located, verified: Option<Bytes>) -> Hit {
    inner.recency.touch(&loc.key);
    // The blob too: reclaim copies a blob forward when it was read, whichever key read it.
    inner.recency.touch(&loc.entry.blob);
    let len = loc.entry.body_len;
    let pos = loc.entry.pos;
    let repr = match verified {
        Some(b) => Repr::Whole(Some(b)),
        None if loc.chunks.is_empty() => Repr::Whole(None),
        None => Repr::Chunks {
            inner: inner.clone(),
            key: loc.key.clone(),
            pos,
            chunks: loc.chunks,
        },
    };
    Hit {
        info: ObjectInfo::from_record(loc.record, pos),
        body: Body { len, repr },
    }
}

pub(crate) fn lookup(inner: &Arc<Inner>, key: &[u8]) -> Result<Option<Hit>> {
    let Some(loc) = locate(inner, key)? else {
        return Ok(None);
    };
    if loc.chunks.len() == 1 {
        let c = &loc.chunks[0];
        return match verify_chunk(inner, key, loc.entry.pos, c) {
            Ok(b) => Ok(Some(finish(inner, loc, Some(b)))),
            Err(_) => Ok(None),
        };
    }
    Ok(Some(finish(inner, loc, None)))
}

pub(crate) async fn lookup_async(inner: &Arc<Inner>, key: &[u8]) -> Result<Option<Hit>> {
    let Some(loc) = locate(inner, key)? else {
        return Ok(None);
    };
    if loc.chunks.len() != 1 {
        return Ok(Some(finish(inner, loc, None)));
    }
    let c = loc.chunks[0].clone();
    let verified = verify_chunk_off_worker(inner, key, loc.entry.pos, c).await;
    match verified {
        Ok(b) => Ok(Some(finish(inner, loc, Some(b)))),
        Err(StoreError::BodyCorrupt { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
