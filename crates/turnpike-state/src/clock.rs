//! Process-relative monotonic clock in integer nanoseconds, shared by the memory backends.
//!
//! Counters store instants as `u64` nanoseconds since a process-wide start `Instant`, so they
//! never go backwards when the wall clock is stepped, and fit an atomic or a map value.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static START: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process; at least 1, so 0 can mean "no state".
pub(crate) fn now_nanos() -> u64 {
    let start = START.get_or_init(Instant::now);
    // u64 nanoseconds last 584 years; saturate rather than wrap beyond that.
    u64::try_from(start.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// A duration as `u64` nanoseconds, saturating at ~584 years.
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
