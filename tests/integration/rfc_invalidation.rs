//! Invalidation after unsafe methods (RFC 9111 §4.4), end to end: a non-error response to
//! POST, PUT, PATCH or DELETE makes the edge drop what it stores for the target URI (every
//! variant: all query strings, all Vary variants) and for same-origin Location and
//! Content-Location URIs; an error response or a safe method invalidates nothing.
//! Unknown (extension) methods are not tested: no CloudFront method set allows them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::edge_harness::*;

const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";
const HOST: &str = "viewer.example";

/// What the origin answers to the next unsafe (non-GET/HEAD) request.
type Next = Arc<Mutex<(u16, Vec<(String, String)>)>>;

/// The origin: GET and HEAD get 200 "<target> #<n>" with max-age=60 (and `Vary: x-lang`
/// under /v); any other method gets the scripted status and headers with the body "done".
async fn scripted() -> (Origin, Next) {
    let next: Next = Arc::new(Mutex::new((200, Vec::new())));
    let n = AtomicUsize::new(0);
    let script = next.clone();
    let origin = Origin::start(move |seen| {
        if seen.method == "GET" || seen.method == "HEAD" {
            let i = n.fetch_add(1, Ordering::SeqCst) + 1;
            let mut h = vec![("cache-control", "max-age=60")];
            if seen.target.starts_with("/v") {
                h.push(("vary", "x-lang"));
            }
            return ok(format!("{} #{i}", seen.target).as_bytes(), &h);
        }
        let (status, headers) = script.lock().unwrap().clone();
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        response(status, &h, b"done")
    })
    .await;
    (origin, next)
}

fn set_next(next: &Next, status: u16, headers: &[(&str, &str)]) {
    *next.lock().unwrap() = (
        status,
        headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    );
}

/// An edge allowing every CloudFront method, query strings in the key.
fn start_edge(origin: &Origin) -> (Edge, tempfile::TempDir) {
    start_edge_with(origin, "", "")
}

/// [`start_edge`] with extra keys for the origin table and the cache key table.
fn start_edge_with(
    origin: &Origin,
    origin_keys: &str,
    key_keys: &str,
) -> (Edge, tempfile::TempDir) {
    start_edge_full(origin, "", origin_keys, key_keys)
}

/// [`start_edge`] with extra keys for the distribution, origin and cache key tables.
fn start_edge_full(
    origin: &Origin,
    dist_keys: &str,
    origin_keys: &str,
    key_keys: &str,
) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[distribution]]
id = \"t\"
catch_all = true
{dist_keys}
[[distribution.origin]]
id = \"o\"
url = \"{}\"
{origin_keys}
[distribution.default_behavior]
allowed_methods = [\"GET\", \"HEAD\", \"OPTIONS\", \"PUT\", \"POST\", \"PATCH\", \"DELETE\"]
[distribution.default_behavior.cache_key]
query_strings = \"all\"
{key_keys}
",
            origin.url()
        ),
    );
    (Edge::with_config(&cfg, dir.path()), dir)
}

/// GETs `target` with `headers` and returns (X-Cache, body).
async fn fetch(edge: &Edge, target: &str, headers: &[(&str, &str)]) -> (String, String) {
    let r = get_with(edge.addr, HOST, target, headers).await;
    assert_eq!(r.status, 200, "GET {target} {headers:?}");
    (r.x_cache().to_string(), r.text())
}

/// GET `target` twice: Miss then Hit with the same body; returns the body.
async fn cache(edge: &Edge, target: &str, headers: &[(&str, &str)]) -> String {
    let (x, body) = fetch(edge, target, headers).await;
    assert_eq!(x, MISS, "GET {target} {headers:?}: {body}");
    assert_eq!(
        fetch(edge, target, headers).await,
        (HIT.to_string(), body.clone()),
        "GET {target} {headers:?}"
    );
    body
}

/// Asserts `target` is still served from the cache with `body`.
async fn still_cached(edge: &Edge, target: &str, headers: &[(&str, &str)], body: &str) {
    assert_eq!(
        fetch(edge, target, headers).await,
        (HIT.to_string(), body.to_string()),
        "GET {target} {headers:?} should not have been invalidated"
    );
}

/// Asserts `target` was invalidated: fetched again (a new body).
async fn invalidated(edge: &Edge, target: &str, headers: &[(&str, &str)], old: &str) {
    let (x, body) = fetch(edge, target, headers).await;
    assert_eq!(
        x, MISS,
        "GET {target} {headers:?} should have been invalidated"
    );
    assert_ne!(body, old, "GET {target} {headers:?}");
}

