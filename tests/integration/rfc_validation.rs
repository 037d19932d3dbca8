//! Validation end to end against the real binary (RFC 9111 §4.3, RFC 9110 §13, §15.4.5):
//! how a stale object is revalidated (If-None-Match with its ETag, else If-Modified-Since
//! with its Last-Modified), what a 304 changes in the stored response and what it may not,
//! a 200 replacing the stored object; viewers' conditional requests answered from the
//! store (304 with the right fields, weak comparison, `*`, If-Modified-Since, the
//! precedence of If-None-Match, 412 for If-Match); HEAD from a stored GET and HEAD filling
//! the cache with a GET.

use std::time::{Duration, SystemTime};

use crate::edge_harness::*;

const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";
const REFRESH_HIT: &str = "RefreshHit from cairn";

/// Starts the edge with one catch-all distribution "t" (CloudFront mode); `tables` holds
/// its origins and behaviours (TOML, under `[[distribution]]`).
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

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// GETs `target` with `headers`; checks status and X-Cache, returns the response.
async fn check(edge: &Edge, target: &str, headers: &[(&str, &str)], status: u16, x: &str) -> Resp {
    let r = get_with(edge.addr, "viewer.example", target, headers).await;
    assert_eq!(
        (r.status.as_u16(), r.x_cache()),
        (status, x),
        "{target} {headers:?}"
    );
    r
}

// RFC 9111 §4.3.1: a stale response with an ETag is revalidated with If-None-Match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_3_1_stale_etag_is_revalidated_with_if_none_match() {
    const LM: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
    let origin = Origin::start(|seen| match seen.header("if-none-match") {
        Some("\"e1\"") => not_modified(&[("cache-control", "max-age=600"), ("etag", "\"e1\"")]),
        _ => ok(
            b"etag body",
            &[
                ("cache-control", "max-age=1"),
                ("etag", "\"e1\""),
                ("last-modified", LM),
            ],
        ),
    })
    .await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    check(&edge, "/e", &[], 200, MISS).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = check(&edge, "/e", &[], 200, REFRESH_HIT).await;
    assert_eq!(r.text(), "etag body");
    let seen = last_seen(&origin, "/e");
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.header("if-none-match"), Some("\"e1\""));
    assert_eq!(origin.count("/e"), 2);
}

// RFC 9111 §4.3.1: a stale response with only Last-Modified is revalidated with
// If-Modified-Since carrying that date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_3_1_stale_last_modified_is_revalidated_with_if_modified_since() {
    const LM: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
    let origin = Origin::start(|seen| match seen.header("if-modified-since") {
        Some(LM) => not_modified(&[("cache-control", "max-age=600")]),
        _ => ok(
            b"lm body",
            &[("cache-control", "max-age=1"), ("last-modified", LM)],
        ),
    })
    .await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    check(&edge, "/l", &[], 200, MISS).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = check(&edge, "/l", &[], 200, REFRESH_HIT).await;
    assert_eq!(r.text(), "lm body");
    let seen = last_seen(&origin, "/l");
    assert_eq!(seen.header("if-modified-since"), Some(LM));
    assert_eq!(seen.header("if-none-match"), None);
    assert_eq!(origin.count("/l"), 2);
}

// RFC 9111 §4.3.4 (and §3.2): a 304 updates the stored header fields, but not those
// describing the stored body (Content-Length, Content-Encoding), and keeps the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_3_4_a_304_updates_stored_headers_but_not_the_body_or_its_framing() {
    let origin = Origin::start(|seen| match seen.header("if-none-match") {
        Some("\"e1\"") => not_modified(&[
            ("cache-control", "max-age=60"),
            ("etag", "\"e1\""),
            ("x-version", "2"),
            ("content-encoding", "br"),
            ("content-length", "999"),
        ]),
        _ => ok(
            b"version one body",
            &[
                ("cache-control", "max-age=1"),
                ("etag", "\"e1\""),
                ("x-version", "1"),
                ("content-encoding", "gzip"),
                ("x-kept", "stored"),
            ],
        ),
    })
    .await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    let r = check(&edge, "/v", &[], 200, MISS).await;
    assert_eq!(r.header("x-version"), Some("1"));
    tokio::time::sleep(Duration::from_millis(1300)).await;

    for x in [REFRESH_HIT, HIT, HIT] {
        let r = check(&edge, "/v", &[], 200, x).await;
        assert_eq!(r.text(), "version one body", "{x}");
        assert_eq!(r.header("x-version"), Some("2"), "{x}");
        assert_eq!(r.header("cache-control"), Some("max-age=60"), "{x}");
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{x}");
        assert_eq!(r.header("content-length"), Some("16"), "{x}");
        assert_eq!(r.header("x-kept"), Some("stored"), "{x}");
        assert_eq!(r.headers.get_all("x-version").iter().count(), 1, "{x}");
    }
    // max-age=60 from the 304 is what keeps it fresh: no third origin request.
    assert_eq!(origin.count("/v"), 2);
}

