//! One viewer request, start to end: route by Host, normalise the path, pick the cache
//! behaviour, form the cache key, then answer from the store (Hit), revalidate a stale
//! object (RefreshHit), or follow a collapsed origin fill (Miss); methods that are not
//! cached pass through. Every response gets `Via` and `X-Cache`, and its access log line
//! is written when its body ends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures_util::stream;
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body as _, Frame};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;

use crate::access_log::{new_request_id, LogEntry};
use crate::body::{self, BoxBody, BoxError};
use crate::cache_key::forward::{forwarded_query, Exchange, Policies};
use crate::cache_key::{cache_key, normalize_path, KeyError, KeyInput};
use crate::collapse::Reader;
use crate::edge::fill::{self, FillHead};
use crate::edge::forward::{Viewer, ViewerRequest};
use crate::edge::respond::{self, decorate};
use crate::edge::router::host_name;
use crate::edge::tracked::{Outcome, Tracked};
use crate::edge::{cached, Edge, ResultType, Runtime};
use crate::httpcache;
use crate::metrics::{Metrics, Refusal, NO_DISTRIBUTION};
use crate::origin::fetch;

/// Longest request target (path and query) the edge accepts; longer ones get 414. hyper
/// refuses request heads beyond its buffer (see `server`) with 431 before this applies.
pub const MAX_TARGET_LEN: usize = 8192;

/// How the request was answered, for headers and the log.
pub(super) struct Answer {
    pub resp: Response<BoxBody>,
    pub result: ResultType,
    /// CloudFront's x-edge-detailed-result-type (e.g. OriginConnectError).
    pub detailed: &'static str,
    pub dist: Option<usize>,
}

impl Answer {
    pub fn new(resp: Response<BoxBody>, result: ResultType, dist: Option<usize>) -> Self {
        Self {
            resp,
            result,
            detailed: result.as_str(),
            dist,
        }
    }
}

/// What the access log needs from the request, captured before the request is consumed.
struct RequestFacts {
    method: Method,
    path: String,
    query: Option<String>,
    host_header: String,
    referer: Option<String>,
    user_agent: Option<String>,
    forwarded_for: Option<String>,
    version: &'static str,
    request_bytes: u64,
}

