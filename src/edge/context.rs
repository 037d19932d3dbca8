//! One viewer request's context, built once by the pipeline and passed by reference to
//! every phase after it (and shared with the fills it starts): the configuration it runs
//! on, its distribution and behaviour, the keyed request and what is forwarded, the
//! viewer, the request facts the caching rules read, and the clock at its start.

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, Method, StatusCode};

use crate::cache_key::forward::{Exchange, Policies};
use crate::edge::answer::Answer;
use crate::edge::forward::{ForwardRequest, ViewerRequest};
use crate::edge::runtime::{BehaviorRuntime, DistRuntime, Runtime};
use crate::httpcache::{Mode, RequestFacts};

pub struct RequestCtx {
    pub rt: Arc<Runtime>,
    pub dist: Arc<DistRuntime>,
    pub behavior: Arc<BehaviorRuntime>,
    /// The keyed request, the viewer and what is forwarded.
    pub asked: ViewerRequest,
    pub method: Method,
    /// The viewer's request header fields (Vary, preconditions, ranges, forwarding).
    pub headers: HeaderMap,
    /// What the storing and reuse rules read of the request.
    pub facts: RequestFacts,
    /// When the request began.
    pub now: SystemTime,
}

impl RequestCtx {
    /// The cache key.
    pub fn key(&self) -> &[u8] {
        &self.asked.keyed.key
    }

    pub fn mode(&self) -> Mode {
        self.behavior.mode
    }

    pub fn edge_name(&self) -> &str {
        self.rt.edge_name()
    }

    pub fn dist_id(&self) -> &str {
        self.dist.id()
    }

    /// The edge's own error response for this request.
    pub fn error(&self, status: StatusCode, message: &str) -> Answer {
        Answer::error(status, message, self.edge_name(), Some(self.dist.clone()))
    }

    /// The origin request with `method` for `exchange`, with `extra` fields.
    pub fn forward(&self, method: Method, exchange: Exchange, extra: HeaderMap) -> ForwardRequest {
        let policies = Policies::of(&self.behavior.config);
        self.asked
            .forward(method, &self.headers, policies, exchange, extra)
    }
}
