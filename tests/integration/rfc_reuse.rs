//! RFC 9111 reuse rules end to end, against the real binary: Vary (§4.1) with forwarded
//! and unforwarded headers, `Vary: *`, collapsed followers of another variant; responses
//! to requests with Authorization (§3.5); must-revalidate and proxy-revalidate once stale
//! (§4.2.4, §5.2.2.2, §5.2.2.8) even when the origin is down; no-cache (§5.2.2.4); the
//! viewer's request directives (§5.2.1, §5.4), honoured in strict mode and ignored in
//! CloudFront mode.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::edge_harness::*;

const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";
const REFRESH_HIT: &str = "RefreshHit from cairn";
const ERROR: &str = "Error from cairn";
const HOST: &str = "viewer.example";

/// An origin answering 200 with `Vary: Accept-Language`, `Cache-Control: max-age=600`
/// and the body "<target> lang=<the Accept-Language it received, or -> #<n>" (`n` counts
/// its requests from 1), after waiting `delay`.
async fn language_origin(delay: Duration) -> Origin {
    let n = AtomicUsize::new(0);
    Origin::start(move |seen| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        let lang = seen.header("accept-language").unwrap_or("-");
        let mut steps = vec![Step::Sleep(delay)];
        steps.extend(ok(
            format!("{} lang={lang} #{i}", seen.target).as_bytes(),
            &[
                ("vary", "Accept-Language"),
                ("cache-control", "max-age=600"),
            ],
        ));
        steps
    })
    .await
}

/// GETs `target` with `headers`; checks the status is 200 and returns (X-Cache, body).
async fn fetch(edge: &Edge, target: &str, headers: &[(&str, &str)]) -> (String, String) {
    let r = get_with(edge.addr, HOST, target, headers).await;
    assert_eq!(r.status, 200, "{target} {headers:?}: {:?}", r.body);
    (r.x_cache().to_string(), r.text())
}

/// GETs `target` and checks X-Cache and the body.
async fn expect(edge: &Edge, target: &str, headers: &[(&str, &str)], x_cache: &str, body: &str) {
    assert_eq!(
        fetch(edge, target, headers).await,
        (x_cache.to_string(), body.to_string()),
        "{target} {headers:?}"
    );
}

fn lang(v: &str) -> [(&str, &str); 1] {
    [("accept-language", v)]
}

// RFC 9111 §4.1: a stored response is reused only for requests whose selecting header
// fields match; Vary on a header the cache key forwards, whose value the body depends on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_1_vary_on_forwarded_header_selects_the_variant() {
    let origin = language_origin(Duration::ZERO).await;
    let (edge, _dir) = start_two_mode_edge(&origin.url(), "", "headers = [\"accept-language\"]");
    for (p, base) in [("/x", 0), ("/strict/x", 4)] {
        let n = |i: usize| base + i;
        expect(
            &edge,
            p,
            &lang("en-US"),
            MISS,
            &format!("{p} lang=en-US #{}", n(1)),
        )
        .await;
        expect(
            &edge,
            p,
            &lang("en-US"),
            HIT,
            &format!("{p} lang=en-US #{}", n(1)),
        )
        .await;
        // A different value: its own variant, from the origin.
        expect(
            &edge,
            p,
            &lang("fr"),
            MISS,
            &format!("{p} lang=fr #{}", n(2)),
        )
        .await;
        expect(
            &edge,
            p,
            &lang("fr"),
            HIT,
            &format!("{p} lang=fr #{}", n(2)),
        )
        .await;
        // Absent differs from present.
        expect(&edge, p, &[], MISS, &format!("{p} lang=- #{}", n(3))).await;
        expect(&edge, p, &[], HIT, &format!("{p} lang=- #{}", n(3))).await;
        // Present but empty differs from absent.
        expect(&edge, p, &lang(""), MISS, &format!("{p} lang= #{}", n(4))).await;
        // Every variant is still there.
        expect(
            &edge,
            p,
            &lang("en-US"),
            HIT,
            &format!("{p} lang=en-US #{}", n(1)),
        )
        .await;
        expect(
            &edge,
            p,
            &lang("fr"),
            HIT,
            &format!("{p} lang=fr #{}", n(2)),
        )
        .await;
        expect(&edge, p, &[], HIT, &format!("{p} lang=- #{}", n(3))).await;
    }
    // A value equivalent after normalisation (`en-US,fr` and `en-US, fr`) may share the
    // variant (RFC 9111 §4.1 allows it); the cache key compares forwarded headers as the
    // bytes the origin sees, so it is fetched again, but never served another language.
    expect(&edge, "/y", &lang("en-US,fr"), MISS, "/y lang=en-US,fr #9").await;
    let (_, body) = fetch(&edge, "/y", &lang("en-US, fr")).await;
    assert!(
        body == "/y lang=en-US,fr #9" || body == "/y lang=en-US, fr #10",
        "{body}"
    );
}

