//! Access logs end to end, against the real binary: CloudFront's 33 fields for a varied
//! set of requests, goaccess reading the file, `000` for a viewer that hangs up, lines
//! written promptly off the request path and all flushed on SIGTERM, and log rotation
//! by rename + SIGHUP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use cairn::access_log::testing::{goaccess_available, goaccess_check};
use cairn::access_log::{FIELD_COUNT, HEADER};

use crate::edge_harness::*;

/// CloudFront's standard log fields, in order, as its documentation lists them.
const CLOUDFRONT_FIELDS: [&str; 33] = [
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
];

// Field positions (0-based) in a line.
const DATE: usize = 0;
const TIME: usize = 1;
const LOCATION: usize = 2;
const SC_BYTES: usize = 3;
const C_IP: usize = 4;
const METHOD: usize = 5;
const HOST: usize = 6;
const STEM: usize = 7;
const STATUS: usize = 8;
const REFERER: usize = 9;
const USER_AGENT: usize = 10;
const QUERY: usize = 11;
const COOKIE: usize = 12;
const RESULT: usize = 13;
const REQUEST_ID: usize = 14;
const HOST_HEADER: usize = 15;
const PROTOCOL: usize = 16;
const CS_BYTES: usize = 17;
const TIME_TAKEN: usize = 18;
const FORWARDED_FOR: usize = 19;
const SSL_PROTOCOL: usize = 20;
const SSL_CIPHER: usize = 21;
const RESPONSE_RESULT: usize = 22;
const PROTOCOL_VERSION: usize = 23;
const FLE_STATUS: usize = 24;
const FLE_FIELDS: usize = 25;
const C_PORT: usize = 26;
const TTFB: usize = 27;
const DETAILED: usize = 28;
const CONTENT_TYPE: usize = 29;
const CONTENT_LEN: usize = 30;
const RANGE_START: usize = 31;
const RANGE_END: usize = 32;

const INDEX_LEN: usize = 5_000;
const SLOW_LEN: usize = 4_000_000;

/// A log file: its `#` lines (which must all come first) and its request lines.
struct Log {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// The file ended in the middle of a line (left out of `rows`): the writer was
    /// caught mid-write, or a line was cut short.
    partial: bool,
}

impl Log {
    fn read(path: &Path) -> Log {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let (text, partial) = match text.rfind('\n') {
            Some(i) => (&text[..=i], i + 1 < text.len()),
            None => ("", !text.is_empty()),
        };
        let mut log = Log {
            header: Vec::new(),
            rows: Vec::new(),
            partial,
        };
        for line in text.lines() {
            if line.starts_with('#') {
                assert!(
                    log.rows.is_empty(),
                    "{}: a # line after request lines: {line}",
                    path.display()
                );
                log.header.push(line.to_string());
            } else {
                log.rows
                    .push(line.split('\t').map(str::to_string).collect::<Vec<_>>());
            }
        }
        log
    }

    /// The rows whose query string carries `n=<n>`.
    fn tagged(&self, n: u32) -> Vec<&Vec<String>> {
        let tag = format!("n={n}");
        self.rows
            .iter()
            .filter(|r| r.get(QUERY).is_some_and(|q| q.split('&').any(|p| p == tag)))
            .collect()
    }

    /// The one row tagged `n=<n>`.
    fn one(&self, n: u32) -> &Vec<String> {
        let rows = self.tagged(n);
        assert_eq!(rows.len(), 1, "lines tagged n={n}: {rows:?}");
        rows[0]
    }

    fn position(&self, n: u32) -> usize {
        let tag = format!("n={n}");
        self.rows
            .iter()
            .position(|r| r[QUERY].split('&').any(|p| p == tag))
            .unwrap()
    }
}

/// The header is CloudFront's: `#Version: 1.0`, then `#Fields:` and the 33 names.
fn assert_cloudfront_header(log: &Log, path: &Path) {
    assert_eq!(log.header.len(), 2, "{}: {:?}", path.display(), log.header);
    assert_eq!(log.header[0], "#Version: 1.0");
    let names: Vec<&str> = log.header[1].split(' ').collect();
    assert_eq!(names[0], "#Fields:");
    assert_eq!(&names[1..], &CLOUDFRONT_FIELDS[..]);
}

