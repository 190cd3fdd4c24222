//! Tracing end to end: a gateway exports to a mock OTLP/HTTP collector (a hyper server on
//! port 0 that decodes the JSON it receives), and a mock upstream shows the `traceparent`
//! it was sent. Checked: the server span and its phase spans with their ids and
//! attributes, propagation, continuing and restarting traces, sampling, and a collector
//! that is down.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use turnpike_policy::key_auth;
use turnpike_testkit::{MockUpstream, TestGateway, TestResponse};

use crate::support::{PATIENCE, gateway, scrape, value, wait_for, wait_for_lines};

const KEY_SECRET: &str = "test-key-secret-0123456789abcdef";

/// One export request as the collector saw it.
#[derive(Debug, Clone)]
struct Export {
    content_type: Option<String>,
    api_key: Option<String>,
    body: Value,
}

/// A mock OTLP/HTTP collector: accepts `POST /v1/traces`, keeps every decoded body.
struct Collector {
    url: String,
    exports: Arc<Mutex<Vec<Export>>>,
    arrived: Arc<Notify>,
    /// Exports still to refuse with 503 before accepting.
    refuse: Arc<AtomicUsize>,
}

impl Collector {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let exports = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let refuse = Arc::new(AtomicUsize::new(0));
        let (store, notify, refusing) = (exports.clone(), arrived.clone(), refuse.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (store, notify) = (store.clone(), notify.clone());
                let refusing = refusing.clone();
                let service = service_fn(move |req| {
                    let refused = refusing
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    receive(req, store.clone(), notify.clone(), refused)
                });
                tokio::spawn(
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned(),
                );
            }
        });
        Self {
            url,
            exports,
            arrived,
            refuse,
        }
    }

    /// Every span received so far, each with its resource's `service.name` added as
    /// `"_service"`.
    fn spans(&self) -> Vec<Value> {
        let exports = self.exports.lock().unwrap();
        let mut out = Vec::new();
        for e in exports.iter() {
            for rs in e.body["resourceSpans"].as_array().unwrap() {
                let service = attr(&rs["resource"], "service.name");
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for span in ss["spans"].as_array().unwrap() {
                        let mut span = span.clone();
                        span["_service"] = service.clone();
                        out.push(span);
                    }
                }
            }
        }
        out
    }

    /// Waits until `n` spans of `trace_id` have arrived; fails with what did.
    async fn trace(&self, trace_id: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            // Registered before looking, so an export landing in between still wakes us.
            let arrived = self.arrived.notified();
            let spans: Vec<Value> = self
                .spans()
                .into_iter()
                .filter(|s| s["traceId"] == trace_id)
                .collect();
            if spans.len() >= n {
                return spans;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                tokio::time::timeout(left, arrived).await.is_ok(),
                "expected {n} spans of trace {trace_id}, got {spans:#?}"
            );
        }
    }
}

async fn receive(
    req: Request<Incoming>,
    store: Arc<Mutex<Vec<Export>>>,
    notify: Arc<Notify>,
    refused: bool,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if refused {
        let mut busy = Response::new(Full::new(Bytes::new()));
        *busy.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        return Ok(busy);
    }
    assert_eq!(req.method(), Method::POST);
    assert_eq!(req.uri().path(), "/v1/traces");
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (content_type, api_key) = (header("content-type"), header("x-api-key"));
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).expect("the export is JSON");
    store.lock().unwrap().push(Export {
        content_type,
        api_key,
        body,
    });
    notify.notify_waiters();
    Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
}

/// The value of attribute `key` of a span or resource: a string, or an `intValue`
/// (a string in OTLP/JSON) as a number.
fn attr(of: &Value, key: &str) -> Value {
    let Some(all) = of["attributes"].as_array() else {
        return Value::Null;
    };
    let Some(found) = all.iter().find(|a| a["key"] == key) else {
        return Value::Null;
    };
    let v = &found["value"];
    match (&v["stringValue"], &v["intValue"]) {
        (Value::String(s), _) => Value::String(s.clone()),
        (_, Value::String(n)) => Value::from(n.parse::<i64>().unwrap()),
        (_, n) => n.clone(),
    }
}

fn span_named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

fn nanos(span: &Value, field: &str) -> u64 {
    span[field].as_str().unwrap().parse().unwrap()
}

