//! Stored partial responses (RFC 9111 §3.3): a 206 the origin sent for a range the edge
//! passed through (the object being larger than `range_fill_max`) is stored under the
//! primary key extended by `0x00 0x05 "first-last"`, and listed in a small index at
//! `primary ++ 0x00 0x05`. A later range request that one stored part covers is answered
//! from it, sliced, while it is fresh. Only single-part 206 responses with a known
//! complete length are stored; Vary'd partials are not.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use http::{HeaderMap, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::{BoxBody, BoxError};
use crate::edge::context::RequestCtx;
use crate::edge::hit;
use crate::edge::meta::{Freshness, Meta, StoredResponse};
use crate::edge::respond::{decorate, set_age};
use crate::edge::state::Edge;
use crate::edge::store_warn::StoreWarnings;
use crate::httpcache::{self, range, Admitting, Received, Reuse, StoredFacts};
use crate::result::ResultType;
use crate::store::{ObjectSpec, ObjectWriter, Store};

/// Stored parts listed per primary key, at most.
const MAX_PARTS: usize = 16;
const PARTS_TAG: u8 = 0x05;

fn index_key(primary: &[u8]) -> Vec<u8> {
    let mut k = primary.to_vec();
    k.extend_from_slice(&[0, PARTS_TAG]);
    k
}

fn part_key(primary: &[u8], first: u64, last: u64) -> Vec<u8> {
    let mut k = index_key(primary);
    k.extend_from_slice(format!("{first}-{last}").as_bytes());
    k
}

/// Answers a range request from a stored part that covers it, if one is fresh.
pub async fn serve(edge: &Edge, ctx: &RequestCtx) -> Option<Response<BoxBody>> {
    let (primary, req) = (ctx.key(), &ctx.headers);
    let index = edge.store.lookup_async(&index_key(primary)).await.ok()??;
    let Ok(Meta::Partials(parts)) = Meta::decode(&index.info.meta) else {
        return None;
    };
    let specs = req.get(RANGE).and_then(range::parse_range)?;
    let now = SystemTime::now();
    for (first, last) in parts.into_iter().rev() {
        let Ok(Some(hit)) = edge
            .store
            .lookup_async(&part_key(primary, first, last))
            .await
        else {
            continue;
        };
        let Ok(Meta::Response(meta)) = Meta::decode(&hit.info.meta) else {
            continue;
        };
        let stored = meta.header_map();
        let Some((part, Some(len))) = stored
            .get(CONTENT_RANGE)
            .and_then(range::parse_content_range)
        else {
            continue;
        };
        let range::RangeOutcome::Single(want) = range::resolve(&specs, len) else {
            continue;
        };
        if want.start < part.start || want.end > part.end || !range::if_range_allows(req, &stored) {
            continue;
        }
        let sf = StoredFacts {
            freshness: std::time::Duration::from_secs(meta.ttl_s),
            current_age: meta.age_at(now),
            revalidate_each_use: meta.revalidate_each_use,
            must_revalidate: meta.must_revalidate,
            stale_while_revalidate: None,
            stale_if_error: None,
            has_validator: false,
        };
        if httpcache::reuse(ctx.mode(), &sf, &ctx.facts) != Reuse::Fresh {
            continue;
        }
        let mut h = stored.clone();
        h.remove(CONTENT_RANGE);
        if let Ok(v) = HeaderValue::from_str(&range::content_range(&want, len)) {
            h.insert(CONTENT_RANGE, v);
        }
        h.insert(CONTENT_LENGTH, HeaderValue::from(want.length()));
        set_age(&mut h, meta.age_at(now));
        decorate(&mut h, ctx.edge_name(), ResultType::Hit);
        let slice = VecDeque::from([hit::Piece::Range(
            want.start - part.start,
            want.end - part.start,
        )]);
        let body = hit::pieces(hit::store_chunks(hit.body), slice);
        let mut resp = Response::new(body);
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        *resp.headers_mut() = h;
        return Some(resp);
    }
    None
}

