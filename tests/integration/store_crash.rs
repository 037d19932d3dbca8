//! Crash tests: this integration test binary re-runs itself as a child process that fills
//! the store (with the background thread checkpointing concurrently); the parent kills it
//! with SIGKILL at a random moment, reopens the store and checks every object the child
//! had reported committed: present with exact bytes and metadata, removals not undone,
//! metadata updates kept, half-written objects absent.
//!
//! The child entries are `#[ignore]`d tests that do nothing unless the parent set
//! `CAIRN_CRASH_CHILD_DIR`. `CAIRN_CRASH_SEED=<n>` replays the parent's random choices
//! (the kill moments themselves still depend on timing).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use cairn::store::{ObjectInfo, ObjectSpec, ObjectWriter, OpenReport, Store, StoreConfig, MIB};

use crate::common::*;

/// Set by the parent: the cache directory the child fills. Without it the child entries
/// return at once (so `cargo test -- --ignored` run by hand does nothing harmful).
const DIR_ENV: &str = "CAIRN_CRASH_CHILD_DIR";
/// Set by the parent: the child's random seed.
const CHILD_SEED_ENV: &str = "CAIRN_CRASH_CHILD_SEED";
/// Optional, for the person running the test: the parent's random seed.
const SEED_ENV: &str = "CAIRN_CRASH_SEED";
/// Every line the child reports starts with this (libtest may print its own text on the
/// same stream, even on the same line as the first report).
const MARK: &str = "@@crash ";

/// Kill-and-reopen rounds on the same directory.
const ROUNDS: usize = 10;
/// Rounds after whose crash the index directory is deleted before reopening.
const REBUILD_ROUNDS: [usize; 2] = [4, 8];
/// Far more than the test writes: nothing is ever evicted.
const CAPACITY: u64 = 4096 * MIB;
/// Far longer than the test runs: nothing expires.
const TTL_MS: u64 = 7 * 86_400_000;
const DISTRIBUTION: &str = "E1CRASH";
const TAG: &str = "crash";
/// How long the parent waits for a child's first report (it may be compiling neighbours
/// for company on a 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn crash_config(dir: &Path, background: Option<Duration>) -> StoreConfig {
    let mut cfg = test_config(dir, CAPACITY);
    cfg.background_interval = background;
    cfg
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn parent_seed() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(s) => s.trim().parse().expect("CAIRN_CRASH_SEED is a number"),
        Err(_) => rand::random(),
    }
}

// ---------------------------------------------------------------------------------------
// Child process plumbing
// ---------------------------------------------------------------------------------------

/// A child process that is killed and reaped whatever happens to the test.
struct ChildGuard {
    child: Child,
    reader: Option<JoinHandle<()>>,
    stderr_path: PathBuf,
}