// RFC 9111 §4.3.3: a full (200) response to a revalidation replaces the stored one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_3_3_a_200_to_a_revalidation_replaces_the_stored_response() {
    let origin = Origin::start(|seen| match seen.header("if-none-match") {
        Some("\"c1\"") => ok(
            b"new body",
            &[("cache-control", "max-age=600"), ("etag", "\"c2\"")],
        ),
        _ => ok(
            b"old body",
            &[("cache-control", "max-age=1"), ("etag", "\"c1\"")],
        ),
    })
    .await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    assert_eq!(check(&edge, "/c", &[], 200, MISS).await.text(), "old body");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = check(&edge, "/c", &[], 200, MISS).await;
    assert_eq!(r.text(), "new body");
    assert_eq!(
        last_seen(&origin, "/c").header("if-none-match"),
        Some("\"c1\"")
    );
    for _ in 0..2 {
        let r = check(&edge, "/c", &[], 200, HIT).await;
        assert_eq!(
            (r.text().as_str(), r.header("etag")),
            ("new body", Some("\"c2\""))
        );
    }
    assert_eq!(origin.count("/c"), 2);
}

/// An origin whose `/x` is cacheable for 10 minutes with ETag "x", Last-Modified an hour
/// before its Date, Expires, and `Vary: x-v` (x-v is in the cache key).
async fn validators_origin() -> (Origin, SystemTime, SystemTime) {
    let date = SystemTime::now() - Duration::from_secs(5);
    let lm = date - Duration::from_secs(3600);
    let origin = Origin::start(move |_| {
        let (d, l, e) = (
            http_date(date),
            http_date(lm),
            http_date(date + Duration::from_secs(600)),
        );
        ok(
            b"the representation",
            &[
                ("cache-control", "max-age=600"),
                ("etag", "\"x\""),
                ("date", d.as_str()),
                ("last-modified", l.as_str()),
                ("expires", e.as_str()),
                ("vary", "x-v"),
                ("content-type", "text/plain"),
                ("x-other", "kept out of a 304"),
            ],
        )
    })
    .await;
    (origin, date, lm)
}

fn keyed_on_x_v(url: &str) -> String {
    format!(
        "{}[distribution.default_behavior.cache_key]\nheaders = [\"x-v\"]\n",
        one_origin(url)
    )
}

// RFC 9110 §13.1.2, §15.4.5: If-None-Match matching the stored ETag is answered from the
// store with a bodiless 304 carrying ETag, Cache-Control, Date, Expires and Vary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_15_4_5_if_none_match_hit_is_a_304_with_the_required_fields() {
    let (origin, date, _) = validators_origin().await;
    let (edge, _dir) = start_edge(&keyed_on_x_v(&origin.url()));
    let full = check(&edge, "/x", &[("x-v", "1")], 200, MISS).await;
    assert_eq!(full.text(), "the representation");

    let r = check(
        &edge,
        "/x",
        &[("x-v", "1"), ("if-none-match", "\"x\"")],
        304,
        HIT,
    )
    .await;
    assert!(r.bytes().is_empty(), "a 304 has no body");
    assert_eq!(r.header("etag"), Some("\"x\""));
    assert_eq!(r.header("cache-control"), Some("max-age=600"));
    assert_eq!(r.header("date"), Some(http_date(date).as_str()));
    assert_eq!(r.header("expires"), full.header("expires"));
    assert!(r.header("expires").is_some());
    assert_eq!(r.header("vary"), Some("x-v"));
    assert_eq!(
        r.header("x-other"),
        None,
        "a 304 carries only the listed fields"
    );
    assert_eq!(origin.count("/x"), 1, "the origin was asked");
}

// RFC 9110 §13.1.2: If-None-Match uses the weak comparison; `*` matches any stored
// representation; a list that does not match gets the full 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_13_1_2_if_none_match_weak_comparison_star_and_no_match() {
    let (origin, _, _) = validators_origin().await;
    let (edge, _dir) = start_edge(&keyed_on_x_v(&origin.url()));
    check(&edge, "/x", &[("x-v", "1")], 200, MISS).await;
    for inm in ["W/\"x\"", "*", "\"a\", W/\"x\""] {
        let r = check(
            &edge,
            "/x",
            &[("x-v", "1"), ("if-none-match", inm)],
            304,
            HIT,
        )
        .await;
        assert!(r.bytes().is_empty(), "{inm}");
    }
    for inm in ["\"y\"", "W/\"y\", \"z\""] {
        let r = check(
            &edge,
            "/x",
            &[("x-v", "1"), ("if-none-match", inm)],
            200,
            HIT,
        )
        .await;
        assert_eq!(r.text(), "the representation", "{inm}");
    }
    assert_eq!(origin.count("/x"), 1);
}

