//! Cairn: a self-hosted CDN edge with a persistent, disk-backed cache.
//!
//! Modules:
//! - [`store`]: the persistent cache (segments, index, sweeper, recovery).
//! - [`config`]: the validated configuration model, TOML loading, quick mode.
//! - [`httpcache`]: HTTP caching rules as pure functions (Cache-Control, TTL, Age).
//! - [`cache_key`]: path normalisation and CloudFront cache keys.
//! - [`access_log`]: CloudFront standard access logs.
//! - [`origin`]: pooled origin clients, timeouts, failover.
//! - [`collapse`]: one origin fetch per cache key.
//! - [`edge`]: the viewer-facing server and request pipeline.
//! - [`admin`]: the admin API.
//! - [`serve`]: `cairn serve` (signals, reload, drain); [`demo`]: the built-in demo origin.

pub mod access_log;
pub mod admin;
pub mod body;
pub mod cache_key;
pub mod collapse;
pub mod config;
pub mod control;
pub mod demo;
pub mod edge;
pub mod fault;
pub mod httpcache;
pub mod inspect_report;
pub mod metrics;
pub mod origin;
pub mod result;
pub mod serve;
pub mod store;

/// Scratch directories removed on drop (tempfile is a dev-dependency only).
mod scratch_dir;

/// Fuzz target bodies (`fuzz/fuzz_targets/`), replayed over the committed corpora by
/// `cargo test`: compiled only with the `fuzzing` feature (cargo-fuzz's build, and the test
/// build through the dev-dependency on this crate).
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
