//! Traffic control, compiled: the counters every route shares ([`TrafficState`], kept
//! across reloads so a reload never resets a limit), the plans consumers belong to, and
//! one route's rate limits, concurrency limit and cost ([`RouteTraffic`]).
//!
//! The request-time check is in [`check`]; how limits become counter keys in [`limits`];
//! the response headers in [`headers`].

pub mod check;
pub mod headers;
pub mod limits;

use std::path::PathBuf;
use std::sync::Arc;

use turnpike_config::Config;
use turnpike_config::model::{self, LimitHeaders};
use turnpike_state::{Concurrency, FailMode, Limiter, Quotas, RedisOptions};

pub use check::{Granted, Limited};
pub use limits::{CompiledLimit, RouteTraffic};

/// Why traffic control could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("traffic.state: {0}")]
    State(turnpike_state::StateError),
    #[error("traffic.time_zone: unknown time zone {0:?}")]
    TimeZone(String),
}

/// What decides whether the counters can be reused: changing any of it starts afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StateKey {
    state: String,
    redis_timeout: std::time::Duration,
    redis_prefix: String,
    max_keys: usize,
    quota_file: String,
}

/// The counters: rate limits, quotas and in-flight slots.
#[derive(Debug)]
pub struct TrafficState {
    key: StateKey,
    pub limiter: Arc<Limiter>,
    pub quotas: Arc<Quotas>,
    pub concurrency: Arc<Concurrency>,
}

impl TrafficState {
    fn build(key: StateKey, control: &tokio::runtime::Handle) -> Result<Self, TrafficError> {
        let limiter = match key.state.as_str() {
            "memory" => Limiter::memory(key.max_keys),
            url => {
                let opts = RedisOptions {
                    url: url.to_owned(),
                    timeout: key.redis_timeout,
                    prefix: key.redis_prefix.clone(),
                };
                Limiter::redis(opts, key.max_keys, control).map_err(TrafficError::State)?
            }
        };
        let quotas = match Quotas::redis(&limiter) {
            Some(q) => Arc::new(q),
            None => {
                // Only a config with quotas owns (and writes) the quota file.
                let file = (!key.quota_file.is_empty()).then(|| PathBuf::from(&key.quota_file));
                let persist = file.is_some();
                let q = Arc::new(Quotas::memory(file).map_err(TrafficError::State)?);
                if persist {
                    q.spawn_persister(control);
                }
                q
            }
        };
        Ok(Self {
            key,
            limiter: Arc::new(limiter),
            quotas,
            concurrency: Arc::new(Concurrency::new()),
        })
    }
}

/// Everything traffic control needs that is not per route.
#[derive(Debug)]
pub struct Traffic {
    pub state: Arc<TrafficState>,
    pub fail: FailMode,
    pub tz: jiff::tz::TimeZone,
    pub headers: LimitHeaders,
    /// Per consumer name: its plan's (or its own) limits and quota.
    pub consumers: foldhash::HashMap<Box<str>, Arc<limits::ConsumerLimits>>,
    /// Some route or consumer limits anything: otherwise the phase is skipped.
    pub active: bool,
}

impl Traffic {
    /// Compiles `cfg.traffic` and the plans; reuses `previous`'s counters when the state
    /// settings did not change. The quota persister and Redis connections run on `control`.
    pub fn build(
        cfg: &Config,
        previous: Option<&Traffic>,
        control: &tokio::runtime::Handle,
    ) -> Result<Self, TrafficError> {
        let t = &cfg.traffic;
        let has_quotas = cfg.plans.iter().any(|p| p.quota.is_some())
            || cfg.consumers.iter().any(|c| c.quota.is_some());
        let key = StateKey {
            state: t.state.clone(),
            redis_timeout: t.redis_timeout.as_std(),
            redis_prefix: t.redis_prefix.clone(),
            max_keys: t.max_keys,
            quota_file: if has_quotas {
                t.quota_file.clone()
            } else {
                String::new()
            },
        };
        let active = uses_traffic_control(cfg);
        let state = match previous.map(|p| &p.state) {
            Some(prev) if prev.key == key => prev.clone(),
            // Nothing limits anything: no counters, no quota file, no Redis connection.
            _ if !active => Arc::new(TrafficState::build(
                StateKey {
                    state: "memory".to_owned(),
                    max_keys: 1000,
                    quota_file: String::new(),
                    ..key
                },
                control,
            )?),
            _ => Arc::new(TrafficState::build(key, control)?),
        };
        let tz = jiff::tz::TimeZone::get(&t.time_zone)
            .map_err(|_| TrafficError::TimeZone(t.time_zone.clone()))?;
        Ok(Self {
            state,
            fail: fail_mode(t.fail),
            tz,
            headers: t.headers.clone(),
            consumers: limits::consumer_limits(cfg),
            active,
        })
    }
}

pub(crate) fn fail_mode(f: model::FailMode) -> FailMode {
    match f {
        model::FailMode::Open => FailMode::Open,
        model::FailMode::Closed => FailMode::Closed,
    }
}

fn uses_traffic_control(cfg: &Config) -> bool {
    let policies = |p: &model::Policies| p.rate_limit.is_some() || p.concurrency.is_some();
    policies(&cfg.policies)
        || cfg.upstreams.iter().any(|u| policies(&u.policies))
        || cfg
            .routes
            .iter()
            .any(|r| r.rate_limit.is_some() || r.concurrency.is_some())
        || cfg
            .consumers
            .iter()
            .any(|c| c.plan.is_some() || c.rate_limits.is_some() || c.quota.is_some())
}
