//! Storing responses (RFC 9111 §3 and the response directives of §5.2.2), end to end
//! against the real binary: what may be stored, what is left out of a stored response
//! (hop-by-hop fields, fields named by qualified private / no-cache), interim responses,
//! must-understand, Authorization, and CloudFront's error caching (which never displaces a
//! stored object being revalidated). Strict mode (`--default-ttl 0`) unless stated.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::edge_harness::*;

const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";
const ERROR: &str = "Error from cairn";
const REFRESH_HIT: &str = "RefreshHit from cairn";
const HOST: &str = "viewer.example";

/// An edge in strict RFC 9111 mode in front of `origin`.
fn strict_edge(origin: &Origin) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &["--default-ttl", "0"]);
    (edge, dir)
}

/// An edge in CloudFront mode (the quick default TTL) in front of `origin`.
fn cloudfront_edge(origin: &Origin) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);
    (edge, dir)
}

/// An edge with one catch-all distribution whose default behaviour gets `behavior`
/// (TOML keys of `[distribution.default_behavior]`).
fn configured_edge(origin: &Origin, behavior: &str) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[distribution]]\nid = \"t\"\ncatch_all = true\n[[distribution.origin]]\nid = \"o\"\nurl = \"{}\"\n[distribution.default_behavior]\n{behavior}\n",
            origin.url()
        ),
    );
    (Edge::with_config(&cfg, dir.path()), dir)
}

/// Counts the origin's requests per target, from 1.
#[derive(Default)]
struct PerTarget(Mutex<HashMap<String, usize>>);

impl PerTarget {
    /// The body "<target> #<n>" for the `n`th request for the target.
    fn body(&self, seen: &Seen) -> Vec<u8> {
        let mut m = self.0.lock().unwrap();
        let n = m.entry(seen.target.clone()).or_insert(0);
        *n += 1;
        format!("{} #{n}", seen.target).into_bytes()
    }
}

/// An origin answering `status` with `headers` and the body "<target> #<n>".
async fn numbered(status: u16, headers: &'static [(&'static str, &'static str)]) -> Origin {
    let n = PerTarget::default();
    Origin::start(move |seen| response(status, headers, &n.body(seen))).await
}

/// GETs `target` and checks status, X-Cache and body.
async fn expect(edge: &Edge, target: &str, status: u16, x_cache: &str, body: &str) -> Resp {
    let r = get(edge.addr, HOST, target).await;
    assert_eq!(
        (r.status.as_u16(), r.x_cache(), r.text().as_str()),
        (status, x_cache, body),
        "GET {target}"
    );
    r
}

/// Stored once, then reused: Miss (Error for 4xx/5xx) then Hit (Error for a cached
/// 4xx/5xx, as CloudFront labels them), one origin request.
async fn expect_stored(edge: &Edge, origin: &Origin, target: &str, status: u16, miss: &str) {
    let body = format!("{target} #1");
    expect(edge, target, status, miss, &body).await;
    let reused = if status >= 400 { ERROR } else { HIT };
    expect(edge, target, status, reused, &body).await;
    assert_eq!(origin.count(target), 1, "{target} was not reused");
}

/// Not stored: both requests reach the origin.
async fn expect_not_stored(edge: &Edge, origin: &Origin, target: &str, status: u16, x: &str) {
    expect(edge, target, status, x, &format!("{target} #1")).await;
    expect(edge, target, status, x, &format!("{target} #2")).await;
    assert_eq!(origin.count(target), 2, "{target} was stored");
}

// RFC 9111 §3.1 (RFC 9110 §7.6.1): hop-by-hop fields and fields named in Connection are
// not stored (nor forwarded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_1_hop_by_hop_and_connection_named_fields_are_not_stored() {
    let origin = numbered(
        200,
        &[
            ("cache-control", "max-age=60"),
            ("connection", "x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("x-kept", "yes"),
        ],
    )
    .await;
    let (edge, _dir) = strict_edge(&origin);
    let miss = expect(&edge, "/h", 200, MISS, "/h #1").await;
    let hit = expect(&edge, "/h", 200, HIT, "/h #1").await;
    for r in [&miss, &hit] {
        assert_eq!(r.header("x-secret"), None, "{:?}", r.headers);
        assert_eq!(r.header("keep-alive"), None, "{:?}", r.headers);
        assert_eq!(r.header("x-kept"), Some("yes"), "{:?}", r.headers);
    }
    assert_eq!(origin.count("/h"), 1);
}

