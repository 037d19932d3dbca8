//! Capacity: bytes on disk stay within the configured capacity under sustained writes (with
//! manual sweeps and with the background thread), recently read objects get their second
//! chance when their segment is reclaimed, and shared (deduplicated) bodies behave under
//! eviction and removal.

use std::path::Path;
use std::time::{Duration, Instant};

use cairn::store::{Clock, Store, StoreError, MIB};

use crate::common::*;

/// Sum of the sizes of the segment files in the cache directory.
fn segment_file_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Whether `store` returns exactly `want` for `key` (without printing bodies on failure).
fn reads_as(store: &Store, key: &str, want: &[u8]) -> bool {
    read(store, key).as_deref() == Some(want)
}

/// Sizes of a mixed workload: mostly 1-4 KiB, every tenth object 100-300 KiB.
fn mixed_size(i: u64) -> usize {
    if i.is_multiple_of(10) {
        100_000 + (i.wrapping_mul(7919) % 200_000) as usize
    } else {
        1024 + (i.wrapping_mul(31) % 3072) as usize
    }
}

/// Inserts, answering an `OverCapacity` refusal with one sweep and one retry (which must
/// then succeed: a sweep brings bytes on disk down to capacity minus one segment).
fn insert_sweeping(store: &Store, key: &str, clock: &dyn Clock, data: &[u8]) {
    match store.insert(spec(key, clock, DAY), data) {
        Ok(_) => {}
        Err(StoreError::OverCapacity { .. }) => {
            store.sweep().unwrap();
            store
                .insert(spec(key, clock, DAY), data)
                .unwrap_or_else(|e| panic!("insert {key} after a sweep: {e}"));
        }
        Err(e) => panic!("insert {key}: {e}"),
    }
}

#[test]
fn three_times_the_capacity_with_manual_sweeps_stays_within_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock(START_MS);
    let capacity = 8 * MIB;
    let store = Store::open(config(dir.path(), capacity, &clock)).unwrap();
    let mut written = 0u64;
    let mut last = Vec::new();
    for i in 0..20_000u64 {
        if written >= 3 * capacity {
            break;
        }
        let key = format!("obj/{i}");
        let data = body(i, mixed_size(i));
        insert_sweeping(&store, &key, &*clock, &data);
        written += data.len() as u64;
        let s = store.stats();
        assert!(
            s.bytes_on_disk <= capacity + MIB,
            "after {written} bytes written: {} on disk",
            s.bytes_on_disk
        );
        if i.is_multiple_of(25) {
            store.sweep().unwrap();
            let s = store.stats();
            assert!(s.bytes_on_disk <= capacity - MIB, "after a sweep: {s:?}");
            assert_eq!(segment_file_bytes(dir.path()), s.bytes_on_disk);
        }
        last.push((key, i));
        if last.len() > 20 {
            last.remove(0);
        }
    }
    assert!(written >= 3 * capacity);
    store.sweep().unwrap();
    let s = store.stats();
    assert!(s.bytes_on_disk <= capacity - MIB, "{s:?}");
    assert_eq!(segment_file_bytes(dir.path()), s.bytes_on_disk);
    assert!(s.reclaimed_segments > 0 && s.evicted_objects > 0, "{s:?}");
    // The newest objects are all there.
    for (key, i) in &last {
        assert!(reads_as(&store, key, &body(*i, mixed_size(*i))), "{key}");
    }
    // The oldest are gone.
    assert!(read(&store, "obj/1").is_none());
    store.close().unwrap();
    // The directory agrees after a reopen too.
    let store = Store::open(config(dir.path(), capacity, &clock)).unwrap();
    assert_eq!(store.stats().bytes_on_disk, segment_file_bytes(dir.path()));
    assert!(store.stats().bytes_on_disk <= capacity);
}

