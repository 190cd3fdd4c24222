//! Failure handling: unreachable and slow targets, passive and active health checks,
//! retries within budget, the circuit breaker, and what the client sees for each.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use turnpike_testkit::{MockUpstream, Reply, TestGateway};

fn config(upstream_body: &str, urls: &[String]) -> String {
    let list: String = urls
        .iter()
        .map(|u| format!("      - url: \"{u}\"\n"))
        .collect();
    format!(
        "listen: 127.0.0.1:0\nserver: {{workers: 1}}\nupstreams:\n  - name: pool\n{upstream_body}\n    targets:\n{list}routes:\n  - {{name: all, paths: [\"/\"], upstream: pool}}\n"
    )
}

/// An address nothing listens on.
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

/// Polls `check` until it holds, failing the test after `limit`.
async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn unreachable_target_is_502_then_ejected_to_a_fast_503() {
    let body = "    retries: {attempts: 0}\n    health: {passive: {consecutive_failures: 2, cooldown: 30s}}";
    let gw = TestGateway::start(&config(body, &[dead_url().await])).await;
    for _ in 0..2 {
        let resp = gw.get("/").await;
        assert_eq!(resp.status, 502);
        assert_eq!(resp.json()["error"]["code"], "upstream_unreachable");
    }
    let started = Instant::now();
    let resp = gw.get("/").await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.json()["error"]["code"], "no_healthy_target");
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn idempotent_requests_retry_on_another_target() {
    let alive = MockUpstream::named("alive").await;
    let gw = TestGateway::start(&config(
        "    retries: {attempts: 1}",
        &[dead_url().await, alive.url()],
    ))
    .await;
    for _ in 0..10 {
        let resp = gw.get("/").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "alive");
    }
}

#[tokio::test]
async fn non_idempotent_requests_are_not_retried_on_a_5xx() {
    let failing = MockUpstream::start(|_| Reply::status(503)).await;
    let gw = TestGateway::start(&config("    retries: {attempts: 2}", &[failing.url()])).await;
    let resp = gw
        .client
        .request(Method::POST, &gw.url("/orders"), &[], "{}")
        .await;
    assert_eq!(resp.status, 503);
    assert_eq!(failing.hits(), 1);
    let resp = gw.get("/orders").await;
    assert_eq!(resp.status, 503);
    assert_eq!(failing.hits(), 4, "GET is retried twice");
}

#[tokio::test]
async fn slow_upstream_gives_504() {
    let slow = MockUpstream::start(|_| Reply::ok("late").delay(Duration::from_secs(3))).await;
    let body = "    retries: {attempts: 0}\n    timeouts: {first_byte: 200ms}";
    let gw = TestGateway::start(&config(body, &[slow.url()])).await;
    let started = Instant::now();
    let resp = gw.get("/").await;
    assert_eq!(resp.status, 504);
    assert_eq!(resp.json()["error"]["code"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn active_checks_take_a_failing_target_out_and_back() {
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let a = MockUpstream::start(
        move |seen| match (seen.uri.path(), flag.load(Ordering::SeqCst)) {
            ("/health", false) => Reply::status(500),
            _ => Reply::ok("a"),
        },
    )
    .await;
    let b = MockUpstream::named("b").await;
    let body = "    retries: {attempts: 0}\n    health:\n      active: {path: /health, interval: 50ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}";
    let gw = TestGateway::start(&config(body, &[a.url(), b.url()])).await;
    healthy.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(5), async || {
        let mut bodies = Vec::new();
        for _ in 0..4 {
            bodies.push(gw.get("/").await.text());
        }
        bodies.iter().all(|b| b == "b")
    })
    .await;
    healthy.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(5), async || {
        gw.get("/").await.text() == "a" || gw.get("/").await.text() == "a"
    })
    .await;
}

#[tokio::test]
async fn circuit_breaker_opens_on_failures() {
    let failing = MockUpstream::start(|_| Reply::status(502)).await;
    let body = "    retries: {attempts: 0}\n    health: {passive: {consecutive_failures: 0}}\n    circuit_breaker: {failure_ratio: 0.5, min_requests: 4, window: 10s, open_for: 30s}";
    let gw = TestGateway::start(&config(body, &[failing.url()])).await;
    for _ in 0..4 {
        assert_eq!(gw.get("/").await.status, 502);
    }
    let resp = gw.get("/").await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.json()["error"]["code"], "circuit_open");
    assert_eq!(failing.hits(), 4, "an open breaker sends nothing upstream");
}

#[tokio::test]
async fn target_killed_mid_load_keeps_idempotent_requests_green() {
    let a = MockUpstream::named("a").await;
    let b = MockUpstream::named("b").await;
    let gw = Arc::new(
        TestGateway::start(&config(
            "    retries: {attempts: 2, budget_percent: 100}",
            &[a.url(), b.url()],
        ))
        .await,
    );
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let mut failures = 0;
            for _ in 0..150 {
                if gw.get("/").await.status != 200 {
                    failures += 1;
                }
            }
            failures
        }));
    }
    eventually(Duration::from_secs(10), async || a.hits() + b.hits() > 100).await;
    a.stop();
    let mut failures = 0;
    for t in tasks {
        failures += t.await.unwrap();
    }
    assert_eq!(failures, 0);
    assert!(b.hits() > 300);
}
