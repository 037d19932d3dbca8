//! Cache policy end to end, by CloudFront's rules: what the cache key includes is exactly
//! what reaches the origin (query strings, headers, cookies, normalised Accept-Encoding,
//! the viewer's Host); TTLs from s-maxage, max-age, Expires and the behaviour's bounds;
//! no-store, private and no-cache; viewers' no-cache; Set-Cookie; revalidation with ETag
//! and Last-Modified; origin-group failover; bodies that cannot be trusted; https origins.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::edge_harness::*;

const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";
const REFRESH_HIT: &str = "RefreshHit from cairn";

/// Starts the edge with one catch-all distribution "t"; `tables` holds its origins,
/// groups and behaviours (TOML, under `[[distribution]]`).
fn start_edge(tables: &str) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!("[[distribution]]\nid = \"t\"\ncatch_all = true\n{tables}"),
    );
    (Edge::with_config(&cfg, dir.path()), dir)
}

fn one_origin(url: &str) -> String {
    format!("[[distribution.origin]]\nid = \"o\"\nurl = \"{url}\"\n")
}

/// An origin answering every request 200 with the body "<target as received> #<n>" (`n`
/// counts its requests from 1) and the headers `headers` picks for the request.
async fn numbered(
    headers: impl Fn(&Seen) -> Vec<(&'static str, String)> + Send + Sync + 'static,
) -> Origin {
    let n = AtomicUsize::new(0);
    Origin::start(move |seen| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        let h = headers(seen);
        let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (*n, v.as_str())).collect();
        ok(format!("{} #{i}", seen.target).as_bytes(), &h)
    })
    .await
}

