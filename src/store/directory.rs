//! The object directory: which objects and blobs exist and where their records are, kept in
//! mapped slot tables (`slot_table.rs`), 64 shards each for objects and for blobs, under
//! `index/directory/` (storage-format.md §5.2).
//!
//! An object is found by its id, the first 16 bytes of a blake3 hash of its cache key keyed
//! with the cache's salt (so ids cannot be chosen to collide); a blob by its body hash. A
//! slot holds what the hot path and the sweeper need (record position, times, length, blob
//! hash; a blob's first run and reference count). The key, metadata and tags stay in the
//! object record in the segments, which a lookup reads anyway.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::store::error::{Result, StoreError};
use crate::store::index::Pos;
use crate::store::record::Run;
use crate::store::slot_table::{
    Found, SlotTable, TableError, TableKind, CONTENT_AT, REFS_AT, SLOT_LEN,
};

/// Shards per table kind.
pub const SHARDS: u32 = 64;
pub const DIRECTORY_DIR: &str = "directory";

/// An object's id: keyed blake3 of its cache key, first 16 bytes.
pub type ObjectId = [u8; 16];

/// What the directory holds for an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSlot {
    pub id: ObjectId,
    /// Where the object record that made this version is.
    pub pos: Pos,
    /// Length of that record, header included.
    pub record_len: u32,
    pub stored_at_ms: u64,
    pub expires_at_ms: u64,
    pub body_len: u64,
    pub blob: [u8; 32],
}

/// What the directory holds for a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobSlot {
    pub hash: [u8; 32],
    pub len: u64,
    pub chunk_size: u32,
    /// How many runs place the body; only the first is in the slot, the rest are read from
    /// the blob record.
    pub run_count: u32,
    pub first_run: Run,
    /// Where the blob record that placed these runs is, and its length.
    pub manifest: Pos,
    pub manifest_len: u32,
    /// Objects referring to this blob.
    pub refs: u32,
    /// Its body was dropped (reclaimed or damaged) while objects still named it: the slot
    /// stays only to count their references until they are removed, so that a later
    /// placement of the same body keeps an exact count. Readers treat it as absent.
    pub gone: bool,
}