// RFC 9111 §3.1 and §4.3.4: hop-by-hop fields of a 304 do not reach the stored response
// either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_1_hop_by_hop_fields_of_a_304_are_not_stored() {
    let n = AtomicUsize::new(0);
    let origin = Origin::start(move |_| match n.fetch_add(1, Ordering::SeqCst) {
        0 => ok(
            b"one",
            &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
        ),
        _ => not_modified(&[
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("connection", "x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("x-updated", "yes"),
        ]),
    })
    .await;
    let (edge, _dir) = strict_edge(&origin);
    expect(&edge, "/h", 200, MISS, "one").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let refreshed = expect(&edge, "/h", 200, REFRESH_HIT, "one").await;
    let hit = expect(&edge, "/h", 200, HIT, "one").await;
    for r in [&refreshed, &hit] {
        assert_eq!(r.header("x-updated"), Some("yes"), "{:?}", r.headers);
        assert_eq!(r.header("x-secret"), None, "{:?}", r.headers);
        assert_eq!(r.header("keep-alive"), None, "{:?}", r.headers);
    }
    assert_eq!(origin.requests().len(), 2);
}

// RFC 9111 §3 (RFC 9110 §15.2): interim 1xx responses are not stored; the final response is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_interim_responses_are_skipped_and_the_final_one_is_stored() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let origin = Origin::start(move |_| {
        let i = n2.fetch_add(1, Ordering::SeqCst) + 1;
        let mut steps = vec![
            Step::Write(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()),
            Step::Sleep(Duration::from_millis(20)),
            Step::Write(
                b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n".to_vec(),
            ),
            Step::Sleep(Duration::from_millis(20)),
        ];
        steps.extend(ok(
            format!("final #{i}").as_bytes(),
            &[("cache-control", "max-age=60"), ("x-final", "yes")],
        ));
        steps
    })
    .await;
    let (edge, _dir) = strict_edge(&origin);
    let miss = expect(&edge, "/1xx", 200, MISS, "final #1").await;
    let hit = expect(&edge, "/1xx", 200, HIT, "final #1").await;
    for r in [&miss, &hit] {
        assert_eq!(r.header("x-final"), Some("yes"));
        assert_eq!(
            r.header("link"),
            None,
            "a 1xx field leaked: {:?}",
            r.headers
        );
    }
    assert_eq!(n.load(Ordering::SeqCst), 1);
}

// RFC 9111 §5.2.2.5: no-store responses are not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_5_no_store_is_not_stored() {
    let origin = numbered(200, &[("cache-control", "no-store, max-age=60")]).await;
    let (edge, _dir) = strict_edge(&origin);
    expect_not_stored(&edge, &origin, "/ns", 200, MISS).await;
}

// RFC 9111 §5.2.2.7: a shared cache does not store an unqualified private response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_7_private_is_not_stored_by_a_shared_cache() {
    let origin = numbered(200, &[("cache-control", "private, max-age=60")]).await;
    let (edge, _dir) = strict_edge(&origin);
    expect_not_stored(&edge, &origin, "/p", 200, MISS).await;
}

// RFC 9111 §5.2.2.7: qualified private="x-user": stored, without the named field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_7_qualified_private_stores_without_the_named_field() {
    let origin = numbered(
        200,
        &[
            ("cache-control", "private=\"x-user\", max-age=60"),
            ("x-user", "alice"),
            ("x-shared", "yes"),
        ],
    )
    .await;
    let (edge, _dir) = strict_edge(&origin);
    let miss = expect(&edge, "/pq", 200, MISS, "/pq #1").await;
    assert_eq!(
        miss.header("x-user"),
        Some("alice"),
        "the first viewer's own"
    );
    let hit = expect(&edge, "/pq", 200, HIT, "/pq #1").await;
    assert_eq!(hit.header("x-user"), None, "{:?}", hit.headers);
    assert_eq!(hit.header("x-shared"), Some("yes"));
    assert_eq!(origin.count("/pq"), 1);
}

