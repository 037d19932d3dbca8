//! Harness for the edge tests: a scriptable origin server on 127.0.0.1 that records every
//! request it receives, the real `cairn` binary started on port 0, and a plain HTTP/1.1
//! viewer client. Every wait here is bounded.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest any single test wait may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the origin does for one request.
#[derive(Debug, Clone)]
pub enum Step {
    Write(Vec<u8>),
    Sleep(Duration),
    /// Close the connection now.
    Close,
}

pub type Handler = Arc<dyn Fn(&Seen) -> Vec<Step> + Send + Sync>;

/// A scripted origin server.
pub struct Origin {
    pub addr: SocketAddr,
    /// Serves https (see [`Origin::start_tls`]).
    tls: bool,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    pub async fn start(handler: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static) -> Origin {
        Origin::start_with(None, handler).await
    }

    /// The same scripted origin behind TLS with the given server configuration.
    pub async fn start_tls(
        tls: Arc<rustls::ServerConfig>,
        handler: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> Origin {
        Origin::start_with(Some(tokio_rustls::TlsAcceptor::from(tls)), handler).await
    }

    /// The scripted origin on a given address (e.g. a port an edge was refused on
    /// earlier); panics if the address cannot be bound.
    pub async fn start_at(
        addr: SocketAddr,
        handler: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> Origin {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("cannot bind the origin to {addr}: {e}"));
        Origin::serve(listener, None, handler)
    }

    async fn start_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        handler: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Origin::serve(listener, tls, handler)
    }

    fn serve(
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        handler: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> Origin {
        let is_tls = tls.is_some();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let s2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (h, s) = (handler.clone(), s2.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(60), async move {
                        match tls {
                            None => serve_conn(stream, h, s).await,
                            Some(acceptor) => {
                                // A failed handshake (an edge that refuses the
                                // certificate) just ends the connection.
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    serve_conn(stream, h, s).await
                                }
                            }
                        }
                    })
                    .await;
                });
            }
        });
        Origin {
            addr,
            tls: is_tls,
            seen,
            task,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests whose target starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.target.starts_with(prefix))
            .count()
    }
}

async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    handler: Handler,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut buf = Vec::new();
    loop {
        // Read one request head (bounded).
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > 256 * 1024 {
                return;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        let body = if chunked {
            // A body whose last chunk never comes is no request: nothing is recorded.
            match read_chunked(&mut stream, &mut buf).await {
                Some(b) => b,
                None => return,
            }
        } else {
            let len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < len {
                let mut chunk = [0u8; 8192];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            buf.drain(..len).collect()
        };
        let req = Seen {
            method,
            target,
            headers,
            body,
        };
        seen.lock().unwrap().push(req.clone());
        for step in handler(&req) {
            match step {
                Step::Write(b) => {
                    if stream.write_all(&b).await.is_err() || stream.flush().await.is_err() {
                        return;
                    }
                }
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Close => return,
            }
        }
    }
}

/// Reads a chunked body (RFC 9112 §7.1; no trailers expected) from `buf` and then
/// `stream`, consuming it from `buf`; `None` when the connection ends or errs before the
/// last chunk, or the framing is malformed.
async fn read_chunked<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                break p;
            }
            fill(stream, buf).await?;
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).to_string();
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // The empty line that ends the (trailer-less) message.
            while buf.len() < 2 {
                fill(stream, buf).await?;
            }
            buf.drain(..2);
            return Some(body);
        }
        while buf.len() < size + 2 {
            fill(stream, buf).await?;
        }
        body.extend(buf.drain(..size));
        buf.drain(..2);
    }
}

/// Appends what the next read brings; `None` at the end of the stream or on an error.
async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// A complete response with Content-Length.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<Step> {
    let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    vec![Step::Write(bytes)]
}

/// A 304 with the given headers (no body, no Content-Length).
pub fn not_modified(headers: &[(&str, &str)]) -> Vec<Step> {
    let mut out = "HTTP/1.1 304 Not Modified\r\n".to_string();
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    vec![Step::Write(out.into_bytes())]
}

pub fn ok(body: &[u8], headers: &[(&str, &str)]) -> Vec<Step> {
    response(200, headers, body)
}

