//! Where the edge's configuration comes from and how a new one is applied: [`Source`] (a
//! file, which can be reloaded, or the flags of quick mode), and [`reload`], what SIGHUP
//! and `POST /reload` both do. The composition root (`serve`) and the admin API both use
//! this module; neither imports the other.

use std::path::PathBuf;

use crate::config::{self, Config, ConfigErrors};
use crate::edge::{Edge, Runtime, RuntimeError};

/// Where the configuration comes from; only a file can be reloaded.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    /// Built from command-line flags (quick mode, demo).
    Flags(Box<Config>),
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
}

impl Source {
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        match self {
            Source::File(p) => config::load_file(p),
            Source::Flags(c) => Ok((**c).clone()),
        }
    }
}

/// SIGHUP and `POST /reload`: reopen access log files, and apply the configuration again
/// if it is valid (else keep the running one). Listeners and the cache directory stay as
/// started. Returns the new configuration version, or why it was refused.
pub fn reload(edge: &Edge, source: &Source) -> Result<u64, ControlError> {
    // One reload at a time (SIGHUP and the admin API), so versions never repeat.
    static RELOADING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = RELOADING.lock().unwrap_or_else(|p| p.into_inner());
    edge.logs.reopen_all();
    let current = edge.runtime();
    let refused = |e: ControlError| {
        tracing::error!(error = %e, "configuration reload refused; keeping the running configuration");
        e
    };
    let new = source.load().map_err(|e| refused(e.into()))?;
    let old = &current.config;
    if new.edge.listen != old.edge.listen
        || new.edge.admin_listen != old.edge.admin_listen
        || new.cache != old.cache
    {
        tracing::warn!("listen addresses and [cache] settings take effect at the next restart");
    }
    let rt = Runtime::build(new, current.version + 1, &edge.logs).map_err(|e| refused(e.into()))?;
    let v = rt.version;
    edge.apply(rt);
    tracing::info!(version = v, "configuration reloaded");
    Ok(v)
}
