//! Store faults seen through the real `cairn` binary: a segment file deleted or bytes
//! flipped while the edge runs, a segment truncated or the index damaged or deleted between
//! runs, and a full disk. Whatever happens, a viewer never gets a wrong byte: an object the
//! fault touched becomes a miss, is fetched again and is a Hit after that; each event shows
//! in the metrics and is logged once.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::body;
use crate::edge_harness::*;

const HOST: &str = "www.site.test";

/// `/obj/<seed>/<len>`: an object of `len` bytes that no other seed shares.
fn target(seed: u64, len: usize) -> String {
    format!("/obj/{seed}/{len}")
}

fn body_for(target: &str) -> Vec<u8> {
    let mut parts = target.trim_start_matches("/obj/").split('/');
    let seed: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let len: usize = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    body(seed, len)
}

/// An origin answering every `/obj/...` with its body, cacheable for an hour.
async fn content_origin() -> Origin {
    Origin::start(|seen| {
        ok(
            &body_for(&seen.target),
            &[("cache-control", "max-age=3600")],
        )
    })
    .await
}

/// Starts `cairn serve` with its cache in `cache` and `cache_extra` added to `[cache]`.
fn start_edge(dir: &Path, cache: &Path, origin: &Origin, cache_extra: &str) -> Edge {
    let file = dir.join("cairn.toml");
    let text = format!(
        "[edge]\nname = \"fault-edge\"\ndomain = \"cdn.test\"\nlisten = \"127.0.0.1:0\"\n\
         admin_listen = \"127.0.0.1:0\"\ndrain_timeout = 5\n\n\
         [cache]\ndir = \"{}\"\n{cache_extra}\n\n\
         [[distribution]]\nid = \"site\"\naliases = [\"{HOST}\"]\n\
         [[distribution.origin]]\nurl = \"{}\"\n",
        cache.display(),
        origin.url()
    );
    std::fs::write(&file, text).unwrap();
    Edge::with_config(&file, dir)
}

/// GET `target`; asserts a 200 with exactly the origin's bytes and returns `X-Cache`.
async fn fetch_right_bytes(edge: &Edge, target: &str) -> String {
    let r = get(edge.addr, HOST, target).await;
    assert_eq!(r.status, 200, "{target}: {:?}", r.body);
    let got = r.body.as_ref().unwrap_or_else(|e| panic!("{target}: {e}"));
    assert!(
        got[..] == body_for(target)[..],
        "{target}: wrong bytes ({} bytes, {})",
        got.len(),
        r.x_cache()
    );
    r.x_cache().to_string()
}

/// Fetches every target until each is a Hit with the right bytes; returns how many were
/// misses on the first round (fetched from the origin again).
async fn refetched_then_hits(edge: &Edge, targets: &[String]) -> usize {
    let mut misses = 0;
    for t in targets {
        if !fetch_right_bytes(edge, t).await.starts_with("Hit") {
            misses += 1;
        }
    }
    for t in targets {
        let x = fetch_right_bytes(edge, t).await;
        assert!(x.starts_with("Hit"), "{t} is not a Hit once refetched: {x}");
    }
    misses
}

async fn metric(admin: SocketAddr, name: &str) -> f64 {
    metric_sample(&scrape_metrics(admin).await, name, &[])
}

/// Stops the edge with SIGTERM (a clean close of the cache) and waits for it.
fn stop(mut edge: Edge) {
    edge.signal(libc::SIGTERM);
    assert_eq!(edge.wait_exit(WAIT), Some(0), "{}", edge.stderr());
}

