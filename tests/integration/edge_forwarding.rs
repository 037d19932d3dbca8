//! Origin request policies end to end: what the origin request policy adds reaches the
//! origin without being keyed (viewers differing only in it share one stored object unless
//! the response varies on it); hop-by-hop fields and the fields Connection names never
//! reach the origin; forwarded-but-unkeyed cookies keep Set-Cookie responses out of the
//! cache; Authorization forwarded but not keyed follows RFC 9111 §3.5; the managed policy
//! names expand as documented; quick mode keys and forwards like a reverse-proxy cache.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::edge_harness::*;

const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";
const HOST: &str = "viewer.example";

fn start_edge(behaviour: &str, url: &str) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[distribution]]\nid = \"t\"\ncatch_all = true\n\
[[distribution.origin]]\nid = \"o\"\nurl = \"{url}\"\n\
[distribution.default_behavior]\n{behaviour}\n"
        ),
    );
    (Edge::with_config(&cfg, dir.path()), dir)
}

fn cacheable(_: &Seen) -> Vec<(&'static str, String)> {
    vec![("cache-control", "max-age=600".to_string())]
}

async fn expect(edge: &Edge, target: &str, headers: &[(&str, &str)], x_cache: &str, body: &str) {
    let r = get_with(edge.addr, HOST, target, headers).await;
    assert_eq!(r.status, 200, "{target} {headers:?}");
    assert_eq!(
        (r.x_cache(), r.text().as_str()),
        (x_cache, body),
        "{target} {headers:?}"
    );
}

