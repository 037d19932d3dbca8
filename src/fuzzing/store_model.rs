//! Fuzz target `store_model`: a real [`Store`] (in a scratch directory, 1 MiB segments, a
//! manual clock, no background thread) driven by a sequence of operations decoded from the
//! input, and compared after every step with a plain map of the last committed version of
//! each key.
//!
//! What must hold, whatever the sequence:
//! - a lookup (and `info`, `iter`) never returns bytes or metadata other than the last
//!   committed ones for its key, nor anything past `expires_at + stale_grace`;
//! - a removed or prefix-removed key never comes back (across reopen and index rebuilds)
//!   until it is inserted again;
//! - an object vanishes only by expiry, or by eviction once a sweep reclaimed a segment
//!   (and may then come back after a rebuild, but only as its last committed version);
//!   with the roomy capacity nothing is ever reclaimed;
//! - an abandoned or refused fill changes nothing; bytes on disk never exceed capacity.
//!
//! Three reopen kinds damage the cache between runs first (a byte flipped in a segment
//! file, a segment file truncated, a segment file deleted), so that recovery scans and
//! lookups meet real damaged files. From then on the oracle is weaker, because damage may
//! legitimately lose the newest record of a key or a tombstone: whatever the store
//! returns must still be *some* version committed for that key (metadata and body
//! exactly as committed), never past its grace period, and no operation may fail or panic.
//!
//! Input layout (every read past the end yields zeroes, so any input is a valid run):
//! - `flags: u8`: bit 0 selects the roomy capacity (256 MiB, nothing evicted) instead of
//!   the tight one (4 MiB: sweeps reclaim segments and evict).
//! - then up to [`MAX_OPS`] operations until the input ends, each a `selector: u8`
//!   (modulo 16, see [`read_op`]) followed by its parameters. Reopens beyond
//!   [`MAX_REOPENS`] are skipped (opening sled is the slow part of a run).
//!
//! After the last operation every key is looked up, the store is swept, closed, its
//! index directory deleted, reopened (a rebuild from the segments alone), and every key is
//! checked again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::Reader;
use crate::scratch_dir::ScratchDir;
use crate::store::clock::{from_ms, to_ms};
use crate::store::{
    Clock, FsyncPolicy, ManualClock, ObjectInfo, ObjectSpec, ObjectWriter, Store, StoreConfig,
    StoreError, MIB,
};

/// Most operations one input runs.
pub const MAX_OPS: usize = 64;
/// Most reopens (and live rebuilds) one input runs, besides the final one.
pub const MAX_REOPENS: usize = 3;

/// The key space: small, so that keys are overwritten, with shared prefixes.
const KEYS: [&[u8]; 8] = [
    b"d/a/0", b"d/a/1", b"d/a/10", b"d/a/2", b"d/b/0", b"d/b/00", b"d/b/1", b"e/0",
];
/// Prefixes for `remove_prefix` (`d/a/1` matches `d/a/1` and `d/a/10`; `x/` matches none).
const PREFIXES: [&[u8]; 6] = [b"d/", b"d/a/", b"d/a/1", b"d/b/0", b"e/", b"x/"];
/// Body sizes, straddling the 64 KiB chunk, the 1 MiB writer flush and the 1 MiB segment
/// (those above it span segments). Few seeds, so identical bodies recur (dedup).
const SIZES: [usize; 12] = [
    0, 1, 700, 4096, 65_535, 65_536, 65_537, 131_072, 200_001, 700_000, 1_048_577, 1_200_000,
];
const SEEDS: u8 = 4;
const TTLS_MS: [u64; 4] = [0, 30_000, 3_600_000, 86_400_000];
const ADVANCES_MS: [u64; 4] = [1_000, 60_000, 900_000, 7_200_000];
const GRACE_MS: u64 = 600_000;
const START_MS: u64 = 1_700_000_000_000;
const TIGHT_CAPACITY: u64 = 4 * MIB;
const ROOMY_CAPACITY: u64 = 256 * MIB;
/// Largest body (above the default of a quarter of the tight capacity, so that bodies
/// span segments).
const MAX_OBJECT: u64 = 1_250_000;
const DISTRIBUTION: &str = "E1FUZZ";

/// How a store is reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reopen {
    /// `close()` then `open()`.
    Close,
    /// Drop the last handle (a clean close too) then `open()`.
    Drop,
    /// `close()` then `open_rebuilding()`.
    Rebuilding,
    /// `close()`, delete the index directory, then `open()` (which must rebuild).
    DeleteIndex,
    /// `rebuild()` on the open store.
    Live,
    /// `close()`, damage a segment file, then `open()`.
    Damaged(Damage),
}