fn segment_files(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// The segment file and offset where `needle` (random bytes, so unique) is stored.
fn find_in_segments(cache: &Path, needle: &[u8]) -> Option<(PathBuf, u64)> {
    segment_files(cache).into_iter().find_map(|p| {
        let bytes = std::fs::read(&p).ok()?;
        let at = bytes.windows(needle.len()).position(|w| w == needle)?;
        Some((p, at as u64))
    })
}

fn lines_with(log: &str, all: &[&str]) -> usize {
    log.lines()
        .filter(|l| all.iter().all(|s| l.contains(s)))
        .count()
}

/// A GET on a raw connection that keeps whatever body bytes arrive before the edge ends
/// the connection: (status line and headers, body bytes).
async fn raw_get(addr: SocketAddr, target: &str) -> (String, Vec<u8>) {
    tokio::time::timeout(WAIT, async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {target} HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut all = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        let end = all
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&all[..end]).to_string();
        (head, all[end + 4..].to_vec())
    })
    .await
    .expect("the edge ended the response within the test's time limit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_deleted_while_running_is_detected_and_its_objects_refetched() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let origin = content_origin().await;
    let edge = start_edge(
        dir.path(),
        &cache,
        &origin,
        "capacity = \"64MiB\"\nsegment_size = \"4MiB\"",
    );
    let targets: Vec<String> = (1..=6)
        .map(|i| target(i, 20_000 * i as usize))
        .chain([target(99, 700_000)])
        .collect();
    assert_eq!(refetched_then_hits(&edge, &targets).await, targets.len());
    let files = segment_files(&cache);
    assert!(!files.is_empty());
    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    let lost = files.len() as f64;
    let admin = edge.admin;
    let start = Instant::now();
    while metric(admin, "cairn_store_lost_segments_total").await < lost {
        assert!(start.elapsed() < WAIT, "lost segments not detected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every object was in a deleted file: fetched again, with the right bytes, then Hits
    // again (written into a new segment file, not into the unlinked one).
    assert_eq!(refetched_then_hits(&edge, &targets).await, targets.len());
    for t in &targets {
        assert_eq!(origin.count(t), 2, "{t}");
    }
    let now = segment_files(&cache);
    assert!(
        !now.is_empty() && now.iter().all(|f| !files.contains(f)),
        "{now:?}"
    );
    // Counted and logged once per segment, naming its file.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(metric(admin, "cairn_store_lost_segments_total").await, lost);
    let log = edge.stderr();
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            lines_with(
                &log,
                &["segment file lost while the cache was running", name]
            ),
            1,
            "{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_flipped_in_a_large_object_cut_the_response_and_it_is_refetched() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let origin = content_origin().await;
    let edge = start_edge(dir.path(), &cache, &origin, "capacity = \"64MiB\"");
    let big = target(7, 1_000_000);
    let want = body_for(&big);
    assert_eq!(
        refetched_then_hits(&edge, std::slice::from_ref(&big)).await,
        1
    );
    // Flip one byte well inside the body (its 11th chunk): the head and the first chunks
    // are sent before the damaged one is reached.
    let at = 700_000;
    let (file, off) = find_in_segments(&cache, &want[at..at + 64]).expect("body on disk");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], off).unwrap();
    drop(f);

    let (head, got) = raw_get(edge.addr, &big).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("x-cache: hit"), "{head}");
    assert!(
        got.len() < want.len(),
        "the damaged body was sent whole ({} bytes)",
        got.len()
    );
    assert!(got.len() <= at, "bytes past the damaged chunk were sent");
    assert!(
        got[..] == want[..got.len()],
        "a wrong byte reached the viewer"
    );

    // Next: a miss fetched from the origin, then a Hit again, right bytes each time.
    assert_eq!(
        refetched_then_hits(&edge, std::slice::from_ref(&big)).await,
        1
    );
    assert_eq!(origin.count(&big), 2);
    assert_eq!(
        metric(edge.admin, "cairn_store_checksum_failures_total").await,
        1.0
    );
    let log = edge.stderr();
    assert_eq!(lines_with(&log, &["failed its checksum"]), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_truncated_between_runs_loses_only_the_objects_cut_away() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let origin = content_origin().await;
    let settings = "capacity = \"64MiB\"\nsegment_size = \"2MiB\"";
    let edge = start_edge(dir.path(), &cache, &origin, settings);
    let targets: Vec<String> = (1..=12).map(|i| target(i, 300_000)).collect();
    refetched_then_hits(&edge, &targets).await;
    stop(edge);
    let files = segment_files(&cache);
    assert!(files.len() >= 2, "{files:?}");
    let f = OpenOptions::new().write(true).open(&files[0]).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len / 2).unwrap();
    drop(f);

    let edge = start_edge(dir.path(), &cache, &origin, settings);
    let misses = refetched_then_hits(&edge, &targets).await;
    assert!(
        misses > 0 && misses < targets.len(),
        "{misses} of {} refetched",
        targets.len()
    );
    let refetched = targets.iter().filter(|t| origin.count(t) == 2).count();
    assert_eq!(refetched, misses);
    // Each damaged object is counted and logged once.
    assert_eq!(
        metric(edge.admin, "cairn_store_checksum_failures_total").await,
        misses as f64
    );
    let log = edge.stderr();
    assert_eq!(lines_with(&log, &["failed its checksum"]), misses, "{log}");
}

