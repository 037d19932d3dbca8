//! Viewer faults and hostile input against the real binary, mostly over raw TCP:
//! pipelining, request smuggling (RFC 9112 §6.3), malformed heads that hyper answers
//! itself, `..` and percent-encoding tricks against the origin path, a viewer hanging up
//! mid-download, slow headers, and the connection, per-connection request and body limits.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::edge_harness::*;

/// A response read off the wire.
#[derive(Debug)]
struct RawResp {
    status: u16,
    /// Names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// Reads from `stream` until the edge closes it (or resets it), within `limit`.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let done = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "the edge did not close the connection within {limit:?}; read so far: {:?}",
        String::from_utf8_lossy(&out)
    );
    out
}

/// Writes `bytes` in one write on a new connection and reads until the edge closes it.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The edge may close before reading everything (it refused the head): not an error.
    let _ = stream.write_all(bytes).await;
    read_to_close(&mut stream, WAIT).await
}

/// Splits the HTTP/1.1 responses in `data` (Content-Length, chunked, or to the end).
fn parse_responses(mut data: &[u8]) -> Vec<RawResp> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&data[..end]).to_string();
        data = &data[end + 4..];
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line in {head:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let body = if let Some(len) = find("content-length") {
            let len: usize = len.parse().unwrap();
            let len = len.min(data.len());
            let b = data[..len].to_vec();
            data = &data[len..];
            b
        } else if find("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            let mut b = Vec::new();
            while let Some(le) = data.windows(2).position(|w| w == b"\r\n") {
                let size_text = String::from_utf8_lossy(&data[..le]).to_string();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
                data = &data[le + 2..];
                if size == 0 {
                    data = data.get(2..).unwrap_or(&[]);
                    break;
                }
                let take = size.min(data.len());
                b.extend_from_slice(&data[..take]);
                data = data.get(take + 2..).unwrap_or(&[]);
            }
            b
        } else if status == 304 || status == 204 {
            Vec::new()
        } else {
            let b = data.to_vec();
            data = &[];
            b
        };
        out.push(RawResp {
            status,
            headers,
            body,
        });
    }
    out
}

/// One distribution "t" for every Host, all methods allowed, its origin at `url` under
/// the origin path `/root`; `edge_keys` adds `[edge]` keys.
fn start_edge(url: &str, edge_keys: &str) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config_with_edge(
        dir.path(),
        edge_keys,
        &format!(
            "[[distribution]]\nid = \"t\"\ncatch_all = true\n\
             [[distribution.origin]]\nid = \"o\"\nurl = \"{url}\"\npath = \"/root\"\n\
             [distribution.default_behavior]\n\
             allowed_methods = [\"GET\", \"HEAD\", \"OPTIONS\", \"PUT\", \"POST\", \"PATCH\", \"DELETE\"]\n"
        ),
    );
    (Edge::with_config(&cfg, dir.path()), dir)
}

fn get_line(target: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: v.test\r\n{extra}\r\n")
}

/// One GET with `Connection: close` on a new connection, sent as written (no client-side
/// URI parsing: `//x` stays `//x`).
async fn raw_get(addr: SocketAddr, target: &str) -> RawResp {
    let line = get_line(target, "Connection: close\r\n");
    let mut got = parse_responses(&exchange(addr, line.as_bytes()).await);
    assert_eq!(got.len(), 1, "{target}: {got:?}");
    got.remove(0)
}

async fn metric(edge: &Edge, name: &str, labels: &[&str]) -> f64 {
    metric_sample(&scrape_metrics(edge.admin).await, name, labels)
}

