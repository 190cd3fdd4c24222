//! Metrics and the access log end to end: exact counter values after known traffic,
//! bytes, consumer labels and their bound, unknown paths, the access log's fields,
//! redaction and rotation, the Grafana dashboard against a real scrape, and traces
//! exported to a mock OTLP collector.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access_log;
mod dashboard;
mod metrics;
mod support;
mod traces;
