//! Answering from a stored response: the viewer's preconditions (304 / 412, RFC 9110
//! §13), byte ranges (206 single or multipart/byteranges, 416, RFC 9110 §14), HEAD, and
//! the stored body streamed chunk by chunk, each chunk checked before it leaves.

use std::collections::VecDeque;

use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::header::{HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use crate::body::{self, BoxBody, BoxError, Chunks};
use crate::edge::context::RequestCtx;
use crate::edge::meta::StoredResponse;
use crate::edge::respond::{decorate, set_age};
use crate::httpcache::{conditional, range};
use crate::result::ResultType;
use crate::store::{Body, Hit};

/// The response to the request of `ctx` answered from `hit` (whose metadata is `meta`)
/// as of `now`.
pub fn serve(
    ctx: &RequestCtx,
    hit: Hit,
    meta: &StoredResponse,
    result: ResultType,
    now: SystemTime,
) -> Response<BoxBody> {
    let (method, req) = (&ctx.method, &ctx.headers);
    let stored = meta.header_map();
    let len = hit.body.len();
    let finish = |status: StatusCode, mut h: HeaderMap, body: BoxBody| {
        set_age(&mut h, meta.age_at(now));
        decorate(&mut h, ctx.edge_name(), result);
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = h;
        resp
    };
    match conditional::evaluate(method, req, &stored, meta.status()) {
        conditional::Precondition::NotModified => {
            return finish(
                StatusCode::NOT_MODIFIED,
                conditional::not_modified_headers(&stored),
                body::empty(),
            )
        }
        conditional::Precondition::Failed => {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_LENGTH, HeaderValue::from(0));
            return finish(StatusCode::PRECONDITION_FAILED, h, body::empty());
        }
        conditional::Precondition::None => {}
    }
    let head_only = method == Method::HEAD;
    let mut h = stored.clone();
    let outcome = if meta.status() == StatusCode::OK {
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        range::range_request(method, req, &stored, len)
    } else {
        range::RangeOutcome::Full
    };
    match ranges(outcome, h, len) {
        Ranged::Full(mut h) => {
            h.insert(CONTENT_LENGTH, HeaderValue::from(len));
            let body = if head_only {
                body::empty()
            } else {
                whole(hit.body)
            };
            finish(meta.status(), h, body)
        }
        Ranged::Partial(status, h, list) => {
            let body = if list.is_empty() {
                body::empty()
            } else {
                pieces(store_chunks(hit.body), list)
            };
            finish(status, h, body)
        }
    }
}

/// How to answer a range request for a representation of `len` bytes.
pub enum Ranged {
    /// The whole representation, with these header fields (Content-Length not set).
    Full(HeaderMap),
    /// A 206 (or a 416: no pieces) with its header fields and what its body is made of.
    Partial(StatusCode, HeaderMap, VecDeque<Piece>),
}

/// The status, header fields and body pieces answering `outcome` for a representation of
/// `len` bytes whose header fields are `h`: a 206 with Content-Range (one range), a 206
/// multipart/byteranges (several, in ascending order so the body is read once), or a 416
/// with `Content-Range: bytes */len` and no body.
pub fn ranges(outcome: range::RangeOutcome, mut h: HeaderMap, len: u64) -> Ranged {
    match outcome {
        range::RangeOutcome::Full => Ranged::Full(h),
        range::RangeOutcome::Single(r) => {
            if let Ok(v) = HeaderValue::from_str(&range::content_range(&r, len)) {
                h.insert(CONTENT_RANGE, v);
            }
            h.insert(CONTENT_LENGTH, HeaderValue::from(r.end - r.start + 1));
            let list = VecDeque::from([Piece::Range(r.start, r.end)]);
            Ranged::Partial(StatusCode::PARTIAL_CONTENT, h, list)
        }
        range::RangeOutcome::Multi(mut ranges) => {
            // One pass over the body: parts in ascending order (RFC 9110 §14.6 lets the
            // server coalesce and order them).
            ranges.sort_by_key(|r| r.start);
            let ct = h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let m = range::multipart(&ranges, len, ct);
            let mut list = VecDeque::new();
            for (head, r) in &m.parts {
                list.push_back(Piece::Static(head.clone()));
                list.push_back(Piece::Range(r.start, r.end));
            }
            list.push_back(Piece::Static(m.closing.clone()));
            if let Ok(v) = HeaderValue::from_str(&m.content_type()) {
                h.insert(CONTENT_TYPE, v);
            }
            h.insert(CONTENT_LENGTH, HeaderValue::from(m.content_length));
            Ranged::Partial(StatusCode::PARTIAL_CONTENT, h, list)
        }
        range::RangeOutcome::Unsatisfiable => {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&range::unsatisfied_content_range(len)) {
                h.insert(CONTENT_RANGE, v);
            }
            h.insert(CONTENT_LENGTH, HeaderValue::from(0));
            Ranged::Partial(StatusCode::RANGE_NOT_SATISFIABLE, h, VecDeque::new())
        }
    }
}

