//! `cairn serve`: opens the store, binds the listeners, runs the edge and the admin API,
//! reloads on SIGHUP (configuration and access log files) and drains on SIGTERM/SIGINT
//! before closing the store cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind};
use tokio::sync::watch;

use crate::access_log::AccessLogs;
use crate::admin;
use crate::config::Config;
use crate::control::{reload, Control, ControlError, Source};
use crate::edge::{self, Edge, Runtime, RuntimeError};
use crate::store::{Store, StoreConfig, StoreError};

/// The store configuration a cache section asks for.
pub fn store_config(c: &Config) -> StoreConfig {
    let mut s = StoreConfig::new(&c.cache.dir, c.cache.capacity);
    s.segment_size = c.cache.segment_size;
    s.stale_grace = c.cache.stale_grace;
    s.max_object_size = c.cache.max_object_size;
    s.min_free_disk = c.cache.min_free_disk;
    s
}

/// Why the edge could not start (or stop cleanly).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Control(#[from] ControlError),
    #[error("opening the cache in {}: {source}", .dir.display())]
    Store { dir: PathBuf, source: StoreError },
    #[error("binding the {what} listener {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reading the invalidation journal in {}: {source}", .dir.display())]
    Journal {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    #[error("installing the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
    #[error("closing the cache: {0}")]
    Close(StoreError),
    #[error("a blocking task of the edge failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs an edge until SIGTERM/SIGINT (or until `stop` fires, for embedding).
pub async fn run(source: Source, mut stop: watch::Receiver<bool>) -> Result<(), ServeError> {
    let control = Arc::new(Control::open(source)?);
    let composed = control.compose()?;
    let config = composed.config;
    let store = open_store(&config).await?;
    let bind = |what: &'static str, addr: SocketAddr| async move {
        let l = TcpListener::bind(addr).await;
        l.and_then(|l| Ok((l.local_addr()?, l)))
            .map_err(|source| ServeError::Bind { what, addr, source })
    };
    let (listen, listener) = bind("viewer", config.edge.listen).await?;
    let (admin_addr, admin_listener) = bind("admin", config.edge.admin_listen).await?;
    let invalidations = replay_invalidations(&config, &store).await?;
    let logs = AccessLogs::new();
    let runtime = Runtime::build(config, 1, &logs)?.with_api_revisions(composed.api_revisions);
    let edge = Edge::new(store, runtime, logs);

    // Before the ready line: once it is out, a script may signal at once, and without
    // handlers SIGHUP's and SIGTERM's default action would kill the process.
    let handler = |signal, kind| {
        tokio::signal::unix::signal(kind).map_err(|source| ServeError::Signal { signal, source })
    };
    let hup = handler("SIGHUP", SignalKind::hangup())?;
    let term = handler("SIGTERM", SignalKind::terminate())?;
    let int = handler("SIGINT", SignalKind::interrupt())?;

    // One line on stdout that scripts and tests wait for.
    println!("cairn: serving on http://{listen} (admin on http://{admin_addr})");
    tracing::info!(%listen, admin = %admin_addr, "edge ready");

    let (down_tx, down_rx) = watch::channel(false);
    let signals = tokio::spawn(handle_signals(
        edge.clone(),
        control.clone(),
        down_tx,
        [hup, term, int],
    ));
    let viewer_down = wait_true(down_rx.clone());
    let admin_down = wait_true(down_rx.clone());
    // When the drain began: the drain timeout bounds the whole stop, not each step of it.
    let drain_started = Arc::new(std::sync::OnceLock::new());
    let started = drain_started.clone();
    let viewer = tokio::spawn(edge::serve(edge.clone(), listener, async move {
        tokio::select! {
            _ = viewer_down => {}
            _ = wait_true_ref(&mut stop) => {}
        }
        let _ = started.set(tokio::time::Instant::now());
    }));
    let admin_state = Arc::new(admin::Admin {
        edge: edge.clone(),
        control,
        invalidations,
    });
    let admin = tokio::spawn(admin::serve(admin_state, admin_listener, admin_down));
    let _ = viewer.await;
    // The viewer side has drained: stop the admin side and the signal task too.
    signals.abort();
    let _ = admin.await.ok();
    drain_and_close(edge, drain_started.get().copied()).await
}

/// The store the configuration names, opened on the blocking pool.
async fn open_store(config: &Config) -> Result<Store, ServeError> {
    let scfg = store_config(config);
    let dir = config.cache.dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(scfg))
        .await?
        .map_err(|source| ServeError::Store { dir, source })?;
    let report = store.open_report();
    tracing::info!(dir = %config.cache.dir.display(), objects = store.stats().objects, report = ?report, "cache open");
    Ok(store)
}

/// Invalidations the previous run acknowledged but did not finish are done before the
/// edge serves anything.
async fn replay_invalidations(
    config: &Config,
    store: &Store,
) -> Result<Arc<admin::Invalidations>, ServeError> {
    let dir = config.cache.dir.clone();
    let store = store.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let inv = Arc::new(admin::Invalidations::open(&dir)?);
        let n = inv.replay(&store);
        if n > 0 {
            tracing::info!(replayed = n, "unfinished invalidations done");
        }
        Ok::<_, std::io::Error>(inv)
    })
    .await?;
    opened.map_err(|source| ServeError::Journal {
        dir: config.cache.dir.clone(),
        source,
    })
}

/// Lets fills that viewers left behind finish into the store, within the drain time that
/// began at `drain_started`, then flushes the logs and closes the store.
async fn drain_and_close(
    edge: Arc<Edge>,
    drain_started: Option<tokio::time::Instant>,
) -> Result<(), ServeError> {
    let drain = edge.runtime().config.edge.drain_timeout;
    let deadline = drain_started.unwrap_or_else(tokio::time::Instant::now) + drain;
    while edge.fills_in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    edge.logs.shutdown();
    let store = edge.store.clone();
    drop(edge);
    tokio::task::spawn_blocking(move || store.close())
        .await?
        .map_err(ServeError::Close)?;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

async fn wait_true_ref(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        // The sender is gone: nobody will ever ask to stop this way.
        std::future::pending::<()>().await;
    }
}

/// `hup`, `term`, `int`: the handlers, installed before the edge announced itself.
async fn handle_signals(
    edge: Arc<Edge>,
    control: Arc<Control>,
    down: watch::Sender<bool>,
    [mut hup, mut term, mut int]: [Signal; 3],
) {
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let (e, c) = (edge.clone(), control.clone());
                // Building the runtime (TLS roots, log files) is blocking work.
                let _ = tokio::task::spawn_blocking(move || reload(&e, &c)).await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping: draining in-flight requests");
    let _ = down.send(true);
}