async fn send(edge: &Edge, method: &str, target: &str, expect_status: u16) {
    let r = request(edge.addr, method, HOST, target, &[], b"payload").await;
    assert_eq!(r.status.as_u16(), expect_status, "{method} {target}");
    // The response to an unsafe method is never served from the cache.
    assert_ne!(r.x_cache(), HIT, "{method} {target}");
}

// RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI;
// an error response does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_unsafe_methods_invalidate_the_target_uri_unless_they_fail() {
    let (origin, next) = scripted().await;
    let (edge, _dir) = start_edge(&origin);
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let target = format!("/m/{method}");
        let sibling = format!("/m/{method}/other");
        let body = cache(&edge, &target, &[]).await;
        let other = cache(&edge, &sibling, &[]).await;

        // An error: nothing is invalidated.
        set_next(&next, 500, &[]);
        send(&edge, method, &target, 500).await;
        still_cached(&edge, &target, &[], &body).await;

        // Success: the target (and only the target) is fetched again.
        set_next(&next, 200, &[]);
        send(&edge, method, &target, 200).await;
        invalidated(&edge, &target, &[], &body).await;
        still_cached(&edge, &sibling, &[], &other).await;
    }
    // Every unsafe request reached the origin.
    let unsafe_seen = origin
        .requests()
        .iter()
        .filter(|s| s.method != "GET")
        .count();
    assert_eq!(unsafe_seen, 8);
}

// RFC 9111 §4.4: a 3xx is a non-error status too: a 303 to a POST invalidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_a_redirect_answering_an_unsafe_method_invalidates() {
    let (origin, next) = scripted().await;
    let (edge, _dir) = start_edge(&origin);
    let body = cache(&edge, "/a", &[]).await;
    set_next(&next, 303, &[("location", "/done")]);
    send(&edge, "POST", "/a", 303).await;
    invalidated(&edge, "/a", &[], &body).await;
}

// RFC 9111 §4.4: same-origin Location and Content-Location URIs are invalidated too;
// another origin's are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_same_origin_location_and_content_location_are_invalidated() {
    let (origin, next) = scripted().await;
    let (edge, _dir) = start_edge(&origin);
    let b = cache(&edge, "/b", &[]).await;
    let c = cache(&edge, "/c", &[]).await;
    let d = cache(&edge, "/d", &[]).await;
    let e = cache(&edge, "/e", &[]).await;
    let f = cache(&edge, "/f", &[]).await;
    // The origin speaks in its own URL space: an absolute URI with its authority is the
    // same origin.
    let same = format!("http://{}/e", origin.addr);
    set_next(
        &next,
        201,
        &[
            ("location", "/b"),
            ("content-location", "/c"),
            ("location", "http://other.example/d"),
            ("content-location", same.as_str()),
        ],
    );
    send(&edge, "POST", "/a", 201).await;
    invalidated(&edge, "/b", &[], &b).await;
    invalidated(&edge, "/c", &[], &c).await;
    invalidated(&edge, "/e", &[], &e).await;
    still_cached(&edge, "/d", &[], &d).await;
    still_cached(&edge, "/f", &[], &f).await;
}

// RFC 9111 §4.4: the origin's Location speaks in its own URL space: with an origin path
// prefix, "/static/b" is the viewer's /b; a path outside the prefix is no URI this
// distribution serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_locations_are_mapped_through_the_origin_path() {
    let (origin, next) = scripted().await;
    let (edge, _dir) = start_edge_with(&origin, "path = \"/static\"", "");
    let b = cache(&edge, "/b", &[]).await;
    let c = cache(&edge, "/c", &[]).await;
    assert_eq!(b, "/static/b #1");
    set_next(
        &next,
        204,
        &[("location", "/static/b"), ("content-location", "/c")],
    );
    send(&edge, "POST", "/a", 204).await;
    assert_eq!(origin.requests().last().unwrap().target, "/static/a");
    invalidated(&edge, "/b", &[], &b).await;
    still_cached(&edge, "/c", &[], &c).await;
}