/// Damage done to a segment file between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// XOR the byte at `offset` (modulo the file length) of the `segment`-th file (modulo
    /// their count, in id order) with `mask` (0 means 1).
    Flip { segment: u8, offset: u32, mask: u8 },
    /// Cut the `segment`-th file to `len` bytes (modulo its length + 1).
    Truncate { segment: u8, len: u32 },
    /// Delete the `segment`-th file.
    Delete { segment: u8 },
}

/// How a streamed fill ends without committing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandon {
    Abort,
    Drop,
    /// Writes past the largest object size: the write fails, and so must the commit.
    TooLarge,
}

/// A body: `SIZES`-sized (or arbitrary) pseudo-random bytes from one of a few seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodySpec {
    seed: u8,
    size: usize,
}

/// One decoded operation.
#[derive(Debug, Clone)]
pub enum Op {
    Insert {
        key: usize,
        body: BodySpec,
        ttl: usize,
        meta: Vec<u8>,
        /// Written in this many pieces (1 to 4).
        pieces: usize,
    },
    Abandoned {
        key: usize,
        body: BodySpec,
        how: Abandon,
    },
    /// Two fills open at once, written alternately, committed in the given order.
    Interleaved {
        keys: [usize; 2],
        bodies: [BodySpec; 2],
        second_first: bool,
    },
    Lookup(usize),
    LookupAll,
    UpdateMeta {
        key: usize,
        ttl: usize,
        meta: Vec<u8>,
    },
    Remove(usize),
    RemovePrefix(usize),
    Advance(usize),
    Sweep,
    Checkpoint,
    Reopen(Reopen),
}

/// What one run exercised (the corpus replay test checks that the corpus as a whole
/// reaches every path).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreModelStats {
    pub ops: u64,
    pub hits: u64,
    /// Hits on bodies of more than one chunk.
    pub large_hits: u64,
    pub dedup_saved_bytes: u64,
    pub reclaimed_segments: u64,
    /// Lookups that found nothing for a key the model still had (evicted).
    pub vanished: u64,
    pub expired: u64,
    pub removed: u64,
    pub abandoned: u64,
    pub over_capacity_refusals: u64,
    pub reopens: u64,
    pub rebuilds: u64,
    /// Segment files damaged between runs.
    pub damaged: u64,
    /// Lookups after damage that returned a version older than the last committed one.
    pub older_versions: u64,
}

/// Fuzz target `store_model` (see the module documentation).
pub fn store_model(data: &[u8]) {
    store_model_stats(data);
}

/// [`store_model`], returning what the run exercised.
pub fn store_model_stats(data: &[u8]) -> StoreModelStats {
    let (roomy, ops) = decode(data);
    let mut h = Harness::new(roomy).unwrap_or_else(|e| panic!("store_model setup: {e}"));
    for (i, op) in ops.iter().enumerate() {
        if let Err(e) = h.apply(op) {
            panic!("store_model (roomy: {roomy}) op #{i} {op:?}: {e}\nops: {ops:?}");
        }
    }
    if let Err(e) = h.finish() {
        panic!("store_model (roomy: {roomy}) after the last op: {e}\nops: {ops:?}");
    }
    h.stats
}

/// The capacity flag and the operations of an input.
pub fn decode(data: &[u8]) -> (bool, Vec<Op>) {
    let mut r = Reader::new(data);
    let roomy = r.u8() & 1 == 1;
    let mut ops = Vec::new();
    while !r.is_empty() && ops.len() < MAX_OPS {
        ops.push(read_op(&mut r));
    }
    (roomy, ops)
}

