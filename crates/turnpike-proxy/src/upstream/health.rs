//! Target health: passive ejection after consecutive failures, active HTTP checks, and a
//! per-upstream circuit breaker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use turnpike_config::model;

use super::{Target, Upstream, now_ms};

/// Passive check: `consecutive_failures` in a row eject the target for `cooldown`.
pub fn record_passive(target: &Target, cfg: &model::PassiveHealth, upstream: &str, ok: bool) {
    let state = &target.state;
    if ok {
        if state.consecutive_failures.load(Ordering::Relaxed) != 0 {
            state.consecutive_failures.store(0, Ordering::Relaxed);
        }
        return;
    }
    if cfg.consecutive_failures == 0 {
        return;
    }
    let failures = state.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
    if failures >= cfg.consecutive_failures {
        state.consecutive_failures.store(0, Ordering::Relaxed);
        let until = now_ms() + u64::try_from(cfg.cooldown.as_std().as_millis()).unwrap_or(u64::MAX);
        state.ejected_until.store(until, Ordering::Relaxed);
        tracing::warn!(upstream, target = &*target.url, failures, cooldown = ?cfg.cooldown.as_std(), "target ejected");
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// Counts failures in a fixed window; opens at `failure_ratio`, lets one trial through
/// after `open_for`, and closes again on its success.
#[derive(Debug)]
pub struct Breaker {
    ratio: f64,
    min_requests: u32,
    window_ms: u64,
    open_ms: u64,
    state: AtomicU8,
    window_start: AtomicU64,
    requests: AtomicU32,
    failures: AtomicU32,
    open_until: AtomicU64,
}

impl Breaker {
    pub fn new(cfg: &model::CircuitBreaker) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            ratio: cfg.failure_ratio,
            min_requests: cfg.min_requests,
            window_ms: ms(cfg.window.as_std()),
            open_ms: ms(cfg.open_for.as_std()),
            state: AtomicU8::new(CLOSED),
            window_start: AtomicU64::new(now_ms()),
            requests: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
        }
    }

    /// May a request go to the upstream now?
    pub fn allow(&self) -> bool {
        match self.state.load(Ordering::Acquire) {
            state @ (OPEN | HALF_OPEN) => {
                let now = now_ms();
                let until = self.open_until.load(Ordering::Relaxed);
                // One trial per `open_for`: a trial whose outcome is never recorded (client
                // gone, no target picked) must not keep the breaker half-open for good.
                now >= until
                    && self
                        .open_until
                        .compare_exchange(
                            until,
                            now + self.open_ms,
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    && (state == HALF_OPEN
                        || self
                            .state
                            .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Relaxed)
                            .is_ok())
            }
            _ => true,
        }
    }

    pub fn record(&self, ok: bool) {
        let now = now_ms();
        if self.state.load(Ordering::Acquire) == HALF_OPEN {
            if ok {
                self.reset_window(now);
                self.state.store(CLOSED, Ordering::Release);
            } else {
                self.trip(now);
            }
            return;
        }
        if now.saturating_sub(self.window_start.load(Ordering::Relaxed)) > self.window_ms {
            self.reset_window(now);
        }
        let requests = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let failures = if ok {
            self.failures.load(Ordering::Relaxed)
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed) + 1
        };
        if requests >= self.min_requests && f64::from(failures) / f64::from(requests) >= self.ratio
        {
            self.trip(now);
        }
    }

    fn trip(&self, now: u64) {
        self.open_until.store(now + self.open_ms, Ordering::Relaxed);
        if self.state.swap(OPEN, Ordering::AcqRel) != OPEN {
            tracing::warn!(open_for_ms = self.open_ms, "circuit breaker opened");
        }
        self.reset_window(now);
    }

    fn reset_window(&self, now: u64) {
        self.window_start.store(now, Ordering::Relaxed);
        self.requests.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
    }
}

