//! In-process GCRA store: a sharded, bounded map from a key's hash to its TAT.
//!
//! Keys are hashed (foldhash, random per-process seed, so clients cannot aim at one shard) with
//! the limit's period, so one key under two limits of different periods keeps two counters.
//! A 64-bit hash stands for the key: two keys colliding would share a counter, which at a
//! million live keys happens with odds of about 1 in 30 million.
//!
//! A check locks the shards of all its pairs in ascending order (deduplicated), so checks
//! never deadlock and all-or-nothing holds across pairs. Each shard holds at most
//! `max_keys / shards` entries: when full it first drops entries whose TAT has passed (they
//! carry no state), then evicts the eighth of its entries with the smallest TAT (closest to
//! replenished, so least is lost); the cost is amortised over the next inserts.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, PoisonError};

use smallvec::SmallVec;

use crate::clock::{duration_nanos, now_nanos};
use crate::gcra::{self, Decision, Limit, Params, Raw};
use crate::limiter::{Decisions, LimiterStats};

/// Most shards; fewer for small `max_keys` so the per-shard bound stays meaningful.
const MAX_SHARDS: usize = 64;

/// Keys are already hashed: the map uses the hash as is.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; fold anything else rather than panic.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by precomputed 64-bit hashes.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[derive(Debug, Default)]
struct Shard {
    /// Key hash → TAT in nanoseconds since process start.
    tats: IdMap<u64>,
    /// Reused buffer for picking eviction victims without allocating each time.
    scratch: Vec<u64>,
}

impl Shard {
    /// Stores `tat` for `hash`, making room first if the shard is full.
    fn store(&mut self, hash: u64, tat: u64, now: u64, cap: usize, stats: &LimiterStats) {
        if let Some(slot) = self.tats.get_mut(&hash) {
            *slot = tat;
            return;
        }
        if self.tats.len() >= cap {
            self.make_room(now, cap, stats);
        }
        self.tats.insert(hash, tat);
        stats.memory_keys.fetch_add(1, Ordering::Relaxed);
    }

    fn make_room(&mut self, now: u64, cap: usize, stats: &LimiterStats) {
        let before = self.tats.len();
        self.tats.retain(|_, tat| *tat > now);
        let mut dropped = before - self.tats.len();
        if self.tats.len() >= cap {
            let evicted = self.evict_smallest(self.tats.len().div_ceil(8));
            stats.evictions.fetch_add(evicted as u64, Ordering::Relaxed);
            dropped += evicted;
        }
        stats
            .memory_keys
            .fetch_sub(dropped as u64, Ordering::Relaxed);
    }

    /// Removes `count` entries with the smallest TATs; returns how many went.
    fn evict_smallest(&mut self, count: usize) -> usize {
        if count == 0 || self.tats.is_empty() {
            return 0;
        }
        self.scratch.clear();
        self.scratch.extend(self.tats.values().copied());
        let idx = (count - 1).min(self.scratch.len() - 1);
        let (_, threshold, _) = self.scratch.select_nth_unstable(idx);
        let threshold = *threshold;
        let mut left = count;
        self.tats.retain(|_, tat| {
            if left > 0 && *tat <= threshold {
                left -= 1;
                false
            } else {
                true
            }
        });
        count - left
    }
}

/// The sharded in-memory GCRA store.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    max_keys: usize,
    hasher: foldhash::fast::RandomState,
}

/// One pair prepared for evaluation.
#[derive(Clone, Copy)]
struct Prepared {
    hash: u64,
    shard: usize,
    params: Params,
}

