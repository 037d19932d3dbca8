//! A request's access log line, built in one place: [`LogFacts`] (what the log needs of
//! the viewer's request, captured before the request is consumed) and [`Ending`] (how the
//! response ended) make one [`LogEntry`] in CloudFront's standard format, whether the
//! response was sent, failed, or the viewer hung up before it existed.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, Method, Request};
use hyper::body::Incoming;

use crate::access_log::{new_request_id, LogEntry};
use crate::edge::runtime::{DistRuntime, Runtime};
use crate::result::ResultType;

/// What the access log needs from the viewer's request.
pub struct LogFacts {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    /// The target host (authority or Host header), as the viewer sent it.
    pub host_header: String,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    pub forwarded_for: Option<String>,
    pub version: &'static str,
    /// cs-bytes: the request's size as it came, head and body.
    pub request_bytes: u64,
}

/// How the response ended, as the log tells it.
pub struct Ending {
    /// None: the viewer hung up before the response was complete (logged as `000`).
    pub status: Option<u16>,
    /// x-edge-result-type.
    pub result: ResultType,
    /// x-edge-response-result-type.
    pub response_result: ResultType,
    /// x-edge-detailed-result-type.
    pub detailed: &'static str,
    /// sc-bytes: headers and body sent.
    pub sent_bytes: u64,
    pub time_taken: Duration,
    pub time_to_first_byte: Duration,
    pub content_type: Option<String>,
    pub content_len: Option<u64>,
}

impl Ending {
    /// A viewer that hung up before its response existed.
    pub fn hung_up_early(time_taken: Duration) -> Self {
        Ending {
            status: None,
            result: ResultType::Error,
            response_result: ResultType::Error,
            detailed: "ClientCommError",
            sent_bytes: 0,
            time_taken,
            time_to_first_byte: Duration::ZERO,
            content_type: None,
            content_len: None,
        }
    }
}

pub fn header_str(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A header's value for the log, non-ASCII bytes included (`to_str` refuses them, which
/// would log a non-ASCII User-Agent as `-`); the log percent-encodes them anyway.
fn header_text(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<String> {
    h.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The target host: the request-target's authority when it has one (absolute-form, or
/// HTTP/2's :authority), else the Host header (RFC 9112 §3.2.2). The cache key takes the
/// same one, so routing and keying never disagree.
pub fn host_of<B>(req: &Request<B>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| header_str(req.headers(), HOST))
}

impl LogFacts {
    pub fn of(req: &Request<Incoming>) -> Self {
        let h = req.headers();
        let header_bytes: usize = h.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
        let body_len = header_str(h, CONTENT_LENGTH)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
        LogFacts {
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
            host_header: host_of(req).unwrap_or_default(),
            referer: header_text(h, http::header::REFERER),
            user_agent: header_text(h, http::header::USER_AGENT),
            forwarded_for: header_text(h, "x-forwarded-for"),
            version: match req.version() {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            },
            request_bytes: (line + header_bytes + 2) as u64 + body_len,
        }
    }
}

/// The log entry of a request of `dist` from `peer`.
pub fn entry(
    rt: &Runtime,
    dist: &DistRuntime,
    facts: &LogFacts,
    peer: SocketAddr,
    ending: Ending,
) -> LogEntry {
    LogEntry {
        time: SystemTime::now(),
        edge_location: rt.edge_name().to_string(),
        sc_bytes: ending.sent_bytes,
        client_ip: peer.ip(),
        client_port: peer.port(),
        method: facts.method.to_string(),
        host: dist.assigned_domain.clone(),
        uri_stem: facts.path.clone(),
        query: facts.query.clone(),
        status: ending.status,
        referer: facts.referer.clone(),
        user_agent: facts.user_agent.clone(),
        cookie: None,
        result_type: ending.result.as_str().to_string(),
        request_id: new_request_id(),
        host_header: facts.host_header.clone(),
        protocol: "http".to_string(),
        cs_bytes: facts.request_bytes,
        time_taken: ending.time_taken,
        time_to_first_byte: ending.time_to_first_byte,
        forwarded_for: facts.forwarded_for.clone(),
        ssl_protocol: None,
        ssl_cipher: None,
        response_result_type: ending.response_result.as_str().to_string(),
        protocol_version: facts.version.to_string(),
        detailed_result_type: ending.detailed.to_string(),
        content_type: ending.content_type,
        content_len: ending.content_len,
        range_start: None,
        range_end: None,
    }
}
