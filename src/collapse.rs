//! Request collapsing: one origin fetch per cache key at a time. The first viewer's
//! request starts a fill that runs in its own task; every viewer (the first included)
//! follows the fill: it waits for the response head, then reads the body chunks as they
//! arrive. A viewer hanging up never cancels the fill for the others, and a fill that
//! fails ends every follower's body with an error, so no follower ever receives a
//! truncated body presented as complete.
//!
//! States of a fill: waiting for the head → streaming (head set, chunks growing) → ended
//! (complete or failed). The fill is removed from the table when it ends; a request that
//! arrives after that finds the object in the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

/// How a fill ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Complete,
    Failed(String),
}

#[derive(Debug)]
struct State<H> {
    head: Option<Arc<H>>,
    chunks: Vec<Bytes>,
    end: Option<End>,
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
                chunks: Vec::new(),
                end: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<H>> {
        // A panic elsewhere while holding this lock leaves consistent data (every update
        // is a single push or assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the head. Followers waiting in [`Fill::head`] wake up.
    pub fn set_head(&self, head: H) {
        self.lock().head = Some(Arc::new(head));
        self.changed.notify_waiters();
    }

    /// Appends a body chunk.
    pub fn push(&self, chunk: Bytes) {
        self.lock().chunks.push(chunk);
        self.changed.notify_waiters();
    }

    /// Ends the fill. A fill that ends without a head fails its followers' waits too.
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

    /// Waits for chunk number `i`: `Ok(Some)` when it exists, `Ok(None)` at a complete
    /// end, `Err` when the fill failed before delivering it.
    pub async fn chunk(&self, i: usize) -> Result<Option<Bytes>, FillAborted> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.lock();
                if let Some(c) = s.chunks.get(i) {
                    return Ok(Some(c.clone()));
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

    pub fn is_ended(&self) -> bool {
        self.lock().end.is_some()
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

/// The caller's role in a fill.
pub enum Joined<H> {
    /// No fill was running: the caller must start one (and call [`Collapser::finish`]).
    Leader(Arc<Fill<H>>),
    /// A fill was running: follow it.
    Follower(Arc<Fill<H>>),
}

impl<H> Collapser<H> {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Arc<Fill<H>>>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the fill for `key`, creating it if none is running.
    pub fn join(&self, key: &[u8]) -> Joined<H> {
        let mut t = self.table();
        if let Some(f) = t.get(key) {
            if !f.is_ended() {
                return Joined::Follower(f.clone());
            }
        }
        let f = Arc::new(Fill::new());
        t.insert(key.to_vec(), f.clone());
        Joined::Leader(f)
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

    #[tokio::test]
    async fn followers_see_every_chunk_then_the_end() {
        let c: Collapser<u16> = Collapser::default();
        let Joined::Leader(fill) = c.join(b"k") else {
            panic!("first join leads")
        };
        let Joined::Follower(f2) = c.join(b"k") else {
            panic!("second join follows")
        };
        let reader = tokio::spawn(async move {
            let head = *f2.head().await.unwrap();
            let mut body = Vec::new();
            let mut i = 0;
            while let Some(chunk) = f2.chunk(i).await.unwrap() {
                body.extend_from_slice(&chunk);
                i += 1;
            }
            (head, body)
        });
        tokio::task::yield_now().await;
        fill.set_head(200);
        fill.push(Bytes::from_static(b"ab"));
        tokio::task::yield_now().await;
        fill.push(Bytes::from_static(b"cd"));
        fill.end(End::Complete);
        c.finish(b"k", &fill);
        assert_eq!(reader.await.unwrap(), (200, b"abcd".to_vec()));
        assert_eq!(c.in_flight(), 0);
        assert!(matches!(c.join(b"k"), Joined::Leader(_)));
    }

    #[tokio::test]
    async fn a_failed_fill_fails_followers() {
        let c: Collapser<u16> = Collapser::default();
        let Joined::Leader(fill) = c.join(b"k") else {
            panic!()
        };
        fill.set_head(200);
        fill.push(Bytes::from_static(b"ab"));
        fill.end(End::Failed("reset".into()));
        assert!(fill.chunk(0).await.unwrap().is_some());
        assert!(fill.chunk(1).await.is_err());
        let c2: Collapser<u16> = Collapser::default();
        let Joined::Leader(f) = c2.join(b"x") else {
            panic!()
        };
        f.end(End::Failed("refused".into()));
        assert!(f.head().await.is_err());
    }
}
