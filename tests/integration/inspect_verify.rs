//! `cairn cache-inspect verify`: a clean cache passes; a flipped byte in a body extent is
//! found and named; `--repair` removes what cannot be served (exit 1, so scripts notice),
//! after which verify passes and every other object still reads back byte-identical.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use cairn::store::record::{CHUNK_SIZE, RECORD_HEADER_LEN};
use cairn::store::{Store, MIB};

use crate::common::*;
use crate::edge_harness::run_cairn;

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join("segments").join(format!("{id:016x}.seg"))
}

fn xor_byte(path: &Path, offset: u64, mask: u8) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= mask;
    f.write_all_at(&b, offset).unwrap();
    f.sync_data().unwrap();
}

fn verify(dir: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut a = vec![
        "cache-inspect",
        "--cache-dir",
        dir.to_str().unwrap(),
        "verify",
    ];
    a.extend_from_slice(extra);
    run_cairn(&a)
}

fn verify_json(dir: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = verify(dir, &args);
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("verify --json printed no JSON ({e}): {out}\nstderr: {err}"));
    (code, v)
}

/// Objects of a few shapes: small, multi-chunk, a body shared by two keys, plus the dead
/// extents of an aborted fill. Returns (key, body) of every object and the cache dir.
fn build_cache(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let clock = manual_clock(START_MS);
    let store = Store::open(config(dir, 64 * MIB, &clock)).unwrap();
    let mut objs = Vec::new();
    for i in 0..4u64 {
        let key = format!("small/{i}");
        let data = body(10 + i, 5_000 + i as usize * 777);
        store.insert(spec(&key, &*clock, DAY), &data).unwrap();
        objs.push((key, data));
    }
    let big = body(77, 3 * CHUNK_SIZE as usize + 1234);
    store
        .insert(spec("big/victim", &*clock, DAY), &big)
        .unwrap();
    objs.push(("big/victim".into(), big.clone()));
    // Same body under another key: one blob, two references.
    store.insert(spec("big/twin", &*clock, DAY), &big).unwrap();
    objs.push(("big/twin".into(), big));
    let other = body(88, 2 * CHUNK_SIZE as usize + 5);
    store
        .insert(spec("big/other", &*clock, DAY), &other)
        .unwrap();
    objs.push(("big/other".into(), other));
    // An aborted fill leaves unreferenced extents: orphans, not damage.
    let mut w = store.begin(spec("aborted", &*clock, DAY)).unwrap();
    // (Staged bytes reach the segment once about 1 MiB is buffered.)
    w.write(&body(99, 17 * CHUNK_SIZE as usize)).unwrap();
    w.abort();
    store.close().unwrap();
    objs
}

fn open(dir: &Path) -> Store {
    Store::open(config(dir, 64 * MIB, &manual_clock(START_MS))).unwrap()
}

#[test]
fn inspect_verify_a_clean_cache_passes() {
    let dir = tempfile::tempdir().unwrap();
    let objs = build_cache(dir.path());

    let (code, out, err) = verify(dir.path(), &[]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("cache is sound"), "{out}");
    assert!(out.contains("records checked"), "{out}");
    // Not a terminal: plain progress lines.
    assert!(err.contains("verify: checking segments"), "{err}");

    let (code, v) = verify_json(dir.path(), &[]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["clean"], true);
    assert_eq!(v["corrupt_records"].as_array().unwrap().len(), 0);
    assert_eq!(v["dangling"].as_array().unwrap().len(), 0);
    assert_eq!(v["ref_mismatches"].as_array().unwrap().len(), 0);
    assert_eq!(v["objects_checked"], objs.len() as u64);
    // big/victim and big/twin share one blob.
    assert_eq!(v["blobs_checked"], objs.len() as u64 - 1);
    assert!(v["records_checked"].as_u64().unwrap() > objs.len() as u64);
    assert!(
        v["orphans"]["extent_records"].as_u64().unwrap() >= 1,
        "{v:#}"
    );
    assert!(v["orphans"]["extent_bytes"].as_u64().unwrap() >= 16 * CHUNK_SIZE as u64);
}

