//! A sorted map stored in a sled tree as *leaves*: each sled entry holds up to about
//! 4 KiB of consecutive (key, value) pairs, keyed by the leaf's lower bound.
//!
//! Why: sled 0.34 keeps an in-memory page-table entry (and segment-accounting state) for
//! every node of 16 entries, and rebuilds all of it when it opens. One sled entry per cached
//! object therefore makes both anonymous memory and open time grow with the object count
//! (measured: ~150 bytes of RssAnon and ~0.2 µs of open time per object). Packing ~20-60
//! entries per sled value divides both by that factor while keeping sled's crash safety:
//! every change is a single sled insert, or one atomic sled batch when a leaf splits.
//!
//! Mutations must come from one writer at a time (the store's log lock); readers may run
//! concurrently and always see whole leaves.
//!
//! Leaf value layout: `u32 LE count`, `count` × `u32 LE offset` (from the start of the
//! entry area), then the entries, each `u32 LE key length, key, u32 LE value length,
//! value`, in ascending key order. The sled key of a leaf is a lower bound of its keys
//! (the first leaf's is empty), so the leaf holding key `k` is the last leaf whose sled
//! key is `<= k`.

use std::ops::Bound;

use crate::store::record::DecodeError;

/// Leaves are split when their encoding grows past this many bytes.
const MAX_LEAF_BYTES: usize = 4096;

type Entry = (Vec<u8>, Vec<u8>);

/// A sorted map packed into leaves of a sled tree.
#[derive(Clone)]
pub struct PackedTree {
    tree: sled::Tree,
}

/// Errors: sled's own, or a leaf that does not decode.
#[derive(Debug)]
pub enum PackedError {
    Sled(sled::Error),
    Leaf(DecodeError),
}

impl From<sled::Error> for PackedError {
    fn from(e: sled::Error) -> Self {
        PackedError::Sled(e)
    }
}

impl std::fmt::Display for PackedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackedError::Sled(e) => write!(f, "{e}"),
            PackedError::Leaf(e) => write!(f, "index leaf does not decode: {e}"),
        }
    }
}

type Result<T> = std::result::Result<T, PackedError>;

/// A leaf's bytes, readable in place.
struct Leaf<'a> {
    count: usize,
    offsets: &'a [u8],
    entries: &'a [u8],
}

fn u32_at(b: &[u8], at: usize) -> std::result::Result<u32, DecodeError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or(DecodeError::Truncated {
            needed: (at + 4) as u64,
            available: b.len() as u64,
        })
}

impl<'a> Leaf<'a> {
    fn parse(b: &'a [u8]) -> std::result::Result<Self, DecodeError> {
        let count = u32_at(b, 0)? as usize;
        let table_end = count
            .checked_mul(4)
            .and_then(|n| n.checked_add(4))
            .filter(|&n| n <= b.len())
            .ok_or(DecodeError::Invalid("leaf entry count exceeds its size"))?;
        Ok(Leaf {
            count,
            offsets: &b[4..table_end],
            entries: &b[table_end..],
        })
    }

    /// Entry `i` as (key, value) slices.
    fn entry(&self, i: usize) -> std::result::Result<(&'a [u8], &'a [u8]), DecodeError> {
        let off = u32_at(self.offsets, i * 4)? as usize;
        let e = self.entries;
        let klen = u32_at(e, off)? as usize;
        let kstart = off + 4;
        let key = e
            .get(kstart..kstart.saturating_add(klen))
            .ok_or(DecodeError::Invalid("leaf key out of bounds"))?;
        let vlen_at = kstart + klen;
        let vlen = u32_at(e, vlen_at)? as usize;
        let vstart = vlen_at + 4;
        let val = e
            .get(vstart..vstart.saturating_add(vlen))
            .ok_or(DecodeError::Invalid("leaf value out of bounds"))?;
        Ok((key, val))
    }

