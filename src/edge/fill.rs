//! One origin fetch for a cache key, run in its own task so that no viewer hanging up can
//! cancel it for the others, in three steps: [`fetch`] (the origin request, revalidating
//! the stored response when there is one), [`admit`] (the admission decision, asked of
//! `httpcache::admit` once, and the store write it begins) and [`stream_and_store`] (the
//! body to the followers chunk by chunk while it is written, committed only when it ended
//! cleanly). A 304 to a revalidation refreshes the stored metadata without touching the
//! body; a panic anywhere releases the followers with an error.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::FutureExt;
use http::header::{HeaderValue, CONTENT_LENGTH, DATE, SET_COOKIE, TRANSFER_ENCODING};
use http::response::Parts;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::BoxBody;
use crate::cache_key::forward::Exchange;
use crate::cache_key::variant_key;
use crate::collapse::{End, Fill};
use crate::config::ListPolicy;
use crate::edge::context::RequestCtx;
use crate::edge::head::FillHead;
use crate::edge::meta::{Freshness, Meta, StoredResponse};
use crate::edge::state::Edge;
use crate::edge::tier;
use crate::fault::panic_message;
use crate::httpcache::{self, Admission, Admitting, Received, StoreDecision, VarySpec};
use crate::metrics::PanicSite;
use crate::origin::fetch as fetch_from;
use crate::store::{ObjectInfo, ObjectSpec, ObjectWriter};

/// What a fill needs to know about its request.
pub struct FillRequest {
    /// The request that started the fill (its viewer, policies and headers are the ones
    /// forwarded; its facts decide the storing).
    pub ctx: Arc<RequestCtx>,
    /// The stored object being revalidated, if any.
    pub stored: Option<(ObjectInfo, StoredResponse)>,
    /// Set for a range request on a miss: the behaviour's `range_fill_max`. A 200 whose
    /// Content-Length is above it is abandoned ([`FillHead::RangePassThrough`]).
    pub range_fill_max: Option<u64>,
}

impl FillRequest {
    fn key(&self) -> &[u8] {
        self.ctx.key()
    }
}

/// Starts the fill task. `registered`: the fill is in the collapse table under the key
/// (and is removed from it when it ends).
pub fn spawn(edge: Arc<Edge>, req: FillRequest, fill: Arc<Fill<FillHead>>, registered: bool) {
    tokio::spawn(async move {
        let key = req.key().to_vec();
        let ran = AssertUnwindSafe(run(&edge, req, &fill, registered))
            .catch_unwind()
            .await;
        if let Err(panic) = ran {
            edge.metrics.panicked(PanicSite::Fill);
            tracing::error!(key = %String::from_utf8_lossy(&key), panic = panic_message(&*panic), "a fill panicked; its viewers get an error and nothing is stored");
            // Followers are released: with an error status before the head, with a
            // failed body after it. An unfinished store write is dropped, never committed.
            if !fill.has_head() {
                fill.set_head(FillHead::Failed {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "The edge failed while fetching this object.",
                    detailed: "Error",
                });
            }
            fill.end(End::Failed("the fill failed inside the edge".into()));
        }
        if registered {
            edge.fills.finish(&key, &fill);
        }
    });
}

async fn run(edge: &Edge, req: FillRequest, fill: &Arc<Fill<FillHead>>, registered: bool) {
    let request_time = SystemTime::now();
    let Some(resp) = fetch(edge, &req, fill).await else {
        return;
    };
    crate::fault::inject(&req.ctx.headers, "panic-fill");
    let response_time = SystemTime::now();
    let (parts, body) = resp.into_parts();
    if let (Some((info, stored)), StatusCode::NOT_MODIFIED) = (&req.stored, parts.status) {
        refresh(
            edge,
            &req,
            info,
            stored,
            &parts.headers,
            (request_time, response_time),
        );
        fill.set_head(FillHead::Refreshed {
            key: info.key.clone(),
        });
        fill.end(End::Complete);
        return;
    }
    let content_length = content_length(&parts.headers);
    if let Some(max) = req.range_fill_max {
        if parts.status == StatusCode::OK && content_length.is_some_and(|l| l > max) {
            tracing::debug!(key = %String::from_utf8_lossy(req.key()), length = content_length, range_fill_max = max, "a range request on a miss for an object above range_fill_max: the range goes to the origin");
            fill.set_head(FillHead::RangePassThrough);
            fill.end(End::Complete);
            return;
        }
    }
    let times = (request_time, response_time);
    let (head, writer) = admit(edge, &req, parts, times);
    let shareable = matches!(
        &head,
        FillHead::Response {
            shareable: true,
            ..
        }
    );
    fill.set_head(head);
    if !shareable && registered {
        // Later viewers must not follow a response that is not theirs to see.
        edge.fills.finish(req.key(), fill);
    }
    stream_and_store(edge, &req, fill, body, writer, content_length).await;
}

