//! Answering from a stored response: the viewer's preconditions (304 / 412, RFC 9110
//! §13), byte ranges (206 single or multipart/byteranges, 416, RFC 9110 §14), HEAD, and
//! the stored body streamed chunk by chunk, each chunk checked before it leaves.

use std::collections::VecDeque;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream;
use http::header::{HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use crate::body::{self, BoxBody, BoxError};
use crate::edge::meta::StoredResponse;
use crate::edge::respond::{decorate, set_age};
use crate::edge::{ResultType, Runtime};
use crate::httpcache::{conditional, range};
use crate::store::{Body, Hit};

/// The response to a request answered from `hit`.
pub fn serve(
    rt: &Runtime,
    hit: Hit,
    meta: &StoredResponse,
    result: ResultType,
    method: &Method,
    req: &HeaderMap,
    now: SystemTime,
) -> Response<BoxBody> {
    let stored = meta.header_map();
    let len = hit.body.len();
    let finish = |status: StatusCode, mut h: HeaderMap, body: BoxBody| {
        set_age(&mut h, meta.age_at(now));
        decorate(&mut h, &rt.config.edge.name, result);
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
    match outcome {
        range::RangeOutcome::Full => {
            h.insert(CONTENT_LENGTH, HeaderValue::from(len));
            let body = if head_only {
                body::empty()
            } else {
                whole(hit.body)
            };
            finish(meta.status(), h, body)
        }
        range::RangeOutcome::Single(r) => {
            if let Ok(v) = HeaderValue::from_str(&range::content_range(&r, len)) {
                h.insert(CONTENT_RANGE, v);
            }
            h.insert(CONTENT_LENGTH, HeaderValue::from(r.end - r.start + 1));
            let body = pieces(hit.body, VecDeque::from([Piece::Range(r.start, r.end)]));
            finish(StatusCode::PARTIAL_CONTENT, h, body)
        }
        range::RangeOutcome::Multi(mut ranges) => {
            // One pass over the body: parts in ascending order (RFC 9110 §14.6 lets the
            // server coalesce and order them).
            ranges.sort_by_key(|r| r.start);
            let ct = stored.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let m = range::multipart(&ranges, len, ct);
            let mut list = VecDeque::new();
            for (head, r) in &m.parts {
                list.push_back(Piece::Static(head.clone()));
                list.push_back(Piece::Range(r.start, r.end));
            }
            list.push_back(Piece::Static(m.closing.clone()));
            if let Ok(v) =
                HeaderValue::from_str(&format!("multipart/byteranges; boundary={}", m.boundary))
            {
                h.insert(CONTENT_TYPE, v);
            }
            h.insert(CONTENT_LENGTH, HeaderValue::from(m.content_length));
            finish(StatusCode::PARTIAL_CONTENT, h, pieces(hit.body, list))
        }
        range::RangeOutcome::Unsatisfiable => {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&range::unsatisfied_content_range(len)) {
                h.insert(CONTENT_RANGE, v);
            }
            h.insert(CONTENT_LENGTH, HeaderValue::from(0));
            finish(StatusCode::RANGE_NOT_SATISFIABLE, h, body::empty())
        }
    }
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
enum Piece {
    Static(Bytes),
    /// Body bytes `start..=end` (ascending across pieces).
    Range(u64, u64),
}

struct Cursor {
    body: Body,
    /// Body offset of `chunk`'s first byte.
    at: u64,
    chunk: Option<Bytes>,
    pieces: VecDeque<Piece>,
}

/// Streams `pieces` out of `body` in one pass, checking every chunk it reads.
fn pieces(body: Body, pieces: VecDeque<Piece>) -> BoxBody {
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
                    match cur.body.next_chunk_async().await {
                        Some(Ok(c)) => cur.chunk = Some(c),
                        Some(Err(e)) => return Some((Err(Box::new(e) as BoxError), None)),
                        None => {
                            let e: BoxError = "the stored body is shorter than its length".into();
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
