//! Upstreams at run time: their targets with live state (health, in-flight count, latency),
//! the balancer that picks among them, retry budget and circuit breaker.
//!
//! Target state is kept by `(upstream name, target URL)` across config reloads, so a reload
//! neither forgets an ejected target nor resets latency estimates.

pub mod balancer;
pub mod budget;
pub mod client;
pub mod health;
pub mod pool;
pub mod pool_gauges;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::HeaderValue;
use http::uri::{Authority, Scheme};
use turnpike_config::model;

pub use balancer::Balancer;
pub use budget::RetryBudget;
pub use health::Breaker;

/// Milliseconds since the process started; cheap to store in atomics.
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Live state of one target, shared by every worker and every snapshot that has it.
#[derive(Debug, Default)]
pub struct TargetState {
    /// Marked down by active health checks.
    pub active_down: AtomicBool,
    /// Ejected by passive checks until this `now_ms()`.
    pub ejected_until: AtomicU64,
    pub consecutive_failures: AtomicU32,
    /// Streak counter for active checks (successes when down, failures when up).
    pub active_streak: AtomicU32,
    pub in_flight: AtomicU32,
    /// EWMA of time to response head, in microseconds, as f64 bits.
    pub ewma_micros: AtomicU64,
}

/// One backend address of an upstream.
#[derive(Debug)]
pub struct Target {
    pub url: Arc<str>,
    pub scheme: Scheme,
    pub authority: Authority,
    /// The target's authority as a `Host` value, for `host_header: target`.
    pub host_value: HeaderValue,
    pub weight: u32,
    pub state: Arc<TargetState>,
}

impl Target {
    fn build(
        cfg: &model::Upstream,
        t: &model::Target,
        name: &Arc<str>,
        carry: &StateCarry,
    ) -> Result<Self, InvalidTarget> {
        let bad = || InvalidTarget {
            upstream: cfg.name.clone(),
            url: t.url.clone(),
        };
        let uri: http::Uri = t.url.parse().map_err(|_| bad())?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(bad());
        };
        let url: Arc<str> = t.url.as_str().into();
        let state = carry
            .get(&(name.clone(), url.clone()))
            .cloned()
            .unwrap_or_default();
        if cfg.health.active.is_none() {
            // Without active checks nothing would ever mark it up again.
            state.active_down.store(false, Ordering::Relaxed);
            state.active_streak.store(0, Ordering::Relaxed);
        }
        let host_value = HeaderValue::from_str(authority.as_str()).map_err(|_| bad())?;
        Ok(Self {
            url,
            scheme,
            authority,
            host_value,
            weight: t.weight.max(1),
            state,
        })
    }

    /// Eligible for traffic now: not down by active checks, not ejected by passive ones.
    /// `now` is only called for a target that was ejected at some point.
    pub fn available(&self, now: impl FnOnce() -> u64) -> bool {
        if self.state.active_down.load(Ordering::Relaxed) {
            return false;
        }
        let until = self.state.ejected_until.load(Ordering::Relaxed);
        until == 0 || until <= now()
    }
}

/// What an upstream's settings mean at run time (std durations, compiled values).
#[derive(Debug, Clone)]
pub struct Settings {
    pub http2: bool,
    pub host_header: model::HostHeader,
    pub fixed_host: Option<HeaderValue>,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    pub total_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    pub retry_attempts: u32,
    pub retry_statuses: Vec<u16>,
    pub passive: model::PassiveHealth,
}

/// An upstream as the pipeline sees it.
#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    pub targets: Vec<Target>,
    pub balancer: Balancer,
    pub settings: Settings,
    pub budget: Arc<RetryBudget>,
    pub breaker: Option<Arc<Breaker>>,
    pub active_health: Option<model::ActiveHealth>,
    /// The upstream's own TLS settings (`tls`); set by the snapshot, which reads the files.
    pub tls: Option<Arc<client::UpstreamTls>>,
    /// The settings `budget` and `breaker` were made from, so a reload that keeps them
    /// also keeps their state (an open breaker stays open, a spent budget stays spent).
    retries_cfg: model::Retries,
    breaker_cfg: Option<model::CircuitBreaker>,
}

