//! The edge: viewers' requests routed to distributions, answered from the store or
//! fetched from origins (collapsed per cache key), with CloudFront's response headers and
//! access logs.
//!
//! From the bottom up: `runtime` (the configuration compiled for the request path),
//! `state` (one running [`Edge`]), `context` (one request's context), `pipeline` (one
//! request, start to end), `cached` (GET and HEAD as explicit phases), `fill` (one origin
//! fetch into the store), `pass` (what is passed through uncached), `hit` and `partial`
//! (answers from the store), `forward` (the origin request), `access` (the log line),
//! `respond` (the headers every response carries), `tier` (parent edges: Via loops and
//! `X-Cache-Parent`), `server` (connections).

mod access;
mod answer;
mod cached;
mod context;
mod fill;
mod forward;
mod head;
mod hit;
pub mod meta;
mod partial;
mod pass;
mod pipeline;
mod respond;
pub mod router;
pub mod runtime;
pub mod server;
mod state;
mod store_warn;
mod tier;
mod tracked;

pub use crate::result::ResultType;
pub use head::FillHead;
pub use runtime::{BehaviorRuntime, DistRuntime, Runtime, RuntimeError};
pub use server::serve;
pub use state::Edge;
