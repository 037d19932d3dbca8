//! Tiered caching: child edges whose origin is a parent edge (`type = "edge"`). The
//! parent is sent the viewer's Host, collapses the children's misses into one origin
//! request, and its result comes back as `X-Cache-Parent` while the child's `X-Cache` and
//! access log stay its own; a parent tier may fail over to the origin; a request that
//! comes back to an edge it already passed (its name in `Via`) is a 508.

use std::path::Path;
use std::time::Duration;

use crate::edge_harness::*;

const ALIAS: &str = "shop.example";

/// An edge named `name` serving distribution `shop` (alias shop.example, logged to
/// logs/shop.log) from `origins` (TOML `[[distribution.origin]]` blocks and anything after).
fn start_edge(dir: &Path, name: &str, listen: &str, origins: &str) -> Edge {
    let path = dir.join("cairn.toml");
    let text = format!(
        "[edge]\nname = \"{name}\"\ndomain = \"cdn.test\"\nlisten = \"{listen}\"\nadmin_listen = \"127.0.0.1:0\"\ndrain_timeout = 5\n\n\
         [cache]\ndir = \"cache\"\ncapacity = \"64MiB\"\nsegment_size = \"4MiB\"\n\n\
         [[distribution]]\nid = \"shop\"\naliases = [\"{ALIAS}\"]\n\
         logging = {{ enabled = true, file = \"logs/shop.log\" }}\n{origins}"
    );
    std::fs::write(&path, text).unwrap();
    Edge::with_config(&path, dir)
}

fn edge_origin(id: &str, addr: std::net::SocketAddr) -> String {
    format!("[[distribution.origin]]\nid = \"{id}\"\ntype = \"edge\"\nurl = \"http://{addr}\"\nconnect_timeout = 1\nconnect_attempts = 1\n")
}

