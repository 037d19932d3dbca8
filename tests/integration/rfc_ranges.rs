//! Range requests end to end against the real binary (RFC 9110 §14, §15.3.7, §15.5.17,
//! §13.1.5): single, suffix, open-ended and multiple ranges from a stored object (206,
//! multipart/byteranges), 416, invalid Range fields ignored, If-Range, ranges crossing the
//! store's 64 KiB chunks, and range requests on a miss (the whole object is fetched and
//! stored and the range served from it; above the behaviour's range_fill_max the range
//! goes to the origin and nothing is stored).

use std::time::Duration;

use crate::edge_harness::*;

const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";

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

/// An origin serving `body` (cacheable, strong ETag "s1") for every path, and, when it is
/// asked for a single `bytes=a-b` range, a 206 of it (the edge should only ask when the
/// object is above range_fill_max).
async fn body_origin(body: Vec<u8>) -> Origin {
    Origin::start(move |seen| {
        let h = [
            ("cache-control", "max-age=600"),
            ("etag", "\"s1\""),
            ("content-type", "application/x-test"),
        ];
        if let Some((a, b)) = seen
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        {
            let cr = format!("bytes {a}-{b}/{}", body.len());
            let mut h = h.to_vec();
            h.push(("content-range", &cr));
            return response(206, &h, &body[a..=b]);
        }
        ok(&body, &h)
    })
    .await
}

/// Fetches `target` once so it is stored, and checks it was a miss.
async fn warm(edge: &Edge, target: &str, body: &[u8]) {
    let r = get(edge.addr, "viewer.example", target).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, MISS));
    assert_eq!(r.bytes(), body);
}

async fn ranged(edge: &Edge, target: &str, headers: &[(&str, &str)]) -> Resp {
    get_with(edge.addr, "viewer.example", target, headers).await
}

/// Checks a single-range 206: status, Content-Range, Content-Length and the bytes
/// `start..=end` of `body`.
fn assert_206(r: &Resp, body: &[u8], start: usize, end: usize) {
    assert_eq!(r.status, 206, "{:?}", r.headers);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {start}-{end}/{}", body.len()).as_str())
    );
    assert_eq!(
        r.header("content-length"),
        Some((end - start + 1).to_string().as_str())
    );
    assert!(
        r.bytes() == &body[start..=end],
        "wrong bytes for {start}-{end}"
    );
}

/// One part of a multipart/byteranges body: its Content-Range and bytes.
#[derive(Debug)]
struct Part {
    content_range: String,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

/// Parses a multipart/byteranges response (RFC 9110 §14.6, RFC 2046 §5.1.1).
fn multipart(r: &Resp) -> Vec<Part> {
    let ct = r.header("content-type").expect("a Content-Type");
    let boundary = ct
        .strip_prefix("multipart/byteranges")
        .and_then(|rest| rest.split_once("boundary="))
        .map(|(_, b)| b.trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("not multipart/byteranges with a boundary: {ct}"));
    assert!(!boundary.is_empty() && boundary.len() <= 70);
    let body = r.bytes();
    assert_eq!(
        r.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    let delim = format!("\r\n--{boundary}").into_bytes();
    let mut at: Vec<usize> = Vec::new();
    let mut i = 0;
    while i + delim.len() <= body.len() {
        if body[i..].starts_with(&delim) {
            at.push(i);
            i += delim.len();
        } else {
            i += 1;
        }
    }
    assert!(at.len() >= 2, "no parts");
    assert_eq!(at[0], 0, "the body starts with the first delimiter");
    let last = *at.last().unwrap();
    assert_eq!(
        &body[last + delim.len()..],
        b"--\r\n",
        "the body ends with the closing delimiter"
    );
    let mut parts = Vec::new();
    for w in at.windows(2) {
        let seg = &body[w[0] + delim.len()..w[1]];
        let seg = seg.strip_prefix(b"\r\n").expect("CRLF after a delimiter");
        let end = seg
            .windows(4)
            .position(|x| x == b"\r\n\r\n")
            .expect("part headers end");
        let head = String::from_utf8(seg[..end].to_vec()).unwrap();
        let mut content_range = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let (n, v) = line.split_once(':').expect("a header line");
            match n.trim().to_ascii_lowercase().as_str() {
                "content-range" => content_range = Some(v.trim().to_string()),
                "content-type" => content_type = Some(v.trim().to_string()),
                other => panic!("unexpected part header {other}"),
            }
        }
        parts.push(Part {
            content_range: content_range.expect("each part has a Content-Range"),
            content_type,
            bytes: seg[end + 4..].to_vec(),
        });
    }
    parts
}

/// Checks the parts are exactly `ranges` (inclusive) of `body`, in order.
fn assert_parts(r: &Resp, body: &[u8], ranges: &[(usize, usize)]) {
    assert_eq!(r.status, 206);
    let parts = multipart(r);
    assert_eq!(parts.len(), ranges.len(), "{parts:?}");
    for (p, &(a, b)) in parts.iter().zip(ranges) {
        assert_eq!(p.content_range, format!("bytes {a}-{b}/{}", body.len()));
        assert_eq!(p.content_type.as_deref(), Some("application/x-test"));
        assert!(p.bytes == body[a..=b], "wrong bytes for part {a}-{b}");
    }
}

// RFC 9110 §14.2, §15.3.7.1: one satisfiable range of a stored object is a 206 with its
// Content-Range, Content-Length and bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_15_3_7_1_a_single_range_on_a_hit_is_a_206() {
    let body = pattern(1000, 1);
    let origin = body_origin(body.clone()).await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    warm(&edge, "/r", &body).await;
    let r = ranged(&edge, "/r", &[("range", "bytes=0-9")]).await;
    assert_206(&r, &body, 0, 9);
    assert_eq!(r.x_cache(), HIT);
    assert_eq!(r.header("etag"), Some("\"s1\""));
    assert_eq!(r.header("content-type"), Some("application/x-test"));
    let r = ranged(&edge, "/r", &[("range", "bytes=500-2000")]).await;
    assert_206(&r, &body, 500, 999);
    assert_eq!(origin.count("/r"), 1);
    assert!(origin
        .requests()
        .iter()
        .all(|s| s.header("range").is_none()));
}

