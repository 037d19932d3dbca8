//! How a store is opened: sizes, durability, time. Every field states its unit and default.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::store::clock::{Clock, SystemClock};
use crate::store::error::{Result, StoreError};

pub const MIB: u64 = 1024 * 1024;

/// When segment bytes are forced to stable storage (fdatasync). Process crashes (SIGKILL)
/// lose nothing committed under any policy, because written bytes are in the kernel's page
/// cache; the policy only matters for power loss or a kernel crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Never fsync; the OS writes back on its own schedule (about 30 s on Linux). A power
    /// loss can lose recent objects; torn ones are detected and dropped, never served.
    Never,
    /// fsync the active segment and flush the index at every checkpoint (default: every
    /// second) and when a segment is sealed. A power loss loses at most the objects
    /// committed since the last checkpoint.
    #[default]
    Checkpoint,
    /// fsync before every commit returns. Slowest; a power loss loses nothing committed.
    Commit,
}

impl FsyncPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FsyncPolicy::Never => "never",
            FsyncPolicy::Checkpoint => "checkpoint",
            FsyncPolicy::Commit => "commit",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "never" => Some(FsyncPolicy::Never),
            "checkpoint" => Some(FsyncPolicy::Checkpoint),
            "commit" => Some(FsyncPolicy::Commit),
            _ => None,
        }
    }
}

/// Configuration of a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The cache directory (created if absent).
    pub dir: PathBuf,
    /// Bytes of segment files the store may keep on disk (sled's own files are not counted;
    /// see storage-format.md). At least two segments.
    pub capacity: u64,
    /// Maximum size of one segment file in bytes. Default 256 MiB; at least 1 MiB.
    pub segment_size: u64,
    /// How long an expired object is kept for revalidation and stale-if-error before the
    /// sweeper drops it. Default 1 hour.
    pub stale_grace: Duration,
    /// Durability policy. Default [`FsyncPolicy::Checkpoint`].
    pub fsync: FsyncPolicy,
    /// How often the background thread checkpoints the index and sweeps; `None` starts no
    /// background thread (the caller runs [`crate::store::Store::sweep`] and
    /// [`crate::store::Store::checkpoint`] itself). Default 1 s.
    pub background_interval: Option<Duration>,
    /// Bytes of memory sled may use for its page cache. Default 64 MiB.
    pub index_cache_bytes: u64,
    /// Bytes of free disk space the store leaves alone, so that sled and the rest of the
    /// system never meet ENOSPC. Default 64 MiB.
    pub min_free_disk: u64,
    /// Largest body stored, in bytes; larger fills fail with `ObjectTooLarge`. Default: a
    /// quarter of the capacity.
    pub max_object_size: Option<u64>,
    /// Bits in the in-memory recency table (fixed memory: bits / 8 bytes). Default 2^23
    /// (1 MiB).
    pub recency_bits: usize,
    /// Bytes the sweeper may copy forward (second chance for recently read objects) per
    /// reclaimed segment. Default: a quarter of a segment.
    pub copy_forward_budget: Option<u64>,
    /// The clock; tests substitute a manual one.
    pub clock: Arc<dyn Clock>,
}

impl StoreConfig {
    /// Defaults for a cache in `dir` holding up to `capacity` bytes.
    pub fn new(dir: impl Into<PathBuf>, capacity: u64) -> Self {
        Self {
            dir: dir.into(),
            capacity,
            segment_size: 256 * MIB,
            stale_grace: Duration::from_secs(3600),
            fsync: FsyncPolicy::default(),
            background_interval: Some(Duration::from_secs(1)),
            index_cache_bytes: 64 * MIB,
            min_free_disk: 64 * MIB,
            max_object_size: None,
            recency_bits: 1 << 23,
            copy_forward_budget: None,
            clock: Arc::new(SystemClock),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.segment_size < MIB {
            return Err(StoreError::Config(format!(
                "segment_size is {} bytes; the minimum is 1 MiB ({MIB} bytes)",
                self.segment_size
            )));
        }
        if self.segment_size > 1 << 40 {
            return Err(StoreError::Config(format!(
                "segment_size is {} bytes; the maximum is 1 TiB",
                self.segment_size
            )));
        }
        if self.capacity < 2 * self.segment_size {
            return Err(StoreError::Config(format!(
                "capacity ({} bytes) must hold at least two segments of {} bytes; \
                 raise the capacity or lower segment_size",
                self.capacity, self.segment_size
            )));
        }
        Ok(())
    }

    pub(crate) fn max_object_size(&self) -> u64 {
        self.max_object_size.unwrap_or(self.capacity / 4)
    }

    pub(crate) fn copy_forward_budget(&self) -> u64 {
        self.copy_forward_budget.unwrap_or(self.segment_size / 4)
    }

    /// Largest object record (key, metadata, tags) accepted.
    pub(crate) fn max_object_record(&self) -> usize {
        (self.segment_size / 4).min(MIB) as usize
    }

    /// Largest blob record (list of runs) accepted.
    pub(crate) fn max_blob_record(&self) -> usize {
        (self.segment_size / 4).min(16 * MIB - 1) as usize
    }
}