// RFC 9110 §13.1.3: If-Modified-Since at or after the stored Last-Modified is a 304,
// before it a 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_13_1_3_if_modified_since_against_the_stored_last_modified() {
    let (origin, date, lm) = validators_origin().await;
    let (edge, _dir) = start_edge(&keyed_on_x_v(&origin.url()));
    check(&edge, "/x", &[("x-v", "1")], 200, MISS).await;
    for since in [lm, lm + Duration::from_secs(60), date] {
        let ims = http_date(since);
        let r = check(
            &edge,
            "/x",
            &[("x-v", "1"), ("if-modified-since", &ims)],
            304,
            HIT,
        )
        .await;
        assert!(r.bytes().is_empty(), "{ims}");
        assert_eq!(r.header("etag"), Some("\"x\""));
    }
    let before = http_date(lm - Duration::from_secs(1));
    let r = check(
        &edge,
        "/x",
        &[("x-v", "1"), ("if-modified-since", &before)],
        200,
        HIT,
    )
    .await;
    assert_eq!(r.text(), "the representation");
    assert_eq!(origin.count("/x"), 1);
}

// RFC 9110 §13.2.2: If-None-Match is evaluated instead of If-Modified-Since: a matching
// If-Modified-Since with a non-matching If-None-Match is a 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_13_2_2_if_none_match_takes_precedence_over_if_modified_since() {
    let (origin, date, _) = validators_origin().await;
    let (edge, _dir) = start_edge(&keyed_on_x_v(&origin.url()));
    check(&edge, "/x", &[("x-v", "1")], 200, MISS).await;
    let ims = http_date(date);
    let h = [("x-v", "1"), ("if-modified-since", ims.as_str())];
    check(&edge, "/x", &h, 304, HIT).await;
    let h = [
        ("x-v", "1"),
        ("if-modified-since", ims.as_str()),
        ("if-none-match", "\"other\""),
    ];
    let r = check(&edge, "/x", &h, 200, HIT).await;
    assert_eq!(r.text(), "the representation");
    assert_eq!(origin.count("/x"), 1);
}

// RFC 9110 §13.1.1: If-Match that does not match the stored ETag (strong comparison) is
// a 412; a matching one is served normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_13_1_1_if_match_not_matching_is_412() {
    let (origin, _, _) = validators_origin().await;
    let (edge, _dir) = start_edge(&keyed_on_x_v(&origin.url()));
    check(&edge, "/x", &[("x-v", "1")], 200, MISS).await;
    for im in ["\"y\"", "W/\"x\""] {
        let r = check(&edge, "/x", &[("x-v", "1"), ("if-match", im)], 412, HIT).await;
        assert!(r.bytes().is_empty(), "{im}");
    }
    for im in ["\"x\"", "*"] {
        let r = check(&edge, "/x", &[("x-v", "1"), ("if-match", im)], 200, HIT).await;
        assert_eq!(r.text(), "the representation", "{im}");
    }
    assert_eq!(origin.count("/x"), 1);
}

// RFC 9110 §9.3.2, RFC 9111 §4: HEAD is answered from a stored GET response: same header
// fields, Content-Length of the body, no body, and the origin never sees a HEAD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_9_3_2_head_is_answered_from_a_stored_get() {
    let body = pattern(5000, 3);
    let b2 = body.clone();
    let origin =
        Origin::start(move |_| ok(&b2, &[("cache-control", "max-age=600"), ("etag", "\"h\"")]))
            .await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    let r = check(&edge, "/h", &[], 200, MISS).await;
    assert_eq!(r.bytes(), &body[..]);
    let r = request(edge.addr, "HEAD", "viewer.example", "/h", &[], b"").await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, HIT));
    assert!(r.bytes().is_empty());
    assert_eq!(r.header("content-length"), Some("5000"));
    assert_eq!(r.header("etag"), Some("\"h\""));
    let methods: Vec<String> = origin.requests().into_iter().map(|s| s.method).collect();
    assert_eq!(methods, ["GET"]);
}

// RFC 9110 §9.3.2, RFC 9111 §4: a HEAD on a miss fetches the object with a GET (the edge
// never sends HEAD to an origin) and stores it: the following GET is a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_9_3_2_head_on_a_miss_fills_the_cache_with_a_get() {
    let body = pattern(3000, 9);
    let b2 = body.clone();
    let origin = Origin::start(move |_| ok(&b2, &[("cache-control", "max-age=600")])).await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    let r = request(edge.addr, "HEAD", "viewer.example", "/m", &[], b"").await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, MISS));
    assert!(r.bytes().is_empty());
    assert_eq!(r.header("content-length"), Some("3000"));

    // The fill completes in the background; a GET that joins it is a Miss without a
    // second origin request, one after it a Hit.
    let mut hit = None;
    for _ in 0..100 {
        let r = get(edge.addr, "viewer.example", "/m").await;
        assert_eq!(r.bytes(), &body[..]);
        if r.x_cache() == HIT {
            hit = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        hit.is_some(),
        "the GET after a HEAD miss never became a hit"
    );
    let methods: Vec<String> = origin.requests().into_iter().map(|s| s.method).collect();
    assert_eq!(methods, ["GET"], "the origin saw: {methods:?}");
    let r = request(edge.addr, "HEAD", "viewer.example", "/m", &[], b"").await;
    assert_eq!(
        (r.x_cache(), r.header("content-length")),
        (HIT, Some("3000"))
    );
    assert_eq!(origin.requests().len(), 1);
}
