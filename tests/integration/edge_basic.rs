//! The edge end to end: misses then hits, headers on every response, collapsing,
//! streaming, origin failures, restart after SIGKILL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::edge_harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_then_hit_with_via_age_and_x_cache() {
    let origin = Origin::start(|_| {
        ok(
            b"hello",
            &[
                ("cache-control", "max-age=600"),
                ("content-type", "text/plain"),
            ],
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);
    let first = get(edge.addr, "anything.example", "/a.txt").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "hello");
    assert_eq!(first.x_cache(), "Miss from cairn");
    assert_eq!(first.header("via"), Some("1.1 cairn (cairn)"));
    let second = get(edge.addr, "other.example", "/a.txt").await;
    assert_eq!(second.x_cache(), "Hit from cairn");
    assert_eq!(second.text(), "hello");
    assert_eq!(second.header("content-type"), Some("text/plain"));
    let age: u64 = second.header("age").unwrap().parse().unwrap();
    assert!(age <= 2, "age {age}");
    assert_eq!(
        origin.count("/a.txt"),
        1,
        "the hit did not go to the origin"
    );
    let seen = &origin.requests()[0];
    assert_eq!(seen.header("via"), Some("1.1 cairn (cairn)"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("host"), Some(origin.addr.to_string().as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_viewers_of_a_cold_object_make_one_origin_request() {
    let body = pattern(300_000, 7);
    let b2 = body.clone();
    let origin = Origin::start(move |_| {
        // A slow origin: the head, then the body in pieces over ~0.6 s.
        let mut steps = vec![
            Step::Sleep(Duration::from_millis(200)),
            Step::Write(head_with_length(
                b2.len(),
                &[("cache-control", "max-age=600")],
            )),
        ];
        for piece in b2.chunks(50_000) {
            steps.push(Step::Write(piece.to_vec()));
            steps.push(Step::Sleep(Duration::from_millis(70)));
        }
        steps
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let addr = edge.addr;
        tasks.push(tokio::spawn(
            async move { get(addr, "x", "/big.bin").await },
        ));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.bytes(), &body[..]);
    }
    assert_eq!(origin.count("/big.bin"), 1, "exactly one origin request");
    let again = get(edge.addr, "x", "/big.bin").await;
    assert_eq!(again.x_cache(), "Hit from cairn");
    assert_eq!(again.bytes(), &body[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fill_aborts_every_follower_and_stores_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let origin = Origin::start(move |_| {
        let n = c2.fetch_add(1, Ordering::SeqCst);
        if n == 0 {
            // Promise 100000 bytes, send 30000, reset.
            vec![
                Step::Sleep(Duration::from_millis(150)),
                Step::Write(head_with_length(
                    100_000,
                    &[("cache-control", "max-age=600")],
                )),
                Step::Write(pattern(30_000, 1)),
                Step::Sleep(Duration::from_millis(150)),
                Step::Close,
            ]
        } else {
            ok(&pattern(100_000, 1), &[("cache-control", "max-age=600")])
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let addr = edge.addr;
        tasks.push(tokio::spawn(async move { get(addr, "x", "/flaky").await }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert!(
            r.body.is_err(),
            "a follower got a complete-looking body from a failed fill: {:?}",
            r.body.as_ref().map(|b| b.len())
        );
    }
    assert_eq!(origin.count("/flaky"), 1);
    // Nothing was stored: the next request goes to the origin and gets the whole body.
    let r = get(edge.addr, "x", "/flaky").await;
    assert_eq!(r.x_cache(), "Miss from cairn");
    assert_eq!(r.bytes(), &pattern(100_000, 1)[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_streams_before_the_origin_finishes() {
    let origin = Origin::start(|_| {
        vec![
            Step::Write(head_with_length(10, &[("cache-control", "max-age=600")])),
            Step::Write(b"first".to_vec()),
            Step::Sleep(Duration::from_millis(1500)),
            Step::Write(b"-last".to_vec()),
        ]
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);
    // Read the first bytes with a raw socket and time them.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    s.write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("first") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let first_at = start.elapsed();
    assert!(!String::from_utf8_lossy(&got).contains("-last"));
    assert!(
        first_at < Duration::from_millis(1200),
        "first bytes after {first_at:?}: not streamed"
    );
    while !String::from_utf8_lossy(&got).contains("-last") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_failures_are_502_and_504() {
    // A port with nothing listening: bind, take the port, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&format!("http://{dead}"), dir.path(), &[]);
    let r = get(edge.addr, "x", "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.x_cache(), "Error from cairn");
    assert!(r.header("via").is_some());
    assert!(
        edge.stderr().contains(&dead.to_string()),
        "the log names the origin"
    );

    // An origin that accepts and never answers: with a 1 s response timeout in a config.
    let origin = Origin::start(|_| vec![Step::Sleep(Duration::from_secs(30))]).await;
    let dir2 = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir2.path(),
        &format!(
            "[[distribution]]\nid = \"slow\"\ncatch_all = true\n[[distribution.origin]]\nid = \"o\"\nurl = \"{}\"\nresponse_timeout = 1\n",
            origin.url()
        ),
    );
    let edge2 = Edge::with_config(&cfg, dir2.path());
    let start = std::time::Instant::now();
    let r = get(edge2.addr, "x", "/").await;
    assert_eq!(r.status, 504);
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_a_cached_object_is_a_hit_without_the_origin() {
    let origin = Origin::start(|_| ok(b"durable", &[("cache-control", "max-age=600")])).await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);
    assert_eq!(get(edge.addr, "x", "/d").await.x_cache(), "Miss from cairn");
    edge.kill9();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);
    let r = get(edge.addr, "x", "/d").await;
    assert_eq!(r.x_cache(), "Hit from cairn");
    assert_eq!(r.text(), "durable");
    assert_eq!(origin.count("/d"), 1);
}

/// Resident memory of a process, from /proc (KiB).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_viewer_of_a_huge_response_does_not_make_the_edge_buffer_it() {
    // 256 MiB from a fast origin, larger than the largest stored object (the harness's
    // 256 MiB cache stores at most 64 MiB), to a viewer that stops reading for a while.
    const MIB: usize = 1 << 20;
    let origin = Origin::start(|_| {
        let mut steps = vec![Step::Write(head_with_length(
            256 * MIB,
            &[("cache-control", "max-age=600")],
        ))];
        let piece = pattern(MIB, 3);
        for _ in 0..256 {
            steps.push(Step::Write(piece.clone()));
        }
        steps
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);
    let before = rss_kib(edge.pid());
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    s.write_all(b"GET /huge HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0);
    // Stop reading: without backpressure the edge would pull all 256 MiB in meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = rss_kib(edge.pid());
    assert!(
        during < before + 96 * 1024,
        "the edge grew from {before} KiB to {during} KiB while the viewer paused"
    );
    // Then the whole body still arrives.
    let mut total = n;
    let deadline = std::time::Instant::now() + WAIT;
    while total < 256 * MIB && std::time::Instant::now() < deadline {
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert!(
        total > 256 * MIB,
        "got {total} bytes (head + body expected)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_viewer_hanging_up_does_not_cancel_the_fill_for_the_others() {
    let body = pattern(400_000, 9);
    let b2 = body.clone();
    let origin = Origin::start(move |_| {
        let mut steps = vec![Step::Write(head_with_length(
            b2.len(),
            &[("cache-control", "max-age=600")],
        ))];
        for piece in b2.chunks(40_000) {
            steps.push(Step::Write(piece.to_vec()));
            steps.push(Step::Sleep(Duration::from_millis(60)));
        }
        steps
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The first viewer starts the fill, reads a little, and hangs up.
    let mut first = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    first
        .write_all(b"GET /shared HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(WAIT, first.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0);
    // A second viewer joins the same fill, then the first one leaves.
    let addr = edge.addr;
    let follower = tokio::spawn(async move { get(addr, "x", "/shared").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(first);
    let r = follower.await.unwrap();
    assert_eq!(r.bytes(), &body[..], "the follower got the whole body");
    assert_eq!(
        origin.count("/shared"),
        1,
        "the follower joined the first fill"
    );
    let again = get(edge.addr, "x", "/shared").await;
    assert_eq!(again.x_cache(), "Hit from cairn");
    assert_eq!(again.bytes(), &body[..]);
}
