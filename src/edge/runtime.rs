//! The configuration compiled for the request path, once per load or reload: every
//! distribution with its assigned domain, access log, default root object and behaviours;
//! every behaviour with its path pattern compiled, its target resolved to pooled origin
//! clients in failover order, and its storing rules. Requests hold the [`Runtime`] they
//! started with (an `Arc`), and nothing on the request path looks the configuration up by
//! name.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::access_log::{AccessLogError, AccessLogs, LogHandle};
use crate::cache_key::{behavior_path, root_object_path};
use crate::config::{compile_pattern, pattern_matches_compiled, Behavior, Config, Distribution};
use crate::edge::router::Router;
use crate::httpcache::{ErrorTtls, Mode, StorePolicy, TtlSettings};
use crate::origin::{FetchPlan, OriginClient, OriginError};

/// Why a configuration could not be made into a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Origin(#[from] OriginError),
    #[error("distribution {distribution}: {source}")]
    AccessLog {
        distribution: String,
        #[source]
        source: AccessLogError,
    },
    #[error("distribution {distribution}: behaviour {behavior} targets {target:?}, which is neither an origin nor an origin group")]
    Target {
        distribution: String,
        behavior: String,
        target: String,
    },
}

/// Everything derived from one configuration; replaced as a whole on reload.
pub struct Runtime {
    pub config: Config,
    /// Increases with each applied configuration (1 for the first).
    pub version: u64,
    router: Router,
    distributions: Vec<Arc<DistRuntime>>,
    /// The revision of each distribution applied from the admin API's state; the others
    /// come from the configuration file or flags.
    pub api_revisions: BTreeMap<String, u64>,
}

/// A distribution as the request path uses it.
pub struct DistRuntime {
    pub config: Distribution,
    /// `<id>.<edge domain>`.
    pub assigned_domain: String,
    /// The normalised path of the default root object (what `/` is keyed and fetched as).
    pub root_object_path: Option<String>,
    /// Its access log, when logging is on.
    pub log: Option<LogHandle>,
    pub default_behavior: Arc<BehaviorRuntime>,
    /// In order: the first whose pattern matches wins.
    pub behaviors: Vec<Arc<BehaviorRuntime>>,
}

/// A cache behaviour as the request path uses it.
pub struct BehaviorRuntime {
    pub config: Behavior,
    /// `default_behavior` or `behaviors[i]`, for logs and explanations.
    pub name: String,
    /// The compiled path pattern; None for the default behaviour.
    pattern: Option<Vec<u8>>,
    /// The origins its target names, in failover order.
    pub plan: FetchPlan,
    /// Its storing rules.
    pub store_policy: StorePolicy,
    pub mode: Mode,
}

impl Runtime {
    pub fn build(config: Config, version: u64, logs: &AccessLogs) -> Result<Self, RuntimeError> {
        let distributions = config
            .distributions
            .iter()
            .map(|d| DistRuntime::build(d, &config.edge.domain, logs).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            router: Router::new(&config),
            distributions,
            version,
            config,
            api_revisions: BTreeMap::new(),
        })
    }

    /// With the revisions of the distributions that came from the API's state.
    pub fn with_api_revisions(mut self, revisions: BTreeMap<String, u64>) -> Self {
        self.api_revisions = revisions;
        self
    }

    /// Every distribution, in configuration order.
    pub fn distributions(&self) -> &[Arc<DistRuntime>] {
        &self.distributions
    }

    /// The distribution with id `id`.
    pub fn distribution(&self, id: &str) -> Option<&Arc<DistRuntime>> {
        self.distributions.iter().find(|d| d.id() == id)
    }

    /// The distribution that answers `host` (a Host value or an HTTP/2 authority).
    pub fn route(&self, host: &str) -> Option<&Arc<DistRuntime>> {
        self.router
            .route(host)
            .and_then(|i| self.distributions.get(i))
    }

    /// The edge's name (Via, logs).
    pub fn edge_name(&self) -> &str {
        &self.config.edge.name
    }
}

impl DistRuntime {
    fn build(d: &Distribution, domain: &str, logs: &AccessLogs) -> Result<Self, RuntimeError> {
        let clients = d
            .origins
            .iter()
            .map(|o| OriginClient::new(o).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let behavior =
            |b: &Behavior, name: String| BehaviorRuntime::build(d, b, name, &clients).map(Arc::new);
        let default_behavior = behavior(&d.default_behavior, "default_behavior".into())?;
        let behaviors = d
            .behaviors
            .iter()
            .enumerate()
            .map(|(i, b)| behavior(b, format!("behaviors[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let log = match d.logging.enabled {
            true => Some(
                logs.open(&d.logging.file)
                    .map_err(|source| RuntimeError::AccessLog {
                        distribution: d.id.clone(),
                        source,
                    })?,
            ),
            false => None,
        };
        Ok(Self {
            assigned_domain: d.assigned_domain(domain),
            // Validation has checked the default root object.
            root_object_path: d
                .default_root_object
                .as_deref()
                .and_then(|o| root_object_path(o).ok()),
            log,
            default_behavior,
            behaviors,
            config: d.clone(),
        })
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The behaviour for a normalised request path: the first whose pattern matches, else
    /// the default. `/` is matched as the default root object, if there is one.
    pub fn behavior_for(&self, path: &str) -> &Arc<BehaviorRuntime> {
        let path = behavior_path(path, self.root_object_path.as_deref());
        self.behaviors
            .iter()
            .find(|b| b.matches(path))
            .unwrap_or(&self.default_behavior)
    }
}

impl BehaviorRuntime {
    fn build(
        d: &Distribution,
        b: &Behavior,
        name: String,
        clients: &[Arc<OriginClient>],
    ) -> Result<Self, RuntimeError> {
        let client = |id: &str| {
            d.origins
                .iter()
                .position(|o| o.id == id)
                .and_then(|i| clients.get(i).cloned())
        };
        let plan = match (d.group(&b.target), client(&b.target)) {
            (Some(g), _) => FetchPlan {
                members: g.members.iter().filter_map(|m| client(m)).collect(),
                failover_statuses: g.failover_statuses.clone(),
            },
            (None, Some(c)) => FetchPlan {
                members: vec![c],
                failover_statuses: Vec::new(),
            },
            (None, None) => {
                return Err(RuntimeError::Target {
                    distribution: d.id.clone(),
                    behavior: name,
                    target: b.target.clone(),
                })
            }
        };
        let mode = if b.strict() {
            Mode::Strict
        } else {
            Mode::CloudFront
        };
        Ok(Self {
            pattern: b.path_pattern.as_deref().map(compile_pattern),
            plan,
            store_policy: store_policy(b, mode),
            mode,
            name,
            config: b.clone(),
        })
    }

    /// Does its pattern match the normalised path?
    pub fn matches(&self, path: &str) -> bool {
        match &self.pattern {
            None => true,
            Some(p) => pattern_matches_compiled(p, path.as_bytes()),
        }
    }
}

/// The storing rules of a behaviour: CloudFront mode, or strict RFC 9111 when its
/// default_ttl is 0.
fn store_policy(b: &Behavior, mode: Mode) -> StorePolicy {
    let ttl = TtlSettings {
        default_ttl: b.default_ttl,
        min_ttl: b.min_ttl,
        max_ttl: b.max_ttl,
    };
    let mut p = StorePolicy::new(ttl);
    p.mode = mode;
    p.error_ttls = ErrorTtls {
        default: b.error_ttl,
        per_status: b.error_ttls.clone(),
    };
    p.set_cookie_stored = !b.set_cookie_prevents_storing();
    p
}
