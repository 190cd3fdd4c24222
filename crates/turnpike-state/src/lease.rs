//! Local fast path of the Redis limiter: cells reserved in Redis ahead of use.
//!
//! When Redis reports a key far below its limit (at least two batches left), the script
//! reserves a batch of extra cells (0.5 % of the burst) for this node, which then admits that
//! many requests without a round trip. Reserved cells are charged in Redis at reservation
//! time, which under GCRA is never more lenient than charging them later, so batching never
//! admits more than the limit. What it can cost is under-admission: cells a node holds but
//! does not use are unavailable to other nodes, at most one batch per node per key (only one
//! reservation per key is in flight per node). Leftover cells are refunded by the node's next
//! round trip for that key (the script moves the TAT back, never before now). With two nodes
//! that is at most 1 % of the burst; near the limit no batch is granted and every request
//! asks Redis, so the limit itself stays exact.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use smallvec::SmallVec;

use crate::clock::duration_nanos;
use crate::gcra::{Decision, Limit};
use crate::limiter::Decisions;
use crate::memory::IdMap;

/// Share of the burst reserved per batch, in per mille.
const BATCH_PERMILLE: u64 = 5;
/// How long reserved cells are served locally before the next round trip refunds them.
const LEASE_FOR: Duration = Duration::from_secs(1);
const SHARDS: usize = 16;

/// The batch to reserve for `limit`; 0 when a batch would be under two cells.
pub(crate) fn batch_for(limit: &Limit) -> u64 {
    if limit.rate == 0 {
        return 0;
    }
    let batch = limit.burst.max(1).saturating_mul(BATCH_PERMILLE) / 1000;
    if batch < 2 { 0 } else { batch }
}

#[derive(Debug, Default, Clone, Copy)]
struct Lease {
    /// Reserved cells not used yet.
    cells: u64,
    /// Process-clock nanos after which cells are no longer served locally.
    expires: u64,
    /// A reservation for this key is in flight until then (one at a time per node).
    reserving_until: u64,
    /// Redis' remaining at the reservation, our cells excluded.
    remaining: u64,
    /// Process-clock nanos when the key was fully replenished as of the reservation.
    reset_at: u64,
}

/// Per-key leases, sharded and bounded like the memory store.
#[derive(Debug)]
pub(crate) struct Leases {
    shards: Box<[Mutex<IdMap<Lease>>]>,
    per_shard: usize,
}

impl Leases {
    pub(crate) fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: (max_keys / SHARDS).max(1),
        }
    }

    fn shard_of(hash: u64) -> usize {
        ((hash >> 32) as usize) % SHARDS
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, IdMap<Lease>> {
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves `cost` from the leases of all `hashes` (distinct) if every one has enough
    /// live cells; all-or-nothing like the script.
    pub(crate) fn try_serve(&self, hashes: &[u64], cost: u64, now: u64) -> Option<Decisions> {
        let mut order: SmallVec<[usize; 4]> = hashes.iter().map(|h| Self::shard_of(*h)).collect();
        order.sort_unstable();
        order.dedup();
        let mut guards: SmallVec<[MutexGuard<'_, IdMap<Lease>>; 4]> =
            order.iter().map(|&s| self.lock(s)).collect();
        let guard_of = |h: u64| order.binary_search(&Self::shard_of(h)).unwrap_or(0);
        let serves = |l: &Lease| l.expires > now && l.cells >= cost && cost > 0;
        if !hashes
            .iter()
            .all(|h| guards[guard_of(*h)].get(h).is_some_and(serves))
        {
            return None;
        }
        let mut out = Decisions::new();
        for h in hashes {
            let lease = guards[guard_of(*h)].get_mut(h)?;
            lease.cells -= cost;
            out.push(Decision {
                allowed: true,
                remaining: lease.remaining.saturating_add(lease.cells),
                reset_after: Duration::from_nanos(lease.reset_at.saturating_sub(now)),
                retry_after: Duration::ZERO,
            });
        }
        Some(out)
    }

    /// Before a round trip: takes every unused cell of `hash` (to refund) and says how many
    /// to reserve (`batch`, or 0 while another reservation is in flight).
    pub(crate) fn begin(&self, hash: u64, batch: u64, now: u64, timeout: Duration) -> (u64, u64) {
        let mut map = self.lock(Self::shard_of(hash));
        let refund = map
            .get_mut(&hash)
            .map_or(0, |l| std::mem::take(&mut l.cells));
        if batch == 0 {
            return (refund, 0);
        }
        if !map.contains_key(&hash) && map.len() >= self.per_shard {
            // Full: forget leases with nothing in flight (their cells, if any, are lost,
            // which only under-admits, by at most one batch per key).
            map.retain(|_, l| (l.cells > 0 && l.expires > now) || l.reserving_until > now);
            if map.len() >= self.per_shard {
                return (refund, 0);
            }
        }
        let lease = map.entry(hash).or_default();
        if lease.reserving_until > now {
            return (refund, 0);
        }
        lease.reserving_until = now.saturating_add(duration_nanos(timeout));
        (refund, batch)
    }

    /// After a successful round trip that asked for a batch: stores what was reserved.
    pub(crate) fn finish(&self, hash: u64, reserved: u64, d: &Decision, now: u64) {
        let mut map = self.lock(Self::shard_of(hash));
        let Some(lease) = map.get_mut(&hash) else {
            return;
        };
        lease.reserving_until = 0;
        if reserved == 0 {
            return;
        }
        lease.cells = lease.cells.saturating_add(reserved);
        lease.expires = now.saturating_add(duration_nanos(LEASE_FOR));
        lease.remaining = d.remaining;
        lease.reset_at = now.saturating_add(duration_nanos(d.reset_after));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(remaining: u64) -> Decision {
        Decision {
            allowed: true,
            remaining,
            reset_after: Duration::from_secs(10),
            retry_after: Duration::ZERO,
        }
    }

    #[test]
    fn batch_is_half_a_percent_of_burst() {
        let l = Limit::new(1000, Duration::from_secs(3600));
        assert_eq!(batch_for(&l), 5);
        assert_eq!(batch_for(&l.with_burst(100)), 0);
        assert_eq!(batch_for(&Limit::new(0, Duration::from_secs(1))), 0);
    }

    #[test]
    fn one_reservation_in_flight_and_cells_served_then_refunded() {
        let leases = Leases::new(100);
        let t = Duration::from_millis(100);
        assert_eq!(leases.begin(7, 5, 1, t), (0, 5));
        assert_eq!(
            leases.begin(7, 5, 2, t),
            (0, 0),
            "second reservation while in flight"
        );
        leases.finish(7, 5, &decision(50), 3);
        let d = leases.try_serve(&[7], 2, 4).unwrap_or_default();
        assert_eq!(d[0].remaining, 53);
        assert!(leases.try_serve(&[7], 4, 4).is_none(), "not enough cells");
        assert!(
            leases.try_serve(&[7, 8], 1, 4).is_none(),
            "all pairs need a lease"
        );
        assert_eq!(leases.begin(7, 5, 5, t), (3, 5));
        let expired = duration_nanos(LEASE_FOR) + 10;
        leases.finish(7, 5, &decision(50), 6);
        assert!(leases.try_serve(&[7], 1, expired).is_none());
    }
}