fn header_str(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<String> {
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

fn facts(req: &Request<Incoming>) -> RequestFacts {
    let h = req.headers();
    let header_bytes: usize = h.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    let body_len = header_str(h, CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    RequestFacts {
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
        request_bytes: (req.method().as_str().len()
            + req.uri().to_string().len()
            + 12
            + header_bytes
            + 2) as u64
            + body_len,
    }
}

/// The target host: the request-target's authority when it has one (absolute-form, or
/// HTTP/2's :authority), else the Host header (RFC 9112 §3.2.2). The cache key takes the
/// same one, so routing and keying never disagree.
fn host_of(req: &Request<Incoming>) -> Option<String> {
    req.uri().authority().map(|a| a.to_string()).or_else(|| {
        req.headers()
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    })
}

/// Answers one viewer request.
pub async fn handle(
    edge: Arc<Edge>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<BoxBody> {
    let started = Instant::now();
    let rt = edge.runtime();
    let facts = facts(&req);
    let mut early = EarlyHangUp {
        metrics: &edge.metrics,
        rt: &rt,
        facts: &facts,
        peer,
        started,
        armed: true,
    };
    let answer = answer(&edge, &rt, req, peer).await;
    early.armed = false;
    drop(early);
    let ttfb = started.elapsed();
    let Answer {
        resp,
        result,
        detailed,
        dist,
    } = answer;
    let dist = dist.and_then(|i| rt.config.distributions.get(i));
    let dist_id = dist.map_or(NO_DISTRIBUTION.to_string(), |d| d.id.clone());
    let log = dist.and_then(|d| {
        rt.logs
            .get(&d.id)
            .map(|h| (h.clone(), d.assigned_domain(&rt.config.edge.domain)))
    });
    let (parts, body) = resp.into_parts();
    let status = parts.status.as_u16();
    let header_bytes: u64 = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().len() + v.len() + 4) as u64)
        .sum::<u64>()
        + 17;
    let content_type = header_str(&parts.headers, CONTENT_TYPE);
    let content_len = header_str(&parts.headers, CONTENT_LENGTH).and_then(|v| v.parse().ok());
    let edge_name = rt.config.edge.name.clone();
    let metrics_edge = edge.clone();
    let tracked = Tracked::new(body, content_len, move |out: Outcome| {
        // Status 000: the viewer hung up before the response was complete. CloudFront then
        // logs x-edge-result-type Error, the response result type the viewer would have
        // had, and ClientCommError as the detail.
        let hung_up = !out.complete && !out.failed;
        let logged_result = if out.failed || hung_up {
            ResultType::Error
        } else {
            result
        };
        metrics_edge
            .metrics
            .request(&dist_id, logged_result, out.body_bytes);
        let Some((log, assigned)) = log else {
            return;
        };
        let result_str = logged_result.as_str();
        let response_result = if out.failed { "Error" } else { result.as_str() };
        log.log(LogEntry {
            time: SystemTime::now(),
            edge_location: edge_name,
            sc_bytes: header_bytes + out.body_bytes,
            client_ip: peer.ip(),
            client_port: peer.port(),
            method: facts.method.to_string(),
            host: assigned,
            uri_stem: facts.path,
            query: facts.query,
            status: if hung_up { None } else { Some(status) },
            referer: facts.referer,
            user_agent: facts.user_agent,
            cookie: None,
            result_type: result_str.to_string(),
            request_id: new_request_id(),
            host_header: facts.host_header,
            protocol: "http".to_string(),
            cs_bytes: facts.request_bytes,
            time_taken: started.elapsed(),
            time_to_first_byte: ttfb,
            forwarded_for: facts.forwarded_for,
            ssl_protocol: None,
            ssl_cipher: None,
            response_result_type: response_result.to_string(),
            protocol_version: facts.version.to_string(),
            detailed_result_type: if out.failed {
                "Error".to_string()
            } else if hung_up {
                "ClientCommError".to_string()
            } else {
                detailed.to_string()
            },
            content_type,
            content_len,
            range_start: None,
            range_end: None,
        });
    });
    Response::from_parts(parts, tracked.boxed_unsync())
}

/// Logs a `000` line when the viewer hangs up before its response exists (hyper then
/// drops `handle`'s future while it waits for the origin, say), so such a request is
/// not missing from the log.
struct EarlyHangUp<'a> {
    metrics: &'a Metrics,
    rt: &'a Runtime,
    facts: &'a RequestFacts,
    peer: SocketAddr,
    started: Instant,
    armed: bool,
}

impl Drop for EarlyHangUp<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (rt, f) = (self.rt, self.facts);
        let Some(d) = rt
            .router
            .route(host_name(&f.host_header))
            .and_then(|i| rt.config.distributions.get(i))
        else {
            self.metrics.request(NO_DISTRIBUTION, ResultType::Error, 0);
            return;
        };
        self.metrics.request(&d.id, ResultType::Error, 0);
        let Some(log) = rt.logs.get(&d.id) else {
            return;
        };
        log.log(LogEntry {
            time: SystemTime::now(),
            edge_location: rt.config.edge.name.clone(),
            client_ip: self.peer.ip(),
            client_port: self.peer.port(),
            method: f.method.to_string(),
            host: d.assigned_domain(&rt.config.edge.domain),
            uri_stem: f.path.clone(),
            query: f.query.clone(),
            status: None,
            referer: f.referer.clone(),
            user_agent: f.user_agent.clone(),
            result_type: "Error".to_string(),
            request_id: new_request_id(),
            host_header: f.host_header.clone(),
            protocol: "http".to_string(),
            cs_bytes: f.request_bytes,
            time_taken: self.started.elapsed(),
            forwarded_for: f.forwarded_for.clone(),
            response_result_type: "Error".to_string(),
            protocol_version: f.version.to_string(),
            detailed_result_type: "ClientCommError".to_string(),
            ..LogEntry::default()
        });
    }
}

