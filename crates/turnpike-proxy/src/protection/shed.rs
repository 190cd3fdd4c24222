//! Adaptive load shedding. Every request holds a [`LoadGuard`] (one atomic increment and
//! one decrement, process-wide) until its response body has been sent. After route match,
//! a request of priority `p` is refused with 503 `overloaded` when the number in flight,
//! itself included, is above `limit(p)`: 80% of `max_in_flight` for `low`, 100% for
//! `normal`, 120% for `high`. When `max_latency` is set and the moving average of response
//! time is above it, `low` is refused as well.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use turnpike_config::model::{LoadShedding, Priority};

use super::table::Clock;
use super::{ProtectionStats, micros};
use crate::error::GatewayError;
use crate::pipeline::ConnCtx;
use crate::snapshot::Snapshot;

/// Weight of a new latency sample in the moving average.
const EWMA_WEIGHT: f64 = 0.1;
/// A latency average older than this is stale: with no samples (everything low shed,
/// or no traffic), one request is let through to measure again.
const STALE_US: u64 = 1_000_000;

/// Precompiled `server.protection.load_shedding`.
#[derive(Debug, Clone)]
pub struct Shedding {
    /// In-flight limits for low, normal and high priority.
    limits: [u64; 3],
    max_latency_us: Option<u64>,
    retry_after: u64,
}

impl Shedding {
    pub(super) fn new(s: &LoadShedding) -> Self {
        let max = u64::from(s.max_in_flight.max(1));
        Self {
            limits: [(max * 4 / 5).max(1), max, max + max / 5],
            max_latency_us: s.max_latency.map(|d| micros(d.as_std())),
            retry_after: s.retry_after.as_std().as_secs().max(1),
        }
    }

    fn limit(&self, p: Priority) -> u64 {
        self.limits[match p {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
        }]
    }
}

/// Process-wide load: requests in flight and the response-time average.
#[derive(Debug, Default)]
pub(super) struct Load {
    in_flight: AtomicU64,
    /// Moving average of response time in microseconds, as f64 bits.
    ewma_us: AtomicU64,
    last_sample_us: AtomicU64,
    shedding: AtomicBool,
}

impl Load {
    pub(super) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Feeds the average. Racing updates may lose a sample, which an average can afford.
    pub(super) fn observe_latency(&self, s: &Shedding, elapsed: Duration, clock: &Clock) {
        if s.max_latency_us.is_none() {
            return;
        }
        let sample = elapsed.as_secs_f64() * 1e6;
        let old = f64::from_bits(self.ewma_us.load(Ordering::Relaxed));
        let new = if old == 0.0 {
            sample
        } else {
            old + (sample - old) * EWMA_WEIGHT
        };
        self.ewma_us.store(new.to_bits(), Ordering::Relaxed);
        self.last_sample_us.store(clock.now_us(), Ordering::Relaxed);
    }

    fn latency_high(&self, s: &Shedding, clock: &Clock) -> bool {
        s.max_latency_us.is_some() && self.latency_high_at(s, clock.now_us())
    }

    fn latency_high_at(&self, s: &Shedding, now_us: u64) -> bool {
        let Some(max) = s.max_latency_us else {
            return false;
        };
        let fresh = now_us.saturating_sub(self.last_sample_us.load(Ordering::Relaxed)) < STALE_US;
        fresh && f64::from_bits(self.ewma_us.load(Ordering::Relaxed)) > max as f64
    }

    /// Logs the moments shedding starts and stops, not every shed request.
    fn set_shedding(&self, on: bool, in_flight: u64) {
        if self.shedding.load(Ordering::Relaxed) != on
            && self.shedding.swap(on, Ordering::Relaxed) != on
        {
            let latency_ms = f64::from_bits(self.ewma_us.load(Ordering::Relaxed)) / 1000.0;
            if on {
                tracing::warn!(in_flight, latency_ms, "overloaded: load shedding started");
            } else {
                tracing::warn!(in_flight, latency_ms, "load shedding stopped");
            }
        }
    }
}

/// Counts one request in flight until dropped, which happens when its response body has
/// been sent (or abandoned).
#[derive(Debug)]
pub struct LoadGuard(Arc<ConnCtx>);

impl LoadGuard {
    /// Starts counting a request; `None` when load shedding is off.
    pub fn enter(snap: &Snapshot, conn: &Arc<ConnCtx>) -> Option<Self> {
        snap.server.protection.shedding.as_ref()?;
        // The connection's own handle: no shared reference count is touched.
        conn.shared
            .protection()
            .load
            .in_flight
            .fetch_add(1, Ordering::Relaxed);
        Some(Self(conn.clone()))
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        let load = &self.0.shared.protection().load;
        load.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The shedding decision for a request of `priority`, made right after route match.
pub(crate) fn shed(
    snap: &Snapshot,
    conn: &ConnCtx,
    priority: Priority,
) -> Result<(), GatewayError> {
    let Some(s) = &snap.server.protection.shedding else {
        return Ok(());
    };
    let protection = conn.shared.protection();
    let load = &protection.load;
    let n = load.in_flight();
    let slow = load.latency_high(s, &protection.clock);
    let over = n > s.limit(priority) || (slow && priority == Priority::Low);
    if over {
        ProtectionStats::add(&protection.stats.requests_shed);
        load.set_shedding(true, n);
        return Err(GatewayError::Overloaded {
            retry_after: s.retry_after,
        });
    }
    if !slow && n <= s.limit(Priority::Low) {
        load.set_shedding(false, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_config::units;

    #[test]
    fn limits_follow_the_documented_rule() {
        let s = Shedding::new(&LoadShedding {
            max_in_flight: 100,
            max_latency: None,
            retry_after: units::Duration::from_secs(1),
        });
        assert_eq!(s.limit(Priority::Low), 80);
        assert_eq!(s.limit(Priority::Normal), 100);
        assert_eq!(s.limit(Priority::High), 120);
    }

    #[test]
    fn latency_above_the_limit_is_high_until_it_goes_stale() {
        let s = Shedding::new(&LoadShedding {
            max_in_flight: 10,
            max_latency: Some(units::Duration::from_millis(100)),
            retry_after: units::Duration::from_secs(1),
        });
        let load = Load::default();
        let clock = Clock::new();
        assert!(!load.latency_high(&s, &clock));
        load.observe_latency(&s, Duration::from_millis(500), &clock);
        assert!(load.latency_high(&s, &clock));
        let later = clock.now_us() + STALE_US;
        assert!(
            !load.latency_high_at(&s, later),
            "no fresh sample: let one through"
        );
        load.observe_latency(&s, Duration::from_millis(1), &clock);
        for _ in 0..40 {
            load.observe_latency(&s, Duration::from_millis(1), &clock);
        }
        assert!(!load.latency_high(&s, &clock), "fast again");
    }
}