fn put_u64(s: &mut [u8], at: usize, v: u64) {
    s[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(s: &mut [u8], at: usize, v: u32) {
    s[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(s: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"))
}

fn get_u32(s: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"))
}

// Object slot content (storage-format.md §5.2).
const O_ID: usize = CONTENT_AT; // 16
const O_SEG: usize = 32;
const O_OFF: usize = 40;
const O_RECLEN: usize = 48;
const O_STORED: usize = 56;
const O_EXPIRES: usize = 64;
const O_BODYLEN: usize = 72;
const O_BLOB: usize = 80; // 32

// Blob slot content.
const B_HASH: usize = CONTENT_AT; // 32
const B_LEN: usize = 48;
const B_CHUNK: usize = 56;
const B_RUNS: usize = 60;
const B_MSEG: usize = 64;
const B_MOFF: usize = 72;
const B_MLEN: usize = 80;
const B_RSEG: usize = 88;
const B_ROFF: usize = 96;
const B_RLEN: usize = 104;
const B_FLAGS: usize = 112;
const FLAG_GONE: u8 = 1;

impl ObjectSlot {
    pub fn encode(&self) -> [u8; SLOT_LEN] {
        let mut s = [0u8; SLOT_LEN];
        s[O_ID..O_ID + 16].copy_from_slice(&self.id);
        put_u64(&mut s, O_SEG, self.pos.segment);
        put_u64(&mut s, O_OFF, self.pos.offset);
        put_u32(&mut s, O_RECLEN, self.record_len);
        put_u64(&mut s, O_STORED, self.stored_at_ms);
        put_u64(&mut s, O_EXPIRES, self.expires_at_ms);
        put_u64(&mut s, O_BODYLEN, self.body_len);
        s[O_BLOB..O_BLOB + 32].copy_from_slice(&self.blob);
        s
    }

    pub fn decode(s: &[u8]) -> ObjectSlot {
        ObjectSlot {
            id: s[O_ID..O_ID + 16].try_into().expect("16 bytes"),
            pos: Pos {
                segment: get_u64(s, O_SEG),
                offset: get_u64(s, O_OFF),
            },
            record_len: get_u32(s, O_RECLEN),
            stored_at_ms: get_u64(s, O_STORED),
            expires_at_ms: get_u64(s, O_EXPIRES),
            body_len: get_u64(s, O_BODYLEN),
            blob: s[O_BLOB..O_BLOB + 32].try_into().expect("32 bytes"),
        }
    }
}

impl BlobSlot {
    pub fn encode(&self) -> [u8; SLOT_LEN] {
        let mut s = [0u8; SLOT_LEN];
        put_u32(&mut s, REFS_AT, self.refs);
        s[B_HASH..B_HASH + 32].copy_from_slice(&self.hash);
        put_u64(&mut s, B_LEN, self.len);
        put_u32(&mut s, B_CHUNK, self.chunk_size);
        put_u32(&mut s, B_RUNS, self.run_count);
        put_u64(&mut s, B_MSEG, self.manifest.segment);
        put_u64(&mut s, B_MOFF, self.manifest.offset);
        put_u32(&mut s, B_MLEN, self.manifest_len);
        put_u64(&mut s, B_RSEG, self.first_run.segment);
        put_u64(&mut s, B_ROFF, self.first_run.offset);
        put_u64(&mut s, B_RLEN, self.first_run.len);
        s[B_FLAGS] = if self.gone { FLAG_GONE } else { 0 };
        s
    }

    pub fn decode(s: &[u8]) -> BlobSlot {
        BlobSlot {
            hash: s[B_HASH..B_HASH + 32].try_into().expect("32 bytes"),
            len: get_u64(s, B_LEN),
            chunk_size: get_u32(s, B_CHUNK),
            run_count: get_u32(s, B_RUNS),
            manifest: Pos {
                segment: get_u64(s, B_MSEG),
                offset: get_u64(s, B_MOFF),
            },
            manifest_len: get_u32(s, B_MLEN),
            first_run: Run {
                segment: get_u64(s, B_RSEG),
                offset: get_u64(s, B_ROFF),
                len: get_u64(s, B_RLEN),
            },
            refs: get_u32(s, REFS_AT),
            gone: s[B_FLAGS] & FLAG_GONE != 0,
        }
    }
}

/// Whether object slot `a` is a newer version than `b` (written later in the log).
pub fn object_slot_newer(a: &[u8], b: &[u8]) -> bool {
    (get_u64(a, O_SEG), get_u64(a, O_OFF)) > (get_u64(b, O_SEG), get_u64(b, O_OFF))
}

/// Whether blob slot `a` is a newer placement than `b` (of one placement, the copy marked
/// gone is the newer: marking is the later write).
pub fn blob_slot_newer(a: &[u8], b: &[u8]) -> bool {
    (
        get_u64(a, B_MSEG),
        get_u64(a, B_MOFF),
        a[B_FLAGS] & FLAG_GONE,
    ) > (
        get_u64(b, B_MSEG),
        get_u64(b, B_MOFF),
        b[B_FLAGS] & FLAG_GONE,
    )
}

/// The newest of a key's live copies (more than one only after a crash mid-update).
fn newest(found: &[Found], newer: fn(&[u8], &[u8]) -> bool) -> Option<&Found> {
    found
        .iter()
        .reduce(|best, f| if newer(&f.slot, &best.slot) { f } else { best })
}

/// Where a scan of one table kind stands: shard, slot index, and the generation of that
/// shard's table when the scan got there. A table rewritten since (growth or compaction
/// moves every slot) is scanned again from its start, so a scan that lets go of the lock
/// between pages may return an entry twice but never skips one that stayed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanCursor {
    pub shard: u32,
    pub slot: u64,
    pub generation: u64,
}

/// Why the directory cannot be opened as it is.
pub type DirectoryProblem = TableError;

/// The two families of shard tables.
pub struct Directory {
    path: PathBuf,
    objects: Vec<RwLock<SlotTable>>,
    blobs: Vec<RwLock<SlotTable>>,
    id_key: [u8; 32],
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("path", &self.path)
            .finish()
    }
}

fn id_key(salt: u64) -> [u8; 32] {
    blake3::derive_key("cairn object id v1", &salt.to_le_bytes())
}

fn shard_of(probe: &[u8]) -> usize {
    (probe[0] as u32 % SHARDS) as usize
}

impl Directory {
    /// Opens the directory under `index_dir`, or says why its files cannot be used.
    pub fn open(index_dir: &Path, salt: u64) -> std::result::Result<Directory, DirectoryProblem> {
        let path = index_dir.join(DIRECTORY_DIR);
        let open_all = |kind| {
            (0..SHARDS)
                .map(|s| SlotTable::open(&path, kind, s, salt).map(RwLock::new))
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        Ok(Directory {
            objects: open_all(TableKind::Objects)?,
            blobs: open_all(TableKind::Blobs)?,
            id_key: id_key(salt),
            path,
        })
    }

    /// Creates an empty directory under `index_dir` (replacing what was there).
    pub fn create(index_dir: &Path, salt: u64) -> Result<Directory> {
        let path = index_dir.join(DIRECTORY_DIR);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| StoreError::io(&path, e))?;
        }
        std::fs::create_dir_all(&path).map_err(|e| StoreError::io(&path, e))?;
        let create_all = |kind| {
            (0..SHARDS)
                .map(|s| SlotTable::create(&path, kind, s, salt).map(RwLock::new))
                .collect::<Result<Vec<_>>>()
        };
        let dir = Directory {
            objects: create_all(TableKind::Objects)?,
            blobs: create_all(TableKind::Blobs)?,
            id_key: id_key(salt),
            path: path.clone(),
        };
        dir.flush()?;
        crate::store::log::sync_dir(&path)?;
        Ok(dir)
    }

    pub fn object_id(&self, key: &[u8]) -> ObjectId {
        let h = blake3::keyed_hash(&self.id_key, key);
        h.as_bytes()[..16].try_into().expect("16 bytes")
    }

    fn read(t: &RwLock<SlotTable>) -> RwLockReadGuard<'_, SlotTable> {
        t.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(t: &RwLock<SlotTable>) -> RwLockWriteGuard<'_, SlotTable> {
        t.write().unwrap_or_else(|e| e.into_inner())
    }

    // ---- objects ----

    pub fn get_object(&self, id: &ObjectId) -> Option<ObjectSlot> {
        let t = Self::read(&self.objects[shard_of(id)]);
        let found = t.find(id);
        newest(&found, object_slot_newer).map(|f| ObjectSlot::decode(&f.slot))
    }

    /// Makes `slot` the version of its object: the new copy is live before the old ones are
    /// deleted. Returns the version it replaced.
    pub fn put_object(&self, slot: &ObjectSlot) -> Result<Option<ObjectSlot>> {
        let mut t = Self::write(&self.objects[shard_of(&slot.id)]);
        let old = t.find(&slot.id);
        let prev = newest(&old, object_slot_newer).map(|f| ObjectSlot::decode(&f.slot));
        let new_index = t.insert(&slot.encode())?;
        // The insert may have rebuilt the table (indices moved): find the old copies again.
        for f in t.find(&slot.id) {
            if f.index != new_index {
                t.delete(f.index);
            }
        }
        Ok(prev)
    }

    /// Removes every copy of object `id`; returns the newest.
    pub fn remove_object(&self, id: &ObjectId) -> Option<ObjectSlot> {
        let mut t = Self::write(&self.objects[shard_of(id)]);
        let found = t.find(id);
        let prev = newest(&found, object_slot_newer).map(|f| ObjectSlot::decode(&f.slot));
        for f in &found {
            t.delete(f.index);
        }
        prev
    }

    /// Up to `limit` objects from `cursor` on (newest copies only), and where to go on.
    pub fn scan_objects(
        &self,
        cursor: ScanCursor,
        limit: usize,
    ) -> (Vec<ObjectSlot>, Option<ScanCursor>) {
        self.scan(&self.objects, cursor, limit, object_slot_newer, |s| {
            Some(ObjectSlot::decode(s))
        })
    }

    // ---- blobs ----

    /// Blob `hash` if its body is usable (a slot marked gone reads as absent).
    pub fn get_blob(&self, hash: &[u8; 32]) -> Option<BlobSlot> {
        self.blob_slot(hash).filter(|b| !b.gone)
    }

    /// Blob `hash`'s slot, marked gone or not.
    pub fn blob_slot(&self, hash: &[u8; 32]) -> Option<BlobSlot> {
        let t = Self::read(&self.blobs[shard_of(hash)]);
        let found = t.find(hash);
        newest(&found, blob_slot_newer).map(|f| {
            let mut b = BlobSlot::decode(&f.slot);
            // After a crash mid-update the copies may disagree on the count: never undercount.
            b.refs = found.iter().map(Found::refs).max().unwrap_or(0);
            b
        })
    }

    /// Drops blob `hash`'s body: with references left its slot stays, marked gone, to count
    /// them; without, it is removed. Returns the usable slot it dropped, if there was one.
    pub fn drop_blob(&self, hash: &[u8; 32]) -> Result<Option<BlobSlot>> {
        let mut t = Self::write(&self.blobs[shard_of(hash)]);
        let found = t.find(hash);
        let refs = found.iter().map(Found::refs).max().unwrap_or(0);
        let Some(mut b) = newest(&found, blob_slot_newer).map(|f| BlobSlot::decode(&f.slot)) else {
            return Ok(None);
        };
        let was_usable = !b.gone;
        if refs == 0 {
            for f in &found {
                t.delete(f.index);
            }
        } else if was_usable {
            b.gone = true;
            b.refs = refs;
            let new_index = t.insert(&b.encode())?;
            for f in t.find(hash) {
                if f.index != new_index {
                    t.delete(f.index);
                }
            }
        }
        b.gone = false;
        Ok(was_usable.then_some(b))
    }

    /// Places blob `slot.hash` (keeping its reference count, whatever `slot.refs` says, also
    /// from a slot marked gone). Returns the placement it replaced.
    pub fn put_blob(&self, slot: &BlobSlot) -> Result<Option<BlobSlot>> {
        let mut t = Self::write(&self.blobs[shard_of(&slot.hash)]);
        let old = t.find(&slot.hash);
        let refs = old.iter().map(Found::refs).max().unwrap_or(0);
        let prev = newest(&old, blob_slot_newer).map(|f| {
            let mut b = BlobSlot::decode(&f.slot);
            b.refs = refs;
            b
        });
        let mut s = slot.clone();
        s.refs = refs;
        s.gone = false;
        let new_index = t.insert(&s.encode())?;
        for f in t.find(&slot.hash) {
            if f.index != new_index {
                t.delete(f.index);
            }
        }
        Ok(prev)
    }

    /// Adds `delta` to blob `hash`'s reference count (saturating at 0). Returns the new
    /// count, or None when the blob is not in the directory.
    pub fn add_refs(&self, hash: &[u8; 32], delta: i64) -> Option<u32> {
        let mut t = Self::write(&self.blobs[shard_of(hash)]);
        let found = t.find(hash);
        let refs = found.iter().map(Found::refs).max()?;
        let new = (refs as i64 + delta).clamp(0, u32::MAX as i64) as u32;
        for f in &found {
            t.set_refs(f.index, new);
        }
        Some(new)
    }

    /// Sets blob `hash`'s reference count (verify's repair).
    pub fn set_refs(&self, hash: &[u8; 32], refs: u32) -> bool {
        let mut t = Self::write(&self.blobs[shard_of(hash)]);
        let found = t.find(hash);
        for f in &found {
            t.set_refs(f.index, refs);
        }
        !found.is_empty()
    }

    /// Usable blobs (slots marked gone are skipped).
    pub fn scan_blobs(
        &self,
        cursor: ScanCursor,
        limit: usize,
    ) -> (Vec<BlobSlot>, Option<ScanCursor>) {
        self.scan(&self.blobs, cursor, limit, blob_slot_newer, |s| {
            let b = BlobSlot::decode(s);
            (!b.gone).then_some(b)
        })
    }

    fn scan<T>(
        &self,
        tables: &[RwLock<SlotTable>],
        mut cursor: ScanCursor,
        limit: usize,
        newer: fn(&[u8], &[u8]) -> bool,
        decode: impl Fn(&[u8]) -> Option<T>,
    ) -> (Vec<T>, Option<ScanCursor>) {
        let mut out = Vec::new();
        while (cursor.shard as usize) < tables.len() {
            let t = Self::read(&tables[cursor.shard as usize]);
            if cursor.generation != t.generation() {
                // Rewritten since this shard's scan began (or not begun): from its start.
                cursor.slot = 0;
                cursor.generation = t.generation();
            }
            let (page, next) = t.scan(cursor.slot, limit - out.len());
            for f in &page {
                if t.is_newest(f, newer) {
                    out.extend(decode(&f.slot));
                }
            }
            match next {
                Some(slot) => cursor.slot = slot,
                None => {
                    cursor.shard += 1;
                    cursor.slot = 0;
                    cursor.generation = 0;
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        let more = ((cursor.shard as usize) < tables.len()).then_some(cursor);
        (out, more)
    }

    /// Live slots (objects, blobs), from the tables' own counts.
    pub fn live_counts(&self) -> (u64, u64) {
        let sum = |ts: &[RwLock<SlotTable>]| ts.iter().map(|t| Self::read(t).live()).sum();
        (sum(&self.objects), sum(&self.blobs))
    }

    pub fn bytes_on_disk(&self) -> u64 {
        self.objects
            .iter()
            .chain(&self.blobs)
            .map(|t| Self::read(t).bytes_on_disk())
            .sum()
    }

    /// Writes every table's dirty pages to disk.
    pub fn flush(&self) -> Result<()> {
        for t in self.objects.iter().chain(&self.blobs) {
            Self::read(t).flush()?;
        }
        Ok(())
    }

    /// Empties every table.
    pub fn clear(&self) -> Result<()> {
        for t in self.objects.iter().chain(&self.blobs) {
            Self::write(t).clear()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: u64 = 0x5eed;

    fn obj(dir: &Directory, key: &str, seg: u64, off: u64, blob: u8) -> ObjectSlot {
        ObjectSlot {
            id: dir.object_id(key.as_bytes()),
            pos: Pos {
                segment: seg,
                offset: off,
            },
            record_len: 200,
            stored_at_ms: 1,
            expires_at_ms: 1000 + off,
            body_len: 5,
            blob: [blob; 32],
        }
    }

    fn blob(hash: u8, seg: u64) -> BlobSlot {
        BlobSlot {
            hash: [hash; 32],
            len: 5,
            chunk_size: 65536,
            run_count: 1,
            first_run: Run {
                segment: seg,
                offset: 64,
                len: 5,
            },
            manifest: Pos {
                segment: seg,
                offset: 200,
            },
            manifest_len: 120,
            refs: 0,
            gone: false,
        }
    }

    #[test]
    fn a_dropped_blob_with_references_keeps_counting_them_until_placed_again() {
        let d = tempfile::tempdir().unwrap();
        let dir = Directory::create(d.path(), SALT).unwrap();
        dir.put_blob(&blob(9, 1)).unwrap();
        assert_eq!(dir.add_refs(&[9; 32], 2), Some(2));
        // Its body goes (segment 1 reclaimed) while two objects still name it.
        let dropped = dir.drop_blob(&[9; 32]).unwrap().unwrap();
        assert_eq!(dropped.manifest.segment, 1);
        assert_eq!(dir.get_blob(&[9; 32]), None, "a gone blob reads as absent");
        let (page, _) = dir.scan_blobs(ScanCursor::default(), usize::MAX);
        assert!(page.is_empty(), "scans skip it");
        let slot = dir.blob_slot(&[9; 32]).unwrap();
        assert!(slot.gone);
        assert_eq!(slot.refs, 2);
        assert_eq!(dir.drop_blob(&[9; 32]).unwrap(), None, "dropped once");
        // The same body stored again: usable, and the two references are still counted.
        dir.put_blob(&blob(9, 3)).unwrap();
        let b = dir.get_blob(&[9; 32]).unwrap();
        assert_eq!((b.refs, b.manifest.segment, b.gone), (2, 3, false));
        // One holder goes, then the other: only then is the slot removed.
        assert_eq!(dir.add_refs(&[9; 32], -2), Some(0));
        assert!(dir.drop_blob(&[9; 32]).unwrap().is_some());
        assert_eq!(dir.blob_slot(&[9; 32]), None);
    }

    #[test]
    fn a_scan_that_lets_go_between_pages_sees_every_entry_across_a_table_rewrite() {
        let d = tempfile::tempdir().unwrap();
        let dir = Directory::create(d.path(), SALT).unwrap();
        // Keys of shard 0 only, so that one table is filled, thinned and rewritten.
        let mut keys = (0u64..)
            .map(|i| format!("k{i}"))
            .filter(|k| shard_of(&dir.object_id(k.as_bytes())) == 0);
        let first: Vec<String> = keys.by_ref().take(180).collect();
        for (i, k) in first.iter().enumerate() {
            dir.put_object(&obj(&dir, k, 1, i as u64, 1)).unwrap();
        }
        // Most are removed: their slots stay as deleted ones until the table is rewritten.
        let (gone, kept) = first.split_at(150);
        for k in gone {
            dir.remove_object(&dir.object_id(k.as_bytes()));
        }
        let generation = || Directory::read(&dir.objects[0]).generation();
        let mut seen = std::collections::HashSet::new();
        let (page, mut cur) = dir.scan_objects(ScanCursor::default(), 5);
        seen.extend(page.into_iter().map(|o| o.id));
        // A writer makes the table compact itself (every slot moves) between two pages.
        let before = generation();
        for (i, k) in keys.by_ref().take(2000).enumerate() {
            if generation() != before {
                break;
            }
            dir.put_object(&obj(&dir, &k, 2, i as u64, 2)).unwrap();
        }
        assert_ne!(generation(), before, "the table was never rewritten");
        while let Some(c) = cur.filter(|c| c.shard == 0) {
            let (page, next) = dir.scan_objects(c, 5);
            seen.extend(page.into_iter().map(|o| o.id));
            cur = next;
        }
        for k in kept {
            let id = dir.object_id(k.as_bytes());
            assert!(seen.contains(&id), "{k} was skipped by the scan");
        }
    }

    #[test]
    fn slots_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let dir = Directory::create(d.path(), SALT).unwrap();
        let o = obj(&dir, "k", 3, 99, 7);
        assert_eq!(ObjectSlot::decode(&o.encode()), o);
        let mut b = blob(4, 2);
        b.refs = 9;
        assert_eq!(BlobSlot::decode(&b.encode()), b);
    }

    #[test]
    fn objects_survive_growth_reopen_and_keep_the_newest_version() {
        let d = tempfile::tempdir().unwrap();
        let dir = Directory::create(d.path(), SALT).unwrap();
        // Enough to grow every shard a few times.
        let n = 40_000u64;
        for i in 0..n {
            dir.put_object(&obj(&dir, &format!("k{i}"), 1, i, 1))
                .unwrap();
        }
        for i in (0..n).step_by(2) {
            let old = dir
                .put_object(&obj(&dir, &format!("k{i}"), 2, i, 2))
                .unwrap();
            assert_eq!(old.unwrap().pos.segment, 1);
        }
        for i in (0..n).step_by(3) {
            assert!(dir
                .remove_object(&dir.object_id(format!("k{i}").as_bytes()))
                .is_some());
        }
        dir.flush().unwrap();
        drop(dir);
        let dir = Directory::open(d.path(), SALT).unwrap();
        let mut seen = 0;
        for i in 0..n {
            let got = dir.get_object(&dir.object_id(format!("k{i}").as_bytes()));
            if i % 3 == 0 {
                assert!(got.is_none(), "k{i} was removed");
                continue;
            }
            let got = got.unwrap();
            assert_eq!(got.pos.segment, if i % 2 == 0 { 2 } else { 1 }, "k{i}");
            seen += 1;
        }
        let mut scanned = 0;
        let mut cur = Some(ScanCursor::default());
        while let Some(c) = cur {
            let (page, next) = dir.scan_objects(c, 1000);
            scanned += page.len();
            cur = next;
        }
        assert_eq!(scanned, seen);
        assert_eq!(dir.live_counts().0, seen as u64);
    }

    #[test]
    fn a_crash_between_insert_and_delete_leaves_the_newest_copy_visible() {
        let d = tempfile::tempdir().unwrap();
        let dir = Directory::create(d.path(), SALT).unwrap();
        let a = obj(&dir, "k", 1, 10, 1);
        dir.put_object(&a).unwrap();
        // Simulate the crash: insert the new copy without deleting the old one.
        let b = obj(&dir, "k", 1, 20, 2);
        {
            let mut t = Directory::write(&dir.objects[shard_of(&b.id)]);
            t.insert(&b.encode()).unwrap();
        }
        assert_eq!(dir.get_object(&a.id), Some(b.clone()));
        let (page, _) = dir.scan_objects(ScanCursor::default(), usize::MAX);
        assert_eq!(page, vec![b.clone()]);
        // The next write of the key clears the stale copy.
        dir.remove_object(&a.id);
        assert_eq!(dir.get_object(&a.id), None);
    }

    #[test]
    fn torn_slots_are_skipped_and_refs_are_never_undercounted() {
        let d = tempfile::tempdir().unwrap();
        let dir = Directory::create(d.path(), SALT).unwrap();
        dir.put_blob(&blob(5, 1)).unwrap();
        assert_eq!(dir.add_refs(&[5; 32], 3), Some(3));
        assert_eq!(dir.add_refs(&[5; 32], -1), Some(2));
        // A new placement keeps the count.
        dir.put_blob(&blob(5, 2)).unwrap();
        let b = dir.get_blob(&[5; 32]).unwrap();
        assert_eq!((b.refs, b.manifest.segment), (2, 2));
        assert_eq!(dir.add_refs(&[5; 32], -5), Some(0));
        // Flip a content byte of an object slot on disk: it reads as absent.
        let o = obj(&dir, "x", 1, 1, 1);
        dir.put_object(&o).unwrap();
        dir.flush().unwrap();
        drop(dir);
        let path = d.path().join(DIRECTORY_DIR).join(SlotTable::file_name(
            TableKind::Objects,
            shard_of(&o.id) as u32,
        ));
        let mut bytes = std::fs::read(&path).unwrap();
        let at = (0..(bytes.len() - crate::store::slot_table::HEADER_LEN) / SLOT_LEN)
            .map(|i| crate::store::slot_table::HEADER_LEN + i * SLOT_LEN)
            .find(|&at| bytes[at + CONTENT_AT..at + CONTENT_AT + 16] == o.id)
            .unwrap();
        bytes[at + 60] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let dir = Directory::open(d.path(), SALT).unwrap();
        assert_eq!(dir.get_object(&o.id), None);
        // A new version can be written over it.
        dir.put_object(&o).unwrap();
        assert_eq!(dir.get_object(&o.id), Some(o));
    }

    #[test]
    fn files_of_another_cache_or_shape_are_refused() {
        let d = tempfile::tempdir().unwrap();
        drop(Directory::create(d.path(), SALT).unwrap());
        assert!(matches!(
            Directory::open(d.path(), SALT + 1),
            Err(TableError::Invalid { .. })
        ));
        let p = d
            .path()
            .join(DIRECTORY_DIR)
            .join(SlotTable::file_name(TableKind::Blobs, 7));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(5000)
            .unwrap();
        let e = Directory::open(d.path(), SALT).unwrap_err();
        assert!(e.to_string().contains("blobs-07.tbl"), "{e}");
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(
            Directory::open(d.path(), SALT),
            Err(TableError::Missing(_))
        ));
    }
}
