//! criterion benchmarks of the store: insert and lookup at 1 KiB, 64 KiB and 1 MiB, the cost
//! of the checksum on the way out, and a cold (not in page cache) read. Peers measured in
//! the same run: a sled `get` of a value of the same size (what the index alone costs), and
//! `pread` of the same bytes from a plain file.
//!
//! `cargo bench --bench store`

use std::os::unix::fs::FileExt;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use cairn::store::{Store, StoreConfig, MIB};

#[path = "common.rs"]
mod common;
use common::{body, spec};

const SIZES: [(usize, &str); 3] = [(1024, "1KiB"), (64 * 1024, "64KiB"), (1024 * 1024, "1MiB")];
const DAY: Duration = Duration::from_secs(86400);

fn open(dir: &std::path::Path) -> Store {
    let mut cfg = StoreConfig::new(dir, 8 * 1024 * MIB);
    cfg.segment_size = 256 * MIB;
    cfg.min_free_disk = 0;
    Store::open(cfg).expect("open store")
}

fn insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("insert");
    for (size, name) in SIZES {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut i = 0u64;
        // Pre-generated bodies: the benchmark measures the store, not the generator.
        let bodies: Vec<Vec<u8>> = (0..16).map(|s| body(s, size)).collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                i += 1;
                // Make each body distinct (no dedupe) by changing its first bytes.
                let mut data = bodies[(i % 16) as usize].clone();
                data[..8].copy_from_slice(&i.to_le_bytes());
                store.insert(spec(format!("k/{i}"), DAY), &data).unwrap()
            })
        });
        drop(store);
    }
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    for (size, name) in SIZES {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let n = if size >= MIB as usize { 200 } else { 2000 };
        for i in 0..n {
            store
                .insert(spec(format!("k/{i}"), DAY), &body(i, size))
                .unwrap();
        }
        // Peer 1: sled alone, same key count, value of the same size.
        let sled_dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(sled_dir.path())
            .cache_capacity(64 * MIB)
            .open()
            .unwrap();
        for i in 0..n {
            db.insert(format!("k/{i}"), body(i, size)).unwrap();
        }
        // Peer 2: pread of the same bytes from a plain file.
        let file_path = sled_dir.path().join("plain");
        std::fs::write(&file_path, body(0, size)).unwrap();
        let file = std::fs::File::open(&file_path).unwrap();
        let mut buf = vec![0u8; size];

        g.throughput(Throughput::Bytes(size as u64));
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new("cairn", name), |b| {
            b.iter(|| {
                i = (i + 7919) % n;
                let hit = store.lookup(format!("k/{i}").as_bytes()).unwrap().unwrap();
                let mut body = hit.body;
                let mut total = 0usize;
                while let Some(c) = body.next_chunk() {
                    total += c.unwrap().len();
                }
                total
            })
        });
        g.bench_function(BenchmarkId::new("sled_get", name), |b| {
            b.iter(|| {
                i = (i + 7919) % n;
                db.get(format!("k/{i}")).unwrap().unwrap().len()
            })
        });
        g.bench_function(BenchmarkId::new("pread", name), |b| {
            b.iter(|| file.read_at(&mut buf, 0).unwrap())
        });
        // What the check on the way out costs: crc32 over the same bytes.
        let data = body(1, size);
        g.bench_function(BenchmarkId::new("crc32_only", name), |b| {
            b.iter(|| crc32fast::hash(&data))
        });
        drop(store);
    }
    g.finish();
}

fn cold_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("cold_lookup");
    g.sample_size(20);
    for (size, name) in [(4096usize, "4KiB"), (1024 * 1024, "1MiB")] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let n = 64u64;
        for i in 0..n {
            store
                .insert(spec(format!("k/{i}"), DAY), &body(i, size))
                .unwrap();
        }
        store.checkpoint().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new("async_cold", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Evict the pages (page cache and this process's mapping), then time one
                    // lookup + full read through the async API.
                    store.drop_cached_pages().unwrap();
                    i = (i + 13) % n;
                    let key = format!("k/{i}");
                    let start = std::time::Instant::now();
                    let got = rt.block_on(async {
                        let hit = store.lookup_async(key.as_bytes()).await.unwrap().unwrap();
                        let mut body = hit.body;
                        let mut t = 0;
                        while let Some(c) = body.next_chunk_async().await {
                            t += c.unwrap().len();
                        }
                        t
                    });
                    total += start.elapsed();
                    assert_eq!(got, size);
                }
                total
            })
        });
        g.bench_function(BenchmarkId::new("async_warm", name), |b| {
            b.iter(|| {
                i = (i + 13) % n;
                let key = format!("k/{i}");
                rt.block_on(async {
                    let hit = store.lookup_async(key.as_bytes()).await.unwrap().unwrap();
                    let mut body = hit.body;
                    let mut t = 0;
                    while let Some(c) = body.next_chunk_async().await {
                        t += c.unwrap().len();
                    }
                    t
                })
            })
        });
        drop(store);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = insert, lookup, cold_lookup
}
criterion_main!(benches);
