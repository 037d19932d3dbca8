//! RFC 9213 targeted cache control end to end, against the real binary: the edge's target
//! list is `Cairn-CDN-Cache-Control` then `CDN-Cache-Control`; the first valid non-empty
//! one governs and Cache-Control and Expires are then ignored (§2.2); fields that do not
//! parse are ignored (§2.1), members of an unexpected type are not consumed (§2.1); the
//! viewer still gets the origin's Cache-Control. In strict and in CloudFront mode.

use std::time::{Duration, SystemTime};

use crate::edge_harness::*;

const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";
const REFRESH_HIT: &str = "RefreshHit from cairn";
const HOST: &str = "viewer.example";

/// Both modes: strict RFC 9111 (`--default-ttl 0`) and CloudFront (default TTL one day).
const MODES: [bool; 2] = [true, false];

fn mode(strict: bool) -> &'static str {
    if strict {
        "strict"
    } else {
        "cloudfront"
    }
}

/// A quick-mode edge in front of `origin`, strict or CloudFront mode.
fn start_edge(origin: &Origin, strict: bool) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let extra: &[&str] = if strict { &["--default-ttl", "0"] } else { &[] };
    (Edge::quick(&origin.url(), dir.path(), extra), dir)
}

fn h(name: &'static str, v: &str) -> (&'static str, String) {
    (name, v.to_string())
}

fn cc(v: &str) -> (&'static str, String) {
    h("cache-control", v)
}

fn cdn(v: &str) -> (&'static str, String) {
    h("cdn-cache-control", v)
}

fn cairn(v: &str) -> (&'static str, String) {
    h("cairn-cdn-cache-control", v)
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// GETs `path`, checks status 200 and the X-Cache value, returns the response.
async fn expect(edge: &Edge, path: &str, x_cache: &str, m: &str) -> Resp {
    let r = get(edge.addr, HOST, path).await;
    assert_eq!(r.status, 200, "{m} {path}");
    assert_eq!(r.x_cache(), x_cache, "{m} {path}: {:?}", r.headers);
    assert!(r.body.is_ok(), "{m} {path}: incomplete body");
    r
}

/// Requests `path` twice; the second is a Hit the origin does not see.
async fn reused(edge: &Edge, origin: &Origin, path: &str, m: &str) -> [Resp; 2] {
    let miss = expect(edge, path, MISS, m).await;
    let hit = expect(edge, path, HIT, m).await;
    assert_eq!(hit.text(), miss.text(), "{m} {path}");
    assert_eq!(origin.count(path), 1, "{m} {path} went to the origin twice");
    [miss, hit]
}

/// Requests `path` twice; the second reaches the origin again.
async fn not_reused(edge: &Edge, origin: &Origin, path: &str, m: &str) {
    expect(edge, path, MISS, m).await;
    let r = get(edge.addr, HOST, path).await;
    assert_eq!(r.status, 200, "{m} {path}");
    assert_ne!(r.x_cache(), HIT, "{m} {path} was reused: {:?}", r.headers);
    assert_eq!(origin.count(path), 2, "{m} {path} was reused");
}

// RFC 9213 §2.2: the targeted field governs this cache and Cache-Control is ignored, but
// passed on unchanged: `CDN-Cache-Control: max-age=60` with `Cache-Control: no-store`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9213_2_2_targeted_field_overrides_cache_control() {
    for strict in MODES {
        let m = mode(strict);
        let origin = numbered_origin(|seen| match seen.target.as_str() {
            "/no-store" => vec![cdn("max-age=60"), cc("no-store")],
            "/private" => vec![cdn("max-age=60"), cc("private, max-age=0")],
            _ => vec![cdn("max-age=60"), cc("no-cache"), h("etag", "\"n\"")],
        })
        .await;
        let (edge, _dir) = start_edge(&origin, strict);
        for (path, origin_cc) in [
            ("/no-store", "no-store"),
            ("/private", "private, max-age=0"),
            ("/no-cache", "no-cache"),
        ] {
            for r in reused(&edge, &origin, path, m).await {
                let all: Vec<_> = r.headers.get_all("cache-control").iter().collect();
                assert_eq!(all, [origin_cc], "{m} {path}: {:?}", r.headers);
            }
        }
    }
}

