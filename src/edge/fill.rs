//! One origin fetch for a cache key, run in its own task so that no viewer hanging up can
//! cancel it for the others. It publishes the response head to its followers, streams the
//! body to them chunk by chunk while writing it to the store, and commits the object only
//! when the body ended cleanly. A 304 to a revalidation refreshes the stored metadata
//! without touching the body.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{CONTENT_LENGTH, SET_COOKIE, TRANSFER_ENCODING, VARY};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;

use crate::cache_key::KeyedRequest;
use crate::collapse::{End, Fill};
use crate::config::{Behavior, Distribution, ListPolicy};
use crate::edge::forward::{origin_request, Viewer};
use crate::edge::meta::StoredResponse;
use crate::edge::{Edge, Runtime};
use crate::httpcache::{self, TtlSettings};
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
    },
    /// A 304 refreshed the stored object: serve it from the store.
    Refreshed,
    /// The origin failed; every follower gets this status.
    Failed { status: StatusCode, detail: String },
}

/// What a fill needs to know about its request.
pub struct FillRequest {
    pub dist: usize,
    pub behavior: Option<usize>,
    pub keyed: KeyedRequest,
    pub viewer: Viewer,
    /// The stored object being revalidated, if any.
    pub stored: Option<(ObjectInfo, StoredResponse)>,
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
        let key = req.keyed.key.clone();
        run(&edge, &rt, req, &fill, registered).await;
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
    let fetched = fetch(&plan, &Method::GET, |origin| {
        origin_request(
            origin,
            &edge_name,
            Method::GET,
            &req.keyed,
            &req.viewer,
            conditional.clone(),
            None,
        )
    })
    .await;
    let Some(fetched) = fetched else {
        let detail = format!(
            "distribution {}: no origin configured for target {}",
            d.id, b.target
        );
        tracing::error!("{detail}");
        fill.set_head(FillHead::Failed {
            status: StatusCode::BAD_GATEWAY,
            detail: detail.clone(),
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
                detail: e.to_string(),
            });
            fill.end(End::Failed(e.to_string()));
            return;
        }
    };
    let response_time = SystemTime::now();
    let (parts, mut body) = resp.into_parts();
    let settings = TtlSettings {
        default_ttl: b.default_ttl,
        min_ttl: b.min_ttl,
        max_ttl: b.max_ttl,
    };

    if let (Some((_, stored)), StatusCode::NOT_MODIFIED) = (&req.stored, parts.status) {
        let mut update = parts.headers.clone();
        if b.cache_key.cookies == ListPolicy::None {
            // The refreshed object is served to every viewer: one viewer's Set-Cookie
            // must not become part of it (a 200 with Set-Cookie is not stored either).
            update.remove(SET_COOKIE);
        }
        refresh(
            edge,
            &req.keyed.key,
            stored,
            &update,
            &settings,
            request_time,
            response_time,
        );
        fill.set_head(FillHead::Refreshed);
        fill.end(End::Complete);
        return;
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
    let decision = httpcache::cloudfront_ttl(&headers, parts.status, &settings, response_time);
    let age = httpcache::initial_age(&headers, request_time, response_time);
    let content_length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max_size = edge
        .store
        .config()
        .max_object_size
        .unwrap_or(edge.store.config().capacity / 4);
    let mut why_not: Option<&'static str> = None;
    if !decision.store {
        why_not = Some("the response may not be stored");
    } else if !delimited {
        why_not = Some("the response has neither Content-Length nor chunked encoding");
    } else if headers.contains_key(SET_COOKIE) && b.cache_key.cookies == ListPolicy::None {
        why_not = Some("Set-Cookie while cookies are not in the cache key");
    } else if !vary_is_keyed(&headers, b) {
        why_not = Some("Vary names a header the cache key does not include");
    } else if content_length.is_some_and(|l| l > max_size) {
        why_not = Some("larger than the largest stored object");
    } else if decision.ttl.saturating_sub(age).is_zero() && !httpcache::has_validator(&headers) {
        why_not = Some("already stale and without a validator");
    }
    let shareable = why_not.is_none();
    tracing::debug!(key = %String::from_utf8_lossy(&req.keyed.key), status = parts.status.as_u16(), stored = shareable, reason = why_not.unwrap_or("-"), "origin response");

    let mut writer = None;
    if shareable {
        let meta = StoredResponse::new(
            parts.status,
            &stored_headers(&headers),
            request_time,
            response_time,
            age,
            &decision,
        );
        let expires_at = meta.expires_at();
        match edge.store.begin(ObjectSpec {
            key: req.keyed.key.clone(),
            distribution: d.id.clone(),
            tags: Vec::new(),
            meta: meta.encode(),
            stored_at: response_time,
            expires_at,
        }) {
            Ok(w) => writer = Some(w),
            Err(e) => {
                tracing::warn!(distribution = %d.id, error = %e, "cannot store this response; passing it through")
            }
        }
    }
    fill.set_head(FillHead::Response {
        status: parts.status,
        headers,
        shareable,
    });
    if !shareable && registered {
        // Later viewers must not follow a response that is not theirs to see.
        edge.fills.finish(&req.keyed.key, fill);
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
                            tracing::warn!(distribution = %d.id, error = %e, "store write failed; passing the rest through");
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
            tracing::warn!(distribution = %d.id, error = %e, "store commit failed");
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

/// Can every header `Vary` names be told apart by the cache key?
fn vary_is_keyed(headers: &HeaderMap, b: &Behavior) -> bool {
    for v in headers.get_all(VARY) {
        let Ok(s) = v.to_str() else { return false };
        for name in s.split(',').map(|n| n.trim().to_ascii_lowercase()) {
            if name.is_empty() {
                continue;
            }
            if name == "*" || !b.cache_key.headers.contains(&name) {
                return false;
            }
        }
    }
    true
}

/// RFC 9111 §4.3.4: a 304 updates the stored headers (all but the ones describing the
/// body) and the freshness; the body stays.
#[allow(clippy::too_many_arguments)]
fn refresh(
    edge: &Edge,
    key: &[u8],
    stored: &StoredResponse,
    fresh: &HeaderMap,
    settings: &TtlSettings,
    request_time: SystemTime,
    response_time: SystemTime,
) {
    let mut merged = stored.header_map();
    let mut update = fresh.clone();
    httpcache::strip_hop_by_hop(&mut update);
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
    let decision = httpcache::cloudfront_ttl(&merged, stored.status(), settings, response_time);
    let age = httpcache::initial_age(fresh, request_time, response_time);
    let meta = StoredResponse::new(
        stored.status(),
        &merged,
        request_time,
        response_time,
        age,
        &decision,
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