/// Every line is complete and has 33 tab-separated fields, none empty (empty is `-`),
/// no spaces.
fn assert_well_formed(log: &Log) {
    assert!(!log.partial, "the file ends in the middle of a line");
    for r in &log.rows {
        assert_eq!(r.len(), FIELD_COUNT, "{r:?}");
        assert!(r.iter().all(|f| !f.is_empty() && !f.contains(' ')), "{r:?}");
    }
}

/// `date` and `time` are `YYYY-MM-DD` and `HH:MM:SS` in UTC, within `[from, to]` (to the
/// second).
fn assert_time_between(r: &[String], from: SystemTime, to: SystemTime) {
    let (d, t) = (&r[DATE], &r[TIME]);
    let digits_at = |s: &str, sep: char, seps: &[usize]| {
        s.char_indices().all(|(i, c)| {
            if seps.contains(&i) {
                c == sep
            } else {
                c.is_ascii_digit()
            }
        })
    };
    assert!(d.len() == 10 && digits_at(d, '-', &[4, 7]), "date {d}");
    assert!(t.len() == 8 && digits_at(t, ':', &[2, 5]), "time {t}");
    let at = humantime::parse_rfc3339(&format!("{d}T{t}Z")).unwrap();
    let slack = Duration::from_secs(1);
    assert!(
        at + slack >= from && at <= to + slack,
        "logged {d} {t} is not between {} and {}",
        humantime::format_rfc3339_seconds(from),
        humantime::format_rfc3339_seconds(to)
    );
}

/// A seconds field: digits, a dot, three decimals.
fn seconds(v: &str) -> f64 {
    let (whole, frac) = v.split_once('.').unwrap_or_else(|| panic!("seconds {v}"));
    assert!(
        whole.chars().all(|c| c.is_ascii_digit()) && !whole.is_empty(),
        "{v}"
    );
    assert!(
        frac.len() == 3 && frac.chars().all(|c| c.is_ascii_digit()),
        "{v}"
    );
    v.parse().unwrap()
}

fn num(v: &str) -> u64 {
    v.parse().unwrap_or_else(|_| panic!("not a number: {v}"))
}

/// One request on a fresh connection, like the harness's `request`, also returning the
/// viewer's source port.
async fn send(
    addr: SocketAddr,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> (Resp, u16) {
    tokio::time::timeout(WAIT, async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let port = stream.local_addr().unwrap().port();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut b = Request::builder()
            .method(method)
            .uri(target)
            .header("host", host);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        let resp = sender
            .send_request(b.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| e.to_string());
        (
            Resp {
                status: parts.status,
                headers: parts.headers,
                body,
            },
            port,
        )
    })
    .await
    .expect("the edge answered within the test's time limit")
}

/// The origin behind the logged distributions.
async fn site_origin() -> Origin {
    Origin::start(|seen| {
        let path = seen.target.split('?').next().unwrap_or("");
        match path {
            "/missing" => response(
                404,
                &[
                    ("content-type", "text/plain"),
                    ("cache-control", "max-age=60"),
                ],
                b"no such object",
            ),
            "/index.html" => ok(
                &pattern(INDEX_LEN, 3),
                &[
                    ("content-type", "text/html; charset=utf-8"),
                    ("cache-control", "max-age=600"),
                ],
            ),
            "/slow" => {
                // 4 MB at ~64 KB per 40 ms: far longer than the viewer stays.
                let mut steps = vec![Step::Write(head_with_length(
                    SLOW_LEN,
                    &[
                        ("content-type", "application/octet-stream"),
                        ("cache-control", "max-age=600"),
                    ],
                ))];
                for piece in pattern(SLOW_LEN, 9).chunks(64 * 1024) {
                    steps.push(Step::Write(piece.to_vec()));
                    steps.push(Step::Sleep(Duration::from_millis(40)));
                }
                steps
            }
            _ => ok(
                format!("object {path}").as_bytes(),
                &[
                    ("content-type", "text/plain"),
                    ("cache-control", "max-age=600"),
                ],
            ),
        }
    })
    .await
}

