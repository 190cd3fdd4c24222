//! The request path's side of tracing: reads the caller's W3C `traceparent`, starts the
//! gateway's server span (or a new trace), times the phases worth seeing as child spans,
//! sends the upstream a `traceparent` whose parent is the gateway's upstream span, and
//! hands the request's spans to the exporter when the response body ends.
//!
//! With tracing off, a [`RequestTrace`] is `None` and every call here is one branch. A
//! request that is not sampled still propagates (the upstream learns the decision) but
//! records nothing. The span model and the exporter live in `turnpike_analytics::trace`.
//!
//! Adding a phase span is two lines around the phase (or one, for a phase that returns
//! `Result<_, GatewayError>`):
//!
//! ```ignore
//! let phase = seen.trace.phase("cache");
//! let hit = cache.lookup(...).await;
//! seen.trace.end(phase, None); // or end_with(phase, None, &[("turnpike.cache.result", "hit")])
//! // or: let granted = seen.trace.timed("rate_limit", access::limit(...)).await;
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http::header::{HOST, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Version};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pin_project_lite::pin_project;
use turnpike_analytics::Encoder;
use turnpike_analytics::encode::Kind;
use turnpike_analytics::trace::context::{self, SpanId, TraceId};
use turnpike_analytics::trace::{
    AttrValue, Attributes, Clock, SpanData, SpanKind, TraceError, Tracer,
};
use turnpike_config::model;

use turnpike_policy::traffic::Granted;

use crate::access::Admission;
use crate::cache::phase::Exchanged;
use crate::error::GatewayError;
use crate::router::Match;
use crate::snapshot::{RouteRt, Snapshot};
use crate::upstream::Upstream;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Longest time the exporter waits for a TCP connection to the collector.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The tracer for a new config version: the previous one when its settings are the same,
/// a new one (with its own exporter task on `control`) otherwise, none when tracing is
/// off. A validation build (`version` 0) starts no exporter.
pub(crate) fn open(
    cfg: &model::Tracing,
    previous: Option<&Snapshot>,
    version: u64,
    control: &tokio::runtime::Handle,
) -> Result<Option<Arc<Tracer>>, TraceError> {
    if !cfg.enabled || version == 0 {
        return Ok(None);
    }
    let previous = previous.and_then(|p| p.tracer.as_ref());
    if let Some(same) = Tracer::reuse(cfg, previous) {
        return Ok(Some(same));
    }
    let connector = crate::upstream::client::connector(CONNECT_TIMEOUT, false, None)
        .map_err(|e| TraceError::Client(e.to_string()))?;
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(TokioTimer::new())
        .build(connector);
    Tracer::start(cfg, client, control, previous).map(Some)
}

/// The exporter's counters for `/metrics`. The families are always listed; samples only
/// while tracing is on.
pub(crate) fn encode_metrics(e: &mut Encoder, snap: &Snapshot) {
    let tracer = snap.tracer.as_deref();
    let exported = "turnpike_trace_spans_exported";
    e.family(
        exported,
        Kind::Counter,
        "Spans the OTLP collector accepted.",
    );
    if let Some(t) = tracer {
        e.counter(exported, &[], t.counts().exported.load(Ordering::Relaxed));
    }
    let dropped = "turnpike_trace_spans_dropped";
    e.family(dropped, Kind::Counter, "Spans dropped: the export queue was full, or the collector refused them or stayed unreachable.");
    if let Some(t) = tracer {
        let c = t.counts();
        let queue_full = c.queue_full.load(Ordering::Relaxed);
        e.counter(dropped, &[("reason", "queue_full")], queue_full);
        let failed = c.export_failed.load(Ordering::Relaxed);
        e.counter(dropped, &[("reason", "export_failed")], failed);
    }
    let queued = "turnpike_trace_queue_spans";
    e.family(queued, Kind::Gauge, "Spans waiting for export.");
    if let Some(t) = tracer {
        e.sample(queued, &[], t.queued());
    }
}

