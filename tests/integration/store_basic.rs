//! The store's basic contract: insert, lookup, metadata, updates, removal, reopen.

use std::time::Duration;

use cairn::store::{Store, StoreError};

use crate::common::*;

const DAY: Duration = Duration::from_secs(86400);

#[test]
fn insert_lookup_reopen_small_and_large_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock(1_700_000_000_000);
    let mut cfg = test_config(dir.path(), 64 * 1024 * 1024);
    cfg.clock = clock.clone();
    let sizes = [0usize, 1, 1000, 65536, 65537, 300_000, 2_500_000];
    {
        let store = Store::open(cfg.clone()).unwrap();
        for (i, &n) in sizes.iter().enumerate() {
            let info = store
                .insert(spec(&format!("k{i}"), &*clock, DAY), &body(i as u64, n))
                .unwrap();
            assert_eq!(info.body_len, n as u64);
        }
        for (i, &n) in sizes.iter().enumerate() {
            let hit = store.lookup(format!("k{i}").as_bytes()).unwrap().unwrap();
            assert_eq!(hit.info.meta, format!("meta-of-k{i}").into_bytes());
            assert_eq!(hit.info.tags, vec!["t1".to_string()]);
            assert_eq!(hit.body.len(), n as u64);
            assert_eq!(hit.body.read_all().unwrap(), body(i as u64, n));
        }
        assert_eq!(store.stats().objects, sizes.len() as u64);
        store.close().unwrap();
    }
    let store = Store::open(cfg).unwrap();
    assert!(store.open_report().clean_shutdown);
    assert_eq!(store.open_report().replayed_records, 0);
    for (i, &n) in sizes.iter().enumerate() {
        assert_eq!(read(&store, &format!("k{i}")), Some(body(i as u64, n)));
    }
    assert_eq!(store.stats().objects, sizes.len() as u64);
    assert!(store.lookup(b"absent").unwrap().is_none());
}

#[test]
fn streaming_fill_in_odd_pieces_matches_whole_body() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(test_config(dir.path(), 64 << 20)).unwrap();
    let data = body(7, 3_000_001);
    let mut w = store.begin(spec_now("stream", DAY)).unwrap();
    let mut rest = &data[..];
    let mut step = 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        w.write(&rest[..n]).unwrap();
        rest = &rest[n..];
        step = step * 3 + 7;
    }
    // Not visible before commit.
    assert!(store.lookup(b"stream").unwrap().is_none());
    w.commit().unwrap();
    assert_eq!(read(&store, "stream"), Some(data));
}

#[test]
fn aborted_and_dropped_fills_leave_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path(), 64 << 20);
    {
        let store = Store::open(cfg.clone()).unwrap();
        let mut w = store.begin(spec_now("aborted", DAY)).unwrap();
        w.write(&body(1, 2_000_000)).unwrap();
        w.abort();
        let mut w = store.begin(spec_now("dropped", DAY)).unwrap();
        w.write(&body(2, 100)).unwrap();
        drop(w);
        assert!(store.lookup(b"aborted").unwrap().is_none());
        assert!(store.lookup(b"dropped").unwrap().is_none());
        assert_eq!(store.stats().objects, 0);
    }
    // Nor after a rebuild from the segments.
    let store = Store::open_rebuilding(cfg).unwrap();
    assert!(store.lookup(b"aborted").unwrap().is_none());
    assert_eq!(store.stats().objects, 0);
}

#[test]
fn identical_bodies_are_stored_once_and_shared() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(test_config(dir.path(), 64 << 20)).unwrap();
    let data = body(3, 200_000);
    let a = store.insert(spec_now("a", DAY), &data).unwrap();
    let before = store.stats();
    let b = store.insert(spec_now("b", DAY), &data).unwrap();
    let after = store.stats();
    assert_eq!(a.blob, b.blob);
    assert_eq!(after.blobs, 1);
    assert_eq!(after.objects, 2);
    assert_eq!(after.dedup_saved_bytes - before.dedup_saved_bytes, 200_000);
    assert_eq!(store.blob_info(&a.blob).unwrap().unwrap().references, 2);
    assert!(store.remove(b"a").unwrap());
    assert_eq!(read(&store, "b"), Some(data));
    assert!(store.remove(b"b").unwrap());
    assert!(store.blob_info(&a.blob).unwrap().is_none());
    assert_eq!(store.stats().blobs, 0);
}

#[test]
fn metadata_update_keeps_the_body_and_survives_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock(1_700_000_000_000);
    let mut cfg = test_config(dir.path(), 64 << 20);
    cfg.clock = clock.clone();
    let data = body(4, 100_000);
    {
        let store = Store::open(cfg.clone()).unwrap();
        let first = store.insert(spec("k", &*clock, DAY), &data).unwrap();
        let disk_before = store.stats().live_bytes;
        let exp = first.expires_at + DAY;
        assert!(store
            .update_meta(b"k", b"new-meta".to_vec(), first.stored_at, exp)
            .unwrap());
        assert!(!store
            .update_meta(b"nope", vec![], first.stored_at, exp)
            .unwrap());
        let hit = store.lookup(b"k").unwrap().unwrap();
        assert_eq!(hit.info.meta, b"new-meta");
        assert_eq!(hit.info.expires_at, exp);
        assert_eq!(hit.info.blob, first.blob);
        // Only a small record was added, not a body copy.
        assert!(store.stats().live_bytes < disk_before + 1000);
        store.close().unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let store = Store::open(cfg).unwrap();
    assert!(store.open_report().rebuilt);
    let hit = store.lookup(b"k").unwrap().unwrap();
    assert_eq!(hit.info.meta, b"new-meta");
    assert_eq!(hit.body.read_all().unwrap(), data);
}

