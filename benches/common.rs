//! Shared by the benchmark programs.

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use cairn::store::ObjectSpec;

pub fn spec(key: String, ttl: Duration) -> ObjectSpec {
    let now = SystemTime::now();
    ObjectSpec {
        key: key.into_bytes(),
        distribution: "EBENCH".into(),
        tags: vec![],
        meta: b"content-type: application/octet-stream\r\ncache-control: max-age=86400\r\n"
            .to_vec(),
        stored_at: now,
        expires_at: now + ttl,
    }
}

/// Distinct pseudo-random bytes per seed (xorshift), so bodies do not deduplicate.
pub fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A field of /proc/self/status in bytes (e.g. "RssAnon").
pub fn proc_status_bytes(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let kb: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            return kb * 1024;
        }
    }
    0
}

pub fn mib(n: u64) -> f64 {
    n as f64 / (1024.0 * 1024.0)
}