impl ChildGuard {
    /// Re-runs this test binary as `entry` on `dir`; its reports arrive on the receiver.
    fn spawn(
        entry: &str,
        dir: &Path,
        seed: u64,
        log_dir: &Path,
    ) -> (ChildGuard, mpsc::Receiver<String>) {
        let stderr_path = log_dir.join(format!("child-{seed}.stderr"));
        let stderr = std::fs::File::create(&stderr_path).expect("child stderr file");
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args(["--exact", entry, "--nocapture", "--ignored"])
            .env(DIR_ENV, dir)
            .env(CHILD_SEED_ENV, seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawning the child process");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        // Ends at EOF, which comes when the child dies (nothing else holds its stdout).
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                // A line cut short by the kill is not a report.
                if buf.last() != Some(&b'\n') {
                    return;
                }
                let line = String::from_utf8_lossy(&buf);
                if let Some(i) = line.find(MARK) {
                    if tx
                        .send(line[i + MARK.len()..].trim_end().to_string())
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        let guard = ChildGuard {
            child,
            reader: Some(reader),
            stderr_path,
        };
        (guard, rx)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Fails the test (with the child's stderr) if the child has already exited.
    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "the child exited by itself ({status}) {what}; its stderr:\n{}",
                self.stderr()
            );
        }
    }

    /// SIGKILL, reap, and wait for the reader to see EOF.
    fn kill(&mut self) {
        // SAFETY: kill(2) only takes integers; the pid is our child, not yet reaped, so it
        // cannot have been reused by another process.
        let rc = unsafe { libc::kill(self.pid(), libc::SIGKILL) };
        assert_eq!(rc, 0, "kill(SIGKILL) failed");
        let status = self.child.wait().expect("waiting for the killed child");
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "the child did not die of SIGKILL ({status}); its stderr:\n{}",
            self.stderr()
        );
        if let Some(r) = self.reader.take() {
            r.join().expect("stdout reader thread");
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Writes one report line and flushes it before returning.
fn emit(out: &mut impl Write, line: std::fmt::Arguments<'_>) {
    let s = format!("{MARK}{line}\n");
    out.write_all(s.as_bytes()).expect("child: stdout");
    out.flush().expect("child: flush stdout");
}

/// The child waits here to be killed; bounded, in case the parent is gone.
fn wait_to_be_killed() {
    std::thread::sleep(Duration::from_secs(60));
}

// ---------------------------------------------------------------------------------------
// Test 1: random fills, updates and removals, killed at random, over ten rounds
// ---------------------------------------------------------------------------------------

/// One version of an object, as both processes can recompute it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    seed: u64,
    len: usize,
    stored_ms: u64,
    expires_ms: u64,
    meta: String,
}

impl Version {
    fn spec(&self, key: &str) -> ObjectSpec {
        ObjectSpec {
            key: key.as_bytes().to_vec(),
            distribution: DISTRIBUTION.into(),
            tags: vec![TAG.into()],
            meta: self.meta.clone().into_bytes(),
            stored_at: at_ms(self.stored_ms),
            expires_at: at_ms(self.expires_ms),
        }
    }

    fn body(&self) -> Vec<u8> {
        body(self.seed, self.len)
    }
}

#[derive(Debug, Clone, Copy)]
enum Class {
    Small,
    Medium,
    Large,
}

fn random_key(rng: &mut StdRng, class: Class) -> String {
    match class {
        Class::Small => format!("s/{:03}", rng.random_range(0..160)),
        Class::Medium => format!("m/{:02}", rng.random_range(0..32)),
        Class::Large => format!("l/{}", rng.random_range(0..6)),
    }
}

fn any_key(rng: &mut StdRng) -> String {
    let class = match rng.random_range(0..10) {
        0..=5 => Class::Small,
        6..=8 => Class::Medium,
        _ => Class::Large,
    };
    random_key(rng, class)
}

/// A new version; about a third reuse one of a few bodies (dedupe).
fn new_version(rng: &mut StdRng, class: Class, unique_seed: u64) -> Version {
    let shared = rng.random_bool(0.3);
    let (seed, len) = match class {
        Class::Small if shared => {
            let s = rng.random_range(1..=4u64);
            (s, 512 * s as usize)
        }
        Class::Small => (unique_seed, rng.random_range(0..=4096)),
        Class::Medium if shared => {
            let s = rng.random_range(11..=13u64);
            (s, 100 * 1024 + s as usize)
        }
        Class::Medium => (unique_seed, rng.random_range(90 * 1024..=110 * 1024)),
        Class::Large if shared => {
            let s = rng.random_range(21..=22u64);
            (s, 1536 * 1024 + s as usize)
        }
        Class::Large => (unique_seed, rng.random_range(1400 * 1024..=1600 * 1024)),
    };
    let stored_ms = now_ms();
    Version {
        seed,
        len,
        stored_ms,
        expires_ms: stored_ms + TTL_MS + rng.random_range(0..1000),
        meta: format!("v{unique_seed:x}-{}", "x".repeat(rng.random_range(0..120))),
    }
}

fn put_line(key: &str, v: &Version) -> String {
    format!(
        "P {key} {} {} {} {} {}",
        v.seed, v.len, v.stored_ms, v.expires_ms, v.meta
    )
}

/// A large fill left open while other work goes on.
struct Parked {
    key: String,
    data: Vec<u8>,
    written: usize,
    w: ObjectWriter,
}

/// Writes `data[from..]` in pieces of random size, at most `limit` bytes; returns the new
/// position.
fn write_pieces(
    rng: &mut StdRng,
    w: &mut ObjectWriter,
    data: &[u8],
    from: usize,
    limit: usize,
) -> usize {
    let end = (from + limit).min(data.len());
    let mut at = from;
    while at < end {
        let n = rng.random_range(1..=300 * 1024).min(end - at);
        w.write(&data[at..at + n]).expect("child: write");
        at += n;
    }
    at
}

/// Child of [`sigkill_at_random_moments_loses_nothing_committed`]. Runs only when the
/// parent set `CAIRN_CRASH_CHILD_DIR`; otherwise (e.g. `--ignored` by hand) it returns at
/// once.
#[test]
#[ignore = "child process of sigkill_at_random_moments_loses_nothing_committed"]
fn child_process_entry() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_ENV)
        .expect("child seed")
        .parse()
        .expect("child seed is a number");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = std::io::stdout().lock();
    let store = Store::open(crash_config(
        Path::new(&dir),
        Some(Duration::from_millis(25)),
    ))
    .expect("child: open");
    emit(&mut out, format_args!("START"));

