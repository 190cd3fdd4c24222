//! # turnpike-state: shared counters, in memory or in Redis
//!
//! The gateway's traffic-control state, behind three small types:
//!
//! - [`Limiter`]: GCRA rate limits ([`Limit`]: `rate` per `period`, `burst`). One `check`
//!   takes every (key, limit) pair that applies to a request and admits it only if all allow
//!   (all-or-nothing), returning one [`Decision`] per pair (inline [`Decisions`], no heap for
//!   up to four pairs). [`Limiter::memory`] keeps bounded, sharded counters in this process;
//!   [`Limiter::redis`] shares them between nodes through one atomic Lua script (Redis `TIME`
//!   is the clock), with a per-command timeout, a short back-off after failures, background
//!   reconnection, and either this node's memory ([`FailMode::Open`]) or an error
//!   ([`FailMode::Closed`]) while Redis is away.
//! - [`Quotas`]: counters per calendar day or month in a time zone, persisted to a JSON file
//!   (memory) or kept in Redis (sharing the limiter's connection).
//! - [`Concurrency`]: in-flight limits per key with an optional FIFO queue; always local to
//!   the node. A [`Permit`] releases its slot when dropped.
//!
//! Everything is `Send + Sync` and meant to be shared in an `Arc` by several single-threaded
//! runtimes at once. No lock is held across an `.await`.
//!
//! ## Wiring it in
//!
//! - Build a Redis limiter with the *control* runtime's handle: the connection task and the
//!   redis driver task live there for the limiter's lifetime (that runtime needs IO and time
//!   enabled and must keep running). The per-core runtimes that await `check` need only their
//!   time driver (command timeouts); nothing is spawned on them.
//! - The limiter connects in the background: until it has, and for about a second after a
//!   broken connection (or three timeouts in a row), checks take the fail-mode path at once.
//!   [`Limiter::is_ready`] / [`Limiter::wait_ready`] tell when Redis answers (for `/readyz`,
//!   or tests).
//! - Memory quotas persist only if [`Quotas::spawn_persister`] runs (on the control runtime);
//!   call [`Quotas::flush`] at shutdown for the last second's changes.
//! - Redis keys: `{prefix}rl:{key}@{period_ms}` (rate limits) and `{prefix}q:{key}|{period}`
//!   (quotas). A check's keys go to one script call, so Redis Cluster is not supported.
//! - The Redis limiter batches by default (see [`Limiter::with_batching`]): within 1 % of a
//!   limit across two nodes, never above it; `with_batching(false)` makes every check exact.

mod clock;
mod concurrency;
mod error;
mod gcra;
mod lease;
mod limiter;
mod memory;
pub mod objects;
pub mod objects_redis;
mod quota;
mod redis_conn;

pub use concurrency::{Busy, Concurrency, Permit, Queue};
pub use error::StateError;
pub use gcra::{Decision, Limit};
pub use limiter::{Decisions, FailMode, Limiter, LimiterStats, RedisOptions, StatsSnapshot};
pub use quota::{QuotaDecision, QuotaPeriod, QuotaWindow, Quotas};

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send_static<T: Send + 'static>(_: &T) {}

    /// The gateway shares these across runtimes and moves permits into response bodies.
    #[test]
    fn shared_types_are_send_and_sync() {
        let limiter = Limiter::memory(10);
        send_sync(&limiter);
        send_sync(&Concurrency::new());
        send_sync(&Quotas::memory(None).unwrap_or_else(|e| panic!("{e}")));
        let pairs: [(&[u8], Limit); 0] = [];
        let check = limiter.check(&pairs, 1, FailMode::Open);
        // Futures are Send too, so callers may also spawn them on a multi-thread runtime.
        fn send<T: Send>(_: &T) {}
        send(&check);
        let quotas = Quotas::memory(None).unwrap_or_else(|e| panic!("{e}"));
        let tz = jiff::tz::TimeZone::UTC;
        send(&quotas.charge("k", 1, QuotaPeriod::Day, &tz, 1, FailMode::Open));
        let conc = Concurrency::new();
        let acquire = conc.acquire(b"k", 1, None);
        send(&acquire);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let permit = rt.block_on(acquire).unwrap_or_else(|e| panic!("{e:?}"));
        send_static(&permit);
    }
}
