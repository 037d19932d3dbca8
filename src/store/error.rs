//! The store's error type: every failure names the thing it concerns (directory, segment,
//! key) and, where there is one, what the operator can do about it.

use std::path::PathBuf;

use crate::store::record::DecodeError;

/// Errors returned by [`crate::store::Store`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cache directory {dir} is in use by another process (pid {holder}); \
         stop that process or choose another cache directory"
    )]
    Locked { dir: PathBuf, holder: String },

    #[error(
        "cache directory {dir} has format version {found}, but this cairn reads format \
         version {supported}; upgrade cairn or point it at another directory (nothing was changed)"
    )]
    UnsupportedFormat {
        dir: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error(
        "{dir} is not a cairn cache directory: {reason}; refusing to use it (nothing was changed)"
    )]
    NotACache { dir: PathBuf, reason: String },

    #[error("invalid store configuration: {0}")]
    Config(String),

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("index (sled) error in {dir}: {message}")]
    Index { dir: PathBuf, message: String },

    #[error("corrupt data in segment {segment} at offset {offset}: {source}")]
    Corrupt {
        segment: u64,
        offset: u64,
        #[source]
        source: DecodeError,
    },

    #[error("corrupt index entry in tree {tree}: {source}")]
    CorruptIndex {
        tree: &'static str,
        #[source]
        source: DecodeError,
    },

    #[error("cache key is {len} bytes long; the limit is {max} bytes")]
    KeyTooLarge { len: usize, max: usize },

    #[error("object record for this key would be {len} bytes (metadata, tags, key); the limit is {max} bytes")]
    RecordTooLarge { len: usize, max: usize },

    #[error("object body exceeds the maximum object size of {max} bytes; it is not cached")]
    ObjectTooLarge { max: u64 },

    #[error(
        "not enough free disk space for the cache in {dir}: {free} bytes free, the store keeps \
         {reserve} bytes free (min_free_disk); caching resumes when space returns"
    )]
    DiskFull {
        dir: PathBuf,
        free: u64,
        reserve: u64,
    },

    #[error(
        "cache is full: {on_disk} bytes on disk with a capacity of {capacity} bytes; the sweeper \
         is reclaiming space and caching resumes shortly"
    )]
    OverCapacity { on_disk: u64, capacity: u64 },

    #[error("this fill already failed ({0}); drop it and start a new one")]
    FillFailed(String),

    #[error("a segment this object was being written into was reclaimed before commit; the object was not stored")]
    FillLost,

    #[error("the body of object {key} failed its checksum in segment {segment} at offset {offset}; the object was dropped")]
    BodyCorrupt {
        key: String,
        segment: u64,
        offset: u64,
    },
}

impl StoreError {
    /// A short, stable name for the kind of failure (log fields, rate limiting by reason).
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Locked { .. } => "locked",
            StoreError::UnsupportedFormat { .. } => "unsupported_format",
            StoreError::NotACache { .. } => "not_a_cache",
            StoreError::Config(_) => "config",
            StoreError::Io { .. } => "io",
            StoreError::Index { .. } => "index",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::CorruptIndex { .. } => "corrupt_index",
            StoreError::KeyTooLarge { .. } => "key_too_large",
            StoreError::RecordTooLarge { .. } => "record_too_large",
            StoreError::ObjectTooLarge { .. } => "object_too_large",
            StoreError::DiskFull { .. } => "disk_full",
            StoreError::OverCapacity { .. } => "over_capacity",
            StoreError::FillFailed(_) => "fill_failed",
            StoreError::FillLost => "fill_lost",
            StoreError::BodyCorrupt { .. } => "body_corrupt",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