/// Head of a response whose body the caller scripts (with `Content-Length: len`).
pub fn head_with_length(len: usize, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A running `cairn serve`.
pub struct Edge {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub log_path: PathBuf,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn cairn_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cairn")
}

impl Edge {
    /// `cairn serve --origin ORIGIN` on ephemeral ports with its cache in `dir/cache`.
    pub fn quick(origin: &str, dir: &Path, extra: &[&str]) -> Edge {
        let cache = dir.join("cache");
        let mut args = vec![
            "serve",
            "--origin",
            origin,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--capacity",
            "256MiB",
            "--cache-dir",
        ];
        let cache_s = cache.to_str().unwrap().to_string();
        args.push(&cache_s);
        args.extend_from_slice(extra);
        Edge::spawn(&args, dir)
    }

    /// `cairn serve --config FILE`.
    pub fn with_config(file: &Path, dir: &Path) -> Edge {
        Edge::spawn(&["serve", "--config", file.to_str().unwrap()], dir)
    }

    /// Starts the binary and waits for its "serving on" line.
    pub fn spawn(args: &[&str], dir: &Path) -> Edge {
        let log_path = dir.join(format!("edge-{}.log", std::process::id()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut child = Command::new(cairn_bin())
            .args(args)
            .env("RUST_LOG", "cairn=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let line = match rx.recv_timeout(WAIT) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "cairn did not start: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        // "cairn: serving on http://A (admin on http://B)"
        let addrs: Vec<SocketAddr> = line
            .split("http://")
            .skip(1)
            .filter_map(|s| s.split([' ', ')']).next())
            .filter_map(|s| s.parse().ok())
            .collect();
        assert_eq!(addrs.len(), 2, "unexpected ready line: {line}");
        Edge {
            child,
            addr: addrs[0],
            admin: addrs[1],
            log_path,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) takes only integers, so it has no memory-safety preconditions; the
        // pid is our child, still held (not reaped) by `self.child`, so it cannot have been
        // reused by another process.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGKILL, and reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// A viewer's response: the body is `Err` when the connection ended before the body did.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Result<Bytes, String>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("")
    }

    pub fn bytes(&self) -> &[u8] {
        self.body.as_ref().expect("complete body")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.bytes()).to_string()
    }
}

/// One request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    try_request(addr, method, host, target, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

/// [`request`] that returns an error instead of panicking when the edge cannot be
/// reached, the request fails or the time limit passes (for tests that kill the edge
/// under load). A body that ends early is still `Ok` with `body: Err`.
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Resp, String> {
    tokio::time::timeout(WAIT, async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let mut b = Request::builder()
            .method(method)
            .uri(target)
            .header("host", host);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        let req = b
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| format!("request: {e}"))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| e.to_string());
        Ok(Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {WAIT:?}")))
}

pub async fn get(addr: SocketAddr, host: &str, target: &str) -> Resp {
    request(addr, "GET", host, target, &[], b"").await
}

pub async fn get_with(
    addr: SocketAddr,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Resp {
    request(addr, "GET", host, target, headers, b"").await
}

/// Writes a config file whose listeners use ephemeral ports and whose cache lives in
/// `dir/cache`; `body` adds the distributions.
pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    write_config_with_edge(dir, "", body)
}

/// [`write_config`] with extra `[edge]` keys (`edge_keys`: TOML lines).
pub fn write_config_with_edge(dir: &Path, edge_keys: &str, body: &str) -> PathBuf {
    let path = dir.join("cairn.toml");
    let text = format!(
        "[edge]\nname = \"test-edge\"\ndomain = \"cdn.test\"\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndrain_timeout = 5\n{edge_keys}\n\n[cache]\ndir = \"cache\"\ncapacity = \"256MiB\"\nsegment_size = \"4MiB\"\n\n{body}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Polls `f` (bounded) until it returns true.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < WAIT {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// One viewer connection kept open across requests (HTTP/1.1 keep-alive): a request fails
/// instead of reconnecting, so a success proves the connection survived.
pub struct KeepAlive {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl KeepAlive {
    pub async fn connect(addr: SocketAddr) -> KeepAlive {
        tokio::time::timeout(WAIT, async {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            let conn = tokio::spawn(async move {
                let _ = conn.await;
            });
            KeepAlive { send, conn }
        })
        .await
        .expect("connected within the test's time limit")
    }

    /// A GET on this connection; `Err` when the connection is gone.
    pub async fn get(&mut self, host: &str, target: &str) -> Result<Resp, String> {
        tokio::time::timeout(WAIT, async {
            self.send.ready().await.map_err(|e| e.to_string())?;
            let req = Request::builder()
                .method("GET")
                .uri(target)
                .header("host", host)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = self
                .send
                .send_request(req)
                .await
                .map_err(|e| e.to_string())?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| e.to_string());
            Ok(Resp {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        })
        .await
        .expect("the edge answered within the test's time limit")
    }
}

/// `cairn ARGS…` to completion (bounded): exit code, stdout, stderr.
pub fn run_cairn(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(cairn_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cairn {args:?} did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), out, err)
}

/// An origin answering every request 200 with the body "<target> #<n>" (`n` counts its
/// requests from 1) and the headers `headers` picks for the request (called per request,
/// so dates can be relative to the time of the response).
pub async fn numbered_origin(
    headers: impl Fn(&Seen) -> Vec<(&'static str, String)> + Send + Sync + 'static,
) -> Origin {
    let n = std::sync::atomic::AtomicUsize::new(0);
    Origin::start(move |seen| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let h = headers(seen);
        let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (*n, v.as_str())).collect();
        ok(format!("{} #{i}", seen.target).as_bytes(), &h)
    })
    .await
}

/// How a [`validating_origin`] answers its next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginAnswer {
    /// 200 with the current version, or 304 when If-None-Match names it.
    Serve,
    /// This status with a short body and no caching headers.
    Status(u16),
    /// Wait this long, then close the connection without answering.
    Stall(Duration),
}

/// Controls a [`validating_origin`]: the version it serves, how it answers and how long
/// it waits before answering.
#[derive(Clone)]
pub struct OriginControl(Arc<Mutex<(u32, OriginAnswer, Duration)>>);

impl OriginControl {
    pub fn set_version(&self, v: u32) {
        self.0.lock().unwrap().0 = v;
    }
    pub fn answer(&self, a: OriginAnswer) {
        self.0.lock().unwrap().1 = a;
    }
    pub fn delay(&self, d: Duration) {
        self.0.lock().unwrap().2 = d;
    }
}

/// An origin serving every path with body "<target> v<version>", `ETag: "v<version>"`
/// and the Cache-Control `cc(target, version)`; a request whose If-None-Match names the
/// current ETag gets a 304 (with the same ETag and Cache-Control). Every response carries
/// `Connection: close` and the connection is closed after it, so that no pooled
/// connection outlives the origin: once it is dropped, connections are refused.
pub async fn validating_origin(
    cc: impl Fn(&str, u32) -> String + Send + Sync + 'static,
) -> (Origin, OriginControl) {
    let control = OriginControl(Arc::new(Mutex::new((
        1,
        OriginAnswer::Serve,
        Duration::ZERO,
    ))));
    let c2 = control.clone();
    let origin = Origin::start(move |seen| {
        let (version, answer, delay) = *c2.0.lock().unwrap();
        let mut steps = Vec::new();
        if !delay.is_zero() {
            steps.push(Step::Sleep(delay));
        }
        let etag = format!("\"v{version}\"");
        let cache_control = cc(&seen.target, version);
        match answer {
            OriginAnswer::Stall(d) => {
                steps.push(Step::Sleep(d));
                steps.push(Step::Close);
                return steps;
            }
            OriginAnswer::Status(s) => steps.extend(response(
                s,
                &[("connection", "close")],
                format!("origin error {s}").as_bytes(),
            )),
            OriginAnswer::Serve if seen.header("if-none-match") == Some(etag.as_str()) => steps
                .extend(not_modified(&[
                    ("etag", &etag),
                    ("cache-control", &cache_control),
                    ("connection", "close"),
                ])),
            OriginAnswer::Serve => steps.extend(ok(
                format!("{} v{version}", seen.target).as_bytes(),
                &[
                    ("etag", &etag),
                    ("cache-control", &cache_control),
                    ("connection", "close"),
                ],
            )),
        }
        steps.push(Step::Close);
        steps
    })
    .await;
    (origin, control)
}

/// Starts the edge with one catch-all distribution "t" served by one origin at `url`
/// (`origin_keys`: extra TOML keys of the origin table) whose default behaviour follows
/// CloudFront's rules (`cache_key`: TOML keys of its cache key) and whose paths under
/// `/strict/` follow strict RFC 9111 mode (default_ttl 0) with the same cache key.
pub fn start_two_mode_edge(
    url: &str,
    origin_keys: &str,
    cache_key: &str,
) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[distribution]]\nid = \"t\"\ncatch_all = true\n\
[[distribution.origin]]\nid = \"o\"\nurl = \"{url}\"\n{origin_keys}\n\
[distribution.default_behavior.cache_key]\n{cache_key}\n\
[[distribution.behavior]]\npath_pattern = \"/strict/*\"\ndefault_ttl = 0\n\
[distribution.behavior.cache_key]\n{cache_key}\n"
        ),
    );
    (Edge::with_config(&cfg, dir.path()), dir)
}

/// The last request the origin received whose target starts with `prefix`.
pub fn last_seen(origin: &Origin, prefix: &str) -> Seen {
    origin
        .requests()
        .into_iter()
        .rev()
        .find(|s| s.target.starts_with(prefix))
        .unwrap_or_else(|| panic!("the origin received no request for {prefix}"))
}

/// The requests `origin` received for exactly `target`.
pub fn seen_for(origin: &Origin, target: &str) -> Vec<Seen> {
    origin
        .requests()
        .into_iter()
        .filter(|s| s.target == target)
        .collect()
}

/// The sum of the samples named `name` in a Prometheus exposition whose labels contain
/// every one of `labels`.
pub fn metric_sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name && labels.iter().all(|want| rest.contains(want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// The admin `/metrics` exposition of the edge whose admin listener is `admin`.
pub async fn scrape_metrics(admin: SocketAddr) -> String {
    let r = get(admin, "127.0.0.1", "/metrics").await;
    assert_eq!(r.status, 200, "GET /metrics");
    r.text()
}

/// A loopback port nobody listens on now (for a config that must name its own port, or
/// an origin that is down).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
