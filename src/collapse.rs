//! Request collapsing: one origin fetch per cache key at a time. The first viewer's
//! request starts a fill that runs in its own task; every viewer (the first included)
//! follows the fill through a [`Reader`]: it waits for the response head, then reads the
//! body chunks as they arrive. A viewer hanging up never cancels the fill for the others,
//! and a fill that fails ends every follower's body with an error, so no follower ever
//! receives a truncated body presented as complete.
//!
//! Memory stays bounded whatever the body size: up to [`WINDOW`] bytes are kept for
//! viewers who join late; beyond that, chunks every reader has passed are dropped, and
//! the fetcher waits (backpressure) while the slowest reader is that far behind. Once
//! chunks have been dropped, the fill can no longer take new followers (they would miss
//! the start); a later viewer starts its own fetch. A fill thus holds at most about twice
//! [`WINDOW`] bytes.
//!
//! States of a fill: waiting for the head → streaming (head set, chunks growing) → ended
//! (complete or failed). The fill leaves the table when it ends; a request that arrives
//! after that finds the object in the store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

/// Bytes a fill may buffer ahead of its slowest reader before the fetcher waits.
pub const WINDOW: usize = 8 << 20;

/// How a fill ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Complete,
    Failed(String),
}

#[derive(Debug)]
struct State<H> {
    head: Option<Arc<H>>,
    /// Chunks from index `base` on.
    chunks: VecDeque<Bytes>,
    base: usize,
    buffered: usize,
    end: Option<End>,
    /// Next chunk index of each live reader.
    cursors: HashMap<u64, usize>,
    next_cursor: u64,
}

impl<H> State<H> {
    /// Drops chunks every reader has passed, but only beyond the first [`WINDOW`] bytes
    /// buffered: as long as the start is kept, late viewers can still join.
    fn trim(&mut self) {
        let low = self.cursors.values().copied().min().unwrap_or(usize::MAX);
        while self.base < low && self.buffered > WINDOW {
            let Some(c) = self.chunks.pop_front() else {
                break;
            };
            self.buffered -= c.len();
            self.base += 1;
        }
    }

    /// Bytes buffered that the slowest reader has not read yet.
    fn behind(&self) -> usize {
        let Some(low) = self.cursors.values().copied().min() else {
            return 0;
        };
        self.chunks
            .iter()
            .skip(low.saturating_sub(self.base))
            .map(Bytes::len)
            .sum()
    }

    /// New readers can still see the whole body.
    fn joinable(&self) -> bool {
        self.base == 0 && self.end.is_none()
    }
}

/// One in-flight fetch. `H` is what the fetcher publishes before the body (the response
/// head, or another outcome).
#[derive(Debug)]
pub struct Fill<H> {
    state: Mutex<State<H>>,
    changed: Notify,
}

/// The error a follower's body ends with when the fill fails.
#[derive(Debug, thiserror::Error)]
#[error("the origin response ended early: {0}")]
pub struct FillAborted(pub String);