#[test]
fn three_times_the_capacity_with_the_background_thread_stays_within_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock(START_MS);
    let capacity = 8 * MIB;
    let mut cfg = config(dir.path(), capacity, &clock);
    cfg.background_interval = Some(Duration::from_millis(50));
    let store = Store::open(cfg).unwrap();
    let mut written = 0u64;
    let mut refusals = 0u64;
    for i in 0..20_000u64 {
        if written >= 3 * capacity {
            break;
        }
        let key = format!("obj/{i}");
        let data = body(i, mixed_size(i));
        // Refused while the background sweeper catches up: retry, a bounded number of times.
        let mut stored = false;
        for _ in 0..500 {
            match store.insert(spec(&key, &*clock, DAY), &data) {
                Ok(_) => {
                    stored = true;
                    break;
                }
                Err(StoreError::OverCapacity { .. }) => {
                    refusals += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("insert {key}: {e}"),
            }
        }
        assert!(stored, "{key} refused for 5 s: the sweeper never made room");
        written += data.len() as u64;
        let s = store.stats();
        assert!(
            s.bytes_on_disk <= capacity + MIB,
            "after {written} bytes written: {} on disk",
            s.bytes_on_disk
        );
    }
    // The background thread brings the store under its target by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stats().bytes_on_disk > capacity - MIB && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = store.stats();
    eprintln!("background: {refusals} refusals; {s:?}");
    assert!(s.bytes_on_disk <= capacity - MIB, "{s:?}");
    assert!(s.reclaimed_segments > 0, "{s:?}");
    assert!(s.over_capacity_refusals >= refusals, "{s:?}");
    let last = written;
    store.close().unwrap();
    assert!(last >= 3 * capacity);
    // With the store closed, the files are what it counted.
    let on_files = segment_file_bytes(dir.path());
    let store = Store::open(config(dir.path(), capacity, &clock)).unwrap();
    assert_eq!(store.stats().bytes_on_disk, on_files);
    assert!(on_files <= capacity);
    // The newest object survived.
    let i = (0..20_000u64)
        .rev()
        .find(|i| store.info(format!("obj/{i}").as_bytes()).unwrap().is_some())
        .unwrap();
    assert!(reads_as(
        &store,
        &format!("obj/{i}"),
        &body(i, mixed_size(i))
    ));
}

#[test]
fn objects_read_regularly_survive_while_unread_early_filler_is_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock(START_MS);
    let capacity = 8 * MIB;
    let store = Store::open(config(dir.path(), capacity, &clock)).unwrap();
    let popular: Vec<(String, Vec<u8>)> = (0..20u64)
        .map(|i| (format!("popular/{i}"), body(500 + i, 6 * 1024)))
        .collect();
    for (k, b) in &popular {
        store.insert(spec(k, &*clock, DAY), b).unwrap();
    }
    let mut filler = 0u64;
    let mut written = 0u64;
    for _batch in 0..200 {
        if written >= 3 * capacity {
            break;
        }
        // Half a segment of filler, never read.
        for _ in 0..16 {
            let data = body(10_000 + filler, 32 * 1024);
            insert_sweeping(&store, &format!("filler/{filler}"), &*clock, &data);
            written += data.len() as u64;
            filler += 1;
        }
        // The popular (old) objects are read between batches.
        for (k, b) in &popular {
            assert!(
                reads_as(&store, k, b),
                "{k} lost after {written} bytes of filler"
            );
        }
        store.sweep().unwrap();
    }
    let s = store.stats();
    assert!(s.reclaimed_segments >= 10, "{s:?}");
    for (k, b) in &popular {
        assert!(reads_as(&store, k, b), "{k}");
    }
    assert!(s.copied_forward_objects > 0, "{s:?}");
    assert!(s.copied_forward_bytes > 0, "{s:?}");
    // Most of the early filler (the first third) is gone.
    let early = filler / 3;
    let kept = (0..early)
        .filter(|i| read(&store, &format!("filler/{i}")).is_some())
        .count() as u64;
    assert!(
        kept * 10 < early,
        "{kept} of {early} early filler objects are still there"
    );
}

/// Writes unique filler objects (never read) and sweeps until segment `id` is reclaimed;
/// `check` runs after every sweep.
fn fill_until_reclaimed(
    store: &Store,
    clock: &dyn Clock,
    id: u64,
    serial: &mut u64,
    mut between: impl FnMut(&Store),
) {
    for _ in 0..1000 {
        if !store.segments().iter().any(|s| s.id == id) {
            return;
        }
        for _ in 0..4 {
            *serial += 1;
            let data = body(1_000_000 + *serial, 64 * 1024);
            insert_sweeping(store, &format!("filler/{serial}"), clock, &data);
        }
        between(store);
        store.sweep().unwrap();
        between(store);
    }
    panic!("segment {id} was never reclaimed");
}

