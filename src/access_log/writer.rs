//! The writer thread behind one access-log file: formats queued entries, buffers them,
//! flushes at least once per interval and on request, and reopens the file by path on
//! request (log rotation). An I/O error never ends the thread: it is reported (at most
//! once per interval, naming the file), the file is dropped together with its unwritten
//! buffer, and opening is retried on the next interval; entries arriving meanwhile are lost.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::format::{format_line_into, HEADER};
use super::LogEntry;

/// Longest time an entry stays in the buffer; also the retry and error-report interval.
pub(super) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

const BUFFER_BYTES: usize = 64 * 1024;

pub(super) enum Msg {
    Entry(Box<LogEntry>),
    /// Flush, then ack.
    Flush(Sender<()>),
    /// Flush, close, open the path again, then ack.
    Reopen(Sender<()>),
    /// Flush and end the thread.
    Stop,
}

/// Opens (creating it and its directories if needed) `path` for appending, and writes
/// the header right away when the file is empty.
pub(super) fn open_log_file(path: &Path) -> io::Result<BufWriter<File>> {
    if let Some(parent) = path.parent() {
        // The directory may have been rotated away too.
        std::fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut out = BufWriter::with_capacity(BUFFER_BYTES, file);
    if out.get_ref().metadata()?.len() == 0 {
        out.write_all(HEADER.as_bytes())?;
        out.flush()?;
    }
    Ok(out)
}

/// The thread body: runs until `Stop` or until every sender is gone.
pub(super) fn run(path: PathBuf, file: BufWriter<File>, rx: Receiver<Msg>) {
    let mut w = FileWriter::new(path, Some(file));
    let mut last_flush = Instant::now();
    loop {
        let wait = FLUSH_INTERVAL.saturating_sub(last_flush.elapsed());
        match rx.recv_timeout(wait) {
            Ok(Msg::Entry(e)) => w.write_entry(&e),
            Ok(Msg::Flush(ack)) => {
                w.flush();
                last_flush = Instant::now();
                let _ = ack.send(());
            }
            Ok(Msg::Reopen(ack)) => {
                w.reopen();
                last_flush = Instant::now();
                let _ = ack.send(());
            }
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                w.flush();
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        // Checked after every message too, so a busy queue still flushes each interval.
        if last_flush.elapsed() >= FLUSH_INTERVAL {
            w.tick();
            last_flush = Instant::now();
        }
    }
}

pub(super) struct FileWriter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    line: String,
    last_open_attempt: Instant,
    last_report: Option<Instant>,
    /// Entries lost since the last report because no file was open.
    lost: u64,
}

impl FileWriter {
    pub(super) fn new(path: PathBuf, out: Option<BufWriter<File>>) -> Self {
        Self {
            path,
            out,
            line: String::with_capacity(1024),
            last_open_attempt: Instant::now(),
            last_report: None,
            lost: 0,
        }
    }

    pub(super) fn write_entry(&mut self, e: &LogEntry) {
        if self.out.is_none() && self.last_open_attempt.elapsed() >= FLUSH_INTERVAL {
            self.try_open();
        }
        let Some(out) = self.out.as_mut() else {
            self.lost += 1;
            return;
        };
        self.line.clear();
        format_line_into(e, &mut self.line);
        self.line.push('\n');
        if let Err(err) = out.write_all(self.line.as_bytes()) {
            self.lost += 1;
            self.fail("write", &err);
        }
    }

    pub(super) fn flush(&mut self) {
        if let Some(out) = self.out.as_mut() {
            if let Err(err) = out.flush() {
                self.fail("flush", &err);
            }
        }
    }

    /// The periodic work: flush, or retry opening a file that failed.
    pub(super) fn tick(&mut self) {
        if self.out.is_some() {
            self.flush();
        } else if self.last_open_attempt.elapsed() >= FLUSH_INTERVAL {
            self.try_open();
        }
    }

    pub(super) fn reopen(&mut self) {
        self.flush();
        self.out = None; // Closes the old file (its buffer was just flushed).
        self.try_open();
    }

    fn try_open(&mut self) {
        self.last_open_attempt = Instant::now();
        match open_log_file(&self.path) {
            Ok(out) => {
                self.out = Some(out);
                if self.lost > 0 {
                    tracing::warn!(
                        path = %self.path.display(),
                        lost = self.lost,
                        "access log reopened; entries were lost while it was unavailable"
                    );
                    self.lost = 0;
                }
            }
            Err(err) => self.report("open", &err),
        }
    }

    /// Drops the file and whatever it still buffers (writing it again would likely fail
    /// the same way), so the next interval reopens the path from scratch.
    fn fail(&mut self, what: &str, err: &io::Error) {
        if let Some(out) = self.out.take() {
            let (_file, _unwritten) = out.into_parts();
        }
        self.last_open_attempt = Instant::now();
        self.report(what, err);
    }

    fn report(&mut self, what: &str, err: &io::Error) {
        let due = self
            .last_report
            .is_none_or(|t| t.elapsed() >= FLUSH_INTERVAL);
        if due {
            self.last_report = Some(Instant::now());
            tracing::warn!(
                path = %self.path.display(),
                error = %err,
                lost = self.lost,
                "access log {what} failed; retrying every {FLUSH_INTERVAL:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl FileWriter {
        fn is_open(&self) -> bool {
            self.out.is_some()
        }
    }

    #[test]
    fn access_log_io_errors_do_not_stop_the_writer() {
        let dev_full = Path::new("/dev/full");
        if !dev_full.exists() {
            eprintln!("skipping: no /dev/full here");
            return;
        }
        // /dev/full accepts open and fails every write with ENOSPC.
        assert!(open_log_file(dev_full).is_err(), "the header write fails");
        let file = OpenOptions::new().append(true).open(dev_full).unwrap();
        let mut w = FileWriter::new(dev_full.to_owned(), Some(BufWriter::new(file)));
        let e = LogEntry::default();
        w.write_entry(&e);
        w.flush();
        assert!(!w.is_open(), "a failed flush drops the file");
        w.write_entry(&e); // Too early to retry: counted as lost.
        assert_eq!(w.lost, 1);
        w.last_open_attempt = Instant::now() - FLUSH_INTERVAL;
        w.tick(); // Retries, fails again, stays closed.
        assert!(!w.is_open());
        w.reopen();
        assert!(!w.is_open());
    }

    #[test]
    fn access_log_writer_recovers_when_the_path_works_again() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("d");
        std::fs::write(&blocker, "a file where the directory should be").unwrap();
        let path = blocker.join("a.log");
        let mut w = FileWriter::new(path.clone(), None);
        w.last_open_attempt = Instant::now() - FLUSH_INTERVAL;
        w.tick();
        assert!(!w.is_open());
        w.write_entry(&LogEntry::default());
        assert_eq!(w.lost, 1);
        std::fs::remove_file(&blocker).unwrap();
        w.last_open_attempt = Instant::now() - FLUSH_INTERVAL;
        w.write_entry(&LogEntry::default());
        assert!(w.is_open());
        assert_eq!(w.lost, 0, "reset once the loss is reported");
        w.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER));
        assert_eq!(text.lines().count(), 3);
    }
}
