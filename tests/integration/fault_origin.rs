//! Origin faults against the real binary: connection refused, a connection closed
//! mid-body, a body that stalls, a wrong Content-Length, malformed response heads and
//! bursts of 5xx. For each: the viewer gets a clear error (a 502/504 whose body names
//! the cause, or an aborted body once the head was sent: never a response that looks
//! complete but is not), nothing partial is stored (the next request is a Miss that
//! reaches the origin), and nothing is left stuck (`cairn_fills_in_flight` returns to 0
//! and other requests are still answered promptly).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::edge_harness::*;

const HOST: &str = "viewer.example";
const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";
const ERROR: &str = "Error from cairn";
/// The body every fault path has once its origin behaves.
const GOOD_LEN: usize = 100_000;
/// How long a healthy request may take while the edge recovers from a fault: generous
/// for a loaded 2-core machine, far below any origin timeout a stuck task would show.
const PROMPT: Duration = Duration::from_secs(5);

/// An origin whose fault paths misbehave (as `fault` scripts them) while `faulty` is
/// set and answer `good(path)` afterwards; `/healthy/...` always answers at once.
struct FaultyOrigin {
    origin: Origin,
    faulty: Arc<AtomicBool>,
}

fn good(path: &str) -> Vec<u8> {
    pattern(GOOD_LEN, path.len() as u8)
}

impl FaultyOrigin {
    async fn start(fault: impl Fn(&str) -> Vec<Step> + Send + Sync + 'static) -> FaultyOrigin {
        let faulty = Arc::new(AtomicBool::new(true));
        let f2 = faulty.clone();
        let origin = Origin::start(move |seen| answer(&seen.target, &f2, &fault)).await;
        FaultyOrigin { origin, faulty }
    }

    fn heal(&self) {
        self.faulty.store(false, Ordering::SeqCst);
    }
}

fn answer(target: &str, faulty: &AtomicBool, fault: &dyn Fn(&str) -> Vec<Step>) -> Vec<Step> {
    if target.starts_with("/healthy/") {
        return ok(target.as_bytes(), &[("cache-control", "max-age=600")]);
    }
    if faulty.load(Ordering::SeqCst) {
        fault(target)
    } else {
        ok(&good(target), &[("cache-control", "max-age=600")])
    }
}

/// An edge with one catch-all distribution on `url` whose origin must connect and answer
/// within 1 s (one connect attempt), whose origin errors are not cached (error_ttl 0) and
/// whose extra default-behaviour keys are `behavior`.
fn fault_edge(url: &str, behavior: &str) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[distribution]]\nid = \"t\"\ncatch_all = true\n\
[[distribution.origin]]\nid = \"o\"\nurl = \"{url}\"\n\
connect_timeout = 1\nconnect_attempts = 1\nresponse_timeout = 1\n\
[distribution.default_behavior]\nerror_ttl = 0\n{behavior}\n"
        ),
    );
    (Edge::with_config(&cfg, dir.path()), dir)
}

async fn fills_in_flight(edge: &Edge) -> f64 {
    metric_sample(
        &scrape_metrics(edge.admin).await,
        "cairn_fills_in_flight",
        &[],
    )
}