// RFC 9111 §5.2.2.4: qualified no-cache="set-cookie": stored, the named field is not
// sent from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_4_qualified_no_cache_stores_without_the_named_field() {
    let origin = numbered(
        200,
        &[
            ("cache-control", "no-cache=\"set-cookie\", max-age=60"),
            ("set-cookie", "session=abc"),
        ],
    )
    .await;
    let (edge, _dir) = strict_edge(&origin);
    let miss = expect(&edge, "/nc", 200, MISS, "/nc #1").await;
    assert_eq!(miss.header("set-cookie"), Some("session=abc"));
    let hit = expect(&edge, "/nc", 200, HIT, "/nc #1").await;
    assert_eq!(hit.header("set-cookie"), None, "{:?}", hit.headers);
    assert_eq!(origin.count("/nc"), 1);
}

// RFC 9111 §5.2.2.3: must-understand with an understood status overrides no-store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_3_must_understand_with_an_understood_status_overrides_no_store() {
    let origin = numbered(
        200,
        &[("cache-control", "must-understand, no-store, max-age=60")],
    )
    .await;
    let (edge, _dir) = strict_edge(&origin);
    expect_stored(&edge, &origin, "/mu", 200, MISS).await;
}

// RFC 9111 §5.2.2.3: must-understand with a status the cache does not understand: not
// stored (the same response without must-understand is).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_3_must_understand_with_an_unknown_status_is_not_stored() {
    let n = PerTarget::default();
    let origin = Origin::start(move |seen| {
        let cc = if seen.target.starts_with("/mu") {
            "must-understand, max-age=60"
        } else {
            "max-age=60"
        };
        response(299, &[("cache-control", cc)], &n.body(seen))
    })
    .await;
    let (edge, _dir) = strict_edge(&origin);
    let first = get(edge.addr, HOST, "/mu").await;
    assert_eq!((first.status.as_u16(), first.x_cache()), (299, MISS));
    let second = get(edge.addr, HOST, "/mu").await;
    assert_eq!((second.status.as_u16(), second.x_cache()), (299, MISS));
    assert_eq!(origin.count("/mu"), 2, "must-understand 299 was stored");

    // Contrast: explicit freshness alone lets a shared cache store any final status.
    let first = get(edge.addr, HOST, "/plain").await;
    assert_eq!((first.status.as_u16(), first.x_cache()), (299, MISS));
    let second = get(edge.addr, HOST, "/plain").await;
    assert_eq!((second.status.as_u16(), second.x_cache()), (299, HIT));
    assert_eq!(origin.count("/plain"), 1);
}

// RFC 9111 §3 and §4.2.2: a 404 without explicit freshness, Last-Modified or validator
// has a zero heuristic lifetime in strict mode: not reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_a_404_without_freshness_is_not_reused() {
    let n = PerTarget::default();
    let origin = Origin::start(move |seen| {
        // Under /old: Last-Modified a day ago gives a heuristic lifetime (§4.2.2).
        let old = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(86_400));
        let h: Vec<(&str, &str)> = if seen.target.starts_with("/old") {
            vec![("last-modified", old.as_str())]
        } else {
            vec![]
        };
        response(404, &h, &n.body(seen))
    })
    .await;
    let (edge, _dir) = strict_edge(&origin);
    expect_not_stored(&edge, &origin, "/gone", 404, ERROR).await;
    // Contrast: 404 is heuristically cacheable, so Last-Modified alone makes it reusable.
    expect_stored(&edge, &origin, "/old", 404, ERROR).await;
}