/// Sends `head` (a whole HTTP/1.1 request head) on a raw connection and reads the
/// response until the edge closes it (the request says `Connection: close` itself or the
/// caller lists it), bounded.
async fn raw(edge: &Edge, head: &str) -> String {
    let mut s = TcpStream::connect(edge.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_but_unkeyed_headers_reach_the_origin_and_share_one_object() {
    let origin = numbered_origin(cacheable).await;
    let (edge, _dir) = start_edge(
        "cache_key = { headers = [\"x-keyed\"] }\n\
         origin_request = { headers = { allow = [\"x-trace\", \"Accept-Language\"] } }",
        &origin.url(),
    );
    expect(
        &edge,
        "/a",
        &[
            ("x-trace", "one"),
            ("accept-language", "fr"),
            ("x-other", "no"),
        ],
        MISS,
        "/a #1",
    )
    .await;
    let seen = last_seen(&origin, "/a");
    assert_eq!(seen.header("x-trace"), Some("one"));
    assert_eq!(seen.header("accept-language"), Some("fr"));
    assert_eq!(seen.header("x-other"), None, "not in either policy");
    // Differing only in unkeyed headers: the same stored object.
    expect(&edge, "/a", &[("x-trace", "two")], HIT, "/a #1").await;
    expect(&edge, "/a", &[("accept-language", "de")], HIT, "/a #1").await;
    // A keyed header still makes its own object.
    expect(&edge, "/a", &[("x-keyed", "k")], MISS, "/a #2").await;
    assert_eq!(origin.count("/a"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_on_a_forwarded_unkeyed_header_stores_a_variant_each() {
    let origin = Origin::start(|seen| {
        let lang = seen.header("accept-language").unwrap_or("none").to_string();
        ok(
            format!("hello in {lang}").as_bytes(),
            &[
                ("cache-control", "max-age=600"),
                ("vary", "Accept-Language"),
            ],
        )
    })
    .await;
    let (edge, _dir) = start_edge(
        "origin_request = { headers = { allow = [\"accept-language\"] } }",
        &origin.url(),
    );
    let fr = [("accept-language", "fr")];
    let de = [("accept-language", "de")];
    expect(&edge, "/v", &fr, MISS, "hello in fr").await;
    expect(&edge, "/v", &de, MISS, "hello in de").await;
    expect(&edge, "/v", &fr, HIT, "hello in fr").await;
    expect(&edge, "/v", &de, HIT, "hello in de").await;
    assert_eq!(origin.count("/v"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_and_connection_named_headers_never_reach_the_origin() {
    let origin = numbered_origin(cacheable).await;
    for policy in ["\"all\"", "\"all_viewer\"", "{ all_except = [\"x-none\"] }"] {
        let (edge, _dir) = start_edge(
            &format!("origin_request = {{ headers = {policy} }}"),
            &origin.url(),
        );
        let target = format!("/hop/{}", policy.len());
        let resp = raw(
            &edge,
            &format!(
                "GET {target} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close, X-Secret\r\n\
                 X-Secret: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: x\r\n\
                 Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n\
                 Upgrade: websocket\r\nX-Kept: yes\r\n\r\n"
            ),
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{policy}: {resp}");
        let seen = last_seen(&origin, &target);
        assert_eq!(seen.header("x-kept"), Some("yes"), "{policy}: {seen:?}");
        for never in [
            "x-secret",
            "keep-alive",
            "te",
            "trailer",
            "proxy-connection",
            "proxy-authorization",
            "upgrade",
        ] {
            assert_eq!(
                seen.header(never),
                None,
                "{policy}: {never} reached the origin"
            );
        }
        assert_ne!(
            seen.header("connection")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("close, x-secret"),
            "{policy}: the viewer's Connection is the viewer's"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_unkeyed_cookies_keep_set_cookie_responses_out_of_the_cache() {
    let origin = numbered_origin(|seen| {
        let mut h = cacheable(seen);
        if seen.target.starts_with("/login") {
            h.push(("set-cookie", "session=abc".to_string()));
        }
        h
    })
    .await;
    // CloudFront's rules, with the TTLs a file's default and a short one; strict mode
    // follows RFC 9111 §3 instead (Set-Cookie does not inhibit storing: rfc_storing).
    for ttl in ["default_ttl = 86400", "default_ttl = 60\nmin_ttl = 10"] {
        let (edge, _dir) = start_edge(
            &format!("{ttl}\norigin_request = {{ cookies = \"all\" }}"),
            &origin.url(),
        );
        let before = origin.count("/login");
        let cookie = [("cookie", "who=me; theme=dark")];
        let r = get_with(edge.addr, HOST, "/login", &cookie).await;
        assert_eq!((r.status.as_u16(), r.x_cache()), (200, MISS), "{ttl}");
        assert_eq!(r.header("set-cookie"), Some("session=abc"));
        assert_eq!(
            last_seen(&origin, "/login").header("cookie"),
            Some("who=me; theme=dark"),
            "{ttl}: the cookies were forwarded"
        );
        let r = get_with(edge.addr, HOST, "/login", &cookie).await;
        assert_eq!(
            r.x_cache(),
            MISS,
            "{ttl}: a Set-Cookie response is not stored"
        );
        assert_eq!(origin.count("/login"), before + 2, "{ttl}");
        // Without Set-Cookie, the cookies (unkeyed) do not keep it from being shared.
        let path = format!("/page-{}", ttl.len());
        let r1 = get_with(edge.addr, HOST, &path, &[("cookie", "who=a")]).await;
        let r2 = get_with(edge.addr, HOST, &path, &[("cookie", "who=b")]).await;
        assert_eq!((r1.x_cache(), r2.x_cache()), (MISS, HIT), "{ttl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_forwarded_but_unkeyed_follows_rfc_9111_section_3_5() {
    let origin = numbered_origin(|seen| {
        let cc = if seen.target.starts_with("/public") {
            "public, max-age=600"
        } else {
            "max-age=600"
        };
        vec![("cache-control", cc.to_string())]
    })
    .await;
    let (edge, _dir) = start_edge(
        "origin_request = { headers = { allow = [\"authorization\"] } }",
        &origin.url(),
    );
    let auth = [("authorization", "Bearer secret")];
    expect(&edge, "/private", &auth, MISS, "/private #1").await;
    assert_eq!(
        last_seen(&origin, "/private").header("authorization"),
        Some("Bearer secret")
    );
    // Not stored (no public, s-maxage or must-revalidate), so nobody gets it from cache.
    expect(&edge, "/private", &[], MISS, "/private #2").await;
    expect(&edge, "/private", &auth, MISS, "/private #3").await;
    // With public, the authorized response is stored and shared.
    expect(&edge, "/public", &auth, MISS, "/public #4").await;
    expect(&edge, "/public", &[], HIT, "/public #4").await;
    expect(&edge, "/public", &auth, HIT, "/public #4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_policies_expand_as_documented() {
    let origin = numbered_origin(cacheable).await;
    let (edge, _dir) = start_edge(
        "cache_key = { managed = \"CachingOptimized\" }\n\
         origin_request = { managed = \"UserAgentRefererHeaders\" }",
        &origin.url(),
    );
    let h = [
        ("user-agent", "browser/1"),
        ("referer", "http://r.example/"),
        ("x-other", "no"),
        ("accept-encoding", "gzip, br"),
    ];
    expect(&edge, "/m?a=1", &h, MISS, "/m?a=1 #1").await;
    let seen = last_seen(&origin, "/m");
    assert_eq!(seen.header("user-agent"), Some("browser/1"));
    assert_eq!(seen.header("referer"), Some("http://r.example/"));
    assert_eq!(seen.header("x-other"), None);
    assert_eq!(
        seen.header("accept-encoding"),
        Some("br"),
        "normalised, keyed"
    );
    // Query strings forwarded but not keyed: another query is the same object.
    expect(&edge, "/m?a=2", &h, HIT, "/m?a=1 #1").await;
    // Accept-Encoding is keyed: gzip only is another object.
    expect(
        &edge,
        "/m?a=1",
        &[("accept-encoding", "gzip")],
        MISS,
        "/m?a=1 #2",
    )
    .await;

    let (edge, _dir) = start_edge(
        "origin_request = { managed = \"AllViewer\" }",
        &origin.url(),
    );
    expect(&edge, "/all?x=1", &[("x-any", "1")], MISS, "/all?x=1 #3").await;
    let seen = last_seen(&origin, "/all");
    assert_eq!(seen.header("x-any"), Some("1"));
    assert_eq!(
        seen.header("host"),
        Some(HOST),
        "AllViewer sends the viewer's Host"
    );
    expect(&edge, "/all?x=2", &[], HIT, "/all?x=1 #3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_keys_and_forwards_like_a_reverse_proxy_cache() {
    let origin = numbered_origin(cacheable).await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);
    let h = [
        ("authorization", "Basic dTpw"),
        ("accept-language", "fr"),
        ("user-agent", "app-test/1"),
        ("x-requested-with", "XMLHttpRequest"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("x-app-own", "mine"),
        ("cookie", "sid=1"),
    ];
    let r = get_with(edge.addr, HOST, "/search?q=a", &h).await;
    assert_eq!(r.text(), "/search?q=a #1");
    let seen = last_seen(&origin, "/search?q=a");
    for (name, value) in &h {
        assert_eq!(seen.header(name), Some(*value), "{name} was not forwarded");
    }
    assert_eq!(
        seen.header("host").map(|h| h.to_string()),
        Some(origin.addr.to_string()),
        "the origin's own Host"
    );
    let r = get(edge.addr, HOST, "/search?q=b").await;
    assert_eq!((r.x_cache(), r.text().as_str()), (MISS, "/search?q=b #2"));
    let r = get(edge.addr, HOST, "/search?q=b").await;
    assert_eq!((r.x_cache(), r.text().as_str()), (HIT, "/search?q=b #2"));
    // Every method CloudFront can pass reaches the application, with its body.
    for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let r = request(edge.addr, method, HOST, "/form?x=1", &h, b"a=1").await;
        assert_eq!(r.status, 200, "{method}");
        let seen = last_seen(&origin, "/form");
        assert_eq!(
            (seen.method.as_str(), seen.body.as_slice()),
            (method, &b"a=1"[..])
        );
        assert_eq!(seen.header("x-app-own"), Some("mine"), "{method}");
    }

    // The flags narrow it.
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(
        &origin.url(),
        dir.path(),
        &[
            "--query-strings",
            "allow=q",
            "--forward-headers",
            "allow=x-app-own",
            "--forward-host",
        ],
    );
    let r = get_with(edge.addr, HOST, "/n?q=1&utm=x", &h).await;
    assert_eq!(r.x_cache(), MISS);
    let seen = last_seen(&origin, "/n");
    assert_eq!(seen.target, "/n?q=1");
    assert_eq!(seen.header("x-app-own"), Some("mine"));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("host"), Some(HOST), "--forward-host");
    let r = get(edge.addr, "other.example", "/n?q=1").await;
    assert_eq!(r.x_cache(), MISS, "--forward-host keys the Host too");
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(
        &origin.url(),
        dir.path(),
        &["--query-strings", "none", "--forward-headers", "none"],
    );
    // Without Authorization, so that the response may be stored (RFC 9111 §3.5).
    get_with(edge.addr, HOST, "/z?q=1", &h[1..]).await;
    let seen = last_seen(&origin, "/z");
    assert_eq!(seen.target, "/z");
    assert_eq!(seen.header("x-app-own"), None);
    let r = get(edge.addr, HOST, "/z?q=2").await;
    assert_eq!(r.x_cache(), HIT);
}

/// A caching test harness correlates requests by its own query strings and headers: with
/// `--default-ttl 0` (strict RFC 9111) both reach the origin and the cache still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_quick_mode_passes_a_harness_its_own_headers_and_queries() {
    let seen_ids = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ids = seen_ids.clone();
    let origin = Origin::start(move |seen| {
        ids.lock().unwrap().push((
            seen.target.clone(),
            seen.header("test-name").map(str::to_string),
            seen.header("req-num").map(str::to_string),
        ));
        ok(b"x", &[("cache-control", "max-age=100")])
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &["--default-ttl", "0"]);
    let r = get_with(
        edge.addr,
        HOST,
        "/test?uuid=1",
        &[("test-name", "freshness"), ("req-num", "1")],
    )
    .await;
    assert_eq!(r.x_cache(), MISS);
    let r = get_with(
        edge.addr,
        HOST,
        "/test?uuid=1",
        &[("test-name", "freshness"), ("req-num", "2")],
    )
    .await;
    assert_eq!(r.x_cache(), HIT);
    let r = get_with(edge.addr, HOST, "/test?uuid=2", &[("req-num", "1")]).await;
    assert_eq!(r.x_cache(), MISS);
    assert_eq!(
        *seen_ids.lock().unwrap(),
        [
            (
                "/test?uuid=1".to_string(),
                Some("freshness".to_string()),
                Some("1".to_string())
            ),
            ("/test?uuid=2".to_string(), None, Some("1".to_string())),
        ]
    );
}