    let mut parked: Option<Parked> = None;
    let mut written_bytes = 0usize;
    let mut counter = 0u64;
    let unique = |c: u64| (seed << 16) ^ c ^ (1 << 62);
    for _ in 0..3000 {
        if written_bytes > 48 * MIB as usize {
            break;
        }
        counter += 1;
        // Progress on the parked fill.
        if parked.is_some() && rng.random_bool(0.25) {
            let mut p = parked.take().expect("parked");
            if p.written < p.data.len() {
                let limit = rng.random_range(64 * 1024..=400 * 1024);
                let at = write_pieces(&mut rng, &mut p.w, &p.data, p.written, limit);
                written_bytes += at - p.written;
                p.written = at;
                parked = Some(p);
            } else if rng.random_bool(0.8) {
                emit(&mut out, format_args!("C {}", p.key));
                p.w.commit().expect("child: commit parked");
                emit(&mut out, format_args!("OK {}", p.key));
            } else {
                p.w.abort();
                emit(&mut out, format_args!("A {}", p.key));
            }
            continue;
        }
        let roll = rng.random_range(0..100);
        let class = match roll {
            0..=49 => Class::Small,
            50..=69 => Class::Medium,
            _ => Class::Large,
        };
        let key = match roll {
            0..=75 => random_key(&mut rng, class),
            _ => any_key(&mut rng),
        };
        if parked.as_ref().is_some_and(|p| p.key == key) {
            continue;
        }
        match roll {
            // Whole inserts.
            0..=69 => {
                let v = new_version(&mut rng, class, unique(counter));
                let data = v.body();
                emit(&mut out, format_args!("{}", put_line(&key, &v)));
                emit(&mut out, format_args!("C {key}"));
                store.insert(v.spec(&key), &data).expect("child: insert");
                emit(&mut out, format_args!("OK {key}"));
                written_bytes += data.len();
            }
            // Large streamed fills, sometimes parked mid-stream.
            70..=75 => {
                let v = new_version(&mut rng, Class::Large, unique(counter));
                let data = v.body();
                emit(&mut out, format_args!("{}", put_line(&key, &v)));
                let mut w = store.begin(v.spec(&key)).expect("child: begin");
                if parked.is_none() && rng.random_bool(0.5) {
                    let limit = rng.random_range(64 * 1024..=600 * 1024);
                    let at = write_pieces(&mut rng, &mut w, &data, 0, limit);
                    written_bytes += at;
                    parked = Some(Parked {
                        key,
                        data,
                        written: at,
                        w,
                    });
                } else {
                    write_pieces(&mut rng, &mut w, &data, 0, data.len());
                    written_bytes += data.len();
                    emit(&mut out, format_args!("C {key}"));
                    w.commit().expect("child: commit");
                    emit(&mut out, format_args!("OK {key}"));
                }
            }
            76..=89 => {
                let stored_ms = now_ms();
                let expires_ms = stored_ms + TTL_MS + rng.random_range(0..1000);
                let meta = format!("u{:x}", unique(counter));
                emit(
                    &mut out,
                    format_args!("U {key} {stored_ms} {expires_ms} {meta}"),
                );
                let found = store
                    .update_meta(
                        key.as_bytes(),
                        meta.into_bytes(),
                        at_ms(stored_ms),
                        at_ms(expires_ms),
                    )
                    .expect("child: update_meta");
                emit(&mut out, format_args!("UOK {key} {found}"));
            }
            _ => {
                emit(&mut out, format_args!("R {key}"));
                let found = store.remove(key.as_bytes()).expect("child: remove");
                emit(&mut out, format_args!("ROK {key} {found}"));
            }
        }
    }
    emit(&mut out, format_args!("END"));
    wait_to_be_killed();
    // Keep the open fill alive until the kill.
    drop(parked);
}

