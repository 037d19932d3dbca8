//! RFC 5861 end to end, against the real binary, in CloudFront mode (`/x`) and strict
//! mode (`/strict/x`): stale-while-revalidate answers at once from the stale copy and
//! revalidates once in the background; stale-if-error answers with the stale copy when
//! the origin fails (error statuses, refused connections, timeouts); beyond either window,
//! or without the directive, the viewer waits for the origin and gets its error.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::edge_harness::*;

const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";
const REFRESH_HIT: &str = "RefreshHit from cairn";
const ERROR: &str = "Error from cairn";
const HOST: &str = "viewer.example";
const PATHS: [&str; 2] = ["/x", "/strict/x"];

/// A validating origin whose responses carry `cc` (from version 2 on: `max-age=60`),
/// behind an edge with both modes whose origin must answer within 2 s (connect and
/// response timeouts of 1 s).
async fn setup(cc: &'static str) -> (Origin, OriginControl, Edge, tempfile::TempDir) {
    setup_with(cc, "connect_timeout = 1\nresponse_timeout = 1").await
}

/// [`setup`] with these keys in the origin's table.
async fn setup_with(
    cc: &'static str,
    origin_keys: &str,
) -> (Origin, OriginControl, Edge, tempfile::TempDir) {
    let (origin, ctl) = validating_origin(move |_, version| {
        if version == 1 { cc } else { "max-age=60" }.to_string()
    })
    .await;
    let (edge, dir) = start_two_mode_edge(&origin.url(), origin_keys, "");
    (origin, ctl, edge, dir)
}

/// GETs every path at once; returns each response with how long it took.
async fn get_all(edge: &Edge, paths: &[&str], headers: &[(&str, &str)]) -> Vec<(Resp, Duration)> {
    join_all(paths.iter().map(|p| async move {
        let start = Instant::now();
        let r = get_with(edge.addr, HOST, p, headers).await;
        (r, start.elapsed())
    }))
    .await
}

/// Stores v1 of every path (a Miss each).
async fn store_all(edge: &Edge) {
    for p in PATHS {
        let r = get(edge.addr, HOST, p).await;
        assert_eq!((r.x_cache(), r.text()), (MISS, format!("{p} v1")), "{p}");
    }
}

/// Checks every response is the stale v1 served from the store, with its true age.
fn assert_stale_served(rs: &[(Resp, Duration)], paths: &[&str]) {
    for ((r, _), p) in rs.iter().zip(paths) {
        assert_eq!(r.status, 200, "{p}: {:?}", r.body);
        assert_eq!((r.x_cache(), r.text()), (HIT, format!("{p} v1")), "{p}");
        let age: u64 = r.header("age").unwrap_or("").parse().unwrap_or(0);
        assert!(
            age >= 1,
            "{p}: a stale response with Age {:?}",
            r.header("age")
        );
    }
}

/// Checks every response is the origin's error `status`, not the stale object.
fn assert_error_passed_on(rs: &[(Resp, Duration)], paths: &[&str], status: u16) {
    for ((r, _), p) in rs.iter().zip(paths) {
        assert_eq!((r.status.as_u16(), r.x_cache()), (status, ERROR), "{p}");
        assert!(!r.text().contains("v1"), "{p}: {}", r.text());
    }
}

// RFC 5861 §3: within the stale-while-revalidate window a stale response is served at
// once while one background revalidation refreshes it; later requests get the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5861_3_stale_while_revalidate_answers_at_once_and_revalidates_once() {
    // The origin's default timeouts: its slow answer is not an error.
    let (origin, ctl, edge, _dir) = setup_with("max-age=1, stale-while-revalidate=30", "").await;
    store_all(&edge).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    ctl.set_version(2);
    let delay = Duration::from_millis(2000);
    ctl.delay(delay);

    // Several concurrent stale requests per path: all answered from the stale copy
    // before the origin could have answered.
    let many: Vec<&str> = PATHS.iter().flat_map(|p| [*p; 4]).collect();
    let started = Instant::now();
    let rs = get_all(&edge, &many, &[]).await;
    assert_stale_served(&rs, &many);
    for ((_, took), p) in rs.iter().zip(&many) {
        assert!(*took < Duration::from_secs(1), "{p} took {took:?}");
    }
    // Exactly one conditional request per path reaches the origin.
    eventually("the background revalidations", || {
        PATHS.iter().all(|p| seen_for(&origin, p).len() == 2)
    })
    .await;
    for p in PATHS {
        assert_eq!(
            seen_for(&origin, p)[1].header("if-none-match"),
            Some("\"v1\""),
            "{p}"
        );
    }
    // While the revalidation runs, the stale copy is still served at once, and no
    // second revalidation starts.
    let rs = get_all(&edge, &PATHS, &[]).await;
    assert_stale_served(&rs, &PATHS);
    assert!(started.elapsed() < delay, "{:?}", started.elapsed());

    // Once it completed, the refreshed object is served.
    for p in PATHS {
        let start = Instant::now();
        loop {
            let r = get(edge.addr, HOST, p).await;
            assert_eq!(r.status, 200, "{p}");
            if r.text() == format!("{p} v2") {
                assert_eq!(r.x_cache(), HIT, "{p}");
                break;
            }
            assert_eq!(r.text(), format!("{p} v1"), "{p}");
            assert!(start.elapsed() < WAIT, "{p}: never refreshed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen_for(&origin, p).len(), 2, "{p}");
    }
}

// RFC 5861 §3: beyond the stale-while-revalidate window the response is stale like any
// other: the request waits for the revalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5861_3_beyond_stale_while_revalidate_window_waits_for_the_origin() {
    let (origin, ctl, edge, _dir) = setup("max-age=1, stale-while-revalidate=1").await;
    store_all(&edge).await;
    // Stale after 1 s, out of the window after 2 s.
    tokio::time::sleep(Duration::from_millis(2700)).await;
    ctl.set_version(2);
    let delay = Duration::from_millis(800);
    ctl.delay(delay);
    let rs = get_all(&edge, &PATHS, &[]).await;
    for ((r, took), p) in rs.iter().zip(PATHS) {
        assert_eq!((r.x_cache(), r.text()), (MISS, format!("{p} v2")), "{p}");
        assert!(*took >= delay, "{p} took {took:?}");
        let seen = seen_for(&origin, p);
        assert_eq!(seen.len(), 2, "{p}");
        assert_eq!(seen[1].header("if-none-match"), Some("\"v1\""), "{p}");
    }
}

