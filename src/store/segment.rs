//! One segment file: created with its header, grown with fallocate ahead of every write,
//! appended to with pwrite, read through a shared read-only mmap. A segment file is never
//! truncated or rewritten in place while this process may have it mapped.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;

use crate::store::error::{Result, StoreError};
use crate::store::index::{SegmentEntry, SegmentState};
use crate::store::record::{SegmentHeader, FORMAT_VERSION, SEGMENT_HEADER_LEN};

/// File name of segment `id` inside the `segments/` directory.
pub fn file_name(id: u64) -> String {
    format!("{id:016x}.seg")
}

/// Parses a segment file name back into its id: exactly the names [`file_name`] makes (16
/// lower-case hex digits), so that a stray `...ABC.seg` or `+...seg` is ignored rather than
/// opened under a name that does not exist.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// An open segment file.
pub struct Segment {
    pub id: u64,
    path: PathBuf,
    file: File,
    /// Bytes of the file that are allocated (and therefore safe to map and read).
    allocated: AtomicU64,
    /// How long the mapping is; for the active segment the full segment size, so that it
    /// never needs remapping as the file grows.
    map_len: u64,
    map: OnceLock<Bytes>,
    sealed: AtomicBool,
    created_at_ms: u64,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("id", &self.id)
            .field("allocated", &self.allocated())
            .finish()
    }
}

struct MmapOwner(memmap2::Mmap);

impl AsRef<[u8]> for MmapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Segment {
    /// Creates segment `id`: writes its header and allocates `initial` bytes.
    pub fn create(
        dir: &Path,
        id: u64,
        salt: u64,
        created_at_ms: u64,
        initial: u64,
        segment_size: u64,
    ) -> Result<Segment> {
        let path = dir.join(file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        let seg = Segment {
            id,
            path,
            file,
            allocated: AtomicU64::new(0),
            map_len: segment_size,
            map: OnceLock::new(),
            sealed: AtomicBool::new(false),
            created_at_ms,
        };
        seg.grow_to(initial.max(SEGMENT_HEADER_LEN as u64))?;
        let header = SegmentHeader {
            version: FORMAT_VERSION,
            segment_id: id,
            salt,
            created_at_ms,
        };
        seg.write_at(&header.encode(), 0)?;
        Ok(seg)
    }

    /// Opens an existing segment file read-only and checks its header.
    pub fn open(dir: &Path, id: u64, salt: u64) -> Result<(Segment, SegmentHeader)> {
        let path = dir.join(file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        let len = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
        let mut hb = [0u8; SEGMENT_HEADER_LEN];
        let got = read_full_at(&file, &mut hb, 0).map_err(|e| StoreError::io(&path, e))?;
        let header =
            SegmentHeader::decode(&hb[..got], id, salt).map_err(|source| StoreError::Corrupt {
                segment: id,
                offset: 0,
                source,
            })?;
        let seg = Segment {
            id,
            path,
            file,
            allocated: AtomicU64::new(len),
            map_len: len,
            map: OnceLock::new(),
            sealed: AtomicBool::new(true),
            created_at_ms: header.created_at_ms,
        };
        Ok((seg, header))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// fstat() of the open file: what this segment is now, whatever its path names.
    pub fn file_metadata(&self) -> std::io::Result<std::fs::Metadata> {
        self.file.metadata()
    }

    pub fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Acquire)
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    pub fn created_at_ms(&self) -> u64 {
        self.created_at_ms
    }

    /// This segment's entry in the index's `segments` tree.
    pub fn entry(&self) -> SegmentEntry {
        SegmentEntry {
            state: if self.is_sealed() {
                SegmentState::Sealed
            } else {
                SegmentState::Active
            },
            created_at_ms: self.created_at_ms,
        }
    }

    pub fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
    }

    /// Allocates the file up to `len` bytes (fallocate: a full disk fails here, at write
    /// time, and never as a SIGBUS on a later read of the mapping).
    pub fn grow_to(&self, len: u64) -> Result<()> {
        let cur = self.allocated();
        if len <= cur {
            return Ok(());
        }
        debug_assert!(len <= self.map_len, "segment grown past its mapping");
        rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::empty(),
            cur,
            len - cur,
        )
        .map_err(|e| StoreError::io(&self.path, e.into()))?;
        self.allocated.store(len, Ordering::Release);
        Ok(())
    }