/// A target URL the config validator should have rejected.
#[derive(Debug, thiserror::Error)]
#[error("upstream {upstream}: invalid target URL {url:?}")]
pub struct InvalidTarget {
    pub upstream: String,
    pub url: String,
}

/// Target states of the previous snapshot, so a reload keeps them.
pub type StateCarry = HashMap<(Arc<str>, Arc<str>), Arc<TargetState>>;

impl Upstream {
    /// `previous` is the upstream of the same name in the config being replaced.
    pub fn build(
        cfg: &model::Upstream,
        carry: &StateCarry,
        previous: Option<&Upstream>,
    ) -> Result<Self, InvalidTarget> {
        let name: Arc<str> = cfg.name.as_str().into();
        let targets = cfg
            .targets
            .iter()
            .map(|t| Target::build(cfg, t, &name, carry))
            .collect::<Result<Vec<_>, _>>()?;
        let fixed_host = match &cfg.host_header {
            model::HostHeader::Fixed(h) => {
                Some(HeaderValue::from_str(h).map_err(|_| InvalidTarget {
                    upstream: cfg.name.clone(),
                    url: format!("host_header {h}"),
                })?)
            }
            _ => None,
        };
        Ok(Self {
            balancer: Balancer::new(cfg.balancer, cfg.hash_on.clone(), &targets),
            settings: Settings {
                http2: cfg.protocol == model::UpstreamProtocol::Http2,
                host_header: cfg.host_header.clone(),
                fixed_host,
                connect_timeout: cfg.timeouts.connect.as_std(),
                first_byte_timeout: cfg.timeouts.first_byte.as_std(),
                idle_timeout: cfg.timeouts.idle.as_std(),
                total_timeout: cfg.timeouts.total.as_std(),
                pool_idle_timeout: cfg.pool.idle_timeout.as_std(),
                pool_max_idle: cfg.pool.max_idle_per_target,
                retry_attempts: cfg.retries.attempts,
                retry_statuses: cfg.retries.on_statuses.clone(),
                passive: cfg.health.passive.clone(),
            },
            budget: match previous.filter(|p| p.retries_cfg == cfg.retries) {
                Some(p) => p.budget.clone(),
                None => Arc::new(RetryBudget::new(
                    cfg.retries.budget_percent,
                    cfg.retries.min_per_second,
                )),
            },
            breaker: match previous.filter(|p| p.breaker_cfg == cfg.circuit_breaker) {
                Some(p) => p.breaker.clone(),
                None => cfg
                    .circuit_breaker
                    .as_ref()
                    .map(|b| Arc::new(Breaker::new(b))),
            },
            retries_cfg: cfg.retries.clone(),
            breaker_cfg: cfg.circuit_breaker.clone(),
            active_health: cfg.health.active.clone(),
            tls: None,
            name,
            targets,
        })
    }

    /// Records the outcome of one attempt on target `idx` for passive health, the
    /// breaker and the latency estimate.
    pub fn record(&self, idx: usize, ok: bool, latency: Option<Duration>) {
        let target = &self.targets[idx];
        health::record_passive(target, &self.settings.passive, &self.name, ok);
        if let Some(breaker) = &self.breaker {
            breaker.record(ok);
        }
        if let Some(latency) = latency.filter(|_| self.balancer.uses_latency()) {
            balancer::update_ewma(&target.state, latency);
        }
    }
}

/// What a response keeps of its upstream until its body has ended: the pooled connection
/// to give back, and its place in the target's in-flight count (so least-connections sees
/// long downloads, event streams and WebSockets, not just requests awaiting headers).
#[derive(Debug, Default)]
pub struct Held {
    pub lease: Option<pool::Lease>,
    pub in_flight: Option<InFlight>,
    /// The route's concurrency slot, freed when the response body ends.
    pub permit: Option<turnpike_state::Permit>,
    /// Which of the upstream's targets answered (for metrics and the access log).
    pub target: Option<usize>,
}

impl Held {
    /// The body ended cleanly: the connection can serve another request.
    pub fn finish(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
        self.in_flight = None;
        self.permit = None;
    }
}

/// Counts a request in flight on a target until dropped (for least-connections).
#[derive(Debug)]
pub struct InFlight(Arc<TargetState>);

impl InFlight {
    pub fn new(state: &Arc<TargetState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
