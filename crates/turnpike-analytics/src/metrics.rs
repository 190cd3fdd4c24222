//! The request metrics registry: per-route blocks of striped atomics, gateway error codes,
//! and the bounded per-consumer family. Outlives config reloads (the snapshot hands it on),
//! so counters never reset on a reload.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use crate::encode::{Encoder, Kind};
use crate::histogram::{Cells, Totals};
use crate::shard;
use crate::usage::Usage;

/// Method label values; anything else is `other`.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "other",
];
/// Status class label values.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Codes of the gateway's own answers (`GatewayError::code`, policy refusals); anything
/// else is counted as `other`.
pub const CODES: [&str; 23] = [
    "no_route",
    "bad_request",
    "misdirected_request",
    "body_too_large",
    "uri_too_long",
    "too_many_headers",
    "no_healthy_target",
    "circuit_open",
    "upstream_unreachable",
    "upstream_protocol_error",
    "upstream_timeout",
    "request_timeout",
    "overloaded",
    "banned",
    "unauthorized",
    "forbidden",
    "insufficient_scope",
    "temporarily_unavailable",
    "rate_limited",
    "quota_exceeded",
    "too_many_concurrent_requests",
    "rate_limit_unavailable",
    "other",
];

/// Index of a method in [`METHODS`].
pub fn method_index(method: &str) -> usize {
    METHODS[..9].iter().position(|m| *m == method).unwrap_or(9)
}

/// Index of a status in [`CLASSES`]; statuses past 599 count as `5xx`.
pub fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

fn code_index(code: &str) -> usize {
    CODES
        .iter()
        .position(|c| *c == code)
        .unwrap_or(CODES.len() - 1)
}

/// One thread's counters for one route; aligned so shards never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct RouteShard {
    requests: [[AtomicU64; CLASSES.len()]; METHODS.len()],
    total: Cells,
    upstream: Cells,
    gateway: Cells,
    request_bytes: AtomicU64,
    response_bytes: AtomicU64,
}

/// The metrics of one route (and the service it sends to). Resolved once per config
/// version, so recording needs no lookup.
#[derive(Debug)]
pub struct RouteMetrics {
    pub route: Box<str>,
    pub service: Box<str>,
    shards: Box<[RouteShard]>,
    /// The gateway's usage rollups, reachable from the route so recording clones no `Arc`.
    usage: Arc<Usage>,
}

/// What is known about a request once its response head is ready.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// From [`method_index`].
    pub method: usize,
    pub status: u16,
    /// Waiting for the upstream's response head (all attempts); `None` when the gateway
    /// answered without asking one.
    pub upstream: Option<Duration>,
    /// Time to the response head minus `upstream`: what the gateway itself added.
    pub gateway: Duration,
}

impl RouteMetrics {
    fn new(route: &str, service: &str, shards: usize, usage: Arc<Usage>) -> Self {
        Self {
            route: route.into(),
            service: service.into(),
            shards: (0..shards).map(|_| RouteShard::default()).collect(),
            usage,
        }
    }