// RFC 9213 §2.2: the first field of the target list with a valid non-empty value governs:
// `Cairn-CDN-Cache-Control` before `CDN-Cache-Control`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9213_2_2_cairn_field_beats_cdn_field() {
    for strict in MODES {
        let m = mode(strict);
        let origin = numbered_origin(|seen| match seen.target.as_str() {
            "/cairn-no-store" => vec![cairn("no-store"), cdn("max-age=60"), cc("max-age=60")],
            "/cairn-private" => vec![cairn("private"), cdn("max-age=60"), cc("max-age=60")],
            _ => vec![cairn("max-age=60"), cdn("no-store"), cc("no-store")],
        })
        .await;
        let (edge, _dir) = start_edge(&origin, strict);
        not_reused(&edge, &origin, "/cairn-no-store", m).await;
        not_reused(&edge, &origin, "/cairn-private", m).await;
        reused(&edge, &origin, "/cairn-max-age", m).await;
    }
}

// RFC 9213 §2.1: a targeted field that is empty or does not parse as an sf-dictionary is
// ignored as if absent: the next field of the target list, or Cache-Control, governs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9213_2_1_unparseable_or_empty_field_is_ignored() {
    for strict in MODES {
        let m = mode(strict);
        let origin = numbered_origin(|seen| match seen.target.as_str() {
            // Not stored: Cache-Control governs, not the broken field's max-age.
            "/bad-max-age" => vec![cdn("max-age=60, ,,="), cc("no-store")],
            // Upper-case keys are not sf-dictionary keys: this is not a max-age.
            "/upper-case" => vec![cdn("Max-Age=60"), cc("no-store")],
            "/trailing-comma" => vec![cdn("max-age=60,"), cc("no-store")],
            "/empty" => vec![cdn(""), cc("no-store")],
            // Stored: the broken field's no-store is not applied either.
            "/bad-no-store" => vec![cdn("no-store, ,,="), cc("max-age=60")],
            // A broken first field gives way to the next one on the list.
            "/bad-cairn" => vec![cairn("max-age=60, ,,="), cdn("no-store"), cc("max-age=60")],
            _ => vec![cairn("no-store,"), cdn("max-age=60"), cc("no-store")],
        })
        .await;
        let (edge, _dir) = start_edge(&origin, strict);
        for path in [
            "/bad-max-age",
            "/upper-case",
            "/trailing-comma",
            "/empty",
            "/bad-cairn",
        ] {
            not_reused(&edge, &origin, path, m).await;
        }
        reused(&edge, &origin, "/bad-no-store", m).await;
        reused(&edge, &origin, "/bad-cairn-gives-way", m).await;
    }
}

// RFC 9213 §2.1: a member whose value has an unexpected type (a String or Decimal
// max-age) is not consumed; the field is still valid, so it governs and Cache-Control is
// ignored (§2.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9213_2_1_member_of_unexpected_type_is_ignored() {
    let origin = numbered_origin(|seen| match seen.target.as_str() {
        "/string" => vec![cdn("max-age=\"a\""), cc("max-age=60")],
        "/quoted-number" => vec![cdn("max-age=\"60\""), cc("max-age=60")],
        "/decimal" => vec![cdn("max-age=1.5"), cc("max-age=60")],
        "/negative" => vec![cdn("max-age=-60"), cc("max-age=60")],
        // A non-boolean no-store is not applied; the integer max-age is.
        "/bad-no-store" => vec![cdn("max-age=60, no-store=\"yes\""), cc("no-store")],
        // CloudFront mode: the governing field has no usable TTL, so the default applies.
        _ => vec![cdn("max-age=\"a\""), cc("no-store")],
    })
    .await;
    // Strict: no freshness for this cache (and no heuristic without Last-Modified).
    let (edge, _dir) = start_edge(&origin, true);
    for path in ["/string", "/quoted-number", "/decimal", "/negative"] {
        not_reused(&edge, &origin, path, "strict").await;
    }
    reused(&edge, &origin, "/bad-no-store", "strict").await;
    drop(edge);

    let origin = numbered_origin(|seen| match seen.target.as_str() {
        "/bad-no-store" => vec![cdn("max-age=60, no-store=\"yes\""), cc("no-store")],
        _ => vec![cdn("max-age=\"a\""), cc("no-store")],
    })
    .await;
    let (edge, _dir) = start_edge(&origin, false);
    reused(&edge, &origin, "/default-ttl", "cloudfront").await;
    reused(&edge, &origin, "/bad-no-store", "cloudfront").await;
}