// RFC 9111 §4.4: when the viewer's Host is forwarded, the origin's authority is that Host:
// an absolute Location on it is the same origin, one on the origin's address is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_absolute_locations_compare_with_the_forwarded_host() {
    let (origin, next) = scripted().await;
    let (edge, _dir) = start_edge_with(&origin, "", "headers = [\"host\"]");
    let b = cache(&edge, "/b", &[]).await;
    let c = cache(&edge, "/c", &[]).await;
    let other = format!("http://{}/c", origin.addr);
    set_next(
        &next,
        200,
        &[
            ("location", "HTTP://Viewer.Example:80/b?x=1"),
            ("content-location", other.as_str()),
        ],
    );
    send(&edge, "POST", "/a", 200).await;
    assert_eq!(origin.requests().last().unwrap().header("host"), Some(HOST));
    invalidated(&edge, "/b", &[], &b).await;
    still_cached(&edge, "/c", &[], &c).await;
}

// RFC 9111 §4.4: a Location of "/" names the default root object, in the same
// normalised form as its cache key ("%7Ehome.html" is "/~home.html").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_a_location_of_the_root_invalidates_the_default_root_object() {
    let (origin, next) = scripted().await;
    let (edge, _dir) = start_edge_full(&origin, "default_root_object = \"%7Ehome.html\"", "", "");
    let root = cache(&edge, "/", &[]).await;
    assert_eq!(root, "/~home.html #1");
    set_next(&next, 200, &[("location", "/")]);
    send(&edge, "POST", "/form", 200).await;
    invalidated(&edge, "/", &[], &root).await;
    // A POST to "/" itself too (the fetch above stored "#2").
    let root = "/~home.html #2";
    still_cached(&edge, "/", &[], root).await;
    set_next(&next, 200, &[]);
    send(&edge, "POST", "/", 200).await;
    invalidated(&edge, "/", &[], root).await;
}

// RFC 9111 §4.4: Location / Content-Location of an error response invalidate nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_locations_of_an_error_response_are_not_invalidated() {
    let (origin, next) = scripted().await;
    let (edge, _dir) = start_edge(&origin);
    let b = cache(&edge, "/b", &[]).await;
    set_next(
        &next,
        500,
        &[("location", "/b"), ("content-location", "/b")],
    );
    send(&edge, "POST", "/a", 500).await;
    still_cached(&edge, "/b", &[], &b).await;
}

// RFC 9111 §4.4: every stored response for the URI is invalidated: all query strings
// (when they are in the key) and all Vary variants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_every_variant_of_the_uri_is_invalidated() {
    let (origin, next) = scripted().await;
    let (edge, _dir) = start_edge(&origin);
    let q1 = cache(&edge, "/a?x=1", &[]).await;
    let q2 = cache(&edge, "/a?x=2", &[]).await;
    let plain = cache(&edge, "/a", &[]).await;
    let longer = cache(&edge, "/ab", &[]).await;
    let en = [("x-lang", "en")];
    let fr = [("x-lang", "fr")];
    let v_en = cache(&edge, "/v", &en).await;
    let v_fr = cache(&edge, "/v", &fr).await;
    assert_ne!(v_en, v_fr);

    set_next(&next, 200, &[]);
    send(&edge, "PUT", "/a", 200).await;
    invalidated(&edge, "/a?x=1", &[], &q1).await;
    invalidated(&edge, "/a?x=2", &[], &q2).await;
    invalidated(&edge, "/a", &[], &plain).await;
    // Another path that merely starts the same is untouched.
    still_cached(&edge, "/ab", &[], &longer).await;

    // The request's own query does not narrow the invalidation either.
    send(&edge, "DELETE", "/v?x=9", 200).await;
    invalidated(&edge, "/v", &en, &v_en).await;
    invalidated(&edge, "/v", &fr, &v_fr).await;
}

// RFC 9111 §4.4 (RFC 9110 §9.2.1): safe methods never invalidate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_safe_methods_do_not_invalidate() {
    let (origin, next) = scripted().await;
    let (edge, _dir) = start_edge(&origin);
    let body = cache(&edge, "/a", &[]).await;
    let b = cache(&edge, "/b", &[]).await;
    set_next(
        &next,
        200,
        &[("location", "/b"), ("content-location", "/b")],
    );
    let r = request(edge.addr, "OPTIONS", HOST, "/a", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        origin
            .requests()
            .last()
            .map(|s| s.method.clone())
            .as_deref(),
        Some("OPTIONS")
    );
    let r = request(edge.addr, "HEAD", HOST, "/a", &[], b"").await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, HIT));
    still_cached(&edge, "/a", &[], &body).await;
    still_cached(&edge, "/b", &[], &b).await;
}