/// The x-edge-result-type column of every request line of a CloudFront-format log.
fn logged_results(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("#Fields: "))
        .map(|f| f.split(' ').collect())
        .unwrap_or_default();
    let Some(col) = fields.iter().position(|f| *f == "x-edge-result-type") else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('\t').nth(col).map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_share_one_parent_fetch_and_report_its_result() {
    // Slow enough that the 30 requests overlap the one fill they share.
    let origin = Origin::start(|seen| {
        let mut steps = vec![Step::Sleep(Duration::from_millis(300))];
        let body = format!("{} from the origin", seen.target);
        steps.extend(ok(body.as_bytes(), &[("cache-control", "max-age=600")]));
        steps
    })
    .await;
    let pdir = tempfile::tempdir().unwrap();
    let parent_origin = format!(
        "[[distribution.origin]]\nid = \"web\"\nurl = \"{}\"\n",
        origin.url()
    );
    let parent = start_edge(pdir.path(), "shield", "127.0.0.1:0", &parent_origin);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let children: Vec<Edge> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let name = format!("child-{i}");
            start_edge(
                d.path(),
                &name,
                "127.0.0.1:0",
                &edge_origin("shield", parent.addr),
            )
        })
        .collect();
    let requests = (0..30).map(|i| {
        let addr = children[i % 3].addr;
        tokio::spawn(async move { get(addr, ALIAS, "/cold").await })
    });
    let mut parent_results = Vec::new();
    for r in futures_util::future::join_all(requests).await {
        let r = r.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "/cold from the origin");
        assert!(
            matches!(r.x_cache(), "Miss from cairn" | "Hit from cairn"),
            "the child's own result: {}",
            r.x_cache()
        );
        let via = r.header("via").unwrap_or("");
        assert!(
            via.contains("1.1 shield (cairn), 1.1 child-"),
            "each hop in Via: {via}"
        );
        parent_results.push(r.header("x-cache-parent").unwrap_or("").to_string());
    }
    assert_eq!(
        origin.count("/cold"),
        1,
        "one origin request for 30 viewers"
    );
    assert!(
        parent_results
            .iter()
            .all(|p| p == "Miss from shield" || p == "Hit from shield"),
        "{parent_results:?}"
    );
    let seen = last_seen(&origin, "/cold");
    let via = seen.header("via").unwrap_or("");
    assert!(
        via.starts_with("1.1 child-") && via.ends_with(", 1.1 shield (cairn)"),
        "the origin sees both hops: {via}"
    );
    // The child's next request is its own hit; its log keeps its own result types.
    let again = get(children[0].addr, ALIAS, "/cold").await;
    assert_eq!(again.x_cache(), "Hit from cairn");
    let log = dirs[0].path().join("logs/shop.log");
    eventually("the child's log lines", || logged_results(&log).len() >= 11).await;
    let results = logged_results(&log);
    assert!(
        results.iter().all(|r| r == "Miss" || r == "Hit"),
        "the child's own result types: {results:?}"
    );
    assert_eq!(results.last().map(String::as_str), Some("Hit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_tier_fails_over_to_the_origin() {
    let origin = numbered_origin(|_| vec![("cache-control", "max-age=600".to_string())]).await;
    let dir = tempfile::tempdir().unwrap();
    // Nobody listens on the parent's port.
    let down: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let origins = format!(
        "{}[[distribution.origin]]\nid = \"web\"\nurl = \"{}\"\n\
         [[distribution.origin_group]]\nid = \"tiered\"\nmembers = [\"shield\", \"web\"]\n\
         [distribution.default_behavior]\ntarget = \"tiered\"\n",
        edge_origin("shield", down),
        origin.url()
    );
    let child = start_edge(dir.path(), "child", "127.0.0.1:0", &origins);
    let r = get(child.addr, ALIAS, "/a").await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "/a #1"));
    assert_eq!(r.x_cache(), "Miss from cairn");
    assert_eq!(
        r.header("x-cache-parent"),
        None,
        "the origin answered, not a parent"
    );
    let seen = last_seen(&origin, "/a");
    assert_eq!(
        seen.header("host"),
        Some(origin.addr.to_string().as_str()),
        "an http origin gets its own host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parent_gets_the_viewers_host() {
    let origin = numbered_origin(|_| vec![("cache-control", "max-age=600".to_string())]).await;
    let pdir = tempfile::tempdir().unwrap();
    let web = format!(
        "[[distribution.origin]]\nid = \"web\"\nurl = \"{}\"\n",
        origin.url()
    );
    let parent = start_edge(pdir.path(), "shield", "127.0.0.1:0", &web);
    let cdir = tempfile::tempdir().unwrap();
    let child = start_edge(
        cdir.path(),
        "child",
        "127.0.0.1:0",
        &edge_origin("shield", parent.addr),
    );
    // Both the alias and the assigned domain route through the parent to `shop`.
    for host in [ALIAS, "shop.cdn.test"] {
        let target = format!("/via-{host}");
        let r = get(child.addr, host, &target).await;
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        assert_eq!(r.header("x-cache-parent"), Some("Miss from shield"));
    }
    // A second child request for the parent's object is the parent's hit.
    let cdir2 = tempfile::tempdir().unwrap();
    let child2 = start_edge(
        cdir2.path(),
        "child2",
        "127.0.0.1:0",
        &edge_origin("shield", parent.addr),
    );
    let r = get(child2.addr, ALIAS, "/via-shop.example").await;
    assert_eq!(r.x_cache(), "Miss from cairn");
    assert_eq!(r.header("x-cache-parent"), Some("Hit from shield"));
    assert_eq!(origin.count("/via-"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_comes_back_is_a_loop() {
    // Two edges, each the other's parent: a miss goes a → b → a, and a answers 508.
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a_addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let b = start_edge(
        b_dir.path(),
        "edge-b",
        "127.0.0.1:0",
        &edge_origin("a", a_addr),
    );
    let a = start_edge(
        a_dir.path(),
        "edge-a",
        &a_addr.to_string(),
        &edge_origin("b", b.addr),
    );
    let r = get(a.addr, ALIAS, "/loop").await;
    assert_eq!(r.status.as_u16(), 508, "{}", r.text());
    let parents = r.header("x-cache-parent").unwrap_or("");
    assert_eq!(
        parents, "Error from edge-b, Error from edge-a",
        "both hops' results"
    );
    eventually("a's log names the loop", || {
        a.stderr()
            .contains("request loop: this edge's name is already in the request's Via")
    })
    .await;
    // A viewer's own Via naming the edge is refused the same way, before any fetch.
    let r = get_with(
        b.addr,
        ALIAS,
        "/x",
        &[("via", "1.1 proxy, 1.1 EDGE-B (cairn)")],
    )
    .await;
    assert_eq!(r.status.as_u16(), 508);
    assert_eq!(r.x_cache(), "Error from cairn");
    let metrics = scrape_metrics(b.admin).await;
    assert!(
        metric_sample(
            &metrics,
            "cairn_viewer_requests_refused_total",
            &["reason=\"via_loop\""]
        ) >= 1.0
    );
}