// RFC 5861 §4: within the stale-if-error window, an error status from the origin while
// revalidating (500, 502, 503, 504) is answered with the stale response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5861_4_stale_if_error_serves_stale_on_error_statuses() {
    let (origin, ctl, edge, _dir) = setup("max-age=1, stale-if-error=60").await;
    store_all(&edge).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for status in [500, 502, 503, 504] {
        ctl.answer(OriginAnswer::Status(status));
        let rs = get_all(&edge, &PATHS, &[]).await;
        assert_stale_served(&rs, &PATHS);
    }
    // The errors neither replaced nor removed it: the origin is back, it revalidates.
    ctl.answer(OriginAnswer::Serve);
    for p in PATHS {
        let r = get(edge.addr, HOST, p).await;
        assert_eq!(
            (r.x_cache(), r.text()),
            (REFRESH_HIT, format!("{p} v1")),
            "{p}"
        );
        let seen = seen_for(&origin, p);
        assert_eq!(seen.len(), 6, "{p}");
        assert!(
            seen[1..]
                .iter()
                .all(|s| s.header("if-none-match") == Some("\"v1\"")),
            "{p}"
        );
    }
}

// RFC 5861 §4: an origin that cannot be reached is an error too: the stale response is
// served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5861_4_stale_if_error_serves_stale_when_the_origin_refuses() {
    let (origin, _ctl, edge, _dir) = setup("max-age=1, stale-if-error=60").await;
    store_all(&edge).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    drop(origin);
    let rs = get_all(&edge, &PATHS, &[]).await;
    assert_stale_served(&rs, &PATHS);
}

// RFC 5861 §4: an origin that does not answer in time is an error too: the stale
// response is served once the origin's timeout (connect + response timeouts: 2 s) expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5861_4_stale_if_error_serves_stale_on_origin_timeout() {
    let (_origin, ctl, edge, _dir) = setup("max-age=1, stale-if-error=60").await;
    store_all(&edge).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    ctl.answer(OriginAnswer::Stall(Duration::from_secs(4)));
    let rs = get_all(&edge, &PATHS, &[]).await;
    assert_stale_served(&rs, &PATHS);
    for ((_, took), p) in rs.iter().zip(PATHS) {
        assert!(
            *took >= Duration::from_millis(1900) && *took < Duration::from_millis(3500),
            "{p} took {took:?}"
        );
    }
}

// RFC 5861 §4: beyond the stale-if-error window the error is passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5861_4_beyond_stale_if_error_window_the_error_is_passed_on() {
    let (origin, ctl, edge, _dir) = setup("max-age=1, stale-if-error=1").await;
    store_all(&edge).await;
    // Stale after 1 s, out of the window after 2 s.
    tokio::time::sleep(Duration::from_millis(2700)).await;
    ctl.answer(OriginAnswer::Status(503));
    // Strict mode passes the error on; CloudFront mode serves what it still has.
    let rs = get_all(&edge, &PATHS, &[]).await;
    assert_stale_served(&rs[..1], &PATHS[..1]);
    assert_error_passed_on(&rs[1..], &PATHS[1..], 503);
    drop(origin);
    let rs = get_all(&edge, &PATHS, &[]).await;
    assert_stale_served(&rs[..1], &PATHS[..1]);
    assert_error_passed_on(&rs[1..], &PATHS[1..], 502);
}

// RFC 5861 §4 and RFC 9111 §4.2.4: without stale-if-error a stale response is not served
// when the origin fails in strict mode: the error status, 504 on a timeout, 502 when
// unreachable; a viewer's own stale-if-error (RFC 5861 §4) allows it. CloudFront mode
// serves the cached object whenever the origin answers 5xx or does not answer (AWS:
// "How CloudFront processes HTTP 4xx and 5xx status codes", "Origin unavailable").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5861_4_without_stale_if_error_the_error_is_passed_on() {
    let (origin, ctl, edge, _dir) = setup("max-age=1").await;
    store_all(&edge).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    ctl.answer(OriginAnswer::Status(503));
    let rs = get_all(&edge, &PATHS, &[]).await;
    assert_stale_served(&rs[..1], &PATHS[..1]);
    assert_error_passed_on(&rs[1..], &PATHS[1..], 503);
    let viewer_sie = [("cache-control", "stale-if-error=60")];
    assert_stale_served(&get_all(&edge, &PATHS, &viewer_sie).await, &PATHS);

    ctl.answer(OriginAnswer::Stall(Duration::from_secs(4)));
    let rs = get_all(&edge, &PATHS, &[]).await;
    assert_stale_served(&rs[..1], &PATHS[..1]);
    assert_error_passed_on(&rs[1..], &PATHS[1..], 504);
    drop(origin);
    let rs = get_all(&edge, &PATHS, &[]).await;
    assert_stale_served(&rs[..1], &PATHS[..1]);
    assert_error_passed_on(&rs[1..], &PATHS[1..], 502);
    assert_stale_served(&get_all(&edge, &PATHS, &viewer_sie).await, &PATHS);
}