#[test]
fn shared_bodies_under_removal_and_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock(START_MS);
    let store = Store::open(config(dir.path(), 8 * MIB, &clock)).unwrap();

    // Removal: sharers of body `a`; removing some keeps it readable for the others.
    let a = body(76, 150_000);
    let a_keys: Vec<String> = (0..5).map(|i| format!("a/{i}")).collect();
    let mut a_hash = None;
    for k in &a_keys {
        let info = store.insert(spec(k, &*clock, DAY), &a).unwrap();
        assert_eq!(*a_hash.get_or_insert(info.blob), info.blob);
    }
    let a_hash = a_hash.unwrap();
    let s = store.stats();
    assert_eq!((s.blobs, s.objects), (1, 5));
    assert_eq!(store.blob_info(&a_hash).unwrap().unwrap().references, 5);
    assert!(store.remove(a_keys[0].as_bytes()).unwrap());
    assert!(store.remove(a_keys[1].as_bytes()).unwrap());
    assert_eq!(store.blob_info(&a_hash).unwrap().unwrap().references, 3);
    for k in &a_keys[2..] {
        assert!(reads_as(&store, k, &a), "{k}");
    }
    assert!(read(&store, &a_keys[0]).is_none());
    for k in &a_keys[2..] {
        assert!(store.remove(k.as_bytes()).unwrap());
    }
    assert!(store.blob_info(&a_hash).unwrap().is_none());
    assert_eq!(store.stats().blobs, 0);

    // Eviction: sharers of body `b`, never read (a lookup would make them hot; `info` does
    // not). Reclaiming the blob's segment drops them all together.
    let b = body(77, 150_000);
    let b_keys: Vec<String> = (0..4).map(|i| format!("b/{i}")).collect();
    let mut b_hash = [0; 32];
    for k in &b_keys {
        b_hash = store.insert(spec(k, &*clock, DAY), &b).unwrap().blob;
    }
    let seg = store.blob_info(&b_hash).unwrap().unwrap().runs[0].segment;
    let mut serial = 0;
    fill_until_reclaimed(&store, &*clock, seg, &mut serial, |store| {
        let found: Vec<bool> = b_keys
            .iter()
            .map(|k| {
                let info = store.info(k.as_bytes()).unwrap();
                if let Some(i) = &info {
                    assert_eq!(i.blob, b_hash, "{k}");
                }
                info.is_some()
            })
            .collect();
        assert!(
            found.iter().all(|f| *f) || found.iter().all(|f| !*f),
            "sharers of one blob were not evicted together: {found:?}"
        );
        assert_eq!(store.blob_info(&b_hash).unwrap().is_some(), found[0]);
    });
    for k in &b_keys {
        assert!(read(&store, k).is_none(), "{k}");
    }
    assert!(store.blob_info(&b_hash).unwrap().is_none());
    // A body stored again later is a new, correct blob.
    store.insert(spec("again", &*clock, DAY), &b).unwrap();
    assert!(reads_as(&store, "again", &b));
}

#[test]
fn a_hot_sharer_keeps_the_shared_body_alive() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock(START_MS);
    let store = Store::open(config(dir.path(), 8 * MIB, &clock)).unwrap();
    let shared = body(78, 120_000);
    let keys: Vec<String> = (0..4).map(|i| format!("t/{i}")).collect();
    let mut hash = [0; 32];
    for k in &keys {
        hash = store.insert(spec(k, &*clock, DAY), &shared).unwrap().blob;
    }
    let seg = store.blob_info(&hash).unwrap().unwrap().runs[0].segment;
    // t/0 is read all along; the other sharers never are.
    let mut serial = 0;
    fill_until_reclaimed(&store, &*clock, seg, &mut serial, |store| {
        assert!(
            reads_as(store, "t/0", &shared),
            "the hot sharer t/0 was lost"
        );
    });
    assert!(reads_as(&store, "t/0", &shared));
    // The blob was copied out of the reclaimed segment.
    let b = store.blob_info(&hash).unwrap().unwrap();
    assert!(b.runs.iter().all(|r| r.segment > seg), "{b:?}");
    // Sharers that still exist read back right (unread ones may have been evicted).
    for k in &keys[1..] {
        if let Some(got) = read(&store, k) {
            assert!(got == shared, "{k} read back wrong bytes");
        }
    }
    assert!(store.stats().copied_forward_bytes >= shared.len() as u64);
    // Once every sharer is gone, so is the blob.
    for k in &keys {
        store.remove(k.as_bytes()).unwrap();
    }
    assert!(store.blob_info(&hash).unwrap().is_none());
    let s = store.stats();
    assert_eq!(
        s.blobs,
        store
            .iter()
            .map(|o| o.unwrap().blob)
            .collect::<std::collections::HashSet<_>>()
            .len() as u64
    );
}

