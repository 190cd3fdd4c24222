//! The traffic-control part of the model: where counters live (`traffic`), plans that
//! bundle limits and quotas, and the per-route policies (`rate_limit`, `concurrency`,
//! `cost`) that may also be set on an upstream or globally under `policies`.
//!
//! Rate limits are GCRA: `limit` requests per `per`, at most `burst` at once, spread
//! evenly, so there is no window edge to burst across (docs/traffic-control.md).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::Duration;

/// Where rate-limit and quota counters live and how limited responses are told.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Traffic {
    /// `memory` (one node) or a `redis://` / `rediss://` URL every node shares.
    pub state: String,
    /// Longest wait for one Redis command before the policy's fail mode applies.
    pub redis_timeout: Duration,
    /// Prefix of every Redis key, so environments can share one Redis.
    pub redis_prefix: String,
    /// What a policy does when Redis cannot answer, unless it says otherwise.
    pub fail: FailMode,
    /// Most rate-limit keys kept in memory; idle ones expire first.
    pub max_keys: usize,
    /// Where quota counters persist with `state: memory`, so a restart keeps them.
    pub quota_file: String,
    /// IANA time zone of the calendar days and months quotas count in.
    pub time_zone: String,
    pub headers: LimitHeaders,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            state: "memory".to_owned(),
            redis_timeout: Duration::from_millis(100),
            redis_prefix: "tp:".to_owned(),
            fail: FailMode::Open,
            max_keys: 1_000_000,
            quota_file: "turnpike-quotas.json".to_owned(),
            time_zone: "UTC".to_owned(),
            headers: LimitHeaders::default(),
        }
    }
}

impl Traffic {
    pub fn redis_url(&self) -> Option<&str> {
        (self.state != "memory").then_some(self.state.as_str())
    }
}

/// Open: count locally and go on (logged, counted). Closed: 503. Never a 401/403.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    #[default]
    Open,
    Closed,
}

/// Which rate-limit headers responses of limited routes carry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitHeaders {
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10).
    pub ietf: bool,
    /// `X-RateLimit-Limit`, `-Remaining` and `-Reset` for older clients.
    pub legacy: bool,
}

impl Default for LimitHeaders {
    fn default() -> Self {
        Self {
            ietf: true,
            legacy: false,
        }
    }
}

/// A named tier of service: the limits and quota its consumers get on every route.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    /// Counted per consumer; `by` is not allowed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

/// A route's (or upstream's, or the global) rate limits; all of them must allow.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicy {
    pub limits: Vec<RateLimit>,
    /// Overrides `traffic.fail` for this policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail: Option<FailMode>,
}

/// `limit` requests per `per`, up to `burst` at once, counted per `by`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Shown in `RateLimit-Policy`; defaults to e.g. `100-per-1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub limit: u64,
    pub per: Period,
    /// Requests allowed at once; defaults to `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// What one counter is kept for; defaults to `[consumer]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by: Vec<LimitKey>,
}

impl RateLimit {
    pub fn burst(&self) -> u64 {
        self.burst.unwrap_or(self.limit)
    }

    /// The policy name clients see.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}-per-{}", self.limit, self.per.0))
    }
}

/// One part of a counter's key. `consumer` is the authenticated consumer, or the client
/// IP for a request without one (anonymous callers do not share one counter).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    Consumer,
    Credential,
    Ip,
    Route,
    /// `header:<name>`: the header's value (absent counts as empty).
    Header(String),
}

/// A rate-limit period: `second`, `minute`, `hour`, `day`, or a duration such as `10s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period(pub Duration);

/// A cap per consumer per calendar day or month.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub limit: u64,
    pub per: QuotaPeriod,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    Day,
    Month,
}

/// At most `limit` requests in flight per `by`; optionally queued instead of refused.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyLimit {
    pub limit: u32,
    /// Empty: one count for the whole route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by: Vec<LimitKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueSettings>,
}

/// Wait for a slot instead of an immediate 429.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// Most requests waiting at once; more get 429 at once.
    pub size: u32,
    /// Longest wait for a slot.
    pub timeout: Duration,
}

/// What one request costs against its consumer's quota.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// Charged before the request goes upstream.
    #[serde(default = "one")]
    pub weight: u64,
    /// A response header in which the upstream reports the real cost; what exceeds
    /// `weight` is charged after the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

fn one() -> u64 {
    1
}

const PERIOD_EXPECTED: &str =
    "`second`, `minute`, `hour`, `day` or a duration such as \"10s\" or \"15m\"";

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let secs = match s.as_str() {
            "second" => 1,
            "minute" => 60,
            "hour" => 3600,
            "day" => 86_400,
            other => {
                return other.parse().map(Period).map_err(|_| {
                    de::Error::custom(format!("invalid period {s:?}: expected {PERIOD_EXPECTED}"))
                });
            }
        };
        Ok(Period(Duration::from_secs(secs)))
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

const KEY_EXPECTED: &str = "`consumer`, `credential`, `ip`, `route` or `header:<name>`";

impl<'de> Deserialize<'de> for LimitKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LimitKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(KEY_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LimitKey, E> {
                Ok(match v {
                    "consumer" => LimitKey::Consumer,
                    "credential" => LimitKey::Credential,
                    "ip" => LimitKey::Ip,
                    "route" => LimitKey::Route,
                    _ => match v.strip_prefix("header:") {
                        Some(name) => LimitKey::Header(name.to_ascii_lowercase()),
                        None => {
                            let msg = format!("unknown key part {v:?}: expected {KEY_EXPECTED}");
                            return Err(E::custom(msg));
                        }
                    },
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for LimitKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Consumer => s.serialize_str("consumer"),
            Self::Credential => s.serialize_str("credential"),
            Self::Ip => s.serialize_str("ip"),
            Self::Route => s.serialize_str("route"),
            Self::Header(name) => s.collect_str(&format_args!("header:{name}")),
        }
    }
}