/// What the child may have been doing to a key when it died.
#[derive(Debug, Clone)]
enum Pending {
    Put {
        v: Version,
        committing: bool,
    },
    Update {
        stored_ms: u64,
        expires_ms: u64,
        meta: String,
    },
    Remove,
}

/// What the parent knows the store must hold.
#[derive(Debug, Default)]
struct Model {
    /// Every key ever touched, with its state as of the last confirmed operation.
    state: BTreeMap<String, Option<Version>>,
    pending: BTreeMap<String, Pending>,
    /// Facts the live child reported that contradict the model.
    contradictions: Vec<String>,
}

#[derive(Debug, Default)]
struct RoundCounts {
    lines: usize,
    commits: usize,
    updates: usize,
    removes: usize,
    aborts: usize,
    ended: bool,
}

impl Model {
    fn apply(&mut self, line: &str, counts: &mut RoundCounts) {
        counts.lines += 1;
        let t: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> u64 {
            t[i].parse()
                .unwrap_or_else(|_| panic!("bad report {line:?}"))
        };
        match t[0] {
            "START" => {}
            "END" => counts.ended = true,
            "P" => {
                let v = Version {
                    seed: num(2),
                    len: num(3) as usize,
                    stored_ms: num(4),
                    expires_ms: num(5),
                    meta: t[6].to_string(),
                };
                self.pending.insert(
                    t[1].into(),
                    Pending::Put {
                        v,
                        committing: false,
                    },
                );
            }
            "C" => match self.pending.get_mut(t[1]) {
                Some(Pending::Put { committing, .. }) => *committing = true,
                other => panic!("report {line:?} with pending {other:?}"),
            },
            "OK" => match self.pending.remove(t[1]) {
                Some(Pending::Put { v, .. }) => {
                    counts.commits += 1;
                    self.state.insert(t[1].into(), Some(v));
                }
                other => panic!("report {line:?} with pending {other:?}"),
            },
            "A" => {
                counts.aborts += 1;
                self.pending.remove(t[1]);
            }
            "U" => {
                self.pending.insert(
                    t[1].into(),
                    Pending::Update {
                        stored_ms: num(2),
                        expires_ms: num(3),
                        meta: t[4].to_string(),
                    },
                );
            }
            "UOK" => {
                counts.updates += 1;
                let found = t[2] == "true";
                let Some(Pending::Update {
                    stored_ms,
                    expires_ms,
                    meta,
                }) = self.pending.remove(t[1])
                else {
                    panic!("report {line:?} without a pending update");
                };
                let cur = self.state.entry(t[1].into()).or_default();
                if found != cur.is_some() {
                    self.contradictions.push(format!(
                        "update_meta({}) returned {found} but the key should be {}",
                        t[1],
                        if cur.is_some() { "present" } else { "absent" }
                    ));
                }
                if let Some(v) = cur {
                    v.stored_ms = stored_ms;
                    v.expires_ms = expires_ms;
                    v.meta = meta;
                }
            }
            "R" => {
                self.pending.insert(t[1].into(), Pending::Remove);
            }
            "ROK" => {
                counts.removes += 1;
                let found = t[2] == "true";
                self.pending.remove(t[1]);
                let cur = self.state.entry(t[1].into()).or_default();
                if found != cur.is_some() {
                    self.contradictions.push(format!(
                        "remove({}) returned {found} but the key should be {}",
                        t[1],
                        if cur.is_some() { "present" } else { "absent" }
                    ));
                }
                *cur = None;
            }
            _ => panic!("unknown report {line:?}"),
        }
    }

    /// The states `key` may be in after the crash.
    fn acceptable(&self, key: &str) -> Vec<Option<Version>> {
        let cur = self.state.get(key).cloned().flatten();
        match self.pending.get(key) {
            None => vec![cur],
            // Never reached commit(): must not be visible.
            Some(Pending::Put {
                committing: false, ..
            }) => vec![cur],
            // Killed in (or right after) commit(): either version, whole.
            Some(Pending::Put {
                v,
                committing: true,
            }) => vec![cur, Some(v.clone())],
            Some(Pending::Update {
                stored_ms,
                expires_ms,
                meta,
            }) => {
                let updated = cur.clone().map(|v| Version {
                    stored_ms: *stored_ms,
                    expires_ms: *expires_ms,
                    meta: meta.clone(),
                    ..v
                });
                vec![cur, updated]
            }
            Some(Pending::Remove) => vec![cur, None],
        }
    }