// RFC 9111 §3: a 404 with explicit freshness is stored and reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_a_404_with_max_age_is_stored() {
    let origin = numbered(404, &[("cache-control", "max-age=60")]).await;
    let (edge, _dir) = strict_edge(&origin);
    expect_stored(&edge, &origin, "/gone", 404, ERROR).await;
}

// RFC 9111 §3: any final status with explicit freshness may be stored: a 500 with max-age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_a_500_with_max_age_is_stored() {
    let origin = numbered(500, &[("cache-control", "max-age=60")]).await;
    let (edge, _dir) = strict_edge(&origin);
    expect_stored(&edge, &origin, "/err", 500, ERROR).await;
}

// RFC 9111 §3 and §4.2.2: a 302 is not heuristically cacheable: without explicit
// freshness it is not stored (with max-age it is).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_a_302_without_freshness_is_not_stored() {
    let n = PerTarget::default();
    let origin = Origin::start(move |seen| {
        let mut h = vec![("location", "/elsewhere")];
        if seen.target.starts_with("/fresh") {
            h.push(("cache-control", "max-age=60"));
        }
        response(302, &h, &n.body(seen))
    })
    .await;
    let (edge, _dir) = strict_edge(&origin);
    expect_not_stored(&edge, &origin, "/moved", 302, MISS).await;
    expect_stored(&edge, &origin, "/fresh", 302, MISS).await;
}

// RFC 9111 §3 (and §7.3): Set-Cookie is kept in a response that may be stored; strict
// mode stores a public response with Set-Cookie as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_set_cookie_is_kept_in_a_stored_public_response() {
    let origin = numbered(
        200,
        &[
            ("cache-control", "public, max-age=60"),
            ("set-cookie", "theme=dark"),
        ],
    )
    .await;
    let (edge, _dir) = strict_edge(&origin);
    expect(&edge, "/sc", 200, MISS, "/sc #1").await;
    let hit = expect(&edge, "/sc", 200, HIT, "/sc #1").await;
    assert_eq!(hit.header("set-cookie"), Some("theme=dark"));
    assert_eq!(origin.count("/sc"), 1);
}

// CloudFront error caching, a documented deviation from RFC 9111 §4.2.2 (a 503 is not
// heuristically cacheable): a 503 without freshness is cached for error_ttl (default 10 s)
// and served from the cache without asking the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_2_cloudfront_error_ttl_caches_a_503_without_freshness() {
    let origin = numbered(503, &[]).await;
    let (edge, _dir) = cloudfront_edge(&origin);
    expect(&edge, "/down", 503, ERROR, "/down #1").await;
    // The cached error is served from the cache, labelled Error as CloudFront does.
    expect(&edge, "/down", 503, ERROR, "/down #1").await;
    assert_eq!(origin.count("/down"), 1);
}

// CloudFront error caching: after error_ttl the origin is asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_2_cloudfront_error_ttl_expires() {
    let origin = numbered(503, &[]).await;
    let (edge, _dir) = configured_edge(&origin, "error_ttl = 1");
    expect(&edge, "/down", 503, ERROR, "/down #1").await;
    expect(&edge, "/down", 503, ERROR, "/down #1").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    expect(&edge, "/down", 503, ERROR, "/down #2").await;
    assert_eq!(origin.count("/down"), 2);
}

// CloudFront error caching: error_ttls sets the TTL per status (404 for 1 s here while
// other errors keep error_ttl).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_2_cloudfront_error_ttls_per_status() {
    let n = PerTarget::default();
    let origin = Origin::start(move |seen| {
        let status = if seen.target.starts_with("/nf") {
            404
        } else {
            503
        };
        response(status, &[], &n.body(seen))
    })
    .await;
    let (edge, _dir) = configured_edge(&origin, "error_ttl = 30\nerror_ttls = { 404 = 1 }");
    expect(&edge, "/nf", 404, ERROR, "/nf #1").await;
    expect(&edge, "/nf", 404, ERROR, "/nf #1").await;
    expect(&edge, "/down", 503, ERROR, "/down #1").await;
    expect(&edge, "/down", 503, ERROR, "/down #1").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    expect(&edge, "/nf", 404, ERROR, "/nf #2").await;
    expect(&edge, "/down", 503, ERROR, "/down #1").await;
    assert_eq!((origin.count("/nf"), origin.count("/down")), (2, 1));
}

