//! The `metrics:` and `access_log:` sections: what Prometheus may scrape and where, and
//! the one-line-per-request access log. `docs/observability.md` explains each key.
//!
//! Both are optional. Metrics are always counted; `metrics.listen` only adds a listener of
//! their own for gateways without an `admin:` section. The access log is off by default.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::units::ByteSize;

/// Prometheus metrics: a separate listener and the consumer label's bounds.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// A listener that serves only `GET /metrics` (e.g. `127.0.0.1:9100`); absent means
    /// metrics are served on the admin listener only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Count requests per consumer (`turnpike_consumer_requests_total`).
    pub consumer_labels: bool,
    /// Consumers that get a label of their own; later ones are counted as `other`.
    pub max_consumers: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            listen: None,
            consumer_labels: true,
            max_consumers: 100,
        }
    }
}

impl Metrics {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Line format of the access log.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    #[default]
    Json,
    Text,
}

/// One line per request, written off the request path.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLog {
    pub enabled: bool,
    pub format: AccessLogFormat,
    /// `stdout`, or a file path.
    pub output: String,
    /// Size-based rotation of a file output; absent means the file only grows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotate: Option<Rotate>,
    /// Fraction of requests logged, 0.0 to 1.0.
    pub sample: f64,
    /// Only these statuses: classes (`4xx`) or codes (`404`); empty means all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub only_status: Vec<StatusMatch>,
    /// Routes whose requests are not logged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude_routes: Vec<String>,
    /// Lines queued for the writer; past this, lines are dropped (and counted).
    pub buffer: usize,
}

impl Default for AccessLog {
    fn default() -> Self {
        Self {
            enabled: false,
            format: AccessLogFormat::Json,
            output: "stdout".to_owned(),
            rotate: None,
            sample: 1.0,
            only_status: Vec::new(),
            exclude_routes: Vec::new(),
            buffer: 16_384,
        }
    }
}

impl AccessLog {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A status filter: a code (`404`) or a class (`"4xx"`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum StatusMatch {
    Code(u16),
    Class(String),
}

impl StatusMatch {
    /// The class digit (`4` for `4xx`) or the code, when well-formed.
    pub fn parse(&self) -> Option<(Option<u16>, Option<u16>)> {
        match self {
            Self::Code(c) => (100..=599).contains(c).then_some((None, Some(*c))),
            Self::Class(s) => match s.as_bytes() {
                [d @ b'1'..=b'5', x, y]
                    if x.eq_ignore_ascii_case(&b'x') && y.eq_ignore_ascii_case(&b'x') =>
                {
                    Some((Some(u16::from(d - b'0')), None))
                }
                _ => s
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .map(|c| (None, Some(c))),
            },
        }
    }
}

/// Rotate a log file when it reaches `max_size`, keeping `keep` old files (`.1` newest).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    pub max_size: ByteSize,
    #[serde(default = "five")]
    pub keep: usize,
}

fn five() -> usize {
    5
}
