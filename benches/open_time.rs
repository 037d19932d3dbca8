//! Open time of a cache of 1,000 objects versus one of 1,000,000: opening must not scan
//! every object, so the two should be about the same. Prints both (median of several
//! opens, after a clean close and after an unclean stop) and their ratio.
//!
//! The unclean stop is real: a child process (this program run again) opens the cache,
//! writes `UNCLEAN_WRITES` objects without a checkpoint and is killed with SIGKILL; the open
//! that follows replays those records and leaves the recount to the background thread, as
//! `cairn serve` does.
//!
//! `cargo bench --bench open_time` (builds both caches first: a few minutes for 1M objects;
//! set CAIRN_BENCH_DIR to reuse caches between runs, CAIRN_BENCH_LARGE to change 1M).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

/// One 200-byte object, fresh for 30 days, whose body no other seed shares.
fn insert(store: &Store, key: String, seed: u64) {
    store
        .insert(spec(key, Duration::from_secs(30 * 86400)), &body(seed, 200))
        .unwrap();
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
        insert(&store, format!("bench/open/{i:08}"), i);
        if i % 100_000 == 99_999 {
            store.checkpoint().unwrap();
            eprintln!("  {} objects in {:.1?}", i + 1, t.elapsed());
        }
    }
    store.close().unwrap();
}

/// Set in the child that writes and is killed; holds the cache directory.
const CHILD_ENV: &str = "CAIRN_BENCH_OPEN_CHILD";
/// Objects the child writes after its (clean) open and before it is killed.
const UNCLEAN_WRITES: u64 = 2000;

/// The child: open, write without a checkpoint, say so, then wait to be killed.
fn unclean_child(dir: &Path) -> ! {
    let store = Store::open(config(dir)).unwrap();
    for i in 0..UNCLEAN_WRITES {
        insert(&store, format!("bench/open/unclean/{i:06}"), i + 7_000_000);
    }
    println!("written");
    // Bounded: the parent kills this process as soon as it reads the line above.
    std::thread::sleep(Duration::from_secs(60));
    std::process::exit(1);
}

/// Leaves `dir` as SIGKILL leaves it in the middle of writing.
fn stop_uncleanly(dir: &Path) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "written", "the writing child failed");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Median open time after an unclean stop, and the records each open replayed.
fn median_unclean_open(dir: &Path, runs: usize) -> (Duration, u64) {
    let mut times = Vec::new();
    let mut replayed = 0;
    for _ in 0..runs {
        stop_uncleanly(dir);
        let mut cfg = config(dir);
        // As in the daemon: the recount after an unclean stop runs in the background.
        cfg.background_interval = Some(Duration::from_secs(3600));
        let t = Instant::now();
        let store = Store::open(cfg).unwrap();
        times.push(t.elapsed());
        let report = store.open_report();
        assert!(
            !report.clean_shutdown,
            "the child was meant to stop uncleanly"
        );
        replayed = report.replayed_records;
        eprintln!(
            "  unclean open {:?}: {:.2?}, {replayed} records replayed",
            dir.file_name().unwrap(),
            times.last().unwrap()
        );
        assert!(store
            .lookup(format!("bench/open/unclean/{:06}", UNCLEAN_WRITES - 1).as_bytes())
            .unwrap()
            .is_some());
        store.close().unwrap();
    }
    times.sort();
    (times[times.len() / 2], replayed)
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
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        unclean_child(Path::new(&dir));
    }
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
    let (small_u, small_r) = median_unclean_open(&small_dir, 5);
    let (large_u, large_r) = median_unclean_open(&large_dir, 5);
    println!("open after SIGKILL ({UNCLEAN_WRITES} objects written since the last checkpoint): {small_n} objects: {small_u:.2?} ({small_r} records replayed); {large_n} objects: {large_u:.2?} ({large_r} records replayed); ratio {:.2}",
        large_u.as_secs_f64() / small_u.as_secs_f64());
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
