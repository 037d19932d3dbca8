//! Mixed viewer load for the crash and soak tests: an origin serving a catalogue of
//! deterministic objects of various sizes (each with a version that an invalidation may
//! bump), viewer tasks doing hits, misses and ranges on fresh connections, and the check
//! that every complete body is byte-identical to what the origin serves for the version
//! its ETag names.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::edge_harness::*;

pub const HOST: &str = "viewer.example";

/// The objects an origin serves: `/obj/{i}` for `i < len`, at their current versions.
pub struct Catalogue {
    versions: Vec<AtomicU32>,
}

impl Catalogue {
    pub fn new(len: usize) -> Arc<Catalogue> {
        Arc::new(Catalogue {
            versions: (0..len).map(|_| AtomicU32::new(1)).collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn version(&self, i: usize) -> u32 {
        self.versions[i].load(Ordering::SeqCst)
    }

    /// A new version of object `i` (before invalidating it at the edge).
    pub fn bump(&self, i: usize) -> u32 {
        self.versions[i].fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Sizes from a few bytes to 900 KB: one object in ten is large (so a handful of
    /// them fill a segment), two in ten medium, the rest small.
    pub fn size(i: usize) -> usize {
        let spread = i.wrapping_mul(7919) % 1000;
        match i % 10 {
            0 => 500_000 + spread * 400,
            1 | 2 => 60_000 + spread * 60,
            _ => 10 + spread * 30,
        }
    }

    /// The body of version `v` of object `i`: unique per (i, v) in its first bytes.
    pub fn body(i: usize, v: u32) -> Vec<u8> {
        let mut b = pattern(Catalogue::size(i), (i as u8) ^ (v as u8).wrapping_mul(17));
        let tag = format!("{i}:{v};");
        let n = tag.len().min(b.len());
        b[..n].copy_from_slice(&tag.as_bytes()[..n]);
        b
    }

    /// Objects `i % 4 == 3` are fresh for 2 s only (then revalidated with their ETag);
    /// the others for an hour.
    pub fn cache_control(i: usize) -> &'static str {
        if i % 4 == 3 {
            "max-age=2"
        } else {
            "max-age=3600"
        }
    }
}

/// The origin serving `cat`: 200 with the current version and its ETag, or 304 when
/// If-None-Match names the current version.
pub async fn catalogue_origin(cat: Arc<Catalogue>) -> Origin {
    Origin::start(move |seen| {
        let Some(i) = seen
            .target
            .strip_prefix("/obj/")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|i| *i < cat.len())
        else {
            return response(404, &[], b"no such object");
        };
        let v = cat.version(i);
        let etag = format!("\"v{v}\"");
        let cc = Catalogue::cache_control(i);
        if seen.header("if-none-match") == Some(etag.as_str()) {
            return not_modified(&[("etag", &etag), ("cache-control", cc)]);
        }
        ok(
            &Catalogue::body(i, v),
            &[("etag", &etag), ("cache-control", cc)],
        )
    })
    .await
}

/// A config for the catalogue: one catch-all distribution "t" on `origin_url`, a cache
/// of `capacity` in segments of `segment_size` (small, so the sweeper evicts under load).
pub fn catalogue_config(
    dir: &Path,
    origin_url: &str,
    capacity: &str,
    segment_size: &str,
) -> PathBuf {
    let path = write_config(
        dir,
        &format!(
            "[[distribution]]\nid = \"t\"\ncatch_all = true\n\
[[distribution.origin]]\nid = \"o\"\nurl = \"{origin_url}\"\n"
        ),
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "capacity = \"256MiB\"",
            &format!("capacity = \"{capacity}\""),
        )
        .replace(
            "segment_size = \"4MiB\"",
            &format!("segment_size = \"{segment_size}\""),
        );
    std::fs::write(&path, text).unwrap();
    path
}

/// What the viewers saw.
#[derive(Default)]
pub struct Stats {
    pub complete: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub refresh_hits: AtomicU64,
    pub ranges: AtomicU64,
    /// Requests that failed or whose body ended early (the edge was stopped or killed).
    pub aborted: AtomicU64,
    /// 5xx answers (none is expected: the origin is healthy).
    pub server_errors: AtomicU64,
    /// Complete responses that were wrong (a wrong byte, status or version).
    pub wrong: AtomicU64,
    pub bytes: AtomicU64,
    /// The first problems, for the failure message.
    pub problems: Mutex<Vec<String>>,
}

impl Stats {
    fn problem(&self, what: String) {
        let mut p = self.problems.lock().unwrap();
        if p.len() < 20 {
            p.push(what);
        }
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} complete ({} Hit, {} Miss, {} RefreshHit, {} ranges, {} MB), {} aborted, {} 5xx, {} wrong",
            Stats::get(&self.complete),
            Stats::get(&self.hits),
            Stats::get(&self.misses),
            Stats::get(&self.refresh_hits),
            Stats::get(&self.ranges),
            Stats::get(&self.bytes) / 1_000_000,
            Stats::get(&self.aborted),
            Stats::get(&self.server_errors),
            Stats::get(&self.wrong),
        )
    }

    /// Panics with the first problems if any response was wrong or a 5xx.
    pub fn assert_clean(&self, what: &str) {
        let bad = Stats::get(&self.wrong) + Stats::get(&self.server_errors);
        assert!(
            bad == 0,
            "{what}: {}\nfirst problems:\n{}",
            self.summary(),
            self.problems.lock().unwrap().join("\n")
        );
    }
}

/// One request for object `i` (a range when `range` is set), checked against the
/// catalogue. `Ok(x_cache)` for a complete, correct response.
pub async fn fetch_and_check(
    addr: SocketAddr,
    cat: &Catalogue,
    i: usize,
    range: Option<(usize, usize)>,
    stats: &Stats,
) -> Result<String, ()> {
    let target = format!("/obj/{i}");
    let range_header = range.map(|(a, b)| format!("bytes={a}-{b}"));
    let headers: Vec<(&str, &str)> = range_header.iter().map(|h| ("range", h.as_str())).collect();
    let r = match try_request(addr, "GET", HOST, &target, &headers, b"").await {
        Ok(r) => r,
        Err(_) => {
            stats.aborted.fetch_add(1, Ordering::Relaxed);
            return Err(());
        }
    };
    let Ok(body) = &r.body else {
        stats.aborted.fetch_add(1, Ordering::Relaxed);
        return Err(());
    };
    if r.status.is_server_error() {
        stats.server_errors.fetch_add(1, Ordering::Relaxed);
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
        stats.problem(format!("{target}: {} {}: {text:?}", r.status, r.x_cache()));
        return Err(());
    }
    let wrong = |why: String| {
        stats.wrong.fetch_add(1, Ordering::Relaxed);
        stats.problem(format!("{target} {range_header:?}: {why}"));
        Err(())
    };
    let Some(v) = r
        .header("etag")
        .and_then(|e| e.trim_matches('"').strip_prefix('v'))
        .and_then(|v| v.parse::<u32>().ok())
    else {
        return wrong(format!("status {} without a version ETag", r.status));
    };
    if v > cat.version(i) {
        return wrong(format!("version {v} was never served"));
    }
    let full = Catalogue::body(i, v);
    let want: &[u8] = match (r.status.as_u16(), range) {
        (200, _) => &full,
        (206, Some((a, b))) => &full[a.min(full.len())..(b + 1).min(full.len())],
        (s, _) => return wrong(format!("status {s}")),
    };
    if body.as_ref() != want {
        let at = body.iter().zip(want).position(|(a, b)| a != b);
        return wrong(format!(
            "{} bytes, want {} (v{v}, first difference at {at:?}, {})",
            body.len(),
            want.len(),
            r.x_cache()
        ));
    }
    stats.complete.fetch_add(1, Ordering::Relaxed);
    stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    if range.is_some() {
        stats.ranges.fetch_add(1, Ordering::Relaxed);
    }
    let x = r.x_cache().to_string();
    match x.split(' ').next() {
        Some("Hit") => stats.hits.fetch_add(1, Ordering::Relaxed),
        Some("Miss") => stats.misses.fetch_add(1, Ordering::Relaxed),
        Some("RefreshHit") => stats.refresh_hits.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    Ok(x)
}

/// Object `i` with a skew: 60% of requests go to the first 40 objects (hits), the rest
/// anywhere (misses, and evictions as the working set exceeds the cache).
pub fn pick(rng: &mut StdRng, len: usize) -> usize {
    if rng.random_bool(0.6) {
        rng.random_range(0..len.min(40))
    } else {
        rng.random_range(0..len)
    }
}

/// A range inside object `i` for one request in four.
pub fn maybe_range(rng: &mut StdRng, i: usize) -> Option<(usize, usize)> {
    let size = Catalogue::size(i);
    if size < 2 || !rng.random_bool(0.25) {
        return None;
    }
    let a = rng.random_range(0..size - 1);
    let b = rng.random_range(a..size.min(a + 200_000));
    Some((a, b))
}

/// A viewer: requests until `stop` (at most `max_requests`), backing off briefly
/// while the edge is down. `addr` is re-read each time (the edge moves on a restart).
pub async fn viewer(
    addr: Arc<Mutex<SocketAddr>>,
    cat: Arc<Catalogue>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    seed: u64,
    max_requests: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..max_requests {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let i = pick(&mut rng, cat.len());
        let range = maybe_range(&mut rng, i);
        let a = *addr.lock().unwrap();
        if fetch_and_check(a, &cat, i, range, &stats).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// RssAnon (KiB) and open file descriptors of a process, from /proc.
pub fn rss_anon_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}