async fn answer(
    edge: &Arc<Edge>,
    rt: &Arc<Runtime>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Answer {
    crate::fault::inject(req.headers(), "panic-request");
    let name = &rt.config.edge.name;
    let Some(host) = host_of(&req) else {
        return Answer::new(
            respond::error(
                StatusCode::BAD_REQUEST,
                "The request has no Host header.",
                name,
            ),
            ResultType::Error,
            None,
        );
    };
    let Some(di) = rt.router.route(host_name(&host)) else {
        // No detail: which names this edge serves is nobody's business.
        return Answer::new(
            respond::error(StatusCode::MISDIRECTED_REQUEST, "", name),
            ResultType::Error,
            None,
        );
    };
    let d = &rt.config.distributions[di];
    let err = |status, msg: &str| {
        Answer::new(
            respond::error(status, msg, name),
            ResultType::Error,
            Some(di),
        )
    };
    if !d.enabled {
        return err(StatusCode::FORBIDDEN, "This distribution is disabled.");
    }
    let refuse = |why: Refusal, status, msg: &str| {
        edge.metrics.refused(why);
        err(status, msg)
    };
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > MAX_TARGET_LEN {
        return refuse(
            Refusal::UriTooLong,
            StatusCode::URI_TOO_LONG,
            &format!(
                "The request target is {target_len} bytes long; this edge accepts at most {MAX_TARGET_LEN}."
            ),
        );
    }
    // RFC 9112 §3.2: origin-form ("/path") or absolute-form ("http://host/path");
    // authority-form and asterisk-form name no object.
    if req.uri().scheme().is_none() && !req.uri().path().starts_with('/') {
        return refuse(
            Refusal::BadTarget,
            StatusCode::BAD_REQUEST,
            "The request target must be a path starting with '/' or an absolute URL.",
        );
    }
    let path = match normalize_path(req.uri().path()) {
        Ok(p) => p,
        Err(e) => return refuse(Refusal::BadTarget, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let path_for_behavior = if path == "/" {
        d.default_root_object
            .as_ref()
            .map(|o| format!("/{o}"))
            .unwrap_or(path)
    } else {
        path
    };
    let bi = d
        .behaviors
        .iter()
        .position(|b| b.matches(&path_for_behavior));
    let b = fill::behavior(d, bi);
    if !b.allowed_methods.allows(req.method()) {
        let mut a = err(
            StatusCode::METHOD_NOT_ALLOWED,
            "This distribution does not accept this method for this path.",
        );
        a.resp.headers_mut().insert(
            http::header::ALLOW,
            HeaderValue::from_static(b.allowed_methods.allow_header()),
        );
        return a;
    }
    let keyed = cache_key(&KeyInput {
        distribution: &d.id,
        uri: req.uri(),
        headers: req.headers(),
        policy: &b.cache_key,
        default_root_object: d.default_root_object.as_deref(),
    })
    .and_then(|keyed| {
        let query = forwarded_query(req.uri().query(), keyed.query.as_deref(), Policies::of(b))?;
        Ok((keyed, query))
    });
    let (keyed, query) = match keyed {
        Ok(k) => k,
        Err(e @ KeyError::TooLong { .. }) => {
            return refuse(Refusal::UriTooLong, e.status(), &e.to_string())
        }
        Err(e) => return refuse(Refusal::BadTarget, e.status(), &e.to_string()),
    };
    let asked = ViewerRequest {
        keyed,
        viewer: Viewer {
            ip: peer.ip(),
            forwarded_for: header_str(req.headers(), "x-forwarded-for"),
            via: header_str(req.headers(), http::header::VIA),
        },
        uri: req.uri().clone(),
        query,
    };
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        return pass_through(edge, rt, di, bi, asked, req).await;
    }
    let headers = req.headers().clone();
    drop(req);
    cached::answer(edge, rt, di, bi, asked, method, headers).await
}

/// The body of a fill, as its chunks arrive.
pub(super) fn follow_body(reader: Reader<FillHead>) -> BoxBody {
    let s = stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.next().await {
            Ok(Some(b)) => Some((Ok(Frame::data(b)), Some(reader))),
            Ok(None) => None,
            Err(e) => Some((Err(Box::new(e) as BoxError), None)),
        }
    });
    StreamBody::new(s).boxed_unsync()
}

