//! RFC 9111 freshness end to end, against the real binary: Cache-Control parsing (§5.2,
//! §1.2.2), the freshness lifetime from s-maxage, max-age and Expires − Date (§4.2.1,
//! §5.3), heuristic freshness (§4.2.2), Age (§5.1, §4.2.3) and Date (RFC 9110 §6.6.1).
//! Strict RFC 9111 mode (`--default-ttl 0`) unless the rule is CloudFront's.

use std::time::{Duration, SystemTime};

use crate::edge_harness::*;

const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";
const REFRESH_HIT: &str = "RefreshHit from cairn";
const HOST: &str = "viewer.example";

/// A quick-mode edge in front of `origin`: strict RFC 9111 mode or CloudFront mode (the
/// default TTL of one day).
fn start_edge(origin: &Origin, strict: bool) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let extra: &[&str] = if strict { &["--default-ttl", "0"] } else { &[] };
    (Edge::quick(&origin.url(), dir.path(), extra), dir)
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

fn cc(v: &str) -> (&'static str, String) {
    ("cache-control", v.to_string())
}

/// GETs `path`, checks status 200 and the X-Cache value, returns the response.
async fn expect(edge: &Edge, path: &str, x_cache: &str) -> Resp {
    let r = get(edge.addr, HOST, path).await;
    assert_eq!(r.status, 200, "{path}");
    assert_eq!(r.x_cache(), x_cache, "{path}: {:?}", r.headers);
    assert!(r.body.is_ok(), "{path}: incomplete body");
    r
}

/// The response's Age in seconds (it must be present and valid).
fn age(r: &Resp) -> u64 {
    r.header("age")
        .unwrap_or_else(|| panic!("no Age header: {:?}", r.headers))
        .parse()
        .unwrap_or_else(|_| panic!("invalid Age header: {:?}", r.headers))
}

/// The response's Date (it must be present and valid).
fn date(r: &Resp) -> SystemTime {
    let d = r
        .header("date")
        .unwrap_or_else(|| panic!("no Date header: {:?}", r.headers));
    httpdate::parse_http_date(d).unwrap_or_else(|_| panic!("invalid Date {d:?}"))
}

/// Requests `path` twice; the second must reach the origin again (the stored response,
/// if any, was stale at once).
async fn not_reused(edge: &Edge, origin: &Origin, path: &str) {
    expect(edge, path, MISS).await;
    let r = get(edge.addr, HOST, path).await;
    assert_eq!(r.status, 200, "{path}");
    assert_ne!(r.x_cache(), HIT, "{path} was reused: {:?}", r.headers);
    assert_eq!(origin.count(path), 2, "{path} was reused");
}

/// Requests `path` twice; the second is a Hit the origin does not see.
async fn reused(edge: &Edge, origin: &Origin, path: &str) -> Resp {
    expect(edge, path, MISS).await;
    let r = expect(edge, path, HIT).await;
    assert_eq!(r.text(), format!("{path} #{}", origin.requests().len()));
    assert_eq!(origin.count(path), 1, "{path} went to the origin twice");
    r
}