impl<H> Fill<H> {
    /// A fill outside the table (a fetch for one viewer alone).
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                head: None,
                chunks: VecDeque::new(),
                base: 0,
                buffered: 0,
                end: None,
                cursors: HashMap::new(),
                next_cursor: 0,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<H>> {
        // Every update is a few assignments that leave consistent data, so a lock
        // poisoned by a panic elsewhere is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reader from the first chunk, or None if chunks were already dropped.
    pub fn reader(self: &Arc<Self>) -> Option<Reader<H>> {
        let mut s = self.lock();
        if s.base != 0 {
            return None;
        }
        let id = s.next_cursor;
        s.next_cursor += 1;
        s.cursors.insert(id, 0);
        Some(Reader {
            fill: self.clone(),
            id,
            next: 0,
        })
    }

    /// Live readers.
    pub fn readers(&self) -> usize {
        self.lock().cursors.len()
    }

    /// Publishes the head. Followers waiting in [`Fill::head`] wake up.
    pub fn set_head(&self, head: H) {
        self.lock().head = Some(Arc::new(head));
        self.changed.notify_waiters();
    }

    /// Appends a body chunk, first waiting while the slowest reader is [`WINDOW`] bytes
    /// or more behind.
    pub async fn push(&self, chunk: Bytes) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                s.trim();
                if s.behind() < WINDOW {
                    s.buffered += chunk.len();
                    s.chunks.push_back(chunk);
                    s.trim();
                    break;
                }
            }
            notified.await;
        }
        self.changed.notify_waiters();
    }

    /// Whether the head has been published.
    pub fn has_head(&self) -> bool {
        self.lock().head.is_some()
    }

    /// Ends the fill.
    pub fn end(&self, end: End) {
        {
            let mut s = self.lock();
            if s.end.is_none() {
                s.end = Some(end);
            }
        }
        self.changed.notify_waiters();
    }

    /// Waits for the head; `Err` if the fill ended without one.
    pub async fn head(&self) -> Result<Arc<H>, FillAborted> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.lock();
                if let Some(h) = &s.head {
                    return Ok(h.clone());
                }
                if let Some(end) = &s.end {
                    return Err(FillAborted(match end {
                        End::Failed(why) => why.clone(),
                        End::Complete => "the fill ended without a response".into(),
                    }));
                }
            }
            notified.await;
        }
    }
}

/// One viewer's position in a fill's body. Dropping it releases the chunks it held.
#[derive(Debug)]
pub struct Reader<H> {
    fill: Arc<Fill<H>>,
    id: u64,
    next: usize,
}

impl<H> Reader<H> {
    pub fn fill(&self) -> &Arc<Fill<H>> {
        &self.fill
    }

    /// The next chunk: `Ok(Some)`, `Ok(None)` at a complete end, `Err` when the fill
    /// failed before delivering it.
    pub async fn next(&mut self) -> Result<Option<Bytes>, FillAborted> {
        loop {
            let notified = self.fill.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.fill.lock();
                let chunk = self
                    .next
                    .checked_sub(s.base)
                    .and_then(|i| s.chunks.get(i))
                    .cloned();
                if let Some(c) = chunk {
                    self.next += 1;
                    s.cursors.insert(self.id, self.next);
                    s.trim();
                    drop(s);
                    // The fetcher may be waiting for room.
                    self.fill.changed.notify_waiters();
                    return Ok(Some(c));
                }
                match &s.end {
                    Some(End::Complete) => return Ok(None),
                    Some(End::Failed(why)) => return Err(FillAborted(why.clone())),
                    None => {}
                }
            }
            notified.await;
        }
    }
}

impl<H> Drop for Reader<H> {
    fn drop(&mut self) {
        {
            let mut s = self.fill.lock();
            s.cursors.remove(&self.id);
            s.trim();
        }
        self.fill.changed.notify_waiters();
    }
}

/// The table of in-flight fills, by cache key.
#[derive(Debug)]
pub struct Collapser<H> {
    inflight: Mutex<HashMap<Vec<u8>, Arc<Fill<H>>>>,
}

