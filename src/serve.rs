//! `cairn serve`: opens the store, binds the listeners, runs the edge and the admin API,
//! reloads on SIGHUP (configuration and access log files) and drains on SIGTERM/SIGINT
//! before closing the store cleanly.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use crate::access_log::AccessLogs;
use crate::admin;
use crate::config::Config;
use crate::control::{reload, Source};
use crate::edge::{self, Edge, Runtime};
use crate::store::{Store, StoreConfig};

/// The store configuration a cache section asks for.
pub fn store_config(c: &Config) -> StoreConfig {
    let mut s = StoreConfig::new(&c.cache.dir, c.cache.capacity);
    s.segment_size = c.cache.segment_size;
    s.stale_grace = c.cache.stale_grace;
    s.max_object_size = c.cache.max_object_size;
    s.min_free_disk = c.cache.min_free_disk;
    s
}

/// Runs an edge until SIGTERM/SIGINT (or until `stop` fires, for embedding).
pub async fn run(source: Source, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    use anyhow::Context;
    let config = source.load().map_err(|e| anyhow::anyhow!("{e}"))?;
    let scfg = store_config(&config);
    let dir = config.cache.dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(scfg))
        .await?
        .with_context(|| format!("opening the cache in {}", dir.display()))?;
    let report = store.open_report();
    tracing::info!(dir = %config.cache.dir.display(), objects = store.stats().objects, report = ?report, "cache open");

    let listener = TcpListener::bind(config.edge.listen)
        .await
        .with_context(|| format!("binding the viewer listener {}", config.edge.listen))?;
    let admin_listener = TcpListener::bind(config.edge.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener {}", config.edge.admin_listen))?;
    let listen = listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    // Invalidations the previous run acknowledged but did not finish are done before the
    // edge serves anything.
    let idir = config.cache.dir.clone();
    let istore = store.clone();
    let invalidations = tokio::task::spawn_blocking(move || {
        let inv = Arc::new(admin::Invalidations::open(&idir)?);
        let n = inv.replay(&istore);
        if n > 0 {
            tracing::info!(replayed = n, "unfinished invalidations done");
        }
        Ok::<_, std::io::Error>(inv)
    })
    .await?
    .with_context(|| {
        format!(
            "reading the invalidation journal in {}",
            config.cache.dir.display()
        )
    })?;

    let logs = AccessLogs::new();
    let runtime = Runtime::build(config, 1, &logs)?;
    let edge = Edge::new(store.clone(), runtime, logs);

    // Before the ready line: once it is out, a script may signal at once, and without
    // handlers SIGHUP's and SIGTERM's default action would kill the process.
    let hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    // One line on stdout that scripts and tests wait for.
    println!("cairn: serving on http://{listen} (admin on http://{admin_addr})");
    tracing::info!(%listen, admin = %admin_addr, "edge ready");

    let (down_tx, down_rx) = watch::channel(false);
    let signals = tokio::spawn(handle_signals(
        edge.clone(),
        source.clone(),
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
        source,
        invalidations,
    });
    let admin = tokio::spawn(admin::serve(admin_state, admin_listener, admin_down));
    let _ = viewer.await;
    // The viewer side has drained: stop the admin side and the signal task too.
    signals.abort();
    let _ = admin.await.ok();

    // Let fills that viewers left behind finish into the store, within the drain time.
    let drain = edge.runtime().config.edge.drain_timeout;
    let deadline = drain_started
        .get()
        .copied()
        .unwrap_or_else(tokio::time::Instant::now)
        + drain;
    while edge.fills_in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    edge.logs.shutdown();
    let store = edge.store.clone();
    drop(edge);
    tokio::task::spawn_blocking(move || store.close())
        .await?
        .context("closing the cache")?;
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
    source: Source,
    down: watch::Sender<bool>,
    [mut hup, mut term, mut int]: [Signal; 3],
) {
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = reload(&edge, &source);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping: draining in-flight requests");
    let _ = down.send(true);
}