/// The `traceparent` the upstream received (the echo upstream answers with its headers).
fn upstream_traceparent(resp: &TestResponse) -> (String, String, String) {
    let body = resp.json();
    let tp = body["headers"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("the upstream got no traceparent: {body}"));
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!((parts.len(), parts[0]), (4, "00"), "{tp}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// Key-auth and a rate limit on `/api/{id}`, exporting to `collector` every few ms.
fn config(collector: &str, tracing_extra: &str) -> (String, String) {
    let key = key_auth::generate(KEY_SECRET).unwrap().key;
    let (id, hash) = (
        key_auth::key_id(&key).unwrap(),
        key_auth::hash(KEY_SECRET, &key),
    );
    let yaml = format!(
        "listen: 127.0.0.1:0
upstreams:
  - name: backend
    targets: [{{url: \"{{upstream}}\"}}]
routes:
  - name: items
    paths: [\"/api/{{id}}\"]
    upstream: backend
    auth: {{methods: [key_auth]}}
    rate_limit:
      limits: [{{limit: 1000, per: minute, by: [ip]}}]
  - name: open
    paths: [/open]
    upstream: backend
  - name: cached
    paths: [/cached]
    upstream: backend
    cache: {{default_ttl: 60s}}
auth:
  key_secret: {KEY_SECRET}
  key_auth:
    sources: [{{header: x-api-key}}]
consumers:
  - name: alice
    keys:
      - {{id: {id}, hash: \"{hash}\"}}
tracing:
  enabled: true
  endpoint: {collector}
  service_name: gw-under-test
  flush_interval: 5ms
  headers: {{x-api-key: collector-key}}
{tracing_extra}"
    );
    (yaml, key)
}

async fn start(collector: &Collector, extra: &str) -> (TestGateway, MockUpstream, String) {
    let up = MockUpstream::echo().await;
    let (yaml, key) = config(&collector.url, extra);
    let gw = gateway(&yaml, &up).await;
    (gw, up, key)
}

async fn get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    gw.client
        .request(Method::GET, &gw.url(path), headers, "")
        .await
}

#[tokio::test]
async fn a_request_is_a_server_span_with_auth_limit_and_upstream_spans() {
    let collector = Collector::start().await;
    let (gw, up, key) = start(&collector, "").await;
    let headers = [
        ("x-api-key", key.as_str()),
        ("user-agent", "trace-test/1.0"),
    ];
    let resp = get(&gw, "/api/42?secret=no", &headers).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let (trace_id, parent_id, flags) = upstream_traceparent(&resp);
    assert_eq!(
        flags, "01",
        "a new trace is sampled with the default ratio 1.0"
    );
    let spans = collector.trace(&trace_id, 4).await;
    assert_eq!(spans.len(), 4, "{spans:#?}");

    let server = span_named(&spans, "GET /api/{id}");
    assert_eq!(server["kind"], 2);
    assert_eq!(server["_service"], "gw-under-test");
    assert!(
        server.get("parentSpanId").is_none(),
        "a new trace: {server}"
    );
    let server_id = server["spanId"].as_str().unwrap();
    assert_eq!(server_id.len(), 16);
    assert_eq!(trace_id.len(), 32);
    for (key, expected) in [
        ("http.request.method", Value::from("GET")),
        ("url.path", Value::from("/api/42")),
        ("url.scheme", Value::from("http")),
        ("http.route", Value::from("/api/{id}")),
        ("http.response.status_code", Value::from(200)),
        ("server.address", Value::from("127.0.0.1")),
        ("server.port", Value::from(gw.addr.port())),
        ("client.address", Value::from("127.0.0.1")),
        ("user_agent.original", Value::from("trace-test/1.0")),
        ("turnpike.route", Value::from("items")),
        ("error.type", Value::Null),
    ] {
        assert_eq!(attr(server, key), expected, "{key} in {server:#}");
    }
    let all = serde_json::to_string(&spans).unwrap();
    assert!(!all.contains("secret=no") && !all.contains(&key), "{all}");

    let upstream = span_named(&spans, "GET");
    assert_eq!(upstream["kind"], 3);
    assert_eq!(
        upstream["spanId"], parent_id,
        "the upstream's parent is the gateway's upstream span"
    );
    assert_eq!(attr(upstream, "server.address"), "127.0.0.1");
    assert_eq!(attr(upstream, "server.port"), Value::from(up.addr.port()));
    assert_eq!(attr(upstream, "http.response.status_code"), 200);
    for phase in ["auth", "rate_limit", "GET"] {
        let span = span_named(&spans, phase);
        assert_eq!(span["traceId"], trace_id.as_str());
        assert_eq!(span["parentSpanId"], server_id, "{phase}");
        assert!(nanos(span, "startTimeUnixNano") >= nanos(server, "startTimeUnixNano"));
        assert!(nanos(span, "endTimeUnixNano") <= nanos(server, "endTimeUnixNano"));
        assert!(nanos(span, "startTimeUnixNano") <= nanos(span, "endTimeUnixNano"));
    }
    assert_eq!(span_named(&spans, "auth")["kind"], 1);
    let exports = collector.exports.lock().unwrap().clone();
    assert!(exports.iter().all(|e| {
        e.content_type.as_deref() == Some("application/json")
            && e.api_key.as_deref() == Some("collector-key")
    }));
}

#[tokio::test]
async fn refusals_and_upstream_failures_are_marked() {
    let collector = Collector::start().await;
    let (gw, up, _key) = start(&collector, "").await;
    let refused = get(
        &gw,
        "/api/1",
        &[(
            "traceparent",
            &format!("00-{}-{}-01", "a".repeat(32), "b".repeat(16)),
        )],
    )
    .await;
    assert_eq!(refused.status, 401);
    let spans = collector.trace(&"a".repeat(32), 2).await;
    let server = span_named(&spans, "GET /api/{id}");
    assert_eq!(attr(server, "http.response.status_code"), 401);
    assert_eq!(attr(server, "turnpike.error.code"), "unauthorized");
    assert!(
        server.get("status").is_none(),
        "a 4xx is not a server error"
    );
    assert_eq!(
        attr(span_named(&spans, "auth"), "error.type"),
        "unauthorized"
    );

    up.stop();
    let tp = format!("00-{}-{}-01", "c".repeat(32), "d".repeat(16));
    let failed = get(&gw, "/open", &[("traceparent", &tp)]).await;
    assert_eq!(failed.status, 502, "{}", failed.text());
    let spans = collector.trace(&"c".repeat(32), 2).await;
    let server = span_named(&spans, "GET /open");
    assert_eq!(server["status"]["code"], 2);
    assert_eq!(attr(server, "error.type"), "upstream_unreachable");
    let upstream = span_named(&spans, "GET");
    assert_eq!(upstream["status"]["code"], 2);
    assert_eq!(attr(upstream, "error.type"), "upstream_unreachable");
}

#[tokio::test]
async fn an_incoming_traceparent_is_continued_and_tracestate_passed_on() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let extra = format!(
        "access_log:\n  enabled: true\n  output: {}\n",
        log.display()
    );
    let (gw, _up, _key) = start(&collector, &extra).await;
    let (tid, pid) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let tp = format!("00-{tid}-{pid}-01");
    let headers = [
        ("traceparent", tp.as_str()),
        ("tracestate", "vendor=x,other=y"),
    ];
    let resp = get(&gw, "/open", &headers).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let (trace_id, parent_id, flags) = upstream_traceparent(&resp);
    assert_eq!((trace_id.as_str(), flags.as_str()), (tid, "01"));
    assert_ne!(
        parent_id, pid,
        "the gateway is the upstream's parent, not the caller"
    );
    assert_eq!(resp.json()["headers"]["tracestate"], "vendor=x,other=y");
    let spans = collector.trace(tid, 2).await;
    let server = span_named(&spans, "GET /open");
    assert_eq!(server["parentSpanId"], pid);
    assert_eq!(server["traceState"], "vendor=x,other=y");
    let upstream = span_named(&spans, "GET");
    assert_eq!(upstream["spanId"], parent_id.as_str());
    assert_eq!(upstream["parentSpanId"], server["spanId"]);
    let line: Value = serde_json::from_str(&wait_for_lines(&log, 1).await[0]).unwrap();
    assert_eq!(line["trace_id"], tid, "the access log names the trace");
}

#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_trace() {
    let collector = Collector::start().await;
    let (gw, _up, _key) = start(&collector, "").await;
    // Upper-case hex is not allowed by the W3C spec.
    let bad = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
    let headers = [("traceparent", bad), ("tracestate", "vendor=x")];
    let resp = get(&gw, "/open", &headers).await;
    assert_eq!(resp.status, 200);
    let (trace_id, _, _) = upstream_traceparent(&resp);
    assert_ne!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(
        resp.json()["headers"].get("tracestate").is_none(),
        "the old trace's state is not passed into a new trace"
    );
    let spans = collector.trace(&trace_id, 2).await;
    let server = span_named(&spans, "GET /open");
    assert!(server.get("parentSpanId").is_none());
    assert!(server.get("traceState").is_none());
}

#[tokio::test]
async fn unsampled_traces_propagate_but_export_nothing() {
    let collector = Collector::start().await;
    // New traces are never sampled; callers' decisions are followed.
    let (gw, _up, _key) = start(&collector, "  sample: 0.0\n").await;
    let fresh = get(&gw, "/open", &[]).await;
    let (fresh_id, _, flags) = upstream_traceparent(&fresh);
    assert_eq!(flags, "00");
    let unsampled = format!("00-{}-{}-00", "1".repeat(32), "2".repeat(16));
    let resp = get(&gw, "/open", &[("traceparent", &unsampled)]).await;
    let (tid, _, flags) = upstream_traceparent(&resp);
    assert_eq!(
        (tid.as_str(), flags.as_str()),
        ("1".repeat(32).as_str(), "00")
    );
    let sampled = format!("00-{}-{}-01", "3".repeat(32), "4".repeat(16));
    get(&gw, "/open", &[("traceparent", &sampled)]).await;
    // Spans are queued in request order: once the last request's are in, the others
    // would have been too.
    collector.trace(&"3".repeat(32), 2).await;
    let spans = collector.spans();
    assert!(
        spans
            .iter()
            .all(|s| s["traceId"] != fresh_id && s["traceId"] != "1".repeat(32)),
        "{spans:#?}"
    );
}

#[tokio::test]
async fn a_collector_that_is_down_fails_no_request() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let up = MockUpstream::echo().await;
    let (yaml, _) = config(&closed, "  max_queue: 4\n  batch_size: 2\n");
    let gw = gateway(&yaml, &up).await;
    for _ in 0..20 {
        let resp = get(&gw, "/open", &[]).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    // 40 spans against a queue of 4 while exports are retried: most are dropped, counted.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = scrape(&gw).await;
        let dropped = r#"turnpike_trace_spans_dropped_total{reason="queue_full"}"#;
        if value(&text, dropped).is_some_and(|n| n >= 30.0) {
            assert_eq!(
                value(&text, "turnpike_trace_spans_exported_total"),
                Some(0.0)
            );
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_busy_collector_gets_the_batch_again() {
    let collector = Collector::start().await;
    collector.refuse.store(2, Ordering::SeqCst);
    let (gw, _up, _key) = start(&collector, "").await;
    let resp = get(&gw, "/open", &[]).await;
    let (trace_id, _, _) = upstream_traceparent(&resp);
    // Two 503s, then the retry (after 0.2 s and 0.5 s) lands.
    let spans = collector.trace(&trace_id, 2).await;
    assert_eq!(spans.len(), 2, "sent once it was accepted, not duplicated");
    assert_eq!(collector.refuse.load(Ordering::SeqCst), 0);
    // Counted once the exporter has the collector's answer, a moment after it landed.
    wait_for(&gw, "turnpike_trace_spans_exported_total", 2.0).await;
}

#[tokio::test]
async fn the_cache_phase_is_a_span_with_its_result() {
    let collector = Collector::start().await;
    let (gw, _up, _) = start(&collector, "").await;
    let mut results = Vec::new();
    for (trace_id, spans) in [
        ("4bf92f3577b34da6a3ce929d0e0e4736", 3),
        ("5bf92f3577b34da6a3ce929d0e0e4736", 2),
    ] {
        let parent = format!("00-{trace_id}-00f067aa0ba902b7-01");
        let resp = get(&gw, "/cached", &[("traceparent", parent.as_str())]).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        let got = collector.trace(trace_id, spans).await;
        let cache = span_named(&got, "cache");
        let server = got.iter().find(|s| s["kind"] == 2).unwrap();
        assert_eq!(cache["parentSpanId"], server["spanId"]);
        results.push(attr(cache, "turnpike.cache.result"));
    }
    assert_eq!(results, ["miss", "hit"]);
}
