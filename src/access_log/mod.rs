//! Access logs in CloudFront's standard (legacy) log file format, so the tools that read
//! CloudFront logs (Athena tables, goaccess `--log-format=CLOUDFRONT`, log shippers) read
//! Cairn's too. [`format_line`] renders one request; [`AccessLogs`] owns one writer thread
//! per log file, fed by a bounded queue so that logging never blocks the request path.
//! The writer buffers, flushes at least once a second, and reopens its file on
//! [`AccessLogs::reopen_all`] (SIGHUP after logrotate renamed it).

mod format;
#[doc(hidden)]
pub mod testing;
mod writer;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use format::{encode_field, format_line, new_request_id, FIELD_COUNT, HEADER};

use writer::Msg;

/// Entries a writer queues before [`LogHandle::log`] starts dropping them.
pub const QUEUE_CAPACITY: usize = 64 * 1024;

/// How long `flush_all`, `reopen_all` and `shutdown` wait for the writers, at most.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);

/// One request, as the edge saw it when it finished the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// When the edge finished the response (CloudFront logs the end time).
    pub time: SystemTime,
    /// x-edge-location: the edge's name.
    pub edge_location: String,
    /// Bytes sent to the viewer, headers included.
    pub sc_bytes: u64,
    pub client_ip: IpAddr,
    pub client_port: u16,
    pub method: String,
    /// cs(Host): the distribution's assigned domain (`<id>.<edge domain>`).
    pub host: String,
    /// The path, without the `?` and query.
    pub uri_stem: String,
    /// The query string without the leading `?` (one is stripped if present).
    pub query: Option<String>,
    /// `None` is logged as `000`: the viewer hung up before a response.
    pub status: Option<u16>,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    pub cookie: Option<String>,
    /// x-edge-result-type: Hit, RefreshHit, Miss, Error, Redirect, ...
    pub result_type: String,
    /// x-edge-request-id, see [`new_request_id`].
    pub request_id: String,
    /// x-host-header: the Host header as the viewer sent it.
    pub host_header: String,
    /// cs-protocol: `http` or `https`.
    pub protocol: String,
    /// Request bytes, headers included.
    pub cs_bytes: u64,
    pub time_taken: Duration,
    pub time_to_first_byte: Duration,
    pub forwarded_for: Option<String>,
    pub ssl_protocol: Option<String>,
    pub ssl_cipher: Option<String>,
    pub response_result_type: String,
    /// cs-protocol-version, e.g. `HTTP/1.1`, `HTTP/2.0`.
    pub protocol_version: String,
    pub detailed_result_type: String,
    pub content_type: Option<String>,
    pub content_len: Option<u64>,
    pub range_start: Option<u64>,
    pub range_end: Option<u64>,
}

