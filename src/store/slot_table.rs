//! One shard of the object directory: a file of fixed-size slots, mapped read-write and
//! used as an open-addressing hash table with linear probing (storage-format.md §5.2).
//!
//! Why a file and not sled: sled 0.34 rebuilds its page table from its whole log at open and
//! keeps per-node bookkeeping in anonymous memory, so both the open time and the RssAnon of
//! a per-object sled index grow with the object count. A mapped table costs an `mmap` at
//! open and its pages are file pages the kernel can drop.
//!
//! Crash safety without a log of its own: a slot is never rewritten while live. A new
//! version goes into a free slot of the same probe chain (content and checksum first, the
//! state byte last), then older copies are marked deleted (one byte). A process killed in
//! between leaves two live copies, and readers take the newest (the caller says which); a
//! copy whose checksum fails (torn by a power cut) is skipped like a deleted one. The only
//! field written in place is a blob's reference count: one aligned 4-byte store, outside the
//! checksum.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::store::error::{Result, StoreError};

pub const HEADER_LEN: usize = 4096;
pub const SLOT_LEN: usize = 128;
pub const TABLE_MAGIC: &[u8; 8] = b"CAIRNTBL";
pub const TABLE_VERSION: u32 = 2;
/// Smallest table, in slots (32 KiB of slots).
pub const MIN_SLOTS: u64 = 256;
/// Largest table, in slots (2^32 slots = 512 GiB of one shard file).
const MAX_SLOTS: u64 = 1 << 32;

pub const STATE_EMPTY: u8 = 0;
pub const STATE_LIVE: u8 = 1;
pub const STATE_DELETED: u8 = 2;

/// Offsets inside a slot.
pub const CRC_AT: usize = 0;
pub const STATE_AT: usize = 4;
pub const REFS_AT: usize = 8;
/// The checksummed part of a slot starts here; its first 16 bytes are the probe key.
pub const CONTENT_AT: usize = 16;

/// What a table holds (written in its header, checked at open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Objects = 1,
    Blobs = 2,
}

impl TableKind {
    /// Bytes of a slot's content that identify it (object id, blob hash).
    pub fn id_len(self) -> usize {
        match self {
            TableKind::Objects => 16,
            TableKind::Blobs => 32,
        }
    }

    pub fn file_prefix(self) -> &'static str {
        match self {
            TableKind::Objects => "objects",
            TableKind::Blobs => "blobs",
        }
    }
}

/// Why a table file cannot be used (the directory is then rebuilt from the segments).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("{0} is missing")]
    Missing(PathBuf),
    #[error("{path}: {why}")]
    Invalid { path: PathBuf, why: String },
}

/// The probe key of a slot's content.
pub fn probe_of(slot: &[u8]) -> [u8; 16] {
    slot[CONTENT_AT..CONTENT_AT + 16]
        .try_into()
        .expect("16 bytes")
}

fn slot_crc(salt: u64, slot: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(&slot[CONTENT_AT..SLOT_LEN]);
    h.finalize()
}

/// Whether a slot's checksum matches its content.
pub fn slot_is_intact(salt: u64, slot: &[u8]) -> bool {
    u32::from_le_bytes(slot[CRC_AT..CRC_AT + 4].try_into().expect("4 bytes"))
        == slot_crc(salt, slot)
}

/// A live slot, found by a probe or a scan.
#[derive(Debug, Clone, Copy)]
pub struct Found {
    pub index: u64,
    pub slot: [u8; SLOT_LEN],
}

impl Found {
    pub fn refs(&self) -> u32 {
        u32::from_le_bytes(self.slot[REFS_AT..REFS_AT + 4].try_into().expect("4 bytes"))
    }
}

/// One shard file, mapped.
pub struct SlotTable {
    path: PathBuf,
    kind: TableKind,
    shard: u32,
    salt: u64,
    map: MmapMut,
    slots: u64,
    /// Live slots and live + deleted slots (best effort after an unclean stop: they only
    /// decide when to grow, and the next rebuild of the table makes them exact).
    live: u64,
    used: u64,
    /// Slots whose checksum failed, seen since open.
    pub damaged_seen: std::sync::atomic::AtomicU64,
    /// Bumped each time the table is rewritten (every slot moves): scans in progress start
    /// this table again. Starts at 1 so that a new cursor (0) always starts afresh.
    generation: u64,
}

impl std::fmt::Debug for SlotTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotTable")
            .field("path", &self.path)
            .field("slots", &self.slots)
            .field("live", &self.live)
            .finish()
    }
}