    /// Binary search: `Ok(i)` if entry `i` has `key`, `Err(i)` where it would go.
    fn search(
        &self,
        key: &[u8],
    ) -> std::result::Result<std::result::Result<usize, usize>, DecodeError> {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.entry(mid)?.0.cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Ok(mid)),
            }
        }
        Ok(Err(lo))
    }

    fn to_vec(&self) -> std::result::Result<Vec<Entry>, DecodeError> {
        let mut out = Vec::with_capacity(self.count);
        let mut prev: Option<&[u8]> = None;
        for i in 0..self.count {
            let (k, v) = self.entry(i)?;
            if prev.is_some_and(|p| p >= k) {
                return Err(DecodeError::Invalid("leaf keys out of order"));
            }
            prev = Some(k);
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

fn encoded_len(entries: &[Entry]) -> usize {
    4 + entries
        .iter()
        .map(|(k, v)| 12 + k.len() + v.len())
        .sum::<usize>()
}

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(entries));
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    let mut off = 0u32;
    for (k, v) in entries {
        out.extend_from_slice(&off.to_le_bytes());
        off += 8 + k.len() as u32 + v.len() as u32;
    }
    for (k, v) in entries {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

fn decode(b: &[u8]) -> Result<Vec<Entry>> {
    Leaf::parse(b)
        .and_then(|l| l.to_vec())
        .map_err(PackedError::Leaf)
}

impl PackedTree {
    pub fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }

    /// The leaf that holds (or would hold) `key`: its sled key and bytes.
    fn leaf_for(&self, key: &[u8]) -> Result<Option<(sled::IVec, sled::IVec)>> {
        Ok(self.tree.range(..=key).next_back().transpose()?)
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let key = key.as_ref();
        let Some((_, bytes)) = self.leaf_for(key)? else {
            return Ok(None);
        };
        let leaf = Leaf::parse(&bytes).map_err(PackedError::Leaf)?;
        match leaf.search(key).map_err(PackedError::Leaf)? {
            Ok(i) => Ok(Some(leaf.entry(i).map_err(PackedError::Leaf)?.1.to_vec())),
            Err(_) => Ok(None),
        }
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Option<Vec<u8>>> {
        let (key, value) = (key.as_ref(), value.as_ref());
        let (leaf_key, mut entries) = match self.leaf_for(key)? {
            Some((lk, bytes)) => (lk, decode(&bytes)?),
            // An empty tree: the first leaf's lower bound is the empty key.
            None => (sled::IVec::from(&[][..]), Vec::new()),
        };
        let old = match entries.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
            Ok(i) => Some(std::mem::replace(&mut entries[i].1, value.to_vec())),
            Err(i) => {
                entries.insert(i, (key.to_vec(), value.to_vec()));
                None
            }
        };
        self.write_leaf(leaf_key, entries)?;
        Ok(old)
    }

    /// Removes; returns the previous value.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let key = key.as_ref();
        let Some((leaf_key, bytes)) = self.leaf_for(key)? else {
            return Ok(None);
        };
        let mut entries = decode(&bytes)?;
        let Ok(i) = entries.binary_search_by(|(k, _)| k.as_slice().cmp(key)) else {
            return Ok(None);
        };
        let (_, old) = entries.remove(i);
        self.write_leaf(leaf_key, entries)?;
        Ok(Some(old))
    }

    /// Removes every entry whose key starts with `prefix`; returns how many.
    pub fn remove_prefix(&self, prefix: &[u8]) -> Result<u64> {
        let mut removed = 0;
        // Leaves can only shrink here, so collect first, then rewrite leaf by leaf.
        let mut start = match self.leaf_for(prefix)? {
            Some((lk, _)) => lk.to_vec(),
            None => return Ok(0),
        };
        loop {
            let Some(item) = self.tree.range(start.as_slice()..).next() else {
                break;
            };
            let (lk, bytes) = item?;
            if !lk.starts_with(prefix) && lk.as_ref() > prefix {
                break;
            }
            let mut entries = decode(&bytes)?;
            let before = entries.len();
            entries.retain(|(k, _)| !k.starts_with(prefix));
            removed += (before - entries.len()) as u64;
            if entries.len() != before {
                self.write_leaf(lk.clone(), entries)?;
            }
            start = lk.to_vec();
            start.push(0);
        }
        Ok(removed)
    }

    /// Stores a leaf's new contents: splits it when too big, drops it when empty (except
    /// the first leaf, whose lower bound is the empty key).
    fn write_leaf(&self, leaf_key: sled::IVec, entries: Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            if leaf_key.is_empty() {
                self.tree.insert(leaf_key, encode(&entries))?;
            } else {
                self.tree.remove(leaf_key)?;
            }
            return Ok(());
        }
        if encoded_len(&entries) <= MAX_LEAF_BYTES || entries.len() < 2 {
            self.tree.insert(leaf_key, encode(&entries))?;
            return Ok(());
        }
        // Split into pieces of at most half the limit each (one batch: atomic for readers
        // and for crashes).
        let mut batch = sled::Batch::default();
        let mut piece: Vec<Entry> = Vec::new();
        let mut piece_key = leaf_key.to_vec();
        let mut size = 4;
        for e in entries {
            let len = 12 + e.0.len() + e.1.len();
            if !piece.is_empty() && size + len > MAX_LEAF_BYTES / 2 {
                batch.insert(piece_key.clone(), encode(&piece));
                piece_key = e.0.clone();
                piece.clear();
                size = 4;
            }
            size += len;
            piece.push(e);
        }
        batch.insert(piece_key, encode(&piece));
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Entries with keys `>= start`, in order.
    pub fn range_from(&self, start: &[u8]) -> Result<PackedIter> {
        let (pending, next_leaf) = match self.leaf_for(start)? {
            Some((lk, bytes)) => {
                let mut entries = decode(&bytes)?;
                entries.retain(|(k, _)| k.as_slice() >= start);
                (entries, Bound::Excluded(lk.to_vec()))
            }
            None => (Vec::new(), Bound::Unbounded),
        };
        Ok(PackedIter {
            tree: self.tree.clone(),
            pending: pending.into_iter(),
            next_leaf: Some(next_leaf),
        })
    }

    /// Entries whose keys start with `prefix`, in order.
    pub fn scan_prefix(
        &self,
        prefix: impl AsRef<[u8]>,
    ) -> Box<dyn Iterator<Item = Result<Entry>> + Send> {
        let prefix = prefix.as_ref().to_vec();
        match self.range_from(&prefix) {
            Ok(it) => Box::new(it.take_while(move |e| match e {
                Ok((k, _)) => k.starts_with(&prefix),
                Err(_) => true,
            })),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    /// Entries with keys `< end`, in order.
    pub fn scan_below(&self, end: Vec<u8>) -> Box<dyn Iterator<Item = Result<Entry>> + Send> {
        match self.range_from(b"") {
            Ok(it) => Box::new(it.take_while(move |e| match e {
                Ok((k, _)) => *k < end,
                Err(_) => true,
            })),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    /// Every entry, in order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = Result<Entry>> + Send> {
        self.scan_prefix(b"")
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.range_from(b"")?.next().transpose()?.is_none())
    }

    pub fn clear(&self) -> Result<()> {
        Ok(self.tree.clear()?)
    }

    /// Number of sled entries (leaves) the map uses.
    #[cfg(test)]
    pub fn leaves(&self) -> usize {
        self.tree.len()
    }
}

/// Iterator over a [`PackedTree`] from a key on, reading one leaf at a time.
pub struct PackedIter {
    tree: sled::Tree,
    pending: std::vec::IntoIter<Entry>,
    next_leaf: Option<Bound<Vec<u8>>>,
}

impl Iterator for PackedIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(e) = self.pending.next() {
                return Some(Ok(e));
            }
            let from = self.next_leaf.take()?;
            let next = self
                .tree
                .range::<Vec<u8>, _>((from, Bound::Unbounded))
                .next();
            match next {
                None => return None,
                Some(Err(e)) => return Some(Err(e.into())),
                Some(Ok((lk, bytes))) => match decode(&bytes) {
                    Ok(entries) => {
                        self.pending = entries.into_iter();
                        self.next_leaf = Some(Bound::Excluded(lk.to_vec()));
                    }
                    Err(e) => return Some(Err(e)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tree() -> (tempfile::TempDir, PackedTree) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (dir, PackedTree::new(db.open_tree("t").unwrap()))
    }

    #[test]
    fn behaves_like_a_btreemap_through_splits_and_removals() {
        let (_d, t) = tree();
        let mut model = BTreeMap::new();
        let mut x = 12345u64;
        for step in 0..6000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("k{:05}", x % 2000).into_bytes();
            if x % 5 == 0 {
                assert_eq!(t.remove(&key).unwrap(), model.remove(&key), "step {step}");
            } else {
                let val = vec![(x % 251) as u8; (x % 200) as usize];
                assert_eq!(
                    t.insert(&key, &val).unwrap(),
                    model.insert(key.clone(), val),
                    "step {step}"
                );
            }
            if step % 500 == 0 {
                let all: Vec<_> = t.range_from(b"").unwrap().map(|e| e.unwrap()).collect();
                let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(all, want);
            }
        }
        assert!(t.leaves() > 10, "splits happened: {}", t.leaves());
        for (k, v) in &model {
            assert_eq!(t.get(k).unwrap().as_ref(), Some(v));
        }
        let from: Vec<_> = t
            .range_from(b"k01000")
            .unwrap()
            .map(|e| e.unwrap().0)
            .collect();
        let want: Vec<_> = model
            .range(b"k01000".to_vec()..)
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(from, want);
        let n = model.keys().filter(|k| k.starts_with(b"k01")).count() as u64;
        assert_eq!(t.remove_prefix(b"k01").unwrap(), n);
        model.retain(|k, _| !k.starts_with(b"k01"));
        let all: Vec<_> = t.range_from(b"").unwrap().map(|e| e.unwrap().0).collect();
        assert_eq!(all, model.keys().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn corrupt_leaves_are_errors_not_panics() {
        for bad in [
            &[][..],
            &[5, 0, 0, 0][..],
            &[1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0][..],
            &[1, 0, 0, 0, 200, 0, 0, 0][..],
        ] {
            assert!(decode(bad).is_err());
        }
        let good = encode(&[
            (b"b".to_vec(), b"1".to_vec()),
            (b"a".to_vec(), b"2".to_vec()),
        ]);
        assert!(decode(&good).is_err(), "out-of-order keys are refused");
    }
}