fn cacheable(_: &Seen) -> Vec<(&'static str, String)> {
    vec![("cache-control", "max-age=600".to_string())]
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// GETs `target` and checks X-Cache and the body.
async fn expect(edge: &Edge, target: &str, headers: &[(&str, &str)], x_cache: &str, body: &str) {
    let r = get_with(edge.addr, "viewer.example", target, headers).await;
    assert_eq!(r.status, 200, "{target} {headers:?}");
    assert_eq!(
        (r.x_cache(), r.text().as_str()),
        (x_cache, body),
        "{target} {headers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_string_policies_key_exactly_what_they_forward() {
    let origin = numbered(cacheable).await;
    let (edge, _dir) = start_edge(&format!(
        "{}\
[distribution.default_behavior.cache_key]
query_strings = \"none\"
[[distribution.behavior]]
path_pattern = \"/all/*\"
cache_key = {{ query_strings = \"all\" }}
[[distribution.behavior]]
path_pattern = \"/allow/*\"
cache_key = {{ query_strings = {{ allow = [\"v\"] }} }}
[[distribution.behavior]]
path_pattern = \"/except/*\"
cache_key = {{ query_strings = {{ all_except = [\"utm\"] }} }}
",
        one_origin(&origin.url())
    ));

    // none: the origin sees no query; every query shares one object.
    expect(&edge, "/none/x?a=1", &[], MISS, "/none/x #1").await;
    expect(&edge, "/none/x?a=2", &[], HIT, "/none/x #1").await;
    expect(&edge, "/none/x", &[], HIT, "/none/x #1").await;

    // all: the whole query is forwarded and keyed.
    expect(&edge, "/all/x?a=1", &[], MISS, "/all/x?a=1 #2").await;
    expect(&edge, "/all/x?a=2", &[], MISS, "/all/x?a=2 #3").await;
    expect(&edge, "/all/x?a=1", &[], HIT, "/all/x?a=1 #2").await;

    // allow v: only v reaches the origin and only v makes a new object.
    expect(&edge, "/allow/x?v=1&w=1", &[], MISS, "/allow/x?v=1 #4").await;
    expect(&edge, "/allow/x?w=2&v=1", &[], HIT, "/allow/x?v=1 #4").await;
    expect(&edge, "/allow/x?v=2&w=1", &[], MISS, "/allow/x?v=2 #5").await;

    // all_except utm: everything but utm.
    expect(&edge, "/except/x?a=1&utm=x", &[], MISS, "/except/x?a=1 #6").await;
    expect(&edge, "/except/x?utm=y&a=1", &[], HIT, "/except/x?a=1 #6").await;
    expect(&edge, "/except/x?a=2&utm=x", &[], MISS, "/except/x?a=2 #7").await;
    expect(&edge, "/except/x?utm=z", &[], MISS, "/except/x #8").await;

    assert_eq!(origin.requests().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_header_is_forwarded_and_keyed_an_unlisted_one_neither() {
    let origin = numbered(cacheable).await;
    let (edge, _dir) = start_edge(&format!(
        "{}[distribution.default_behavior.cache_key]\nheaders = [\"x-variant\"]\n",
        one_origin(&origin.url())
    ));
    let a1 = [("x-variant", "a"), ("x-other", "1")];
    expect(&edge, "/h", &a1, MISS, "/h #1").await;
    let seen = last_seen(&origin, "/h");
    assert_eq!(seen.header("x-variant"), Some("a"));
    assert_eq!(
        seen.header("x-other"),
        None,
        "an unlisted header was forwarded"
    );

    let a2 = [("x-variant", "a"), ("x-other", "2")];
    expect(&edge, "/h", &a2, HIT, "/h #1").await;

    expect(&edge, "/h", &[("x-variant", "b")], MISS, "/h #2").await;
    assert_eq!(last_seen(&origin, "/h").header("x-variant"), Some("b"));

    // Absent is its own value.
    expect(&edge, "/h", &[("x-other", "1")], MISS, "/h #3").await;
    assert_eq!(last_seen(&origin, "/h").header("x-variant"), None);
    expect(&edge, "/h", &[], HIT, "/h #3").await;
    assert_eq!(origin.count("/h"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_policies_forward_only_the_included_cookies() {
    let origin = numbered(cacheable).await;
    let (edge, _dir) = start_edge(&format!(
        "{}\
[distribution.default_behavior.cache_key]
cookies = \"none\"
[[distribution.behavior]]
path_pattern = \"/all/*\"
cache_key = {{ cookies = \"all\" }}
[[distribution.behavior]]
path_pattern = \"/allow/*\"
cache_key = {{ cookies = {{ allow = [\"session\"] }} }}
",
        one_origin(&origin.url())
    ));
    let jar = [("cookie", "session=s1; theme=dark; ads=x")];
    let other_theme = [("cookie", "session=s1; theme=light")];

    // none: no Cookie header at the origin; cookies do not split the object.
    expect(&edge, "/none/c", &jar, MISS, "/none/c #1").await;
    assert_eq!(last_seen(&origin, "/none/c").header("cookie"), None);
    expect(&edge, "/none/c", &other_theme, HIT, "/none/c #1").await;

    // all: every cookie is forwarded and keyed.
    expect(&edge, "/all/c", &jar, MISS, "/all/c #2").await;
    assert_eq!(
        last_seen(&origin, "/all/c").header("cookie"),
        Some("session=s1; theme=dark; ads=x")
    );
    expect(&edge, "/all/c", &jar, HIT, "/all/c #2").await;
    expect(&edge, "/all/c", &other_theme, MISS, "/all/c #3").await;

    // allow-list: only "session" reaches the origin and the key.
    expect(&edge, "/allow/c", &jar, MISS, "/allow/c #4").await;
    assert_eq!(
        last_seen(&origin, "/allow/c").header("cookie"),
        Some("session=s1")
    );
    expect(&edge, "/allow/c", &other_theme, HIT, "/allow/c #4").await;
    let s2 = [("cookie", "theme=dark; session=s2")];
    expect(&edge, "/allow/c", &s2, MISS, "/allow/c #5").await;
    assert_eq!(
        last_seen(&origin, "/allow/c").header("cookie"),
        Some("session=s2")
    );
    expect(
        &edge,
        "/allow/c",
        &[("cookie", "theme=dark")],
        MISS,
        "/allow/c #6",
    )
    .await;
    assert_eq!(last_seen(&origin, "/allow/c").header("cookie"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_encoding_is_normalised_in_the_key_and_at_the_origin() {
    let origin = numbered(cacheable).await;
    let (edge, _dir) = start_edge(&format!(
        "{}[distribution.default_behavior.cache_key]\nheaders = [\"accept-encoding\"]\n",
        one_origin(&origin.url())
    ));
    let ae = |v| [("accept-encoding", v)];
    expect(&edge, "/e", &ae("gzip, deflate, br"), MISS, "/e #1").await;
    assert_eq!(
        last_seen(&origin, "/e").header("accept-encoding"),
        Some("br")
    );
    expect(&edge, "/e", &ae("br"), HIT, "/e #1").await;

    expect(&edge, "/e", &ae("gzip"), MISS, "/e #2").await;
    assert_eq!(
        last_seen(&origin, "/e").header("accept-encoding"),
        Some("gzip")
    );
    expect(&edge, "/e", &ae("deflate, gzip"), HIT, "/e #2").await;
    expect(&edge, "/e", &ae("br;q=0, gzip"), HIT, "/e #2").await;

    // Nothing usable: identity, forwarded without Accept-Encoding.
    expect(&edge, "/e", &ae("deflate"), MISS, "/e #3").await;
    assert_eq!(last_seen(&origin, "/e").header("accept-encoding"), None);
    expect(&edge, "/e", &[], HIT, "/e #3").await;
    assert_eq!(origin.count("/e"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_in_the_key_forwards_the_viewer_host_and_separates_hosts() {
    let origin = numbered(cacheable).await;
    let (edge, _dir) = start_edge(&format!(
        "{}\
[distribution.default_behavior.cache_key]
headers = [\"host\"]
[[distribution.behavior]]
path_pattern = \"/shared/*\"
",
        one_origin(&origin.url())
    ));
    let addr = edge.addr;
    let at = |host: &'static str, target: &'static str| async move {
        let r = get(addr, host, target).await;
        assert_eq!(r.status, 200);
        (r.x_cache().to_string(), r.text())
    };
    assert_eq!(at("a.example", "/p").await, (MISS.into(), "/p #1".into()));
    assert_eq!(last_seen(&origin, "/p").header("host"), Some("a.example"));
    assert_eq!(at("b.example", "/p").await, (MISS.into(), "/p #2".into()));
    assert_eq!(last_seen(&origin, "/p").header("host"), Some("b.example"));
    // The keyed value is the host name, lower case, without the port.
    assert_eq!(
        at("A.Example:8080", "/p").await,
        (HIT.into(), "/p #1".into())
    );
    assert_eq!(at("b.example", "/p").await, (HIT.into(), "/p #2".into()));
    assert_eq!(origin.count("/p"), 2);

    // Without "host" in the key the origin gets its own authority and hosts share.
    assert_eq!(
        at("a.example", "/shared/p").await,
        (MISS.into(), "/shared/p #3".into())
    );
    assert_eq!(
        last_seen(&origin, "/shared/p").header("host"),
        Some(origin.addr.to_string().as_str())
    );
    assert_eq!(
        at("b.example", "/shared/p").await,
        (HIT.into(), "/shared/p #3".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_comes_from_s_maxage_then_max_age_then_expires_minus_date_then_default() {
    let origin = numbered(|seen| {
        let now = SystemTime::now();
        let cc = |v: &str| ("cache-control", v.to_string());
        match seen.target.as_str() {
            "/smaxage-long" => vec![cc("s-maxage=600, max-age=1")],
            "/smaxage-short" => vec![cc("max-age=600, s-maxage=1")],
            "/maxage-short" => vec![
                cc("max-age=1"),
                ("expires", http_date(now + Duration::from_secs(86_400))),
            ],
            "/maxage-long" => vec![
                cc("max-age=600"),
                ("expires", "Thu, 01 Jan 1970 00:00:00 GMT".to_string()),
            ],
            // The origin's clock is an hour fast: Expires - Date is 2 s, Expires - now
            // would be an hour.
            "/expires" => vec![
                ("date", http_date(now + Duration::from_secs(3600))),
                ("expires", http_date(now + Duration::from_secs(3602))),
            ],
            _ => Vec::new(),
        }
    })
    .await;
    let (edge, _dir) = start_edge(&format!(
        "{}[distribution.default_behavior]\ndefault_ttl = 2\n",
        one_origin(&origin.url())
    ));
    let paths = [
        "/smaxage-long",
        "/smaxage-short",
        "/maxage-short",
        "/maxage-long",
        "/expires",
        "/default",
    ];
    for p in paths {
        assert_eq!(get(edge.addr, "x", p).await.x_cache(), MISS, "{p}");
    }
    for p in ["/expires", "/default"] {
        assert_eq!(get(edge.addr, "x", p).await.x_cache(), HIT, "{p}");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (p, fresh) in [
        ("/smaxage-long", true),
        ("/smaxage-short", false),
        ("/maxage-short", false),
        ("/maxage-long", true),
        ("/expires", false),
        ("/default", false),
    ] {
        let r = get(edge.addr, "x", p).await;
        let want = if fresh { HIT } else { MISS };
        assert_eq!(r.x_cache(), want, "{p} after 2.5 s");
        assert_eq!(origin.count(p), if fresh { 1 } else { 2 }, "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_is_clamped_to_max_ttl_and_min_ttl_and_min_ttl_overrides_no_store() {
    let origin = numbered(|seen| {
        let cc = match seen.target.as_str() {
            "/max" => "max-age=600",
            "/min/zero" => "max-age=0",
            "/min/no-store" => "no-store",
            "/min/private" => "private, max-age=0",
            "/min/no-cache" => "no-cache",
            _ => "",
        };
        vec![("cache-control", cc.to_string())]
    })
    .await;
    let (edge, _dir) = start_edge(&format!(
        "{}\
[distribution.default_behavior]
default_ttl = 2
max_ttl = 2
[[distribution.behavior]]
path_pattern = \"/min/*\"
min_ttl = 600
",
        one_origin(&origin.url())
    ));
    let paths = [
        "/max",
        "/min/zero",
        "/min/no-store",
        "/min/private",
        "/min/no-cache",
    ];
    for p in paths {
        expect(
            &edge,
            p,
            &[],
            MISS,
            &format!("{p} #{}", origin.requests().len() + 1),
        )
        .await;
        let r = get(edge.addr, "x", p).await;
        assert_eq!(r.x_cache(), HIT, "{p}");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get(edge.addr, "x", "/max").await.x_cache(), MISS);
    assert_eq!(origin.count("/max"), 2, "max-age=600 was clamped to 2 s");
    for p in &paths[1..] {
        assert_eq!(get(edge.addr, "x", p).await.x_cache(), HIT, "{p}");
        assert_eq!(origin.count(p), 1, "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_min_ttl_zero_no_store_and_private_are_not_stored_and_no_cache_revalidates() {
    let n = AtomicUsize::new(0);
    let origin = Origin::start(move |seen| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        let body = format!("{} #{i}", seen.target);
        match seen.target.as_str() {
            "/no-store" => ok(
                body.as_bytes(),
                &[("cache-control", "max-age=600, no-store")],
            ),
            "/private" => ok(
                body.as_bytes(),
                &[("cache-control", "private, max-age=600")],
            ),
            _ if seen.header("if-none-match") == Some("\"nc\"") => not_modified(&[
                ("cache-control", "no-cache, max-age=600"),
                ("etag", "\"nc\""),
            ]),
            _ => ok(
                body.as_bytes(),
                &[
                    ("cache-control", "no-cache, max-age=600"),
                    ("etag", "\"nc\""),
                ],
            ),
        }
    })
    .await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));

    expect(&edge, "/no-store", &[], MISS, "/no-store #1").await;
    expect(&edge, "/no-store", &[], MISS, "/no-store #2").await;
    expect(&edge, "/private", &[], MISS, "/private #3").await;
    expect(&edge, "/private", &[], MISS, "/private #4").await;

    expect(&edge, "/no-cache", &[], MISS, "/no-cache #5").await;
    assert_eq!(
        last_seen(&origin, "/no-cache").header("if-none-match"),
        None
    );
    for round in 0..2 {
        expect(&edge, "/no-cache", &[], REFRESH_HIT, "/no-cache #5").await;
        assert_eq!(origin.count("/no-cache"), 2 + round);
        assert_eq!(
            last_seen(&origin, "/no-cache").header("if-none-match"),
            Some("\"nc\"")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_no_cache_does_not_send_a_fresh_object_to_the_origin() {
    let origin = numbered(cacheable).await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    expect(&edge, "/f", &[], MISS, "/f #1").await;
    expect(&edge, "/f", &[("cache-control", "no-cache")], HIT, "/f #1").await;
    expect(&edge, "/f", &[("pragma", "no-cache")], HIT, "/f #1").await;
    let both = [
        ("cache-control", "no-cache, max-age=0"),
        ("pragma", "no-cache"),
    ];
    expect(&edge, "/f", &both, HIT, "/f #1").await;
    assert_eq!(origin.count("/f"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_is_never_served_to_another_viewer_when_cookies_are_not_keyed() {
    let n = AtomicUsize::new(0);
    let origin = Origin::start(move |seen| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        let cookie = format!("id={i}");
        let mut steps = Vec::new();
        if seen.target == "/slow" {
            steps.push(Step::Sleep(Duration::from_millis(300)));
        }
        steps.extend(ok(
            format!("user {i}").as_bytes(),
            &[("cache-control", "max-age=600"), ("set-cookie", &cookie)],
        ));
        steps
    })
    .await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));

    let first = get(edge.addr, "x", "/sc").await;
    let second = get(edge.addr, "x", "/sc").await;
    for r in [&first, &second] {
        assert_eq!(r.x_cache(), MISS);
    }
    assert_eq!(first.header("set-cookie"), Some("id=1"));
    assert_eq!(second.header("set-cookie"), Some("id=2"));
    assert_eq!(second.text(), "user 2");
    assert_eq!(origin.count("/sc"), 2);

    // Two viewers at once (the second may join the first one's fill): each gets its own.
    let a = tokio::spawn(get(edge.addr, "x", "/slow"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let b = tokio::spawn(get(edge.addr, "x", "/slow"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(origin.count("/slow"), 2);
    let (ca, cb) = (
        a.header("set-cookie").unwrap(),
        b.header("set-cookie").unwrap(),
    );
    assert_ne!(ca, cb, "two viewers got the same Set-Cookie");
    assert_eq!(a.text(), format!("user {}", &ca[3..]));
    assert_eq!(b.text(), format!("user {}", &cb[3..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_responses_are_cached_when_cookies_are_in_the_key() {
    let n = AtomicUsize::new(0);
    let origin = Origin::start(move |seen| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        let cookie = format!("id={i}");
        let body = format!("for {}", seen.header("cookie").unwrap_or("-"));
        ok(
            body.as_bytes(),
            &[("cache-control", "max-age=600"), ("set-cookie", &cookie)],
        )
    })
    .await;
    let (edge, _dir) = start_edge(&format!(
        "{}[distribution.default_behavior.cache_key]\ncookies = \"all\"\n",
        one_origin(&origin.url())
    ));
    let s1 = [("cookie", "s=1")];
    let r = get_with(edge.addr, "x", "/k", &s1).await;
    assert_eq!((r.x_cache(), r.text().as_str()), (MISS, "for s=1"));
    assert_eq!(r.header("set-cookie"), Some("id=1"));
    let r = get_with(edge.addr, "x", "/k", &s1).await;
    assert_eq!((r.x_cache(), r.text().as_str()), (HIT, "for s=1"));
    assert_eq!(r.header("set-cookie"), Some("id=1"));
    let r = get_with(edge.addr, "x", "/k", &[("cookie", "s=2")]).await;
    assert_eq!((r.x_cache(), r.text().as_str()), (MISS, "for s=2"));
    assert_eq!(r.header("set-cookie"), Some("id=2"));
    assert_eq!(origin.count("/k"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_objects_are_revalidated_with_their_validators() {
    const LM: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
    let origin = Origin::start(|seen| {
        let inm = seen.header("if-none-match");
        let ims = seen.header("if-modified-since");
        let fresh = ("cache-control", "max-age=600");
        let short = ("cache-control", "max-age=1");
        match seen.target.as_str() {
            "/etag" if inm == Some("\"e1\"") => not_modified(&[fresh, ("etag", "\"e1\"")]),
            "/etag" => ok(b"etag body", &[short, ("etag", "\"e1\"")]),
            "/lm" if ims == Some(LM) => not_modified(&[fresh]),
            "/lm" => ok(b"lm body", &[short, ("last-modified", LM)]),
            "/changed" if inm == Some("\"c1\"") => ok(b"new", &[fresh, ("etag", "\"c2\"")]),
            "/changed" => ok(b"old", &[short, ("etag", "\"c1\"")]),
            _ => response(404, &[], b""),
        }
    })
    .await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    expect(&edge, "/etag", &[], MISS, "etag body").await;
    expect(&edge, "/lm", &[], MISS, "lm body").await;
    expect(&edge, "/changed", &[], MISS, "old").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;

    // 304: the stored body with the new freshness, then plain hits.
    let r = get(edge.addr, "x", "/etag").await;
    assert_eq!((r.x_cache(), r.text().as_str()), (REFRESH_HIT, "etag body"));
    assert_eq!(r.header("cache-control"), Some("max-age=600"));
    assert_eq!(r.header("etag"), Some("\"e1\""));
    let seen = last_seen(&origin, "/etag");
    assert_eq!(seen.header("if-none-match"), Some("\"e1\""));
    assert_eq!(seen.header("if-modified-since"), None);
    expect(&edge, "/etag", &[], HIT, "etag body").await;
    assert_eq!(origin.count("/etag"), 2);

    let r = get(edge.addr, "x", "/lm").await;
    assert_eq!((r.x_cache(), r.text().as_str()), (REFRESH_HIT, "lm body"));
    assert_eq!(r.header("last-modified"), Some(LM));
    let seen = last_seen(&origin, "/lm");
    assert_eq!(seen.header("if-modified-since"), Some(LM));
    assert_eq!(seen.header("if-none-match"), None);
    expect(&edge, "/lm", &[], HIT, "lm body").await;
    assert_eq!(origin.count("/lm"), 2);

    // 200: the new body replaces the old one.
    let r = get(edge.addr, "x", "/changed").await;
    assert_eq!((r.x_cache(), r.text().as_str()), (MISS, "new"));
    assert_eq!(r.header("etag"), Some("\"c2\""));
    expect(&edge, "/changed", &[], HIT, "new").await;
    assert_eq!(origin.count("/changed"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_groups_fail_over_on_refusal_and_listed_statuses_only() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let first = Origin::start(|seen| {
        if seen.target.starts_with("/s404/") {
            response(404, &[], b"first: not found")
        } else {
            response(503, &[], b"first: unavailable")
        }
    })
    .await;
    let second = Origin::start(|seen| {
        ok(
            format!("second {}", seen.target).as_bytes(),
            &[("cache-control", "max-age=600")],
        )
    })
    .await;
    let (edge, _dir) = start_edge(&format!(
        "\
[[distribution.origin]]
id = \"dead\"
url = \"http://{dead}\"
connect_attempts = 1
connect_timeout = 1
[[distribution.origin]]
id = \"first\"
url = \"{}\"
[[distribution.origin]]
id = \"second\"
url = \"{}\"
[[distribution.origin_group]]
id = \"g-dead\"
members = [\"dead\", \"second\"]
failover_statuses = [503]
[[distribution.origin_group]]
id = \"g\"
members = [\"first\", \"second\"]
failover_statuses = [503]
[distribution.default_behavior]
target = \"g\"
allowed_methods = [\"GET\", \"HEAD\", \"OPTIONS\", \"PUT\", \"POST\", \"PATCH\", \"DELETE\"]
[[distribution.behavior]]
path_pattern = \"/refused/*\"
target = \"g-dead\"
",
        first.url(),
        second.url()
    ));

    expect(&edge, "/refused/a", &[], MISS, "second /refused/a").await;
    expect(&edge, "/refused/a", &[], HIT, "second /refused/a").await;

    expect(&edge, "/s503/a", &[], MISS, "second /s503/a").await;
    assert_eq!(first.count("/s503/a"), 1);

    let r = get(edge.addr, "x", "/s404/a").await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (404, "first: not found")
    );
    assert_eq!(second.count("/s404/"), 0, "a 404 failed over");

    let r = request(edge.addr, "POST", "x", "/post/a", &[], b"payload").await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (503, "first: unavailable")
    );
    assert_eq!(second.count("/post/"), 0, "a POST failed over");
    let seen = last_seen(&first, "/post/a");
    assert_eq!(
        (seen.method.as_str(), seen.body.as_slice()),
        ("POST", &b"payload"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_close_delimited_bodies_are_not_stored() {
    let chunked_calls = Arc::new(AtomicUsize::new(0));
    let c2 = chunked_calls.clone();
    let origin = Origin::start(move |seen| {
        let cc = "cache-control: max-age=600\r\n";
        match seen.target.as_str() {
            "/chunked" => {
                let head = format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n{cc}\r\n");
                if c2.fetch_add(1, Ordering::SeqCst) == 0 {
                    // The last chunk never comes.
                    vec![
                        Step::Write(head.into_bytes()),
                        Step::Write(b"5\r\nhello\r\n".to_vec()),
                        Step::Sleep(Duration::from_millis(100)),
                        Step::Close,
                    ]
                } else {
                    vec![
                        Step::Write(head.into_bytes()),
                        Step::Write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec()),
                    ]
                }
            }
            _ => vec![
                Step::Write(
                    format!("HTTP/1.1 200 OK\r\nconnection: close\r\n{cc}\r\nuntil the end")
                        .into_bytes(),
                ),
                Step::Close,
            ],
        }
    })
    .await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));

    let r = get(edge.addr, "x", "/chunked").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.is_err(),
        "a truncated chunked body looked complete: {:?}",
        r.body
    );
    expect(&edge, "/chunked", &[], MISS, "hello world").await;
    expect(&edge, "/chunked", &[], HIT, "hello world").await;
    assert_eq!(origin.count("/chunked"), 2);

    expect(&edge, "/close", &[], MISS, "until the end").await;
    expect(&edge, "/close", &[], MISS, "until the end").await;
    assert_eq!(origin.count("/close"), 2);
}

/// A CA certificate (PEM) and a server configuration for "localhost" and 127.0.0.1
/// signed by it.
fn test_pki() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "cairn test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca_cert.pem(), Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_origin_is_trusted_through_ca_file_only() {
    let (ca_pem, tls) = test_pki();
    let origin = Origin::start_tls(tls, |seen| {
        ok(
            format!("secure {}", seen.target).as_bytes(),
            &[("cache-control", "max-age=600")],
        )
    })
    .await;
    let url = origin.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "\
[[distribution]]
id = \"trusted\"
aliases = [\"trusted.test\"]
[[distribution.origin]]
url = \"{url}\"
ca_file = \"ca.pem\"

[[distribution]]
id = \"untrusted\"
aliases = [\"untrusted.test\"]
[[distribution.origin]]
url = \"{url}\"
connect_attempts = 1
"
        ),
    );
    let edge = Edge::with_config(&cfg, dir.path());

    let r = get(edge.addr, "trusted.test", "/s").await;
    assert_eq!(r.status, 200, "{}", edge.stderr());
    assert_eq!((r.x_cache(), r.text().as_str()), (MISS, "secure /s"));
    let r = get(edge.addr, "trusted.test", "/s").await;
    assert_eq!((r.x_cache(), r.text().as_str()), (HIT, "secure /s"));
    assert_eq!(origin.count("/s"), 1);

    let r = get(edge.addr, "untrusted.test", "/u").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.x_cache(), "Error from cairn");
    assert_eq!(
        origin.count("/u"),
        0,
        "the request went past a refused certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_cookie_on_a_304_is_not_kept_when_cookies_are_not_keyed() {
    let n = AtomicUsize::new(0);
    let origin = Origin::start(move |seen| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        let cookie = format!("id={i}");
        if seen.header("if-none-match") == Some("\"e1\"") {
            let h = [
                ("cache-control", "max-age=600"),
                ("etag", "\"e1\""),
                ("set-cookie", cookie.as_str()),
            ];
            not_modified(&h)
        } else {
            ok(
                b"body",
                &[("cache-control", "max-age=1"), ("etag", "\"e1\"")],
            )
        }
    })
    .await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    expect(&edge, "/r", &[], MISS, "body").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    expect(&edge, "/r", &[], REFRESH_HIT, "body").await;
    assert_eq!(origin.count("/r"), 2);
    // The refreshed object is everybody's: no viewer may get the 304's cookie.
    let r = get(edge.addr, "x", "/r").await;
    assert_eq!((r.x_cache(), r.text().as_str()), (HIT, "body"));
    assert_eq!(
        r.header("set-cookie"),
        None,
        "one viewer's cookie was served to another"
    );
    assert_eq!(r.header("cache-control"), Some("max-age=600"));
}