/// Whether a phase's result shows work worth a span: a route without auth or limits
/// should not fill its traces with empty phases. Refusals always get one.
pub(crate) trait Worth {
    fn worth_a_span(&self) -> bool;
}

impl Worth for Admission {
    /// Someone was authenticated (a preflight or a route without auth is not auth).
    fn worth_a_span(&self) -> bool {
        matches!(self, Admission::Continue(a) if a.identity.is_some())
    }
}

impl Worth for Option<Granted> {
    /// Some limit was checked.
    fn worth_a_span(&self) -> bool {
        self.is_some()
    }
}

/// What the upstream exchange came to, for the upstream span: the status and the target
/// that answered, or the error; `None` when the cache answered without the upstream.
pub(crate) fn exchanged(
    result: &Result<Exchanged, GatewayError>,
) -> Option<Result<(u16, Option<usize>), &GatewayError>> {
    match result {
        Ok(Exchanged::Upstream(resp, held, _)) => Some(Ok((resp.status().as_u16(), held.target))),
        Ok(Exchanged::Stored(_)) => None,
        Err(err) => Some(Err(err)),
    }
}

pin_project! {
    /// [`RequestTrace::timed`]'s future. Written out rather than an `async fn`, which
    /// would hold the phase's future twice (as its argument and as what it awaits): the
    /// phase futures are large, and every request moves them.
    pub(crate) struct Timed<'t, F> {
        trace: &'t mut RequestTrace,
        phase: Phase,
        #[pin]
        fut: F,
    }
}

impl<T: Worth, F: Future<Output = Result<T, GatewayError>>> Future for Timed<'_, F> {
    type Output = Result<T, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.fut.poll(cx));
        if this.phase.started.is_some() {
            match &out {
                Ok(done) if !done.worth_a_span() => {}
                _ => this.trace.end(*this.phase, out.as_ref().err()),
            }
        }
        Poll::Ready(out)
    }
}

/// One request's trace; `None` when tracing is off.
#[derive(Debug, Default)]
pub(crate) struct RequestTrace(Option<Box<Active>>);

#[derive(Debug)]
struct Active {
    tracer: Arc<Tracer>,
    trace_id: TraceId,
    /// The gateway's server span.
    span_id: SpanId,
    /// The caller's span, from its `traceparent`.
    parent: Option<SpanId>,
    /// The upstream client span: the parent the upstream is told about.
    upstream_span: SpanId,
    /// No valid `traceparent` came in, so the caller's `tracestate` (if any) belongs to
    /// no trace of ours and is not passed on.
    restarted: bool,
    /// `None` when the trace is not sampled: nothing is recorded then.
    rec: Option<Recording>,
}

/// What a sampled request collects for its spans.
#[derive(Debug)]
struct Recording {
    clock: Clock,
    started: Instant,
    method: Method,
    name: Cow<'static, str>,
    trace_state: Option<Box<str>>,
    attributes: Attributes,
    /// The server span's error status, for 5xx answers.
    error: Option<Cow<'static, str>>,
    /// Ended child spans.
    children: Vec<SpanData>,
}

/// A phase being timed; ends with [`RequestTrace::end`].
#[derive(Debug, Clone, Copy)]
#[must_use = "a phase is recorded when it is ended"]
pub(crate) struct Phase {
    name: &'static str,
    /// `None` when nothing is recorded (tracing off or not sampled).
    started: Option<Instant>,
}