    /// The usage rollups requests of this route are counted in.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    fn shard(&self) -> &RouteShard {
        &self.shards[shard::index(self.shards.len())]
    }

    /// Counts a request when its response head is ready.
    pub fn head(&self, h: &Head) {
        let s = self.shard();
        let method = h.method.min(METHODS.len() - 1);
        s.requests[method][class_index(h.status)].fetch_add(1, Ordering::Relaxed);
        if let Some(up) = h.upstream {
            s.upstream.observe(up);
        }
        s.gateway.observe(h.gateway);
    }

    /// Records the end of a response body (or its drop): total time and bytes.
    pub fn end(&self, total: Duration, request_bytes: u64, response_bytes: u64) {
        let s = self.shard();
        s.total.observe(total);
        // Most requests have no body: skip the atomic add.
        if request_bytes > 0 {
            s.request_bytes.fetch_add(request_bytes, Ordering::Relaxed);
        }
        s.response_bytes
            .fetch_add(response_bytes, Ordering::Relaxed);
    }

    /// Requests counted so far, summed over shards: `[method][class]`.
    pub fn requests(&self) -> [[u64; CLASSES.len()]; METHODS.len()] {
        let mut out = [[0; CLASSES.len()]; METHODS.len()];
        for s in &self.shards {
            for (row, cells) in out.iter_mut().zip(&s.requests) {
                for (o, c) in row.iter_mut().zip(cells) {
                    *o += c.load(Ordering::Relaxed);
                }
            }
        }
        out
    }

    fn totals(&self, pick: impl Fn(&RouteShard) -> &Cells) -> Totals {
        let mut t = Totals::default();
        self.shards.iter().for_each(|s| pick(s).add_to(&mut t));
        t
    }

    fn bytes(&self, pick: impl Fn(&RouteShard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| pick(s).load(Ordering::Relaxed))
            .sum()
    }
}

/// Gateway-wide striped counters.
#[derive(Debug, Default)]
#[repr(align(128))]
struct GlobalShard {
    codes: [AtomicU64; CODES.len()],
}

/// Requests per consumer and status class, for at most `max` consumers (the rest are
/// `other`): a bounded family, since consumer names can come from tokens.
#[derive(Debug)]
struct ConsumerFamily {
    enabled: AtomicBool,
    max: AtomicUsize,
    named: RwLock<HashMap<Box<str>, Arc<[AtomicU64; CLASSES.len()]>>>,
    other: [AtomicU64; CLASSES.len()],
}

impl ConsumerFamily {
    fn record(&self, name: &str, class: usize) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let read = self.named.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(cells) = read.get(name) {
            cells[class].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let full = read.len() >= self.max.load(Ordering::Relaxed);
        drop(read);
        if full {
            self.other[class].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut write = self.named.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have filled the last place meanwhile.
        if !write.contains_key(name) && write.len() >= self.max.load(Ordering::Relaxed) {
            drop(write);
            self.other[class].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let cells = write.entry(name.into()).or_default();
        cells[class].fetch_add(1, Ordering::Relaxed);
    }
}

/// Every request metric of one gateway.
#[derive(Debug)]
pub struct Metrics {
    shards: usize,
    routes: Mutex<Vec<Arc<RouteMetrics>>>,
    unmatched: Arc<RouteMetrics>,
    global: Box<[GlobalShard]>,
    consumers: ConsumerFamily,
    usage: Arc<Usage>,
    /// Config reloads applied, and refused (the old config kept serving).
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let shards = shard::count();
        let usage = Arc::new(Usage::new());
        Self {
            shards,
            routes: Mutex::new(Vec::new()),
            unmatched: Arc::new(RouteMetrics::new("", "", shards, usage.clone())),
            usage,
            global: (0..shards).map(|_| GlobalShard::default()).collect(),
            consumers: ConsumerFamily {
                enabled: AtomicBool::new(true),
                max: AtomicUsize::new(100),
                named: RwLock::new(HashMap::new()),
                other: Default::default(),
            },
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            access_log_dropped: AtomicU64::new(0),
        }
    }

    /// Applies the `metrics:` settings of a new config version.
    pub fn configure(&self, consumer_labels: bool, max_consumers: usize) {
        self.consumers
            .enabled
            .store(consumer_labels, Ordering::Relaxed);
        self.consumers.max.store(max_consumers, Ordering::Relaxed);
    }

    /// The metrics of `route` → `service`, the same block across reloads.
    pub fn route(&self, route: &str, service: &str) -> Arc<RouteMetrics> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = routes
            .iter()
            .find(|r| &*r.route == route && &*r.service == service)
        {
            return r.clone();
        }
        let r = Arc::new(RouteMetrics::new(
            route,
            service,
            self.shards,
            self.usage.clone(),
        ));
        routes.push(r.clone());
        r
    }