// RFC 9111 §4.1: Vary is honoured even on a header the cache key does not forward (the
// origin never sees it): different values never share a stored response, equal values
// after normalisation do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_1_vary_on_unforwarded_header_still_separates_variants() {
    let origin = language_origin(Duration::ZERO).await;
    let (edge, _dir) = start_two_mode_edge(&origin.url(), "", "");
    for (p, base) in [("/x", 0), ("/strict/x", 6)] {
        let b = |i: usize| format!("{p} lang=- #{}", base + i);
        expect(&edge, p, &lang("en-US,fr"), MISS, &b(1)).await;
        // Equal after normalisation (OWS around commas, case of language tags).
        expect(&edge, p, &lang("en-US, fr"), HIT, &b(1)).await;
        expect(&edge, p, &lang("EN-us ,FR"), HIT, &b(1)).await;
        // Different values: separate origin requests.
        expect(&edge, p, &lang("fr"), MISS, &b(2)).await;
        expect(&edge, p, &lang("fr,en-US"), MISS, &b(3)).await;
        expect(&edge, p, &[], MISS, &b(4)).await;
        expect(&edge, p, &lang(""), MISS, &b(5)).await;
        expect(&edge, p, &lang("de"), MISS, &b(6)).await;
        // Each one is reused for its own value only.
        expect(&edge, p, &lang("fr"), HIT, &b(2)).await;
        expect(&edge, p, &[], HIT, &b(4)).await;
        expect(&edge, p, &lang(""), HIT, &b(5)).await;
        expect(&edge, p, &lang("en-us,fr"), HIT, &b(1)).await;
    }
    assert_eq!(origin.requests().len(), 12);
    assert!(origin
        .requests()
        .iter()
        .all(|s| s.header("accept-language").is_none()));
}

// RFC 9111 §4.1: `Vary: *` always fails to match: every request goes to the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_1_vary_star_never_matches() {
    let n = AtomicUsize::new(0);
    let origin = Origin::start(move |seen| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        ok(
            format!("{} #{i}", seen.target).as_bytes(),
            &[
                ("vary", "*"),
                ("cache-control", "max-age=600"),
                ("etag", "\"a\""),
            ],
        )
    })
    .await;
    let (edge, _dir) = start_two_mode_edge(&origin.url(), "", "");
    let mut i = 0;
    for p in ["/x", "/strict/x"] {
        for _ in 0..3 {
            i += 1;
            expect(&edge, p, &[], MISS, &format!("{p} #{i}")).await;
        }
    }
    assert_eq!(origin.requests().len(), 6);
    // Nothing stored, so nothing to revalidate either.
    assert!(origin
        .requests()
        .iter()
        .all(|s| s.header("if-none-match").is_none()));
}