impl Default for LogEntry {
    /// Everything empty (logged as `-`), time at the epoch, status `000`.
    fn default() -> Self {
        Self {
            time: UNIX_EPOCH,
            edge_location: String::new(),
            sc_bytes: 0,
            client_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            client_port: 0,
            method: String::new(),
            host: String::new(),
            uri_stem: String::new(),
            query: None,
            status: None,
            referer: None,
            user_agent: None,
            cookie: None,
            result_type: String::new(),
            request_id: String::new(),
            host_header: String::new(),
            protocol: String::new(),
            cs_bytes: 0,
            time_taken: Duration::ZERO,
            time_to_first_byte: Duration::ZERO,
            forwarded_for: None,
            ssl_protocol: None,
            ssl_cipher: None,
            response_result_type: String::new(),
            protocol_version: String::new(),
            detailed_result_type: String::new(),
            content_type: None,
            content_len: None,
            range_start: None,
            range_end: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error("access log path {} has no file name", .path.display())]
    NoFileName { path: PathBuf },
    #[error("cannot open access log {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("access logs are shut down")]
    Closed,
}

/// The access-log files of a process: one writer thread per distinct path.
pub struct AccessLogs {
    state: Mutex<State>,
    dropped: Arc<AtomicU64>,
}

#[derive(Default)]
struct State {
    writers: HashMap<PathBuf, Writer>,
    closed: bool,
}

struct Writer {
    tx: SyncSender<Msg>,
    thread: JoinHandle<()>,
}

/// Where one distribution's entries go. Cheap to clone.
#[derive(Clone)]
pub struct LogHandle {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl LogHandle {
    /// Queues `entry` for its writer; never blocks. When the queue is full (or the logs
    /// were shut down) the entry is dropped and counted in [`AccessLogs::dropped`].
    pub fn log(&self, entry: LogEntry) {
        // Boxed so the preallocated queue holds pointers, not 64k full entries.
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Msg::Entry(Box::new(entry)))
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle").finish_non_exhaustive()
    }
}

impl Default for AccessLogs {
    fn default() -> Self {
        Self::new()
    }
}

impl AccessLogs {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A handle on the log file at `path`, starting its writer if it has none yet (the
    /// same file, however spelled, shares one writer). Creates the parent directories
    /// and writes [`HEADER`] when the file is new or empty.
    pub fn open(&self, path: &Path) -> Result<LogHandle, AccessLogError> {
        let key = normalize(path)?;
        let mut state = self.lock();
        if state.closed {
            return Err(AccessLogError::Closed);
        }
        // A writer thread only ends on shutdown; a finished one here means it panicked.
        if let Some(w) = state.writers.get(&key) {
            if !w.thread.is_finished() {
                return Ok(self.handle(w.tx.clone()));
            }
        }
        let io_err = |source| AccessLogError::Io {
            path: key.clone(),
            source,
        };
        let file = writer::open_log_file(&key).map_err(io_err)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let thread_path = key.clone();
        let thread = thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer::run(thread_path, file, rx))
            .map_err(io_err)?;
        let handle = self.handle(tx.clone());
        state.writers.insert(key, Writer { tx, thread });
        Ok(handle)
    }

    /// Every writer flushes, closes and reopens its file by path (SIGHUP, after logrotate
    /// renamed the files): a file that is gone is created again, with [`HEADER`]. Entries
    /// logged after this returns go to the new files. Waits at most ~2 s.
    pub fn reopen_all(&self) {
        self.broadcast(Msg::Reopen);
    }

    /// Writes everything queued so far to the files; returns when done (at most ~2 s).
    pub fn flush_all(&self) {
        self.broadcast(Msg::Flush);
    }

