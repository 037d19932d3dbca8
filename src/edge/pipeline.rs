//! One viewer request, start to end: route by Host, refuse what names no object, pick the
//! behaviour, form the cache key and what is forwarded — the request context, built once
//! — then the cached path (GET, HEAD) or the pass-through (other methods). Every response
//! gets `Via` and `X-Cache`; its metrics and access log line are written when its body
//! ends (or when the viewer hangs up before there is one).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, VIA};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::BoxBody;
use crate::cache_key::forward::{forwarded_query, Policies};
use crate::cache_key::{cache_key, normalize_path, KeyError, KeyInput};
use crate::edge::access::{self, header_str, host_of, Ending, LogFacts};
use crate::edge::answer::Answer;
use crate::edge::context::RequestCtx;
use crate::edge::forward::{Viewer, ViewerRequest};
use crate::edge::runtime::{DistRuntime, Runtime};
use crate::edge::state::Edge;
use crate::edge::tracked::{Outcome, Tracked};
use crate::edge::{cached, pass, tier};
use crate::httpcache::RequestFacts;
use crate::metrics::{Refusal, NO_DISTRIBUTION};
use crate::result::ResultType;

/// Longest request target (path and query) the edge accepts; longer ones get 414. hyper
/// refuses request heads beyond its buffer (see `server`) with 431 before this applies.
pub const MAX_TARGET_LEN: usize = 8192;

/// Answers one viewer request.
pub async fn handle(
    edge: Arc<Edge>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<BoxBody> {
    let started = Instant::now();
    let rt = edge.runtime();
    let facts = LogFacts::of(&req);
    let mut early = EarlyHangUp {
        edge: &edge,
        rt: &rt,
        facts: &facts,
        peer,
        started,
        armed: true,
    };
    let answer = answer(&edge, &rt, req, peer).await;
    early.armed = false;
    drop(early);
    finish(&edge, rt.clone(), answer, facts, peer, started)
}

/// The response with its body tracked: when it ends, the request is counted and logged.
fn finish(
    edge: &Arc<Edge>,
    rt: Arc<Runtime>,
    answer: Answer,
    facts: LogFacts,
    peer: SocketAddr,
    started: Instant,
) -> Response<BoxBody> {
    let time_to_first_byte = started.elapsed();
    let Answer {
        resp,
        result,
        detailed,
        dist,
    } = answer;
    let dist_id = dist
        .as_ref()
        .map_or(NO_DISTRIBUTION.to_string(), |d| d.id().to_string());
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
    let edge = edge.clone();
    let tracked = Tracked::new(body, content_len, move |out: Outcome| {
        // Status 000: the viewer hung up before the response was complete. CloudFront then
        // logs x-edge-result-type Error, the response result type the viewer would have
        // had, and ClientCommError as the detail.
        let hung_up = !out.complete && !out.failed;
        let logged = if out.failed || hung_up {
            ResultType::Error
        } else {
            result
        };
        edge.metrics.request(&dist_id, logged, out.body_bytes);
        let Some((d, log)) = dist.as_ref().and_then(|d| Some((d, d.log.as_ref()?))) else {
            return;
        };
        let ending = Ending {
            status: (!hung_up).then_some(status),
            result: logged,
            response_result: if out.failed {
                ResultType::Error
            } else {
                result
            },
            detailed: match (out.failed, hung_up) {
                (true, _) => "Error",
                (false, true) => "ClientCommError",
                (false, false) => detailed,
            },
            sent_bytes: header_bytes + out.body_bytes,
            time_taken: started.elapsed(),
            time_to_first_byte,
            content_type,
            content_len,
        };
        log.log(access::entry(&rt, d, &facts, peer, ending));
    });
    Response::from_parts(parts, tracked.boxed_unsync())
}

/// Logs a `000` line when the viewer hangs up before its response exists (hyper then
/// drops `handle`'s future while it waits for the origin, say), so such a request is
/// not missing from the log.
struct EarlyHangUp<'a> {
    edge: &'a Edge,
    rt: &'a Runtime,
    facts: &'a LogFacts,
    peer: SocketAddr,
    started: Instant,
    armed: bool,
}

impl Drop for EarlyHangUp<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Some(d) = self.rt.route(&self.facts.host_header) else {
            self.edge
                .metrics
                .request(NO_DISTRIBUTION, ResultType::Error, 0);
            return;
        };
        self.edge.metrics.request(d.id(), ResultType::Error, 0);
        if let Some(log) = &d.log {
            let ending = Ending::hung_up_early(self.started.elapsed());
            log.log(access::entry(self.rt, d, self.facts, self.peer, ending));
        }
    }
}

