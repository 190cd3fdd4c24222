//! Hot reload and graceful shutdown: config swaps under load lose no request, a bad file
//! is refused while the old config keeps serving, and shutdown drains in-flight requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use turnpike_proxy::reload;
use turnpike_testkit::{MockUpstream, Reply, TestGateway};

fn config(url: &str, path: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nupstreams:\n  - name: backend\n    targets: [{{url: \"{url}\"}}]\nroutes:\n  - {{name: r, paths: [\"{path}\"], upstream: backend}}\n"
    )
}

#[tokio::test]
async fn reload_under_load_fails_no_request() {
    let (a, b) = (
        MockUpstream::named("a").await,
        MockUpstream::named("b").await,
    );
    let gw = Arc::new(TestGateway::start_from_file(&config(&a.url(), "/")).await);
    let load = {
        let gw = gw.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..600 {
                statuses.push(gw.get("/x").await.status.as_u16());
            }
            statuses
        })
    };
    for i in 0..10 {
        let url = if i % 2 == 0 { b.url() } else { a.url() };
        gw.write_config(&config(&url, "/"));
        reload::reload_file(gw.gateway.shared(), gw.config_path()).expect("valid config reloads");
        tokio::task::yield_now().await;
    }
    let statuses = load.await.unwrap();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "failed: {:?}",
        statuses.iter().filter(|s| **s != 200).count()
    );
    assert_eq!(gw.get("/").await.text(), "a", "the last config (a) serves");
}

#[tokio::test]
async fn watched_file_change_applies_and_bad_file_is_refused() {
    let (a, b) = (
        MockUpstream::named("a").await,
        MockUpstream::named("b").await,
    );
    let gw = TestGateway::start_from_file(&config(&a.url(), "/")).await;
    reload::watch_file(
        gw.gateway.shared().clone(),
        gw.config_path().to_owned(),
        Duration::from_millis(20),
    );
    gw.write_config(&config(&b.url(), "/"));
    let start = Instant::now();
    while gw.get("/").await.text() != "b" {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "watched change not applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bad = format!(
        "{}  - {{name: r2, paths: [\"/x\"], upstream: nowhere}}\n",
        config(&a.url(), "/")
    );
    gw.write_config(&bad);
    let err = reload::reload_file(gw.gateway.shared(), gw.config_path())
        .expect_err("bad config is refused");
    let text = err.to_string();
    assert!(
        text.contains("turnpike.yaml:7:") && text.contains("nowhere"),
        "{text}"
    );
    assert_eq!(gw.get("/").await.text(), "b", "old config keeps serving");
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let slow = MockUpstream::start(|_| Reply::ok("done").delay(Duration::from_millis(300))).await;
    let gw = TestGateway::start(&config(&slow.url(), "/")).await;
    let (client, url, addr) = (gw.client.clone(), gw.url("/"), gw.addr);
    let in_flight = tokio::spawn(async move { client.get(&url).await });
    while slow.hits() == 0 {
        tokio::task::yield_now().await;
    }
    gw.gateway.shutdown().await;
    let resp = in_flight.await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "done");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn reload_that_changes_listeners_is_refused() {
    let a = MockUpstream::named("a").await;
    let gw = TestGateway::start(&config(&a.url(), "/")).await;
    let moved = config(&a.url(), "/").replace("listen: 127.0.0.1:0", "listen: 127.0.0.1:1");
    let cfg = turnpike_config::load_str(&moved, std::path::Path::new("t.yaml"), &|_| None).unwrap();
    let err = gw
        .gateway
        .reload(&cfg)
        .expect_err("listener change needs a restart");
    assert!(err.to_string().contains("restart"), "{err}");
    assert_eq!(gw.get("/").await.text(), "a");
}

#[tokio::test]
async fn an_open_breaker_stays_open_across_a_reload_that_keeps_it() {
    let failing = MockUpstream::start(|_| Reply::status(502)).await;
    let yaml = |path: &str| {
        format!(
            "listen: 127.0.0.1:0\nupstreams:\n  - name: backend\n    retries: {{attempts: 0}}\n    health: {{passive: {{consecutive_failures: 0}}}}\n    circuit_breaker: {{failure_ratio: 0.5, min_requests: 2, window: 10s, open_for: 60s}}\n    targets: [{{url: \"{}\"}}]\nroutes:\n  - {{name: r, paths: [\"{path}\"], upstream: backend}}\n",
            failing.url()
        )
    };
    let gw = TestGateway::start_from_file(&yaml("/")).await;
    for _ in 0..2 {
        assert_eq!(gw.get("/").await.status, 502);
    }
    assert_eq!(gw.get("/").await.json()["error"]["code"], "circuit_open");
    // An unrelated edit (another route path) must not close the breaker.
    gw.write_config(&format!(
        "{}  - {{name: r2, paths: [\"/other\"], upstream: backend}}\n",
        yaml("/")
    ));
    reload::reload_file(gw.gateway.shared(), gw.config_path()).unwrap();
    assert_eq!(gw.get("/").await.json()["error"]["code"], "circuit_open");
    assert_eq!(failing.hits(), 2);
}
