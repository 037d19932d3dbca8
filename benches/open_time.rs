//! Open time of a cache of 1,000 objects versus one of 1,000,000: opening must not scan
//! every object, so the two should be about the same. Prints both (median of several
//! opens, after a clean close and after an unclean stop) and their ratio.
//!
//! `cargo bench --bench open_time` (builds both caches first: a few minutes for 1M objects;
//! set CAIRN_BENCH_DIR to reuse caches between runs, CAIRN_BENCH_LARGE to change 1M).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn::store::{Store, StoreConfig, MIB};

#[path = "common.rs"]
mod common;
use common::{body, spec};

fn config(dir: &Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir, 64 * 1024 * MIB);
    cfg.segment_size = 256 * MIB;
    cfg.min_free_disk = 0;
    cfg.background_interval = None;
    cfg
}

fn build(dir: &Path, n: u64) {
    if dir.join("FORMAT").exists() {
        let s = Store::open(config(dir)).unwrap();
        if s.stats().objects >= n {
            return;
        }
        drop(s);
        std::fs::remove_dir_all(dir).unwrap();
    }
    let store = Store::open(config(dir)).unwrap();
    let t = Instant::now();
    for i in 0..n {
        store
            .insert(
                spec(
                    format!("bench/open/{i:08}"),
                    Duration::from_secs(30 * 86400),
                ),
                &body(i, 200),
            )
            .unwrap();
        if i % 100_000 == 99_999 {
            store.checkpoint().unwrap();
            eprintln!("  {} objects in {:.1?}", i + 1, t.elapsed());
        }
    }
    store.close().unwrap();
}

fn median_open(dir: &Path, runs: usize) -> (Duration, u64) {
    let mut times = Vec::new();
    let mut objects = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let store = Store::open(config(dir)).unwrap();
        times.push(t.elapsed());
        objects = store.stats().objects;
        // A lookup proves the index is usable right after opening.
        assert!(store.lookup(b"bench/open/00000000").unwrap().is_some());
        store.close().unwrap();
    }
    times.sort();
    (times[times.len() / 2], objects)
}

fn main() {
    let base: PathBuf = std::env::var_os("CAIRN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("cairn-bench-open"));
    let large: u64 = std::env::var("CAIRN_BENCH_LARGE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let small_dir = base.join("small");
    let large_dir = base.join("large");
    eprintln!(
        "building caches in {} (1000 and {large} objects)",
        base.display()
    );
    build(&small_dir, 1000);
    build(&large_dir, large);
    let (small_t, small_n) = median_open(&small_dir, 7);
    let (large_t, large_n) = median_open(&large_dir, 7);
    println!("open after clean close: {small_n} objects: {small_t:.2?}; {large_n} objects: {large_t:.2?}; ratio {:.2}",
        large_t.as_secs_f64() / small_t.as_secs_f64());
    let index = |d: &Path| -> u64 {
        fn du(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| {
                            let m = e.metadata().unwrap();
                            if m.is_dir() {
                                du(&e.path())
                            } else {
                                m.len()
                            }
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        du(&d.join("index"))
    };
    println!(
        "index size on disk: {small_n} objects: {:.1} MiB; {large_n} objects: {:.1} MiB ({:.0} bytes/object)",
        common::mib(index(&small_dir)),
        common::mib(index(&large_dir)),
        index(&large_dir) as f64 / large_n.max(1) as f64
    );
}