    /// Forgets routes a new config no longer has (so renames cannot grow the series).
    pub fn retain_routes(&self, keep: &[Arc<RouteMetrics>]) {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.retain(|r| keep.iter().any(|k| Arc::ptr_eq(k, r)));
    }

    /// The usage rollups (off until enabled; the same across reloads).
    pub fn usage(&self) -> &Arc<Usage> {
        &self.usage
    }

    /// Requests that matched no route (`route=""`).
    pub fn unmatched(&self) -> &Arc<RouteMetrics> {
        &self.unmatched
    }

    /// Counts an answer the gateway made itself, by its code.
    pub fn gateway_error(&self, code: &str) {
        let s = &self.global[shard::index(self.global.len())];
        s.codes[code_index(code)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request of an identified consumer (when consumer labels are on).
    pub fn consumer(&self, name: &str, status: u16) {
        self.consumers.record(name, class_index(status));
    }

    /// Gateway-made answers so far, by [`CODES`] index.
    pub fn codes(&self) -> [u64; CODES.len()] {
        let mut out = [0; CODES.len()];
        for s in self.global.iter() {
            for (o, c) in out.iter_mut().zip(&s.codes) {
                *o += c.load(Ordering::Relaxed);
            }
        }
        out
    }

    /// The registry's families (request counts, latencies, bytes, codes, consumers).
    pub fn encode(&self, e: &mut Encoder) {
        let mut routes = self
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        routes.push(self.unmatched.clone());
        encode_requests(e, &routes);
        encode_latency(e, &routes);
        encode_bytes(e, &routes);
        self.encode_codes(e);
        self.encode_consumers(e);
    }

    fn encode_codes(&self, e: &mut Encoder) {
        let codes = self.codes();
        let name = "turnpike_gateway_responses";
        e.family(
            name,
            Kind::Counter,
            "Answers the gateway made itself, by error code.",
        );
        for (code, n) in CODES.iter().zip(codes).filter(|(_, n)| *n > 0) {
            e.counter(name, &[("code", code)], n);
        }
        let of = |c: &str| codes[code_index(c)];
        let refusals: [(&str, &str, &[&str]); 3] = [
            (
                "turnpike_rate_limit_refusals",
                "Requests refused by a rate limit (429 rate_limited, 503 rate_limit_unavailable).",
                &["rate_limited", "rate_limit_unavailable"],
            ),
            (
                "turnpike_quota_refusals",
                "Requests refused because a quota was used up (429).",
                &["quota_exceeded"],
            ),
            (
                "turnpike_concurrency_refusals",
                "Requests refused by a concurrency limit (429).",
                &["too_many_concurrent_requests"],
            ),
        ];
        for (family, help, codes) in refusals {
            e.family(family, Kind::Counter, help);
            e.counter(family, &[], codes.iter().map(|c| of(c)).sum());
        }
        let name = "turnpike_auth_failures";
        e.family(
            name,
            Kind::Counter,
            "Requests refused by authentication or authorization, by status and code.",
        );
        for (status, code) in [
            ("401", "unauthorized"),
            ("403", "forbidden"),
            ("403", "insufficient_scope"),
        ] {
            e.counter(name, &[("status", status), ("code", code)], of(code));
        }
    }

    fn encode_consumers(&self, e: &mut Encoder) {
        let name = "turnpike_consumer_requests";
        e.family(name, Kind::Counter, "Requests by identified consumer and status class (at most metrics.max_consumers names, the rest `other`).");
        let named = self
            .consumers
            .named
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<_> = named.iter().collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        let rows = names
            .into_iter()
            .map(|(n, c)| (&**n, &**c))
            .chain(std::iter::once(("other", &self.consumers.other)));
        for (consumer, cells) in rows {
            for (class, c) in CLASSES.iter().zip(cells.iter()) {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    e.counter(name, &[("consumer", consumer), ("status_class", class)], n);
                }
            }
        }
    }
}

fn encode_requests(e: &mut Encoder, routes: &[Arc<RouteMetrics>]) {
    let name = "turnpike_requests";
    e.family(
        name,
        Kind::Counter,
        "Requests by route, service (upstream), method and status class; route=\"\" is no route.",
    );
    for r in routes {
        for (method, row) in METHODS.iter().zip(r.requests()) {
            for (class, n) in CLASSES.iter().zip(row).filter(|(_, n)| *n > 0) {
                let labels = [
                    ("route", &*r.route),
                    ("service", &*r.service),
                    ("method", method),
                    ("status_class", class),
                ];
                e.counter(name, &labels, n);
            }
        }
    }
}

fn encode_latency(e: &mut Encoder, routes: &[Arc<RouteMetrics>]) {
    type Pick = fn(&RouteShard) -> &Cells;
    let families: [(&str, &str, Pick); 3] = [
        (
            "turnpike_request_duration_seconds",
            "Time from the request to the end of the response body.",
            |s| &s.total,
        ),
        (
            "turnpike_upstream_duration_seconds",
            "Time waiting for the upstream's response head, retries included.",
            |s| &s.upstream,
        ),
        (
            "turnpike_gateway_duration_seconds",
            "Time the gateway added: time to the response head minus the upstream's.",
            |s| &s.gateway,
        ),
    ];
    for (name, help, pick) in families {
        e.family(name, Kind::Histogram, help);
        for r in routes {
            let t = r.totals(pick);
            if t.count() > 0 {
                e.histogram(name, &[("route", &*r.route), ("service", &*r.service)], &t);
            }
        }
    }
}

fn encode_bytes(e: &mut Encoder, routes: &[Arc<RouteMetrics>]) {
    type Pick = fn(&RouteShard) -> &AtomicU64;
    let families: [(&str, &str, Pick); 2] = [
        (
            "turnpike_request_bytes",
            "Request body bytes received from clients.",
            |s| &s.request_bytes,
        ),
        (
            "turnpike_response_bytes",
            "Response body bytes sent to clients.",
            |s| &s.response_bytes,
        ),
    ];
    for (name, help, pick) in families {
        e.family(name, Kind::Counter, help);
        for r in routes {
            let requests: u64 = r.requests().iter().flatten().sum();
            if requests > 0 {
                e.counter(
                    name,
                    &[("route", &*r.route), ("service", &*r.service)],
                    r.bytes(pick),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(METHODS[method_index("GET")], "GET");
        assert_eq!(METHODS[method_index("PROPFIND")], "other");
        assert_eq!(CLASSES[class_index(204)], "2xx");
        assert_eq!(CLASSES[class_index(99)], "1xx");
        assert_eq!(CLASSES[class_index(999)], "5xx");
        assert_eq!(CODES[code_index("made_up")], "other");
    }

    #[test]
    fn consumers_past_the_cap_are_other() {
        let m = Metrics::new();
        m.configure(true, 2);
        for name in ["a", "b", "c", "d", "a"] {
            m.consumer(name, 200);
        }
        let mut e = Encoder::new();
        m.encode(&mut e);
        let text = e.finish();
        let lines: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("turnpike_consumer_requests_total"))
            .collect();
        assert_eq!(
            lines,
            [
                "turnpike_consumer_requests_total{consumer=\"a\",status_class=\"2xx\"} 2",
                "turnpike_consumer_requests_total{consumer=\"b\",status_class=\"2xx\"} 1",
                "turnpike_consumer_requests_total{consumer=\"other\",status_class=\"2xx\"} 2",
            ]
        );
    }

    #[test]
    fn the_same_route_keeps_its_block_until_removed() {
        let m = Metrics::new();
        let a = m.route("r", "s");
        assert!(Arc::ptr_eq(&a, &m.route("r", "s")));
        m.retain_routes(&[]);
        assert!(!Arc::ptr_eq(&a, &m.route("r", "s")));
    }
}
