//! Cairn: a self-hosted CDN edge with a persistent, disk-backed cache.
//!
//! Modules:
//! - [`store`]: the persistent cache (segments, index, sweeper, recovery).

pub mod store;