/// Nothing is left stuck: no fill in flight (bounded wait), and a new object is fetched
/// and served promptly.
async fn assert_settled(edge: &Edge, what: &str) {
    let start = Instant::now();
    loop {
        let n = fills_in_flight(edge).await;
        if n == 0.0 {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "{what}: cairn_fills_in_flight stayed at {n}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    static N: AtomicUsize = AtomicUsize::new(0);
    let target = format!("/healthy/{}", N.fetch_add(1, Ordering::SeqCst));
    let start = Instant::now();
    let r = get(edge.addr, HOST, &target).await;
    let took = start.elapsed();
    assert_eq!(
        (r.status.as_u16(), r.x_cache(), r.body.is_ok()),
        (200, MISS, true),
        "{what}: a healthy request after the fault"
    );
    assert!(
        took < PROMPT,
        "{what}: a healthy request took {took:?} after the fault"
    );
}

/// Nothing was stored for `path`: once the origin behaves, the next request is a Miss
/// that reaches the origin and gets the whole body; the one after is a Hit.
async fn assert_nothing_stored(edge: &Edge, o: &FaultyOrigin, path: &str) {
    o.heal();
    let before = o.origin.count(path);
    let r = get(edge.addr, HOST, path).await;
    assert_eq!(
        (r.status.as_u16(), r.x_cache()),
        (200, MISS),
        "{path}: after the fault ({:?} bytes)",
        r.body.as_ref().map(|b| b.len())
    );
    assert!(r.bytes() == good(path), "{path}: the healed body differs");
    assert_eq!(o.origin.count(path), before + 1, "{path}: origin requests");
    let r = get(edge.addr, HOST, path).await;
    assert_eq!(r.x_cache(), HIT, "{path}: stored once complete");
    assert!(r.bytes() == good(path));
}

/// GET `path` on a fresh connection, for a fault that shows once the head was sent.
async fn get_aborted(edge: &Edge, path: &str) -> Result<Resp, String> {
    try_request(edge.addr, "GET", HOST, path, &[], b"").await
}

/// The viewer got an aborted body after the head, or the connection closed before a
/// head was sent (when the body failed at once): never a complete-looking response.
fn assert_aborted(r: &Result<Resp, String>, what: &str) {
    let Ok(r) = r else {
        return;
    };
    assert_eq!(r.status, 200, "{what}");
    assert!(
        r.body.is_err(),
        "{what}: a body that ended early was presented as complete ({:?} bytes)",
        r.body.as_ref().map(|b| b.len())
    );
}

/// The edge's own error: `status`, X-Cache Error, a body naming `cause`, not cacheable.
fn assert_edge_error(r: &Resp, status: u16, cause: &str, what: &str) {
    let text = String::from_utf8_lossy(r.body.as_ref().map(|b| &b[..]).unwrap_or(b"")).to_string();
    assert_eq!(
        (r.status.as_u16(), r.x_cache()),
        (status, ERROR),
        "{what}: {text}"
    );
    assert!(
        text.contains(cause),
        "{what}: the error body does not name the cause ({cause:?}): {text:?}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
}

/// A response head with chunked transfer coding.
fn chunked_head() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncache-control: max-age=600\r\n\r\n".to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_502_naming_the_cause_and_stores_nothing() {
    // A port with nothing listening: bind, take the port, close.
    let dead: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (edge, _dir) = fault_edge(&format!("http://{dead}"), "");
    let rs = join_all((0..8).map(|_| get(edge.addr, HOST, "/refused"))).await;
    for r in &rs {
        assert_edge_error(r, 502, "could not connect", "refused");
    }
    // Nothing is stuck while the origin is still down.
    let start = Instant::now();
    loop {
        if fills_in_flight(&edge).await == 0.0 {
            break;
        }
        assert!(start.elapsed() < WAIT, "a refused fill stayed in flight");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The origin comes up on that port: the error was not cached.
    let o = FaultyOrigin {
        origin: Origin::start_at(dead, move |seen| {
            ok(&good(&seen.target), &[("cache-control", "max-age=600")])
        })
        .await,
        faulty: Arc::new(AtomicBool::new(false)),
    };
    assert_nothing_stored(&edge, &o, "/refused").await;
    assert_settled(&edge, "refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_mid_body_aborts_the_viewers_and_stores_nothing() {
    let o = FaultyOrigin::start(|target| {
        let mut head = if target.starts_with("/chunked") {
            chunked_head()
        } else {
            head_with_length(GOOD_LEN, &[("cache-control", "max-age=600")])
        };
        if target.starts_with("/chunked") {
            // One complete chunk, then half of the next, then the end.
            head.extend_from_slice(b"4000\r\n");
            head.extend_from_slice(&pattern(0x4000, 3));
            head.extend_from_slice(b"\r\n4000\r\n");
            head.extend_from_slice(&pattern(0x2000, 4));
        } else {
            head.extend_from_slice(&good(target)[..GOOD_LEN / 2]);
        }
        vec![
            Step::Write(head),
            Step::Sleep(Duration::from_millis(100)),
            Step::Close,
        ]
    })
    .await;
    let (edge, _dir) = fault_edge(&o.origin.url(), "");
    for path in ["/reset", "/chunked-reset"] {
        // Several viewers follow the same failing fill.
        let rs = join_all((0..6).map(|_| get_aborted(&edge, path))).await;
        for r in &rs {
            assert_aborted(r, path);
        }
        assert!(o.origin.count(path) >= 1);
        assert_settled(&edge, path).await;
    }
    for path in ["/reset", "/chunked-reset"] {
        assert_nothing_stored(&edge, &o, path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_origin_is_a_504_or_an_aborted_body_within_the_response_timeout() {
    let o = FaultyOrigin::start(|target| {
        if target == "/stall-head" {
            // Accepts, reads the request, never answers (long past response_timeout).
            return vec![Step::Sleep(Duration::from_secs(20)), Step::Close];
        }
        let mut head = head_with_length(GOOD_LEN, &[("cache-control", "max-age=600")]);
        head.extend_from_slice(&good(target)[..GOOD_LEN / 2]);
        vec![
            Step::Write(head),
            Step::Sleep(Duration::from_secs(20)),
            Step::Write(good(target)[GOOD_LEN / 2..].to_vec()),
        ]
    })
    .await;
    let (edge, _dir) = fault_edge(&o.origin.url(), "");

    let start = Instant::now();
    let rs = join_all((0..4).map(|_| get(edge.addr, HOST, "/stall-head"))).await;
    let took = start.elapsed();
    for r in &rs {
        assert_edge_error(r, 504, "did not answer in time", "stalled before the head");
    }
    // connect_timeout + response_timeout is 2 s; a stuck fill would take the origin's 20 s.
    assert!(took < Duration::from_secs(10), "504 after {took:?}");
    assert_settled(&edge, "stall-head").await;

    let start = Instant::now();
    let rs = join_all((0..4).map(|_| get_aborted(&edge, "/stall-body"))).await;
    let took = start.elapsed();
    for r in &rs {
        assert_aborted(r, "stalled mid-body");
    }
    assert!(took < Duration::from_secs(10), "aborted after {took:?}");
    assert_settled(&edge, "stall-body").await;
    assert_nothing_stored(&edge, &o, "/stall-body").await;
    assert_nothing_stored(&edge, &o, "/stall-head").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_content_length_is_aborted_and_not_stored() {
    let o = FaultyOrigin::start(|target| {
        let mut head = head_with_length(GOOD_LEN, &[("cache-control", "max-age=600")]);
        head.extend_from_slice(&good(target)[..GOOD_LEN - 1]);
        vec![Step::Write(head), Step::Close]
    })
    .await;
    let (edge, _dir) = fault_edge(&o.origin.url(), "");
    let rs = join_all((0..4).map(|_| get_aborted(&edge, "/short"))).await;
    for r in &rs {
        assert_aborted(r, "one byte short");
    }
    assert_settled(&edge, "short").await;
    assert_nothing_stored(&edge, &o, "/short").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_beyond_the_content_length_never_become_another_response() {
    // The origin declares 10 bytes, sends them followed by a whole forged response on the
    // same (kept-alive) connection. The declared object is complete and may be stored;
    // the trailing bytes must never be read as the answer to a later request.
    let forged =
        b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\ncache-control: max-age=600\r\n\r\nFORGED";
    let origin = Origin::start(move |seen| {
        if seen.target == "/long" {
            let mut out = head_with_length(10, &[("cache-control", "max-age=600")]);
            out.extend_from_slice(b"0123456789");
            out.extend_from_slice(forged);
            vec![Step::Write(out)]
        } else {
            ok(seen.target.as_bytes(), &[("cache-control", "max-age=600")])
        }
    })
    .await;
    let (edge, _dir) = fault_edge(&origin.url(), "");
    let r = get(edge.addr, HOST, "/long").await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, MISS));
    assert_eq!(r.text(), "0123456789");
    // Requests that could reuse the origin connection get their own answers.
    for i in 0..5 {
        let target = format!("/after/{i}");
        let r = get(edge.addr, HOST, &target).await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, target.clone()),
            "the trailing bytes answered {target}"
        );
        assert_eq!(origin.count(&target), 1);
    }
    let r = get(edge.addr, HOST, "/long").await;
    assert_eq!((r.x_cache(), r.text()), (HIT, "0123456789".to_string()));
    assert_settled(&edge, "long").await;
}

/// Response heads hyper must refuse, by name.
fn malformed(target: &str) -> Vec<u8> {
    let head: &[u8] = match target {
        "/garbage-status" => b"HTCPCP/1.0 418 I'm a teapot\r\ncontent-length: 2\r\n\r\nok",
        "/no-status" => b"\x00\x01\x02 binary noise \xff\xfe\r\n\r\n",
        "/no-colon" => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nthis header has no colon\r\n\r\nok",
        "/bad-name" => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nbad name: x\r\n\r\nok",
        "/ctl-in-value" => {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-bad: a\x01b\r\ncache-control: max-age=600\r\n\r\nok"
        }
        "/two-lengths" => {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 5\r\ncache-control: max-age=600\r\n\r\nokokok"
        }
        "/bad-length" => {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2x\r\ncache-control: max-age=600\r\n\r\nok"
        }
        "/bad-chunk" => {
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncache-control: max-age=600\r\n\r\nzz\r\nok\r\n0\r\n\r\n"
        }
        _ => panic!("no malformed response for {target}"),
    };
    head.to_vec()
}

const MALFORMED: [&str; 8] = [
    "/garbage-status",
    "/no-status",
    "/no-colon",
    "/bad-name",
    "/ctl-in-value",
    "/two-lengths",
    "/bad-length",
    "/bad-chunk",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_response_heads_are_a_502_naming_the_cause_and_store_nothing() {
    let o = FaultyOrigin::start(|target| vec![Step::Write(malformed(target)), Step::Close]).await;
    let (edge, _dir) = fault_edge(&o.origin.url(), "");
    for path in MALFORMED {
        if path == "/bad-chunk" {
            // The head is valid; the body's framing is not: an aborted response.
            assert_aborted(&get_aborted(&edge, path).await, path);
        } else {
            let r = get(edge.addr, HOST, path).await;
            assert_edge_error(&r, 502, "malformed response", path);
        }
        assert_eq!(o.origin.count(path), 1, "{path}");
    }
    assert_settled(&edge, "malformed").await;
    for path in MALFORMED {
        assert_nothing_stored(&edge, &o, path).await;
    }
    assert!(
        edge.stderr().contains(&o.origin.addr.to_string()),
        "the log names the origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_with_a_content_length_is_framed_by_the_chunks() {
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length. The viewer gets the
    // chunked body whole, and no Content-Length that contradicts it.
    let origin = Origin::start(|_| {
        vec![Step::Write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\ncache-control: max-age=600\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec(),
        ), Step::Close]
    })
    .await;
    let (edge, _dir) = fault_edge(&origin.url(), "");
    for want in [MISS, HIT] {
        let r = get(edge.addr, HOST, "/te-cl").await;
        assert_eq!(r.status, 200, "{want}");
        assert_eq!(r.x_cache(), want);
        assert_eq!(r.text(), "hello world", "{want}");
        if let Some(len) = r.header("content-length") {
            assert_eq!(len, "11", "{want}: a Content-Length contradicting the body");
        }
    }
    assert_eq!(origin.count("/te-cl"), 1);
    assert_settled(&edge, "te-cl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_5xx_serves_stale_if_error_and_passes_the_error_without() {
    // /sie/* may be served stale for 10 min on an origin error; /plain/* may not.
    let failing = Arc::new(AtomicBool::new(false));
    let f2 = failing.clone();
    let origin = Origin::start(move |seen| {
        if f2.load(Ordering::SeqCst) && !seen.target.starts_with("/healthy/") {
            return response(503, &[("retry-after", "1")], b"origin overloaded");
        }
        let cc = if seen.target.starts_with("/sie/") {
            "max-age=1, stale-if-error=600"
        } else {
            "max-age=1"
        };
        ok(
            format!("{} v1", seen.target).as_bytes(),
            &[("cache-control", cc)],
        )
    })
    .await;
    // Strict RFC 9111 mode (default_ttl 0): no error TTL caching of the 503s either.
    let (edge, _dir) = fault_edge(&origin.url(), "default_ttl = 0");
    let paths = ["/sie/a", "/sie/b", "/plain/a", "/plain/b"];
    for p in paths {
        let r = get(edge.addr, HOST, p).await;
        assert_eq!((r.x_cache(), r.text()), (MISS, format!("{p} v1")), "{p}");
    }
    // Let every stored object become stale (max-age=1): a wait for time itself.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    failing.store(true, Ordering::SeqCst);
    let before: usize = paths.iter().map(|p| origin.count(p)).sum();
    // The burst: 5 waves of concurrent viewers over every path.
    for wave in 0..5 {
        let rs = join_all(
            paths
                .iter()
                .flat_map(|p| std::iter::repeat_n(*p, 4))
                .map(|p| async move { (p, get(edge.addr, HOST, p).await) }),
        )
        .await;
        for (p, r) in rs {
            if p.starts_with("/sie/") {
                assert_eq!(
                    (r.status.as_u16(), r.x_cache(), r.text()),
                    (200, HIT, format!("{p} v1")),
                    "wave {wave} {p}: stale-if-error"
                );
            } else {
                assert_eq!(
                    (r.status.as_u16(), r.x_cache(), r.text()),
                    (503, ERROR, "origin overloaded".to_string()),
                    "wave {wave} {p}: the origin's error is passed on"
                );
            }
        }
    }
    let during: usize = paths.iter().map(|p| origin.count(p)).sum::<usize>() - before;
    assert!(
        during >= 5,
        "the origin saw {during} requests during the burst"
    );
    assert_settled(&edge, "5xx burst").await;
    // The burst ends: every path is fetched again (the 503s were not stored).
    failing.store(false, Ordering::SeqCst);
    for p in paths {
        let n = origin.count(p);
        let r = get(edge.addr, HOST, p).await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, format!("{p} v1")),
            "{p}"
        );
        assert_ne!(r.x_cache(), ERROR, "{p}");
        assert_eq!(origin.count(p), n + 1, "{p}: revalidated or refetched");
    }
}

/// POSTs an invalidation of `paths` in distribution "t" and waits (bounded) until it
/// has completed.
async fn invalidate(edge: &Edge, paths: &[&str]) {
    let body = serde_json::json!({ "distribution": "t", "paths": paths }).to_string();
    let r = request(
        edge.admin,
        "POST",
        "127.0.0.1",
        "/invalidations",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(r.bytes()).unwrap();
    let id = v["id"].as_str().expect("an invalidation id").to_string();
    let start = Instant::now();
    loop {
        let r = get(edge.admin, "127.0.0.1", &format!("/invalidations/{id}")).await;
        let v: serde_json::Value = serde_json::from_slice(r.bytes()).unwrap();
        if v["status"] == "Completed" {
            return;
        }
        assert!(start.elapsed() < WAIT, "invalidation {id} did not complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// A 304 may arrive for an object that is no longer stored (evicted by the sweeper or
// invalidated while the revalidation was under way): the viewer then gets the object
// fetched whole, not a 502 because the refreshed object cannot be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_for_an_object_removed_meanwhile_is_refetched_not_a_502() {
    let (origin, ctl) = validating_origin(|_, _| "max-age=1".to_string()).await;
    let (edge, _dir) = fault_edge(&origin.url(), "");
    let r = get(edge.addr, HOST, "/gone").await;
    assert_eq!((r.x_cache(), r.text()), (MISS, "/gone v1".to_string()));
    // Stale after max-age=1: a wait for time itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The origin takes a while to answer the revalidation; meanwhile the object goes.
    ctl.delay(Duration::from_millis(1500));
    let addr = edge.addr;
    let viewer = tokio::spawn(async move { get(addr, HOST, "/gone").await });
    eventually("the revalidation reaches the origin", || {
        seen_for(&origin, "/gone").len() == 2
    })
    .await;
    assert!(seen_for(&origin, "/gone")[1]
        .header("if-none-match")
        .is_some());
    invalidate(&edge, &["/gone"]).await;
    let r = viewer.await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (200, "/gone v1".to_string()),
        "the viewer whose revalidation lost its object"
    );
    let seen = seen_for(&origin, "/gone");
    assert_eq!(seen.len(), 3, "one unconditional refetch after the 304");
    assert!(seen[2].header("if-none-match").is_none());
    assert_settled(&edge, "304 after removal").await;
}

/// RFC 9112 §9.3.1: when the origin closes a connection before any response (as a pooled
/// keep-alive connection does when the origin drops it just as it is reused), a GET is
/// retried once on a new connection; a POST, which is not idempotent, never is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_before_any_response_is_retried_once_for_idempotent_requests() {
    // Each path's first request is read and its connection closed without a word.
    let seen_once = Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<String>::new(),
    ));
    let s2 = seen_once.clone();
    let o = Origin::start(move |seen| {
        if s2
            .lock()
            .unwrap()
            .insert(format!("{} {}", seen.method, seen.target))
        {
            vec![Step::Close]
        } else {
            ok(&good(&seen.target), &[("cache-control", "max-age=600")])
        }
    })
    .await;
    let (edge, _dir) = fault_edge(
        &o.url(),
        "allowed_methods = [\"GET\", \"HEAD\", \"OPTIONS\", \"PUT\", \"POST\", \"PATCH\", \"DELETE\"]",
    );

    let r = get(edge.addr, HOST, "/closed-once").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.bytes(), &good("/closed-once")[..]);
    assert_eq!(o.count("/closed-once"), 2, "one retry, no more");

    let r = request(edge.addr, "POST", HOST, "/post-closed", &[], b"").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(o.count("/post-closed"), 1, "a POST is never sent twice");
    assert_settled(&edge, "closed before any response").await;
}
