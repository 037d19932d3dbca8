//! SIGKILL during heavy mixed load, repeated: viewers doing hits, misses and ranges over
//! a working set several times the cache (so the sweeper evicts throughout), the edge
//! killed with SIGKILL at a random moment, restarted on the same cache directory. After
//! each restart the edge answers within a second of its ready line, and every object it
//! serves, hits included, is byte-identical to the origin's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::edge_harness::*;
use crate::mixed_load::*;

const ROUNDS: usize = 5;
const OBJECTS: usize = 300;
const VIEWERS: usize = 4;
/// From the ready line to the first complete response after a restart.
const FIRST_RESPONSE_BOUND: Duration = Duration::from_secs(1);

/// Requests object 0 until a complete, correct answer (bounded): the time it took.
async fn first_response(edge: &Edge, cat: &Catalogue, stats: &Stats) -> Duration {
    let start = Instant::now();
    for _ in 0..200 {
        if fetch_and_check(edge.addr, cat, 0, None, stats)
            .await
            .is_ok()
        {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the restarted edge served nothing correct within {:?}: {}",
        start.elapsed(),
        stats.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_mixed_load_loses_nothing_and_restarts_fast() {
    let seed: u64 = std::env::var("CAIRN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("fault_crash seed {seed} (CAIRN_CRASH_SEED reruns it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let cat = Catalogue::new(OBJECTS);
    let origin = catalogue_origin(cat.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    // 8 MiB of 1 MiB segments for a working set of about 40 MB.
    let cfg = catalogue_config(dir.path(), &origin.url(), "8MiB", "1MiB");
    let stats = Arc::new(Stats::default());
    let mut evicted = 0.0;
    println!("round  ready_ms  first_ok_ms  killed_after_ms  verified_hits  load (cumulative)");
    for round in 0..=ROUNDS {
        let started = Instant::now();
        let edge = Edge::with_config(&cfg, dir.path());
        let ready = started.elapsed();
        let first = first_response(&edge, &cat, &stats).await;
        assert!(
            first < FIRST_RESPONSE_BOUND,
            "round {round}: first response {first:?} after the ready line"
        );
        // What survived the last kill: the hot objects (every object after the last
        // kill), each checked byte for byte.
        let hits_before = Stats::get(&stats.hits);
        let checked = if round == ROUNDS { OBJECTS } else { 40 };
        for i in 0..checked {
            fetch_and_check(edge.addr, &cat, i, None, &stats)
                .await
                .unwrap_or_else(|_| {
                    panic!("round {round}: /obj/{i} after restart: {}", stats.summary())
                });
        }
        let verified_hits = Stats::get(&stats.hits) - hits_before;
        if round > 0 {
            assert!(
                verified_hits > 0,
                "round {round}: nothing stored survived the kill"
            );
        }
        stats.assert_clean(&format!("round {round} after restart"));
        if round == ROUNDS {
            println!(
                "{round:>5}  {:>8}  {:>11}  {:>15}  {verified_hits:>13}  (final check)",
                ready.as_millis(),
                first.as_millis(),
                "-"
            );
            break;
        }

        // Load, then SIGKILL at a random moment of it.
        let addr = Arc::new(Mutex::new(edge.addr));
        let stop = Arc::new(AtomicBool::new(false));
        let viewers: Vec<_> = (0..VIEWERS)
            .map(|v| {
                tokio::spawn(viewer(
                    addr.clone(),
                    cat.clone(),
                    stop.clone(),
                    stats.clone(),
                    seed ^ ((round * VIEWERS + v) as u64 + 1),
                    100_000,
                ))
            })
            .collect();
        let load_for = Duration::from_millis(rng.random_range(800..2500));
        tokio::time::sleep(load_for).await;
        evicted += metric_sample(
            &scrape_metrics(edge.admin).await,
            "cairn_store_evicted_total",
            &[],
        );
        let kill_at = Instant::now();
        edge.kill9();
        let load = stats.summary();
        stop.store(true, Ordering::SeqCst);
        for v in viewers {
            tokio::time::timeout(WAIT, v)
                .await
                .expect("viewers stop once the edge is gone")
                .unwrap();
        }
        stats.assert_clean(&format!("round {round} under load"));
        println!(
            "{round:>5}  {:>8}  {:>11}  {:>15}  {verified_hits:>13}  {load}",
            ready.as_millis(),
            first.as_millis(),
            (kill_at - started).as_millis(),
        );
    }
    println!("total: {}; {evicted} evictions counted", stats.summary());
    assert!(
        evicted > 0.0,
        "the sweeper never evicted: the test did not put the cache under pressure"
    );
    assert!(Stats::get(&stats.ranges) > 0 && Stats::get(&stats.misses) > 0);
}
