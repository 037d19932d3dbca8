//! Anonymous memory as the cache grows: writes small objects (4 KiB and less) until at least
//! 20x the process's RssAnon has been written, printing RssAnon, bytes written and store
//! stats along the way. RssAnon should stay flat: bodies live in mapped segment files
//! (page cache, not anonymous memory), the index's cache is bounded, and recency is a
//! fixed-size table.
//!
//! `cargo bench --bench rss` (CAIRN_BENCH_BYTES sets the total, default 3 GiB;
//! CAIRN_BENCH_INDEX_CACHE overrides sled's cache size in bytes, to see what it changes).

use std::time::{Duration, Instant};

use cairn::store::{Store, StoreConfig, MIB};

#[path = "common.rs"]
mod common;
use common::{body, mib, proc_status_bytes, spec};

fn main() {
    let total: u64 = std::env::var("CAIRN_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3 * 1024 * MIB);
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-rss")
        .tempdir_in(
            std::env::var_os("CAIRN_BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into()),
        )
        .unwrap();
    let mut cfg = StoreConfig::new(dir.path(), total + 2048 * MIB);
    cfg.segment_size = 256 * MIB;
    cfg.min_free_disk = 0;
    if let Some(c) = std::env::var("CAIRN_BENCH_INDEX_CACHE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.index_cache_bytes = c;
    }
    let store = Store::open(cfg).unwrap();
    let start_rss = proc_status_bytes("RssAnon");
    println!("start: RssAnon {:.1} MiB", mib(start_rss));
    println!(
        "{:>12} {:>10} {:>12} {:>12} {:>10} {:>8}",
        "written MiB", "objects", "RssAnon MiB", "RssFile MiB", "index MiB", "ratio"
    );
    let t = Instant::now();
    let mut written = 0u64;
    let mut i = 0u64;
    let mut next_report = 0u64;
    let mut max_rss = 0u64;
    let sizes = [512usize, 1024, 2048, 3000, 4096];
    let templates: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(s, &n)| body(s as u64, n))
        .collect();
    while written < total {
        let mut data = templates[(i % sizes.len() as u64) as usize].clone();
        data[..8].copy_from_slice(&i.to_le_bytes());
        store
            .insert(
                spec(format!("rss/{i:010}"), Duration::from_secs(86400)),
                &data,
            )
            .unwrap();
        written += data.len() as u64;
        i += 1;
        if written >= next_report {
            let rss = proc_status_bytes("RssAnon");
            max_rss = max_rss.max(rss);
            let s = store.stats();
            println!(
                "{:>12.0} {:>10} {:>12.1} {:>12.1} {:>10.1} {:>8.1}",
                mib(written),
                s.objects,
                mib(rss),
                mib(proc_status_bytes("RssFile")),
                mib(s.index_bytes_on_disk),
                written as f64 / rss as f64
            );
            next_report += total / 20;
        }
    }
    let rss = proc_status_bytes("RssAnon");
    max_rss = max_rss.max(rss);
    let s = store.stats();
    println!(
        "end: {} objects, {:.0} MiB written in {:.1?}; RssAnon {:.1} MiB (max {:.1} MiB); written / max RssAnon = {:.1}x; segments on disk {:.0} MiB, index {:.0} MiB",
        s.objects,
        mib(written),
        t.elapsed(),
        mib(rss),
        mib(max_rss),
        written as f64 / max_rss as f64,
        mib(s.bytes_on_disk),
        mib(s.index_bytes_on_disk)
    );
    store.close().unwrap();
}
