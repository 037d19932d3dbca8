//! The cache directory: its layout, the format file that says which version wrote it and
//! carries the per-cache salt, and the lock that keeps a second process out.
//!
//! ```text
//! DIR/
//!   FORMAT            "cairn-cache", format version, salt (text, written once)
//!   lock              flock'd by the owning process, holds its pid
//!   segments/         <16 hex digit id>.seg, one file per segment
//!   index/            the index: sled's files and the object directory's tables
//!                     (derived; rebuilt from the segments when needed)
//!   index.broken-*/   an index that could not be used, kept for inspection
//!   invalidations.jsonl  the admin API's invalidation journal (not the store's)
//! ```

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::store::error::{Result, StoreError};
use crate::store::record::FORMAT_VERSION;

const FORMAT_FILE: &str = "FORMAT";
const FORMAT_MAGIC: &str = "cairn-cache";
const LOCK_FILE: &str = "lock";
pub const SEGMENTS_DIR: &str = "segments";
pub const INDEX_DIR: &str = "index";

/// A locked cache directory. The lock is released when this is dropped.
#[derive(Debug)]
pub struct CacheDir {
    pub root: PathBuf,
    pub salt: u64,
    _lock: File,
}

/// Cache directories this process has open. A lock held by this process's own pid on a
/// directory not in this set is a descriptor inherited by a child forked by some thread
/// and not yet exec'd (flock follows the open file description): it goes away by itself.
static OPEN_HERE: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn open_here() -> std::sync::MutexGuard<'static, Option<HashSet<PathBuf>>> {
    OPEN_HERE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for CacheDir {
    fn drop(&mut self) {
        if let Some(set) = open_here().as_mut() {
            set.remove(&self.root);
        }
    }
}

impl CacheDir {
    pub fn segments(&self) -> PathBuf {
        self.root.join(SEGMENTS_DIR)
    }

    pub fn index(&self) -> PathBuf {
        self.root.join(INDEX_DIR)
    }