impl<H> Default for Collapser<H> {
    fn default() -> Self {
        Self {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

/// The caller's role in a fill, with its reader.
pub enum Joined<H> {
    /// No joinable fill was running: the caller must start this one (and call
    /// [`Collapser::finish`] when it ends).
    Leader(Reader<H>),
    /// A fill was running: follow it.
    Follower(Reader<H>),
}

impl<H> Collapser<H> {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Arc<Fill<H>>>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the fill for `key`, creating it if none is running (or if the running one
    /// can no longer show a newcomer the whole body).
    pub fn join(&self, key: &[u8]) -> Joined<H> {
        let mut t = self.table();
        if let Some(f) = t.get(key) {
            let joinable = f.lock().joinable();
            if joinable {
                if let Some(r) = f.reader() {
                    return Joined::Follower(r);
                }
            }
        }
        let f = Arc::new(Fill::new());
        let r = f.reader().expect("a new fill has dropped nothing");
        t.insert(key.to_vec(), f);
        Joined::Leader(r)
    }

    /// Removes `fill` from the table (only if it is still the one registered for `key`).
    pub fn finish(&self, key: &[u8], fill: &Arc<Fill<H>>) {
        let mut t = self.table();
        if t.get(key).is_some_and(|f| Arc::ptr_eq(f, fill)) {
            t.remove(key);
        }
    }

    /// Fills running now.
    pub fn in_flight(&self) -> usize {
        self.table().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(c: &Collapser<u16>, key: &[u8]) -> Reader<u16> {
        match c.join(key) {
            Joined::Leader(r) => r,
            Joined::Follower(_) => panic!("expected to lead"),
        }
    }

    #[tokio::test]
    async fn followers_see_every_chunk_then_the_end() {
        let c: Collapser<u16> = Collapser::default();
        let lead = leader(&c, b"k");
        let fill = lead.fill().clone();
        let Joined::Follower(mut f2) = c.join(b"k") else {
            panic!("second join follows")
        };
        drop(lead);
        let reader = tokio::spawn(async move {
            let head = *f2.fill().head().await.unwrap();
            let mut body = Vec::new();
            while let Some(chunk) = f2.next().await.unwrap() {
                body.extend_from_slice(&chunk);
            }
            (head, body)
        });
        tokio::task::yield_now().await;
        fill.set_head(200);
        fill.push(Bytes::from_static(b"ab")).await;
        tokio::task::yield_now().await;
        fill.push(Bytes::from_static(b"cd")).await;
        fill.end(End::Complete);
        c.finish(b"k", &fill);
        assert_eq!(reader.await.unwrap(), (200, b"abcd".to_vec()));
        assert_eq!(c.in_flight(), 0);
        assert!(matches!(c.join(b"k"), Joined::Leader(_)));
    }

    #[tokio::test]
    async fn a_failed_fill_fails_followers() {
        let c: Collapser<u16> = Collapser::default();
        let mut r = leader(&c, b"k");
        let fill = r.fill().clone();
        fill.set_head(200);
        fill.push(Bytes::from_static(b"ab")).await;
        fill.end(End::Failed("reset".into()));
        assert!(r.next().await.unwrap().is_some());
        assert!(r.next().await.is_err());
        let c2: Collapser<u16> = Collapser::default();
        let r2 = leader(&c2, b"x");
        r2.fill().end(End::Failed("refused".into()));
        assert!(r2.fill().head().await.is_err());
    }

    #[tokio::test]
    async fn memory_stays_within_the_window_and_late_viewers_lead_their_own_fill() {
        let c: Collapser<u16> = Collapser::default();
        let mut r = leader(&c, b"k");
        let fill = r.fill().clone();
        fill.set_head(200);
        let chunk = Bytes::from(vec![7u8; 1 << 20]);
        // The fetcher runs ahead until the window is full, then waits for the reader.
        let f2 = fill.clone();
        let pusher = tokio::spawn(async move {
            for _ in 0..64 {
                f2.push(chunk.clone()).await;
            }
            f2.end(End::Complete);
        });
        let mut total = 0;
        let mut most = 0;
        while let Some(b) = r.next().await.unwrap() {
            total += b.len();
            most = most.max(fill.lock().buffered);
            if total == 4 << 20 {
                // The start is still kept: a newcomer joins this fill.
                assert!(matches!(c.join(b"k"), Joined::Follower(_)));
            }
            if total == 40 << 20 {
                // Chunks were dropped: a newcomer cannot join this fill any more.
                assert!(matches!(c.join(b"k"), Joined::Leader(_)));
            }
        }
        pusher.await.unwrap();
        assert_eq!(total, 64 << 20);
        assert!(most <= 2 * WINDOW + (1 << 20), "buffered {most}");
    }

    #[tokio::test]
    async fn without_readers_only_the_window_is_kept_and_the_fetcher_never_waits() {
        let c: Collapser<u16> = Collapser::default();
        let r = leader(&c, b"k");
        let fill = r.fill().clone();
        drop(r);
        for _ in 0..32 {
            fill.push(Bytes::from(vec![0u8; 1 << 20])).await;
        }
        let buffered = fill.lock().buffered;
        assert!(buffered <= WINDOW + (1 << 20), "buffered {buffered}");
        assert_eq!(fill.readers(), 0);
    }
}
