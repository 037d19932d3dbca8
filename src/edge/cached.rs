//! GET and HEAD: the cached path. Find the stored response (following `Vary` to the
//! viewer's variant), decide how it may be reused (RFC 9111 §4, RFC 5861), and answer:
//! from the store (Hit), from the store while a background fill refreshes it
//! (stale-while-revalidate), after revalidating it (RefreshHit), from the stale copy when
//! the origin fails (stale-if-error), or by following a collapsed fill (Miss). A range
//! request on a miss is answered from the fill as its bytes arrive (the whole object is
//! fetched and stored) when the object's Content-Length is at most the behaviour's
//! range_fill_max; above it the range goes to the origin and nothing is stored.

use std::sync::Arc;
use std::time::SystemTime;

use futures_util::stream;
use http::header::{HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, IF_RANGE, RANGE};
use http::{HeaderMap, Method, Response, StatusCode};

use crate::body::{self, BoxError};
use crate::cache_key::forward::{Exchange, Policies};
use crate::collapse::{Fill, Joined, Reader};
use crate::edge::fill::{self, FillHead, FillRequest};
use crate::edge::forward::ViewerRequest;
use crate::edge::meta::{Meta, StoredResponse};
use crate::edge::pipeline::{follow_body, Answer};
use crate::edge::respond::{self, decorate};
use crate::edge::{hit, partial, Edge, ResultType, Runtime};
use crate::httpcache::{self, range, Mode, RequestFacts, Reuse};
use crate::origin::fetch;
use crate::store::Hit;

/// The stored response found for a request.
pub struct Found {
    pub hit: Hit,
    pub meta: StoredResponse,
}

/// Looks `key` up, following a `Vary` index to the variant for `req`.
pub async fn lookup(edge: &Edge, key: &[u8], req: &HeaderMap) -> Option<Found> {
    let mut key = key.to_vec();
    for _ in 0..2 {
        let hit = match edge.store.lookup_async(&key).await {
            Ok(Some(h)) => h,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(key = %String::from_utf8_lossy(&key), error = %e, "store lookup failed; fetching from the origin");
                return None;
            }
        };
        match Meta::decode(&hit.info.meta) {
            Ok(Meta::Response(meta)) => return Some(Found { hit, meta }),
            Ok(Meta::Variants(names)) => key = crate::cache_key::variant_key(&key, &names, req),
            // A parts index is never at a key a request forms.
            Ok(Meta::Partials(_)) => return None,
            Err(e) => {
                tracing::warn!(key = %String::from_utf8_lossy(&key), error = %e, "stored metadata unreadable; dropping the object");
                let _ = edge.store.remove(&key);
                return None;
            }
        }
    }
    None
}

/// A stored error response served from the cache is `Error` (as CloudFront labels cached
/// 4xx/5xx), anything else `Hit`.
fn hit_result(meta: &StoredResponse) -> ResultType {
    let s = meta.status();
    if s.is_client_error() || s.is_server_error() {
        ResultType::Error
    } else {
        ResultType::Hit
    }
}

/// RFC 9111 §3.5: a response (`headers`) to a request with Authorization is reused only
/// when it says shared caches may (public, s-maxage, must-revalidate).
fn authorization_allows(headers: &HeaderMap) -> bool {
    // The same directives the storing decision read (RFC 9213 targeted fields first).
    let (cc, _) = httpcache::governing_cache_control(headers);
    cc.public || cc.s_maxage.is_some() || cc.must_revalidate
}