// RFC 9111 §4.3.3 and CloudFront: an error answering the revalidation of a stale object
// is not cached in its place; the stale object stays and is revalidated again later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_3_3_an_error_to_a_revalidation_does_not_displace_the_stored_object() {
    let n = AtomicUsize::new(0);
    let origin = Origin::start(move |_| match n.fetch_add(1, Ordering::SeqCst) {
        0 => ok(
            b"one",
            &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
        ),
        1 => response(503, &[], b"origin down"),
        _ => not_modified(&[("cache-control", "max-age=60"), ("etag", "\"v1\"")]),
    })
    .await;
    let (edge, _dir) = cloudfront_edge(&origin);
    expect(&edge, "/s", 200, MISS, "one").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // The revalidation fails with a 503: CloudFront mode serves the stale object it has.
    let r = get(edge.addr, HOST, "/s").await;
    assert_eq!(
        (r.status.as_u16(), r.x_cache(), r.text().as_str()),
        (200, HIT, "one")
    );
    // The stale object is still there: the next request revalidates it again (a cached
    // 503 would have been a Hit without asking the origin).
    expect(&edge, "/s", 200, REFRESH_HIT, "one").await;
    let seen = origin.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].header("if-none-match"), Some("\"v1\""));
    assert_eq!(seen[2].header("if-none-match"), Some("\"v1\""));
    expect(&edge, "/s", 200, HIT, "one").await;
    assert_eq!(origin.requests().len(), 3);
}

// RFC 9111 §3.5: a response to a request with Authorization is not stored unless it says
// public, s-maxage or must-revalidate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_5_authorized_response_without_permission_is_not_stored() {
    let origin = numbered(200, &[("cache-control", "max-age=60")]).await;
    let (edge, _dir) = strict_edge(&origin);
    let auth = [("authorization", "Bearer t")];
    let r = get_with(edge.addr, HOST, "/a", &auth).await;
    assert_eq!((r.x_cache(), r.text().as_str()), (MISS, "/a #1"));
    let r = get_with(edge.addr, HOST, "/a", &auth).await;
    assert_eq!((r.x_cache(), r.text().as_str()), (MISS, "/a #2"));
    // Nor for viewers without Authorization.
    let r = get(edge.addr, HOST, "/a").await;
    assert_eq!((r.x_cache(), r.text().as_str()), (MISS, "/a #3"));
    assert_eq!(origin.count("/a"), 3);
}

// RFC 9111 §3.5: with public, s-maxage or must-revalidate, the response to an
// authorized request is stored (and reused for authorized requests too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_5_authorized_response_with_public_s_maxage_or_must_revalidate_is_stored() {
    let n = PerTarget::default();
    let origin = Origin::start(move |seen| {
        let cc = match seen.target.as_str() {
            "/public" => "public, max-age=60",
            "/shared" => "s-maxage=60",
            _ => "max-age=60, must-revalidate",
        };
        ok(&n.body(seen), &[("cache-control", cc)])
    })
    .await;
    let (edge, _dir) = strict_edge(&origin);
    let auth = [("authorization", "Bearer t")];
    for target in ["/public", "/shared", "/revalidated"] {
        let first = format!("{target} #1");
        let r = get_with(edge.addr, HOST, target, &auth).await;
        assert_eq!((r.x_cache(), r.text()), (MISS, first.clone()));
        let r = get_with(edge.addr, HOST, target, &auth).await;
        assert_eq!((r.x_cache(), r.text()), (HIT, first.clone()));
        let r = get(edge.addr, HOST, target).await;
        assert_eq!((r.x_cache(), r.text()), (HIT, first));
        assert_eq!(origin.count(target), 1, "{target}");
    }
}
