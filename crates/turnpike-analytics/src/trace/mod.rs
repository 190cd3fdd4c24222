//! OpenTelemetry tracing: W3C Trace Context ([`context`]), the span model ([`span`]),
//! the OTLP/JSON encoding ([`otlp`]) and the exporter task that batches spans to a
//! collector over HTTP.
//!
//! A [`Tracer`] exists only while `tracing.enabled` is on, so a gateway without tracing
//! pays one `Option` check per request. With it on, ended spans go to a bounded queue
//! ([`Tracer::submit`] never blocks; a full queue drops and counts) that the exporter
//! drains on the control runtime.
//!
//! The exporter is written by hand on `hyper`/`serde_json` (already in the gateway) instead
//! of the `opentelemetry` crates, so it needs no cargo feature: it is built in and
//! switched on by configuration. `docs/observability.md` describes the spans.

pub mod context;
mod export;
pub mod otlp;
pub mod span;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connect;
use turnpike_config::model;

pub use span::{AttrValue, Attributes, Clock, SpanData, SpanKind};

/// Why the exporter could not be set up (what the config validator cannot see).
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("tracing.endpoint: {0:?} is not a usable URL")]
    Endpoint(String),
    #[error("tracing.headers: {0:?} is not a valid header")]
    Header(String),
    #[error("tracing: cannot set up the exporter's HTTP client: {0}")]
    Client(String),
}

/// Export counters; carried from one tracer to the next across reloads.
#[derive(Debug, Default)]
pub struct TraceCounts {
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Spans dropped because the queue was full.
    pub queue_full: AtomicU64,
    /// Spans dropped because the collector refused them or stayed unreachable.
    pub export_failed: AtomicU64,
}

/// The queue's fill level, shared by the request path and the exporter.
#[derive(Debug)]
struct Queue {
    /// Spans submitted and not yet exported or dropped by the exporter.
    queued: AtomicUsize,
    counts: Arc<TraceCounts>,
}

/// The tracing of one config version: sampling and the queue to the exporter.
#[derive(Debug)]
pub struct Tracer {
    cfg: model::Tracing,
    tx: Sender<Vec<SpanData>>,
    queue: Arc<Queue>,
}

impl Tracer {
    /// `previous`, when it was made from the same settings (its exporter keeps running).
    pub fn reuse(cfg: &model::Tracing, previous: Option<&Arc<Tracer>>) -> Option<Arc<Tracer>> {
        previous.filter(|p| p.cfg == *cfg).cloned()
    }

    /// A tracer for `cfg` whose exporter runs on `runtime` with `client`. The exporter
    /// ends (after sending what is queued) once the tracer and every request holding it
    /// are gone. `previous` lends its counters.
    pub fn start<C>(
        cfg: &model::Tracing,
        client: Client<C, Full<Bytes>>,
        runtime: &tokio::runtime::Handle,
        previous: Option<&Arc<Tracer>>,
    ) -> Result<Arc<Self>, TraceError>
    where
        C: Connect + Clone + Send + Sync + 'static,
    {
        let settings = settings(cfg)?;
        let counts = previous.map_or_else(Arc::default, |p| p.queue.counts.clone());
        let queue = Arc::new(Queue {
            queued: AtomicUsize::new(0),
            counts,
        });
        let (tx, rx) = channel();
        runtime.spawn(export::run(client, settings, rx, queue.clone()));
        Ok(Arc::new(Self {
            cfg: cfg.clone(),
            tx,
            queue,
        }))
    }

    /// Whether a new trace (no valid `traceparent` came in) is sampled.
    pub fn sample_new(&self) -> bool {
        self.cfg.sample >= 1.0 || (self.cfg.sample > 0.0 && fastrand::f64() < self.cfg.sample)
    }

    /// Queues the spans of one request; drops (and counts) them when the queue is full.
    /// Never blocks.
    pub fn submit(&self, spans: Vec<SpanData>) {
        let n = spans.len();
        let before = self.queue.queued.fetch_add(n, Ordering::Relaxed);
        if before + n > self.cfg.max_queue || self.tx.send(spans).is_err() {
            self.queue.queued.fetch_sub(n, Ordering::Relaxed);
            let counts = &self.queue.counts;
            counts.queue_full.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// The export counters, for `/metrics`.
    pub fn counts(&self) -> &TraceCounts {
        &self.queue.counts
    }

    /// Spans waiting for export now.
    pub fn queued(&self) -> usize {
        self.queue.queued.load(Ordering::Relaxed)
    }
}

fn settings(cfg: &model::Tracing) -> Result<export::Settings, TraceError> {
    let url = format!("{}/v1/traces", cfg.endpoint.trim_end_matches('/'));
    let uri: Uri = url
        .parse()
        .map_err(|_| TraceError::Endpoint(cfg.endpoint.clone()))?;
    let mut headers = HeaderMap::with_capacity(cfg.headers.len());
    for (name, value) in &cfg.headers {
        let bad = || TraceError::Header(name.clone());
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        let mut value = HeaderValue::from_str(value).map_err(|_| bad())?;
        // Exporter headers often carry API keys; keep them out of debug output.
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(export::Settings {
        uri,
        headers,
        service_name: cfg.service_name.clone(),
        batch_size: cfg.batch_size.max(1),
        flush_interval: cfg.flush_interval.as_std(),
        timeout: cfg.timeout.as_std(),
    })
}
