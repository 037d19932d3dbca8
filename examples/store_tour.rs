//! A tour of the persistent store: fill it, read it back, close it, reopen it, and show
//! what opening found. `cargo run --release --example store_tour [DIR]`
//! (DIR defaults to ./cairn-demo-cache; run it twice to see a warm reopen).

use std::time::{Duration, Instant, SystemTime};

use cairn::store::{ObjectSpec, Store, StoreConfig, MIB};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./cairn-demo-cache".into());
    let mut cfg = StoreConfig::new(&dir, 512 * MIB);
    cfg.segment_size = 64 * MIB;

    let t = Instant::now();
    let store = Store::open(cfg.clone())?;
    println!(
        "opened {dir} in {:?}: {:?}",
        t.elapsed(),
        store.open_report()
    );

    let n = 10_000u64;
    let t = Instant::now();
    for i in 0..n {
        // Every tenth object repeats a body, so deduplication shows in the stats.
        let seed = if i % 10 == 0 { 0 } else { i };
        let len = [300usize, 4096, 70_000][(i % 3) as usize];
        let now = SystemTime::now();
        store.insert(
            ObjectSpec {
                key: format!("demo/objects/{i}").into_bytes(),
                distribution: "EDEMO".into(),
                tags: vec![format!("group-{}", i % 7)],
                meta: format!("content-type: application/octet-stream; n={i}").into_bytes(),
                stored_at: now,
                expires_at: now + Duration::from_secs(86400),
            },
            &body(seed, len),
        )?;
    }
    println!("inserted {n} objects in {:?}", t.elapsed());

    let t = Instant::now();
    let mut bytes = 0u64;
    for i in 0..n {
        let hit = store
            .lookup(format!("demo/objects/{i}").as_bytes())?
            .expect("just inserted");
        let seed = if i % 10 == 0 { 0 } else { i };
        let got = hit.body.read_all()?;
        assert_eq!(got, body(seed, got.len()), "object {i} read back wrong");
        bytes += got.len() as u64;
    }
    println!(
        "read back and verified {n} objects ({bytes} bytes) in {:?}",
        t.elapsed()
    );

    let removed = store.remove_prefix(b"demo/objects/99")?;
    println!("invalidated prefix demo/objects/99: {removed} objects");
    println!("{:#?}", store.stats());
    store.close()?;

    let t = Instant::now();
    let store = Store::open(cfg)?;
    println!("reopened in {:?}: {:?}", t.elapsed(), store.open_report());
    assert!(store.lookup(b"demo/objects/99")?.is_none());
    assert!(store.lookup(b"demo/objects/1")?.is_some());
    store.close()?;
    Ok(())
}

fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
