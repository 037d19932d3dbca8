//! Requests the edge passes to the origin without caching them, with the origin's answer
//! straight back: methods other than GET and HEAD (their bodies bounded by
//! `max_request_body`, and a non-error answer invalidating what is stored for the path,
//! RFC 9111 §4.4), and a range request on a miss for an object above `range_fill_max`
//! (its Range and If-Range go along; a 206 is stored as a part when it may be). One path
//! for both.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{
    HeaderValue, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, IF_RANGE, RANGE,
    TRANSFER_ENCODING,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::body::{self, BoxBody};
use crate::cache_key::forward::Exchange;
use crate::cache_key::{exact_path_prefix, normalize_path};
use crate::config::Origin;
use crate::edge::answer::Answer;
use crate::edge::context::RequestCtx;
use crate::edge::partial;
use crate::edge::respond::decorate;
use crate::edge::state::Edge;
use crate::edge::tier;
use crate::httpcache;
use crate::metrics::Refusal;
use crate::origin::fetch;
use crate::result::ResultType;

/// What is passed through.
enum Passed {
    /// A method the edge does not cache, with its body; `exceeded` is set if a chunked
    /// body grew past `limit` while it streamed.
    Method {
        body: Option<BoxBody>,
        exceeded: Arc<AtomicBool>,
        limit: u64,
    },
    /// A range request on a miss above `range_fill_max`.
    Range,
}

/// A method the edge does not cache: to the origin as it is, its answer straight back.
pub async fn method(edge: &Edge, ctx: &RequestCtx, req: Request<Incoming>) -> Answer {
    let limit = ctx.rt.config.edge.max_request_body;
    // hyper knows a Content-Length body's size up front (it has checked the header).
    if req.body().size_hint().exact().is_some_and(|n| n > limit) {
        return too_large(edge, ctx, limit);
    }
    let has_body =
        req.headers().contains_key(CONTENT_LENGTH) || req.headers().contains_key(TRANSFER_ENCODING);
    let exceeded = Arc::new(AtomicBool::new(false));
    let body = has_body.then(|| body::incoming_limited(req.into_body(), limit, exceeded.clone()));
    pass(
        edge,
        ctx,
        Passed::Method {
            body,
            exceeded,
            limit,
        },
    )
    .await
}

/// A range request on a miss for an object above `range_fill_max`.
pub async fn range(edge: &Edge, ctx: &RequestCtx) -> Answer {
    pass(edge, ctx, Passed::Range).await
}

async fn pass(edge: &Edge, ctx: &RequestCtx, passed: Passed) -> Answer {
    let (method, exchange, copied, mut body, limit) = match passed {
        Passed::Method {
            body,
            exceeded,
            limit,
        } => (
            ctx.method.clone(),
            Exchange::PassThrough,
            [CONTENT_TYPE, CONTENT_ENCODING],
            body,
            Some((exceeded, limit)),
        ),
        Passed::Range => (Method::GET, Exchange::Fill, [RANGE, IF_RANGE], None, None),
    };
    let mut extra = HeaderMap::new();
    for name in copied {
        if let Some(v) = ctx.headers.get(&name) {
            extra.insert(name, v.clone());
        }
    }
    let forward = ctx.forward(method.clone(), exchange, extra);
    let request_time = SystemTime::now();
    let fetched = fetch(
        &ctx.behavior.plan,
        &method,
        |origin| forward.to(origin, ctx.edge_name(), body.take()),
        |o, r, t| edge.metrics.origin(ctx.dist_id(), &o.id, r, t),
    )
    .await;
    let response_time = SystemTime::now();
    let Some(fetched) = fetched else {
        return ctx.error(
            StatusCode::BAD_GATEWAY,
            "No origin is configured for this path.",
        );
    };
    // A chunked body that grew past the limit while streaming: its origin request was
    // aborted, whatever that made of the response.
    if let Some((exceeded, limit)) = &limit {
        if exceeded.load(Ordering::SeqCst) {
            return too_large(edge, ctx, *limit);
        }
    }
    let resp = match fetched.result {
        Ok(resp) => resp,
        Err(e) => {
            tracing::warn!(distribution = %ctx.dist_id(), error = %e, "origin request failed");
            return ctx
                .error(e.status(), e.viewer_message())
                .detailed(e.detailed_result());
        }
    };
    let (mut parts, mut body) = resp.into_parts();
    tier::from_parent(&fetched.origin.origin, &mut parts.headers);
    if limit.is_some() {
        invalidate_after(edge, ctx, &fetched.origin.origin, &parts);
        httpcache::strip_hop_by_hop(&mut parts.headers);
        httpcache::tags::strip_tag_headers(&mut parts.headers);
    } else {
        httpcache::strip_hop_by_hop(&mut parts.headers);
        let tags = httpcache::tags::take_tags(&mut parts.headers);
        if parts.status == StatusCode::PARTIAL_CONTENT {
            let times = (request_time, response_time);
            body = partial::store_while_streaming(edge, ctx, &parts.headers, tags, body, times);
        }
    }
    let result = ResultType::from_origin_status(parts.status);
    decorate(&mut parts.headers, ctx.edge_name(), result);
    Answer::new(
        Response::from_parts(parts, body),
        result,
        Some(ctx.dist.clone()),
    )
}

/// 413: the request body is larger than the edge accepts.
fn too_large(edge: &Edge, ctx: &RequestCtx, limit: u64) -> Answer {
    edge.metrics.refused(Refusal::BodyTooLarge);
    let mut a = ctx.error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("The request body is larger than this edge accepts ({limit} bytes)."),
    );
    // The rest of the body is not read: the connection cannot carry another request.
    a.resp
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    a
}

/// RFC 9111 §4.4: a non-error response to an unsafe method invalidates what is stored for
/// the request's path and for same-origin Location / Content-Location paths (every
/// variant: the invalidation is a prefix removal of the exact path).
fn invalidate_after(edge: &Edge, ctx: &RequestCtx, origin: &Origin, resp: &http::response::Parts) {
    let keyed = &ctx.asked.keyed;
    // The origin's responses speak in its own URL space: its authority, its path prefix.
    let origin_path = format!("{}{}", origin.path, keyed.path);
    let authority = match &keyed.viewer_host {
        Some(h) => h.clone(),
        None => format!("{}:{}", origin.host, origin.port),
    };
    let targets = httpcache::invalidation_targets(
        &ctx.method,
        resp.status,
        &origin_path,
        Some(&authority),
        &resp.headers,
    );
    let d = ctx.dist_id();
    for target in targets {
        let Some(viewer_path) = target.strip_prefix(origin.path.as_str()) else {
            continue;
        };
        let Ok(mut path) = normalize_path(viewer_path) else {
            continue;
        };
        if path == "/" {
            // The same normalised form as the key of "/" (cache_key).
            if let Some(root) = &ctx.dist.root_object_path {
                path = root.clone();
            }
        }
        match edge.store.remove_prefix(&exact_path_prefix(d, &path)) {
            Ok(n) => {
                tracing::debug!(distribution = %d, path = %path, removed = n, "invalidated after {}", ctx.method)
            }
            Err(e) => {
                tracing::warn!(distribution = %d, path = %path, error = %e, "invalidation after {} failed", ctx.method)
            }
        }
    }
}
