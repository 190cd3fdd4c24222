//! GCRA (generic cell rate algorithm): the arithmetic every rate-limit backend shares.
//!
//! A [`Limit`] of `rate` requests per `period` with `burst` is turned into integer parameters:
//!
//! - emission interval `T = period / rate` (the spacing of requests at the sustained rate);
//! - tolerance `τ = T · (burst − 1)` (how far ahead of schedule a client may run);
//! - capacity `τ + T = T · burst`.
//!
//! Per key the only state is the theoretical arrival time `TAT` (when the key would be
//! fully replenished). For a request of cost `n` at `now`:
//!
//! - `new TAT = max(TAT, now) + n·T`; allow iff `new TAT − now ≤ τ + T`
//!   (for `n = 1` that is the classic `TAT − τ ≤ now`);
//! - `remaining = floor((τ + T − (new TAT − now)) / T)`;
//! - `reset_after = new TAT − now`;
//! - when rejected, nothing is stored and `retry_after = (new TAT − now) − (τ + T)`.
//!
//! All values are integers in one unit (nanoseconds in memory, microseconds in Redis, whose
//! Lua numbers are doubles exact only below 2^53) with saturating math, so there is no float
//! drift. A TAT at or before `now` carries no state: such entries may be dropped.

use std::time::Duration;

use crate::clock::duration_nanos;

/// GCRA limit: `rate` requests per `period`, up to `burst` at once (burst >= 1).
///
/// `rate == 0` refuses every request of non-zero cost; `burst == 0` counts as 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    /// Requests per `period` at the sustained rate.
    pub rate: u64,
    /// The window `rate` refers to.
    pub period: std::time::Duration,
    /// How many requests may arrive at once (the bucket size).
    pub burst: u64,
}

impl Limit {
    /// `rate` per `period` with a burst of `rate` (the usual "N per window" reading).
    pub fn new(rate: u64, period: Duration) -> Self {
        Self {
            rate,
            period,
            burst: rate.max(1),
        }
    }

    /// Same limit with another burst.
    #[must_use]
    pub fn with_burst(self, burst: u64) -> Self {
        Self { burst, ..self }
    }
}

/// One limit's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether this limit alone admits the request. With several pairs the request is admitted
    /// only if every decision is `allowed`; otherwise nothing was consumed anywhere and each
    /// decision describes its limit as it stands.
    pub allowed: bool,
    /// Requests still allowed right now after this one (what `RateLimit: r=` reports).
    pub remaining: u64,
    /// Until the limit is fully replenished (what `t=` / X-RateLimit-Reset report).
    pub reset_after: std::time::Duration,
    /// Zero when allowed; else how long until `cost` would be allowed (Retry-After).
    pub retry_after: std::time::Duration,
}

/// Largest value used in Redis arithmetic: Lua numbers are doubles, exact below 2^53.
pub(crate) const LUA_MAX: u64 = 1 << 52;

/// A limit's integer parameters in one time unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    /// `T`, at least 1 so divisions are defined.
    pub(crate) interval: u64,
    /// `τ + T`; 0 for `rate == 0`, so nothing with a cost fits.
    pub(crate) capacity: u64,
}

impl Params {
    /// Parameters in units of `unit_nanos` nanoseconds, each capped at `max`.
    pub(crate) fn new(limit: &Limit, unit_nanos: u64, max: u64) -> Self {
        let period = (duration_nanos(limit.period) / unit_nanos.max(1)).min(max);
        if limit.rate == 0 {
            return Self {
                interval: period.max(1),
                capacity: 0,
            };
        }
        let interval = (period / limit.rate).max(1);
        let capacity = interval.saturating_mul(limit.burst.max(1)).min(max);
        Self { interval, capacity }
    }
}

/// A decision in integer units, before conversion to [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raw {
    pub(crate) allowed: bool,
    pub(crate) remaining: u64,
    pub(crate) reset_after: u64,
    pub(crate) retry_after: u64,
    /// The TAT to store if the whole check is admitted (the old one when rejected).
    pub(crate) new_tat: u64,
}

impl Raw {
    /// The decision in [`Duration`]s, given the unit in nanoseconds.
    pub(crate) fn decision(&self, unit_nanos: u64) -> Decision {
        Decision {
            allowed: self.allowed,
            remaining: self.remaining,
            reset_after: Duration::from_nanos(self.reset_after.saturating_mul(unit_nanos)),
            retry_after: Duration::from_nanos(self.retry_after.saturating_mul(unit_nanos)),
        }
    }