    fn present(&self) -> usize {
        self.state.values().filter(|v| v.is_some()).count()
    }
}

fn describe(v: &Option<Version>) -> String {
    match v {
        None => "absent".into(),
        Some(v) => format!(
            "seed {} len {} meta {} stored {} expires {}",
            v.seed, v.len, v.meta, v.stored_ms, v.expires_ms
        ),
    }
}

fn describe_observed(o: &Option<(ObjectInfo, Vec<u8>)>) -> String {
    match o {
        None => "absent".into(),
        Some((info, data)) => format!(
            "len {} (read {}) meta {} stored {:?} expires {:?} dist {} tags {:?}",
            info.body_len,
            data.len(),
            String::from_utf8_lossy(&info.meta),
            info.stored_at
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis()),
            info.expires_at
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis()),
            info.distribution,
            info.tags
        ),
    }
}

fn observed_matches(key: &str, o: &Option<(ObjectInfo, Vec<u8>)>, want: &Option<Version>) -> bool {
    match (o, want) {
        (None, None) => true,
        (Some((info, data)), Some(v)) => {
            info.key == key.as_bytes()
                && info.distribution == DISTRIBUTION
                && info.tags == vec![TAG.to_string()]
                && info.meta == v.meta.as_bytes()
                && info.stored_at == at_ms(v.stored_ms)
                && info.expires_at == at_ms(v.expires_ms)
                && info.body_len == v.len as u64
                && data.len() == v.len
                && *data == v.body()
                && info.blob == *blake3::hash(data).as_bytes()
        }
        _ => false,
    }
}

#[derive(Debug, Default)]
struct Verified {
    keys: usize,
    present: usize,
    /// How each operation in flight at the kill turned out.
    in_flight: Vec<String>,
}

/// Checks every key the model knows against the store, resolves the operations that were
/// in flight, and checks that the store holds nothing else. Panics with every mismatch.
fn verify(store: &Store, model: &mut Model, round: usize) -> Verified {
    let mut errors = std::mem::take(&mut model.contradictions);
    let mut out = Verified::default();
    let keys: BTreeSet<String> = model
        .state
        .keys()
        .chain(model.pending.keys())
        .cloned()
        .collect();
    for key in &keys {
        let observed = match store.lookup(key.as_bytes()) {
            Ok(None) => None,
            Ok(Some(hit)) => match hit.body.read_all() {
                Ok(data) => Some((hit.info, data)),
                Err(e) => {
                    errors.push(format!("{key}: reading the body failed: {e}"));
                    continue;
                }
            },
            Err(e) => {
                errors.push(format!("{key}: lookup failed: {e}"));
                continue;
            }
        };
        let candidates = model.acceptable(key);
        match candidates
            .iter()
            .position(|c| observed_matches(key, &observed, c))
        {
            Some(i) => {
                if let Some(p) = model.pending.get(key) {
                    let what = match p {
                        Pending::Put {
                            committing: false, ..
                        } => "fill not yet committing",
                        Pending::Put {
                            committing: true, ..
                        } => "fill in commit",
                        Pending::Update { .. } => "update_meta",
                        Pending::Remove => "remove",
                    };
                    let outcome =
                        if i == 0 && candidates.len() > 1 && candidates[0] != candidates[1] {
                            "not applied"
                        } else if i == 0 {
                            "old state"
                        } else {
                            "applied"
                        };
                    out.in_flight.push(format!("{key} ({what}): {outcome}"));
                }
                out.keys += 1;
                if observed.is_some() {
                    out.present += 1;
                }
                model.state.insert(key.clone(), candidates[i].clone());
            }
            None => errors.push(format!(
                "{key}: found {} but expected one of [{}]",
                describe_observed(&observed),
                candidates
                    .iter()
                    .map(describe)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )),
        }
    }
    model.pending.clear();
    // Nothing the child never committed may appear.
    let mut listed = 0;
    for item in store.iter() {
        let info = item.expect("iterating the store");
        listed += 1;
        let key = String::from_utf8_lossy(&info.key).into_owned();
        if !keys.contains(&key) {
            errors.push(format!("{key}: listed but never written"));
        }
    }
    if listed != out.present {
        errors.push(format!(
            "the store lists {listed} objects, lookups found {}",
            out.present
        ));
    }
    let stats = store.stats();
    if stats.objects != out.present as u64 {
        errors.push(format!(
            "stats().objects is {} but {} objects are present",
            stats.objects, out.present
        ));
    }
    assert!(
        errors.is_empty(),
        "round {round}: {} problem(s) after reopening:\n  {}",
        errors.len(),
        errors.join("\n  ")
    );
    out
}