/// The origin's response, or None when the fill failed (its followers told why).
async fn fetch(edge: &Edge, req: &FillRequest, fill: &Fill<FillHead>) -> Option<Response<BoxBody>> {
    let ctx = &req.ctx;
    let conditional = req
        .stored
        .as_ref()
        .map(|(_, s)| httpcache::conditional_headers(&s.header_map()))
        .unwrap_or_default();
    let forward = ctx.forward(Method::GET, Exchange::Fill, conditional);
    let fetched = fetch_from(
        &ctx.behavior.plan,
        &Method::GET,
        |origin| forward.to(origin, ctx.edge_name(), None),
        |o, r, t| edge.metrics.origin(ctx.dist_id(), &o.id, r, t),
    )
    .await;
    let failed = |status, message, detailed, why: String| {
        fill.set_head(FillHead::Failed {
            status,
            message,
            detailed,
        });
        fill.end(End::Failed(why));
        None
    };
    let Some(fetched) = fetched else {
        let why = format!(
            "distribution {}: no origin configured for target {}",
            ctx.dist_id(),
            ctx.behavior.config.target
        );
        tracing::error!("{why}");
        let msg = "No origin is configured for this path.";
        return failed(StatusCode::BAD_GATEWAY, msg, "OriginConnectError", why);
    };
    match fetched.result {
        Ok(mut r) => {
            tier::from_parent(&fetched.origin.origin, r.headers_mut());
            Some(r)
        }
        Err(e) => {
            tracing::warn!(distribution = %ctx.dist_id(), error = %e, "origin request failed");
            failed(
                e.status(),
                e.viewer_message(),
                e.detailed_result(),
                e.to_string(),
            )
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The admission decision for the origin's response head, and the store write it begins
/// when the response is stored. Returns the head the followers get.
fn admit(
    edge: &Edge,
    req: &FillRequest,
    parts: Parts,
    (request_time, response_time): (SystemTime, SystemTime),
) -> (FillHead, Option<ObjectWriter>) {
    let ctx = &req.ctx;
    // Close-delimited bodies cannot be told apart from truncated ones: never stored.
    let delimited = parts.headers.contains_key(CONTENT_LENGTH)
        || parts
            .headers
            .get(TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut headers = parts.headers;
    httpcache::strip_hop_by_hop(&mut headers);
    // Stored with the object, sent to nobody.
    let tags = httpcache::tags::take_tags(&mut headers);
    let received = Received {
        request_time,
        response_time,
        revalidating: req.stored.is_some(),
        delimited,
        content_length: content_length(&headers),
        max_object_size: edge.max_object_size(),
    };
    let admitted = httpcache::admit(
        &ctx.behavior.store_policy,
        &ctx.facts,
        parts.status,
        &headers,
        &received,
        Admitting::Whole,
    );
    add_date_if_absent(&mut headers, response_time);
    tracing::debug!(key = %String::from_utf8_lossy(ctx.key()), status = parts.status.as_u16(), stored = admitted.stored(), reason = admitted.reason(), "origin response");
    let vary_names = match &admitted.vary {
        VarySpec::Names(n) if !n.is_empty() => Some(n.clone()),
        _ => None,
    };
    let writer = admitted.stored().then(|| {
        let times = (request_time, response_time);
        begin_store(edge, ctx, parts.status, &headers, &admitted, tags, times)
    });
    let head = FillHead::Response {
        status: parts.status,
        shareable: admitted.stored(),
        vary: vary_names.map(|n| {
            let suffix = httpcache::variant_suffix(&n, &ctx.headers);
            (n, suffix)
        }),
        headers,
    };
    (head, writer.flatten())
}

/// Begins the store write of an admitted response (with Vary: at its variant's key, the
/// primary key holding the Vary index). None when the store refuses it (warned).
fn begin_store(
    edge: &Edge,
    ctx: &RequestCtx,
    status: StatusCode,
    headers: &HeaderMap,
    admitted: &Admission,
    tags: Vec<String>,
    (request_time, response_time): (SystemTime, SystemTime),
) -> Option<ObjectWriter> {
    let mut kept = stored_headers(headers);
    for f in &admitted.decision.strip_fields {
        kept.remove(f);
    }
    let names: Vec<String> = match &admitted.vary {
        VarySpec::Names(n) => n.iter().map(|n| n.as_str().to_string()).collect(),
        VarySpec::Star => Vec::new(),
    };
    let meta = StoredResponse::new(
        status,
        &kept,
        request_time,
        response_time,
        admitted.age,
        &freshness(&admitted.decision),
        names.clone(),
    );
    let expires_at = meta.expires_at();
    let key = if names.is_empty() {
        ctx.key().to_vec()
    } else {
        // The primary key holds the list of names; the response goes to its variant.
        index_variants(edge, ctx, &names, response_time, expires_at);
        variant_key(ctx.key(), &names, &ctx.headers)
    };
    let spec = ObjectSpec {
        key,
        distribution: ctx.dist_id().to_string(),
        tags,
        meta: meta.encode(),
        stored_at: response_time,
        expires_at,
    };
    match edge.store.begin(spec) {
        Ok(w) => Some(w),
        Err(e) => {
            let what = "cannot store this response; passing it through";
            edge.store_warnings.warn(ctx.dist_id(), what, &e);
            None
        }
    }
}

/// The body to the followers as it arrives, into the store while `writer` lasts; the
/// object is committed only when the body ended cleanly.
async fn stream_and_store(
    edge: &Edge,
    req: &FillRequest,
    fill: &Fill<FillHead>,
    mut body: BoxBody,
    mut writer: Option<ObjectWriter>,
    content_length: Option<u64>,
) {
    let dist = req.ctx.dist_id();
    // The last chunk (with Content-Length: the one completing it; without: the latest)
    // is held back until the object is committed, so that a viewer who has the whole body
    // knows it is in the store (it survives a crash from then on).
    let mut held: Option<bytes::Bytes> = None;
    let mut received = 0u64;
    loop {
        if writer.is_none() && fill.readers() == 0 {
            // Nobody is reading and nothing is being stored.
            fill.end(End::Failed("no viewer left".into()));
            return;
        }
        let data = match body.frame().await {
            None => break,
            Some(Err(e)) => {
                tracing::warn!(distribution = %dist, error = %e, "origin response ended early; nothing stored");
                fill.end(End::Failed(e.to_string()));
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
        };
        if let Some(w) = writer.as_mut() {
            if let Err(e) = w.write(&data) {
                let what = "cannot store this response (write failed); passing the rest through";
                edge.store_warnings.warn(dist, what, &e);
                writer = None;
            }
        }
        received += data.len() as u64;
        let may_be_last = content_length.is_none_or(|len| received >= len);
        if let Some(prev) = held.take() {
            fill.push(prev).await;
        }
        if may_be_last && writer.is_some() {
            held = Some(data);
        } else {
            fill.push(data).await;
        }
    }
    if let Some(w) = writer {
        if let Err(e) = w.commit() {
            let what = "cannot store this response (commit failed); it was passed through";
            edge.store_warnings.warn(dist, what, &e);
        }
    }
    if let Some(last) = held {
        fill.push(last).await;
    }
    fill.end(End::Complete);
}

/// The headers kept with a stored response: end-to-end ones, without the length (the
/// store knows the body length) and without per-hop caching headers the edge regenerates.
fn stored_headers(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    h.remove(CONTENT_LENGTH);
    h.remove(http::header::AGE);
    h
}

/// RFC 9111 §4.3.4: a 304 updates the stored headers (all but the ones describing the
/// body) and the freshness; the body stays.
fn refresh(
    edge: &Edge,
    req: &FillRequest,
    info: &ObjectInfo,
    stored: &StoredResponse,
    fresh: &HeaderMap,
    (request_time, response_time): (SystemTime, SystemTime),
) {
    let behavior = &req.ctx.behavior;
    let mut update = fresh.clone();
    if behavior.config.cache_key.cookies == ListPolicy::None {
        // The refreshed object is served to every viewer: one viewer's Set-Cookie must
        // not become part of it (a 200 with Set-Cookie is not stored either).
        update.remove(SET_COOKIE);
    }
    httpcache::strip_hop_by_hop(&mut update);
    // The object keeps the tags it was stored with.
    httpcache::tags::strip_tag_headers(&mut update);
    add_date_if_absent(&mut update, response_time);
    let merged = merged_headers(stored, &update);
    let policy = &behavior.store_policy;
    let decision = httpcache::decide_store(
        policy,
        &req.ctx.facts,
        stored.status(),
        &merged,
        response_time,
    );
    let mut merged = merged;
    for f in &decision.strip_fields {
        merged.remove(f);
    }
    let age = httpcache::initial_age(fresh, request_time, response_time);
    let meta = StoredResponse::new(
        stored.status(),
        &merged,
        request_time,
        response_time,
        age,
        &freshness(&decision),
        stored.vary.clone(),
    );
    let key = &info.key;
    let result = if decision.store {
        let expires_at = meta.expires_at();
        edge.store
            .update_meta(key, meta.encode(), response_time, expires_at)
    } else {
        edge.store.remove(key)
    };
    if let Err(e) = result {
        tracing::warn!(key = %String::from_utf8_lossy(key), error = %e, "could not refresh a revalidated object");
    }
}

/// The stored headers with a 304's `update` applied (RFC 9111 §3.2): every field it sends
/// replaces the stored one, except those describing the body.
fn merged_headers(stored: &StoredResponse, update: &HeaderMap) -> HeaderMap {
    let mut merged = stored.header_map();
    for name in update.keys() {
        if name == CONTENT_LENGTH
            || name == http::header::CONTENT_ENCODING
            || name == http::header::CONTENT_RANGE
        {
            continue;
        }
        merged.remove(name);
        for v in update.get_all(name) {
            merged.append(name.clone(), v.clone());
        }
    }
    merged.remove(http::header::AGE);
    merged
}

/// RFC 9110 §6.6.1: a response received without Date gets the time it was received
/// before it is cached or forwarded, so that later hits send that Date with an Age that
/// agrees with it (instead of a Date made up when each hit is sent).
fn add_date_if_absent(headers: &mut HeaderMap, response_time: SystemTime) {
    if !headers.contains_key(DATE) {
        if let Ok(v) = HeaderValue::from_str(&httpcache::format_http_date(response_time)) {
            headers.insert(DATE, v);
        }
    }
}

fn freshness(d: &StoreDecision) -> Freshness {
    Freshness {
        lifetime: d.freshness,
        rule: d.rule.as_str(),
        clamp: d.clamp.as_str(),
        revalidate_each_use: d.revalidate_each_use,
        must_revalidate: d.must_revalidate,
        stale_while_revalidate: d.stale_while_revalidate,
        stale_if_error: d.stale_if_error,
    }
}

/// Stores (or renews) the Vary index at the primary key: the names its variants are keyed
/// by.
fn index_variants(
    edge: &Edge,
    ctx: &RequestCtx,
    names: &[String],
    now: SystemTime,
    expires_at: SystemTime,
) {
    let primary = ctx.key();
    // The index lives at least as long as the newest variant.
    let expires_at = match edge.store.info(primary) {
        Ok(Some(i)) => i.expires_at.max(expires_at),
        _ => expires_at,
    };
    let spec = ObjectSpec {
        key: primary.to_vec(),
        distribution: ctx.dist_id().to_string(),
        // Untagged: a tag invalidation removes the variants carrying the tag, and the
        // index then just leads to misses for them.
        tags: Vec::new(),
        meta: Meta::Variants(names.to_vec()).encode(),
        stored_at: now,
        expires_at,
    };
    if let Err(e) = edge.store.insert(spec, b"") {
        edge.store_warnings
            .warn(ctx.dist_id(), "cannot store a Vary index", &e);
    }
}