// RFC 9111 §4.1: a viewer that joins a collapsed fill started for another variant must
// not get that variant: it fetches its own; a viewer of the same variant follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_1_collapsed_followers_of_another_variant_get_their_own() {
    let origin = language_origin(Duration::from_millis(800)).await;
    // /fwd/* forwards Accept-Language (the keys differ); elsewhere it is not forwarded
    // (one key, so the viewers collapse on one fill and the variant is told apart after).
    let (edge, _dir) = {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(
            dir.path(),
            &format!(
                "[[distribution]]\nid = \"t\"\ncatch_all = true\n\
[[distribution.origin]]\nid = \"o\"\nurl = \"{}\"\n\
[[distribution.behavior]]\npath_pattern = \"/fwd/*\"\n\
cache_key = {{ headers = [\"accept-language\"] }}\n",
                origin.url()
            ),
        );
        (Edge::with_config(&cfg, dir.path()), dir)
    };
    let addr = edge.addr;
    let go = |target: &'static str, l: &'static str| {
        tokio::spawn(async move {
            let r = get_with(addr, HOST, target, &lang(l)).await;
            assert_eq!(r.status, 200);
            r.text()
        })
    };

    // Unforwarded: en-US leads; fr and a second en-US join while the origin is slow.
    let a = go("/x", "en-US");
    eventually("the first origin request", || origin.count("/x") == 1).await;
    let b = go("/x", "fr");
    let c = go("/x", "en-US");
    let (a, b, c) = (a.await.unwrap(), b.await.unwrap(), c.await.unwrap());
    assert_eq!(a, "/x lang=- #1");
    assert_eq!(c, a, "a viewer of the same variant follows the fill");
    assert_eq!(b, "/x lang=- #2", "another variant is fetched on its own");
    assert_eq!(origin.count("/x"), 2);
    expect(&edge, "/x", &lang("en-US"), HIT, "/x lang=- #1").await;
    expect(&edge, "/x", &lang("fr"), HIT, "/x lang=- #2").await;

    // Forwarded: concurrent viewers each get the body made for their own language.
    let started = Instant::now();
    let all: Vec<_> = ["en-US", "fr", "de", "en-US"]
        .into_iter()
        .map(|l| go("/fwd/x", l))
        .collect();
    let mut bodies = Vec::new();
    for h in all {
        bodies.push(h.await.unwrap());
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    for (body, l) in bodies.iter().zip(["en-US", "fr", "de", "en-US"]) {
        assert!(body.starts_with(&format!("/fwd/x lang={l} #")), "{body}");
    }
    assert_eq!(bodies[0], bodies[3]);
    assert_eq!(origin.count("/fwd/x"), 3);
}

// RFC 9111 §3.5: a response stored for a request without Authorization is reused for a
// request with Authorization only when it says a shared cache may (public, s-maxage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_5_authorized_request_reuses_only_public_responses() {
    let (origin, _ctl) = validating_origin(|t, _| {
        if t.contains("public") {
            "max-age=60, public".to_string()
        } else if t.contains("smaxage") {
            "s-maxage=60".to_string()
        } else {
            "max-age=60".to_string()
        }
    })
    .await;
    let (edge, _dir) = start_two_mode_edge(&origin.url(), "", "");
    let auth = [("authorization", "Bearer secret")];
    for prefix in ["", "/strict"] {
        let plain = format!("{prefix}/plain");
        expect(&edge, &plain, &[], MISS, &format!("{plain} v1")).await;
        expect(&edge, &plain, &[], HIT, &format!("{plain} v1")).await;
        // Not public: the authorized request goes to the origin...
        expect(&edge, &plain, &auth, MISS, &format!("{plain} v1")).await;
        assert_eq!(seen_for(&origin, &plain).len(), 2, "{plain}");
        // ...and its response is not stored for anyone.
        expect(&edge, &plain, &[], HIT, &format!("{plain} v1")).await;
        assert_eq!(seen_for(&origin, &plain).len(), 2, "{plain}");

        for p in ["public", "smaxage"] {
            let path = format!("{prefix}/{p}");
            expect(&edge, &path, &[], MISS, &format!("{path} v1")).await;
            expect(&edge, &path, &auth, HIT, &format!("{path} v1")).await;
            assert_eq!(seen_for(&origin, &path).len(), 1, "{path}");
        }
    }
}

