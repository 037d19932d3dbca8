//! The soak (ignored by default; `benches/soak.sh` runs it in release mode): mixed load
//! (hits, misses, ranges, revalidations, invalidations through the admin API) on a cache
//! far smaller than the working set, with the edge restarted periodically (SIGTERM, and
//! SIGKILL every third time). Every body is checked against the origin, no 5xx is
//! allowed, and the edge's RssAnon and open file descriptors, sampled each minute of each
//! process's life and before each restart, must not grow from the first steady sample to
//! the end (within [`RSS_GROWTH`] + [`RSS_SLACK_KIB`] and [`FD_SLACK`]).
//!
//! `CAIRN_SOAK_SECS` (default 600) sets the duration, `CAIRN_SOAK_RESTART_SECS` (default
//! 120) the life of each edge process.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::edge_harness::*;
use crate::mixed_load::*;

const OBJECTS: usize = 400;
const VIEWERS: usize = 4;
/// A sample is steady once its process has served this long (caches warmed up).
const STEADY_AGE: Duration = Duration::from_secs(60);
const SAMPLE_EVERY: Duration = Duration::from_secs(60);
const INVALIDATE_EVERY: Duration = Duration::from_secs(5);
/// Allowed RssAnon growth from the first steady sample: this fraction plus the slack.
const RSS_GROWTH: f64 = 0.25;
const RSS_SLACK_KIB: u64 = 8 * 1024;
/// Allowed growth of open file descriptors (viewer connections come and go).
const FD_SLACK: usize = 16;

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

struct Sample {
    at: Duration,
    life: usize,
    pid: u32,
    age: Duration,
    rss_kib: u64,
    fds: usize,
    complete: u64,
    why: &'static str,
}

fn grew(first: &Sample, last: &Sample) -> Option<String> {
    let rss_bound = (first.rss_kib as f64 * (1.0 + RSS_GROWTH)) as u64 + RSS_SLACK_KIB;
    let fd_bound = first.fds + FD_SLACK;
    (last.rss_kib > rss_bound || last.fds > fd_bound).then(|| {
        format!(
            "from {:?} to {:?}: RssAnon {} -> {} KiB (bound {rss_bound}), fds {} -> {} (bound {fd_bound})",
            first.at, last.at, first.rss_kib, last.rss_kib, first.fds, last.fds
        )
    })
}