    /// Flushes and stops every writer, joining the threads; later `open` calls fail and
    /// later entries are dropped. Bounded: a writer stuck in I/O for more than ~2 s is
    /// left behind (detached) with a warning.
    pub fn shutdown(&self) {
        let writers = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.writers)
        };
        if writers.is_empty() {
            return;
        }
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        for w in writers.values() {
            send_control(&w.tx, Msg::Stop, deadline);
        }
        let mut pending: Vec<(PathBuf, JoinHandle<()>)> = writers
            .into_iter()
            .map(|(path, w)| (path, w.thread))
            .collect();
        loop {
            let (done, rest): (Vec<_>, Vec<_>) =
                pending.into_iter().partition(|(_, t)| t.is_finished());
            for (path, thread) in done {
                if thread.join().is_err() {
                    tracing::warn!(path = %path.display(), "access log writer thread panicked");
                }
            }
            pending = rest;
            if pending.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                for (path, _) in &pending {
                    tracing::warn!(
                        path = %path.display(),
                        "access log writer did not stop in time; leaving it behind"
                    );
                }
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Entries dropped because a writer's queue was full (or the logs were shut down).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn handle(&self, tx: SyncSender<Msg>) -> LogHandle {
        LogHandle {
            tx,
            dropped: Arc::clone(&self.dropped),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The map stays consistent even if a holder panicked; keep logging.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends a control message to every writer, then waits for all of them to ack it.
    fn broadcast(&self, make: fn(mpsc::Sender<()>) -> Msg) {
        let senders: Vec<SyncSender<Msg>> =
            self.lock().writers.values().map(|w| w.tx.clone()).collect();
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        let (ack_tx, ack_rx) = mpsc::channel();
        let sent = senders
            .iter()
            .filter(|tx| send_control(tx, make(ack_tx.clone()), deadline))
            .count();
        drop(ack_tx);
        for _ in 0..sent {
            let left = deadline.saturating_duration_since(Instant::now());
            if ack_rx.recv_timeout(left).is_err() {
                tracing::warn!("access log writers did not answer within {CONTROL_TIMEOUT:?}");
                return;
            }
        }
    }
}

impl Drop for AccessLogs {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Queues a control message even when the entry queue is full, waiting for room until
/// `deadline`. False when it could not be queued.
fn send_control(tx: &SyncSender<Msg>, mut msg: Msg, deadline: Instant) -> bool {
    loop {
        match tx.try_send(msg) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(m)) => {
                if Instant::now() >= deadline {
                    return false;
                }
                msg = m;
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// One key per file however it is spelled: the parent directory is created and
/// canonicalized (resolving `.`, `..`, symlinks and relative paths), the name kept.
fn normalize(path: &Path) -> Result<PathBuf, AccessLogError> {
    let name = path.file_name().ok_or_else(|| AccessLogError::NoFileName {
        path: path.to_owned(),
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let io_err = |source| AccessLogError::Io {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(parent).map_err(io_err)?;
    let dir = std::fs::canonicalize(parent).map_err(io_err)?;
    Ok(dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn entry(i: usize) -> LogEntry {
        LogEntry {
            time: SystemTime::now(),
            edge_location: "TST1".into(),
            method: "GET".into(),
            host: "d1.cairn.test".into(),
            uri_stem: format!("/obj/{i}"),
            status: Some(200),
            result_type: "Hit".into(),
            request_id: new_request_id(),
            ..LogEntry::default()
        }
    }

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn assert_header(lines: &[String]) {
        let mut header = HEADER.lines();
        assert_eq!(lines.first().map(String::as_str), header.next());
        assert_eq!(lines.get(1).map(String::as_str), header.next());
    }

    #[test]
    fn access_log_thousand_entries_then_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/access.log");
        let logs = AccessLogs::new();
        let h = logs.open(&path).unwrap();
        for i in 0..1000 {
            h.log(entry(i));
        }
        logs.shutdown();
        let got = lines(&path);
        assert_eq!(got.len(), 1002);
        assert_header(&got);
        for (i, l) in got[2..].iter().enumerate() {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), FIELD_COUNT);
            assert_eq!(f[7], format!("/obj/{i}"), "entries stay in order");
        }
        assert_eq!(logs.dropped(), 0);
        // After shutdown: no new writers, entries are counted as dropped.
        assert!(matches!(logs.open(&path), Err(AccessLogError::Closed)));
        h.log(entry(0));
        assert_eq!(logs.dropped(), 1);
        assert_eq!(lines(&path).len(), 1002);
    }

    #[test]
    fn access_log_flushes_within_a_second_and_a_half() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let logs = AccessLogs::new();
        let h = logs.open(&path).unwrap();
        // The header is written when the file is created, before any entry.
        assert_header(&lines(&path));
        h.log(entry(7));
        let start = Instant::now();
        while lines(&path).len() < 3 {
            assert!(
                start.elapsed() < Duration::from_millis(1500),
                "entry not flushed within 1.5 s"
            );
            thread::sleep(Duration::from_millis(20));
        }
        assert!(lines(&path)[2].contains("/obj/7"));
    }

    #[test]
    fn access_log_existing_file_gets_no_second_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        {
            let logs = AccessLogs::new();
            logs.open(&path).unwrap().log(entry(1));
        } // Drop shuts down and flushes.
        let logs = AccessLogs::new();
        logs.open(&path).unwrap().log(entry(2));
        logs.flush_all();
        let got = lines(&path);
        assert_eq!(got.len(), 4);
        assert_header(&got);
        assert!(got[3].contains("/obj/2"));
        // An empty existing file does get the header.
        let empty = dir.path().join("empty.log");
        fs::write(&empty, "").unwrap();
        logs.open(&empty).unwrap();
        assert_eq!(fs::read_to_string(&empty).unwrap(), HEADER);
    }

    #[test]
    fn access_log_reopen_after_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let rotated = dir.path().join("access.log.1");
        let logs = AccessLogs::new();
        let h = logs.open(&path).unwrap();
        h.log(entry(1));
        h.log(entry(2));
        logs.flush_all();
        fs::rename(&path, &rotated).unwrap();
        h.log(entry(3)); // Still goes to the renamed file: written before the reopen.
        logs.reopen_all();
        h.log(entry(4));
        h.log(entry(5));
        logs.flush_all();
        let old = lines(&rotated);
        assert_eq!(old.len(), 5);
        assert!(old[4].contains("/obj/3"));
        let new = lines(&path);
        assert_eq!(new.len(), 4);
        assert_header(&new);
        assert!(new[2].contains("/obj/4") && new[3].contains("/obj/5"));
    }

    #[test]
    fn access_log_same_path_shares_one_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.log");
        let logs = AccessLogs::new();
        let a = logs.open(&path).unwrap();
        // Another spelling of the same file (open creates `x` on the way).
        let b = logs.open(&dir.path().join("x/../shared.log")).unwrap();
        let c = a.clone();
        assert_eq!(logs.lock().writers.len(), 1);
        a.log(entry(1));
        b.log(entry(2));
        c.log(entry(3));
        logs.flush_all();
        let got = lines(&path);
        assert_eq!(got.len(), 5, "one header, three entries: {got:?}");
        assert_header(&got);
        let other = logs.open(&dir.path().join("other.log")).unwrap();
        assert_eq!(logs.lock().writers.len(), 2);
        other.log(entry(4));
        logs.shutdown();
        assert_eq!(lines(&dir.path().join("other.log")).len(), 3);
        assert_eq!(lines(&path).len(), 5);
    }

    #[test]
    fn access_log_full_queue_drops_and_counts() {
        let logs = AccessLogs::new();
        // A queue nobody reads: the handle must not block once it is full.
        let (tx, _rx) = mpsc::sync_channel(2);
        let h = LogHandle {
            tx,
            dropped: Arc::clone(&logs.dropped),
        };
        for i in 0..5 {
            h.log(entry(i));
        }
        assert_eq!(logs.dropped(), 3);
    }

    #[test]
    fn access_log_open_errors() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AccessLogs::new();
        // A directory is not a log file.
        let err = logs.open(dir.path()).unwrap_err();
        assert!(matches!(err, AccessLogError::Io { .. }), "{err}");
        assert!(matches!(
            logs.open(Path::new("/")),
            Err(AccessLogError::NoFileName { .. })
        ));
        // A parent that is a file.
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        assert!(logs.open(&file.join("a.log")).is_err());
        // Nothing was started; control calls on no writers return at once.
        logs.flush_all();
        logs.reopen_all();
        logs.shutdown();
        logs.shutdown();
    }

    #[test]
    fn access_log_goaccess_reads_our_files() {
        match testing::goaccess_available("access_log_goaccess_reads_our_files") {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => panic!("{e}"),
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cf.log");
        let logs = AccessLogs::new();
        let h = logs.open(&path).unwrap();
        let entries = testing::varied_entries(50);
        for e in entries {
            h.log(e);
        }
        logs.shutdown();
        assert_eq!(lines(&path).len(), 52);
        let report = testing::goaccess_check(&path).unwrap();
        assert_eq!(
            report.failed_requests, 0,
            "goaccess rejected lines: {:?}",
            report.invalid_lines
        );
        assert_eq!(report.total_requests, 50, "{report:?}");
        assert_eq!(report.valid_requests, 50, "{report:?}");
    }
}