/// One operation: `selector: u8` modulo 16 (0-3 insert, 4 abandoned fill, 5 interleaved
/// fills, 6-7 lookup, 8 update_meta, 9 remove, 10 remove_prefix, 11 advance the clock,
/// 12 sweep, 13 checkpoint, 14 reopen, 15 look up every key and check the listing), then
/// its parameters (`u8` indices taken modulo their table; bodies as in [`read_body`];
/// metadata as a `u8` length then that many bytes; pieces and the interleaving order from
/// the top bits of a `u8`). A reopen is a `u8` kind modulo 8 (close, drop, rebuilding,
/// delete the index, live rebuild, flip, truncate, delete a segment); the damage kinds
/// are followed by a `u8` segment choice and, for a flip, a `u32` offset and a `u8` mask,
/// for a truncation a `u32` length.
fn read_op(r: &mut Reader) -> Op {
    match r.u8() % 16 {
        0..=3 => {
            let key = r.u8() as usize % KEYS.len();
            let body = read_body(r);
            let t = r.u8();
            Op::Insert {
                key,
                body,
                ttl: t as usize % TTLS_MS.len(),
                pieces: 1 + (t >> 6) as usize,
                meta: r.short_bytes(),
            }
        }
        4 => {
            let key = r.u8() as usize % KEYS.len();
            let body = read_body(r);
            let how = match r.u8() % 3 {
                0 => Abandon::Abort,
                1 => Abandon::Drop,
                _ => Abandon::TooLarge,
            };
            Op::Abandoned { key, body, how }
        }
        5 => {
            let k0 = r.u8() as usize % KEYS.len();
            let b0 = read_body(r);
            let k1 = r.u8() as usize % KEYS.len();
            let b1 = read_body(r);
            Op::Interleaved {
                keys: [k0, k1],
                bodies: [b0, b1],
                second_first: r.u8() & 1 == 1,
            }
        }
        6 | 7 => Op::Lookup(r.u8() as usize % KEYS.len()),
        8 => Op::UpdateMeta {
            key: r.u8() as usize % KEYS.len(),
            ttl: r.u8() as usize % TTLS_MS.len(),
            meta: r.short_bytes(),
        },
        9 => Op::Remove(r.u8() as usize % KEYS.len()),
        10 => Op::RemovePrefix(r.u8() as usize % PREFIXES.len()),
        11 => Op::Advance(r.u8() as usize % ADVANCES_MS.len()),
        12 => Op::Sweep,
        13 => Op::Checkpoint,
        14 => Op::Reopen(match r.u8() % 8 {
            0 => Reopen::Close,
            1 => Reopen::Drop,
            2 => Reopen::Rebuilding,
            3 => Reopen::DeleteIndex,
            4 => Reopen::Live,
            5 => Reopen::Damaged(Damage::Flip {
                segment: r.u8(),
                offset: r.u32(),
                mask: r.u8(),
            }),
            6 => Reopen::Damaged(Damage::Truncate {
                segment: r.u8(),
                len: r.u32(),
            }),
            _ => Reopen::Damaged(Damage::Delete { segment: r.u8() }),
        }),
        _ => Op::LookupAll,
    }
}

/// A body: `seed: u8` (modulo 4), then `size: u8`: below 240 a size from [`SIZES`],
/// otherwise a `u16` follows and the size is 5 times it (up to 327,675 bytes).
fn read_body(r: &mut Reader) -> BodySpec {
    let seed = r.u8() % SEEDS;
    let s = r.u8();
    let size = if s < 240 {
        SIZES[s as usize % SIZES.len()]
    } else {
        r.u16() as usize * 5
    };
    BodySpec { seed, size }
}

