//! Retry budget: retries may add at most `percent` of recent traffic on top of a small
//! per-second floor, so retries cannot multiply load on an upstream that is already down.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::now_ms;

/// Tokens are hundredths of a retry; each request deposits `percent`, each retry costs 100.
#[derive(Debug)]
pub struct RetryBudget {
    percent: i64,
    floor_per_second: i64,
    cap: i64,
    tokens: AtomicI64,
    last_refill_sec: AtomicU64,
}

impl RetryBudget {
    pub fn new(percent: u32, min_per_second: u32) -> Self {
        let floor = i64::from(min_per_second) * 100;
        Self {
            percent: i64::from(percent),
            floor_per_second: floor,
            // At most ten seconds' worth can be saved up.
            cap: (floor * 10).max(1000),
            tokens: AtomicI64::new(floor),
            last_refill_sec: AtomicU64::new(now_ms() / 1000),
        }
    }

    /// Called once per request: one atomic add, no clock read (refills happen on withdraw).
    pub fn deposit(&self) {
        if self.percent > 0 {
            let after = self.tokens.fetch_add(self.percent, Ordering::Relaxed) + self.percent;
            if after > self.cap {
                self.tokens.fetch_sub(after - self.cap, Ordering::Relaxed);
            }
        }
    }

    /// Takes one retry from the budget; false means no retry now.
    pub fn withdraw(&self) -> bool {
        self.refill();
        let prev = self.tokens.fetch_sub(100, Ordering::Relaxed);
        if prev >= 100 {
            true
        } else {
            self.tokens.fetch_add(100, Ordering::Relaxed);
            false
        }
    }

    fn refill(&self) {
        let sec = now_ms() / 1000;
        let last = self.last_refill_sec.load(Ordering::Relaxed);
        if sec > last
            && self
                .last_refill_sec
                .compare_exchange(last, sec, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let add = self.floor_per_second * i64::try_from(sec - last).unwrap_or(1).min(10);
            let after = self.tokens.fetch_add(add, Ordering::Relaxed) + add;
            if after > self.cap {
                self.tokens.fetch_sub(after - self.cap, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_limits_retries_to_floor_without_traffic() {
        let b = RetryBudget::new(20, 3);
        let granted = (0..10).filter(|_| b.withdraw()).count();
        assert_eq!(granted, 3);
    }

    #[test]
    fn deposits_earn_retries_at_the_configured_share() {
        let b = RetryBudget::new(20, 0);
        for _ in 0..50 {
            b.deposit();
        }
        // 50 requests at 20% earn 10 retries.
        let granted = (0..20).filter(|_| b.withdraw()).count();
        assert_eq!(granted, 10);
    }
}
