//! One origin fetch for a cache key, run in its own task so that no viewer hanging up can
//! cancel it for the others. It publishes the response head to its followers, streams the
//! body to them chunk by chunk while writing it to the store, and commits the object only
//! when the body ended cleanly. A 304 to a revalidation refreshes the stored metadata
//! without touching the body.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::FutureExt;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, DATE, SET_COOKIE, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;

use crate::cache_key::forward::{Exchange, Policies};
use crate::collapse::{End, Fill};
use crate::config::{Behavior, Distribution, ListPolicy};
use crate::edge::forward::ViewerRequest;
use crate::edge::meta::{Freshness, Meta, StoredResponse};
use crate::edge::server::panic_message;
use crate::edge::{Edge, Runtime};
use crate::httpcache::{
    self, ErrorTtls, Mode, RequestFacts, StoreDecision, StorePolicy, TtlSettings, VarySpec,
};
use crate::metrics::PanicSite;
use crate::origin::{fetch, FetchPlan};
use crate::store::{ObjectInfo, ObjectSpec};

/// What a fill publishes before its body.
#[derive(Debug)]
pub enum FillHead {
    /// The origin's response. `shareable`: may be served to viewers other than the one
    /// that started the fill (it is being stored, so it may be shared).
    Response {
        status: StatusCode,
        headers: HeaderMap,
        shareable: bool,
        /// With `Vary`: the names, and the variant suffix of the request that started
        /// the fill (a follower whose own suffix differs must fetch its own variant).
        vary: Option<(Vec<HeaderName>, Vec<u8>)>,
    },
    /// A 304 refreshed the stored object at `key` (with `Vary`, one variant's key): serve
    /// it from the store.
    Refreshed { key: Vec<u8> },
    /// The fill was started by a range request on a miss and the object is larger than
    /// the behaviour's `range_fill_max`: its body is neither read nor stored; a viewer
    /// with a Range asks the origin for its range, any other fetches the object itself.
    RangePassThrough,
    /// The origin failed; every follower gets this status with `message` (the cause, for
    /// the viewer) and `detailed` (the access log's detailed result type).
    Failed {
        status: StatusCode,
        message: &'static str,
        detailed: &'static str,
    },
}

/// What a fill needs to know about its request.
pub struct FillRequest {
    pub dist: usize,
    pub behavior: Option<usize>,
    pub asked: ViewerRequest,
    /// The stored object being revalidated, if any.
    pub stored: Option<(ObjectInfo, StoredResponse)>,
    /// The viewer's request headers (Vary, Authorization).
    pub request: HeaderMap,
    /// Set for a range request on a miss: the behaviour's `range_fill_max`. A 200 whose
    /// Content-Length is above it is abandoned ([`FillHead::RangePassThrough`]).
    pub range_fill_max: Option<u64>,
}

pub fn behavior(d: &Distribution, idx: Option<usize>) -> &Behavior {
    idx.and_then(|i| d.behaviors.get(i))
        .unwrap_or(&d.default_behavior)
}

/// The origins a behaviour's target names, in failover order.
pub fn plan(rt: &Runtime, d: &Distribution, b: &Behavior) -> FetchPlan {
    let (ids, statuses): (Vec<&str>, Vec<u16>) = match d.group(&b.target) {
        Some(g) => (
            g.members.iter().map(String::as_str).collect(),
            g.failover_statuses.clone(),
        ),
        None => (vec![b.target.as_str()], Vec::new()),
    };
    FetchPlan {
        members: ids
            .into_iter()
            .filter_map(|id| rt.origins.get(&d.id, id))
            .collect(),
        failover_statuses: statuses,
    }
}