/// Deterministic pseudo-random bytes (xorshift), different per seed.
fn body_bytes(b: BodySpec) -> Vec<u8> {
    let mut x = (b.seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(b.size + 8);
    while out.len() < b.size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(b.size);
    out
}

/// The last committed version of a key.
#[derive(Debug, Clone)]
struct Version {
    body: BodySpec,
    hash: [u8; 32],
    meta: Vec<u8>,
    tags: Vec<String>,
    stored_at_ms: u64,
    expires_at_ms: u64,
    /// A sweep reclaimed segments since this version was committed: it may be gone (and,
    /// after an index rebuild, back again, but only as this version).
    may_vanish: bool,
}

impl Version {
    fn dead(&self, now_ms: u64) -> bool {
        self.expires_at_ms + GRACE_MS <= now_ms
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn key_str(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

struct Harness {
    // Declared before `dir` so that the store is closed before its directory is removed.
    store: Option<Store>,
    cfg: StoreConfig,
    clock: Arc<ManualClock>,
    roomy: bool,
    model: BTreeMap<&'static [u8], Version>,
    /// Every version ever committed per key (the oracle once the cache was damaged).
    history: BTreeMap<&'static [u8], Vec<Version>>,
    /// A segment file was damaged: the weaker oracle applies from now on.
    damaged: bool,
    reopens: usize,
    serial: u64,
    stats: StoreModelStats,
    dir: ScratchDir,
}

impl Harness {
    fn new(roomy: bool) -> Result<Self, String> {
        let dir = ScratchDir::new("store-model")?;
        let clock = Arc::new(ManualClock::new(START_MS));
        let capacity = if roomy {
            ROOMY_CAPACITY
        } else {
            TIGHT_CAPACITY
        };
        let mut cfg = StoreConfig::new(dir.path(), capacity);
        cfg.segment_size = MIB;
        cfg.background_interval = None;
        cfg.stale_grace = Duration::from_millis(GRACE_MS);
        // Durability against power loss is not what this checks; fsyncs only slow it down.
        cfg.fsync = FsyncPolicy::Never;
        cfg.index_cache_bytes = 2 * MIB;
        cfg.min_free_disk = 0;
        cfg.max_object_size = Some(MAX_OBJECT);
        cfg.recency_bits = 1 << 12;
        cfg.clock = clock.clone();
        let store = Store::open(cfg.clone()).map_err(err("open"))?;
        Ok(Self {
            store: Some(store),
            cfg,
            clock,
            roomy,
            model: BTreeMap::new(),
            history: BTreeMap::new(),
            damaged: false,
            reopens: 0,
            serial: 0,
            stats: StoreModelStats::default(),
            dir,
        })
    }

    fn store(&self) -> &Store {
        self.store
            .as_ref()
            .expect("the store is open between operations")
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        self.serial += 1;
        self.stats.ops += 1;
        match op {
            Op::Insert {
                key,
                body,
                ttl,
                meta,
                pieces,
            } => self.insert(KEYS[*key], *body, TTLS_MS[*ttl], meta, *pieces)?,
            Op::Abandoned { key, body, how } => self.abandoned(KEYS[*key], *body, *how)?,
            Op::Interleaved {
                keys,
                bodies,
                second_first,
            } => self.interleaved(*keys, *bodies, *second_first)?,
            Op::Lookup(k) => self.check_lookup(KEYS[*k])?,
            Op::LookupAll => {
                self.check_all()?;
                self.check_listing(false)?;
            }
            Op::UpdateMeta { key, ttl, meta } => {
                self.update_meta(KEYS[*key], TTLS_MS[*ttl], meta)?
            }
            Op::Remove(k) => self.remove(KEYS[*k])?,
            Op::RemovePrefix(p) => self.remove_prefix(PREFIXES[*p])?,
            Op::Advance(a) => {
                self.clock.advance(Duration::from_millis(ADVANCES_MS[*a]));
                // A version past its grace period is gone for good: lookups, update_meta
                // and remove ignore it, and a rebuild does not bring it back.
                let now = self.now();
                self.model.retain(|_, v| !v.dead(now));
            }
            Op::Sweep => self.sweep_and_check()?,
            Op::Checkpoint => self.store().checkpoint().map_err(err("checkpoint"))?,
            Op::Reopen(how) => {
                if self.reopens < MAX_REOPENS {
                    self.reopens += 1;
                    self.reopen(*how)?;
                }
            }
        }
        let s = self.store().stats();
        ensure!(
            s.bytes_on_disk <= s.capacity,
            "{} bytes on disk, over the capacity of {}",
            s.bytes_on_disk,
            s.capacity
        );
        Ok(())
    }

    /// Whether `e` is a refusal for lack of room, which the tight capacity allows.
    fn is_refusal(&self, e: &StoreError) -> bool {
        !self.roomy && matches!(e, StoreError::OverCapacity { .. } | StoreError::FillLost)
    }

    /// Runs a write; with the tight capacity a refusal for lack of room is answered by a
    /// sweep and one retry. `None`: refused both times (nothing changed).
    fn with_retry<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&Store) -> crate::store::Result<T>,
    ) -> Result<Option<T>, String> {
        for attempt in 0..2 {
            match f(self.store()) {
                Ok(v) => return Ok(Some(v)),
                Err(e) if self.is_refusal(&e) => {
                    self.stats.over_capacity_refusals += 1;
                    if attempt == 0 {
                        self.sweep_and_check()?;
                    }
                }
                Err(e) => return Err(format!("{what}: {e}")),
            }
        }
        Ok(None)
    }

    fn spec(&self, key: &[u8], body: BodySpec, ttl: u64, meta: &[u8]) -> ObjectSpec {
        let now = self.now();
        ObjectSpec {
            key: key.to_vec(),
            distribution: DISTRIBUTION.into(),
            tags: vec![format!("seed-{}", body.seed)],
            meta: meta.to_vec(),
            stored_at: from_ms(now),
            expires_at: from_ms(now + ttl),
        }
    }

    /// Records a committed version in the model after checking what `commit` returned.
    fn committed(
        &mut self,
        key: &'static [u8],
        body: BodySpec,
        spec: &ObjectSpec,
        info: &ObjectInfo,
    ) -> Result<(), String> {
        let hash = *blake3::hash(&body_bytes(body)).as_bytes();
        let k = key_str(key);
        ensure!(info.key == key, "commit of {k} names key {:?}", info.key);
        ensure!(
            info.blob == hash,
            "commit of {k}: blob is not blake3 of the body"
        );
        ensure!(info.body_len == body.size as u64, "commit of {k}: body_len");
        ensure!(info.meta == spec.meta, "commit of {k}: meta");
        let v = Version {
            body,
            hash,
            meta: spec.meta.clone(),
            tags: spec.tags.clone(),
            stored_at_ms: to_ms(spec.stored_at),
            expires_at_ms: to_ms(spec.expires_at),
            may_vanish: false,
        };
        self.history.entry(key).or_default().push(v.clone());
        self.model.insert(key, v);
        Ok(())
    }

    fn insert(
        &mut self,
        key: &'static [u8],
        body: BodySpec,
        ttl: u64,
        meta: &[u8],
        pieces: usize,
    ) -> Result<(), String> {
        let data = body_bytes(body);
        let spec = self.spec(key, body, ttl, meta);
        let saved_before = self.store().stats().dedup_saved_bytes;
        let Some(info) = self.with_retry("insert", |s| {
            let mut w = s.begin(spec.clone())?;
            for piece in data.chunks(data.len().div_ceil(pieces).max(1)) {
                w.write(piece)?;
            }
            w.commit()
        })?
        else {
            return Ok(());
        };
        let saved = self.store().stats().dedup_saved_bytes - saved_before;
        self.stats.dedup_saved_bytes += saved;
        self.committed(key, body, &spec, &info)
    }

    fn abandoned(
        &mut self,
        key: &'static [u8],
        body: BodySpec,
        how: Abandon,
    ) -> Result<(), String> {
        let data = body_bytes(body);
        let spec = self.spec(key, body, TTLS_MS[3], b"abandoned");
        let mut w = self.store().begin(spec).map_err(err("begin"))?;
        let mut refused = false;
        for piece in data.chunks(300_000) {
            if let Err(e) = w.write(piece) {
                ensure!(self.is_refusal(&e), "abandoned fill: write: {e}");
                refused = true;
                break;
            }
        }
        match how {
            Abandon::Abort => w.abort(),
            Abandon::Drop => drop(w),
            Abandon::TooLarge if refused => drop(w),
            Abandon::TooLarge => {
                let rest = (MAX_OBJECT + 1).saturating_sub(w.len()) as usize;
                match w.write(&vec![0x5a; rest]) {
                    Err(StoreError::ObjectTooLarge { .. }) => {}
                    other => return Err(format!("writing past the largest object: {other:?}")),
                }
                match w.commit() {
                    Err(StoreError::FillFailed(_)) => {}
                    other => return Err(format!("commit after ObjectTooLarge: {other:?}")),
                }
            }
        }
        self.stats.abandoned += 1;
        self.check_lookup(key)
    }

    fn interleaved(
        &mut self,
        keys: [usize; 2],
        bodies: [BodySpec; 2],
        second_first: bool,
    ) -> Result<(), String> {
        let keys = [KEYS[keys[0]], KEYS[keys[1]]];
        let data = [body_bytes(bodies[0]), body_bytes(bodies[1])];
        let specs = [
            self.spec(keys[0], bodies[0], TTLS_MS[3], b"interleaved-0"),
            self.spec(keys[1], bodies[1], TTLS_MS[3], b"interleaved-1"),
        ];
        let mut writers: [Option<ObjectWriter>; 2] = [None, None];
        for i in 0..2 {
            writers[i] = Some(self.store().begin(specs[i].clone()).map_err(err("begin"))?);
        }
        let (mut p0, mut p1) = (data[0].chunks(150_000), data[1].chunks(150_000));
        loop {
            let (a, b) = (p0.next(), p1.next());
            if a.is_none() && b.is_none() {
                break;
            }
            for (i, piece) in [(0, a), (1, b)] {
                let (Some(piece), Some(w)) = (piece, writers[i].as_mut()) else {
                    continue;
                };
                if let Err(e) = w.write(piece) {
                    ensure!(self.is_refusal(&e), "interleaved fill {i}: write: {e}");
                    self.stats.over_capacity_refusals += 1;
                    writers[i] = None;
                }
            }
        }
        let order = if second_first { [1, 0] } else { [0, 1] };
        for i in order {
            let Some(w) = writers[i].take() else {
                continue;
            };
            match w.commit() {
                Ok(info) => self.committed(keys[i], bodies[i], &specs[i], &info)?,
                Err(e) if self.is_refusal(&e) => self.stats.over_capacity_refusals += 1,
                Err(e) => return Err(format!("interleaved fill {i}: commit: {e}")),
            }
        }
        self.check_lookup(keys[0])?;
        self.check_lookup(keys[1])
    }

    /// `info` is exactly the model's version `v` of `key`.
    fn check_info(&self, key: &[u8], info: &ObjectInfo, v: &Version) -> Result<(), String> {
        let k = key_str(key);
        ensure!(
            info.key == key,
            "{k}: info names key {:?}",
            key_str(&info.key)
        );
        ensure!(
            info.meta == v.meta,
            "{k}: meta {:?}, the last committed is {:?}",
            key_str(&info.meta),
            key_str(&v.meta)
        );
        ensure!(
            info.blob == v.hash,
            "{k}: blob differs from the last committed"
        );
        ensure!(
            info.body_len == v.body.size as u64,
            "{k}: body_len {} != {}",
            info.body_len,
            v.body.size
        );
        ensure!(to_ms(info.stored_at) == v.stored_at_ms, "{k}: stored_at");
        ensure!(to_ms(info.expires_at) == v.expires_at_ms, "{k}: expires_at");
        ensure!(info.distribution == DISTRIBUTION, "{k}: distribution");
        ensure!(info.tags == v.tags, "{k}: tags {:?}", info.tags);
        Ok(())
    }

    /// The version of `key` in `history` that `info` is, if any.
    fn committed_version(&self, key: &[u8], info: &ObjectInfo) -> Option<&Version> {
        self.history
            .get(key)?
            .iter()
            .rev()
            .find(|v| self.check_info(key, info, v).is_ok())
    }

    /// After damage: whatever is found is some committed version of the key, with its
    /// exact body (or a body read that fails its check), within its grace period.
    fn check_damaged_lookup(&mut self, key: &'static [u8]) -> Result<(), String> {
        let k = key_str(key);
        let Some(hit) = self.store().lookup(key).map_err(err("lookup"))? else {
            return Ok(());
        };
        let expires = to_ms(hit.info.expires_at);
        ensure!(
            expires + GRACE_MS > self.now(),
            "{k}: returned past its grace period after damage"
        );
        let Some(v) = self.committed_version(key, &hit.info).cloned() else {
            return Err(format!(
                "{k}: after damage, returned a version never committed: {:?}",
                hit.info
            ));
        };
        if let Ok(bytes) = hit.body.read_all() {
            ensure!(
                *blake3::hash(&bytes).as_bytes() == v.hash,
                "{k}: after damage, the body ({} bytes) is not the committed one",
                bytes.len()
            );
            self.stats.hits += 1;
        }
        let latest = self
            .model
            .get(key)
            .is_some_and(|m| m.hash == v.hash && m.meta == v.meta);
        if !latest {
            self.stats.older_versions += 1;
        }
        Ok(())
    }

    /// A key just removed is absent, damage or not (until a rebuild after damage).
    fn check_absent(&self, key: &[u8]) -> Result<(), String> {
        let got = self.store().lookup(key).map_err(err("lookup"))?;
        ensure!(
            got.is_none(),
            "{}: found right after its removal",
            key_str(key)
        );
        Ok(())
    }

    fn check_lookup(&mut self, key: &'static [u8]) -> Result<(), String> {
        if self.damaged {
            return self.check_damaged_lookup(key);
        }
        let now = self.now();
        let k = key_str(key);
        let got = self.store().lookup(key).map_err(err("lookup"))?;
        let expected = self.model.get(key).cloned();
        match (got, expected) {
            (None, None) => Ok(()),
            (Some(hit), None) => Err(format!(
                "{k}: found (meta {:?}) but it was removed, expired or never inserted",
                key_str(&hit.info.meta)
            )),
            (None, Some(v)) => {
                ensure!(
                    v.may_vanish,
                    "{k}: missing, but it is within its grace period and no sweep reclaimed \
                     anything since it was committed ({v:?})"
                );
                self.stats.vanished += 1;
                Ok(())
            }
            (Some(hit), Some(v)) => {
                ensure!(!v.dead(now), "{k}: returned past its grace period");
                self.check_info(key, &hit.info, &v)?;
                if self.roomy {
                    let info = self.store().info(key).map_err(err("info"))?;
                    ensure!(
                        info.as_ref() == Some(&hit.info),
                        "{k}: info() disagrees with lookup()"
                    );
                }
                ensure!(hit.body.len() == v.body.size as u64, "{k}: Body::len");
                let bytes = hit
                    .body
                    .read_all()
                    .map_err(|e| format!("{k}: reading the body failed: {e}"))?;
                ensure!(
                    bytes.len() == v.body.size && *blake3::hash(&bytes).as_bytes() == v.hash,
                    "{k}: body ({} bytes) differs from the last committed ({} bytes)",
                    bytes.len(),
                    v.body.size
                );
                self.stats.hits += 1;
                if v.body.size > 65_536 {
                    self.stats.large_hits += 1;
                }
                Ok(())
            }
        }
    }

    fn check_all(&mut self) -> Result<(), String> {
        for k in KEYS {
            self.check_lookup(k)?;
        }
        Ok(())
    }

    /// Whether `key` is certainly in the store (in the model and not evictable).
    fn certainly_present(&self, key: &[u8]) -> bool {
        self.model.get(key).is_some_and(|v| !v.may_vanish)
    }

    fn update_meta(&mut self, key: &'static [u8], ttl: u64, meta: &[u8]) -> Result<(), String> {
        let now = self.now();
        let (stored, expires) = (from_ms(now), from_ms(now + ttl));
        let Some(updated) = self.with_retry("update_meta", |s| {
            s.update_meta(key, meta.to_vec(), stored, expires)
        })?
        else {
            return Ok(());
        };
        if self.damaged {
            return self.damaged_update_meta(key, updated);
        }
        // (Judged after the call: a refused first attempt sweeps, which may evict.)
        let certain = self.certainly_present(key);
        let k = key_str(key);
        match self.model.get_mut(key) {
            None => ensure!(
                !updated,
                "update_meta({k}) = true for a key that is not there"
            ),
            Some(v) => {
                ensure!(
                    updated || !certain,
                    "update_meta({k}) = false for a present key"
                );
                if updated {
                    v.meta = meta.to_vec();
                    v.stored_at_ms = now;
                    v.expires_at_ms = now + ttl;
                    v.may_vanish = false;
                    let v = v.clone();
                    self.history.entry(key).or_default().push(v);
                }
            }
        }
        if self.roomy {
            // The update is durable: it must survive an index rebuild as written.
            let info = self.store().info(key).map_err(err("info"))?;
            if let (Some(info), Some(v)) = (info, self.model.get(key)) {
                self.check_info(key, &info, v)?;
            }
        }
        Ok(())
    }

    /// After damage the updated version may be an older one a rebuild brought back: what
    /// `info` now says is recorded as committed (its body must be one committed for the key).
    fn damaged_update_meta(&mut self, key: &'static [u8], updated: bool) -> Result<(), String> {
        let k = key_str(key);
        let info = self.store().info(key).map_err(err("info"))?;
        let Some(info) = info.filter(|_| updated) else {
            return Ok(());
        };
        let Some(body) = self
            .history
            .get(key)
            .and_then(|h| h.iter().find(|v| v.hash == info.blob))
            .map(|v| v.body)
        else {
            return Err(format!(
                "{k}: after damage, update_meta kept a body never committed"
            ));
        };
        let v = Version {
            body,
            hash: info.blob,
            meta: info.meta.clone(),
            tags: info.tags.clone(),
            stored_at_ms: to_ms(info.stored_at),
            expires_at_ms: to_ms(info.expires_at),
            may_vanish: false,
        };
        self.check_info(key, &info, &v)?;
        self.history.entry(key).or_default().push(v.clone());
        self.model.insert(key, v);
        Ok(())
    }

    fn remove(&mut self, key: &'static [u8]) -> Result<(), String> {
        let Some(removed) = self.with_retry("remove", |s| s.remove(key))? else {
            return Ok(()); // refused: nothing changed
        };
        if self.damaged {
            self.model.remove(key);
            return self.check_absent(key);
        }
        let k = key_str(key);
        ensure!(
            !removed || self.model.contains_key(key),
            "remove({k}) = true for a key that is not there"
        );
        ensure!(
            removed || !self.certainly_present(key),
            "remove({k}) = false for a present key"
        );
        self.stats.removed += removed as u64;
        self.model.remove(key);
        self.check_lookup(key)
    }

    fn remove_prefix(&mut self, prefix: &[u8]) -> Result<(), String> {
        let Some(n) = self.with_retry("remove_prefix", |s| s.remove_prefix(prefix))? else {
            return Ok(());
        };
        if self.damaged {
            self.model.retain(|k, _| !k.starts_with(prefix));
            for k in KEYS.iter().filter(|k| k.starts_with(prefix)) {
                self.check_absent(k)?;
            }
            return Ok(());
        }
        let matching: Vec<&'static [u8]> = self
            .model
            .keys()
            .copied()
            .filter(|k| k.starts_with(prefix))
            .collect();
        let certain = matching
            .iter()
            .filter(|k| self.certainly_present(k))
            .count() as u64;
        ensure!(
            n >= certain && n <= matching.len() as u64,
            "remove_prefix({}) = {n}; expected between {certain} and {}",
            key_str(prefix),
            matching.len()
        );
        self.stats.removed += n;
        for k in matching {
            self.model.remove(k);
        }
        for k in KEYS.iter().filter(|k| k.starts_with(prefix)) {
            self.check_lookup(k)?;
        }
        Ok(())
    }

    fn sweep_and_check(&mut self) -> Result<(), String> {
        let r = self.store().sweep().map_err(err("sweep"))?;
        self.stats.reclaimed_segments += r.reclaimed_segments;
        self.stats.expired += r.expired;
        ensure!(
            r.quarantined_removed == 0 || self.damaged,
            "a sweep removed quarantined objects (nothing was damaged): {r:?}"
        );
        if r.reclaimed_segments > 0 {
            ensure!(
                !self.roomy,
                "a sweep reclaimed segments with the roomy capacity: {r:?}"
            );
            for v in self.model.values_mut() {
                v.may_vanish = true;
            }
        }
        let s = self.store().stats();
        ensure!(
            s.bytes_on_disk <= s.capacity - s.segment_size || s.segments <= 1,
            "after a sweep {} bytes on disk, the target is {}",
            s.bytes_on_disk,
            s.capacity - s.segment_size
        );
        self.check_listing(true)
    }

    /// Everything `iter()` lists is the last committed version of a key that was not
    /// removed, and nothing certain is missing. `stats().objects` counts index entries,
    /// including versions past their grace period that no sweep has dropped yet: it equals
    /// the listing only right after a sweep, and is never below it.
    fn check_listing(&self, swept: bool) -> Result<(), String> {
        let store = self.store();
        let listed: Vec<ObjectInfo> = store
            .iter()
            .collect::<crate::store::Result<_>>()
            .map_err(err("iter"))?;
        let s = store.stats();
        ensure!(
            s.objects == listed.len() as u64 || (!swept && s.objects > listed.len() as u64),
            "stats().objects = {} but iter() lists {} objects (right after a sweep: {swept})",
            s.objects,
            listed.len()
        );
        if self.damaged {
            for info in &listed {
                ensure!(
                    self.committed_version(&info.key, info).is_some(),
                    "after damage, iter() lists a version of {} never committed: {info:?}",
                    key_str(&info.key)
                );
            }
            return Ok(());
        }
        for info in &listed {
            let Some(v) = self.model.get(&info.key[..]) else {
                return Err(format!(
                    "iter() lists {}, which was removed, expired or never inserted",
                    key_str(&info.key)
                ));
            };
            self.check_info(&info.key, info, v)?;
        }
        for (k, v) in &self.model {
            ensure!(
                v.may_vanish || listed.iter().any(|i| i.key == *k),
                "iter() does not list {}",
                key_str(k)
            );
        }
        Ok(())
    }

    fn reopen(&mut self, how: Reopen) -> Result<(), String> {
        if how == Reopen::Live {
            let n = self.store().rebuild().map_err(err("rebuild"))?;
            ensure!(n == self.store().stats().objects, "rebuild() returned {n}");
            self.stats.rebuilds += 1;
            return self.check_listing(false);
        }
        let store = self.store.take().expect("open");
        match how {
            Reopen::Drop => drop(store),
            _ => store.close().map_err(err("close"))?,
        }
        if let Reopen::Damaged(d) = how {
            self.damage(d)?;
        }
        let store = match how {
            Reopen::Rebuilding => Store::open_rebuilding(self.cfg.clone()),
            Reopen::DeleteIndex => {
                let index = self.dir.path().join("index");
                std::fs::remove_dir_all(&index).map_err(err("removing the index"))?;
                Store::open(self.cfg.clone())
            }
            _ => Store::open(self.cfg.clone()),
        }
        .map_err(err("reopen"))?;
        let report = store.open_report().clone();
        self.store = Some(store);
        self.stats.reopens += 1;
        match how {
            Reopen::Close | Reopen::Drop => ensure!(
                report.clean_shutdown && !report.rebuilt,
                "reopen after a clean close: {report:?}"
            ),
            Reopen::Damaged(_) => {}
            _ => {
                self.stats.rebuilds += 1;
                // (An index over no segment at all has nothing to rebuild from.)
                ensure!(
                    report.rebuilt || report.segments == 0,
                    "reopen should have rebuilt: {report:?}"
                );
            }
        }
        ensure!(
            self.store().stats().counts_exact,
            "counts not exact after {how:?}"
        );
        self.check_listing(false)
    }

    /// Damages one segment file of the closed store (if there is one) and switches to the
    /// weaker oracle.
    fn damage(&mut self, d: Damage) -> Result<(), String> {
        let seg_dir = self.dir.path().join("segments");
        let mut files: Vec<_> = std::fs::read_dir(&seg_dir)
            .map_err(err("listing the segments"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        let pick = |segment: u8| files.get(segment as usize % files.len().max(1));
        let io = |e: std::io::Error| format!("damaging a segment: {e}");
        match d {
            Damage::Flip {
                segment,
                offset,
                mask,
            } => {
                let Some(path) = pick(segment) else {
                    return Ok(());
                };
                let mut bytes = std::fs::read(path).map_err(io)?;
                if bytes.is_empty() {
                    return Ok(());
                }
                let at = offset as usize % bytes.len();
                bytes[at] ^= mask.max(1);
                std::fs::write(path, bytes).map_err(io)?;
            }
            Damage::Truncate { segment, len } => {
                let Some(path) = pick(segment) else {
                    return Ok(());
                };
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io)?;
                let have = f.metadata().map_err(io)?.len();
                f.set_len(len as u64 % (have + 1)).map_err(io)?;
            }
            Damage::Delete { segment } => {
                let Some(path) = pick(segment) else {
                    return Ok(());
                };
                std::fs::remove_file(path).map_err(io)?;
            }
        }
        self.damaged = true;
        self.stats.damaged += 1;
        Ok(())
    }

    /// Every key checked, a sweep, a rebuild from the segments alone, every key again.
    fn finish(&mut self) -> Result<(), String> {
        self.check_all()?;
        self.sweep_and_check()?;
        self.reopen(Reopen::DeleteIndex)?;
        self.check_all()?;
        self.store
            .take()
            .expect("open")
            .close()
            .map_err(err("close"))
    }
}