// RFC 9110 §14.1.1: a suffix range is the last N bytes, an open-ended one runs to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_14_1_1_suffix_and_open_ended_ranges() {
    let body = pattern(1000, 2);
    let origin = body_origin(body.clone()).await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    warm(&edge, "/r", &body).await;
    assert_206(
        &ranged(&edge, "/r", &[("range", "bytes=-5")]).await,
        &body,
        995,
        999,
    );
    assert_206(
        &ranged(&edge, "/r", &[("range", "bytes=10-")]).await,
        &body,
        10,
        999,
    );
    // A suffix longer than the representation is all of it, still as a 206.
    assert_206(
        &ranged(&edge, "/r", &[("range", "bytes=-5000")]).await,
        &body,
        0,
        999,
    );
    assert_eq!(origin.count("/r"), 1);
}

// RFC 9110 §14.6, §15.3.7.2: several ranges are a 206 multipart/byteranges whose parts
// each carry their Content-Range and bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_15_3_7_2_several_ranges_are_a_multipart_byteranges_206() {
    let body = pattern(1000, 3);
    let origin = body_origin(body.clone()).await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    warm(&edge, "/r", &body).await;
    let r = ranged(&edge, "/r", &[("range", "bytes=0-1,5-6")]).await;
    assert_eq!(r.x_cache(), HIT);
    assert_eq!(
        r.header("content-range"),
        None,
        "no Content-Range on a multipart 206"
    );
    assert_parts(&r, &body, &[(0, 1), (5, 6)]);
    let r = ranged(&edge, "/r", &[("range", "bytes=100-199, -10, 300-300")]).await;
    assert_parts(&r, &body, &[(100, 199), (300, 300), (990, 999)]);
    assert_eq!(origin.count("/r"), 1);
}

// RFC 9110 §15.5.17, §14.4: a Range with no satisfiable range is a 416 with
// `Content-Range: bytes */LEN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_15_5_17_an_unsatisfiable_range_is_a_416_with_the_length() {
    let body = pattern(1000, 4);
    let origin = body_origin(body.clone()).await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    warm(&edge, "/r", &body).await;
    for range in ["bytes=1000-", "bytes=5000-6000", "bytes=1000-1001,2000-"] {
        let r = ranged(&edge, "/r", &[("range", range)]).await;
        assert_eq!((r.status.as_u16(), r.x_cache()), (416, HIT), "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */1000"), "{range}");
        assert!(r.bytes().is_empty(), "{range}");
    }
    assert_eq!(origin.count("/r"), 1);
}

