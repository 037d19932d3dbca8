//! `GET /metrics`: the edge's Prometheus metrics (see [`crate::metrics`]), with the
//! store's and the fills' values read at scrape time.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::Response;

use crate::body::{self, BoxBody};
use crate::edge::Edge;

pub(super) fn metrics(edge: &Edge) -> Response<BoxBody> {
    let text = edge
        .metrics
        .render(edge.store.stats(), edge.fills_in_flight());
    let mut r = Response::new(body::full(text));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    r
}
