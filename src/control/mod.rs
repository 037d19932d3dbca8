//! Where the edge's distributions come from and how a new set is applied: [`Source`] (a
//! configuration file, which can be reloaded, or the flags of quick mode) together with
//! the distributions created through the admin API, kept durably in the state directory
//! ([`state::StateStore`]); [`Control::compose`] validates both together by the same rules,
//! and [`reload`] applies the result (SIGHUP, `POST /reload`, and every API write). The
//! composition root (`serve`) and the admin API both use this module; neither imports the
//! other.

pub mod state;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{self, ApiDistribution, Config, ConfigErrors, QuickOptions};
use crate::edge::{Edge, Runtime, RuntimeError};
pub use state::{StateError, StateStore, StoredDistribution};

/// Where the configuration comes from; only a file can be reloaded.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    /// Quick mode's flags (and the demo's).
    Quick(Box<QuickOptions>),
}

/// Why a configuration could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The configuration is invalid: every problem, one per line.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// Valid, but the edge could not be built from it.
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    #[error("{0}")]
    State(#[from] StateError),
}

impl Source {
    /// The configuration, with the API's distributions `api` validated together with it.
    pub fn load(&self, api: &[ApiDistribution]) -> Result<Config, ConfigErrors> {
        match self {
            Source::File(p) => config::load_file_with(p, api),
            Source::Quick(o) => config::quick_with(o, api),
        }
    }

    /// Where relative paths in an API distribution are resolved: the file's directory, or
    /// the working directory in quick mode.
    pub fn base_dir(&self) -> PathBuf {
        let cwd = std::env::current_dir().unwrap_or_default();
        match self {
            Source::File(p) => match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => cwd.join(d),
                _ => cwd,
            },
            Source::Quick(_) => cwd,
        }
    }

    /// For messages: the file, or the command line.
    pub fn describe(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Quick(_) => "the command line".to_string(),
        }
    }
}

/// The configuration's sources: the file or flags, and the state directory.
#[derive(Debug)]
pub struct Control {
    pub source: Source,
    pub state: StateStore,
}

/// A validated configuration, and the revision of each distribution that came from the
/// API's state (the others come from the source).
pub struct Composed {
    pub config: Config,
    pub api_revisions: BTreeMap<String, u64>,
}

impl Control {
    /// Opens the state directory the source names.
    pub fn open(source: Source) -> Result<Self, ControlError> {
        let base = source.load(&[])?;
        let state = StateStore::open(&base.control.state_dir)?;
        Ok(Control { source, state })
    }

    /// The source's distributions and the API's, validated together.
    pub fn compose(&self) -> Result<Composed, ControlError> {
        let stored = self.state.distributions()?;
        let api: Vec<ApiDistribution> = stored
            .iter()
            .map(|d| ApiDistribution {
                id: d.id.clone(),
                settings: d.settings.clone(),
            })
            .collect();
        let config = self.source.load(&api)?;
        let api_revisions = stored.into_iter().map(|d| (d.id, d.revision)).collect();
        Ok(Composed {
            config,
            api_revisions,
        })
    }

    /// The runtime of what [`Control::compose`] makes, as configuration `version`.
    pub fn runtime(
        &self,
        version: u64,
        edge_logs: &crate::access_log::AccessLogs,
    ) -> Result<Runtime, ControlError> {
        let composed = self.compose()?;
        let rt = Runtime::build(composed.config, version, edge_logs)?;
        Ok(rt.with_api_revisions(composed.api_revisions))
    }
}

/// SIGHUP, `POST /reload` and every API write: reopen access log files, and apply the
/// configuration again if it is valid (else keep the running one). Listeners and the
/// cache directory stay as started. Returns the new configuration version, or why it was
/// refused.
pub fn reload(edge: &Edge, control: &Control) -> Result<u64, ControlError> {
    // One reload at a time (SIGHUP, the admin API), so versions never repeat.
    static RELOADING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = RELOADING.lock().unwrap_or_else(|p| p.into_inner());
    edge.logs.reopen_all();
    let current = edge.runtime();
    let refused = |e: ControlError| {
        tracing::error!(error = %e, "configuration reload refused; keeping the running configuration");
        e
    };
    let rt = control
        .runtime(current.version + 1, &edge.logs)
        .map_err(refused)?;
    let (old, new) = (&current.config, &rt.config);
    if new.edge.listen != old.edge.listen
        || new.edge.admin_listen != old.edge.admin_listen
        || new.cache != old.cache
        || new.control != old.control
    {
        tracing::warn!(
            "listen addresses, [cache] and [control] settings take effect at the next restart"
        );
    }
    let v = rt.version;
    edge.apply(rt);
    tracing::info!(version = v, "configuration reloaded");
    Ok(v)
}