// RFC 9110 §14.2: an invalid Range field (or another unit) is ignored: 200 with the whole
// representation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_14_2_an_invalid_range_is_ignored() {
    let body = pattern(1000, 5);
    let origin = body_origin(body.clone()).await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    warm(&edge, "/r", &body).await;
    for range in ["bytes=abc", "bytes=9-5", "items=0-1", "bytes="] {
        let r = ranged(&edge, "/r", &[("range", range)]).await;
        assert_eq!((r.status.as_u16(), r.x_cache()), (200, HIT), "{range}");
        assert_eq!(r.header("content-range"), None);
        assert!(r.bytes() == &body[..], "{range}");
    }
    assert_eq!(origin.count("/r"), 1);
}

// RFC 9110 §13.1.5: If-Range with the stored strong ETag gets the range; a different or a
// weak entity-tag gets the whole representation (200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_13_1_5_if_range_needs_the_stored_strong_etag() {
    let body = pattern(1000, 6);
    let origin = body_origin(body.clone()).await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    warm(&edge, "/r", &body).await;
    let r = ranged(
        &edge,
        "/r",
        &[("range", "bytes=0-9"), ("if-range", "\"s1\"")],
    )
    .await;
    assert_206(&r, &body, 0, 9);
    for ir in ["\"other\"", "W/\"s1\""] {
        let r = ranged(&edge, "/r", &[("range", "bytes=0-9"), ("if-range", ir)]).await;
        assert_eq!((r.status.as_u16(), r.x_cache()), (200, HIT), "{ir}");
        assert!(r.bytes() == &body[..], "{ir}");
    }
    assert_eq!(origin.count("/r"), 1);
}

// RFC 9110 §14: ranges are exact wherever they fall, also across the store's 64 KiB
// chunks (single and multipart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_14_ranges_across_store_chunks_are_exact() {
    let body = pattern(300_000, 7);
    let origin = body_origin(body.clone()).await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    warm(&edge, "/big", &body).await;
    let r = ranged(&edge, "/big", &[("range", "bytes=65530-65545")]).await;
    assert_206(&r, &body, 65530, 65545);
    assert_eq!(r.x_cache(), HIT);
    // One range spanning three chunks.
    let r = ranged(&edge, "/big", &[("range", "bytes=65000-200000")]).await;
    assert_206(&r, &body, 65000, 200_000);
    let r = ranged(
        &edge,
        "/big",
        &[("range", "bytes=65530-65545,131000-131100,196600-262200,-20")],
    )
    .await;
    assert_parts(
        &r,
        &body,
        &[
            (65530, 65545),
            (131_000, 131_100),
            (196_600, 262_200),
            (299_980, 299_999),
        ],
    );
    assert_eq!(origin.count("/big"), 1);
}

// RFC 9110 §14.2, RFC 9111 §3.3: a range request on a miss (object at most
// range_fill_max) fetches the whole object without Range, stores it, and answers the
// range; the object is then a hit for every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_14_2_a_range_on_a_miss_stores_the_whole_object_and_serves_the_range() {
    let body = pattern(200_000, 8);
    let origin = body_origin(body.clone()).await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    let r = ranged(&edge, "/a", &[("range", "bytes=65530-65545")]).await;
    assert_eq!(r.x_cache(), MISS);
    assert_206(&r, &body, 65530, 65545);
    let r = ranged(&edge, "/b", &[("range", "bytes=0-1,70000-70010,-3")]).await;
    assert_eq!(r.x_cache(), MISS);
    assert_parts(&r, &body, &[(0, 1), (70000, 70010), (199_997, 199_999)]);
    let r = ranged(&edge, "/c", &[("range", "bytes=300000-")]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (416, MISS));
    assert_eq!(r.header("content-range"), Some("bytes */200000"));
    let r = ranged(
        &edge,
        "/d",
        &[("range", "bytes=0-9"), ("if-range", "\"old\"")],
    )
    .await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, MISS));
    assert!(r.bytes() == &body[..]);
    assert!(
        origin
            .requests()
            .iter()
            .all(|s| s.header("range").is_none()),
        "a Range reached the origin"
    );

    // Each fill runs to its end and is stored even though its viewer read little of it.
    for path in ["/a", "/b", "/c", "/d", "/e"] {
        let mut hit = false;
        for _ in 0..100 {
            let r = ranged(&edge, path, &[("range", "bytes=10-19")]).await;
            assert_206(&r, &body, 10, 19);
            if r.x_cache() == HIT {
                hit = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(hit, "{path} was not stored");
        let r = get(edge.addr, "viewer.example", path).await;
        assert_eq!((r.status.as_u16(), r.x_cache()), (200, HIT));
        assert!(r.bytes() == &body[..]);
        assert_eq!(origin.count(path), 1, "{path}");
    }
}

// RFC 9110 §14.2 with the behaviour's range_fill_max: a range request on a miss for an
// object larger than it is passed to the origin with its Range and nothing is stored; a
// plain GET still fills the cache, and ranges are then served from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_14_2_a_range_on_a_miss_above_range_fill_max_goes_to_the_origin() {
    let body = pattern(5000, 9);
    let origin = body_origin(body.clone()).await;
    let (edge, _dir) = start_edge(&format!(
        "{}[distribution.default_behavior]\nrange_fill_max = 1000\n",
        one_origin(&origin.url())
    ));
    let r = ranged(&edge, "/big", &[("range", "bytes=100-109")]).await;
    assert_eq!(r.x_cache(), MISS);
    assert_206(&r, &body, 100, 109);
    let ranged_asks = |origin: &Origin| -> Vec<String> {
        origin
            .requests()
            .into_iter()
            .filter_map(|s| s.header("range").map(str::to_string))
            .collect()
    };
    assert_eq!(ranged_asks(&origin), vec!["bytes=100-109".to_string()]);
    // A range the stored part does not cover goes to the origin too.
    let r = ranged(&edge, "/big", &[("range", "bytes=200-209")]).await;
    assert_eq!(r.x_cache(), MISS);
    assert_206(&r, &body, 200, 209);
    assert_eq!(ranged_asks(&origin).len(), 2);
    // A plain GET stores it; ranges then come from the store.
    warm(&edge, "/big", &body).await;
    let before = origin.requests().len();
    let r = ranged(&edge, "/big", &[("range", "bytes=150-159")]).await;
    assert_eq!(r.x_cache(), HIT);
    assert_206(&r, &body, 150, 159);
    assert_eq!(origin.requests().len(), before);
}

