//! `server.protection` and the slow-client settings: DDoS and abuse protection.
//!
//! Everything here is off (or generous) unless the file says otherwise, so a config
//! without these keys behaves exactly as before. `docs/protection.md` explains each key.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, Duration};

/// Per-IP connection limits, load shedding and temporary bans.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Protection {
    /// Open connections one peer IP may hold at once; absent means no cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<u32>,
    /// New connections one peer IP may open per period (a burst of `limit` is allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_connections_per_ip: Option<ConnectionRate>,
    /// Shed low-priority traffic first when the gateway is overloaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_shedding: Option<LoadShedding>,
    /// Ban client IPs that keep getting rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bans: Option<Bans>,
}

impl Protection {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `{limit: 20, per: 1s}`: at most `limit` new connections per `per`, per peer IP.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionRate {
    pub limit: u32,
    #[serde(default = "one_second")]
    pub per: Duration,
}

/// Process-wide overload thresholds.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LoadShedding {
    /// Requests in flight (all listeners, all workers) at which `normal` traffic is shed;
    /// `low` is shed at 80% of it and `high` at 120%.
    pub max_in_flight: u32,
    /// When the moving average of response time passes this, `low` traffic is shed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<Duration>,
    /// What `Retry-After` tells a shed client.
    #[serde(default = "one_second")]
    pub retry_after: Duration,
}

/// Temporary bans of client IPs with too many rejected requests.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Bans {
    /// Rejected requests within `within` that get an IP banned.
    pub threshold: u32,
    pub within: Duration,
    /// How long a ban lasts; it lifts by itself.
    pub ban_for: Duration,
    /// Networks that are never banned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub never: Vec<IpNet>,
}

impl Default for Bans {
    fn default() -> Self {
        Self {
            threshold: 50,
            within: Duration::from_secs(10),
            ban_for: Duration::from_secs(300),
            never: Vec::new(),
        }
    }
}

/// A floor on how fast a client must send its request body, after a grace period.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MinBodyRate {
    /// Bytes per second, averaged over the time spent waiting for the client.
    pub bytes_per_second: ByteSize,
    /// Waiting time before the rate is enforced, so small bodies and slow starts pass.
    #[serde(default = "five_seconds")]
    pub grace: Duration,
}

/// Which traffic is shed first when the gateway is overloaded.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

impl Priority {
    pub fn is_normal(&self) -> bool {
        *self == Self::Normal
    }
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