// RFC 9213 §2.2: with a targeted field, Expires is ignored too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9213_2_2_targeted_field_makes_expires_ignored() {
    fn headers(seen: &Seen) -> Vec<(&'static str, String)> {
        let now = SystemTime::now();
        let past = h("expires", &http_date(now - Duration::from_secs(3600)));
        let future = h("expires", &http_date(now + Duration::from_secs(3600)));
        let date = h("date", &http_date(now));
        match seen.target.as_str() {
            "/past" => vec![cdn("max-age=60"), past, date],
            "/invalid" => vec![cdn("max-age=60"), h("expires", "0"), date],
            // Strict: the field gives no lifetime, and Expires does not count.
            "/future" => vec![cdn("must-revalidate"), future, date],
            // CloudFront: the field gives no TTL, so the default TTL applies, not Expires.
            "/default" => vec![cdn("public"), past, date],
            // Without a targeted field the past Expires applies (control).
            _ => vec![past, date],
        }
    }
    for strict in MODES {
        let m = mode(strict);
        let origin = numbered_origin(headers).await;
        let (edge, _dir) = start_edge(&origin, strict);
        reused(&edge, &origin, "/past", m).await;
        reused(&edge, &origin, "/invalid", m).await;
        if strict {
            not_reused(&edge, &origin, "/future", m).await;
        } else {
            reused(&edge, &origin, "/default", m).await;
        }
        not_reused(&edge, &origin, "/control", m).await;
    }
}

// RFC 9213 §2.2: caches using a targeted field implement its no-store, private and
// no-cache (here against a Cache-Control that would allow storing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9213_2_2_targeted_no_store_private_and_no_cache_apply() {
    for strict in MODES {
        let m = mode(strict);
        let origin = Origin::start(|seen| {
            let cc = ("cache-control", "max-age=600");
            match seen.target.as_str() {
                "/no-store" => ok(b"ns", &[("cdn-cache-control", "no-store"), cc]),
                "/private" => ok(b"p", &[("cdn-cache-control", "private"), cc]),
                "/no-cache" if seen.header("if-none-match") == Some("\"c\"") => {
                    not_modified(&[("cdn-cache-control", "no-cache, max-age=60"), cc])
                }
                _ => ok(
                    b"nc",
                    &[
                        ("cdn-cache-control", "no-cache, max-age=60"),
                        cc,
                        ("etag", "\"c\""),
                    ],
                ),
            }
        })
        .await;
        let (edge, _dir) = start_edge(&origin, strict);
        not_reused(&edge, &origin, "/no-store", m).await;
        not_reused(&edge, &origin, "/private", m).await;
        expect(&edge, "/no-cache", MISS, m).await;
        for _ in 0..2 {
            let r = expect(&edge, "/no-cache", REFRESH_HIT, m).await;
            assert_eq!(r.text(), "nc");
            let last = origin.requests().pop().unwrap();
            assert_eq!(last.header("if-none-match"), Some("\"c\""), "{m}");
        }
        assert_eq!(origin.count("/no-cache"), 3, "{m}");
    }
}

// RFC 9213 §2.2: targeted fields not on this cache's target list change nothing and are
// passed through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9213_2_2_fields_off_the_target_list_pass_through() {
    for strict in MODES {
        let m = mode(strict);
        let origin = numbered_origin(|_| {
            vec![
                h("examplecdn-cache-control", "no-store"),
                h("surrogate-control", "no-store"),
                cc("max-age=60"),
            ]
        })
        .await;
        let (edge, _dir) = start_edge(&origin, strict);
        for r in reused(&edge, &origin, "/other", m).await {
            assert_eq!(
                r.header("examplecdn-cache-control"),
                Some("no-store"),
                "{m}"
            );
            assert_eq!(r.header("cache-control"), Some("max-age=60"), "{m}");
        }
    }
}

// RFC 9213 §3.1 example: `Cache-Control: no-store` with `CDN-Cache-Control: none` keeps
// other caches from storing but not this one (`none` is an unknown directive, so the
// field is valid and non-empty and Cache-Control is ignored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9213_3_1_cdn_cache_control_none_lifts_no_store_for_the_cdn() {
    let origin = numbered_origin(|seen| {
        let now = SystemTime::now();
        let mut v = vec![cc("no-store"), cdn("none"), h("date", &http_date(now))];
        if seen.target == "/last-modified" {
            v.push(h(
                "last-modified",
                &http_date(now - Duration::from_secs(3600)),
            ));
        }
        v
    })
    .await;
    // CloudFront: stored for the default TTL.
    let (edge, _dir) = start_edge(&origin, false);
    for r in reused(&edge, &origin, "/cloudfront", "cloudfront").await {
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    drop(edge);
    // Strict: no explicit lifetime; the heuristic applies when Last-Modified allows one.
    let (edge, _dir) = start_edge(&origin, true);
    reused(&edge, &origin, "/last-modified", "strict").await;
    not_reused(&edge, &origin, "/plain", "strict").await;
}