// RFC 9111 §3.3: a stored partial response answers later requests for the ranges it
// covers (sliced, with the complete length), and never a request for the whole object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_3_a_stored_partial_response_answers_the_ranges_it_covers() {
    let body = pattern(5000, 21);
    let origin = body_origin(body.clone()).await;
    let (edge, _dir) = start_edge(&format!(
        "{}[distribution.default_behavior]\nrange_fill_max = 1000\n",
        one_origin(&origin.url())
    ));
    let r = ranged(&edge, "/part", &[("range", "bytes=1000-2999")]).await;
    assert_eq!(r.x_cache(), MISS);
    assert_206(&r, &body, 1000, 2999);
    let asked = origin.requests().len();
    for (a, b) in [(1000, 2999), (1500, 1509), (2990, 2999), (1000, 1000)] {
        let r = ranged(&edge, "/part", &[("range", &format!("bytes={a}-{b}"))]).await;
        assert_eq!(r.x_cache(), HIT, "bytes={a}-{b}");
        assert_206(&r, &body, a, b);
    }
    assert_eq!(
        origin.requests().len(),
        asked,
        "covered ranges never reach the origin"
    );
    // Not covered: the origin is asked.
    let r = ranged(&edge, "/part", &[("range", "bytes=2990-3009")]).await;
    assert_eq!(r.x_cache(), MISS);
    assert_206(&r, &body, 2990, 3009);
    // The whole object is never answered from a part.
    let r = get(edge.addr, "viewer.example", "/part").await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, MISS));
    assert_eq!(r.bytes(), &body[..]);
    // An If-Range that does not match the stored part's ETag is not answered from it.
    let r = ranged(&edge, "/part2", &[("range", "bytes=1000-1999")]).await;
    assert_eq!(r.x_cache(), MISS);
    let r = ranged(
        &edge,
        "/part2",
        &[("range", "bytes=1000-1099"), ("if-range", "\"other\"")],
    )
    .await;
    assert_ne!(r.x_cache(), HIT);
}

