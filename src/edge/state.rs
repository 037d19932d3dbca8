//! One running edge: the store, the configuration in force (swapped whole on reload), the
//! fills in flight, the access logs and the metrics.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::access_log::AccessLogs;
use crate::collapse::Collapser;
use crate::edge::head::FillHead;
use crate::edge::runtime::Runtime;
use crate::edge::store_warn::StoreWarnings;
use crate::metrics::Metrics;
use crate::store::Store;

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

    /// The largest body the store keeps.
    pub fn max_object_size(&self) -> u64 {
        let c = self.store.config();
        c.max_object_size.unwrap_or(c.capacity / 4)
    }
}
