//! `GET /metrics` on the admin listener: counters after a miss, a hit, an origin 404 and a
//! dead origin, and promtool accepting the exposition.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::edge_harness::*;

async fn scrape(admin: SocketAddr) -> String {
    let r = get(admin, "admin", "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.text()
}

/// Scrapes until `done` holds (the counters are recorded when a response body ends, a
/// moment after the viewer has it), for at most a few seconds.
async fn scrape_until(admin: SocketAddr, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(admin).await;
        if done(&text) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn promtool_check(text: &str) {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if !found {
        let reason = "admin_metrics: promtool is not on PATH (Debian package prometheus)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason} (required when CI=true)");
        }
        eprintln!("skipping promtool check: {reason}");
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    // promtool reads stdin to its end and exits; bounded by the harness' timeouts anyway.
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_metrics_count_requests_and_origin_outcomes() {
    let origin = Origin::start(|seen| {
        if seen.target.starts_with("/missing") {
            response(404, &[("content-type", "text/plain")], b"no such thing")
        } else {
            ok(b"hello", &[("cache-control", "max-age=600")])
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);
    let miss = get(edge.addr, "a.example", "/a.txt").await;
    assert_eq!(miss.x_cache(), "Miss from cairn");
    let hit = get(edge.addr, "a.example", "/a.txt").await;
    assert_eq!(hit.x_cache(), "Hit from cairn");
    let missing = get(edge.addr, "a.example", "/missing").await;
    assert_eq!(missing.status, 404);

    let text = scrape_until(edge.admin, |t| {
        metric_sample(t, "cairn_requests_total", &[]) >= 3.0
    })
    .await;
    let req = |result: &str| {
        metric_sample(
            &text,
            "cairn_requests_total",
            &[&format!("result=\"{result}\"")],
        )
    };
    assert_eq!(req("Miss"), 1.0, "{text}");
    assert_eq!(req("Hit"), 1.0, "{text}");
    assert_eq!(req("Error"), 1.0, "{text}");
    assert_eq!(req("RefreshHit"), 0.0, "{text}");
    let origin_req = |outcome: &str| {
        metric_sample(
            &text,
            "cairn_origin_requests_total",
            &[&format!("outcome=\"{outcome}\"")],
        )
    };
    assert_eq!(origin_req("2xx"), 1.0, "{text}");
    assert_eq!(origin_req("4xx"), 1.0, "{text}");
    assert_eq!(
        metric_sample(&text, "cairn_origin_latency_seconds_count", &[]),
        2.0,
        "{text}"
    );
    assert!(
        metric_sample(&text, "cairn_response_bytes_total", &[]) >= 10.0,
        "{text}"
    );
    assert!(
        metric_sample(&text, "cairn_store_objects", &[]) >= 1.0,
        "{text}"
    );
    assert!(
        metric_sample(&text, "cairn_store_capacity_bytes", &[]) > 0.0,
        "{text}"
    );
    assert_eq!(
        metric_sample(&text, "cairn_fills_in_flight", &[]),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric_sample(&text, "cairn_store_checksum_failures_total", &[]),
        0.0,
        "{text}"
    );
    assert!(text.contains("cairn_build_info{version=\""), "{text}");
    assert!(text.contains("cairn_collapsed_requests_total"), "{text}");
    promtool_check(&text);

    // A dead origin: a connect error, answered 502.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let edge2 = Edge::quick(&format!("http://{dead}"), dir2.path(), &[]);
    let r = get(edge2.addr, "a.example", "/x").await;
    assert_eq!(r.status, 502);
    let text = scrape_until(edge2.admin, |t| {
        metric_sample(t, "cairn_requests_total", &[]) >= 1.0
    })
    .await;
    assert_eq!(
        metric_sample(&text, "cairn_requests_total", &["result=\"Error\""]),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric_sample(
            &text,
            "cairn_origin_requests_total",
            &["outcome=\"connect_error\""]
        ),
        1.0,
        "{text}"
    );
    promtool_check(&text);
}