/// Polls the admin metrics until `name{labels}` reaches `at_least` (bounded).
async fn wait_metric(edge: &Edge, name: &str, labels: &[&str], at_least: f64) {
    let start = Instant::now();
    loop {
        let v = metric(edge, name, labels).await;
        if v >= at_least {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "{name}{labels:?} stayed at {v}, below {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let origin = numbered_origin(|_| vec![("cache-control", "max-age=60".to_string())]).await;
    let (edge, _dir) = start_edge(&origin.url(), "");
    // Warm one of them, so that hits and misses interleave.
    let warm = get(edge.addr, "v.test", "/p2").await;
    assert_eq!(warm.status, 200);
    let mut batch = String::new();
    for target in ["/p1", "/p2", "/p3", "/p2"] {
        batch.push_str(&get_line(target, ""));
    }
    batch.push_str(&get_line("/p4", "Connection: close\r\n"));
    let got = parse_responses(&exchange(edge.addr, batch.as_bytes()).await);
    let bodies: Vec<String> = got.iter().map(RawResp::text).collect();
    assert_eq!(got.len(), 5, "{bodies:?}");
    assert!(got.iter().all(|r| r.status == 200), "{got:?}");
    for (r, target) in got.iter().zip(["/p1", "/p2", "/p3", "/p2", "/p4"]) {
        assert!(
            r.text().starts_with(&format!("/root{target} #")),
            "answers out of order: {bodies:?}"
        );
    }
    assert_eq!(got[1].text(), warm.text(), "the warmed object is a hit");
    assert_eq!(got[1].header("x-cache"), Some("Hit from cairn"));
    assert_eq!(origin.count("/root/p2"), 1);
}

/// What a smuggling payload must produce.
struct Smuggle {
    name: &'static str,
    payload: String,
    /// Statuses of the responses, in order (the connection ends after them).
    want: &'static [u16],
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: v.test\r\n\r\n";

fn smuggling_payloads() -> Vec<Smuggle> {
    let end = get_line("/end", "Connection: close\r\n");
    let post = |headers: &str, body: &str| {
        format!("POST /a HTTP/1.1\r\nHost: v.test\r\n{headers}\r\n{body}{end}")
    };
    let n = SMUGGLED.len();
    vec![
        Smuggle {
            // §6.3 item 3: Transfer-Encoding overrides Content-Length, and the connection
            // is closed after the response, so what follows is never read as a request.
            name: "CL then TE",
            payload: post(
                &format!("Content-Length: {}\r\nTransfer-Encoding: chunked\r\n", n + 5),
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            want: &[200],
        },
        Smuggle {
            name: "TE then CL",
            payload: post(
                &format!("Transfer-Encoding: chunked\r\nContent-Length: {}\r\n", n + 5),
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            want: &[200],
        },
        Smuggle {
            name: "two different Content-Lengths",
            payload: post(
                &format!("Content-Length: 0\r\nContent-Length: {n}\r\n"),
                SMUGGLED,
            ),
            want: &[400],
        },
        Smuggle {
            name: "a Content-Length list",
            payload: post(&format!("Content-Length: 0, {n}\r\n"), SMUGGLED),
            want: &[400],
        },
        Smuggle {
            name: "chunked not last",
            payload: post(
                &format!("Transfer-Encoding: chunked, identity\r\nContent-Length: {n}\r\n"),
                SMUGGLED,
            ),
            want: &[400],
        },
        Smuggle {
            name: "chunked, then identity in a second header",
            payload: post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            want: &[400],
        },
        Smuggle {
            name: "space before the colon",
            payload: post(
                &format!("Transfer-Encoding : chunked\r\nContent-Length: {n}\r\n"),
                SMUGGLED,
            ),
            want: &[400],
        },
        Smuggle {
            name: "xchunked",
            payload: post(
                &format!("Transfer-Encoding: xchunked\r\nContent-Length: {n}\r\n"),
                SMUGGLED,
            ),
            want: &[400],
        },
        Smuggle {
            name: "Transfer-Encoding in HTTP/1.0",
            payload: format!(
                "POST /a HTTP/1.0\r\nHost: v.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
            want: &[400],
        },
        Smuggle {
            // A request inside a Content-Length body is body bytes for the origin.
            name: "a request inside a Content-Length body",
            payload: post(&format!("Content-Length: {n}\r\n"), SMUGGLED),
            want: &[200, 200],
        },
        Smuggle {
            name: "a request inside a chunked body",
            payload: post(
                "Transfer-Encoding: chunked\r\n",
                &format!("{n:x}\r\n{SMUGGLED}\r\n0\r\n\r\n"),
            ),
            want: &[200, 200],
        },
        Smuggle {
            // A GET's body is not forwarded, but it is still framed (and skipped).
            name: "a request inside a GET's body",
            payload: format!(
                "GET /g HTTP/1.1\r\nHost: v.test\r\nContent-Length: {n}\r\n\r\n{SMUGGLED}{end}"
            ),
            want: &[200, 200],
        },
    ]
}

#[tokio::test]
async fn smuggling_never_parses_a_request_out_of_a_body() {
    let origin = numbered_origin(|_| Vec::new()).await;
    let (edge, _dir) = start_edge(&origin.url(), "");
    for s in smuggling_payloads() {
        let got = parse_responses(&exchange(edge.addr, s.payload.as_bytes()).await);
        let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
        assert_eq!(statuses, s.want, "{}: {got:?}", s.name);
        for r in &got {
            assert!(!r.text().contains("smuggled"), "{}: {got:?}", s.name);
        }
        let seen: Vec<String> = origin.requests().iter().map(|r| r.target.clone()).collect();
        assert!(
            !seen.iter().any(|t| t.contains("smuggled")),
            "{}: the origin saw {seen:?}",
            s.name
        );
    }
    let posts: Vec<Seen> = origin
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    // CL+TE twice (empty chunked bodies), then the two bodies that carry a request.
    let bodies: Vec<String> = posts
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .collect();
    assert_eq!(bodies, ["", "", SMUGGLED, SMUGGLED], "{posts:?}");
}

#[tokio::test]
async fn malformed_heads_are_refused_by_hyper_or_by_the_edge() {
    let origin = numbered_origin(|_| Vec::new()).await;
    let (edge, _dir) = start_edge(&origin.url(), "");
    // (what, request bytes, status, answered by the edge itself with Via)
    let many_headers: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16, bool)> = vec![
        (
            "a 70 KiB header",
            format!(
                "GET / HTTP/1.1\r\nHost: v.test\r\nX-Big: {}\r\n\r\n",
                "b".repeat(70 * 1024)
            )
            .into_bytes(),
            431,
            false,
        ),
        (
            "101 header fields",
            format!("GET / HTTP/1.1\r\nHost: v.test\r\n{many_headers}\r\n").into_bytes(),
            431,
            false,
        ),
        (
            "a 10 KB target",
            get_line(&format!("/{}", "a".repeat(10_000)), "Connection: close\r\n").into_bytes(),
            414,
            true,
        ),
        (
            "a target that is no path",
            get_line("foo", "Connection: close\r\n").into_bytes(),
            400,
            true,
        ),
        (
            "a bad method token",
            b"G(T / HTTP/1.1\r\nHost: v.test\r\n\r\n".to_vec(),
            400,
            false,
        ),
        (
            "a control byte in the target",
            b"GET /a\x7fb HTTP/1.1\r\nHost: v.test\r\n\r\n".to_vec(),
            400,
            false,
        ),
        (
            "a space in the target",
            b"GET /a b HTTP/1.1\r\nHost: v.test\r\n\r\n".to_vec(),
            400,
            false,
        ),
        (
            "a NUL in a header value",
            b"GET / HTTP/1.1\r\nHost: v.test\r\nX-A: a\x00b\r\n\r\n".to_vec(),
            400,
            false,
        ),
        (
            "no Host",
            b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
            400,
            true,
        ),
    ];
    for (what, bytes, status, ours) in cases {
        let got = parse_responses(&exchange(edge.addr, &bytes).await);
        assert_eq!(got.len(), 1, "{what}: {got:?}");
        assert_eq!(got[0].status, status, "{what}: {got:?}");
        assert_eq!(
            got[0].header("via").is_some(),
            ours,
            "{what}: Via only on the edge's own answers: {got:?}"
        );
    }
    assert!(
        origin.requests().is_empty(),
        "nothing reached the origin: {:?}",
        origin.requests()
    );
    let errors = "cairn_viewer_protocol_errors_total";
    wait_metric(&edge, errors, &["kind=\"too_large\""], 2.0).await;
    wait_metric(&edge, errors, &["kind=\"parse\""], 4.0).await;
    let refused = "cairn_viewer_requests_refused_total";
    wait_metric(&edge, refused, &["reason=\"uri_too_long\""], 1.0).await;
    wait_metric(&edge, refused, &["reason=\"bad_target\""], 1.0).await;
}

#[tokio::test]
async fn dot_segments_and_encodings_stay_under_the_origin_path() {
    let origin = numbered_origin(|_| vec![("cache-control", "max-age=60".to_string())]).await;
    let (edge, _dir) = start_edge(&origin.url(), "");
    // (first spelling, second spelling that must share its cache key, forwarded target)
    let same = [
        ("/a/../b", "/b", "/root/b"),
        ("/%2e%2e/secret", "/secret", "/root/secret"),
        ("/a/%2E%2E/%2e%2e/x", "/x", "/root/x"),
        ("/%7Euser/./f", "/~user/f", "/root/~user/f"),
        ("/a%2fb", "/a%2Fb", "/root/a%2Fb"),
        ("//x", "//x", "/root//x"),
    ];
    for (first, second, forwarded) in same {
        let a = raw_get(edge.addr, first).await;
        assert_eq!(a.status, 200, "{first}");
        assert_eq!(a.header("x-cache"), Some("Miss from cairn"), "{first}");
        let b = raw_get(edge.addr, second).await;
        assert_eq!(b.status, 200, "{second}");
        assert_eq!(
            b.header("x-cache"),
            Some("Hit from cairn"),
            "{second} after {first}"
        );
        assert_eq!(b.text(), a.text());
        assert!(
            a.text().starts_with(&format!("{forwarded} #")),
            "{first}: {}",
            a.text()
        );
    }
    // A ".." that an origin decoding %2F or %5C would resolve: refused.
    for bad in ["/..%2fsecret", "/a/..%2F..%2Fx", "/%5C..%5Cx", "/x%2F.."] {
        let r = raw_get(edge.addr, bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.text().contains("climb"), "{bad}: {}", r.text());
    }
    // A raw backslash is refused by hyper or by the edge: 400 either way.
    let r = raw_get(edge.addr, "/\\..\\x").await;
    assert_eq!(r.status, 400, "{r:?}");
    for seen in origin.requests() {
        assert!(seen.target.starts_with("/root/"), "{seen:?}");
        assert!(!seen.target.contains(".."), "{seen:?}");
    }
    assert_eq!(origin.requests().len(), same.len());
}

#[tokio::test]
async fn a_viewer_hanging_up_mid_download_leaves_no_fill_behind() {
    const LEN: usize = 4 << 20;
    const CHUNK: usize = 64 * 1024;
    let body = pattern(LEN, 7);
    let b2 = body.clone();
    let origin = Origin::start(move |_| {
        let mut steps = vec![Step::Write(head_with_length(
            LEN,
            &[("cache-control", "max-age=600")],
        ))];
        for c in b2.chunks(CHUNK) {
            steps.push(Step::Write(c.to_vec()));
            steps.push(Step::Sleep(Duration::from_millis(10)));
        }
        steps
    })
    .await;
    let (edge, _dir) = start_edge(&origin.url(), "");
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(get_line("/big", "").as_bytes())
        .await
        .unwrap();
    let mut got = 0usize;
    tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 16 * 1024];
        while got < 512 * 1024 {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the edge closed early");
            got += n;
        }
    })
    .await
    .expect("half the body within the test's limit");
    drop(stream);
    // The fill goes on for the cache, then ends: no task left behind. (Scraping while the
    // 4 MiB fill rotates segments is also what exposed a lock-order deadlock between the
    // store's stats and segment rotation.)
    let start = Instant::now();
    loop {
        let text = scrape_metrics(edge.admin).await;
        if metric_sample(&text, "cairn_fills_in_flight", &[]) == 0.0 {
            break;
        }
        assert!(start.elapsed() < WAIT, "a fill is still in flight:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = get(edge.addr, "v.test", "/big").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.x_cache(), "Hit from cairn");
    assert!(
        again.bytes() == body.as_slice(),
        "wrong bytes after the hang-up"
    );
    assert_eq!(origin.count("/root/big"), 1);
    wait_metric(&edge, "cairn_viewer_connections_open", &[], 0.0).await;
}

#[tokio::test]
async fn slow_headers_are_cut_off_while_others_are_served() {
    let origin = numbered_origin(|_| Vec::new()).await;
    let (edge, _dir) = start_edge(&origin.url(), "header_read_timeout = 1");
    // (what, first bytes, then one byte at a time)
    let slow = [
        (
            "headers one byte at a time",
            "",
            "GET /slow HTTP/1.1\r\nHost: v.test\r\nX-A: b",
        ),
        ("nothing at all", "", ""),
        // hyper's own timeout starts once it knows the protocol; this never tells it.
        ("a partial HTTP/2 preface", "PRI * HTTP/2.0\r\n", ""),
        // An idle keep-alive connection after its first response.
        (
            "idle after a request",
            "GET /first HTTP/1.1\r\nHost: v.test\r\n\r\n",
            "",
        ),
    ];
    let mut tasks = Vec::new();
    for (what, first, trickle) in slow {
        let addr = edge.addr;
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut rd, mut wr) = stream.into_split();
            let writer = tokio::spawn(async move {
                let _ = wr.write_all(first.as_bytes()).await;
                for b in trickle.bytes() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if wr.write_all(&[b]).await.is_err() {
                        return;
                    }
                }
                // Never finish: hold the connection open until the edge closes it.
                tokio::time::sleep(WAIT).await;
            });
            let mut got = Vec::new();
            let closed = tokio::time::timeout(Duration::from_secs(10), async {
                let mut buf = [0u8; 4096];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await
            .is_ok();
            writer.abort();
            (what, closed, start.elapsed(), got)
        }));
    }
    // Others are served meanwhile.
    for i in 0..3 {
        let r = get(edge.addr, "v.test", &format!("/ok{i}")).await;
        assert_eq!(r.status, 200);
    }
    for t in tasks {
        let (what, closed, after, got) = t.await.unwrap();
        assert!(closed, "{what}: still open after 10 s");
        assert!(
            after >= Duration::from_millis(900),
            "{what}: closed after {after:?}, before the timeout"
        );
        let responses = parse_responses(&got);
        if what == "idle after a request" {
            assert_eq!(responses.len(), 1, "{what}: {responses:?}");
            assert_eq!(responses[0].status, 200);
        } else {
            assert!(
                got.is_empty(),
                "{what}: got {:?}",
                String::from_utf8_lossy(&got)
            );
        }
    }
    assert!(origin.requests().iter().all(|r| r.target != "/root/slow"));
    wait_metric(
        &edge,
        "cairn_viewer_protocol_errors_total",
        &["kind=\"header_timeout\""],
        3.0,
    )
    .await;
    wait_metric(
        &edge,
        "cairn_viewer_protocol_errors_total",
        &["kind=\"keepalive_timeout\""],
        1.0,
    )
    .await;
}

/// Sends one GET with `Connection: close` on a new connection; its status.
async fn status_of_new_connection(addr: SocketAddr) -> u16 {
    let got =
        parse_responses(&exchange(addr, get_line("/n", "Connection: close\r\n").as_bytes()).await);
    got.first().map_or(0, |r| r.status)
}

#[tokio::test]
async fn connections_beyond_the_limit_get_a_quick_503() {
    let origin = numbered_origin(|_| Vec::new()).await;
    let (edge, _dir) = start_edge(&origin.url(), "max_connections = 4");
    let mut held = Vec::new();
    for i in 0..4 {
        let mut c = KeepAlive::connect(edge.addr).await;
        let r = c.get("v.test", &format!("/held{i}")).await.unwrap();
        assert_eq!(r.status, 200);
        held.push(c);
    }
    let start = Instant::now();
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    let _ = stream.write_all(get_line("/fifth", "").as_bytes()).await;
    let got = parse_responses(&read_to_close(&mut stream, Duration::from_secs(10)).await);
    assert_eq!(got.len(), 1, "{got:?}");
    let r = &got[0];
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        r.text().contains("too many open connections"),
        "{}",
        r.text()
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(origin.count("/root/fifth"), 0);
    assert_eq!(
        metric(&edge, "cairn_viewer_connections_open", &[]).await,
        4.0
    );
    assert!(metric(&edge, "cairn_viewer_connections_rejected_total", &[]).await >= 1.0);
    // The held connections still work; once one closes, a new viewer is served.
    let r = held[0].get("v.test", "/still").await.unwrap();
    assert_eq!(r.status, 200);
    held.pop();
    let start = Instant::now();
    loop {
        match status_of_new_connection(edge.addr).await {
            200 => break,
            503 => assert!(start.elapsed() < WAIT, "still refused after a close"),
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_last_request_of_a_connection_says_close() {
    let origin = numbered_origin(|_| Vec::new()).await;
    let (edge, _dir) = start_edge(&origin.url(), "max_requests_per_connection = 3");
    let mut c = KeepAlive::connect(edge.addr).await;
    for i in 1..=3 {
        let r = c.get("v.test", &format!("/r{i}")).await.unwrap();
        assert_eq!(r.status, 200);
        let close = r.header("connection") == Some("close");
        assert_eq!(close, i == 3, "request {i}: {:?}", r.headers);
    }
    assert!(
        c.get("v.test", "/r4").await.is_err(),
        "a fourth request on the same connection"
    );
    // Pipelined: exactly three answers, whatever else was sent.
    let batch: String = (1..=5).map(|i| get_line(&format!("/p{i}"), "")).collect();
    let got = parse_responses(&exchange(edge.addr, batch.as_bytes()).await);
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200], "{got:?}");
    assert_eq!(got[2].header("connection"), Some("close"));
    assert_eq!(origin.count("/root/p4") + origin.count("/root/p5"), 0);
    wait_metric(
        &edge,
        "cairn_viewer_connections_request_limit_total",
        &[],
        2.0,
    )
    .await;
}

#[tokio::test]
async fn an_http2_connection_at_its_request_limit_is_sent_away() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    let origin = numbered_origin(|_| Vec::new()).await;
    let (edge, _dir) = start_edge(&origin.url(), "max_requests_per_connection = 3");
    let stream = TcpStream::connect(edge.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    for i in 1..=3 {
        let req = http::Request::get(format!("http://v.test/h{i}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = tokio::time::timeout(WAIT, send.send_request(req))
            .await
            .expect("an answer within the test's limit")
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(body.starts_with(format!("/root/h{i} #").as_bytes()));
    }
    // GOAWAY, then the edge closes the connection (HTTP/2 has no idle timeout: without
    // the limit it would stay open).
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the edge ended the HTTP/2 connection")
        .unwrap()
        .unwrap();
    wait_metric(
        &edge,
        "cairn_viewer_connections_request_limit_total",
        &[],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_and_never_reach_the_origin_whole() {
    let origin = numbered_origin(|_| Vec::new()).await;
    let (edge, _dir) = start_edge(&origin.url(), "max_request_body = \"1KiB\"");
    let small = vec![b's'; 1024];
    let r = request(edge.addr, "POST", "v.test", "/small", &[], &small).await;
    assert_eq!(r.status, 200);
    let seen = seen_for(&origin, "/root/small");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].body, small,
        "a body at the limit goes through whole"
    );
    let post = |target: &str, headers: &str, body: &[u8]| {
        let mut b = format!("POST {target} HTTP/1.1\r\nHost: v.test\r\n{headers}\r\n").into_bytes();
        b.extend_from_slice(body);
        b
    };
    let big = vec![b'b'; 1025];
    let by_length = post("/by-length", "Content-Length: 1025\r\n", &big);
    let mut chunked_body = Vec::new();
    for c in big.chunks(300) {
        chunked_body.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        chunked_body.extend_from_slice(c);
        chunked_body.extend_from_slice(b"\r\n");
    }
    chunked_body.extend_from_slice(b"0\r\n\r\n");
    let chunked = post("/chunked", "Transfer-Encoding: chunked\r\n", &chunked_body);
    for (what, bytes) in [("Content-Length", by_length), ("chunked", chunked)] {
        let got = parse_responses(&exchange(edge.addr, &bytes).await);
        assert_eq!(got.len(), 1, "{what}: {got:?}");
        assert_eq!(got[0].status, 413, "{what}: {got:?}");
        assert_eq!(got[0].header("connection"), Some("close"), "{what}");
        assert!(
            got[0].text().contains("1024 bytes"),
            "{what}: {}",
            got[0].text()
        );
    }
    assert_eq!(
        origin.count("/root/by-length"),
        0,
        "refused before the origin"
    );
    // The chunked body's origin request was aborted mid-body: the origin never got a
    // complete request (it records only those).
    assert_eq!(origin.count("/root/chunked"), 0);
    wait_metric(
        &edge,
        "cairn_viewer_requests_refused_total",
        &["reason=\"body_too_large\""],
        2.0,
    )
    .await;
}