    /// This pair's view when another pair refused: it admitted, but nothing was consumed.
    pub(crate) fn unconsumed(&self, p: Params, tat: u64, now: u64) -> Self {
        if !self.allowed {
            return *self;
        }
        let ahead = tat.saturating_sub(now);
        Self {
            allowed: true,
            remaining: p.capacity.saturating_sub(ahead) / p.interval,
            reset_after: ahead,
            retry_after: 0,
            new_tat: tat,
        }
    }
}

/// Evaluates `cost` requests against a stored `tat` at `now` (all in the same unit).
pub(crate) fn evaluate(p: Params, tat: u64, now: u64, cost: u64) -> Raw {
    let base = tat.max(now);
    let new_tat = base.saturating_add(cost.saturating_mul(p.interval));
    let diff = new_tat - now;
    if diff <= p.capacity {
        return Raw {
            allowed: true,
            remaining: (p.capacity - diff) / p.interval,
            reset_after: diff,
            retry_after: 0,
            new_tat,
        };
    }
    // Rejected: state unchanged, so report what is left without this request.
    let ahead = base - now;
    Raw {
        allowed: false,
        remaining: p.capacity.saturating_sub(ahead) / p.interval,
        reset_after: ahead,
        retry_after: diff - p.capacity,
        new_tat: tat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn params(rate: u64, secs: u64, burst: u64) -> Params {
        let limit = Limit {
            rate,
            period: Duration::from_secs(secs),
            burst,
        };
        Params::new(&limit, 1, u64::MAX)
    }

    #[test]
    fn burst_then_spacing() {
        let p = params(10, 1, 3); // T = 100 ms, capacity 300 ms
        let now = 1_000 * SEC;
        let mut tat = 0;
        for left in [2, 1, 0] {
            let r = evaluate(p, tat, now, 1);
            assert!(r.allowed);
            assert_eq!(r.remaining, left);
            tat = r.new_tat;
        }
        let r = evaluate(p, tat, now, 1);
        assert!(!r.allowed);
        assert_eq!(r.retry_after, SEC / 10);
        assert_eq!(r.reset_after, 3 * SEC / 10);
        assert_eq!(r.new_tat, tat);
        // One interval later exactly one more fits.
        let r = evaluate(p, tat, now + SEC / 10, 1);
        assert!(r.allowed);
        assert_eq!(r.remaining, 0);
    }

    #[test]
    fn cost_larger_than_remaining_reports_what_is_left() {
        let p = params(10, 1, 5);
        let now = 50 * SEC;
        let r = evaluate(p, 0, now, 3);
        assert!(r.allowed);
        assert_eq!(r.remaining, 2);
        let r2 = evaluate(p, r.new_tat, now, 3);
        assert!(!r2.allowed);
        assert_eq!(r2.remaining, 2);
        assert_eq!(r2.retry_after, SEC / 10);
    }

    #[test]
    fn zero_rate_refuses_and_huge_values_saturate() {
        let p = params(0, 1, 5);
        assert!(!evaluate(p, 0, 10, 1).allowed);
        let p = params(1, u64::MAX / SEC, u64::MAX);
        // Saturates instead of overflowing (a 585-year capacity admits everything).
        let r = evaluate(p, u64::MAX - 1, 5, u64::MAX);
        assert_eq!(r.reset_after, u64::MAX - 5);
    }

    #[test]
    fn unconsumed_view_when_another_pair_refused() {
        let p = params(10, 1, 3);
        let r = evaluate(p, 0, SEC, 1);
        let view = r.unconsumed(p, 0, SEC);
        assert!(view.allowed);
        assert_eq!(view.remaining, 3);
        assert_eq!(view.reset_after, 0);
    }

    #[test]
    fn microsecond_params_stay_below_lua_limit() {
        let limit = Limit::new(1000, Duration::from_secs(3600));
        let p = Params::new(&limit, 1_000, LUA_MAX);
        assert_eq!(p.interval, 3_600_000);
        assert_eq!(p.capacity, 3_600_000_000);
        let huge = Limit::new(1, Duration::from_secs(u64::MAX / 2)).with_burst(u64::MAX);
        assert!(Params::new(&huge, 1_000, LUA_MAX).capacity <= LUA_MAX);
    }
}