#[test]
fn removing_every_sharer_frees_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock(START_MS);
    let store = Store::open(config(dir.path(), 8 * MIB, &clock)).unwrap();
    let shared = body(79, 70_000);
    let mut hash = [0; 32];
    for i in 0..3 {
        hash = store
            .insert(spec(&format!("s/{i}"), &*clock, DAY), &shared)
            .unwrap()
            .blob;
    }
    store.insert(spec("other", &*clock, DAY), b"x").unwrap();
    assert_eq!(store.stats().blobs, 2);
    assert!(store.remove(b"s/0").unwrap());
    assert_eq!(store.remove_prefix(b"s/").unwrap(), 2);
    assert!(store.blob_info(&hash).unwrap().is_none());
    assert_eq!(store.stats().blobs, 1);
    assert_eq!(read(&store, "other"), Some(b"x".to_vec()));
}

#[test]
fn a_duplicate_of_a_body_in_an_old_segment_is_stored_fresh_and_outlives_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock(START_MS);
    let store = Store::open(config(dir.path(), 8 * MIB, &clock)).unwrap();
    let popular = body(80, 100_000);
    let first = store.insert(spec("old", &*clock, DAY), &popular).unwrap();
    let old_seg = store.blob_info(&first.blob).unwrap().unwrap().runs[0].segment;
    // Enough filler that the first copy sits in the older half of the segments.
    let mut serial = 0;
    for _ in 0..200 {
        if store.stats().active_segment >= Some(old_seg + 4) {
            break;
        }
        serial += 1;
        let data = body(2_000_000 + serial, 64 * 1024);
        insert_sweeping(&store, &format!("filler/{serial}"), &*clock, &data);
    }
    let active = store.stats().active_segment.unwrap();
    assert!(active >= old_seg + 4);
    let second = store.insert(spec("new", &*clock, DAY), &popular).unwrap();
    assert_eq!(second.blob, first.blob);
    // The store kept the fresh copy: the blob now lives in the active segment.
    let b = store.blob_info(&first.blob).unwrap().unwrap();
    assert!(
        b.runs.iter().all(|r| r.segment >= active),
        "the duplicate was not stored fresh: {b:?} (active segment {active})"
    );
    assert_eq!(b.references, 2);
    assert!(reads_as(&store, "old", &popular));
    // Reclaiming the old segment (nobody reads anything) does not take the body with it.
    fill_until_reclaimed(&store, &*clock, old_seg, &mut serial, |_| {});
    assert!(
        reads_as(&store, "new", &popular),
        "the fresh copy died with the old segment"
    );
    // "old" itself had its record in the reclaimed segment: it may be gone, never wrong.
    if let Some(got) = read(&store, "old") {
        assert!(got == popular);
    }
}

/// The smallest case of the second chance: one object, read once after it was written,
/// whose segment (holding both its body and its record) is then reclaimed. Reclaim copies
/// the body forward and clears the object's recency bit, then looks at the object's record
/// in the same segment, finds the object no longer "hot" and evicts it: the copy is wasted
/// and the recently read object is lost.
#[test]
fn an_object_read_since_written_gets_a_second_chance() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock(START_MS);
    let store = Store::open(config(dir.path(), 8 * MIB, &clock)).unwrap();
    let data = body(81, 10_000);
    let info = store.insert(spec("hot", &*clock, DAY), &data).unwrap();
    let seg = store.blob_info(&info.blob).unwrap().unwrap().runs[0].segment;
    assert_eq!(info.record.segment, seg);
    assert!(reads_as(&store, "hot", &data));
    let mut serial = 0;
    fill_until_reclaimed(&store, &*clock, seg, &mut serial, |_| {});
    let s = store.stats();
    assert!(s.copied_forward_bytes >= data.len() as u64, "{s:?}");
    assert!(
        reads_as(&store, "hot", &data),
        "the object read since it was written was evicted ({} objects copied forward)",
        s.copied_forward_objects
    );
}