/// What is done to the index between runs.
#[derive(Debug, Clone, Copy)]
enum IndexDamage {
    Deleted,
    Garbage,
}

fn damage_index(index: &Path, how: IndexDamage) {
    match how {
        IndexDamage::Deleted => std::fs::remove_dir_all(index).unwrap(),
        IndexDamage::Garbage => {
            let mut seed = 0x5eed_u64;
            let mut stack = vec![index.to_path_buf()];
            let mut files = 0;
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                        continue;
                    }
                    let len = std::fs::metadata(&p).unwrap().len().max(64) as usize;
                    seed += 1;
                    std::fs::write(&p, body(seed, len)).unwrap();
                    files += 1;
                }
            }
            assert!(files > 0, "no index files to damage");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_deleted_index_is_rebuilt_and_serves_the_old_objects() {
    for how in [IndexDamage::Deleted, IndexDamage::Garbage] {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let origin = content_origin().await;
        let settings = "capacity = \"64MiB\"\nsegment_size = \"2MiB\"";
        let edge = start_edge(dir.path(), &cache, &origin, settings);
        let targets: Vec<String> = (1..=10).map(|i| target(i, 150_000 + i as usize)).collect();
        refetched_then_hits(&edge, &targets).await;
        stop(edge);
        damage_index(&cache.join("index"), how);

        let edge = start_edge(dir.path(), &cache, &origin, settings);
        // The rebuild found every object in the segments: all Hits, right bytes.
        assert_eq!(refetched_then_hits(&edge, &targets).await, 0, "{how:?}");
        assert!(targets.iter().all(|t| origin.count(t) == 1), "{how:?}");
        assert_eq!(
            metric(edge.admin, "cairn_store_index_rebuilds_total").await,
            1.0,
            "{how:?}"
        );
        let log = edge.stderr();
        assert_eq!(
            lines_with(&log, &["rebuilding the cache index from the segments"]),
            1,
            "{how:?}: {log}"
        );
        if let IndexDamage::Garbage = how {
            let aside = std::fs::read_dir(&cache)
                .unwrap()
                .filter(|e| {
                    let name = e.as_ref().unwrap().file_name();
                    name.to_string_lossy().starts_with("index.broken-")
                })
                .count();
            assert_eq!(aside, 1, "the damaged index is moved aside");
        }
        // And the rebuilt index is one the next run trusts.
        stop(edge);
        let edge = start_edge(dir.path(), &cache, &origin, settings);
        assert_eq!(refetched_then_hits(&edge, &targets).await, 0, "{how:?}");
        assert_eq!(
            metric(edge.admin, "cairn_store_index_rebuilds_total").await,
            0.0
        );
    }
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct TmpfsMount(PathBuf);

impl TmpfsMount {
    /// Mounts a tmpfs of `size` (mount(8) syntax) at `at`. `None` with the reason printed
    /// if this machine does not allow it; under CI=true that is a failure.
    fn new(at: &Path, size: &str) -> Option<TmpfsMount> {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(TmpfsMount(at.to_path_buf())),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => format!("cannot run mount: {e}"),
        };
        let reason = format!(
            "fault_store: cannot mount a tmpfs at {}: {why}",
            at.display()
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason} (required when CI=true: run the tests as root)");
        }
        eprintln!("skipping the disk-full test: {reason}");
        None
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it open: detach it now, freed when released.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

fn free_bytes(path: &Path) -> u64 {
    // The same call the store's admission check makes (src/store/log.rs).
    let st = rustix::fs::statvfs(path).expect("statvfs");
    st.f_bavail * st.f_frsize
}

/// Writes a file of real (allocated) bytes until `path`'s filesystem has about `leave`
/// bytes free.
fn fill_until_free(file: &Path, leave: u64) {
    let mut f = std::fs::File::create(file).unwrap();
    let chunk = vec![0x5au8; 256 * 1024];
    use std::io::Write;
    let dir = file.parent().unwrap();
    for _ in 0..10_000 {
        let free = free_bytes(dir);
        if free <= leave {
            break;
        }
        let n = (free - leave).min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).unwrap();
        f.flush().unwrap();
    }
    f.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_passes_misses_through_logs_once_and_caching_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mount) = TmpfsMount::new(&dir.path().join("mnt"), "24m") else {
        return;
    };
    let cache = mount.0.join("cache");
    let origin = content_origin().await;
    let reserve = 8u64 << 20;
    let edge = start_edge(
        dir.path(),
        &cache,
        &origin,
        "capacity = \"64MiB\"\nsegment_size = \"1MiB\"\nmin_free_disk = \"8MiB\"",
    );
    let stored = target(1, 300_000);
    refetched_then_hits(&edge, std::slice::from_ref(&stored)).await;

    // Someone else fills the filesystem: below the reserve, with room left for the index.
    let filler = mount.0.join("filler");
    fill_until_free(&filler, reserve / 2);
    assert!(free_bytes(&mount.0) < reserve);
    let full_since = Instant::now();
    let big = target(2, 1_500_000);
    for round in 1..=3 {
        let x = fetch_right_bytes(&edge, &big).await;
        assert!(x.starts_with("Miss"), "round {round}: {x}");
        assert_eq!(origin.count(&big), round, "passed through, not stored");
    }
    assert!(fetch_right_bytes(&edge, &stored).await.starts_with("Hit"));
    let refusals = metric(edge.admin, "cairn_store_disk_full_refusals_total").await;
    assert!(refusals >= 3.0, "{refusals}");
    let log = edge.stderr();
    let lines = lines_with(&log, &["cannot store", "disk_full"]);
    let allowed = 1 + full_since.elapsed().as_secs() as usize / 10;
    assert!(
        (1..=allowed).contains(&lines),
        "{lines} warnings for {refusals} refusals: {log}"
    );

    // Space returns: caching resumes.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        refetched_then_hits(&edge, std::slice::from_ref(&big)).await,
        1
    );
    let fresh = target(3, 1_500_000);
    assert_eq!(
        refetched_then_hits(&edge, std::slice::from_ref(&fresh)).await,
        1
    );
    // The reserve kept the index (sled) from ever meeting ENOSPC.
    let admin = edge.admin;
    let log = edge.stderr();
    for bad in ["No space left", "os error 28", "cache maintenance failed"] {
        assert_eq!(lines_with(&log, &[bad]), 0, "{bad}: {log}");
    }
    assert!(scrape_metrics(admin).await.contains("cairn_store_objects"));
    drop(edge);
    drop(mount);
}

