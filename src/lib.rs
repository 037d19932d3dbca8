//! Cairn: a self-hosted CDN edge with a persistent, disk-backed cache.
//!
//! Modules:
//! - [`store`]: the persistent cache (segments, index, sweeper, recovery).
//! - [`config`]: the validated configuration model, TOML loading, quick mode.

pub mod config;
pub mod store;

/// Fuzz target bodies (`fuzz/fuzz_targets/`), replayed over the committed corpora by `cargo test`.
pub mod fuzzing;
