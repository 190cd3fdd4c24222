//! A bounded, sharded map from client IP to a small per-IP record, shared by every worker.
//!
//! Each shard is a `Mutex<HashMap>` held only for a lookup or an update, never across an
//! `.await`. Memory is bounded: when a shard passes its share of the capacity it drops the
//! records that have expired, and if that is not enough, records that can be forgotten
//! (the caller says which), so a flood of distinct addresses cannot grow it without end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use foldhash::fast::RandomState;

/// Shards: enough that two workers rarely meet on one lock.
const SHARDS: usize = 64;

/// Microseconds on a process-local monotonic clock; cheap to store in a record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
        }
    }

    /// Microseconds since the clock was made.
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// What a per-IP record tells the table about itself.
pub(crate) trait Record: Default {
    /// Nothing would be lost by dropping this record at `now_us`.
    fn expired(&self, now_us: u64) -> bool;
    /// The record may be dropped under memory pressure, losing some state.
    fn evictable(&self) -> bool;
}

/// The sharded map; `capacity` is the number of records kept before evicting.
#[derive(Debug)]
pub(crate) struct IpTable<R> {
    shards: Box<[Mutex<HashMap<IpAddr, R, RandomState>>]>,
    per_shard: usize,
    hasher: RandomState,
}

impl<R: Record> IpTable<R> {
    pub(crate) fn new(capacity: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(HashMap::with_hasher(RandomState::default())))
            .collect();
        Self {
            shards,
            per_shard: (capacity / SHARDS).max(16),
            hasher: RandomState::default(),
        }
    }

    fn shard(&self, ip: &IpAddr) -> MutexGuard<'_, HashMap<IpAddr, R, RandomState>> {
        use std::hash::BuildHasher;
        let i = (self.hasher.hash_one(ip) as usize) % self.shards.len();
        // A panic while holding a shard leaves plain counters behind; they stay usable.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the record of `ip`, creating it if needed.
    pub(crate) fn with<T>(&self, ip: IpAddr, now_us: u64, f: impl FnOnce(&mut R) -> T) -> T {
        let mut shard = self.shard(&ip);
        if !shard.contains_key(&ip) && shard.len() >= self.per_shard {
            self.make_room(&mut shard, now_us);
        }
        f(shard.entry(ip).or_default())
    }

    /// Runs `f` on the record of `ip` if there is one; `f` returns whether to keep it.
    pub(crate) fn update<T>(&self, ip: IpAddr, f: impl FnOnce(&mut R) -> (T, bool)) -> Option<T> {
        let mut shard = self.shard(&ip);
        let record = shard.get_mut(&ip)?;
        let (out, keep) = f(record);
        if !keep {
            shard.remove(&ip);
        }
        Some(out)
    }

    /// Reads the record of `ip` without creating one.
    pub(crate) fn get<T>(&self, ip: IpAddr, f: impl FnOnce(&R) -> T) -> Option<T> {
        self.shard(&ip).get(&ip).map(f)
    }

    /// Drops expired records; if the shard is still too full, drops forgettable ones, and
    /// as a last resort any, until a tenth of it is free, so the sweep is paid for by many
    /// inserts and the shard never grows past its share.
    fn make_room(&self, shard: &mut HashMap<IpAddr, R, RandomState>, now_us: u64) {
        shard.retain(|_, r| !r.expired(now_us));
        let target = self.per_shard - self.per_shard / 10;
        for only_evictable in [true, false] {
            let mut excess = shard.len().saturating_sub(target);
            if excess == 0 {
                return;
            }
            if !only_evictable {
                // Only under a flood of live records; debug, as it can repeat often.
                tracing::debug!(
                    records = shard.len(),
                    "protection table full of live records: forgetting some"
                );
            }
            shard.retain(|_, r| {
                let drop = excess > 0 && (!only_evictable || r.evictable());
                excess -= usize::from(drop);
                !drop
            });
        }
    }

    /// Records held right now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Hit {
        until: u64,
        pinned: bool,
    }

    impl Record for Hit {
        fn expired(&self, now_us: u64) -> bool {
            !self.pinned && self.until <= now_us
        }
        fn evictable(&self) -> bool {
            !self.pinned
        }
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn a_million_distinct_ips_stay_bounded() {
        let table: IpTable<Hit> = IpTable::new(10_000);
        for n in 0..1_000_000u32 {
            // Every record is still live, some even pinned: only eviction keeps it small.
            table.with(ip(n), 0, |r| {
                r.until = u64::MAX;
                r.pinned = n % 3 == 0;
            });
        }
        let cap = 64 * (10_000 / 64);
        assert!(table.len() <= cap, "{} records", table.len());
    }

    #[test]
    fn expired_records_go_first_and_pinned_ones_stay() {
        let table: IpTable<Hit> = IpTable::new(64 * 16);
        table.with(ip(7), 0, |r| r.pinned = true);
        for n in 100..200_000u32 {
            table.with(ip(n), n.into(), |r| r.until = u64::from(n) + 5);
        }
        assert_eq!(table.get(ip(7), |r| r.pinned), Some(true));
        assert!(table.len() <= 64 * 16);
    }
}