/// Probes every target of `upstream` until the next reload aborts the task (the new
/// snapshot starts its own checks).
pub async fn run_active_checks(upstream: Arc<Upstream>, cfg: model::ActiveHealth) {
    let tls = upstream.tls.as_deref();
    let connector = match super::client::connector(
        cfg.timeout.as_std(),
        upstream.settings.http2,
        tls,
    ) {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(upstream = &*upstream.name, error = %err, "active health checks disabled: no TLS");
            return;
        }
    };
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(upstream.settings.http2)
        // A fresh connection per probe: a kept one could have died since the last interval
        // and fail the probe for the wrong reason.
        .pool_max_idle_per_host(0)
        .build(connector);
    let mut tick = tokio::time::interval(cfg.interval.as_std());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // All targets at once, so one hanging target does not delay the others' verdicts.
        let probes = upstream.targets.iter().map(|t| probe(&client, t, &cfg));
        let results = futures_util::future::join_all(probes).await;
        for (target, healthy) in upstream.targets.iter().zip(results) {
            apply_probe(target, &cfg, &upstream.name, healthy);
        }
    }
}

async fn probe(
    client: &Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    target: &Target,
    cfg: &model::ActiveHealth,
) -> bool {
    let uri = format!("{}://{}{}", target.scheme, target.authority, cfg.path);
    let Ok(req) = Request::get(uri)
        .header(http::header::HOST, target.host_value.clone())
        .body(Empty::new())
    else {
        return false;
    };
    match tokio::time::timeout(cfg.timeout.as_std(), client.request(req)).await {
        Ok(Ok(resp)) => cfg.expected_statuses.contains(&resp.status().as_u16()),
        _ => false,
    }
}

fn apply_probe(target: &Target, cfg: &model::ActiveHealth, upstream: &str, healthy: bool) {
    let state = &target.state;
    let down = state.active_down.load(Ordering::Relaxed);
    if healthy != down {
        state.active_streak.store(0, Ordering::Relaxed);
        return;
    }
    let streak = state.active_streak.fetch_add(1, Ordering::Relaxed) + 1;
    let threshold = if down {
        cfg.healthy_threshold
    } else {
        cfg.unhealthy_threshold
    };
    if streak >= threshold {
        state.active_streak.store(0, Ordering::Relaxed);
        state.active_down.store(!down, Ordering::Relaxed);
        if down {
            tracing::info!(upstream, target = &*target.url, "target healthy again");
        } else {
            tracing::warn!(
                upstream,
                target = &*target.url,
                "target failed active health checks"
            );
        }
    }
}

/// A status the passive check counts as a failure.
pub fn is_failure_status(status: StatusCode, retry_statuses: &[u16]) -> bool {
    retry_statuses.contains(&status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_config::units::Duration as D;

    #[test]
    fn breaker_opens_at_ratio_and_recovers_after_trial() {
        let b = Breaker::new(&model::CircuitBreaker {
            failure_ratio: 0.5,
            min_requests: 4,
            window: D::from_secs(60),
            open_for: D::from_secs(60),
        });
        b.record(true);
        b.record(false);
        b.record(true);
        assert!(b.allow(), "3 requests are below min_requests");
        b.record(false);
        assert!(!b.allow(), "2 of 4 failed: open");
        // open_for has passed: exactly one trial.
        b.open_until.store(0, Ordering::Relaxed);
        assert!(b.allow());
        assert!(!b.allow(), "only one trial while half-open");
        b.record(true);
        assert!(b.allow(), "a successful trial closes it");
    }

    #[test]
    fn a_lost_trial_does_not_keep_the_breaker_half_open() {
        let b = Breaker::new(&model::CircuitBreaker {
            failure_ratio: 0.5,
            min_requests: 1,
            window: D::from_secs(60),
            open_for: D::from_secs(60),
        });
        b.record(false);
        b.open_until.store(0, Ordering::Relaxed);
        assert!(b.allow(), "the trial");
        // Its outcome is never recorded (the client went away). After another open_for:
        b.open_until.store(0, Ordering::Relaxed);
        assert!(b.allow(), "a new trial is allowed");
    }
}
