//! The `analytics:` section: usage rollups per minute (by route, service, consumer and
//! status class, with latency sketches) kept in the admin store, downsampled to hours and
//! days. `docs/observability.md` explains each key.
//!
//! Usage analytics need the store, so they run only with an `admin:` section; without one
//! nothing is recorded (Prometheus metrics still are) and these settings have no effect.

use serde::{Deserialize, Serialize};

use crate::units::Duration;

/// Usage analytics: on by default wherever there is a store.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Analytics {
    pub enabled: bool,
    /// This node's name in the store's rows and in the cluster status; absent means
    /// `HOSTNAME:PORT` of the first proxy listener, unique per machine and stable across
    /// restarts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// How often closed minutes are written to the store (and this node's heartbeat).
    pub flush_interval: Duration,
    /// How long each resolution is kept before it is rolled into the next.
    pub retention: Retention,
}

impl Default for Analytics {
    fn default() -> Self {
        Self {
            enabled: true,
            node_id: None,
            flush_interval: Duration::from_secs(5),
            retention: Retention::default(),
        }
    }
}

impl Analytics {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Minute rows older than `minute` become hourly rows; hourly rows older than `hour`
/// become daily rows; daily rows older than `day` are deleted.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub minute: Duration,
    pub hour: Duration,
    pub day: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            minute: Duration::from_secs(2 * 86_400),
            hour: Duration::from_secs(90 * 86_400),
            day: Duration::from_secs(730 * 86_400),
        }
    }
}