async fn answer(
    edge: &Arc<Edge>,
    rt: &Arc<Runtime>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Answer {
    crate::fault::inject(req.headers(), "panic-request");
    let ctx = match context(edge, rt, &req, peer) {
        Ok(ctx) => ctx,
        Err(refused) => return *refused,
    };
    if ctx.method != Method::GET && ctx.method != Method::HEAD {
        return pass::method(edge, &ctx, req).await;
    }
    drop(req);
    cached::answer(edge, &Arc::new(ctx)).await
}

/// The request's context, or the answer that refuses it at once: no Host, a host no
/// distribution answers, a disabled distribution, a target that names no object, a method
/// the behaviour does not allow.
fn context(
    edge: &Edge,
    rt: &Arc<Runtime>,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Result<RequestCtx, Box<Answer>> {
    let d = route(rt, req)?;
    let refuse = |why: Refusal, status, msg: &str| {
        edge.metrics.refused(why);
        Box::new(Answer::error(status, msg, rt.edge_name(), Some(d.clone())))
    };
    let via = header_str(req.headers(), VIA);
    if let Some(via) = via
        .as_deref()
        .filter(|v| tier::loops_back(v, rt.edge_name()))
    {
        tracing::warn!(distribution = %d.id(), via, "request loop: this edge's name is already in the request's Via (tier origins point back here, or two edges of a tier share one [edge] name)");
        let msg = "The request has already passed through this edge (a loop between tiers).";
        return Err(refuse(Refusal::ViaLoop, StatusCode::LOOP_DETECTED, msg));
    }
    let path = target_path(req).map_err(|(why, status, msg)| refuse(why, status, &msg))?;
    let b = d.behavior_for(&path).clone();
    let config = &b.config;
    if !config.allowed_methods.allows(req.method()) {
        let msg = "This distribution does not accept this method for this path.";
        let mut a = Answer::error(StatusCode::METHOD_NOT_ALLOWED, msg, rt.edge_name(), Some(d));
        let allow = HeaderValue::from_static(config.allowed_methods.allow_header());
        a.resp.headers_mut().insert(http::header::ALLOW, allow);
        return Err(Box::new(a));
    }
    let keyed = cache_key(&KeyInput {
        distribution: d.id(),
        uri: req.uri(),
        headers: req.headers(),
        policy: &config.cache_key,
        default_root_object: d.config.default_root_object.as_deref(),
    })
    .and_then(|keyed| {
        let query = forwarded_query(
            req.uri().query(),
            keyed.query.as_deref(),
            Policies::of(config),
        )?;
        Ok((keyed, query))
    });
    let (keyed, query) = keyed.map_err(|e| match e {
        KeyError::TooLong { .. } => refuse(Refusal::UriTooLong, e.status(), &e.to_string()),
        _ => refuse(Refusal::BadTarget, e.status(), &e.to_string()),
    })?;
    let headers = req.headers();
    let asked = ViewerRequest {
        keyed,
        viewer: Viewer {
            ip: peer.ip(),
            forwarded_for: header_str(headers, "x-forwarded-for"),
            via,
            host: host_of(req),
        },
        uri: req.uri().clone(),
        query,
    };
    Ok(RequestCtx {
        facts: RequestFacts::from_request(req.method(), headers),
        method: req.method().clone(),
        headers: headers.clone(),
        rt: rt.clone(),
        dist: d,
        behavior: b,
        asked,
        now: SystemTime::now(),
    })
}

/// The distribution answering the request's host, enabled.
fn route(rt: &Runtime, req: &Request<Incoming>) -> Result<Arc<DistRuntime>, Box<Answer>> {
    let name = rt.edge_name();
    let refused = |status, msg: &str, d: Option<&Arc<DistRuntime>>| {
        Err(Box::new(Answer::error(status, msg, name, d.cloned())))
    };
    let Some(host) = host_of(req) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "The request has no Host header.",
            None,
        );
    };
    let Some(d) = rt.route(&host) else {
        // No detail: which names this edge serves is nobody's business.
        return refused(StatusCode::MISDIRECTED_REQUEST, "", None);
    };
    if !d.config.enabled {
        return refused(
            StatusCode::FORBIDDEN,
            "This distribution is disabled.",
            Some(d),
        );
    }
    Ok(d.clone())
}

/// The request's normalised path, or why the target names no object.
fn target_path(req: &Request<Incoming>) -> Result<String, (Refusal, StatusCode, String)> {
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > MAX_TARGET_LEN {
        return Err((
            Refusal::UriTooLong,
            StatusCode::URI_TOO_LONG,
            format!(
                "The request target is {target_len} bytes long; this edge accepts at most {MAX_TARGET_LEN}."
            ),
        ));
    }
    // RFC 9112 §3.2: origin-form ("/path") or absolute-form ("http://host/path");
    // authority-form and asterisk-form name no object.
    if req.uri().scheme().is_none() && !req.uri().path().starts_with('/') {
        return Err((
            Refusal::BadTarget,
            StatusCode::BAD_REQUEST,
            "The request target must be a path starting with '/' or an absolute URL.".into(),
        ));
    }
    normalize_path(req.uri().path())
        .map_err(|e| (Refusal::BadTarget, StatusCode::BAD_REQUEST, e.to_string()))
}
