//! The edge: viewers' requests routed to distributions, answered from the store or
//! fetched from origins (collapsed per cache key), with CloudFront's response headers and
//! access logs. `server` owns connections, `pipeline` one request, `fill` one origin fetch
//! into the store, `respond` the headers every response carries.

mod cached;
mod fill;
mod forward;
mod hit;
pub mod meta;
mod partial;
mod pipeline;
mod respond;
pub mod router;
pub mod server;
mod store_warn;
mod tracked;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::access_log::{AccessLogs, LogHandle};
use crate::collapse::Collapser;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::origin::{OriginClients, OriginError};
use crate::store::Store;

pub use fill::FillHead;
pub use server::serve;
use store_warn::StoreWarnings;

/// How a request was answered, as CloudFront names it (`X-Cache`, logs, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultType {
    Hit,
    RefreshHit,
    Miss,
    Error,
}

impl ResultType {
    /// A response fetched from the origin: Miss, or Error when the origin answered 4xx or
    /// 5xx (CloudFront's `X-Cache: Error from cloudfront`).
    pub fn from_origin_status(status: http::StatusCode) -> Self {
        if status.is_client_error() || status.is_server_error() {
            ResultType::Error
        } else {
            ResultType::Miss
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResultType::Hit => "Hit",
            ResultType::RefreshHit => "RefreshHit",
            ResultType::Miss => "Miss",
            ResultType::Error => "Error",
        }
    }
}

/// Everything derived from one configuration; replaced as a whole on reload.
pub struct Runtime {
    pub config: Config,
    /// Increases with each applied configuration (1 for the first).
    pub version: u64,
    pub router: router::Router,
    pub origins: OriginClients,
    /// Access log of each distribution with logging on, by distribution id.
    pub logs: HashMap<String, LogHandle>,
}

impl Runtime {
    pub fn build(config: Config, version: u64, logs: &AccessLogs) -> Result<Self, String> {
        let origins =
            OriginClients::build(&config.distributions).map_err(|e: OriginError| e.to_string())?;
        let mut handles = HashMap::new();
        for d in &config.distributions {
            if d.logging.enabled {
                let h = logs.open(&d.logging.file).map_err(|e| {
                    format!(
                        "distribution {}: cannot open access log {}: {e}",
                        d.id,
                        d.logging.file.display()
                    )
                })?;
                handles.insert(d.id.clone(), h);
            }
        }
        Ok(Self {
            router: router::Router::new(&config),
            origins,
            logs: handles,
            version,
            config,
        })
    }
}

/// One running edge: the store, the current configuration, the fills in flight.
pub struct Edge {
    pub store: Store,
    runtime: RwLock<Arc<Runtime>>,
    pub(crate) fills: Collapser<FillHead>,
    pub logs: AccessLogs,
    pub started: SystemTime,
    pub metrics: Metrics,
    /// "Cannot store" warnings, at most one line per reason per interval.
    pub(crate) store_warnings: Arc<StoreWarnings>,
}

impl Edge {
    pub fn new(store: Store, runtime: Runtime, logs: AccessLogs) -> Arc<Self> {
        Arc::new(Self {
            store,
            runtime: RwLock::new(Arc::new(runtime)),
            fills: Collapser::default(),
            logs,
            started: SystemTime::now(),
            metrics: Metrics::new(),
            store_warnings: Arc::default(),
        })
    }

    /// The configuration in force (a request keeps the one it started with).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies a new configuration; requests already running finish on the old one.
    pub fn apply(&self, runtime: Runtime) {
        *self.runtime.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(runtime);
    }

    /// Fills in flight.
    pub fn fills_in_flight(&self) -> usize {
        self.fills.in_flight()
    }
}
