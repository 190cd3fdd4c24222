//! Concurrency limits: at most `limit` requests in flight per key, optionally with a FIFO
//! queue of waiters. Local to a node: each gateway node counts its own in-flight requests
//! (a cluster-wide count would cost a Redis round trip per request *and* per response, and
//! leak slots whenever a node dies).
//!
//! Keys are 64-bit hashes (foldhash, random seed), so a permit carries no copy of its key.
//! An entry exists only while it has holders or waiters, which bounds memory by the number
//! of requests in flight.

use std::collections::VecDeque;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::memory::IdMap;

const SHARDS: usize = 16;

/// How long and how many requests may wait for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queue {
    /// Waiters beyond this are refused at once.
    pub max_waiting: u32,
    /// A waiter still without a slot after this is refused.
    pub timeout: Duration,
}

/// No slot: full with no queue, queue full, or waited too long (`waited` tells which side).
#[derive(Debug)]
pub struct Busy {
    /// True when the request queued and timed out; false when refused at once.
    pub waited: bool,
}

#[derive(Debug, Default)]
struct Entry {
    in_flight: u32,
    limit: u32,
    /// FIFO of waiters: id and the channel that hands them a slot.
    waiters: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl Entry {
    /// Hands free slots to waiters, oldest first; a granted slot counts as in flight at once.
    fn admit(&mut self) {
        while self.in_flight < self.limit {
            let Some((_, tx)) = self.waiters.pop_front() else {
                return;
            };
            if tx.send(()).is_ok() {
                self.in_flight += 1;
            }
        }
    }

    fn idle(&self) -> bool {
        self.in_flight == 0 && self.waiters.is_empty()
    }
}

#[derive(Debug)]
struct Inner {
    shards: Box<[Mutex<IdMap<Entry>>]>,
    hasher: foldhash::fast::RandomState,
    next_waiter: AtomicU64,
}

impl Inner {
    fn lock(&self, shard: usize) -> MutexGuard<'_, IdMap<Entry>> {
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives one slot back: to the next waiter, or frees it (and the entry when idle).
    fn release(&self, shard: usize, hash: u64) {
        let mut map = self.lock(shard);
        if let Some(entry) = map.get_mut(&hash) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.admit();
            if entry.idle() {
                map.remove(&hash);
            }
        }
    }
}

/// Per-key in-flight limits; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct Concurrency {
    inner: Arc<Inner>,
}

impl Default for Concurrency {
    fn default() -> Self {
        Self::new()
    }
}

/// An in-flight slot. Dropping releases the slot (and wakes the next waiter). `Send +
/// 'static`, so it can be moved into a response body and released when the body ends.
pub struct Permit {
    inner: Arc<Inner>,
    shard: usize,
    hash: u64,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("hash", &self.hash).finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.inner.release(self.shard, self.hash);
    }
}

/// A queued request; dropping it (timeout, or the request future cancelled) leaves the
/// queue, or gives back a slot granted but not yet taken.
struct Waiter {
    inner: Arc<Inner>,
    shard: usize,
    hash: u64,
    id: u64,
    rx: oneshot::Receiver<()>,
    granted: bool,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        let mut map = self.inner.lock(self.shard);
        let Some(entry) = map.get_mut(&self.hash) else {
            return;
        };
        if let Some(pos) = entry.waiters.iter().position(|(id, _)| *id == self.id) {
            entry.waiters.remove(pos);
        } else if self.rx.try_recv().is_ok() {
            // Granted while being cancelled: pass the slot on rather than leak it.
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.admit();
        }
        if entry.idle() {
            map.remove(&self.hash);
        }
    }
}

impl Concurrency {
    /// No limits held yet.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                hasher: foldhash::fast::RandomState::default(),
                next_waiter: AtomicU64::new(1),
            }),
        }
    }

    fn locate(&self, key: &[u8]) -> (usize, u64) {
        let hash = self.inner.hasher.hash_one(key);
        (((hash >> 32) as usize) % SHARDS, hash)
    }

    /// An in-flight slot for `key` (limit >= 1); with `queue`, waits up to its timeout (FIFO)
    /// for a slot instead of refusing at once. The latest `limit` given for a key applies.
    pub async fn acquire(
        &self,
        key: &[u8],
        limit: u32,
        queue: Option<Queue>,
    ) -> Result<Permit, Busy> {
        let (shard, hash) = self.locate(key);
        let permit = || Permit {
            inner: Arc::clone(&self.inner),
            shard,
            hash,
        };
        let (q, id, rx) = {
            let mut map = self.inner.lock(shard);
            let entry = map.entry(hash).or_default();
            entry.limit = limit.max(1);
            // A raised limit frees slots for those already waiting, before newcomers.
            entry.admit();
            if entry.in_flight < entry.limit && entry.waiters.is_empty() {
                entry.in_flight += 1;
                return Ok(permit());
            }
            let q = match queue {
                Some(q) if entry.waiters.len() < q.max_waiting as usize => q,
                _ => {
                    if entry.idle() {
                        map.remove(&hash);
                    }
                    return Err(Busy { waited: false });
                }
            };
            let id = self.inner.next_waiter.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            entry.waiters.push_back((id, tx));
            (q, id, rx)
        };
        let mut waiter = Waiter {
            inner: Arc::clone(&self.inner),
            shard,
            hash,
            id,
            rx,
            granted: false,
        };
        match tokio::time::timeout(q.timeout, &mut waiter.rx).await {
            Ok(Ok(())) => {
                waiter.granted = true;
                Ok(permit())
            }
            _ => Err(Busy { waited: true }),
        }
    }

    /// Requests holding a slot for `key` now.
    pub fn in_flight(&self, key: &[u8]) -> u32 {
        let (shard, hash) = self.locate(key);
        self.inner.lock(shard).get(&hash).map_or(0, |e| e.in_flight)
    }

    /// Keys with holders or waiters now (entries are dropped when idle).
    pub fn tracked_keys(&self) -> usize {
        (0..SHARDS).map(|s| self.inner.lock(s).len()).sum()
    }
}
