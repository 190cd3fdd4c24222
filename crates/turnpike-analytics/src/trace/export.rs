//! The exporter task: drains the span queue, sends batches to the collector as OTLP/HTTP
//! JSON, and retries with back-off when the collector is down or busy.
//!
//! It runs on the control runtime and polls the queue on a short timer instead of being
//! woken per request, so a request that ends a span only pays an atomic add and a
//! channel push (no wake-up of another thread). While a batch is being retried, new spans
//! wait in the queue; past `max_queue` they are dropped and counted, never waited for.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connect;

use super::otlp;
use super::span::SpanData;
use super::{Queue, TraceCounts};

/// Longest rest between two looks at the queue.
const POLL: Duration = Duration::from_millis(20);
/// Waits before each retry of a failed export; after the last, the batch is dropped.
const BACKOFF: [Duration; 4] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Where and how batches go.
#[derive(Debug)]
pub(crate) struct Settings {
    /// `{endpoint}/v1/traces`.
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) service_name: String,
    pub(crate) batch_size: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) timeout: Duration,
}

/// Runs until every sender is gone, then sends what is left and ends.
pub(crate) async fn run<C>(
    client: Client<C, Full<Bytes>>,
    settings: Settings,
    rx: Receiver<Vec<SpanData>>,
    queue: Arc<Queue>,
) where
    C: Connect + Clone + Send + Sync + 'static,
{
    let mut exporter = Exporter {
        client,
        settings,
        counts: queue.counts.clone(),
        failing: false,
    };
    let mut buf: Vec<SpanData> = Vec::new();
    // When the oldest span in `buf` arrived.
    let mut oldest: Option<Instant> = None;
    let poll = POLL.min(exporter.settings.flush_interval);
    loop {
        tokio::time::sleep(poll).await;
        let closed = drain(&rx, &mut buf);
        if !buf.is_empty() {
            oldest.get_or_insert_with(Instant::now);
        }
        let due = oldest.is_some_and(|t| t.elapsed() >= exporter.settings.flush_interval);
        while buf.len() >= exporter.settings.batch_size || (!buf.is_empty() && (due || closed)) {
            let n = buf.len().min(exporter.settings.batch_size);
            let batch: Vec<SpanData> = buf.drain(..n).collect();
            exporter.export(&batch).await;
            // Only now do these spans leave the queue's bound: `max_queue` covers the
            // spans waiting here as well as those in the channel.
            queue.queued.fetch_sub(n, Ordering::Relaxed);
            oldest = None;
        }
        if closed {
            return;
        }
    }
}

/// Moves everything queued into `buf`; true when every sender is gone.
fn drain(rx: &Receiver<Vec<SpanData>>, buf: &mut Vec<SpanData>) -> bool {
    loop {
        match rx.try_recv() {
            Ok(spans) => buf.extend(spans),
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
}

struct Exporter<C> {
    client: Client<C, Full<Bytes>>,
    settings: Settings,
    counts: Arc<TraceCounts>,
    /// The last export failed; logged once per outage rather than per batch.
    failing: bool,
}

/// What one attempt came to.
enum Outcome {
    Sent,
    /// Worth another try: no connection, a timeout, 429, 502, 503, 504 (the OTLP spec's list).
    Retry(String),
    /// The collector refused the data itself; sending it again would not help.
    Refused(String),
}

impl<C> Exporter<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    async fn export(&mut self, batch: &[SpanData]) {
        let body = Bytes::from(otlp::encode(&self.settings.service_name, batch));
        let n = batch.len() as u64;
        let mut waits = BACKOFF.iter();
        let why = loop {
            match self.attempt(body.clone()).await {
                Outcome::Sent => {
                    if self.failing {
                        tracing::info!("trace export to the collector works again");
                        self.failing = false;
                    }
                    self.counts.exported.fetch_add(n, Ordering::Relaxed);
                    return;
                }
                Outcome::Refused(why) => break why,
                Outcome::Retry(why) => match waits.next() {
                    Some(wait) => tokio::time::sleep(*wait).await,
                    None => break why,
                },
            }
        };
        self.counts.export_failed.fetch_add(n, Ordering::Relaxed);
        if !self.failing {
            tracing::warn!(error = %why, spans = n, endpoint = %self.settings.uri, "trace export failed; spans dropped");
            self.failing = true;
        }
    }

    async fn attempt(&self, body: Bytes) -> Outcome {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.settings.uri.clone();
        let headers = req.headers_mut();
        headers.clone_from(&self.settings.headers);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let exchange = async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            // Read the (small) answer so the connection can be used again.
            let _ = resp.into_body().collect().await;
            Ok::<_, hyper_util::client::legacy::Error>(status)
        };
        match tokio::time::timeout(self.settings.timeout, exchange).await {
            Err(_) => Outcome::Retry("timed out".to_owned()),
            Ok(Err(err)) => Outcome::Retry(err.to_string()),
            Ok(Ok(status)) if status.is_success() => Outcome::Sent,
            Ok(Ok(status)) if retryable(status) => Outcome::Retry(format!("status {status}")),
            Ok(Ok(status)) => Outcome::Refused(format!("status {status}")),
        }
    }
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}