// RFC 9110 §14.2 with range_fill_max: a viewer without a Range that joined the fill of a
// range request abandoned above range_fill_max still gets the whole object (it fetches
// it itself), and another range viewer that joined gets its range from the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_14_2_viewers_collapsed_onto_an_abandoned_range_fill_are_answered() {
    let body = pattern(5000, 10);
    let b2 = body.clone();
    let origin = Origin::start(move |seen| {
        let h = [("cache-control", "max-age=600"), ("etag", "\"s1\"")];
        if seen.header("range") == Some("bytes=0-3") {
            let cr = format!("bytes 0-3/{}", b2.len());
            return response(206, &[h[0], h[1], ("content-range", &cr)], &b2[..4]);
        }
        // The head comes late, so that the other viewers join this fetch.
        let mut steps = vec![Step::Sleep(Duration::from_millis(400))];
        steps.extend(ok(&b2, &h));
        steps
    })
    .await;
    let (edge, _dir) = start_edge(&format!(
        "{}[distribution.default_behavior]\nrange_fill_max = 1000\n",
        one_origin(&origin.url())
    ));
    let addr = edge.addr;
    let first = tokio::spawn(async move {
        get_with(addr, "viewer.example", "/j", &[("range", "bytes=0-3")]).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let plain = tokio::spawn(async move { get(addr, "viewer.example", "/j").await });
    let other = tokio::spawn(async move {
        get_with(addr, "viewer.example", "/j", &[("range", "bytes=0-3")]).await
    });
    for r in [first.await.unwrap(), other.await.unwrap()] {
        assert_eq!(r.x_cache(), MISS);
        assert_206(&r, &body, 0, 3);
    }
    let r = plain.await.unwrap();
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, MISS));
    assert!(r.bytes() == &body[..]);
    let asked: Vec<Option<String>> = origin
        .requests()
        .iter()
        .map(|s| s.header("range").map(str::to_string))
        .collect();
    assert_eq!(asked.iter().filter(|r| r.is_some()).count(), 2, "{asked:?}");
    // The plain viewer's own fetch stored the object.
    let r = ranged(&edge, "/j", &[("range", "bytes=0-3")]).await;
    assert_eq!(r.x_cache(), HIT);
    assert_206(&r, &body, 0, 3);
}

// RFC 9110 §14.2, RFC 9111 §4.3: a range request for a stale object is answered after
// revalidation: from the refreshed object after a 304, from the new body after a 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_14_2_a_range_on_a_stale_object_is_served_after_revalidation() {
    let old = pattern(100_000, 11);
    let new = pattern(90_000, 12);
    let (o2, n2) = (old.clone(), new.clone());
    let origin = Origin::start(move |seen| {
        let inm = seen.header("if-none-match");
        match (seen.target.as_str(), inm) {
            ("/same", Some("\"a\"")) => {
                not_modified(&[("cache-control", "max-age=600"), ("etag", "\"a\"")])
            }
            ("/changed", Some("\"a\"")) => {
                ok(&n2, &[("cache-control", "max-age=600"), ("etag", "\"b\"")])
            }
            _ => ok(&o2, &[("cache-control", "max-age=1"), ("etag", "\"a\"")]),
        }
    })
    .await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    warm(&edge, "/same", &old).await;
    warm(&edge, "/changed", &old).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;

    let r = ranged(&edge, "/same", &[("range", "bytes=70000-70009")]).await;
    assert_eq!(r.x_cache(), "RefreshHit from cairn");
    assert_206(&r, &old, 70000, 70009);
    let r = ranged(&edge, "/changed", &[("range", "bytes=70000-70009")]).await;
    assert_eq!(r.x_cache(), MISS);
    assert_206(&r, &new, 70000, 70009);
    assert!(origin
        .requests()
        .iter()
        .all(|s| s.header("range").is_none()));

    let mut hit = false;
    for _ in 0..100 {
        let r = get(edge.addr, "viewer.example", "/changed").await;
        assert!(r.bytes() == &new[..]);
        if r.x_cache() == HIT {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hit, "the new body was not stored");
    assert_eq!((origin.count("/same"), origin.count("/changed")), (2, 2));
}

// RFC 9111 §3.3, §4: a partial response (206) is incomplete: the edge never answers a
// later request with it as if it were the whole representation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_3_3_a_206_from_the_origin_never_answers_a_later_request() {
    let body = pattern(1000, 13);
    let b2 = body.clone();
    let origin = Origin::start(move |_| {
        // An origin that answers a plain GET with the first 100 bytes only.
        let h = [
            ("cache-control", "max-age=600"),
            ("etag", "\"p\""),
            ("content-range", "bytes 0-99/1000"),
        ];
        response(206, &h, &b2[..100])
    })
    .await;
    let (edge, _dir) = start_edge(&one_origin(&origin.url()));
    let r = get(edge.addr, "viewer.example", "/p").await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (206, MISS));
    assert!(r.bytes() == &body[..100]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = get(edge.addr, "viewer.example", "/p").await;
    assert_ne!(
        r.x_cache(),
        HIT,
        "a stored 206 answered a request for the whole object"
    );
    assert_eq!(origin.count("/p"), 2);
}