/// The stored body's chunks, each checked as it is read.
pub fn store_chunks(body: Body) -> Chunks {
    Box::pin(stream::unfold(Some(body), |body| async move {
        let mut body = body?;
        match body.next_chunk_async().await {
            None => None,
            Some(Ok(b)) => Some((Ok(b), Some(body))),
            Some(Err(e)) => Some((Err(Box::new(e) as BoxError), None)),
        }
    }))
}

/// The whole stored body; a chunk that fails its check ends it with an error (the
/// connection closes, the viewer never gets a wrong byte).
pub fn whole(body: Body) -> BoxBody {
    let s = stream::unfold(Some(body), |body| async move {
        let mut body = body?;
        match body.next_chunk_async().await {
            None => None,
            Some(Ok(b)) => Some((Ok(Frame::data(b)), Some(body))),
            Some(Err(e)) => Some((Err(Box::new(e) as BoxError), None)),
        }
    });
    StreamBody::new(s).boxed_unsync()
}

/// What a ranged response is made of, in order.
pub enum Piece {
    Static(Bytes),
    /// Body bytes `start..=end` (ascending across pieces).
    Range(u64, u64),
}

struct Cursor {
    body: Chunks,
    /// Body offset of `chunk`'s first byte.
    at: u64,
    chunk: Option<Bytes>,
    pieces: VecDeque<Piece>,
}

/// Streams `pieces` out of `body` in one pass (ranges in ascending order), then drops
/// `body`: what follows the last range is never read.
pub fn pieces(body: Chunks, pieces: VecDeque<Piece>) -> BoxBody {
    let cur = Cursor {
        body,
        at: 0,
        chunk: None,
        pieces,
    };
    let s = stream::unfold(Some(cur), |cur| async move {
        let mut cur = cur?;
        match cur.pieces.front_mut()? {
            Piece::Static(b) => {
                let b = b.clone();
                cur.pieces.pop_front();
                Some((Ok(Frame::data(b)), Some(cur)))
            }
            Piece::Range(start, end) => {
                let (start, end) = (*start, *end);
                // Make `chunk` the chunk holding `start`.
                loop {
                    let chunk_end = cur.at + cur.chunk.as_ref().map_or(0, |c| c.len() as u64);
                    if cur.chunk.is_some() && start < chunk_end {
                        break;
                    }
                    cur.at = chunk_end;
                    match cur.body.next().await {
                        Some(Ok(c)) => cur.chunk = Some(c),
                        Some(Err(e)) => return Some((Err(e), None)),
                        None => {
                            let e: BoxError = "the body is shorter than its length".into();
                            return Some((Err(e), None));
                        }
                    }
                }
                let chunk = cur.chunk.as_ref()?;
                let from = (start - cur.at) as usize;
                let to = ((end + 1 - cur.at) as usize).min(chunk.len());
                let out = chunk.slice(from..to);
                let next = cur.at + to as u64;
                if next > end {
                    cur.pieces.pop_front();
                } else if let Some(Piece::Range(s, _)) = cur.pieces.front_mut() {
                    *s = next;
                }
                Some((Ok(Frame::data(out)), Some(cur)))
            }
        }
    });
    StreamBody::new(s).boxed_unsync()
}
