//! GET and HEAD: the cached path, as explicit phases ([`Phase`], in the manner of
//! pingora-cache's `CachePhase`): look the key up (following `Vary` to the viewer's
//! variant), decide how the stored response may be reused (RFC 9111 §4, RFC 5861), and
//! answer from the store (Hit), from the store while a background fill refreshes it
//! (stale-while-revalidate), after revalidating it (RefreshHit), from the stale copy when
//! the origin fails (stale-if-error), from a stored part, or by following a collapsed
//! fill (Miss). A range request on a miss is answered from the fill as its bytes arrive
//! (the whole object is fetched and stored) when the object's Content-Length is at most
//! the behaviour's `range_fill_max`; above it the range goes to the origin and nothing
//! whole is stored.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, RANGE};
use http::{HeaderMap, Method, Response, StatusCode};

use crate::body;
use crate::collapse::{Fill, Joined, Reader};
use crate::edge::answer::{fill_chunks, follow_body, Answer};
use crate::edge::context::RequestCtx;
use crate::edge::fill::{self, FillRequest};
use crate::edge::head::FillHead;
use crate::edge::meta::{Meta, StoredResponse};
use crate::edge::respond::decorate;
use crate::edge::state::Edge;
use crate::edge::{hit, partial, pass};
use crate::httpcache::{self, range, Mode, Reuse};
use crate::result::ResultType;
use crate::store::{Hit, ObjectInfo};

/// The stored response found for a request.
pub struct Found {
    pub hit: Hit,
    pub meta: StoredResponse,
}

impl Found {
    /// What a fill revalidating it needs.
    fn stored(&self) -> (ObjectInfo, StoredResponse) {
        (self.hit.info.clone(), self.meta.clone())
    }
}

/// Where a request on the cached path is.
enum Phase {
    /// Look the key up.
    Lookup,
    /// Something is stored: may it be used, and how?
    Reuse(Found),
    /// Nothing usable is stored: a stored part, or a fill.
    Miss(Miss),
    /// Following a fill until its head arrives.
    Follow(Following),
    /// The fill's head is in: answer from it.
    Respond(Following, Arc<FillHead>),
    Done(Answer),
}

struct Miss {
    /// The stored response to revalidate.
    stale: Option<Found>,
    /// Fetch apart from the collapse table (what is stored is not this viewer's to see).
    alone: bool,
}

struct Following {
    reader: Reader<FillHead>,
    /// This request started the fill.
    leader: bool,
    stale: Option<Found>,
    /// Once: the fill's answer is not this viewer's, so it fetches its own.
    may_go_alone: bool,
    /// A single valid Range on a GET.
    wants_range: bool,
    range_fill_max: Option<u64>,
    /// The object a 304 refreshed, read back from the store.
    refreshed: Option<Found>,
}

/// Answers a GET or HEAD.
pub async fn answer(edge: &Arc<Edge>, ctx: &Arc<RequestCtx>) -> Answer {
    let mut phase = Phase::Lookup;
    loop {
        phase = match phase {
            Phase::Lookup => match lookup(edge, ctx.key(), &ctx.headers).await {
                Some(found) => Phase::Reuse(found),
                None => Phase::Miss(Miss {
                    stale: None,
                    alone: false,
                }),
            },
            Phase::Reuse(found) => reuse(edge, ctx, found),
            Phase::Miss(miss) => start(edge, ctx, miss).await,
            Phase::Follow(following) => follow(edge, ctx, following).await,
            Phase::Respond(following, head) => respond(edge, ctx, following, head).await,
            Phase::Done(answer) => return answer,
        };
    }
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

/// Serves `found` from the store as `result`, with `detailed` in the log.
fn serve(
    ctx: &RequestCtx,
    found: Found,
    result: ResultType,
    detailed: &'static str,
    now: SystemTime,
) -> Answer {
    let resp = hit::serve(ctx, found.hit, &found.meta, result, now);
    Answer::new(resp, result, Some(ctx.dist.clone())).detailed(detailed)
}

/// The reuse decision for what is stored.
fn reuse(edge: &Arc<Edge>, ctx: &Arc<RequestCtx>, found: Found) -> Phase {
    if ctx.facts.has_authorization && !authorization_allows(&found.meta.header_map()) {
        return Phase::Miss(Miss {
            stale: None,
            alone: true,
        });
    }
    match httpcache::reuse(ctx.mode(), &found.meta.facts(ctx.now), &ctx.facts) {
        Reuse::Fresh => {
            let result = hit_result(&found.meta);
            Phase::Done(serve(ctx, found, result, "Hit", ctx.now))
        }
        Reuse::StaleWhileRevalidate => {
            refresh_in_background(edge, ctx, &found);
            let detailed = "StaleWhileRevalidate";
            Phase::Done(serve(ctx, found, ResultType::Hit, detailed, ctx.now))
        }
        Reuse::Revalidate | Reuse::Fetch => Phase::Miss(Miss {
            stale: Some(found),
            alone: false,
        }),
    }
}

/// stale-while-revalidate: one background revalidation per key (none if a fill for the
/// key is already running); nobody waits for it.
fn refresh_in_background(edge: &Arc<Edge>, ctx: &Arc<RequestCtx>, found: &Found) {
    if let Joined::Leader(r) = edge.fills.join(ctx.key()) {
        let request = FillRequest {
            ctx: ctx.clone(),
            stored: Some(found.stored()),
            range_fill_max: None,
        };
        fill::spawn(edge.clone(), request, r.fill().clone(), true);
    }
}

/// A GET with exactly one Range header that parses.
fn wants_range(ctx: &RequestCtx) -> bool {
    ctx.method == Method::GET && {
        let mut values = ctx.headers.get_all(RANGE).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => range::parse_range(v).is_some(),
            _ => false,
        }
    }
}