fn report_line(r: &OpenReport) -> String {
    format!(
        "rebuilt={} ({:?}) clean_shutdown={} replayed_records={} torn_tail={:?} segments={} objects={} lost={:?} orphans={:?}",
        r.rebuilt,
        r.rebuild_reason,
        r.clean_shutdown,
        r.replayed_records,
        r.torn_tail,
        r.segments,
        r.objects,
        r.lost_segments,
        r.removed_orphan_segments
    )
}

#[test]
fn sigkill_at_random_moments_loses_nothing_committed() {
    let seed = parent_seed();
    eprintln!("store_crash: seed {seed} (set {SEED_ENV}={seed} to replay the parent's choices)");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let mut model = Model::default();
    let mut total_commits = 0;
    let mut total_verified = 0;
    let started = Instant::now();

    for round in 1..=ROUNDS {
        let child_seed: u64 = rng.random_range(1..u64::MAX >> 20);
        let delay = Duration::from_millis(rng.random_range(50..=400));
        let (mut child, rx) = ChildGuard::spawn(
            "store_crash::child_process_entry",
            &dir,
            child_seed,
            tmp.path(),
        );
        let first = match rx.recv_timeout(START_TIMEOUT) {
            Ok(l) => l,
            Err(e) => panic!(
                "round {round}: no report from the child ({e}); its stderr:\n{}",
                child.stderr()
            ),
        };
        assert_eq!(first, "START", "round {round}: first report");
        std::thread::sleep(delay);
        child.assert_running(&format!("in round {round} before the kill"));
        child.kill();
        drop(child);

        let mut counts = RoundCounts::default();
        let known_before = model.present();
        model.apply(&first, &mut counts);
        for line in rx.try_iter() {
            model.apply(&line, &mut counts);
        }
        total_commits += counts.commits;

        let rebuild = REBUILD_ROUNDS.contains(&round);
        if rebuild {
            std::fs::remove_dir_all(dir.join("index")).expect("deleting the index");
        }
        let store = Store::open(crash_config(&dir, None)).expect("reopening after the crash");
        let rep = store.open_report().clone();
        assert!(
            !rep.clean_shutdown,
            "round {round}: a killed store reopened as cleanly shut down"
        );
        if rebuild {
            assert!(rep.rebuilt, "round {round}: index deleted but not rebuilt");
        }
        let pending_desc: Vec<String> = model
            .pending
            .iter()
            .map(|(k, p)| match p {
                Pending::Put { committing, .. } => format!("put {k} committing={committing}"),
                Pending::Update { .. } => format!("update {k}"),
                Pending::Remove => format!("remove {k}"),
            })
            .collect();
        let v = verify(&store, &mut model, round);
        total_verified += v.keys;
        eprintln!(
            "round {round}: killed {} ms after START; {} reports, {} commits, {} updates, {} removes, {} aborts, ended={}; in flight: {:?}",
            delay.as_millis(),
            counts.lines,
            counts.commits,
            counts.updates,
            counts.removes,
            counts.aborts,
            counts.ended,
            pending_desc
        );
        eprintln!("round {round}: open: {}", report_line(&rep));
        eprintln!(
            "round {round}: verified {} keys ({} present); in-flight outcomes: {:?}",
            v.keys, v.present, v.in_flight
        );
        if rebuild {
            eprintln!(
                "round {round}: REBUILD from segments found all {} objects present before this round's child ran (last clean close) and all {} commits of the crashed child, byte for byte",
                known_before, counts.commits
            );
        }
        store.close().expect("closing after verification");
    }

    // A last clean close must reopen without replay.
    let store = Store::open(crash_config(&dir, None)).expect("final reopen");
    let rep = store.open_report().clone();
    assert!(rep.clean_shutdown, "final reopen: {}", report_line(&rep));
    assert_eq!(
        rep.replayed_records,
        0,
        "final reopen: {}",
        report_line(&rep)
    );
    let v = verify(&store, &mut model, ROUNDS + 1);
    total_verified += v.keys;
    store.close().unwrap();
    eprintln!(
        "store_crash: {ROUNDS} rounds, {total_commits} commits reported, {total_verified} key checks, {} objects at the end, {:.1} s",
        v.present,
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------
// Test 2: SIGKILL during a prefix removal
// ---------------------------------------------------------------------------------------

const PREFIX: &str = "doomed/";
const PREFIX_KEYS: usize = 3000;
/// Keys next to the prefix that must survive it.
const NEIGHBOURS: [&str; 5] = ["doomed", "doomee/x", "doome/x", "keep/1", "doomed\u{7f}"];
const PREFIX_ROUNDS: usize = 3;

fn prefix_key(i: usize) -> String {
    format!("{PREFIX}{i:05}")
}

fn prefix_body(i: usize) -> Vec<u8> {
    body(i as u64 + 7, 64 + i % 512)
}

/// Child of [`sigkill_during_remove_prefix_is_all_or_nothing`]. Runs only when the parent
/// set `CAIRN_CRASH_CHILD_DIR`; otherwise (e.g. `--ignored` by hand) it returns at once.
#[test]
#[ignore = "child process of sigkill_during_remove_prefix_is_all_or_nothing"]
fn prefix_child_process_entry() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    let store = Store::open(crash_config(
        Path::new(&dir),
        Some(Duration::from_millis(20)),
    ))
    .expect("child: open");
    let ttl = Duration::from_millis(TTL_MS);
    for (i, k) in NEIGHBOURS.iter().enumerate() {
        store
            .insert(spec_now(k, ttl), &body(900 + i as u64, 300))
            .expect("child: insert neighbour");
    }
    for i in 0..PREFIX_KEYS {
        store
            .insert(spec_now(&prefix_key(i), ttl), &prefix_body(i))
            .expect("child: insert");
    }
    emit(&mut out, format_args!("ready"));
    let started = Instant::now();
    let n = store
        .remove_prefix(PREFIX.as_bytes())
        .expect("child: remove_prefix");
    emit(
        &mut out,
        format_args!("done {n} {}", started.elapsed().as_micros()),
    );
    wait_to_be_killed();
}

#[test]
fn sigkill_during_remove_prefix_is_all_or_nothing() {
    let seed = parent_seed();
    eprintln!("store_crash prefix: seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    for round in 1..=PREFIX_ROUNDS {
        let dir = tmp.path().join(format!("cache-{round}"));
        // Round 1 kills at once (the tombstone may not be written yet); later ones later.
        let delay = Duration::from_micros(match round {
            1 => 0,
            _ => rng.random_range(0..=400_000),
        });
        let (mut child, rx) = ChildGuard::spawn(
            "store_crash::prefix_child_process_entry",
            &dir,
            seed ^ round as u64,
            tmp.path(),
        );
        match rx.recv_timeout(START_TIMEOUT * 2) {
            Ok(l) => assert_eq!(l, "ready"),
            Err(e) => panic!(
                "round {round}: no report from the child ({e}); its stderr:\n{}",
                child.stderr()
            ),
        }
        std::thread::sleep(delay);
        child.assert_running(&format!("in prefix round {round}"));
        child.kill();
        drop(child);
        let done: Option<String> = rx.try_iter().find(|l| l.starts_with("done"));

        let store = Store::open(crash_config(&dir, None)).expect("reopening");
        let rep = store.open_report().clone();
        let present: Vec<usize> = (0..PREFIX_KEYS)
            .filter(
                |&i| match store.lookup(prefix_key(i).as_bytes()).expect("lookup") {
                    None => false,
                    Some(hit) => {
                        assert_eq!(
                            hit.body.read_all().expect("body"),
                            prefix_body(i),
                            "{} has the wrong body",
                            prefix_key(i)
                        );
                        true
                    }
                },
            )
            .collect();
        for (i, k) in NEIGHBOURS.iter().enumerate() {
            assert_eq!(
                read(&store, k),
                Some(body(900 + i as u64, 300)),
                "round {round}: neighbour {k:?} of the prefix"
            );
        }
        eprintln!(
            "prefix round {round}: killed {} us after ready; child reported {:?}; {} of {PREFIX_KEYS} keys present; open: {}",
            delay.as_micros(),
            done,
            present.len(),
            report_line(&rep)
        );
        if done.is_some() {
            assert!(
                present.is_empty(),
                "round {round}: remove_prefix returned but {} keys came back (first {:?})",
                present.len(),
                present.first().map(|&i| prefix_key(i))
            );
        }
        assert!(
            present.is_empty() || present.len() == PREFIX_KEYS,
            "round {round}: a prefix removal interrupted by SIGKILL was partly applied: {} of {PREFIX_KEYS} keys present after reopen (first present {:?}, first absent {:?})",
            present.len(),
            present.first().map(|&i| prefix_key(i)),
            (0..PREFIX_KEYS).find(|i| !present.contains(i)).map(prefix_key)
        );
        assert_eq!(
            store.stats().objects as usize,
            present.len() + NEIGHBOURS.len(),
            "round {round}: object count"
        );
        store.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Test 3: the rebuild case the crash rounds found, in its smallest form
// ---------------------------------------------------------------------------------------

/// A body whose only object is removed loses its blob entry; storing the same body again
/// writes a second blob record. A rebuild from the segments must keep the objects written
/// after that second record.
#[test]
fn rebuild_keeps_objects_of_a_body_stored_again_after_its_blob_was_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = crash_config(tmp.path(), None);
    let ttl = Duration::from_millis(TTL_MS);
    let data = body(42, 10_000);
    {
        let store = Store::open(cfg.clone()).unwrap();
        store.insert(spec_now("a", ttl), &data).unwrap();
        assert!(store.remove(b"a").unwrap());
        // The blob entry went with its last reference, so this writes a new blob record.
        store.insert(spec_now("b", ttl), &data).unwrap();
        // And this one shares it.
        store.insert(spec_now("c", ttl), &data).unwrap();
        assert_eq!(read(&store, "b"), Some(data.clone()));
        assert_eq!(read(&store, "c"), Some(data.clone()));
        store.close().unwrap();
    }
    std::fs::remove_dir_all(tmp.path().join("index")).unwrap();
    let store = Store::open(cfg).unwrap();
    assert!(store.open_report().rebuilt);
    assert_eq!(read(&store, "a"), None);
    assert_eq!(
        read(&store, "b"),
        Some(data.clone()),
        "b lost by the rebuild"
    );
    assert_eq!(read(&store, "c"), Some(data), "c lost by the rebuild");
}

/// Child of [`replay_after_sigkill_keeps_objects_of_a_body_stored_again`]: the sequence of
/// the test above, after the checkpoint that opening writes, then a report and a wait to be
/// killed. Runs only when the parent set `CAIRN_CRASH_CHILD_DIR`; otherwise (e.g.
/// `--ignored` by hand) it returns at once.
#[test]
#[ignore = "child process of replay_after_sigkill_keeps_objects_of_a_body_stored_again"]
fn replay_child_process_entry() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    let store = Store::open(crash_config(Path::new(&dir), None)).expect("child: open");
    let ttl = Duration::from_millis(TTL_MS);
    let data = body(42, 10_000);
    store.insert(spec_now("a", ttl), &data).expect("child: a");
    assert!(store.remove(b"a").expect("child: remove a"));
    store.insert(spec_now("b", ttl), &data).expect("child: b");
    store.insert(spec_now("c", ttl), &data).expect("child: c");
    emit(&mut out, format_args!("ready"));
    wait_to_be_killed();
}

/// The same case through crash recovery: the records after the checkpoint watermark are
/// replayed into an index that has not absorbed them (sled flushes every 500 ms; the child
/// is killed right after its last commit).
#[test]
fn replay_after_sigkill_keeps_objects_of_a_body_stored_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let (mut child, rx) = ChildGuard::spawn(
        "store_crash::replay_child_process_entry",
        &dir,
        1,
        tmp.path(),
    );
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(l) => assert_eq!(l, "ready"),
        Err(e) => panic!(
            "no report from the child ({e}); its stderr:\n{}",
            child.stderr()
        ),
    }
    child.kill();
    drop(child);
    let store = Store::open(crash_config(&dir, None)).unwrap();
    let rep = report_line(store.open_report());
    let data = body(42, 10_000);
    assert_eq!(read(&store, "a"), None, "{rep}");
    assert_eq!(
        read(&store, "b"),
        Some(data.clone()),
        "b lost by replay; {rep}"
    );
    assert_eq!(read(&store, "c"), Some(data), "c lost by replay; {rep}");
}