#[allow(clippy::too_many_arguments)]
pub async fn answer(
    edge: &Arc<Edge>,
    rt: &Arc<Runtime>,
    di: usize,
    bi: Option<usize>,
    asked: ViewerRequest,
    method: Method,
    req: HeaderMap,
) -> Answer {
    let name = &rt.config.edge.name;
    let err = |status, msg: &str| {
        Answer::new(
            respond::error(status, msg, name),
            ResultType::Error,
            Some(di),
        )
    };
    let d = &rt.config.distributions[di];
    let b = fill::behavior(d, bi);
    let mode = if b.strict() {
        Mode::Strict
    } else {
        Mode::CloudFront
    };
    let facts = RequestFacts::from_request(&method, &req);
    let now = SystemTime::now();

    let found = lookup(edge, &asked.keyed.key, &req).await;
    let mut stale: Option<Found> = None;
    let mut own_fetch = false;
    if let Some(f) = found {
        let sf = f.meta.facts(now);
        if facts.has_authorization && !authorization_allows(&f.meta.header_map()) {
            own_fetch = true;
        } else {
            match httpcache::reuse(mode, &sf, &facts) {
                Reuse::Fresh => {
                    let result = hit_result(&f.meta);
                    let mut a = Answer::new(
                        hit::serve(rt, f.hit, &f.meta, result, &method, &req, now),
                        result,
                        Some(di),
                    );
                    a.detailed = "Hit";
                    return a;
                }
                Reuse::StaleWhileRevalidate => {
                    refresh_in_background(edge, rt, di, bi, &asked, &req, &f);
                    let mut a = Answer::new(
                        hit::serve(rt, f.hit, &f.meta, ResultType::Hit, &method, &req, now),
                        ResultType::Hit,
                        Some(di),
                    );
                    a.detailed = "StaleWhileRevalidate";
                    return a;
                }
                Reuse::Revalidate | Reuse::Fetch => stale = Some(f),
            }
        }
    }

    // RFC 9111 §5.2.1.7 (strict mode honours request directives): only-if-cached gets a
    // stored response that may be used without the origin, or 504.
    if mode == Mode::Strict && facts.cache_control.only_if_cached {
        let mut a = err(
            StatusCode::GATEWAY_TIMEOUT,
            "only-if-cached: no stored response may be used without the origin.",
        );
        a.detailed = "OnlyIfCached";
        return a;
    }

    // A range request on a miss fetches the whole object (to store it) only up to the
    // behaviour's range_fill_max; the fill finds out from Content-Length.
    let wants_range = method == Method::GET && {
        let mut values = req.get_all(RANGE).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => range::parse_range(v).is_some(),
            _ => false,
        }
    };
    // A stored partial response (RFC 9111 §3.3) may cover the range.
    if wants_range && stale.is_none() && !own_fetch {
        if let Some(resp) = partial::serve(edge, rt, &asked.keyed.key, &req, mode, &facts).await {
            let mut a = Answer::new(resp, ResultType::Hit, Some(di));
            a.detailed = "PartialHit";
            return a;
        }
    }
    let range_fill_max = (wants_range && stale.is_none()).then_some(b.range_fill_max);
    let for_pass_through = wants_range.then(|| asked.clone());
    let key = asked.keyed.key.clone();
    let mut direct = Some(asked.clone());
    let stored = stale.as_ref().map(|f| (f.hit.info.clone(), f.meta.clone()));
    let request = FillRequest {
        dist: di,
        behavior: bi,
        asked,
        stored,
        request: req.clone(),
        range_fill_max,
    };
    let (mut reader, mut leader) = if own_fetch {
        let own = Arc::new(Fill::new());
        let Some(r) = own.reader() else {
            return err(StatusCode::BAD_GATEWAY, "The origin fetch failed.");
        };
        fill::spawn(edge.clone(), rt.clone(), request, own, false);
        (r, true)
    } else {
        match edge.fills.join(&key) {
            Joined::Leader(r) => {
                fill::spawn(edge.clone(), rt.clone(), request, r.fill().clone(), true);
                (r, true)
            }
            Joined::Follower(r) => {
                edge.metrics.collapsed();
                (r, false)
            }
        }
    };
    // The object a 304 refreshed, read back from the store.
    let mut refreshed: Option<Found> = None;
    let head = loop {
        let head = match reader.fill().head().await {
            Ok(h) => h,
            Err(e) => {
                return err(
                    StatusCode::BAD_GATEWAY,
                    &format!("The origin fetch failed: {}", e.0),
                )
            }
        };
        let not_ours = match &*head {
            FillHead::Response {
                shareable,
                headers,
                vary,
                ..
            } => {
                !shareable
                    // RFC 9111 §3.5, as for a stored response.
                    || (facts.has_authorization && !authorization_allows(headers))
                    || vary.as_ref().is_some_and(|(names, suffix)| {
                        httpcache::variant_suffix(names, &req) != *suffix
                    })
            }
            // A 304 validated the leader's stored response: ours only if it is the one this
            // request would have revalidated (not another variant's, RFC 9111 §4.1).
            FillHead::Refreshed { key } => stale.as_ref().is_none_or(|f| f.hit.info.key != *key),
            // Abandoned for a range request: a viewer without one fetches the object.
            FillHead::RangePassThrough => !wants_range,
            FillHead::Failed { .. } => false,
        };
        // The sweeper may have evicted the refreshed object since (or its bytes failed
        // their check): then it is fetched whole, not answered with an error.
        let evicted = match &*head {
            FillHead::Refreshed { .. } if !not_ours => {
                refreshed = lookup(edge, &key, &req).await;
                refreshed.is_none()
            }
            _ => false,
        };
        match direct.take() {
            Some(asked) if (not_ours && !leader) || evicted => {
                // Not ours to see (Set-Cookie, private, Authorization, another variant):
                // fetch alone, revalidating our own stored response if we have one (and
                // it is still stored).
                let own = Arc::new(Fill::new());
                let Some(r) = own.reader() else {
                    return err(StatusCode::BAD_GATEWAY, "The origin fetch failed.");
                };
                let request = FillRequest {
                    dist: di,
                    behavior: bi,
                    asked,
                    stored: stale
                        .as_ref()
                        .filter(|_| !evicted)
                        .map(|f| (f.hit.info.clone(), f.meta.clone())),
                    request: req.clone(),
                    range_fill_max,
                };
                fill::spawn(edge.clone(), rt.clone(), request, own, false);
                reader = r;
                leader = true;
            }
            _ => break head,
        }
    };

    // RFC 5861 §4: an error while revalidating may be answered with the stale copy.
    let origin_failed = match &*head {
        FillHead::Failed { .. } => true,
        FillHead::Response { status, .. } => matches!(status.as_u16(), 500 | 502 | 503 | 504),
        _ => false,
    };
    if origin_failed {
        if let Some(f) = stale.take() {
            let sf = f.meta.facts(now);
            // A stored error is no better than the origin's: never served in its place.
            let usable = !(f.meta.status().is_client_error() || f.meta.status().is_server_error());
            if usable && httpcache::stale_if_error_allows(mode, &sf, &facts) {
                let mut a = Answer::new(
                    hit::serve(
                        rt,
                        f.hit,
                        &f.meta,
                        ResultType::Hit,
                        &method,
                        &req,
                        SystemTime::now(),
                    ),
                    ResultType::Hit,
                    Some(di),
                );
                a.detailed = "StaleIfError";
                return a;
            }
        }
    }

    match &*head {
        FillHead::Failed {
            status,
            message,
            detailed,
        } => {
            let mut a = err(*status, message);
            a.detailed = detailed;
            a
        }
        FillHead::Refreshed { .. } => match refreshed.take() {
            Some(f) => Answer::new(
                hit::serve(
                    rt,
                    f.hit,
                    &f.meta,
                    ResultType::RefreshHit,
                    &method,
                    &req,
                    SystemTime::now(),
                ),
                ResultType::RefreshHit,
                Some(di),
            ),
            None => err(
                StatusCode::BAD_GATEWAY,
                "The refreshed object could not be read.",
            ),
        },
        FillHead::RangePassThrough => match for_pass_through {
            Some(asked) => range_pass_through(edge, rt, di, bi, &asked, &req).await,
            // A viewer without a range fetched the object itself (above).
            None => err(StatusCode::BAD_GATEWAY, "The origin fetch failed."),
        },
        FillHead::Response {
            status, headers, ..
        } => {
            let mut h = headers.clone();
            let result = ResultType::from_origin_status(*status);
            // RFC 9110 §14.2: the range of a 200 whose length is known is cut out of the
            // body as it arrives (the fill goes on storing the whole object).
            let len = h
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let (true, Some(len)) = (wants_range && *status == StatusCode::OK, len) {
                let outcome = range::range_request(&method, &req, &h, len);
                let mut with_ranges = h.clone();
                with_ranges.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                if let hit::Ranged::Partial(status, mut h, list) =
                    hit::ranges(outcome, with_ranges, len)
                {
                    decorate(&mut h, name, result);
                    let body = if list.is_empty() {
                        body::empty()
                    } else {
                        hit::pieces(fill_chunks(reader), list)
                    };
                    let mut resp = Response::new(body);
                    *resp.status_mut() = status;
                    *resp.headers_mut() = h;
                    return Answer::new(resp, result, Some(di));
                }
            }
            decorate(&mut h, name, result);
            let body = if method == Method::HEAD {
                body::empty()
            } else {
                follow_body(reader)
            };
            let mut resp = Response::new(body);
            *resp.status_mut() = *status;
            *resp.headers_mut() = h;
            Answer::new(resp, result, Some(di))
        }
    }
}