impl RequestTrace {
    /// Reads the request's trace context and starts the server span. `started` is when
    /// the request arrived.
    pub(crate) fn start(
        tracer: Option<&Arc<Tracer>>,
        req: &Request<hyper::body::Incoming>,
        tls: bool,
        started: Instant,
    ) -> Self {
        let Some(tracer) = tracer else {
            return Self(None);
        };
        let headers = req.headers();
        // More than one `traceparent` is as malformed as a bad one.
        let mut values = headers.get_all(TRACEPARENT).iter();
        let parent = match (values.next(), values.next()) {
            (Some(v), None) => context::parse_traceparent(v.as_bytes()),
            _ => None,
        };
        let (trace_id, parent_id, sampled) = match parent {
            Some(p) => (p.trace_id, Some(p.span_id), p.sampled),
            None => (context::new_trace_id(), None, tracer.sample_new()),
        };
        let rec = sampled.then(|| Recording::new(req, tls, started, parent.is_some()));
        Self(Some(Box::new(Active {
            tracer: tracer.clone(),
            trace_id,
            span_id: context::new_span_id(),
            parent: parent_id,
            upstream_span: context::new_span_id(),
            restarted: parent.is_none(),
            rec,
        })))
    }

    /// The trace id, when this request's spans are exported (for the access log).
    pub(crate) fn sampled_trace_id(&self) -> Option<TraceId> {
        self.0
            .as_deref()
            .filter(|a| a.rec.is_some())
            .map(|a| a.trace_id)
    }

    fn recording(&mut self) -> Option<&mut Recording> {
        self.0.as_mut().and_then(|a| a.rec.as_mut())
    }

    /// The route that matched: names the server span `METHOD /template`.
    pub(crate) fn route(&mut self, snap: &Snapshot, route: &RouteRt, matched: &Match) {
        let Some(rec) = self.recording() else {
            return;
        };
        let template = route.template(matched);
        rec.name = Cow::Owned(format!("{} {template}", rec.method));
        rec.attributes.push(("http.route", template.into()));
        rec.attributes
            .push(("turnpike.route", AttrValue::Shared(route.name.clone())));
        if let Some(up) = snap.upstreams.get(route.upstream) {
            let service = AttrValue::Shared(up.name.clone());
            rec.attributes.push(("turnpike.service", service));
        }
    }

    /// Starts timing a phase.
    pub(crate) fn phase(&self, name: &'static str) -> Phase {
        let recording = self.0.as_ref().is_some_and(|a| a.rec.is_some());
        Phase {
            name,
            started: recording.then(Instant::now),
        }
    }

    /// Ends a phase as a child span of the server span; `refused` is the gateway's error
    /// code when the phase answered the request itself.
    pub(crate) fn end(&mut self, phase: Phase, refused: Option<&GatewayError>) {
        self.end_with(phase, refused, &[]);
    }

    /// [`RequestTrace::end`] with attributes of the phase's own, such as
    /// `("turnpike.cache.result", "hit")`.
    pub(crate) fn end_with(
        &mut self,
        phase: Phase,
        refused: Option<&GatewayError>,
        attributes: &[(&'static str, &'static str)],
    ) {
        let Some(started) = phase.started else {
            return;
        };
        let Some(active) = self.0.as_mut() else {
            return;
        };
        let (trace_id, parent) = (active.trace_id, active.span_id);
        let Some(rec) = active.rec.as_mut() else {
            return;
        };
        let mut span = rec.child(trace_id, parent, phase.name, started);
        for (key, value) in attributes {
            span.attributes.push((key, AttrValue::from(*value)));
        }
        if let Some(err) = refused {
            span.attributes.push(("error.type", err.code().into()));
            // A refusal (401, 429) is the phase doing its job; only a failure of the
            // gateway (a 5xx, such as Redis down) is an error status.
            if err.status().is_server_error() {
                span.error = Some(err.code().into());
            }
        }
        rec.children.push(span);
    }