/// The must-revalidate scenario for `path` whose response carries `cc` (with max-age=1):
/// once stale it is revalidated (a conditional request, 304: RefreshHit); once stale
/// again, an origin error status is passed on, a timeout is a 504, and with the origin
/// gone a 502, never the stale object.
async fn never_stale(edge: &Edge, origin: &Origin, ctl: &OriginControl, paths: &[&str]) {
    for p in paths {
        expect(edge, p, &[], MISS, &format!("{p} v1")).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for p in paths {
        expect(edge, p, &[], REFRESH_HIT, &format!("{p} v1")).await;
        let seen = seen_for(origin, p);
        assert_eq!(seen.len(), 2, "{p}");
        assert_eq!(seen[1].header("if-none-match"), Some("\"v1\""), "{p}");
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    ctl.answer(OriginAnswer::Status(503));
    for p in paths {
        let r = get(edge.addr, HOST, p).await;
        assert_eq!((r.status.as_u16(), r.x_cache()), (503, ERROR), "{p}");
        assert_eq!(r.text(), "origin error 503", "{p}");
        assert_eq!(
            seen_for(origin, p)[2].header("if-none-match"),
            Some("\"v1\""),
            "{p}"
        );
    }
    ctl.answer(OriginAnswer::Stall(Duration::from_secs(4)));
    let timed_out =
        futures_util::future::join_all(paths.iter().map(|p| get(edge.addr, HOST, p))).await;
    for (r, p) in timed_out.iter().zip(paths) {
        assert_eq!((r.status.as_u16(), r.x_cache()), (504, ERROR), "{p}");
        assert!(!r.text().contains("v1"), "{p}");
    }
}

async fn never_stale_when_origin_down(directive: &str) {
    let cc = format!("max-age=1, {directive}, stale-while-revalidate=30, stale-if-error=60");
    let (origin, ctl) = validating_origin(move |_, _| cc.clone()).await;
    let (edge, _dir) = start_two_mode_edge(
        &origin.url(),
        "connect_timeout = 1\nresponse_timeout = 1",
        "",
    );
    let paths = ["/x", "/strict/x"];
    never_stale(&edge, &origin, &ctl, &paths).await;
    drop(origin);
    for p in paths {
        let r = get(edge.addr, HOST, p).await;
        assert_eq!((r.status.as_u16(), r.x_cache()), (502, ERROR), "{p}");
        assert!(!r.text().contains("v1"), "{p}");
    }
}

// RFC 9111 §5.2.2.2 (and §4.2.4): must-revalidate: once stale, never used without
// successful validation, not even when the origin fails (stale-if-error notwithstanding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_2_must_revalidate_never_serves_stale_when_origin_fails() {
    never_stale_when_origin_down("must-revalidate").await;
}

// RFC 9111 §5.2.2.8: proxy-revalidate is must-revalidate for shared caches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_8_proxy_revalidate_never_serves_stale_when_origin_fails() {
    never_stale_when_origin_down("proxy-revalidate").await;
}

// RFC 9111 §5.2.2.10: s-maxage implies proxy-revalidate for shared caches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_10_s_maxage_never_serves_stale_when_origin_fails() {
    never_stale_when_origin_down("s-maxage=1").await;
}

// RFC 9111 §5.2.2.4: no-cache: stored, but validated with the origin before every use,
// and never used when that validation fails (stale-if-error notwithstanding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_4_no_cache_is_revalidated_on_every_use() {
    let (origin, ctl) =
        validating_origin(|_, _| "no-cache, max-age=60, stale-if-error=60".to_string()).await;
    let (edge, _dir) = start_two_mode_edge(&origin.url(), "", "");
    let paths = ["/x", "/strict/x"];
    for p in paths {
        expect(&edge, p, &[], MISS, &format!("{p} v1")).await;
        for i in 0..3 {
            expect(&edge, p, &[], REFRESH_HIT, &format!("{p} v1")).await;
            let seen = seen_for(&origin, p);
            assert_eq!(seen.len(), i + 2, "{p}");
            assert_eq!(seen[i + 1].header("if-none-match"), Some("\"v1\""), "{p}");
        }
    }
    ctl.answer(OriginAnswer::Status(503));
    for p in paths {
        let r = get(edge.addr, HOST, p).await;
        assert_eq!((r.status.as_u16(), r.x_cache()), (503, ERROR), "{p}");
    }
    drop(origin);
    for p in paths {
        let r = get(edge.addr, HOST, p).await;
        assert_eq!((r.status.as_u16(), r.x_cache()), (502, ERROR), "{p}");
    }
}

// RFC 9111 §5.2.1.1, §5.2.1.4, §5.4: in strict mode the viewer's max-age=0, no-cache and
// Pragma: no-cache (without Cache-Control) make the edge revalidate a fresh response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_1_strict_mode_revalidates_on_request_directives() {
    let (origin, _ctl) = validating_origin(|_, _| "max-age=600".to_string()).await;
    let (edge, _dir) = start_two_mode_edge(&origin.url(), "", "");
    let p = "/strict/x";
    let body = "/strict/x v1";
    expect(&edge, p, &[], MISS, body).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut asked = 1;
    for h in [
        ("cache-control", "max-age=0"),
        ("cache-control", "no-cache"),
        ("pragma", "no-cache"),
    ] {
        expect(&edge, p, &[h], REFRESH_HIT, body).await;
        asked += 1;
        let seen = seen_for(&origin, p);
        assert_eq!(seen.len(), asked, "{h:?}");
        assert_eq!(seen[asked - 1].header("if-none-match"), Some("\"v1\""));
    }
    // Pragma is ignored when Cache-Control is present (RFC 9111 §5.4); a max-age the
    // response's age satisfies is no reason to revalidate.
    expect(
        &edge,
        p,
        &[("pragma", "no-cache"), ("cache-control", "max-age=600")],
        HIT,
        body,
    )
    .await;
    expect(&edge, p, &[], HIT, body).await;
    assert_eq!(seen_for(&origin, p).len(), asked);
}