/// The object directory's tables are mapped files that grow by being rewritten into a
/// larger file. On a full disk that growth must fail as an error naming the table (a store
/// into an unallocated page of a shared mapping would be a SIGBUS that kills the process);
/// every object committed before stays exact, and writing resumes once space returns.
#[test]
fn a_full_disk_while_the_object_directory_grows_is_an_error_not_a_crash() {
    use crate::common::{read, spec_now, DAY};
    use cairn::store::{Store, StoreConfig, MIB};

    let dir = tempfile::tempdir().unwrap();
    let Some(mount) = TmpfsMount::new(&dir.path().join("mnt"), "16m") else {
        return;
    };
    let config = || {
        let mut cfg = StoreConfig::new(mount.0.join("cache"), 1024 * MIB);
        // One segment's first allocation (4 MiB) holds every record this test writes, so
        // the only space the store still asks for on the full disk is the directory's.
        cfg.segment_size = 64 * MIB;
        cfg.background_interval = None;
        cfg.min_free_disk = 0;
        cfg
    };
    let store = Store::open(config()).unwrap();
    let key = |i: u64| format!("/grow/{i}");
    let data = |i: u64| body(i, 8 + (i % 16) as usize);
    store.insert(spec_now(&key(0), DAY), &data(0)).unwrap();
    let filler = mount.0.join("filler");
    fill_until_free(&filler, 0);

    // Each of the 64 shards of each table grows at about 192 entries: bounded well past it.
    let mut committed = 1u64;
    let error = loop {
        assert!(committed < 15_000, "the directory never had to grow");
        match store.insert(spec_now(&key(committed), DAY), &data(committed)) {
            Ok(_) => committed += 1,
            Err(e) => break e.to_string(),
        }
    };
    assert!(error.contains(".tbl"), "the error names the table: {error}");
    for i in 0..committed {
        assert_eq!(read(&store, &key(i)), Some(data(i)), "{}", key(i));
    }

    // Space returns: the same insert succeeds, and everything survives a reopen.
    std::fs::remove_file(&filler).unwrap();
    let more = committed + 200;
    for i in committed..more {
        store.insert(spec_now(&key(i), DAY), &data(i)).unwrap();
    }
    store.close().unwrap();
    let store = Store::open(config()).unwrap();
    for i in 0..more {
        assert_eq!(
            read(&store, &key(i)),
            Some(data(i)),
            "{} after reopen",
            key(i)
        );
    }
}