    /// Times `fut` as the phase `name`; a phase that had nothing to do (see [`Worth`])
    /// gets no span.
    pub(crate) fn timed<T: Worth, F>(&mut self, name: &'static str, fut: F) -> Timed<'_, F>
    where
        F: Future<Output = Result<T, GatewayError>>,
    {
        Timed {
            phase: self.phase(name),
            trace: self,
            fut,
        }
    }

    /// Sets the `traceparent` the upstream gets (this trace, the gateway's upstream span
    /// as parent, the sampling decision); `tracestate` passes unchanged, unless the
    /// caller's `traceparent` was unusable and a new trace began.
    pub(crate) fn inject(&self, headers: &mut HeaderMap) {
        let Some(a) = self.0.as_deref() else {
            return;
        };
        let value = context::traceparent(&a.trace_id, &a.upstream_span, a.rec.is_some());
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            headers.insert(TRACEPARENT, v);
        }
        if a.restarted {
            headers.remove(TRACESTATE);
        }
    }

    /// Records the upstream client span: from `phase` to the response head (or failure),
    /// all attempts included, with the target that answered. `outcome` comes from
    /// [`exchanged`].
    pub(crate) fn upstream(
        &mut self,
        phase: Phase,
        upstream: &Upstream,
        outcome: Option<Result<(u16, Option<usize>), &GatewayError>>,
    ) {
        let (Some(started), Some(outcome)) = (phase.started, outcome) else {
            return;
        };
        let (result, target) = match outcome {
            Ok((status, target)) => (Ok(status), target),
            Err(err) => (Err(err), None),
        };
        let Some(a) = self.0.as_mut() else {
            return;
        };
        let (trace_id, parent, span_id) = (a.trace_id, a.span_id, a.upstream_span);
        let Some(rec) = a.rec.as_mut() else {
            return;
        };
        let mut span = rec.child(trace_id, parent, phase.name, started);
        span.span_id = span_id;
        span.kind = SpanKind::Client;
        span.name = Cow::Owned(rec.method.to_string());
        let attrs = &mut span.attributes;
        attrs.push(("http.request.method", method_attr(&rec.method)));
        attrs.push(("turnpike.service", AttrValue::Shared(upstream.name.clone())));
        if let Some(t) = target.and_then(|t| upstream.targets.get(t)) {
            attrs.push(("server.address", t.authority.host().to_owned().into()));
            let port = t.authority.port_u16().unwrap_or(match t.scheme.as_str() {
                "https" => 443,
                _ => 80,
            });
            attrs.push(("server.port", i64::from(port).into()));
            attrs.push(("url.full", AttrValue::Shared(t.url.clone())));
        }
        match result {
            Ok(status) => {
                attrs.push(("http.response.status_code", i64::from(status).into()));
                // Client spans: every 4xx and 5xx is an error (OTel HTTP conventions).
                if status >= 400 {
                    attrs.push(("error.type", status.to_string().into()));
                    span.error = Some(status.to_string().into());
                }
            }
            Err(err) => {
                attrs.push(("error.type", err.code().into()));
                span.error = Some(err.code().into());
            }
        }
        rec.children.push(span);
    }

    /// The response head is ready: the server span's status and client address. The span
    /// itself ends with [`RequestTrace::finish`], at body end.
    pub(crate) fn respond(&mut self, status: u16, error: Option<&'static str>, client: IpAddr) {
        let Some(rec) = self.recording() else {
            return;
        };
        let attrs = &mut rec.attributes;
        attrs.push(("http.response.status_code", i64::from(status).into()));
        attrs.push(("client.address", client.to_string().into()));
        if let Some(code) = error {
            attrs.push(("turnpike.error.code", code.into()));
        }
        // Server spans: only 5xx are errors; 4xx are the client's (OTel HTTP conventions).
        if status >= 500 {
            let kind: Cow<'static, str> =
                error.map_or_else(|| status.to_string().into(), Into::into);
            attrs.push(("error.type", AttrValue::Str(kind.clone())));
            rec.error = Some(kind);
        }
    }