    /// Creates the directory if needed, takes the lock, and reads (or writes, for a new
    /// cache) the format file.
    pub fn open(root: &Path) -> Result<CacheDir> {
        std::fs::create_dir_all(root).map_err(|e| StoreError::io(root, e))?;
        let root = root.canonicalize().map_err(|e| StoreError::io(root, e))?;
        let format_path = root.join(FORMAT_FILE);
        // Refuse what is not ours before writing anything (even the lock file) into it.
        match std::fs::read_to_string(&format_path) {
            Ok(text) => {
                parse_format(&root, &text)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => refuse_foreign_contents(&root)?,
            Err(e) => return Err(StoreError::io(&format_path, e)),
        }
        let lock = lock(&root)?;
        // Read again under the lock: another process may have initialised it meanwhile.
        let salt = match std::fs::read_to_string(&format_path) {
            Ok(text) => parse_format(&root, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                refuse_foreign_contents(&root)?;
                let salt = new_salt()?;
                write_format(&root, salt)?;
                salt
            }
            Err(e) => return Err(StoreError::io(&format_path, e)),
        };
        let segments = root.join(SEGMENTS_DIR);
        std::fs::create_dir_all(&segments).map_err(|e| StoreError::io(&segments, e))?;
        open_here()
            .get_or_insert_with(HashSet::new)
            .insert(root.clone());
        Ok(CacheDir {
            root,
            salt,
            _lock: lock,
        })
    }

    /// Moves the index directory aside (kept for inspection; older ones are removed so
    /// they do not pile up). Returns where it went.
    pub fn move_index_aside(&self) -> Result<Option<PathBuf>> {
        let index = self.index();
        if !index.exists() {
            return Ok(None);
        }
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("index.broken-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = self.root.join(format!("index.broken-{stamp}"));
        std::fs::rename(&index, &aside).map_err(|e| StoreError::io(&index, e))?;
        Ok(Some(aside))
    }
}

fn lock(root: &Path) -> Result<File> {
    let path = root.join(LOCK_FILE);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    let pid = std::process::id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut attempt = f.try_lock();
    while matches!(attempt, Err(std::fs::TryLockError::WouldBlock))
        && std::time::Instant::now() < deadline
        && read_holder(&mut f) == pid.to_string()
        && !open_here().as_ref().is_some_and(|s| s.contains(root))
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
        attempt = f.try_lock();
    }
    match attempt {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = read_holder(&mut f);
            return Err(StoreError::Locked {
                dir: root.to_path_buf(),
                holder: if holder.is_empty() {
                    "unknown".into()
                } else {
                    holder.to_string()
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
    }
    f.set_len(0)
        .and_then(|_| f.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(f, "{pid}"))
        .map_err(|e| StoreError::io(&path, e))?;
    Ok(f)
}

fn read_holder(f: &mut File) -> String {
    let mut holder = String::new();
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.read_to_string(&mut holder);
    holder.trim().to_string()
}

fn parse_format(root: &Path, text: &str) -> Result<u64> {
    let not_cache = |reason: &str| StoreError::NotACache {
        dir: root.to_path_buf(),
        reason: format!("{FORMAT_FILE}: {reason}"),
    };
    let mut lines = text.lines();
    if lines.next() != Some(FORMAT_MAGIC) {
        return Err(not_cache("does not start with \"cairn-cache\""));
    }
    let mut version = None;
    let mut salt = None;
    for line in lines {
        match line.split_once(' ') {
            Some(("format-version", v)) => {
                version = Some(
                    v.trim()
                        .parse::<u32>()
                        .map_err(|_| not_cache(&format!("format-version {v:?} is not a number")))?,
                )
            }
            Some(("salt", v)) => {
                salt = Some(
                    u64::from_str_radix(v.trim(), 16)
                        .map_err(|_| not_cache(&format!("salt {v:?} is not hex")))?,
                )
            }
            _ => {}
        }
    }
    let version = version.ok_or_else(|| not_cache("no format-version line"))?;
    if version != FORMAT_VERSION {
        return Err(StoreError::UnsupportedFormat {
            dir: root.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    salt.ok_or_else(|| not_cache("no salt line"))
}

/// A directory without a FORMAT file is only initialised when it holds nothing but what a
/// previous, interrupted initialisation could have left.
fn refuse_foreign_contents(root: &Path) -> Result<()> {
    let rd = std::fs::read_dir(root).map_err(|e| StoreError::io(root, e))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ok = name == LOCK_FILE || name == SEGMENTS_DIR || name == "FORMAT.tmp";
        let empty_segments = name == SEGMENTS_DIR
            && std::fs::read_dir(e.path())
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
        if !ok || (name == SEGMENTS_DIR && !empty_segments) {
            return Err(StoreError::NotACache {
                dir: root.to_path_buf(),
                reason: format!("it has no {FORMAT_FILE} file but contains {name:?}"),
            });
        }
    }
    Ok(())
}

fn write_format(root: &Path, salt: u64) -> Result<()> {
    let tmp = root.join("FORMAT.tmp");
    let path = root.join(FORMAT_FILE);
    let text = format!("{FORMAT_MAGIC}\nformat-version {FORMAT_VERSION}\nsalt {salt:016x}\n");
    (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(root)?.sync_all()
    })()
    .map_err(|e| StoreError::io(&path, e))
}

fn new_salt() -> Result<u64> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b)
        .map_err(|e| StoreError::Config(format!("no randomness for the cache salt: {e}")))?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reopens_with_the_same_salt() {
        let d = tempfile::tempdir().unwrap();
        let a = CacheDir::open(d.path()).unwrap();
        let salt = a.salt;
        drop(a);
        let b = CacheDir::open(d.path()).unwrap();
        assert_eq!(b.salt, salt);
    }

    #[test]
    fn second_open_is_refused_with_the_holders_pid() {
        let d = tempfile::tempdir().unwrap();
        let _a = CacheDir::open(d.path()).unwrap();
        let err = CacheDir::open(d.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        assert!(msg.contains("in use"), "{msg}");
    }

    #[test]
    fn newer_format_is_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let text = "cairn-cache\nformat-version 99\nsalt 00000000000000aa\n";
        std::fs::write(d.path().join("FORMAT"), text).unwrap();
        let err = CacheDir::open(d.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::UnsupportedFormat { found: 99, .. }),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("FORMAT")).unwrap(),
            text
        );
    }

    #[test]
    fn foreign_directories_are_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("important.txt"), "x").unwrap();
        assert!(matches!(
            CacheDir::open(d.path()),
            Err(StoreError::NotACache { .. })
        ));
        std::fs::write(d.path().join("FORMAT"), "something else\n").unwrap();
        assert!(matches!(
            CacheDir::open(d.path()),
            Err(StoreError::NotACache { .. })
        ));
    }
}
