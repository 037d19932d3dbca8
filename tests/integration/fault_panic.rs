//! A panic never takes the edge down (the test build turns on the `fault-injection`
//! feature: a request with `x-cairn-fault: <site>` panics the edge at that site). A
//! panicking request gets a 500 and the edge keeps answering; a panicking fill releases
//! its collapsed followers with an error, stores nothing, and a later request fetches the
//! object again; each panic is logged and counted in `cairn_panics_total{site}`. Durations
//! that would overflow the clock are refused when the configuration is read.

use std::time::Duration;

use crate::edge_harness::*;

const HOST: &str = "viewer.example";

/// An origin that answers `/slow/...` after 400 ms (long enough for followers to join a
/// fill) and everything else at once, always with a cacheable 200.
async fn origin() -> Origin {
    Origin::start(|seen| {
        let mut steps = Vec::new();
        if seen.target.starts_with("/slow/") {
            steps.push(Step::Sleep(Duration::from_millis(400)));
        }
        steps.extend(ok(
            format!("body of {}", seen.target).as_bytes(),
            &[("cache-control", "max-age=600")],
        ));
        steps
    })
    .await
}

async fn panics(edge: &Edge, site: &str) -> f64 {
    let text = scrape_metrics(edge.admin).await;
    metric_sample(&text, "cairn_panics_total", &[&format!("site=\"{site}\"")])
}

#[tokio::test]
async fn a_panicking_request_gets_a_500_and_the_edge_goes_on() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);

    let r = get_with(edge.addr, HOST, "/a", &[("x-cairn-fault", "panic-request")]).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("failed"), "{}", r.text());
    assert_eq!(
        origin.count("/a"),
        0,
        "the panic came before any origin request"
    );

    // The same edge, the same path: answered normally, on new connections and old.
    for expect in ["Miss from cairn", "Hit from cairn"] {
        let r = get(edge.addr, HOST, "/a").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.x_cache(), expect);
        assert_eq!(r.text(), "body of /a");
    }
    assert_eq!(panics(&edge, "request").await, 1.0);
    let log = edge.stderr();
    assert!(
        log.contains("a request panicked") && log.contains("fault injected at panic-request"),
        "{log}"
    );
}

#[tokio::test]
async fn a_panicking_fill_releases_its_followers_and_stores_nothing() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);

    // The leader's fill panics once the origin's head is in; two followers join it while
    // the origin is slow.
    let leader = tokio::spawn({
        let addr = edge.addr;
        async move { get_with(addr, HOST, "/slow/x", &[("x-cairn-fault", "panic-fill")]).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let followers: Vec<_> = (0..2)
        .map(|_| {
            let addr = edge.addr;
            tokio::spawn(async move { get(addr, HOST, "/slow/x").await })
        })
        .collect();
    let leader = leader.await.unwrap();
    assert_eq!(leader.status, 500, "{}", leader.text());
    for f in followers {
        let f = f.await.unwrap();
        assert_eq!(
            f.status,
            500,
            "a follower is released with an error: {}",
            f.text()
        );
    }
    assert_eq!(
        origin.count("/slow/x"),
        1,
        "the followers collapsed onto the fill"
    );
    assert_eq!(panics(&edge, "fill").await, 1.0);

    // Nothing was stored and nothing is stuck: the next request fetches it again.
    let r = get(edge.addr, HOST, "/slow/x").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.x_cache(), "Miss from cairn");
    assert_eq!(r.text(), "body of /slow/x");
    assert_eq!(origin.count("/slow/x"), 2);
    let text = scrape_metrics(edge.admin).await;
    assert_eq!(metric_sample(&text, "cairn_fills_in_flight", &[]), 0.0);
    assert!(
        edge.stderr().contains("a fill panicked"),
        "{}",
        edge.stderr()
    );
}

#[test]
fn a_ttl_beyond_the_clock_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c");
    let (code, _, err) = run_cairn(&[
        "serve",
        "--origin",
        "http://127.0.0.1:9",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--default-ttl",
        "18446744073709551615",
        "--max-ttl",
        "18446744073709551615",
    ]);
    assert_eq!(code, Some(1), "{err}");
    for flag in ["--default-ttl", "--max-ttl"] {
        assert!(
            err.contains(&format!("{flag}: distribution[0].default_behavior.")),
            "{err}"
        );
    }
    assert!(err.contains("100 years"), "{err}");
}