impl MemoryStore {
    /// A store holding at most `max_keys` keys (at least 1).
    pub(crate) fn new(max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        // At least 16 keys per shard, at most 64 shards, a power of two for cheap indexing.
        let wanted = (max_keys / 16).clamp(1, MAX_SHARDS);
        let shards = 1usize << wanted.ilog2();
        let per_shard = (max_keys / shards).max(1);
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
            max_keys,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn prepare(&self, key: &[u8], limit: &Limit) -> Prepared {
        let hash = self.hasher.hash_one((key, duration_nanos(limit.period)));
        // Middle bits pick the shard: the map uses the low bits for buckets and the top
        // bits for its tags, which must keep varying inside a shard.
        let shard = ((hash >> 32) as usize) & (self.shards.len() - 1);
        Prepared {
            hash,
            shard,
            params: Params::new(limit, 1, u64::MAX),
        }
    }

    fn lock(&self, idx: usize) -> MutexGuard<'_, Shard> {
        // A panic elsewhere cannot leave a TAT map inconsistent: keep using it.
        self.shards[idx]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// GCRA check of all pairs for `cost`, consuming from all only if all allow.
    pub(crate) fn check(
        &self,
        pairs: &[(&[u8], Limit)],
        cost: u64,
        stats: &LimiterStats,
    ) -> Decisions {
        match pairs {
            [(key, limit)] => self.check_one(key, limit, cost, stats),
            _ => self.check_many(pairs, cost, stats),
        }
    }

    fn check_many(&self, pairs: &[(&[u8], Limit)], cost: u64, stats: &LimiterStats) -> Decisions {
        let prepared: SmallVec<[Prepared; 4]> =
            pairs.iter().map(|(k, l)| self.prepare(k, l)).collect();
        let mut order: SmallVec<[usize; 4]> = prepared.iter().map(|p| p.shard).collect();
        order.sort_unstable();
        order.dedup();
        let mut guards: SmallVec<[MutexGuard<'_, Shard>; 4]> =
            order.iter().map(|&i| self.lock(i)).collect();
        // Read the clock under the locks so no TAT in these shards is from our future.
        let now = now_nanos();

        // TATs decided earlier in this check, so a key listed twice is charged twice.
        let mut pending: SmallVec<[(u64, u64); 4]> = SmallVec::new();
        let mut evaluated: SmallVec<[(Raw, u64); 4]> = SmallVec::new();
        let mut all = true;
        for p in &prepared {
            let g = order.binary_search(&p.shard).unwrap_or(0);
            let tat = pending
                .iter()
                .rev()
                .find(|(h, _)| *h == p.hash)
                .map(|(_, t)| *t)
                .or_else(|| guards[g].tats.get(&p.hash).copied())
                .unwrap_or(0);
            let raw = gcra::evaluate(p.params, tat, now, cost);
            all &= raw.allowed;
            if raw.allowed {
                pending.push((p.hash, raw.new_tat));
            }
            evaluated.push((raw, tat));
        }

        if all && cost > 0 {
            for p in &prepared {
                let g = order.binary_search(&p.shard).unwrap_or(0);
                if let Some(&(_, tat)) = pending.iter().rev().find(|(h, _)| *h == p.hash) {
                    guards[g].store(p.hash, tat, now, self.per_shard, stats);
                }
            }
        }
        drop(guards);
        finish(&prepared, &evaluated, all, now)
    }

    /// [`Self::check`] of a single pair, the common case: one lock, and one map probe for a
    /// key that is already counted, without the bookkeeping several pairs need.
    fn check_one(&self, key: &[u8], limit: &Limit, cost: u64, stats: &LimiterStats) -> Decisions {
        let p = self.prepare(key, limit);
        let mut shard = self.lock(p.shard);
        // Read the clock under the lock so no TAT in this shard is from our future.
        let now = now_nanos();
        let slot = shard.tats.get_mut(&p.hash);
        let tat = slot.as_deref().copied().unwrap_or(0);
        let raw = gcra::evaluate(p.params, tat, now, cost);
        if raw.allowed && cost > 0 {
            match slot {
                Some(slot) => *slot = raw.new_tat,
                None => shard.store(p.hash, raw.new_tat, now, self.per_shard, stats),
            }
        }
        drop(shard);
        finish(&[p], &[(raw, tat)], raw.allowed, now)
    }

    /// The `max_keys` this store was built for.
    pub(crate) fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// The most keys this store holds.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }
}

fn finish(prepared: &[Prepared], evaluated: &[(Raw, u64)], all: bool, now: u64) -> Decisions {
    prepared
        .iter()
        .zip(evaluated)
        .map(|(p, (raw, tat))| -> Decision {
            if all {
                raw.decision(1)
            } else {
                raw.unconsumed(p.params, *tat, now).decision(1)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn hour(rate: u64) -> Limit {
        Limit::new(rate, Duration::from_secs(3600))
    }

    #[test]
    fn all_or_nothing_across_pairs() {
        let store = MemoryStore::new(1000);
        let stats = LimiterStats::default();
        let tight = hour(2);
        let loose = hour(100);
        let pairs: [(&[u8], Limit); 2] = [(b"loose", loose), (b"tight", tight)];
        for _ in 0..2 {
            assert!(store.check(&pairs, 1, &stats).iter().all(|d| d.allowed));
        }
        let d = store.check(&pairs, 1, &stats);
        assert!(d[0].allowed && !d[1].allowed);
        // The loose limit was not charged for the refused request.
        assert_eq!(d[0].remaining, 98);
        let d = store.check(&[(b"loose".as_slice(), loose)], 1, &stats);
        assert_eq!(d[0].remaining, 97);
    }

    #[test]
    fn duplicate_key_is_charged_per_listing() {
        let store = MemoryStore::new(1000);
        let stats = LimiterStats::default();
        let l = hour(3);
        let pairs: [(&[u8], Limit); 2] = [(b"k", l), (b"k", l)];
        let d = store.check(&pairs, 1, &stats);
        assert_eq!((d[0].remaining, d[1].remaining), (2, 1));
        let d = store.check(&pairs, 1, &stats);
        assert!(d[0].allowed && !d[1].allowed);
    }

    #[test]
    fn same_key_different_periods_are_separate() {
        let store = MemoryStore::new(1000);
        let stats = LimiterStats::default();
        let per_sec = Limit::new(1, Duration::from_secs(1));
        let d = store.check(&[(b"k".as_slice(), per_sec), (b"k", hour(5))], 1, &stats);
        assert!(d.iter().all(|d| d.allowed));
        assert_eq!(d[1].remaining, 4);
    }

    #[test]
    fn a_single_pair_is_answered_as_the_general_path_answers_it() {
        let (one, many) = (MemoryStore::new(1000), MemoryStore::new(1000));
        let stats = LimiterStats::default();
        let l = hour(3);
        for cost in [1, 0, 2, 1, 1, 5, 0] {
            for key in [b"a".as_slice(), b"b"] {
                let d1 = one.check(&[(key, l)], cost, &stats);
                let d2 = many.check_many(&[(key, l)], cost, &stats);
                assert_eq!(
                    (d1[0].allowed, d1[0].remaining),
                    (d2[0].allowed, d2[0].remaining)
                );
                assert_eq!(d1.len(), 1);
            }
        }
    }

    #[test]
    fn capacity_never_exceeds_max_keys() {
        for max in [1, 5, 63, 64, 100, 1000, 10_000, 1_000_003] {
            let s = MemoryStore::new(max);
            assert!(s.capacity() <= max && s.capacity() >= max / 2, "{max}");
        }
    }
}