/// Nothing usable is stored: answer from a stored part when one covers the range, else
/// start (or join) the fill.
async fn start(edge: &Arc<Edge>, ctx: &Arc<RequestCtx>, miss: Miss) -> Phase {
    // RFC 9111 §5.2.1.7 (strict mode honours request directives): only-if-cached gets a
    // stored response that may be used without the origin, or 504.
    if ctx.mode() == Mode::Strict && ctx.facts.cache_control.only_if_cached {
        let msg = "only-if-cached: no stored response may be used without the origin.";
        let a = ctx.error(StatusCode::GATEWAY_TIMEOUT, msg);
        return Phase::Done(a.detailed("OnlyIfCached"));
    }
    let wants_range = wants_range(ctx);
    // A stored partial response (RFC 9111 §3.3) may cover the range.
    if wants_range && miss.stale.is_none() && !miss.alone {
        if let Some(resp) = partial::serve(edge, ctx).await {
            let a = Answer::new(resp, ResultType::Hit, Some(ctx.dist.clone()));
            return Phase::Done(a.detailed("PartialHit"));
        }
    }
    // A range request on a miss fetches the whole object (to store it) only up to the
    // behaviour's range_fill_max; the fill finds out from Content-Length.
    let range_fill_max =
        (wants_range && miss.stale.is_none()).then_some(ctx.behavior.config.range_fill_max);
    let request = FillRequest {
        ctx: ctx.clone(),
        stored: miss.stale.as_ref().map(Found::stored),
        range_fill_max,
    };
    let started = if miss.alone {
        fetch_alone(edge, request)
    } else {
        Some(join(edge, ctx, request))
    };
    let Some((reader, leader)) = started else {
        return Phase::Done(ctx.error(StatusCode::BAD_GATEWAY, "The origin fetch failed."));
    };
    Phase::Follow(Following {
        reader,
        leader,
        stale: miss.stale,
        may_go_alone: true,
        wants_range,
        range_fill_max,
        refreshed: None,
    })
}

/// A fill for this viewer alone, outside the collapse table.
fn fetch_alone(edge: &Arc<Edge>, request: FillRequest) -> Option<(Reader<FillHead>, bool)> {
    let own = Arc::new(Fill::new());
    let reader = own.reader()?;
    fill::spawn(edge.clone(), request, own, false);
    Some((reader, true))
}

/// Joins the fill for the key, starting it if there is none.
fn join(edge: &Arc<Edge>, ctx: &RequestCtx, request: FillRequest) -> (Reader<FillHead>, bool) {
    match edge.fills.join(ctx.key()) {
        Joined::Leader(r) => {
            fill::spawn(edge.clone(), request, r.fill().clone(), true);
            (r, true)
        }
        Joined::Follower(r) => {
            edge.metrics.collapsed();
            (r, false)
        }
    }
}

/// Waits for the fill's head; fetches alone (once) when the answer is not this viewer's.
async fn follow(edge: &Arc<Edge>, ctx: &Arc<RequestCtx>, mut f: Following) -> Phase {
    let head = match f.reader.fill().head().await {
        Ok(h) => h,
        Err(e) => {
            let msg = format!("The origin fetch failed: {}", e.0);
            return Phase::Done(ctx.error(StatusCode::BAD_GATEWAY, &msg));
        }
    };
    let not_ours = not_ours(ctx, &f, &head);
    // The sweeper may have evicted the refreshed object since (or its bytes failed their
    // check): then it is fetched whole, not answered with an error.
    let evicted = match &*head {
        FillHead::Refreshed { .. } if !not_ours => {
            f.refreshed = lookup(edge, ctx.key(), &ctx.headers).await;
            f.refreshed.is_none()
        }
        _ => false,
    };
    if !(f.may_go_alone && ((not_ours && !f.leader) || evicted)) {
        return Phase::Respond(f, head);
    }
    // Not ours to see (Set-Cookie, private, Authorization, another variant): fetch
    // alone, revalidating our own stored response if we have one (and it is still
    // stored).
    let request = FillRequest {
        ctx: ctx.clone(),
        stored: f.stale.as_ref().filter(|_| !evicted).map(Found::stored),
        range_fill_max: f.range_fill_max,
    };
    let Some((reader, _)) = fetch_alone(edge, request) else {
        return Phase::Done(ctx.error(StatusCode::BAD_GATEWAY, "The origin fetch failed."));
    };
    f.reader = reader;
    f.leader = true;
    f.may_go_alone = false;
    Phase::Follow(f)
}

