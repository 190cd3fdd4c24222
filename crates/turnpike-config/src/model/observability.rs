//! The `metrics:`, `access_log:` and `tracing:` sections: what Prometheus may scrape and
//! where, the one-line-per-request access log, and OpenTelemetry traces.
//! `docs/observability.md` explains each key.
//!
//! All are optional. Metrics are always counted; `metrics.listen` only adds a listener of
//! their own for gateways without an `admin:` section. The access log and tracing are off
//! by default.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, Duration};

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

/// How spans are sent to the collector. Only OTLP over HTTP with the JSON encoding is
/// built; gRPC and protobuf would each need a dependency the gateway does not otherwise have.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "http/json")]
    HttpJson,
}

/// OpenTelemetry tracing: W3C Trace Context propagation and OTLP export. Off by default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Tracing {
    pub enabled: bool,
    /// Fraction of new traces (requests without a valid `traceparent`) that are sampled,
    /// 0.0 to 1.0. A `traceparent`'s own sampled flag is always followed.
    pub sample: f64,
    /// The collector's OTLP/HTTP base URL; spans go to `{endpoint}/v1/traces`.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// Headers sent with every export (an API key for a hosted backend, say).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Most spans per export request.
    pub batch_size: usize,
    /// Longest time a span waits before its batch is sent.
    pub flush_interval: Duration,
    /// Spans waiting for export; past this, spans are dropped (and counted).
    pub max_queue: usize,
    /// Longest time one export request may take.
    pub timeout: Duration,
}

impl Default for Tracing {
    fn default() -> Self {
        Self {
            enabled: false,
            sample: 1.0,
            endpoint: "http://127.0.0.1:4318".to_owned(),
            protocol: OtlpProtocol::HttpJson,
            headers: BTreeMap::new(),
            service_name: "turnpike".to_owned(),
            batch_size: 512,
            flush_interval: Duration::from_secs(1),
            max_queue: 4096,
            timeout: Duration::from_secs(10),
        }
    }
}

impl Tracing {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}