#[test]
fn removals_and_prefix_invalidations_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path(), 64 << 20);
    {
        let store = Store::open(cfg.clone()).unwrap();
        for i in 0..50 {
            store
                .insert(spec_now(&format!("d1/img/{i}"), DAY), &body(i, 500))
                .unwrap();
            store
                .insert(spec_now(&format!("d1/css/{i}"), DAY), &body(100 + i, 500))
                .unwrap();
        }
        assert_eq!(store.remove_prefix(b"d1/img/").unwrap(), 50);
        assert!(store.remove(b"d1/css/7").unwrap());
        assert!(!store.remove(b"d1/css/7").unwrap());
        // Re-inserted after the invalidation: must stay.
        store
            .insert(spec_now("d1/img/3", DAY), &body(999, 10))
            .unwrap();
        store.close().unwrap();
    }
    for rebuild in [false, true] {
        let store = if rebuild {
            Store::open_rebuilding(cfg.clone()).unwrap()
        } else {
            Store::open(cfg.clone()).unwrap()
        };
        assert_eq!(
            store.open_report().rebuilt,
            rebuild,
            "{:?}",
            store.open_report()
        );
        assert_eq!(read(&store, "d1/img/3"), Some(body(999, 10)));
        assert!(read(&store, "d1/img/4").is_none());
        assert!(read(&store, "d1/css/7").is_none());
        assert_eq!(read(&store, "d1/css/8"), Some(body(108, 500)));
        assert_eq!(store.stats().objects, 50);
        let listed: Vec<_> = store.list(b"d1/img/", 100).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(store.iter().count(), 50);
    }
}

#[test]
fn expired_objects_live_through_grace_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock(1_700_000_000_000);
    let mut cfg = test_config(dir.path(), 64 << 20);
    cfg.clock = clock.clone();
    cfg.stale_grace = Duration::from_secs(60);
    let store = Store::open(cfg).unwrap();
    store
        .insert(spec("short", &*clock, Duration::from_secs(10)), b"x")
        .unwrap();
    store.insert(spec("long", &*clock, DAY), b"y").unwrap();
    clock.advance(Duration::from_secs(30));
    // Expired but within grace: still returned (for revalidation / stale-if-error).
    assert!(store.lookup(b"short").unwrap().is_some());
    assert_eq!(store.sweep().unwrap().expired, 0);
    clock.advance(Duration::from_secs(60));
    assert!(store.lookup(b"short").unwrap().is_none());
    assert_eq!(store.sweep().unwrap().expired, 1);
    assert_eq!(store.stats().objects, 1);
    assert!(store.lookup(b"long").unwrap().is_some());
}

#[test]
fn oversized_keys_metadata_and_bodies_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path(), 8 << 20);
    cfg.max_object_size = Some(1000);
    let store = Store::open(cfg).unwrap();
    let long_key = "k".repeat(10_000);
    let err = store.begin(spec_now(&long_key, DAY)).unwrap_err();
    assert!(matches!(err, StoreError::KeyTooLarge { .. }), "{err}");
    let mut s = spec_now("big-meta", DAY);
    s.meta = vec![0; 2 << 20];
    let err = store.insert(s, b"x").unwrap_err();
    assert!(matches!(err, StoreError::RecordTooLarge { .. }), "{err}");
    let err = store.insert(spec_now("big", DAY), &[0; 1001]).unwrap_err();
    assert!(err.to_string().contains("maximum object size"), "{err}");
    assert_eq!(store.stats().objects, 0);
}

#[test]
fn a_slow_fill_does_not_stall_other_fills() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(test_config(dir.path(), 64 << 20)).unwrap();
    let mut slow = store.begin(spec_now("slow", DAY)).unwrap();
    slow.write(&body(1, 1_500_000)).unwrap();
    // While the slow fill is open (and has appended extents), other fills commit from
    // other threads.
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let key = format!("fast/{t}/{i}");
                    store
                        .insert(spec_now(&key, DAY), &body(t * 100 + i, 3000))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.stats().objects, 100);
    assert!(store.lookup(b"slow").unwrap().is_none());
    slow.write(&body(2, 10)).unwrap();
    slow.commit().unwrap();
    let mut expect = body(1, 1_500_000);
    expect.extend_from_slice(&body(2, 10));
    assert_eq!(read(&store, "slow"), Some(expect));
    assert_eq!(read(&store, "fast/3/24"), Some(body(324, 3000)));
}

// Regression: `stats` took the segments lock and then the log lock, while a rotation
// holds the log and then takes the segments lock: a metrics scrape during a segment
// rotation deadlocked both (and with them every later writer and the sweeper).
#[test]
fn stats_during_segment_rotations_never_deadlock() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    // 1 MiB segments and 300 KB bodies: a rotation every few inserts.
    let store = Arc::new(Store::open(test_config(dir.path(), 256 * 1024 * 1024)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) && n < 10_000_000 {
                    std::hint::black_box(store.stats());
                    n += 1;
                }
            })
        })
        .collect();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..150u64 {
                store
                    .insert(spec_now(&format!("k{i}"), DAY), &body(i, 300_000))
                    .unwrap();
            }
            let _ = done_tx.send(());
        })
    };
    let finished = done_rx.recv_timeout(Duration::from_secs(60));
    stop.store(true, Ordering::SeqCst);
    assert!(
        finished.is_ok(),
        "150 inserts did not finish within 60 s while stats ran: a lock-order deadlock"
    );
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert!(store.stats().segments >= 2);
}