    /// Writes `buf` at `offset`, which must lie within the allocated part.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        debug_assert!(offset + buf.len() as u64 <= self.allocated());
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// Makes written bytes durable (fdatasync).
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// The whole mapping as `Bytes` (mapped on first use). Only the first
    /// [`Segment::allocated`] bytes may be read.
    pub fn bytes(&self) -> Result<Bytes> {
        if let Some(b) = self.map.get() {
            return Ok(b.clone());
        }
        // SAFETY: the mapping is read-only and shared. Cairn never truncates a segment file
        // or rewrites bytes that any index entry points at (segments are append-only and a
        // reclaimed segment is unlinked, not reused), and it only reads ranges below
        // `allocated`, which fallocate has made part of the file, so reads cannot fault
        // past EOF. Another cairn process is excluded by the directory lock; a file cut
        // short from outside while mapped is the one case this cannot rule out (SIGBUS):
        // the liveness pass drops such a segment within a pass, storage-format.md §4.1.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(self.map_len as usize)
                .map(&self.file)
        }
        .map_err(|e| StoreError::io(&self.path, e))?;
        let b = Bytes::from_owner(MmapOwner(map));
        Ok(self.map.get_or_init(|| b).clone())
    }

    /// Asks the kernel to drop this segment's cached pages (benchmarks measure cold reads
    /// with it). Pages mapped by this process are dropped from its page tables first.
    pub fn drop_cached_pages(&self) -> Result<()> {
        if let Some(b) = self.map.get() {
            let len = self.allocated().min(b.len() as u64) as usize;
            if len > 0 {
                // SAFETY: MADV_DONTNEED on a shared file mapping only drops this process's
                // page table entries; the next access refaults the same file bytes, so no
                // reference into the mapping observes different contents.
                unsafe {
                    libc::madvise(b.as_ptr() as *mut libc::c_void, len, libc::MADV_DONTNEED);
                }
            }
        }
        rustix::fs::fadvise(&self.file, 0, None, rustix::fs::Advice::DontNeed)
            .map_err(|e| StoreError::io(&self.path, e.into()))
    }
}

fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Whether every page of `data` is resident in memory (mincore), so that reading it will
/// not block on disk.
pub fn is_resident(data: &[u8]) -> bool {
    if data.is_empty() {
        return true;
    }
    let page = page_size();
    let start = data.as_ptr() as usize;
    let aligned = start & !(page - 1);
    let len = start + data.len() - aligned;
    let pages = len.div_ceil(page);
    let mut small = [0u8; 64];
    let mut large;
    let vec: &mut [u8] = if pages <= small.len() {
        &mut small[..pages]
    } else {
        large = vec![0u8; pages];
        &mut large
    };
    // SAFETY: `aligned..aligned+len` lies within a live mapping (it covers `data`, rounded
    // down to its page start), and `vec` has one byte per page of that range.
    let rc = unsafe { libc::mincore(aligned as *mut libc::c_void, len, vec.as_mut_ptr()) };
    rc == 0 && vec.iter().all(|&b| b & 1 == 1)
}

fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(rustix::param::page_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_the_store_writes_are_segments() {
        for stray in [
            "00000000000000FF.seg",
            "+00000000000000f.seg",
            "-00000000000000f.seg",
            "0000000000000 ff.seg",
        ] {
            assert_eq!(parse_file_name(stray), None, "{stray}");
        }
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(file_name(255), "00000000000000ff.seg");
        assert_eq!(parse_file_name("00000000000000ff.seg"), Some(255));
        assert_eq!(parse_file_name("ff.seg"), None);
        assert_eq!(parse_file_name("00000000000000ff.tmp"), None);
    }

    #[test]
    fn create_grow_write_map_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(dir.path(), 3, 99, 5, 4096, 1 << 20).unwrap();
        assert_eq!(seg.allocated(), 4096);
        seg.grow_to(8192).unwrap();
        seg.write_at(b"hello", 5000).unwrap();
        let b = seg.bytes().unwrap();
        assert_eq!(&b[5000..5005], b"hello");
        // Writes after mapping are visible through the mapping.
        seg.write_at(b"later", 6000).unwrap();
        assert_eq!(&b[6000..6005], b"later");
        assert!(is_resident(&b[5000..5005]));
        drop(seg);
        let (seg, h) = Segment::open(dir.path(), 3, 99).unwrap();
        assert_eq!(h.created_at_ms, 5);
        assert_eq!(seg.allocated(), 8192);
        assert!(matches!(
            Segment::open(dir.path(), 3, 98),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
