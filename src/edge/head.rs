//! What a fill publishes to its followers before its body: the origin's response head, or
//! another outcome (refreshed, abandoned for a range, failed).

use http::{HeaderMap, HeaderName, StatusCode};

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
