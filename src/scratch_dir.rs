//! Scratch directories removed on drop, for library code that needs one outside tests
//! (fuzz targets, the goaccess check): `tempfile` is only a dev-dependency.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh directory under `std::env::temp_dir()` (so `TMPDIR` chooses where), removed
/// with its contents when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `<tmp>/cairn-<purpose>-<pid>-<nanos>-<n>`.
    pub(crate) fn new(purpose: &str) -> Result<Self, String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let base = std::env::temp_dir();
        let mut last_err = String::new();
        for _ in 0..16 {
            let dir = base.join(format!(
                "cairn-{purpose}-{}-{nanos}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Self(dir)),
                Err(e) => last_err = e.to_string(),
            }
        }
        Err(format!(
            "cannot create a scratch directory in {}: {last_err}",
            base.display()
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