/// Starts the fill task. `registered`: the fill is in the collapse table under the key
/// (and is removed from it when it ends).
pub fn spawn(
    edge: Arc<Edge>,
    rt: Arc<Runtime>,
    req: FillRequest,
    fill: Arc<Fill<FillHead>>,
    registered: bool,
) {
    tokio::spawn(async move {
        let key = req.asked.keyed.key.clone();
        let ran = AssertUnwindSafe(run(&edge, &rt, req, &fill, registered))
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

async fn run(
    edge: &Edge,
    rt: &Runtime,
    req: FillRequest,
    fill: &Arc<Fill<FillHead>>,
    registered: bool,
) {
    let Some(d) = rt.config.distributions.get(req.dist) else {
        fill.end(End::Failed("the distribution is gone".into()));
        return;
    };
    let b = behavior(d, req.behavior);
    let plan = plan(rt, d, b);
    let conditional = req
        .stored
        .as_ref()
        .map(|(_, s)| httpcache::conditional_headers(&s.header_map()))
        .unwrap_or_default();
    let request_time = SystemTime::now();
    let edge_name = rt.config.edge.name.clone();
    let forward = req.asked.forward(
        Method::GET,
        &req.request,
        Policies::of(b),
        Exchange::Fill,
        conditional,
    );
    let fetched = fetch(
        &plan,
        &Method::GET,
        |origin| forward.to(origin, &edge_name, None),
        |o, r, t| edge.metrics.origin(&d.id, &o.id, r, t),
    )
    .await;
    let Some(fetched) = fetched else {
        let detail = format!(
            "distribution {}: no origin configured for target {}",
            d.id, b.target
        );
        tracing::error!("{detail}");
        fill.set_head(FillHead::Failed {
            status: StatusCode::BAD_GATEWAY,
            message: "No origin is configured for this path.",
            detailed: "OriginConnectError",
        });
        fill.end(End::Failed(detail));
        return;
    };
    let resp = match fetched.result {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(distribution = %d.id, error = %e, "origin request failed");
            fill.set_head(FillHead::Failed {
                status: e.status(),
                message: e.viewer_message(),
                detailed: e.detailed_result(),
            });
            fill.end(End::Failed(e.to_string()));
            return;
        }
    };
    crate::fault::inject(&req.request, "panic-fill");
    let response_time = SystemTime::now();
    let (parts, mut body) = resp.into_parts();
    let policy = store_policy(b);
    let facts = RequestFacts::from_request(&Method::GET, &req.request);

    if let (Some((info, stored)), StatusCode::NOT_MODIFIED) = (&req.stored, parts.status) {
        let mut update = parts.headers.clone();
        if b.cache_key.cookies == ListPolicy::None {
            // The refreshed object is served to every viewer: one viewer's Set-Cookie
            // must not become part of it (a 200 with Set-Cookie is not stored either).
            update.remove(SET_COOKIE);
        }
        refresh(
            edge,
            &info.key,
            stored,
            &update,
            &policy,
            &facts,
            request_time,
            response_time,
        );
        fill.set_head(FillHead::Refreshed {
            key: info.key.clone(),
        });
        fill.end(End::Complete);
        return;
    }

    let content_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(max) = req.range_fill_max {
        if parts.status == StatusCode::OK && content_length.is_some_and(|l| l > max) {
            tracing::debug!(key = %String::from_utf8_lossy(&req.asked.keyed.key), length = content_length, range_fill_max = max, "a range request on a miss for an object above range_fill_max: the range goes to the origin");
            fill.set_head(FillHead::RangePassThrough);
            fill.end(End::Complete);
            return;
        }
    }

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
    let decision = httpcache::decide_store(&policy, &facts, parts.status, &headers, response_time);
    let age = httpcache::initial_age(&headers, request_time, response_time);
    add_date_if_absent(&mut headers, response_time);
    let max_size = edge
        .store
        .config()
        .max_object_size
        .unwrap_or(edge.store.config().capacity / 4);
    let vary = httpcache::vary_spec(&headers);
    let mut why_not: Option<&'static str> = None;
    if !decision.store {
        why_not = Some(decision.reason);
    } else if req.stored.is_some() && parts.status.as_u16() >= 500 {
        why_not = Some("an error never displaces a stored object being revalidated");
    } else if parts.status == StatusCode::PARTIAL_CONTENT {
        // RFC 9111 §3.3, §4: an incomplete response must not answer later requests as a
        // whole, and the store keeps no ranges: a 206 is passed through.
        why_not = Some("a partial response (206) is not stored");
    } else if !delimited {
        why_not = Some("the response has neither Content-Length nor chunked encoding");
    } else if headers.contains_key(SET_COOKIE) && b.set_cookie_prevents_storing() {
        why_not = Some("Set-Cookie while cookies are not in the cache key");
    } else if vary == VarySpec::Star {
        why_not = Some("Vary: * never matches a later request");
    } else if content_length.is_some_and(|l| l > max_size) {
        why_not = Some("larger than the largest stored object");
    } else if decision.freshness.saturating_sub(age).is_zero()
        && !httpcache::has_validator(&headers)
        && decision.stale_while_revalidate.is_none()
        && decision.stale_if_error.is_none()
    {
        why_not = Some("already stale and without a validator");
    }
    let shareable = why_not.is_none();
    tracing::debug!(key = %String::from_utf8_lossy(&req.asked.keyed.key), status = parts.status.as_u16(), stored = shareable, reason = why_not.unwrap_or(decision.reason), "origin response");
    let vary_names = match &vary {
        VarySpec::Names(n) if !n.is_empty() => Some(n.clone()),
        _ => None,
    };
    let vary_head = vary_names
        .as_ref()
        .map(|n| (n.clone(), httpcache::variant_suffix(n, &req.request)));

    let mut writer = None;
    if shareable {
        let mut kept = stored_headers(&headers);
        for f in &decision.strip_fields {
            kept.remove(f);
        }
        let names: Vec<String> = vary_names
            .iter()
            .flatten()
            .map(|n| n.as_str().to_string())
            .collect();
        let meta = StoredResponse::new(
            parts.status,
            &kept,
            request_time,
            response_time,
            age,
            &freshness(&decision),
            names.clone(),
        );
        let expires_at = meta.expires_at();
        let key = if names.is_empty() {
            req.asked.keyed.key.clone()
        } else {
            // The primary key holds the list of names; the response goes to its variant.
            index_variants(
                edge,
                &req.asked.keyed.key,
                &d.id,
                &names,
                response_time,
                expires_at,
            );
            crate::cache_key::variant_key(&req.asked.keyed.key, &names, &req.request)
        };
        match edge.store.begin(ObjectSpec {
            key,
            distribution: d.id.clone(),
            tags: tags.clone(),
            meta: meta.encode(),
            stored_at: response_time,
            expires_at,
        }) {
            Ok(w) => writer = Some(w),
            Err(e) => edge.store_warnings.warn(
                &d.id,
                "cannot store this response; passing it through",
                &e,
            ),
        }
    }
    fill.set_head(FillHead::Response {
        status: parts.status,
        headers,
        shareable,
        vary: vary_head,
    });
    if !shareable && registered {
        // Later viewers must not follow a response that is not theirs to see.
        edge.fills.finish(&req.asked.keyed.key, fill);
    }

    // The last chunk (with Content-Length: the one completing it; without: the latest)
    // is held back until the object is committed, so that a viewer who
    // has the whole body knows it is in the store (it survives a crash from then on).
    let mut held: Option<bytes::Bytes> = None;
    let mut received = 0u64;
    loop {
        if writer.is_none() && fill.readers() == 0 {
            // Nobody is reading and nothing is being stored.
            fill.end(End::Failed("no viewer left".into()));
            return;
        }
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                tracing::warn!(distribution = %d.id, origin = %fetched.origin.origin.base_url(), error = %e, "origin response ended early; nothing stored");
                fill.end(End::Failed(e.to_string()));
                return;
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if let Some(w) = writer.as_mut() {
                        if let Err(e) = w.write(&data) {
                            edge.store_warnings.warn(
                                &d.id,
                                "cannot store this response (write failed); passing the rest through",
                                &e,
                            );
                            writer = None;
                        }
                    }
                    received += data.len() as u64;
                    let may_be_last = match content_length {
                        Some(len) => received >= len,
                        None => true,
                    };
                    if let Some(prev) = held.take() {
                        fill.push(prev).await;
                    }
                    if may_be_last && writer.is_some() {
                        held = Some(data);
                    } else {
                        fill.push(data).await;
                    }
                }
            }
        }
    }
    if let Some(w) = writer {
        if let Err(e) = w.commit() {
            edge.store_warnings.warn(
                &d.id,
                "cannot store this response (commit failed); it was passed through",
                &e,
            );
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
#[allow(clippy::too_many_arguments)]
fn refresh(
    edge: &Edge,
    key: &[u8],
    stored: &StoredResponse,
    fresh: &HeaderMap,
    policy: &StorePolicy,
    facts: &RequestFacts,
    request_time: SystemTime,
    response_time: SystemTime,
) {
    let mut merged = stored.header_map();
    let mut update = fresh.clone();
    httpcache::strip_hop_by_hop(&mut update);
    // The object keeps the tags it was stored with.
    httpcache::tags::strip_tag_headers(&mut update);
    add_date_if_absent(&mut update, response_time);
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
    let decision = httpcache::decide_store(policy, facts, stored.status(), &merged, response_time);
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
    let expires_at = meta.expires_at();
    let result = if decision.store {
        edge.store
            .update_meta(key, meta.encode(), response_time, expires_at)
    } else {
        edge.store.remove(key)
    };
    if let Err(e) = result {
        tracing::warn!(key = %String::from_utf8_lossy(key), error = %e, "could not refresh a revalidated object");
    }
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

/// The storing rules of a behaviour: CloudFront mode, or strict RFC 9111 when its
/// default_ttl is 0.
fn store_policy(b: &Behavior) -> StorePolicy {
    let ttl = TtlSettings {
        default_ttl: b.default_ttl,
        min_ttl: b.min_ttl,
        max_ttl: b.max_ttl,
    };
    let mut p = StorePolicy::new(ttl);
    p.mode = if b.strict() {
        Mode::Strict
    } else {
        Mode::CloudFront
    };
    p.error_ttls = ErrorTtls {
        default: b.error_ttl,
        per_status: b.error_ttls.clone(),
    };
    p
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

/// Stores (or renews) the Vary index at a primary key: the names its variants are keyed by.
fn index_variants(
    edge: &Edge,
    primary: &[u8],
    distribution: &str,
    names: &[String],
    now: SystemTime,
    expires_at: SystemTime,
) {
    // The index lives at least as long as the newest variant.
    let expires_at = match edge.store.info(primary) {
        Ok(Some(i)) => i.expires_at.max(expires_at),
        _ => expires_at,
    };
    let spec = ObjectSpec {
        key: primary.to_vec(),
        distribution: distribution.to_string(),
        // Untagged: a tag invalidation removes the variants carrying the tag, and the
        // index then just leads to misses for them.
        tags: Vec::new(),
        meta: Meta::Variants(names.to_vec()).encode(),
        stored_at: now,
        expires_at,
    };
    if let Err(e) = edge.store.insert(spec, b"") {
        edge.store_warnings
            .warn(distribution, "cannot store a Vary index", &e);
    }
}