// RFC 9111 §5.2.1.2: in strict mode the viewer's max-stale lets a stale response be
// served without contacting the origin, unless it says must-revalidate (§5.2.2.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_1_2_strict_mode_max_stale_serves_stale() {
    let (origin, _ctl) = validating_origin(|t, _| {
        if t.contains("must") {
            "max-age=1, must-revalidate".to_string()
        } else {
            "max-age=1".to_string()
        }
    })
    .await;
    let (edge, _dir) = start_two_mode_edge(&origin.url(), "", "");
    for p in ["/strict/x", "/strict/must", "/x"] {
        expect(&edge, p, &[], MISS, &format!("{p} v1")).await;
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let p = "/strict/x";
    for v in ["max-stale=30", "max-stale"] {
        expect(&edge, p, &[("cache-control", v)], HIT, "/strict/x v1").await;
    }
    // Beyond the limit the request waits for validation.
    expect(
        &edge,
        p,
        &[("cache-control", "max-stale=0")],
        REFRESH_HIT,
        "/strict/x v1",
    )
    .await;
    assert_eq!(seen_for(&origin, p).len(), 2);
    // must-revalidate wins over max-stale.
    let p = "/strict/must";
    expect(
        &edge,
        p,
        &[("cache-control", "max-stale")],
        REFRESH_HIT,
        "/strict/must v1",
    )
    .await;
    assert_eq!(seen_for(&origin, p).len(), 2);
    // CloudFront mode ignores max-stale: the stale response is revalidated.
    let p = "/x";
    expect(
        &edge,
        p,
        &[("cache-control", "max-stale")],
        REFRESH_HIT,
        "/x v1",
    )
    .await;
    assert_eq!(seen_for(&origin, p).len(), 2);
}

// RFC 9111 §5.2.1 leaves honouring request directives to the cache: CloudFront mode
// ignores the viewer's max-age=0, no-cache and Pragma: no-cache (no viewer can bypass it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_1_cloudfront_mode_ignores_request_directives() {
    let (origin, _ctl) = validating_origin(|_, _| "max-age=600".to_string()).await;
    let (edge, _dir) = start_two_mode_edge(&origin.url(), "", "");
    expect(&edge, "/x", &[], MISS, "/x v1").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for h in [
        ("cache-control", "max-age=0"),
        ("cache-control", "no-cache"),
        ("cache-control", "no-store"),
        ("pragma", "no-cache"),
    ] {
        expect(&edge, "/x", &[h], HIT, "/x v1").await;
    }
    assert_eq!(seen_for(&origin, "/x").len(), 1);
}

/// An origin answering every path with `Vary: Accept-Language`, `ETag: "e"`,
/// `Cache-Control: max-age=1` and the body "<target> #<n>" (`n` counts its requests
/// for that target from 1), or 304 when If-None-Match is "e"; after waiting `delay`
/// when `slow` is set.
async fn varying_validating_origin(slow: Arc<AtomicBool>, delay: Duration) -> Origin {
    let counts = Mutex::new(std::collections::HashMap::<String, usize>::new());
    Origin::start(move |seen| {
        let mut steps = Vec::new();
        if slow.load(Ordering::SeqCst) {
            steps.push(Step::Sleep(delay));
        }
        let headers = [
            ("vary", "Accept-Language"),
            ("etag", "\"e\""),
            ("cache-control", "max-age=1"),
        ];
        if seen.header("if-none-match") == Some("\"e\"") {
            steps.extend(not_modified(&headers));
        } else {
            let mut c = counts.lock().unwrap();
            let n = c.entry(seen.target.clone()).or_insert(0);
            *n += 1;
            steps.extend(ok(format!("{} #{n}", seen.target).as_bytes(), &headers));
        }
        steps
    })
    .await
}

