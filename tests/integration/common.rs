//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn::store::{Clock, ManualClock, ObjectSpec, Store, StoreConfig, MIB};

/// A store config for tests: small segments, no background thread unless asked.
pub fn test_config(dir: &Path, capacity: u64) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir, capacity);
    cfg.segment_size = MIB;
    cfg.background_interval = None;
    cfg.index_cache_bytes = 4 * MIB;
    cfg.min_free_disk = 0;
    cfg.recency_bits = 1 << 16;
    cfg
}

/// One day, the TTL most tests give their objects.
pub const DAY: Duration = Duration::from_secs(86_400);
/// Where manual clocks start (a fixed moment, so runs are reproducible).
pub const START_MS: u64 = 1_700_000_000_000;

/// [`test_config`] driven by a manual clock.
pub fn config(dir: &Path, capacity: u64, clock: &Arc<ManualClock>) -> StoreConfig {
    let mut cfg = test_config(dir, capacity);
    cfg.clock = clock.clone();
    cfg
}

pub fn manual_clock(start_ms: u64) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(start_ms))
}

pub fn spec(key: &str, clock: &dyn Clock, ttl: Duration) -> ObjectSpec {
    let now = UNIX_EPOCH + Duration::from_millis(clock.now_ms());
    ObjectSpec {
        key: key.as_bytes().to_vec(),
        distribution: "E1TEST".into(),
        tags: vec!["t1".into()],
        meta: format!("meta-of-{key}").into_bytes(),
        stored_at: now,
        expires_at: now + ttl,
    }
}

pub fn spec_now(key: &str, ttl: Duration) -> ObjectSpec {
    let now = SystemTime::now();
    ObjectSpec {
        key: key.as_bytes().to_vec(),
        distribution: "E1TEST".into(),
        tags: vec![],
        meta: format!("meta-of-{key}").into_bytes(),
        stored_at: now,
        expires_at: now + ttl,
    }
}

/// Deterministic pseudo-random bytes (xorshift) so bodies differ per seed.
pub fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn read(store: &Store, key: &str) -> Option<Vec<u8>> {
    store
        .lookup(key.as_bytes())
        .expect("lookup")
        .map(|h| h.body.read_all().expect("body"))
}
