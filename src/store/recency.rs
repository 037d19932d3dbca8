//! Which objects were read since they were written: one bit per hashed key in a table of
//! fixed size (CLOCK-style). A hit sets a bit in memory and writes nothing to disk; the
//! sweeper reads the bits to give recently read objects a second chance when their segment
//! is reclaimed. Collisions only make an object look hot when it is not, which costs a copy,
//! never correctness.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Recency {
    words: Box<[AtomicU64]>,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for Recency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recency({} bits)", self.words.len() * 64)
    }
}

impl Recency {
    /// A table of at least `bits` bits (rounded up to a power of two, at least 64).
    pub fn new(bits: usize) -> Self {
        let words = bits.max(64).next_power_of_two() / 64;
        Self {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            hasher: Default::default(),
        }
    }

    /// Bytes of memory the table uses (fixed for the life of the store).
    pub fn memory_bytes(&self) -> usize {
        self.words.len() * 8
    }

    fn slot(&self, key: &[u8]) -> (usize, u64) {
        let mut h = self.hasher.build_hasher();
        h.write(key);
        let h = h.finish();
        let bit = (h % (self.words.len() as u64 * 64)) as usize;
        (bit / 64, 1u64 << (bit % 64))
    }

    /// Records a read of `key`.
    pub fn touch(&self, key: &[u8]) {
        let (w, m) = self.slot(key);
        // Load first so that hot keys do not keep dirtying the cache line.
        if self.words[w].load(Ordering::Relaxed) & m == 0 {
            self.words[w].fetch_or(m, Ordering::Relaxed);
        }
    }

    /// Forgets reads of `key` (it was just written, or just given its second chance).
    pub fn clear(&self, key: &[u8]) {
        let (w, m) = self.slot(key);
        if self.words[w].load(Ordering::Relaxed) & m != 0 {
            self.words[w].fetch_and(!m, Ordering::Relaxed);
        }
    }

    /// Whether `key` was read since it was last cleared.
    pub fn is_hot(&self, key: &[u8]) -> bool {
        let (w, m) = self.slot(key);
        self.words[w].load(Ordering::Relaxed) & m != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_clear_and_fixed_size() {
        let r = Recency::new(1000);
        assert_eq!(r.memory_bytes(), 128);
        assert!(!r.is_hot(b"a"));
        r.touch(b"a");
        assert!(r.is_hot(b"a"));
        r.clear(b"a");
        assert!(!r.is_hot(b"a"));
    }
}