// RFC 9111 §5.2: directive names are tokens compared case-insensitively.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_directive_names_are_case_insensitive() {
    let origin = numbered_origin(|seen| match seen.target.as_str() {
        "/upper" => vec![cc("MAX-AGE=60")],
        "/mixed" => vec![cc("Public, Max-Age=60")],
        "/no-store" => vec![cc("max-age=60, NO-STORE")],
        _ => vec![cc("S-MAXAGE=60, max-age=0")],
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    reused(&edge, &origin, "/upper").await;
    reused(&edge, &origin, "/mixed").await;
    reused(&edge, &origin, "/s-maxage").await;
    not_reused(&edge, &origin, "/no-store").await;
}

// RFC 9111 §5.2: recipients ought to accept both the token and the quoted-string form of
// an argument (`max-age="60"`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_quoted_max_age_is_accepted() {
    let origin = numbered_origin(|seen| match seen.target.as_str() {
        "/max-age" => vec![cc("max-age=\"60\"")],
        "/quoted-zero" => vec![cc("max-age=\"0\"")],
        _ => vec![cc("s-maxage=\"60\"")],
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    reused(&edge, &origin, "/max-age").await;
    reused(&edge, &origin, "/s-maxage").await;
    not_reused(&edge, &origin, "/quoted-zero").await;
}

// RFC 9111 §4.2.1 / §1.2.2: an invalid max-age (not delta-seconds) makes the response
// stale at once; it is not ignored in favour of Expires or heuristics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_1_invalid_max_age_means_stale() {
    let origin = Origin::start(|seen| {
        let future = http_date(SystemTime::now() + Duration::from_secs(3600));
        let old = http_date(SystemTime::now() - Duration::from_secs(3600));
        let v = match seen.target.as_str() {
            "/abc" => "max-age=abc",
            "/negative" => "max-age=-1",
            "/fraction" => "max-age=1.5",
            "/empty" => "max-age=",
            _ => "max-age=abc",
        };
        match seen.target.as_str() {
            // With a validator the stale response is stored and revalidated.
            "/validator" if seen.header("if-none-match") == Some("\"v1\"") => {
                not_modified(&[("cache-control", v), ("etag", "\"v1\"")])
            }
            "/validator" => ok(b"validated", &[("cache-control", v), ("etag", "\"v1\"")]),
            // Neither a later Expires nor a heuristic can make it fresh.
            _ => ok(
                seen.target.as_bytes(),
                &[
                    ("cache-control", v),
                    ("expires", &future),
                    ("last-modified", &old),
                ],
            ),
        }
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    for path in ["/abc", "/negative", "/fraction", "/empty"] {
        let first = expect(&edge, path, MISS).await;
        assert_eq!(first.text(), path);
        let again = get(edge.addr, HOST, path).await;
        assert_eq!((again.status.as_u16(), again.text()), (200, path.into()));
        assert_ne!(again.x_cache(), HIT, "{path} was reused");
        assert_eq!(origin.count(path), 2, "{path} was reused");
    }
    expect(&edge, "/validator", MISS).await;
    let r = expect(&edge, "/validator", REFRESH_HIT).await;
    assert_eq!(r.text(), "validated");
    let last = origin.requests().pop().unwrap();
    assert_eq!(last.header("if-none-match"), Some("\"v1\""));
}

// RFC 9111 §4.2.1: a shared cache uses s-maxage over max-age, whichever is longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_1_s_maxage_beats_max_age() {
    let origin = numbered_origin(|seen| match seen.target.as_str() {
        "/longer" => vec![cc("max-age=0, s-maxage=60")],
        "/shorter" => vec![cc("max-age=60, s-maxage=0")],
        _ => vec![cc("s-maxage=60, max-age=abc")],
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    reused(&edge, &origin, "/longer").await;
    not_reused(&edge, &origin, "/shorter").await;
    // An invalid max-age does not matter when s-maxage is valid.
    reused(&edge, &origin, "/invalid-max-age").await;
}

// RFC 9111 §4.2.1: max-age is used over Expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_1_max_age_beats_expires() {
    let origin = numbered_origin(|seen| {
        let now = SystemTime::now();
        match seen.target.as_str() {
            "/past-expires" => vec![
                cc("max-age=60"),
                ("expires", http_date(now - Duration::from_secs(3600))),
            ],
            "/invalid-expires" => vec![cc("max-age=60"), ("expires", "0".to_string())],
            _ => vec![
                cc("max-age=0"),
                ("expires", http_date(now + Duration::from_secs(3600))),
            ],
        }
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    reused(&edge, &origin, "/past-expires").await;
    reused(&edge, &origin, "/invalid-expires").await;
    not_reused(&edge, &origin, "/future-expires").await;
}

// RFC 9111 §4.2.1: without max-age, the freshness lifetime is Expires − Date (not
// Expires − now): an origin whose clock is 1000 s fast gets 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_1_freshness_is_expires_minus_date() {
    let origin = numbered_origin(|_| {
        let date = SystemTime::now() + Duration::from_secs(1000);
        vec![
            ("date", http_date(date)),
            ("expires", http_date(date + Duration::from_secs(2))),
        ]
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    reused(&edge, &origin, "/e").await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    expect(&edge, "/e", MISS).await;
    assert_eq!(
        origin.count("/e"),
        2,
        "fresh for longer than Expires − Date"
    );
}

// RFC 9111 §5.3: an invalid Expires (such as "0") means already expired; it is explicit,
// so no heuristic applies either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_3_invalid_expires_means_stale() {
    let origin = numbered_origin(|seen| {
        let now = SystemTime::now();
        let expires = match seen.target.as_str() {
            "/zero" => "0".to_string(),
            "/garbage" => "not a date".to_string(),
            _ => "-1".to_string(),
        };
        vec![
            ("expires", expires),
            ("date", http_date(now)),
            (
                "last-modified",
                http_date(now - Duration::from_secs(36_000)),
            ),
        ]
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    for path in ["/zero", "/garbage", "/minus-one"] {
        not_reused(&edge, &origin, path).await;
    }
}

// RFC 9111 §4.2.1, §4.2: an Expires in the past (relative to Date) gives a freshness
// lifetime of zero: stale at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_1_expires_in_the_past_means_stale() {
    let origin = numbered_origin(|seen| {
        let now = SystemTime::now();
        let mut h = vec![
            ("date", http_date(now)),
            ("expires", http_date(now - Duration::from_secs(3600))),
        ];
        if seen.target == "/validator" {
            h.push(("etag", "\"p\"".to_string()));
        }
        h
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    not_reused(&edge, &origin, "/plain").await;
    // Stored for revalidation, never served without it.
    not_reused(&edge, &origin, "/validator").await;
    let last = origin.requests().pop().unwrap();
    assert_eq!(last.header("if-none-match"), Some("\"p\""));
}

// RFC 9111 §4.2.2: without explicit freshness, a cache may use 10% of the time since
// Last-Modified (here an hour before Date: 6 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_2_heuristic_freshness_from_last_modified() {
    let origin = numbered_origin(|seen| {
        let now = SystemTime::now();
        let since = if seen.target == "/hour" { 3600 } else { 20 };
        vec![
            ("date", http_date(now)),
            ("last-modified", http_date(now - Duration::from_secs(since))),
        ]
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    let r = reused(&edge, &origin, "/hour").await;
    assert!(age(&r) < 5);
    // 10% of 20 s: fresh for 2 s, then revalidated with If-Modified-Since.
    reused(&edge, &origin, "/twenty-seconds").await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let again = get(edge.addr, HOST, "/twenty-seconds").await;
    assert_ne!(again.x_cache(), HIT, "heuristic lifetime above 10%");
    assert_eq!(origin.count("/twenty-seconds"), 2);
    let last = origin.requests().pop().unwrap();
    assert!(last.header("if-modified-since").is_some(), "{last:?}");
    assert_eq!(origin.count("/hour"), 1);
}

// RFC 9111 §4.2.2, §3: a 200 with no explicit freshness and no Last-Modified has no
// heuristic lifetime either: the next request reaches the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_2_no_freshness_and_no_last_modified_is_not_reused() {
    let origin = numbered_origin(|seen| match seen.target.as_str() {
        "/dated" => vec![("date", http_date(SystemTime::now()))],
        "/public" => vec![cc("public")],
        _ => Vec::new(),
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    not_reused(&edge, &origin, "/bare").await;
    not_reused(&edge, &origin, "/dated").await;
    not_reused(&edge, &origin, "/public").await;
}

// RFC 9111 §5.1, §4.2.3: an upstream Age counts against the freshness lifetime
// (max-age=60 with Age: 59 is stale within about a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_1_upstream_age_counts_against_freshness() {
    let origin = numbered_origin(|_| {
        vec![
            cc("max-age=60"),
            ("age", "59".to_string()),
            ("etag", "\"a\"".to_string()),
        ]
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    expect(&edge, "/aged", MISS).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = get(edge.addr, HOST, "/aged").await;
    assert_eq!(r.status, 200);
    assert_ne!(r.x_cache(), HIT, "still fresh: Age was not counted");
    assert_eq!(origin.count("/aged"), 2);
    // It had been stored (it has a validator): the origin was asked to revalidate it.
    let last = origin.requests().pop().unwrap();
    assert_eq!(last.header("if-none-match"), Some("\"a\""));
}

// RFC 9111 §5.1, §4.2.3: the Age the edge sends on a hit includes the upstream Age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_1_age_sent_includes_upstream_age() {
    let origin = numbered_origin(|_| vec![cc("max-age=600"), ("age", "30".to_string())]).await;
    let (edge, _dir) = start_edge(&origin, true);
    let hit = reused(&edge, &origin, "/a").await;
    let a = age(&hit);
    assert!((30..35).contains(&a), "Age {a}");
}

// RFC 9111 §5.1: an invalid Age is ignored (the response is fresh by its max-age).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_1_invalid_age_is_ignored() {
    let origin = numbered_origin(|seen| {
        let v = match seen.target.as_str() {
            "/abc" => "abc",
            "/negative" => "-5",
            _ => "1.5",
        };
        vec![cc("max-age=60"), ("age", v.to_string())]
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    for path in ["/abc", "/negative", "/fraction"] {
        let r = reused(&edge, &origin, path).await;
        assert!(age(&r) < 5, "{path}: {:?}", r.headers);
    }
}

// RFC 9111 §1.2.2, §5.1: an Age beyond 2^31 is taken as 2^31 (no overflow): the response
// is served, and is stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_1_2_2_huge_age_does_not_overflow() {
    let origin = numbered_origin(|seen| {
        let mut h = vec![
            cc("max-age=60"),
            ("age", "99999999999999999999".to_string()),
        ];
        if seen.target == "/validator" {
            h.push(("etag", "\"h\"".to_string()));
        }
        h
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    for path in ["/plain", "/validator"] {
        let r = expect(&edge, path, MISS).await;
        assert_eq!(r.text(), format!("{path} #{}", origin.requests().len()));
        let again = get(edge.addr, HOST, path).await;
        assert_eq!(again.status, 200, "{path}");
        assert_eq!(again.text(), format!("{path} #{}", origin.requests().len()));
        assert_ne!(again.x_cache(), HIT, "{path}: served stale");
        assert_eq!(origin.count(path), 2, "{path}");
    }
    // Still answering.
    expect(&edge, "/plain", MISS).await;
}

// RFC 9111 §5.1: responses served from the cache carry Age, growing with time in the
// cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_1_hits_carry_age() {
    let origin = numbered_origin(|_| vec![cc("max-age=60")]).await;
    let (edge, _dir) = start_edge(&origin, true);
    let first = reused(&edge, &origin, "/a").await;
    assert!(age(&first) <= 1, "{:?}", first.headers);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = expect(&edge, "/a", HIT).await;
    let a = age(&later);
    assert!((1..5).contains(&a), "Age {a}");
}

// RFC 9110 §6.6.1: the origin's Date is kept (on the miss and on later hits); the hit's
// Age accounts for it (RFC 9111 §4.2.3 apparent age).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_6_6_1_origin_date_is_kept() {
    let origin = numbered_origin(|_| {
        let date = SystemTime::now() - Duration::from_secs(10);
        vec![cc("max-age=600"), ("date", http_date(date))]
    })
    .await;
    let (edge, _dir) = start_edge(&origin, true);
    let miss = expect(&edge, "/d", MISS).await;
    let sent = miss.header("date").unwrap().to_string();
    let hit = expect(&edge, "/d", HIT).await;
    assert_eq!(hit.header("date"), Some(sent.as_str()));
    let lag = SystemTime::now().duration_since(date(&hit)).unwrap();
    assert!(
        lag >= Duration::from_secs(9),
        "Date {sent} is not the origin's"
    );
    let a = age(&hit);
    assert!((9..15).contains(&a), "Age {a}");
}

// RFC 9110 §6.6.1: a response without Date gets one; a cached one keeps the time it was
// received, so later hits send that Date and an Age that adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_6_6_1_date_is_added_when_absent() {
    let origin = numbered_origin(|_| vec![cc("max-age=600")]).await;
    let (edge, _dir) = start_edge(&origin, true);
    let before = SystemTime::now() - Duration::from_secs(1);
    let miss = expect(&edge, "/n", MISS).await;
    let received = date(&miss);
    assert!(received >= before, "{:?}", miss.headers);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let hit = expect(&edge, "/n", HIT).await;
    let hit_date = date(&hit);
    let drift = hit_date
        .duration_since(received)
        .unwrap_or_else(|e| e.duration());
    assert!(
        drift <= Duration::from_secs(1),
        "the hit's Date is not the time the response was received: {:?} vs {:?}",
        miss.header("date"),
        hit.header("date")
    );
    assert!(age(&hit) >= 2, "{:?}", hit.headers);
}

// CloudFront: without Cache-Control or Expires, the behaviour's default TTL applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudfront_default_ttl_applies_without_freshness_headers() {
    let origin = numbered_origin(|_| Vec::new()).await;
    let (edge, _dir) = start_edge(&origin, false);
    let r = reused(&edge, &origin, "/default").await;
    assert!(age(&r) <= 1, "{:?}", r.headers);
}

// RFC 9111 §5.2.1.7: only-if-cached is answered from the cache or with 504, never by
// asking the origin (strict mode, which honours request directives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_1_7_only_if_cached_never_asks_the_origin() {
    let origin = Origin::start(|_| ok(b"cached", &[("cache-control", "max-age=60")])).await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &["--default-ttl", "0"]);
    let cold = get_with(edge.addr, "x", "/o", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(cold.status, 504);
    assert_eq!(origin.count("/o"), 0);
    assert_eq!(get(edge.addr, "x", "/o").await.text(), "cached");
    let warm = get_with(edge.addr, "x", "/o", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(
        (warm.status.as_u16(), warm.x_cache()),
        (200, "Hit from cairn")
    );
    assert_eq!(origin.count("/o"), 1);
}