    /// Ends the server span and queues the request's spans for export.
    pub(crate) fn finish(&mut self) {
        let Some(active) = self.0.take() else {
            return;
        };
        let Active {
            tracer,
            trace_id,
            span_id,
            parent,
            rec,
            ..
        } = *active;
        let Some(rec) = rec else {
            return;
        };
        let mut spans = rec.children;
        spans.push(SpanData {
            trace_id,
            span_id,
            parent_span_id: parent,
            trace_state: rec.trace_state,
            name: rec.name,
            kind: SpanKind::Server,
            start_unix_nanos: rec.clock.at(rec.started),
            end_unix_nanos: rec.clock.at(Instant::now()),
            attributes: rec.attributes,
            error: rec.error,
        });
        tracer.submit(spans);
    }
}

impl Recording {
    /// The server span's request attributes (OTel HTTP server conventions). The query
    /// string is left out: it can carry API keys and tokens.
    fn new(
        req: &Request<hyper::body::Incoming>,
        tls: bool,
        started: Instant,
        continued: bool,
    ) -> Self {
        let headers = req.headers();
        let mut attributes: Attributes = Vec::with_capacity(16);
        attributes.push(("http.request.method", method_attr(req.method())));
        if method_attr(req.method()).as_str() == Some("_OTHER") {
            let original = req.method().as_str().to_owned();
            attributes.push(("http.request.method_original", original.into()));
        }
        attributes.push(("url.path", req.uri().path().to_owned().into()));
        attributes.push(("url.scheme", if tls { "https" } else { "http" }.into()));
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok()));
        if let Some((name, port)) = host.and_then(split_host) {
            attributes.push(("server.address", name.to_owned().into()));
            if let Some(port) = port {
                attributes.push(("server.port", i64::from(port).into()));
            }
        }
        if let Some(ua) = headers.get(USER_AGENT).and_then(|v| v.to_str().ok()) {
            attributes.push(("user_agent.original", ua.to_owned().into()));
        }
        attributes.push(("network.protocol.version", protocol(req.version()).into()));
        // Only a continued trace has a caller whose `tracestate` belongs to it.
        let trace_state = continued
            .then(|| headers.get(TRACESTATE).and_then(|v| v.to_str().ok()))
            .flatten()
            .map(Into::into);
        Self {
            clock: Clock::since(started),
            started,
            method: req.method().clone(),
            name: Cow::Owned(req.method().to_string()),
            trace_state,
            attributes,
            error: None,
            children: Vec::new(),
        }
    }

    /// A child of the server span, from `started` to now.
    fn child(
        &self,
        trace_id: TraceId,
        parent: SpanId,
        name: &'static str,
        started: Instant,
    ) -> SpanData {
        SpanData {
            trace_id,
            span_id: context::new_span_id(),
            parent_span_id: Some(parent),
            trace_state: None,
            name: Cow::Borrowed(name),
            kind: SpanKind::Internal,
            start_unix_nanos: self.clock.at(started),
            end_unix_nanos: self.clock.at(Instant::now()),
            attributes: Vec::new(),
            error: None,
        }
    }
}

/// The method as the conventions want it: the known ones by name, others as `_OTHER`.
fn method_attr(method: &Method) -> AttrValue {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    let name = KNOWN
        .iter()
        .find(|k| **k == method.as_str())
        .copied()
        .unwrap_or("_OTHER");
    AttrValue::from(name)
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// `host[:port]` (also `[v6]:port`) as host and port.
fn split_host(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            (v6, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port.and_then(|p| p.parse().ok())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_split_into_address_and_port() {
        assert_eq!(
            split_host("api.example.com"),
            Some(("api.example.com", None))
        );
        assert_eq!(split_host("a:8080"), Some(("a", Some(8080))));
        assert_eq!(split_host("[::1]:9"), Some(("::1", Some(9))));
        assert_eq!(split_host(""), None);
    }

    #[test]
    fn unknown_methods_are_other() {
        let odd = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_attr(&odd).as_str(), Some("_OTHER"));
        assert_eq!(method_attr(&Method::GET).as_str(), Some("GET"));
    }
}
