//! Latency histograms with fixed buckets, kept as plain atomics.
//!
//! Buckets are stored non-cumulative (one add per observation) and summed into the
//! cumulative `le` form only when rendered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (0.5 ms to 10 s); `+Inf` follows.
pub const BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// The same bounds as Prometheus `le` label values, in seconds.
pub const BOUNDS_LABEL: [&str; 14] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0",
    "2.5", "5.0", "10.0",
];

/// One histogram's cells.
#[derive(Debug, Default)]
pub struct Cells {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Cells {
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|b| *b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Adds this shard's counts into `into`.
    pub(crate) fn add_to(&self, into: &mut Totals) {
        for (t, b) in into.buckets.iter_mut().zip(&self.buckets) {
            *t += b.load(Ordering::Relaxed);
        }
        into.sum_us += self.sum_us.load(Ordering::Relaxed);
    }
}

/// A histogram summed over shards, ready to render.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub buckets: [u64; BOUNDS_US.len() + 1],
    pub sum_us: u64,
}

impl Totals {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}