/// Whether the fill's head may not answer this request.
fn not_ours(ctx: &RequestCtx, f: &Following, head: &FillHead) -> bool {
    match head {
        FillHead::Response {
            shareable,
            headers,
            vary,
            ..
        } => {
            !shareable
                // RFC 9111 §3.5, as for a stored response.
                || (ctx.facts.has_authorization && !authorization_allows(headers))
                || vary.as_ref().is_some_and(|(names, suffix)| {
                    httpcache::variant_suffix(names, &ctx.headers) != *suffix
                })
        }
        // A 304 validated the leader's stored response: ours only if it is the one this
        // request would have revalidated (not another variant's, RFC 9111 §4.1).
        FillHead::Refreshed { key } => f.stale.as_ref().is_none_or(|s| s.hit.info.key != *key),
        // Abandoned for a range request: a viewer without one fetches the object.
        FillHead::RangePassThrough => !f.wants_range,
        FillHead::Failed { .. } => false,
    }
}

/// The answer from the fill's head (or the stale copy when the origin failed).
async fn respond(
    edge: &Arc<Edge>,
    ctx: &Arc<RequestCtx>,
    mut f: Following,
    head: Arc<FillHead>,
) -> Phase {
    if let Some(answer) = stale_if_error(ctx, &mut f, &head) {
        return Phase::Done(answer);
    }
    let answer = match &*head {
        FillHead::Failed {
            status,
            message,
            detailed,
        } => ctx.error(*status, message).detailed(detailed),
        FillHead::Refreshed { .. } => match f.refreshed.take() {
            Some(found) => serve(
                ctx,
                found,
                ResultType::RefreshHit,
                "RefreshHit",
                SystemTime::now(),
            ),
            None => ctx.error(
                StatusCode::BAD_GATEWAY,
                "The refreshed object could not be read.",
            ),
        },
        FillHead::RangePassThrough if f.wants_range => pass::range(edge, ctx).await,
        // A viewer without a range fetched the object itself (follow).
        FillHead::RangePassThrough => {
            ctx.error(StatusCode::BAD_GATEWAY, "The origin fetch failed.")
        }
        FillHead::Response {
            status, headers, ..
        } => from_fill(ctx, f, *status, headers.clone()),
    };
    Phase::Done(answer)
}

/// RFC 5861 §4: an error while revalidating may be answered with the stale copy.
fn stale_if_error(ctx: &RequestCtx, f: &mut Following, head: &FillHead) -> Option<Answer> {
    let origin_failed = match head {
        FillHead::Failed { .. } => true,
        FillHead::Response { status, .. } => matches!(status.as_u16(), 500 | 502 | 503 | 504),
        _ => false,
    };
    if !origin_failed {
        return None;
    }
    let found = f.stale.take()?;
    let sf = found.meta.facts(ctx.now);
    // A stored error is no better than the origin's: never served in its place.
    let status = found.meta.status();
    let usable = !(status.is_client_error() || status.is_server_error());
    if !(usable && httpcache::stale_if_error_allows(ctx.mode(), &sf, &ctx.facts)) {
        return None;
    }
    Some(serve(
        ctx,
        found,
        ResultType::Hit,
        "StaleIfError",
        SystemTime::now(),
    ))
}

/// The response to this viewer from the fill's head and body: RFC 9110 §14.2, the range
/// of a 200 whose length is known is cut out of the body as it arrives (the fill goes on
/// storing the whole object).
fn from_fill(ctx: &RequestCtx, f: Following, status: StatusCode, mut h: HeaderMap) -> Answer {
    let result = ResultType::from_origin_status(status);
    let dist = Some(ctx.dist.clone());
    let len = h
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (true, Some(len)) = (f.wants_range && status == StatusCode::OK, len) {
        let outcome = range::range_request(&ctx.method, &ctx.headers, &h, len);
        let mut with_ranges = h.clone();
        with_ranges.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let hit::Ranged::Partial(status, mut h, list) = hit::ranges(outcome, with_ranges, len) {
            decorate(&mut h, ctx.edge_name(), result);
            let body = if list.is_empty() {
                body::empty()
            } else {
                hit::pieces(fill_chunks(f.reader), list)
            };
            return Answer::new(response(status, h, body), result, dist);
        }
    }
    decorate(&mut h, ctx.edge_name(), result);
    let body = if ctx.method == Method::HEAD {
        body::empty()
    } else {
        follow_body(f.reader)
    };
    Answer::new(response(status, h, body), result, dist)
}

fn response(
    status: StatusCode,
    headers: HeaderMap,
    body: body::BoxBody,
) -> Response<body::BoxBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}