/// A fill's body chunks as they arrive.
fn fill_chunks(reader: Reader<FillHead>) -> hit::Chunks {
    Box::pin(stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.next().await {
            Ok(Some(b)) => Some((Ok(b), Some(reader))),
            Ok(None) => None,
            Err(e) => Some((Err(Box::new(e) as BoxError), None)),
        }
    }))
}

/// A range request on a miss for an object above the behaviour's range_fill_max: the
/// viewer's Range (and If-Range) go to the origin and its answer comes back, not stored.
async fn range_pass_through(
    edge: &Edge,
    rt: &Runtime,
    di: usize,
    bi: Option<usize>,
    asked: &ViewerRequest,
    req: &HeaderMap,
) -> Answer {
    let d = &rt.config.distributions[di];
    let b = fill::behavior(d, bi);
    let plan = fill::plan(rt, d, b);
    let name = &rt.config.edge.name;
    let mut extra = HeaderMap::new();
    for field in [RANGE, IF_RANGE] {
        if let Some(v) = req.get(&field) {
            extra.insert(field, v.clone());
        }
    }
    let forward = asked.forward(Method::GET, req, Policies::of(b), Exchange::Fill, extra);
    let request_time = SystemTime::now();
    let fetched = fetch(
        &plan,
        &Method::GET,
        |origin| forward.to(origin, name, None),
        |o, r, t| edge.metrics.origin(&d.id, &o.id, r, t),
    )
    .await;
    let response_time = SystemTime::now();
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
    match fetched.result {
        Err(e) => {
            tracing::warn!(distribution = %d.id, error = %e, "origin request failed");
            let mut a = err(e.status(), e.viewer_message());
            a.detailed = e.detailed_result();
            a
        }
        Ok(resp) => {
            let (mut parts, mut body) = resp.into_parts();
            httpcache::strip_hop_by_hop(&mut parts.headers);
            let tags = httpcache::tags::take_tags(&mut parts.headers);
            if parts.status == StatusCode::PARTIAL_CONTENT {
                body = partial::store_while_streaming(
                    edge,
                    fill::behavior(d, bi),
                    &d.id,
                    &asked.keyed.key,
                    &parts.headers,
                    tags,
                    body,
                    request_time,
                    response_time,
                    req,
                );
            }
            let result = ResultType::from_origin_status(parts.status);
            decorate(&mut parts.headers, name, result);
            Answer::new(Response::from_parts(parts, body), result, Some(di))
        }
    }
}

/// stale-while-revalidate: one background revalidation per key (none if a fill for the
/// key is already running); nobody waits for it.
#[allow(clippy::too_many_arguments)]
fn refresh_in_background(
    edge: &Arc<Edge>,
    rt: &Arc<Runtime>,
    di: usize,
    bi: Option<usize>,
    asked: &ViewerRequest,
    req: &HeaderMap,
    f: &Found,
) {
    if let Joined::Leader(r) = edge.fills.join(&asked.keyed.key) {
        let request = FillRequest {
            dist: di,
            behavior: bi,
            asked: asked.clone(),
            stored: Some((f.hit.info.clone(), f.meta.clone())),
            request: req.clone(),
            range_fill_max: None,
        };
        fill::spawn(edge.clone(), rt.clone(), request, r.fill().clone(), true);
    }
}
