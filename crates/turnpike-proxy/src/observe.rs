//! The request path's one observation point: after the pipeline has its response, count
//! the request (route, method, status class, consumer, gateway error code, upstream and
//! gateway-added time), and hand the response body a [`Finish`] that records the total
//! time and bytes, counts the usage rollup, and writes the access-log line when the body
//! ends or is dropped.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Response};
use turnpike_analytics::metrics::{Head, method_index};
use turnpike_analytics::usage::Request as UsageRequest;
use turnpike_analytics::{AccessLog, Record, RouteMetrics};
use turnpike_policy::consumer::Consumer;

use crate::body::ResponseBody;
use crate::snapshot::{RouteRt, Snapshot};
use crate::trace::RequestTrace;

/// What the pipeline learned about a request on its way through (filled by `serve`).
#[derive(Debug, Default)]
pub(crate) struct Seen<'s> {
    pub(crate) route: Option<&'s RouteRt>,
    pub(crate) client_ip: Option<IpAddr>,
    /// Time waiting for the upstream's response head (all attempts).
    pub(crate) upstream_time: Option<Duration>,
    /// The target that answered, by index in the route's upstream.
    pub(crate) target: Option<usize>,
    pub(crate) consumer: Option<Arc<Consumer>>,
    /// The gateway's error code when it answered itself.
    pub(crate) error: Option<&'static str>,
    /// Request body bytes, counted as they stream (only for requests with a body).
    pub(crate) request_bytes: Option<Arc<AtomicU64>>,
    /// The request's trace (nothing when tracing is off); its spans end with the body.
    pub(crate) trace: RequestTrace,
}

/// The request as it arrived, kept for the metrics and the access log.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub(crate) started: Instant,
    pub(crate) method: Method,
    /// The path (a reference-counted copy), only when the access log samples this request.
    pub(crate) target: Option<PathAndQuery>,
}

impl Arrival {
    pub(crate) fn new(snap: &Snapshot, req: &http::Request<hyper::body::Incoming>) -> Self {
        let sampled = snap.access_log.as_ref().is_some_and(|l| l.sampled());
        Self {
            started: Instant::now(),
            method: req.method().clone(),
            target: sampled
                .then(|| req.uri().path_and_query().cloned())
                .flatten(),
        }
    }
}

/// Counts the request and arms the response body's [`Finish`].
pub(crate) fn request_done(
    snap: &Snapshot,
    (mut seen, arrival): (Seen<'_>, Arrival),
    (request_id, peer): (&HeaderValue, IpAddr),
    resp: &mut Response<ResponseBody>,
) {
    let status = resp.status().as_u16();
    let route_metrics = seen.route.map_or(snap.metrics.unmatched(), |r| &r.metrics);
    let head_time = arrival.started.elapsed();
    route_metrics.head(&Head {
        method: method_index(arrival.method.as_str()),
        status,
        upstream: seen.upstream_time,
        gateway: head_time.saturating_sub(seen.upstream_time.unwrap_or_default()),
    });
    if let Some(code) = seen.error {
        snap.metrics.gateway_error(code);
    }
    if let Some(c) = &seen.consumer {
        snap.metrics.consumer(&c.name, status);
    }
    let started = arrival.started;
    // Usage rollups need the consumer at body end; the clone is skipped when they are off.
    let consumer = seen
        .consumer
        .clone()
        .filter(|_| route_metrics.usage().enabled());
    let log = snap
        .access_log
        .as_ref()
        .filter(|_| arrival.target.is_some())
        .filter(|l| seen.route.is_none_or(|r| r.logged) && l.wants(status, &route_metrics.route))
        .map(|l| {
            let ids = (request_id.clone(), seen.client_ip.unwrap_or(peer));
            Box::new((
                l.clone(),
                record(snap, &seen, arrival, ids, status, route_metrics),
            ))
        });
    let mut trace = std::mem::take(&mut seen.trace);
    trace.respond(status, seen.error, seen.client_ip.unwrap_or(peer));
    resp.body_mut().finish_with(Finish {
        route: route_metrics.clone(),
        started,
        request_bytes: seen.request_bytes,
        response_bytes: 0,
        status,
        consumer,
        log,
        trace,
    });
}

fn record(
    snap: &Snapshot,
    seen: &Seen<'_>,
    arrival: Arrival,
    (request_id, client_ip): (HeaderValue, IpAddr),
    status: u16,
    route: &Arc<RouteMetrics>,
) -> Record {
    let upstream_target = seen.route.zip(seen.target).and_then(|(r, t)| {
        let up = snap.upstreams.get(r.upstream)?;
        up.targets.get(t).map(|t| t.url.clone())
    });
    Record {
        // When the request arrived, as access logs usually stamp it.
        time: SystemTime::now()
            .checked_sub(arrival.started.elapsed())
            .unwrap_or(SystemTime::UNIX_EPOCH),
        request_id,
        client_ip,
        method: arrival.method,
        target: arrival.target,
        route: route.clone(),
        upstream_target,
        consumer: seen.consumer.as_ref().map(|c| c.name.clone()),
        status,
        request_bytes: 0,
        response_bytes: 0,
        total: Duration::ZERO,
        upstream: seen.upstream_time,
        error: seen.error,
        trace_id: seen.trace.sampled_trace_id(),
    }
}

/// Held by a response body: when the body ends or is dropped (client gone), records the
/// total time and bytes, and sends the access-log line.
#[derive(Debug)]
pub struct Finish {
    route: Arc<RouteMetrics>,
    started: Instant,
    request_bytes: Option<Arc<AtomicU64>>,
    response_bytes: u64,
    status: u16,
    /// Only while usage analytics are on.
    consumer: Option<Arc<Consumer>>,
    /// Boxed: only logged requests pay for it, and the body stays small.
    log: Option<Box<(Arc<AccessLog>, Record)>>,
    trace: RequestTrace,
}

impl Finish {
    /// Counts response body bytes sent.
    pub fn add(&mut self, bytes: u64) {
        self.response_bytes += bytes;
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        let total = self.started.elapsed();
        let request_bytes = self
            .request_bytes
            .as_ref()
            .map_or(0, |b| b.load(Ordering::Relaxed));
        self.route.end(total, request_bytes, self.response_bytes);
        self.trace.finish();
        let usage = self.route.usage();
        if usage.enabled() {
            usage.record(&UsageRequest {
                route: &self.route.route,
                service: &self.route.service,
                consumer: self.consumer.as_deref().map(|c| &*c.name),
                status: self.status,
                request_bytes,
                response_bytes: self.response_bytes,
                total,
            });
        }
        if let Some(mut log) = self.log.take() {
            let record = &mut log.1;
            record.total = total;
            record.request_bytes = request_bytes;
            record.response_bytes = self.response_bytes;
            let (writer, record) = *log;
            writer.send(record);
        }
    }
}