/// If the origin's 206 may be stored, returns its body wrapped so that it is written to
/// the store as it streams to the viewer and committed (and indexed) when it ends. The part
/// carries `tags` (the index listing the parts does not: a missing part is skipped).
/// `times`: when the request was sent and its response's headers arrived.
pub fn store_while_streaming(
    edge: &Edge,
    ctx: &RequestCtx,
    headers: &HeaderMap,
    tags: Vec<String>,
    body: BoxBody,
    (request_time, response_time): (SystemTime, SystemTime),
) -> BoxBody {
    let Some((part, Some(_len))) = headers
        .get(CONTENT_RANGE)
        .and_then(range::parse_content_range)
    else {
        return body;
    };
    let content_length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let received = Received {
        request_time,
        response_time,
        revalidating: false,
        // The part's length comes from Content-Range: a cut body is never committed.
        delimited: true,
        content_length,
        max_object_size: edge.max_object_size(),
    };
    let admitted = httpcache::admit(
        &ctx.behavior.store_policy,
        &ctx.facts,
        StatusCode::PARTIAL_CONTENT,
        headers,
        &received,
        Admitting::Part,
    );
    if !admitted.stored() {
        tracing::debug!(key = %String::from_utf8_lossy(ctx.key()), reason = admitted.reason(), "partial response not stored");
        return body;
    }
    let decision = &admitted.decision;
    let mut kept = headers.clone();
    kept.remove(CONTENT_LENGTH);
    kept.remove(http::header::AGE);
    for f in &decision.strip_fields {
        kept.remove(f);
    }
    let meta = StoredResponse::new(
        StatusCode::PARTIAL_CONTENT,
        &kept,
        request_time,
        response_time,
        admitted.age,
        &Freshness {
            lifetime: decision.freshness,
            rule: decision.rule.as_str(),
            clamp: decision.clamp.as_str(),
            revalidate_each_use: decision.revalidate_each_use,
            must_revalidate: decision.must_revalidate,
            stale_while_revalidate: None,
            stale_if_error: None,
        },
        Vec::new(),
    );
    let expires_at = meta.expires_at();
    let distribution = ctx.dist_id();
    let writer = match edge.store.begin(ObjectSpec {
        key: part_key(ctx.key(), part.start, part.end),
        distribution: distribution.to_string(),
        tags,
        meta: meta.encode(),
        stored_at: response_time,
        expires_at,
    }) {
        Ok(w) => w,
        Err(e) => {
            edge.store_warnings.warn(
                distribution,
                "cannot store a partial response; passing it through",
                &e,
            );
            return body;
        }
    };
    Tee {
        inner: body,
        writer: Some(writer),
        expected: part.length(),
        written: 0,
        store: edge.store.clone(),
        warnings: edge.store_warnings.clone(),
        primary: ctx.key().to_vec(),
        distribution: distribution.to_string(),
        part: (part.start, part.end),
        expires_at,
    }
    .boxed_unsync()
}

/// A body that also writes what passes through it into the store; the object is
/// committed only if the body ends cleanly with exactly the part's length.
struct Tee {
    inner: BoxBody,
    writer: Option<ObjectWriter>,
    expected: u64,
    written: u64,
    store: Store,
    warnings: Arc<StoreWarnings>,
    primary: Vec<u8>,
    distribution: String,
    part: (u64, u64),
    expires_at: SystemTime,
}

impl Tee {
    fn finish(&mut self) {
        let Some(w) = self.writer.take() else {
            return;
        };
        if self.written != self.expected {
            return;
        }
        if let Err(e) = w.commit() {
            self.warnings.warn(
                &self.distribution,
                "cannot store a partial response (commit failed); it was passed through",
                &e,
            );
            return;
        }
        // List the part at the index (newest last, bounded).
        let key = index_key(&self.primary);
        let mut parts = match self.store.lookup(&key) {
            Ok(Some(h)) => match Meta::decode(&h.info.meta) {
                Ok(Meta::Partials(p)) => p,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        parts.retain(|p| *p != self.part);
        parts.push(self.part);
        if parts.len() > MAX_PARTS {
            parts.remove(0);
        }
        let expires_at = match self.store.info(&key) {
            Ok(Some(i)) => i.expires_at.max(self.expires_at),
            _ => self.expires_at,
        };
        let spec = ObjectSpec {
            key,
            distribution: self.distribution.clone(),
            tags: Vec::new(),
            meta: Meta::Partials(parts).encode(),
            stored_at: SystemTime::now(),
            expires_at,
        };
        if let Err(e) = self.store.insert(spec, b"") {
            self.warnings.warn(
                &self.distribution,
                "cannot index a stored partial response",
                &e,
            );
        }
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        // hyper may drop a body once it has sent Content-Length bytes without polling it
        // to the end: the part is complete if every byte went through.
        self.finish();
    }
}

impl HttpBody for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(d), Some(w)) = (frame.data_ref(), this.writer.as_mut()) {
                    this.written += d.len() as u64;
                    if w.write(d).is_err() {
                        this.writer = None;
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => this.writer = None,
            Poll::Ready(None) => this.finish(),
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
