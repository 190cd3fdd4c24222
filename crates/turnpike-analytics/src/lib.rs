//! Turnpike's observability: request metrics kept in per-thread shards of atomics and
//! rendered as OpenMetrics text for Prometheus ([`metrics`], [`encode`]), and the access
//! log, written by a thread of its own so a request never waits for a disk ([`access_log`]).
//!
//! Hot-path rule: the pipeline resolves a route's [`RouteMetrics`] once per config version
//! (at snapshot build), so recording a request is a handful of uncontended atomic adds with
//! no label hashing. Only the optional consumer label looks a name up, in a bounded family.
//! `docs/observability.md` lists every metric.
//!
//! Usage analytics ([`usage`]) count every request into per-minute rollups with a latency
//! [`sketch::Sketch`]; the control plane drains them to the store.

pub mod access_log;
pub mod encode;
pub mod histogram;
pub mod metrics;
mod node;
mod shard;
pub mod sketch;
mod time;
pub mod trace;
pub mod usage;
mod writer;

pub use access_log::{AccessLog, Record};
pub use encode::Encoder;
pub use metrics::{Metrics, RouteMetrics};
pub use node::node_id;
pub use sketch::Sketch;
pub use usage::{Usage, UsageKey, UsageRow, UsageTotals};

/// Why the access log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("access_log.output: cannot open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("access_log: cannot start the writer thread: {0}")]
    Thread(std::io::Error),
}