#[test]
fn inspect_verify_finds_repairs_and_then_passes() {
    let dir = tempfile::tempdir().unwrap();
    let objs = build_cache(dir.path());
    // The second extent of the shared body.
    let (seg, off) = {
        let store = open(dir.path());
        let info = store.info(b"big/victim").unwrap().unwrap();
        let b = store.blob_info(&info.blob).unwrap().unwrap();
        let ext: Vec<(u64, u64)> = b
            .runs
            .iter()
            .flat_map(|r| r.extents(CHUNK_SIZE).map(move |(o, _)| (r.segment, o)))
            .collect();
        assert!(ext.len() >= 2);
        store.close().unwrap();
        ext[1]
    };
    xor_byte(
        &segment_path(dir.path(), seg),
        off + RECORD_HEADER_LEN as u64 + 4321,
        0x10,
    );
    let seg_hex = format!("{seg:016x}");

    // Found and named.
    let (code, out, err) = verify(dir.path(), &[]);
    assert_eq!(code, Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("big/victim"), "{out}");
    assert!(out.contains("big/twin"), "{out}");
    assert!(out.contains(&seg_hex), "{out}");
    assert!(out.contains("--repair"), "{out}");

    let (code, v) = verify_json(dir.path(), &[]);
    assert_eq!(code, Some(1));
    assert_eq!(v["clean"], false);
    let corrupt = v["corrupt_records"].as_array().unwrap();
    assert!(
        corrupt.iter().any(|c| c["segment"] == seg
            && c["offset"] == off
            && c["kind"] == "extent"
            && c["live"] == true),
        "{v:#}"
    );
    let dangling = v["dangling"].as_array().unwrap();
    let objects: Vec<&str> = dangling
        .iter()
        .filter(|d| d["kind"] == "object")
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert_eq!(objects.len(), 2, "{v:#}");
    assert!(objects.contains(&"big/victim") && objects.contains(&"big/twin"));
    for d in dangling {
        assert_eq!(d["segment"], seg, "{d:#}");
        assert_eq!(d["offset"], off, "{d:#}");
        assert_eq!(d["repaired"], false);
    }
    assert_eq!(
        dangling.iter().filter(|d| d["kind"] == "blob").count(),
        1,
        "{v:#}"
    );

    // Repair: still exit 1 (it found damage), and says what it removed.
    let (code, v) = verify_json(dir.path(), &["--repair"]);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(v["repair"], true);
    assert_eq!(v["removed_objects"], 2, "{v:#}");
    assert_eq!(v["dropped_blobs"], 1, "{v:#}");
    assert!(v["dangling"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["repaired"] == true));

    // Now sound: the damaged record is dead space, reported but not counted.
    let (code, out, err) = verify(dir.path(), &[]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let (code, v) = verify_json(dir.path(), &[]);
    assert_eq!(code, Some(0), "{v:#}");
    assert!(v["corrupt_records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["segment"] == seg && c["offset"] == off && c["live"] == false));
    assert_eq!(v["objects_checked"], objs.len() as u64 - 2);

    // The damaged objects are gone (also after a rebuild: tombstones), the others intact.
    for rebuild in [false, true] {
        let cfg = config(dir.path(), 64 * MIB, &manual_clock(START_MS));
        let store = if rebuild {
            Store::open_rebuilding(cfg).unwrap()
        } else {
            Store::open(cfg).unwrap()
        };
        for (k, data) in &objs {
            let got = read(&store, k);
            if k.starts_with("big/victim") || k.starts_with("big/twin") {
                assert!(got.is_none(), "{k} is still served (rebuild {rebuild})");
            } else {
                assert_eq!(got.as_deref(), Some(&data[..]), "{k} (rebuild {rebuild})");
            }
        }
        store.close().unwrap();
    }
    let (code, _, err) = verify(dir.path(), &[]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn inspect_verify_exits_2_when_the_cache_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let (code, _, err) = verify(&missing, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a cairn cache"), "{err}");
}