/// Methods the edge does not cache go to the origin as they are (with what the key
/// includes) and their responses straight back.
async fn pass_through(
    edge: &Edge,
    rt: &Arc<Runtime>,
    di: usize,
    bi: Option<usize>,
    asked: ViewerRequest,
    req: Request<Incoming>,
) -> Answer {
    let d = &rt.config.distributions[di];
    let b = fill::behavior(d, bi);
    let plan = fill::plan(rt, d, b);
    let method = req.method().clone();
    let mut extra = HeaderMap::new();
    for name in [CONTENT_TYPE, CONTENT_ENCODING] {
        if let Some(v) = req.headers().get(&name) {
            extra.insert(name, v.clone());
        }
    }
    let name = &rt.config.edge.name;
    let too_large = |limit: u64| {
        edge.metrics.refused(Refusal::BodyTooLarge);
        let mut resp = respond::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("The request body is larger than this edge accepts ({limit} bytes)."),
            name,
        );
        // The rest of the body is not read: the connection cannot carry another request.
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        Answer::new(resp, ResultType::Error, Some(di))
    };
    let limit = rt.config.edge.max_request_body;
    // hyper knows a Content-Length body's size up front (it has checked the header).
    if req.body().size_hint().exact().is_some_and(|n| n > limit) {
        return too_large(limit);
    }
    let has_body = req.headers().contains_key(CONTENT_LENGTH)
        || req.headers().contains_key(http::header::TRANSFER_ENCODING);
    let forward = asked.forward(
        method.clone(),
        req.headers(),
        Policies::of(b),
        Exchange::PassThrough,
        extra,
    );
    let exceeded = Arc::new(AtomicBool::new(false));
    let mut body =
        has_body.then(|| body::incoming_limited(req.into_body(), limit, exceeded.clone()));
    let fetched = fetch(
        &plan,
        &method,
        |origin| forward.to(origin, name, body.take()),
        |o, r, t| edge.metrics.origin(&d.id, &o.id, r, t),
    )
    .await;
    let err = |status, msg: &str| {
        Answer::new(
            respond::error(status, msg, name),
            ResultType::Error,
            Some(di),
        )
    };
    let Some(fetched) = fetched else {
        return err(
            StatusCode::BAD_GATEWAY,
            "No origin is configured for this path.",
        );
    };
    // A chunked body that grew past the limit while streaming: its origin request was
    // aborted, whatever that made of the response.
    if exceeded.load(Ordering::SeqCst) {
        return too_large(limit);
    }
    match fetched.result {
        Err(e) => {
            tracing::warn!(distribution = %d.id, error = %e, "origin request failed");
            let mut a = err(e.status(), e.viewer_message());
            a.detailed = e.detailed_result();
            a
        }
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            invalidate_after(
                edge,
                rt,
                di,
                &fetched.origin.origin,
                &method,
                &asked.keyed,
                &parts,
            );
            httpcache::strip_hop_by_hop(&mut parts.headers);
            httpcache::tags::strip_tag_headers(&mut parts.headers);
            let result = ResultType::from_origin_status(parts.status);
            decorate(&mut parts.headers, name, result);
            Answer::new(Response::from_parts(parts, body), result, Some(di))
        }
    }
}

/// RFC 9111 §4.4: a non-error response to an unsafe method invalidates what is stored for
/// the request's path and for same-origin Location / Content-Location paths (every
/// variant: the invalidation is a prefix removal of the exact path).
fn invalidate_after(
    edge: &Edge,
    rt: &Runtime,
    di: usize,
    origin: &crate::config::Origin,
    method: &Method,
    keyed: &crate::cache_key::KeyedRequest,
    resp: &http::response::Parts,
) {
    let d = &rt.config.distributions[di];
    // The origin's responses speak in its own URL space: its authority, its path prefix.
    let origin_path = format!("{}{}", origin.path, keyed.path);
    let authority = match &keyed.viewer_host {
        Some(h) => h.clone(),
        None => format!("{}:{}", origin.host, origin.port),
    };
    let targets = httpcache::invalidation_targets(
        method,
        resp.status,
        &origin_path,
        Some(&authority),
        &resp.headers,
    );
    for target in targets {
        let Some(viewer_path) = target.strip_prefix(origin.path.as_str()) else {
            continue;
        };
        let Ok(mut path) = normalize_path(viewer_path) else {
            continue;
        };
        if path == "/" {
            if let Some(root) = &d.default_root_object {
                // The same normalised form as the key of "/" (cache_key).
                let Ok(p) = crate::cache_key::root_object_path(root) else {
                    continue;
                };
                path = p;
            }
        }
        let prefix = crate::cache_key::exact_path_prefix(&d.id, &path);
        match edge.store.remove_prefix(&prefix) {
            Ok(n) => {
                tracing::debug!(distribution = %d.id, path = %path, removed = n, "invalidated after {method}")
            }
            Err(e) => {
                tracing::warn!(distribution = %d.id, path = %path, error = %e, "invalidation after {method} failed")
            }
        }
    }
}