/// The first 64 bytes of a table file (the rest of its 4 KiB header is zero).
pub fn encode_header(kind: TableKind, shard: u32, slots: u64, salt: u64) -> [u8; 64] {
    let mut h = [0u8; 64];
    h[0..8].copy_from_slice(TABLE_MAGIC);
    h[8..12].copy_from_slice(&TABLE_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(kind as u32).to_le_bytes());
    h[16..20].copy_from_slice(&shard.to_le_bytes());
    h[20..24].copy_from_slice(&(SLOT_LEN as u32).to_le_bytes());
    h[24..32].copy_from_slice(&slots.to_le_bytes());
    h[32..40].copy_from_slice(&salt.to_le_bytes());
    let crc = crc32fast::hash(&h[0..40]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a table file's header (`bytes` from the start of the file, `file_len` its
/// length) against the table it must be; returns its slot count and its saved live and used
/// counts (clamped to the slot count: they are best effort).
pub fn check_header(
    bytes: &[u8],
    kind: TableKind,
    shard: u32,
    salt: u64,
    file_len: u64,
) -> std::result::Result<(u64, u64, u64), String> {
    let Some(h) = bytes.get(..64) else {
        return Err(format!("{} bytes is shorter than its header", bytes.len()));
    };
    if &h[0..8] != TABLE_MAGIC {
        return Err("not a table file (bad magic)".into());
    }
    if crc32fast::hash(&h[0..40]) != u32_at(h, 60) {
        return Err("header checksum mismatch".into());
    }
    let version = u32_at(h, 8);
    if version != TABLE_VERSION {
        return Err(format!(
            "table version {version}, this build reads {TABLE_VERSION}"
        ));
    }
    if u32_at(h, 12) != kind as u32 || u32_at(h, 16) != shard {
        return Err("header names another table".into());
    }
    if u32_at(h, 20) != SLOT_LEN as u32 {
        return Err(format!("slot size {}", u32_at(h, 20)));
    }
    if u64_at(h, 32) != salt {
        return Err("written for another cache (salt differs)".into());
    }
    let slots = u64_at(h, 24);
    if !slots.is_power_of_two() || !(MIN_SLOTS..=MAX_SLOTS).contains(&slots) {
        return Err(format!("{slots} slots is not a valid table size"));
    }
    let want = HEADER_LEN as u64 + slots * SLOT_LEN as u64;
    if file_len != want {
        return Err(format!(
            "{file_len} bytes, a table of {slots} slots has {want}"
        ));
    }
    let live = u64_at(h, 40).min(slots);
    let used = u64_at(h, 48).clamp(live, slots);
    Ok((slots, live, used))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

impl SlotTable {
    pub fn file_name(kind: TableKind, shard: u32) -> String {
        format!("{}-{shard:02x}.tbl", kind.file_prefix())
    }

    /// Creates an empty table file (replacing any file of that name).
    pub fn create(dir: &Path, kind: TableKind, shard: u32, salt: u64) -> Result<SlotTable> {
        let path = dir.join(Self::file_name(kind, shard));
        let map = Self::create_file(&path, kind, shard, MIN_SLOTS, salt)?;
        Ok(SlotTable {
            path,
            kind,
            shard,
            salt,
            map,
            slots: MIN_SLOTS,
            live: 0,
            used: 0,
            damaged_seen: Default::default(),
            generation: 1,
        })
    }

    fn create_file(
        path: &Path,
        kind: TableKind,
        shard: u32,
        slots: u64,
        salt: u64,
    ) -> Result<MmapMut> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
        let len = HEADER_LEN as u64 + slots * SLOT_LEN as u64;
        // Allocated before it is mapped: a store into a hole of a shared mapping on a full
        // disk is a SIGBUS, so a full disk must fail here instead, as an error. (Hashing
        // spreads slots over every page anyway: a sparse table would not stay small.)
        if let Err(e) = rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len) {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(StoreError::io(path, e.into()));
        }
        let mut map = Self::map(&file, path)?;
        map[..64].copy_from_slice(&encode_header(kind, shard, slots, salt));
        Ok(map)
    }

    fn map(file: &File, path: &Path) -> Result<MmapMut> {
        // SAFETY: a shared read-write mapping of a table file of the locked cache directory
        // (no other process opens it). Every byte of the file is allocated before it is
        // mapped (`create_file` fallocates; `open` only accepts files of this table version,
        // all made by `create_file`, at exactly their full length), so neither a read nor a
        // store can fault on a hole or past EOF, not even on a full disk. This process only
        // changes a table's length by replacing the whole file (rename), never by truncating
        // a mapped one; the map is only touched through the owning `SlotTable` under its
        // shard lock, and slots are copied out, so no reference outlives a replaced map. A
        // file cut short from outside is the one case this cannot rule out (SIGBUS), as for
        // segments (storage-format.md §4.1).
        unsafe { MmapMut::map_mut(file) }.map_err(|e| StoreError::io(path, e))
    }

    /// Opens an existing table file, checking its header against what it must be.
    pub fn open(
        dir: &Path,
        kind: TableKind,
        shard: u32,
        salt: u64,
    ) -> std::result::Result<SlotTable, TableError> {
        let path = dir.join(Self::file_name(kind, shard));
        let invalid = |why: String| TableError::Invalid {
            path: path.clone(),
            why,
        };
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TableError::Missing(path))
            }
            Err(e) => return Err(invalid(format!("cannot open: {e}"))),
        };
        let len = file
            .metadata()
            .map_err(|e| invalid(format!("cannot stat: {e}")))?
            .len();
        if len < HEADER_LEN as u64 {
            return Err(invalid(format!("{len} bytes is shorter than its header")));
        }
        let map = Self::map(&file, &path).map_err(|e| invalid(e.to_string()))?;
        let (slots, live, used) = check_header(&map, kind, shard, salt, len).map_err(invalid)?;
        Ok(SlotTable {
            path,
            kind,
            shard,
            salt,
            map,
            slots,
            live,
            used,
            damaged_seen: Default::default(),
            generation: 1,
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn live(&self) -> u64 {
        self.live
    }

    pub fn bytes_on_disk(&self) -> u64 {
        std::fs::metadata(&self.path)
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.blocks() * 512
            })
            .unwrap_or(0)
    }

    fn slot(&self, i: u64) -> &[u8] {
        let at = HEADER_LEN + i as usize * SLOT_LEN;
        &self.map[at..at + SLOT_LEN]
    }

    fn slot_mut(&mut self, i: u64) -> &mut [u8] {
        let at = HEADER_LEN + i as usize * SLOT_LEN;
        &mut self.map[at..at + SLOT_LEN]
    }

    fn home(&self, probe: &[u8; 16]) -> u64 {
        u64::from_le_bytes(probe[8..16].try_into().expect("8 bytes")) & (self.slots - 1)
    }

    fn save_counts(&mut self) {
        let (live, used) = (self.live, self.used);
        self.map[40..48].copy_from_slice(&live.to_le_bytes());
        self.map[48..56].copy_from_slice(&used.to_le_bytes());
    }

    /// Every live, intact slot holding `id` (copies left by a crash between writing a new
    /// version and deleting the old one included). `id` is the table kind's identity: 16
    /// bytes for objects, 32 for blobs; its first 16 bytes are the probe key.
    pub fn find(&self, id: &[u8]) -> Vec<Found> {
        debug_assert_eq!(id.len(), self.kind.id_len());
        let probe: [u8; 16] = id[..16].try_into().expect("16 bytes");
        let mut out = Vec::new();
        let mut i = self.home(&probe);
        for _ in 0..self.slots {
            let s = self.slot(i);
            match s[STATE_AT] {
                STATE_EMPTY => break,
                STATE_LIVE
                    if s[CONTENT_AT..CONTENT_AT + id.len()] == id[..]
                        && slot_is_intact(self.salt, s) =>
                {
                    out.push(Found {
                        index: i,
                        slot: s.try_into().expect("slot length"),
                    });
                }
                _ => {}
            }
            i = (i + 1) & (self.slots - 1);
        }
        out
    }

    /// Writes `slot` (content from `CONTENT_AT` on, reference count at `REFS_AT`) into a
    /// free slot of its probe chain and makes it live. Returns its index. Older copies are
    /// the caller's to delete, after this returns.
    pub fn insert(&mut self, slot: &[u8; SLOT_LEN]) -> Result<u64> {
        if (self.used + 1) * 4 > self.slots * 3 {
            self.rebuild(self.live + 1)?;
        }
        let probe = probe_of(slot);
        let mut i = self.home(&probe);
        let salt = self.salt;
        for _ in 0..self.slots {
            let state = self.slot(i)[STATE_AT];
            let reusable = match state {
                STATE_EMPTY | STATE_DELETED => true,
                // A live slot whose checksum fails holds nothing readable.
                _ => !slot_is_intact(salt, self.slot(i)),
            };
            if reusable {
                let s = self.slot_mut(i);
                s[REFS_AT..].copy_from_slice(&slot[REFS_AT..]);
                let crc = slot_crc(salt, s);
                s[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
                // Written last: from here on the slot is live.
                s[STATE_AT] = STATE_LIVE;
                self.live += 1;
                if state == STATE_EMPTY {
                    self.used += 1;
                }
                self.save_counts();
                return Ok(i);
            }
            i = (i + 1) & (self.slots - 1);
        }
        // Unreachable while the load factor stays under 3/4.
        Err(StoreError::io(
            &self.path,
            std::io::Error::other("slot table is full"),
        ))
    }

    /// Marks slot `i` deleted (one byte).
    pub fn delete(&mut self, i: u64) {
        let s = self.slot_mut(i);
        if s[STATE_AT] == STATE_LIVE {
            s[STATE_AT] = STATE_DELETED;
            self.live = self.live.saturating_sub(1);
            self.save_counts();
        }
    }

    /// Sets the reference count of slot `i` in place (one aligned 4-byte store, outside the
    /// checksum).
    pub fn set_refs(&mut self, i: u64, refs: u32) {
        self.slot_mut(i)[REFS_AT..REFS_AT + 4].copy_from_slice(&refs.to_le_bytes());
    }

    /// Live, intact slots from index `from` on, at most `limit` of them, and where to go on
    /// (None at the end). Slots whose checksum fails are counted and skipped.
    pub fn scan(&self, from: u64, limit: usize) -> (Vec<Found>, Option<u64>) {
        let mut out = Vec::new();
        let mut i = from;
        while i < self.slots {
            let s = self.slot(i);
            if s[STATE_AT] == STATE_LIVE {
                if slot_is_intact(self.salt, s) {
                    out.push(Found {
                        index: i,
                        slot: s.try_into().expect("slot length"),
                    });
                    if out.len() >= limit {
                        return (out, Some(i + 1));
                    }
                } else {
                    self.damaged_seen
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            i += 1;
        }
        (out, None)
    }

    /// Rewrites the table into a new file sized for at least `want_live` live slots (and for
    /// every slot kept) at most half full, keeping only live intact slots for which `keep`
    /// holds (the newest copy of each key; `keep` gets the old table and the slot). The old
    /// file is replaced by a rename, so a crash leaves either table whole.
    pub fn rebuild_with(
        &mut self,
        want_live: u64,
        keep: &dyn Fn(&SlotTable, &Found) -> bool,
    ) -> Result<()> {
        let (all, _) = self.scan(0, usize::MAX);
        let kept: Vec<&Found> = all.iter().filter(|f| keep(self, f)).collect();
        // Sized from what is kept, not only from the header's best-effort counts, so that
        // the copy below always finds a free slot.
        let slots = (want_live.max(kept.len() as u64).max(1) * 2)
            .next_power_of_two()
            .clamp(MIN_SLOTS, MAX_SLOTS);
        if kept.len() as u64 * 4 > slots * 3 {
            return Err(StoreError::io(
                &self.path,
                std::io::Error::other("slot table cannot grow past its largest size"),
            ));
        }
        let tmp = self.path.with_extension("tbl.tmp");
        let mut map = Self::create_file(&tmp, self.kind, self.shard, slots, self.salt)?;
        for f in &kept {
            let probe = probe_of(&f.slot);
            let mut i = u64::from_le_bytes(probe[8..16].try_into().expect("8 bytes")) & (slots - 1);
            loop {
                let at = HEADER_LEN + i as usize * SLOT_LEN;
                if map[at + STATE_AT] == STATE_EMPTY {
                    map[at..at + SLOT_LEN].copy_from_slice(&f.slot);
                    break;
                }
                i = (i + 1) & (slots - 1);
            }
        }
        let live = kept.len() as u64;
        map[40..48].copy_from_slice(&live.to_le_bytes());
        map[48..56].copy_from_slice(&live.to_le_bytes());
        map.flush().map_err(|e| StoreError::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| StoreError::io(&self.path, e))?;
        // From the rename on, the new file is the table: use it even if the directory sync
        // below fails (writes to the old, unlinked file would be lost).
        self.map = map;
        self.slots = slots;
        self.live = live;
        self.used = live;
        self.generation += 1;
        if let Some(parent) = self.path.parent() {
            crate::store::log::sync_dir(parent)?;
        }
        Ok(())
    }

    fn rebuild(&mut self, want_live: u64) -> Result<()> {
        let newest = self.newest_rule();
        self.rebuild_with(want_live, &|t, f| t.is_newest(f, newest))
    }

    fn newest_rule(&self) -> fn(&[u8], &[u8]) -> bool {
        match self.kind {
            TableKind::Objects => crate::store::directory::object_slot_newer,
            TableKind::Blobs => crate::store::directory::blob_slot_newer,
        }
    }

    /// Whether `f` is the copy readers take for its key: no other live copy is newer (ties go
    /// to the lower index).
    pub fn is_newest(&self, f: &Found, newer: fn(&[u8], &[u8]) -> bool) -> bool {
        self.find(&f.slot[CONTENT_AT..CONTENT_AT + self.kind.id_len()])
            .iter()
            .all(|o| {
                o.index == f.index
                    || !(newer(&o.slot, &f.slot) || (!newer(&f.slot, &o.slot) && o.index < f.index))
            })
    }

    /// Pushes dirty pages to disk.
    pub fn flush(&self) -> Result<()> {
        self.map.flush().map_err(|e| StoreError::io(&self.path, e))
    }

    /// Drops every slot (the table becomes empty and minimal).
    pub fn clear(&mut self) -> Result<()> {
        self.rebuild_with(0, &|_, _| false)
    }
}