/// The scenario of [`rfc9111_4_1_collapsed_revalidation_of_another_variant_is_not_used`]
/// for one path.
async fn revalidation_of_another_variant(edge: &Edge, origin: &Origin, slow: &AtomicBool, p: &str) {
    let addr = edge.addr;
    let go = |l: &'static str| {
        let p = p.to_string();
        tokio::spawn(async move {
            let start = Instant::now();
            let r = get_with(addr, HOST, &p, &lang(l)).await;
            (r, start.elapsed())
        })
    };
    expect(edge, p, &lang("en"), MISS, &format!("{p} #1")).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // en is stale and revalidated slowly; fr, never stored, joins that revalidation.
    slow.store(true, Ordering::SeqCst);
    let en = go("en");
    eventually("en's revalidation", || seen_for(origin, p).len() == 2).await;
    let fr = go("fr");
    let ((en, _), (fr, _)) = (en.await.unwrap(), fr.await.unwrap());
    assert_eq!((en.x_cache(), en.text()), (REFRESH_HIT, format!("{p} #1")));
    assert_eq!(fr.status, 200, "{p}: fr {:?}", fr.body);
    assert_eq!(
        fr.text(),
        format!("{p} #2"),
        "{p}: fr gets its own response"
    );
    assert_eq!(seen_for(origin, p).len(), 3, "{p}");
    slow.store(false, Ordering::SeqCst);

    // Both are stale; en's revalidation must not make fr's stale response usable.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    slow.store(true, Ordering::SeqCst);
    let en = go("en");
    eventually("en's revalidation", || seen_for(origin, p).len() == 4).await;
    let fr = go("fr");
    let ((en, _), (fr, _)) = (en.await.unwrap(), fr.await.unwrap());
    slow.store(false, Ordering::SeqCst);
    assert_eq!((en.x_cache(), en.text()), (REFRESH_HIT, format!("{p} #1")));
    assert_eq!(fr.text(), format!("{p} #2"), "{p}");
    assert_eq!(
        seen_for(origin, p).len(),
        5,
        "{p}: fr's stale response is validated on its own"
    );
    let age: u64 = fr.header("age").unwrap().parse().unwrap();
    assert!(age < 1, "{p}: fr served with age {age}");
}

// RFC 9111 §4.1 and §4.3.3/§4.3.4: a viewer that joins a revalidation of another variant
// must not be answered from its own variant as if it had been validated (nor fail when it
// has no stored variant): it gets its own response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_1_collapsed_revalidation_of_another_variant_is_not_used() {
    let slow = Arc::new(AtomicBool::new(false));
    let origin = varying_validating_origin(slow.clone(), Duration::from_millis(800)).await;
    let (edge, _dir) = start_two_mode_edge(&origin.url(), "", "");
    tokio::join!(
        revalidation_of_another_variant(&edge, &origin, &slow, "/x"),
        revalidation_of_another_variant(&edge, &origin, &slow, "/strict/x"),
    );
}

// RFC 9111 §3.5: a request with Authorization does not follow a collapsed fill started
// by a request without it unless the response says shared caches may reuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_5_authorized_request_does_not_follow_a_private_fill() {
    let (origin, ctl) = validating_origin(|t, _| {
        if t.contains("public") {
            "max-age=60, public".to_string()
        } else {
            "max-age=60".to_string()
        }
    })
    .await;
    ctl.delay(Duration::from_millis(800));
    let (edge, _dir) = start_two_mode_edge(&origin.url(), "", "");
    let addr = edge.addr;
    for p in ["/plain", "/strict/plain", "/public", "/strict/public"] {
        let first = tokio::spawn(async move { get(addr, HOST, p).await });
        eventually("the first origin request", || {
            seen_for(&origin, p).len() == 1
        })
        .await;
        let authorized = get_with(addr, HOST, p, &[("authorization", "Bearer x")]).await;
        let first = first.await.unwrap();
        assert_eq!((first.x_cache(), first.text()), (MISS, format!("{p} v1")));
        assert_eq!(authorized.text(), format!("{p} v1"));
        let want = if p.contains("public") { 1 } else { 2 };
        assert_eq!(seen_for(&origin, p).len(), want, "{p}");
    }
}