/// Posts an invalidation without waiting for it; false if the edge did not take it.
async fn invalidate(admin: SocketAddr, path: &str) -> bool {
    let body = serde_json::json!({ "distribution": "t", "paths": [path] }).to_string();
    try_request(
        admin,
        "POST",
        "127.0.0.1",
        "/invalidations",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await
    .is_ok_and(|r| r.status == 201)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 10-minute soak: cargo test --release --test integration -- --ignored soak"]
async fn soak_mixed_load_with_restarts() {
    let duration = env_secs("CAIRN_SOAK_SECS", 600);
    let life = env_secs("CAIRN_SOAK_RESTART_SECS", 120);
    let seed: u64 = rand::random();
    println!(
        "soak: {duration:?}, a restart every {life:?}, {VIEWERS} viewers, {OBJECTS} objects, seed {seed}"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let cat = Catalogue::new(OBJECTS);
    let origin = catalogue_origin(cat.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    // 16 MiB of 2 MiB segments for a working set of about 50 MB.
    let cfg = catalogue_config(dir.path(), &origin.url(), "16MiB", "2MiB");
    let stats = Arc::new(Stats::default());

    let start = Instant::now();
    let mut edge = Edge::with_config(&cfg, dir.path());
    let addr = Arc::new(Mutex::new(edge.addr));
    let stop = Arc::new(AtomicBool::new(false));
    let viewers: Vec<_> = (0..VIEWERS)
        .map(|v| {
            tokio::spawn(viewer(
                addr.clone(),
                cat.clone(),
                stop.clone(),
                stats.clone(),
                seed ^ (v as u64 + 1),
                u64::MAX,
            ))
        })
        .collect();

    let mut samples: Vec<Sample> = Vec::new();
    let mut lives = 0usize;
    let mut born = Instant::now();
    let mut next_sample = born + SAMPLE_EVERY;
    let mut next_invalidation = Instant::now() + INVALIDATE_EVERY;
    let (mut invalidations, mut refused_invalidations) = (0u32, 0u32);
    let mut restarts: Vec<String> = Vec::new();
    let sample = |edge: &Edge, life: usize, born: Instant, why| {
        let (rss_kib, fds) = rss_anon_and_fds(edge.pid());
        Sample {
            at: start.elapsed(),
            life,
            pid: edge.pid(),
            age: born.elapsed(),
            rss_kib,
            fds,
            complete: Stats::get(&stats.complete),
            why,
        }
    };
    // Bounded: one pass a second, and the deadline.
    for _ in 0..duration.as_secs() * 2 + 10 {
        let now = Instant::now();
        if start.elapsed() >= duration {
            break;
        }
        if now >= next_invalidation {
            next_invalidation = now + INVALIDATE_EVERY;
            let i = rng.random_range(0..OBJECTS);
            cat.bump(i);
            if invalidate(edge.admin, &format!("/obj/{i}")).await {
                invalidations += 1;
            } else {
                refused_invalidations += 1;
            }
        }
        let restart_due =
            born.elapsed() >= life && duration.saturating_sub(start.elapsed()) > life / 2;
        if now >= next_sample && !restart_due {
            next_sample = now + SAMPLE_EVERY;
            samples.push(sample(&edge, lives, born, "minute"));
        }
        if restart_due {
            samples.push(sample(&edge, lives, born, "before restart"));
            lives += 1;
            let kill = lives.is_multiple_of(3);
            let stopped = Instant::now();
            if kill {
                edge.signal(libc::SIGKILL);
                edge.wait_exit(WAIT);
            } else {
                edge.signal(libc::SIGTERM);
                let code = edge.wait_exit(WAIT);
                assert_eq!(code, Some(0), "SIGTERM: the edge exits 0 after draining");
            }
            let down = stopped.elapsed();
            let started = Instant::now();
            edge = Edge::with_config(&cfg, dir.path());
            let ready = started.elapsed();
            *addr.lock().unwrap() = edge.addr;
            restarts.push(format!(
                "{:>6.0}s  {:<7}  stopped in {:>5} ms, ready in {:>4} ms",
                start.elapsed().as_secs_f64(),
                if kill { "SIGKILL" } else { "SIGTERM" },
                down.as_millis(),
                ready.as_millis()
            ));
            born = Instant::now();
            next_sample = born + SAMPLE_EVERY;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    samples.push(sample(&edge, lives, born, "end"));
    stop.store(true, Ordering::SeqCst);
    for v in viewers {
        tokio::time::timeout(WAIT, v)
            .await
            .expect("viewers stop")
            .unwrap();
    }

    println!("restarts:");
    for r in &restarts {
        println!("{r}");
    }
    println!(
        "{:>7}  {:>4}  {:>7}  {:>6}  {:>12}  {:>4}  {:>9}  why",
        "at_s", "life", "pid", "age_s", "RssAnon_KiB", "fds", "responses"
    );
    for s in &samples {
        println!(
            "{:>7.0}  {:>4}  {:>7}  {:>6.0}  {:>12}  {:>4}  {:>9}  {}",
            s.at.as_secs_f64(),
            s.life,
            s.pid,
            s.age.as_secs_f64(),
            s.rss_kib,
            s.fds,
            s.complete,
            s.why
        );
    }
    println!(
        "load: {}; {invalidations} invalidations ({refused_invalidations} not taken: edge restarting)",
        stats.summary()
    );
    stats.assert_clean("soak");
    assert!(Stats::get(&stats.hits) > 0 && Stats::get(&stats.misses) > 0);
    assert!(Stats::get(&stats.ranges) > 0 && Stats::get(&stats.refresh_hits) > 0);

    // Growth: within each process's life, and over the whole run.
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.age >= STEADY_AGE).collect();
    let mut problems = Vec::new();
    for l in 0..=lives {
        let of_life: Vec<&&Sample> = steady.iter().filter(|s| s.life == l).collect();
        if let (Some(first), Some(last)) = (of_life.first(), of_life.last()) {
            if let Some(p) = grew(first, last) {
                problems.push(format!("life {l}: {p}"));
            }
        }
    }
    if let (Some(first), Some(last)) = (steady.first(), steady.last()) {
        if let Some(p) = grew(first, last) {
            problems.push(format!("whole run: {p}"));
        }
    }
    assert!(
        steady.len() >= 2 || duration < 2 * STEADY_AGE,
        "too few steady samples"
    );
    assert!(problems.is_empty(), "growth: {}", problems.join("; "));
}