/// A port with nothing listening.
fn dead_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A config with distribution `site` (alias www.example.com) logging to logs/site.log,
/// and `dead` (an origin nobody listens on) logging to logs/dead.log.
fn logged_config(dir: &Path, origin: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "[[distribution]]\nid = \"site\"\naliases = [\"www.example.com\"]\nlogging = {{ enabled = true, file = \"logs/site.log\" }}\n[[distribution.origin]]\nurl = \"{origin}\"\n\n\
             [[distribution]]\nid = \"dead\"\nlogging = {{ enabled = true, file = \"logs/dead.log\" }}\n[[distribution.origin]]\nurl = \"http://{}\"\nconnect_timeout = 1\nconnect_attempts = 1\n",
            dead_port()
        ),
    )
}

/// SIGTERM, and the edge exits 0 within 15 s.
fn stop(mut edge: Edge) {
    edge.signal(libc::SIGTERM);
    let code = edge.wait_exit(Duration::from_secs(15));
    assert_eq!(
        code,
        Some(0),
        "exit after SIGTERM; stderr:\n{}",
        edge.stderr()
    );
}

/// Polls (bounded by `within`) until `path` has a request line for which `f` holds.
async fn wait_for_line(path: &Path, within: Duration, f: impl Fn(&[String]) -> bool) -> bool {
    let start = Instant::now();
    loop {
        let log = Log::read(path);
        if log.rows.iter().any(|r| r.len() == FIELD_COUNT && f(r)) {
            return true;
        }
        if start.elapsed() >= within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const FIREFOX_LOGGED: &str =
    "Mozilla/5.0%20(X11;%20Linux%20x86_64;%20rv:128.0)%20Gecko/20100101%20Firefox/128.0";
const UNICODE_AGENT: &str = "\u{dc}n\u{ef}c\u{f6}de Agent/1.0 (\u{1F680} rocket)";
const UNICODE_AGENT_LOGGED: &str = "%C3%9Cn%C3%AFc%C3%B6de%20Agent/1.0%20(%F0%9F%9A%80%20rocket)";
const REFERER_SENT: &str = "https://ref.example/from page?x=1";
const REFERER_LOGGED: &str = "https://ref.example/from%20page?x=1";

/// What `varied_traffic` did.
struct Traffic {
    site_log: PathBuf,
    dead_log: PathBuf,
    /// Source port of every request, by tag.
    ports: Vec<(u32, u16)>,
    /// X-Cache of every request, by tag.
    x_cache: Vec<(u32, String)>,
    started: SystemTime,
    finished: SystemTime,
}

/// A varied set of requests (each tagged with `n=<k>` in its query string) to `site`
/// and `dead`, then SIGTERM: the edge must exit 0.
async fn varied_traffic(dir: &Path) -> Traffic {
    let origin = site_origin().await;
    let cfg = logged_config(dir, &origin.url());
    let edge = Edge::with_config(&cfg, dir);
    let started = SystemTime::now();
    let mut ports = Vec::new();
    let mut x_cache = Vec::new();
    let mut go = async |n: u32, method: &str, host: &str, target: &str, h: &[(&str, &str)]| {
        let (r, port) = send(edge.addr, method, host, target, h).await;
        ports.push((n, port));
        x_cache.push((n, r.x_cache().to_string()));
        r
    };
    let index = pattern(INDEX_LEN, 3);
    let ua = [("user-agent", FIREFOX), ("referer", REFERER_SENT)];
    let r = go(1, "GET", "site.cdn.test", "/index.html?n=1", &ua).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "Miss from cairn"));
    assert_eq!(r.bytes(), &index[..]);
    let r = go(2, "GET", "www.example.com", "/index.html?n=2", &ua).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "Hit from cairn"));
    assert_eq!(r.bytes(), &index[..]);
    let r = go(3, "GET", "site.cdn.test", "/missing?n=3", &[]).await;
    assert_eq!(r.status, 404);
    let r = go(4, "HEAD", "site.cdn.test", "/index.html?n=4", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "Hit from cairn"));
    assert!(r.bytes().is_empty());
    let r = go(5, "HEAD", "www.example.com", "/head-only.txt?n=5", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "Miss from cairn"));
    let odd = [("user-agent", UNICODE_AGENT)];
    let r = go(6, "GET", "site.cdn.test", "/unicode.txt?n=6", &odd).await;
    assert_eq!(r.status, 200);
    let xff = [("x-forwarded-for", "203.0.113.7, 198.51.100.1")];
    let r = go(7, "GET", "site.cdn.test", "/xff.txt?n=7", &xff).await;
    assert_eq!(r.status, 200);
    let target = "/a%20b.txt?q=hello%20world&x=%2F&n=8";
    let r = go(8, "GET", "site.cdn.test", target, &[]).await;
    assert_eq!(r.status, 200);
    let r = go(9, "GET", "dead.cdn.test", "/down?n=9", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (502, "Error from cairn"));
    let finished = SystemTime::now();
    stop(edge);
    Traffic {
        site_log: dir.join("logs/site.log"),
        dead_log: dir.join("logs/dead.log"),
        ports,
        x_cache,
        started,
        finished,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudfront_fields_for_varied_requests() {
    let dir = tempfile::tempdir().unwrap();
    let t = varied_traffic(dir.path()).await;
    let site = Log::read(&t.site_log);
    let dead = Log::read(&t.dead_log);
    assert_cloudfront_header(&site, &t.site_log);
    assert_cloudfront_header(&dead, &t.dead_log);
    assert_well_formed(&site);
    assert_well_formed(&dead);
    assert_eq!(site.rows.len(), 8, "one line per request to site");
    assert_eq!(dead.rows.len(), 1, "one line per request to dead");
    for r in site.rows.iter().chain(&dead.rows) {
        assert_time_between(r, t.started, t.finished);
        assert_eq!(r[LOCATION], "test-edge");
        assert_eq!(r[C_IP], "127.0.0.1");
        assert_eq!(r[PROTOCOL], "http");
        assert_eq!(r[PROTOCOL_VERSION], "HTTP/1.1");
        assert_eq!(r[COOKIE], "-");
        assert_eq!((&*r[SSL_PROTOCOL], &*r[SSL_CIPHER]), ("-", "-"));
        assert_eq!((&*r[FLE_STATUS], &*r[FLE_FIELDS]), ("-", "-"));
        assert_eq!((&*r[RANGE_START], &*r[RANGE_END]), ("-", "-"));
        let id = &r[REQUEST_ID];
        assert_eq!(id.len(), 56, "{id}");
        assert!(id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert!(seconds(&r[TTFB]) <= seconds(&r[TIME_TAKEN]), "{r:?}");
        assert!(num(&r[CS_BYTES]) > 30, "{r:?}");
        // The tag's request: its source port, and a result type that agrees with X-Cache.
        let n: u32 = r[QUERY]
            .split('&')
            .find_map(|p| p.strip_prefix("n="))
            .unwrap()
            .parse()
            .unwrap();
        let port = t.ports.iter().find(|(k, _)| *k == n).unwrap().1;
        assert_eq!(num(&r[C_PORT]), u64::from(port), "c-port of n={n}");
        let xc = &t.x_cache.iter().find(|(k, _)| *k == n).unwrap().1;
        assert_eq!(format!("{} from cairn", r[RESULT]), *xc, "n={n}");
        assert_eq!(r[RESPONSE_RESULT], r[RESULT], "n={n}");
    }
    let mut ids: Vec<&str> = site.rows.iter().map(|r| r[REQUEST_ID].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), site.rows.len(), "request ids are unique");

    // The first request, field by field.
    let r = site.one(1);
    assert_eq!(r[METHOD], "GET");
    assert_eq!(r[HOST], "site.cdn.test");
    assert_eq!(r[HOST_HEADER], "site.cdn.test");
    assert_eq!(r[STEM], "/index.html");
    assert_eq!(r[QUERY], "n=1");
    assert_eq!(r[STATUS], "200");
    assert_eq!(r[REFERER], REFERER_LOGGED);
    assert_eq!(r[USER_AGENT], FIREFOX_LOGGED);
    assert_eq!(r[RESULT], "Miss");
    assert_eq!(r[DETAILED], "Miss");
    assert_eq!(r[FORWARDED_FOR], "-");
    assert_eq!(
        num(&r[C_PORT]),
        u64::from(t.ports[0].1),
        "the viewer's source port"
    );
    assert_eq!(r[CONTENT_TYPE], "text/html;%20charset=utf-8");
    assert_eq!(num(&r[CONTENT_LEN]), INDEX_LEN as u64);
    let sc = num(&r[SC_BYTES]);
    assert!(
        sc > INDEX_LEN as u64 + 100 && sc < INDEX_LEN as u64 + 2_000,
        "sc-bytes {sc}: body and headers"
    );

    // The same object again, through the alias: a Hit, logged after the Miss.
    let r = site.one(2);
    assert!(site.position(1) < site.position(2));
    assert_eq!(r[RESULT], "Hit");
    assert_eq!(r[DETAILED], "Hit");
    assert_eq!(r[STATUS], "200");
    assert_eq!(r[HOST], "site.cdn.test", "cs(Host) is the assigned domain");
    assert_eq!(r[HOST_HEADER], "www.example.com", "x-host-header as sent");
    assert_eq!(r[STEM], "/index.html");
    assert_eq!(num(&r[CONTENT_LEN]), INDEX_LEN as u64);
    assert!(num(&r[SC_BYTES]) > INDEX_LEN as u64);

    // A 404 from the origin.
    let r = site.one(3);
    assert_eq!(
        (&*r[METHOD], &*r[STEM], &*r[STATUS]),
        ("GET", "/missing", "404")
    );
    assert_eq!(r[CONTENT_TYPE], "text/plain");
    assert_eq!(num(&r[CONTENT_LEN]), b"no such object".len() as u64);
    assert_eq!((&*r[REFERER], &*r[USER_AGENT]), ("-", "-"));

    // HEAD: no body bytes sent, the Content-Length still logged.
    let r = site.one(4);
    assert_eq!(
        (&*r[METHOD], &*r[STATUS], &*r[RESULT]),
        ("HEAD", "200", "Hit")
    );
    assert_eq!(num(&r[CONTENT_LEN]), INDEX_LEN as u64);
    let sc = num(&r[SC_BYTES]);
    assert!(sc > 50 && sc < 2_000, "a HEAD sends headers only: {sc}");
    let r = site.one(5);
    assert_eq!(
        (&*r[METHOD], &*r[STATUS], &*r[RESULT]),
        ("HEAD", "200", "Miss")
    );
    assert_eq!(r[HOST_HEADER], "www.example.com");
    assert_eq!(r[STEM], "/head-only.txt");

    // A user agent with spaces and non-ASCII: percent-encoded, byte by byte.
    assert_eq!(site.one(6)[USER_AGENT], UNICODE_AGENT_LOGGED);

    // The viewer's X-Forwarded-For is logged; c-ip stays the connection's address.
    let r = site.one(7);
    assert_eq!(r[FORWARDED_FOR], "203.0.113.7,%20198.51.100.1");
    assert_eq!(r[C_IP], "127.0.0.1");

    // Percent-escapes in the path and the query are logged as sent, their % encoded.
    let r = site.one(8);
    assert_eq!(r[STEM], "/a%2520b.txt");
    assert_eq!(r[QUERY], "q=hello%2520world&x=%252F&n=8");

    // The dead origin, in the other distribution's log.
    let r = dead.one(9);
    assert_eq!(r[HOST], "dead.cdn.test");
    assert_eq!(r[HOST_HEADER], "dead.cdn.test");
    assert_eq!((&*r[STEM], &*r[STATUS]), ("/down", "502"));
    assert_eq!(r[RESULT], "Error");
    assert_eq!(r[DETAILED], "OriginConnectError");
    assert_eq!(r[CONTENT_TYPE], "text/plain;%20charset=utf-8");
    assert!(num(&r[CONTENT_LEN]) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaccess_reads_the_edge_log() {
    match goaccess_available("edge_logs::goaccess_reads_the_edge_log") {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => panic!("{e}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let t = varied_traffic(dir.path()).await;
    for (path, lines) in [(&t.site_log, 8), (&t.dead_log, 1)] {
        assert_eq!(Log::read(path).rows.len(), lines);
        let report = goaccess_check(path).unwrap();
        assert_eq!(
            report.total_requests,
            lines as u64,
            "{}: {report:?}",
            path.display()
        );
        assert_eq!(report.valid_requests, lines as u64, "{report:?}");
        assert_eq!(report.failed_requests, 0, "{report:?}");
        assert!(report.invalid_lines.is_empty(), "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_hanging_up_mid_body_is_logged_000() {
    let origin = site_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = logged_config(dir.path(), &origin.url());
    let edge = Edge::with_config(&cfg, dir.path());
    let log = dir.path().join("logs/site.log");

    let mut s = TcpStream::connect(edge.addr).await.unwrap();
    let port = s.local_addr().unwrap().port();
    s.write_all(b"GET /slow?n=1 HTTP/1.1\r\nhost: site.cdn.test\r\nuser-agent: quitter\r\n\r\n")
        .await
        .unwrap();
    // The head and a little of the body, then hang up.
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                if got.len() > p + 4 + 1_000 {
                    break;
                }
            }
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the edge closed early");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the head and some body within the time limit");
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert!(
        got.len() < SLOW_LEN / 2,
        "the viewer left well before the end"
    );
    drop(s);
    let hung_up = Instant::now();

    let found = wait_for_line(&log, Duration::from_secs(10), |r| r[STEM] == "/slow").await;
    assert!(
        found,
        "no line for the hung-up request; stderr:\n{}",
        edge.stderr()
    );
    let waited = hung_up.elapsed();
    let l = Log::read(&log);
    assert_well_formed(&l);
    let r = l.one(1);
    assert_eq!(r[STATUS], "000", "{r:?}");
    assert_eq!(r[METHOD], "GET");
    assert_eq!(r[USER_AGENT], "quitter");
    assert_eq!(num(&r[C_PORT]), u64::from(port));
    assert_eq!(num(&r[CONTENT_LEN]), SLOW_LEN as u64);
    assert!(num(&r[SC_BYTES]) < SLOW_LEN as u64, "{r:?}");
    // CloudFront: Error as the result, what it would have been as the response result,
    // ClientCommError as the detail.
    assert_eq!(r[RESULT], "Error", "{r:?}");
    assert_eq!(r[RESPONSE_RESULT], "Miss", "{r:?}");
    assert_eq!(r[DETAILED], "ClientCommError", "{r:?}");
    assert!(
        waited < Duration::from_secs(5),
        "the hang-up was logged {waited:?} later"
    );

    // A complete request afterwards is logged with its status, not 000.
    let r = get(edge.addr, "site.cdn.test", "/after?n=2").await;
    assert_eq!(r.status, 200);
    stop(edge);
    let l = Log::read(&log);
    assert_eq!(l.one(2)[STATUS], "200");
    if goaccess_available("edge_logs::a_viewer_hanging_up_mid_body_is_logged_000") == Ok(true) {
        let report = goaccess_check(&log).unwrap();
        assert_eq!(report.total_requests, l.rows.len() as u64, "{report:?}");
        assert_eq!(report.failed_requests, 0, "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_appear_promptly_and_all_are_there_after_sigterm() {
    let origin = site_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = logged_config(dir.path(), &origin.url());
    let edge = Edge::with_config(&cfg, dir.path());
    let log = dir.path().join("logs/site.log");

    // The header is there as soon as the edge is up, before any request.
    assert_cloudfront_header(&Log::read(&log), &log);

    let r = get(edge.addr, "site.cdn.test", "/prompt.txt?n=0").await;
    assert_eq!(r.status, 200);
    let answered = Instant::now();
    let found = wait_for_line(&log, Duration::from_secs(2), |r| {
        r[QUERY] == "n=0" && r[STATUS] == "200"
    })
    .await;
    assert!(
        found,
        "the line was not in the file 2 s after the response; stderr:\n{}",
        edge.stderr()
    );
    eprintln!("line written {:?} after the response", answered.elapsed());

    // A burst, then SIGTERM straight away: every line is there once the edge exits.
    const BURST: u32 = 30;
    let mut tasks = Vec::new();
    for n in 1..=BURST {
        let addr = edge.addr;
        tasks.push(tokio::spawn(async move {
            let target = format!("/burst/{}.txt?n={n}", n % 5);
            request(addr, "GET", "www.example.com", &target, &[], b"").await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    stop(edge);
    let l = Log::read(&log);
    assert_cloudfront_header(&l, &log);
    assert_well_formed(&l);
    assert_eq!(l.rows.len(), BURST as usize + 1, "every request, once");
    for n in 0..=BURST {
        assert_eq!(l.one(n)[STATUS], "200");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_after_rename_starts_a_new_file() {
    let origin = site_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = logged_config(dir.path(), &origin.url());
    let edge = Edge::with_config(&cfg, dir.path());
    let log = dir.path().join("logs/site.log");
    let rotated = dir.path().join("logs/site.log.1");

    // Before: n=1 is on disk already, n=2 may still be buffered when the file is renamed.
    assert_eq!(
        get(edge.addr, "site.cdn.test", "/a.txt?n=1").await.status,
        200
    );
    assert!(wait_for_line(&log, WAIT, |r| r[QUERY] == "n=1").await);
    assert_eq!(
        get(edge.addr, "site.cdn.test", "/b.txt?n=2").await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::rename(&log, &rotated).unwrap();
    edge.signal(libc::SIGHUP);
    eventually("a new log file with the header after SIGHUP", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.starts_with(HEADER))
    })
    .await;
    assert_cloudfront_header(&Log::read(&log), &log);

    // After: new requests go to the new file only.
    for n in 3..=5 {
        let target = format!("/c.txt?n={n}");
        assert_eq!(get(edge.addr, "www.example.com", &target).await.status, 200);
    }
    assert!(wait_for_line(&log, WAIT, |r| r[QUERY] == "n=5").await);

    // A SIGHUP without a rename keeps appending to the same file, header once.
    edge.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get(edge.addr, "site.cdn.test", "/d.txt?n=6").await.status,
        200
    );
    stop(edge);

    let old = Log::read(&rotated);
    assert_cloudfront_header(&old, &rotated);
    assert_well_formed(&old);
    assert_eq!(
        old.rows.len(),
        2,
        "the renamed file keeps the earlier lines only"
    );
    assert_eq!(old.one(1)[STEM], "/a.txt");
    assert_eq!(old.one(2)[STEM], "/b.txt");
    let new = Log::read(&log);
    assert_cloudfront_header(&new, &log);
    assert_well_formed(&new);
    assert_eq!(new.rows.len(), 4, "{:?}", new.rows);
    for n in 3..=6 {
        assert_eq!(new.one(n)[STATUS], "200");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_hanging_up_before_the_head_is_logged_000() {
    let origin = Origin::start(|_| {
        let mut steps = vec![Step::Sleep(Duration::from_millis(1500))];
        steps.extend(ok(b"late", &[("cache-control", "max-age=600")]));
        steps
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = logged_config(dir.path(), &origin.url());
    let edge = Edge::with_config(&cfg, dir.path());
    let log = dir.path().join("logs/site.log");
    let mut s = TcpStream::connect(edge.addr).await.unwrap();
    let port = s.local_addr().unwrap().port();
    s.write_all(
        b"GET /early?n=1 HTTP/1.1\r\nhost: www.example.com\r\nreferer: https://r.example/\r\n\r\n",
    )
    .await
    .unwrap();
    // Hang up while the edge waits for the origin's head.
    eventually("the origin request", || origin.count("/early") == 1).await;
    drop(s);
    let found = wait_for_line(&log, Duration::from_secs(5), |r| r[STEM] == "/early").await;
    assert!(
        found,
        "no line for the hung-up request; stderr:\n{}",
        edge.stderr()
    );
    let l = Log::read(&log);
    assert_well_formed(&l);
    let r = l.one(1);
    assert_eq!(r[STATUS], "000", "{r:?}");
    assert_eq!((&*r[METHOD], &*r[HOST]), ("GET", "site.cdn.test"));
    assert_eq!(r[HOST_HEADER], "www.example.com");
    assert_eq!(r[REFERER], "https://r.example/");
    assert_eq!(num(&r[C_PORT]), u64::from(port));
    assert_eq!(num(&r[SC_BYTES]), 0, "nothing was sent");
    assert_eq!(r[RESULT], "Error");
    assert_eq!(r[DETAILED], "ClientCommError");
    assert!(seconds(&r[TIME_TAKEN]) > 0.0);
    stop(edge);
    assert_eq!(Log::read(&log).rows.len(), 1, "logged once");
}
