//! DDoS and abuse protection end to end: per-IP connection caps and rates at accept,
//! slowloris and slow POST cut off, load shedding by route priority, and temporary bans
//! applied and lifted. Waits poll with a deadline; nothing sleeps to synchronise.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use turnpike_testkit::{Client, MockUpstream, Reply, TestGateway};

/// An echo upstream behind a gateway with `server` (indented under `server:`) and `routes`.
async fn gateway(server: &str, routes: &str) -> (TestGateway, MockUpstream) {
    let up = MockUpstream::echo().await;
    let gw = TestGateway::start(&config(&up.url(), server, routes)).await;
    (gw, up)
}

fn config(url: &str, server: &str, routes: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nserver:\n{server}\nupstreams:\n  - name: up\n    targets: [{{url: \"{url}\"}}]\nroutes:\n{routes}\n"
    )
}

const ALL: &str = "  - {name: all, paths: [\"/\"], upstream: up}";

/// Polls `check` until it is true; panics with `what` after 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request on a new connection; `None` when the gateway closed it without answering.
async fn fresh_get(gw: &TestGateway, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(gw.addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    // A refused connection may already be closed (or reset) when we write.
    let _ = stream.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    match read {
        Ok(_) if !text.is_empty() => Some(text),
        Ok(_) => None,
        Err(_) => panic!("the gateway neither answered nor closed"),
    }
}

/// A connection that has been served once, so it is surely past accept.
async fn open_connection(gw: &TestGateway) -> TcpStream {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    stream
}

/// How long until the gateway closes `stream` while `drip` bytes go out one per 200 ms.
async fn time_until_closed(mut stream: TcpStream, drip: &[u8]) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let mut i = 0;
    loop {
        assert!(started.elapsed() < Duration::from_secs(10), "never closed");
        if let Some(b) = drip.get(i) {
            if stream.write_all(std::slice::from_ref(b)).await.is_err() {
                return started.elapsed();
            }
            i += 1;
        }
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(n)) => assert!(!buf[..n].starts_with(b"HTTP/1.1 200"), "served"),
            Err(_) => {}
        }
    }
}

#[tokio::test]
async fn connection_cap_refuses_the_extra_connection_until_one_closes() {
    let (gw, _up) = gateway("  protection: {max_connections_per_ip: 2}", ALL).await;
    let first = open_connection(&gw).await;
    let _second = open_connection(&gw).await;
    assert_eq!(fresh_get(&gw, "/").await, None, "third is closed at accept");
    assert!(gw.gateway.protection_stats().connections_refused_per_ip >= 1);
    drop(first);
    let gw = &gw;
    eventually("a slot frees up after a close", move || async move {
        fresh_get(gw, "/")
            .await
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
    })
    .await;
}

#[tokio::test]
async fn new_connections_per_ip_are_rate_limited() {
    let (gw, _up) = gateway(
        "  protection: {new_connections_per_ip: {limit: 3, per: 1m}}",
        ALL,
    )
    .await;
    let mut served = 0;
    for _ in 0..6 {
        if fresh_get(&gw, "/").await.is_some() {
            served += 1;
        }
    }
    assert_eq!(served, 3, "a burst of `limit`, then refusals");
    assert_eq!(gw.gateway.protection_stats().connections_rate_limited, 3);
}

#[tokio::test]
async fn slowloris_dripping_a_header_is_cut_after_header_read_timeout() {
    let (gw, up) = gateway("  header_read_timeout: 1s", ALL).await;
    let drip = format!("GET / HTTP/1.1\r\nhost: x\r\nx-slow: {}", "a".repeat(100));
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let took = time_until_closed(stream, drip.as_bytes()).await;
    assert!(
        took >= Duration::from_millis(800),
        "cut too early: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "cut too late: {took:?}");
    assert_eq!(up.hits(), 0);
    // Counted just after the socket closes.
    let gw = &gw;
    eventually("the cut is counted", move || async move {
        gw.gateway.protection_stats().slow_clients_cut == 1
    })
    .await;
}

#[tokio::test]
async fn silent_and_preface_dripping_connections_are_cut_too() {
    let (gw, _up) = gateway("  header_read_timeout: 1s", ALL).await;
    let silent = TcpStream::connect(gw.addr).await.unwrap();
    let took = time_until_closed(silent, b"").await;
    assert!(took < Duration::from_secs(4), "silent connection: {took:?}");
    // The HTTP/2 preface is read before hyper's header timer starts.
    let preface = TcpStream::connect(gw.addr).await.unwrap();
    let took = time_until_closed(preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert!(took < Duration::from_secs(4), "preface drip: {took:?}");
    let gw = &gw;
    eventually("both cuts are counted", move || async move {
        gw.gateway.protection_stats().slow_clients_cut == 2
    })
    .await;
}

#[tokio::test]
async fn slow_post_is_cut_with_408_while_a_normal_post_works() {
    let (gw, up) = gateway("  body_read_timeout: 500ms", ALL).await;
    let ok = gw
        .client
        .request(Method::POST, &gw.url("/upload"), &[], &"x".repeat(4096))
        .await;
    assert_eq!(ok.status, 200);
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc")
        .await
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        up.hits(),
        2,
        "the slow one reached the upstream, then was cut"
    );
    assert!(gw.gateway.protection_stats().slow_clients_cut >= 1);
}

#[tokio::test]
async fn a_body_below_min_body_rate_is_cut() {
    let server = "  body_read_timeout: 5s\n  min_body_rate: {bytes_per_second: 1KiB, grace: 500ms}";
    let (gw, _up) = gateway(server, ALL).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 2048];
    let answer = loop {
        assert!(started.elapsed() < Duration::from_secs(10), "never cut");
        let _ = stream.write_all(b"a").await;
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await
        {
            break String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    };
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// Routes of each priority; paths under `/hold` wait 2 s at the upstream.
async fn shedding_gateway() -> (Arc<TestGateway>, MockUpstream) {
    let up = MockUpstream::start(|seen| {
        let hold = seen.uri.path().ends_with("/hold");
        Reply::ok("done").delay(Duration::from_millis(if hold { 2000 } else { 0 }))
    })
    .await;
    let routes = "  - {name: low, paths: [\"/low\"], upstream: up, priority: low}\n  - {name: normal, paths: [\"/normal\"], upstream: up}\n  - {name: high, paths: [\"/high\"], upstream: up, priority: high}";
    let server = "  protection: {load_shedding: {max_in_flight: 5, retry_after: 2s}}";
    let gw = TestGateway::start(&config(&up.url(), server, routes)).await;
    (Arc::new(gw), up)
}

/// Starts `n` requests to `path` that stay in flight, and waits until they are counted.
async fn hold(gw: &Arc<TestGateway>, n: u64) -> Vec<tokio::task::JoinHandle<u16>> {
    let before = gw.gateway.protection_stats().in_flight;
    let tasks = (0..n)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move {
                Client::http1()
                    .get(&gw.url("/normal/hold"))
                    .await
                    .status
                    .as_u16()
            })
        })
        .collect();
    eventually("requests in flight", move || async move {
        gw.gateway.protection_stats().in_flight == before + n
    })
    .await;
    tasks
}

#[tokio::test]
async fn load_shedding_sheds_low_priority_first() {
    let (gw, _up) = shedding_gateway().await;
    let mut held = hold(&gw, 4).await;
    // 4 in flight: this one would be the 5th, above low's limit of 4.
    let low = gw.get("/low/now").await;
    assert_eq!(low.status, 503);
    assert_eq!(low.json()["error"]["code"], "overloaded");
    assert_eq!(low.header("retry-after"), Some("2"));
    assert_eq!(gw.get("/normal/now").await.status, 200);
    assert_eq!(gw.get("/high/now").await.status, 200);
    held.extend(hold(&gw, 1).await);
    // 5 in flight: normal (limit 5) is shed now, high (limit 6) still served.
    assert_eq!(gw.get("/normal/now").await.status, 503);
    assert_eq!(gw.get("/high/now").await.status, 200);
    for task in held {
        assert_eq!(
            task.await.unwrap(),
            200,
            "admitted requests finish normally"
        );
    }
    let g = &gw;
    eventually("nothing in flight", move || async move {
        g.gateway.protection_stats().in_flight == 0
    })
    .await;
    assert_eq!(gw.get("/low/now").await.status, 200);
    assert_eq!(gw.gateway.protection_stats().requests_shed, 2);
}

const BANS_ROUTES: &str = "  - {name: api, paths: [\"/api\"], upstream: up}";

#[tokio::test]
async fn rejected_requests_get_an_ip_banned_and_the_ban_lifts() {
    let server = "  protection: {bans: {threshold: 5, within: 10s, ban_for: 1500ms}}";
    let (gw, up) = gateway(server, BANS_ROUTES).await;
    assert_eq!(
        gw.get("/api").await.status,
        200,
        "upstream answers never count"
    );
    for _ in 0..5 {
        assert_eq!(gw.get("/nope").await.status, 404);
    }
    // The keep-alive connection is already open: its requests get 403.
    let banned = gw.get("/api").await;
    assert_eq!(banned.status, 403);
    assert_eq!(banned.json()["error"]["code"], "banned");
    assert!(banned.header("retry-after").is_some());
    // New connections from the banned IP are closed at accept.
    assert_eq!(fresh_get(&gw, "/api").await, None);
    let stats = gw.gateway.protection_stats();
    assert_eq!(stats.bans_applied, 1);
    assert!(stats.banned_requests >= 1 && stats.connections_refused_banned >= 1);
    let hits = up.hits();
    let banned_at = Instant::now();
    let gw = &gw;
    eventually("the ban lifts by itself", move || async move {
        fresh_get(gw, "/api")
            .await
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
    })
    .await;
    assert!(banned_at.elapsed() >= Duration::from_millis(1000));
    assert_eq!(up.hits(), hits + 1, "nothing banned reached the upstream");
}

#[tokio::test]
async fn an_allow_listed_ip_is_never_banned() {
    let server =
        "  protection: {bans: {threshold: 3, within: 10s, ban_for: 1m, never: [127.0.0.0/8]}}";
    let (gw, _up) = gateway(server, BANS_ROUTES).await;
    for _ in 0..10 {
        assert_eq!(gw.get("/nope").await.status, 404);
    }
    assert_eq!(gw.get("/api").await.status, 200);
    assert_eq!(
        fresh_get(&gw, "/api").await.map(|r| r[..12].to_owned()),
        Some("HTTP/1.1 200".to_owned())
    );
    assert_eq!(gw.gateway.protection_stats().bans_applied, 0);
}

#[tokio::test]
async fn protection_settings_change_on_reload() {
    let up = MockUpstream::echo().await;
    let gw = TestGateway::start(&config(&up.url(), "  via: true", BANS_ROUTES)).await;
    for _ in 0..5 {
        assert_eq!(gw.get("/nope").await.status, 404);
    }
    assert_eq!(gw.get("/api").await.status, 200, "no bans configured yet");
    let server = "  protection: {bans: {threshold: 2, within: 10s, ban_for: 1m}}";
    let cfg = turnpike_config::load_str(
        &config(&up.url(), server, BANS_ROUTES),
        std::path::Path::new("reload.yaml"),
        &|_| None,
    )
    .unwrap();
    gw.gateway.reload(&cfg).unwrap();
    for _ in 0..2 {
        assert_eq!(gw.get("/nope").await.status, 404);
    }
    assert_eq!(gw.get("/api").await.status, 403);
}

#[tokio::test]
async fn malformed_request_heads_count_towards_a_ban() {
    let server = "  protection: {bans: {threshold: 3, within: 10s, ban_for: 1m}}";
    let (gw, up) = gateway(server, BANS_ROUTES).await;
    for _ in 0..3 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        stream.write_all(b"GARBAGE\r\n\r\n").await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
        assert!(
            out.is_empty() || out.starts_with(b"HTTP/1.1 400"),
            "{out:?}"
        );
    }
    let gw = &gw;
    eventually("the peer is banned", move || async move {
        gw.gateway.protection_stats().bans_applied == 1
    })
    .await;
    assert_eq!(fresh_get(gw, "/api").await, None);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn high_latency_sheds_low_priority_only() {
    let up = MockUpstream::start(|seen| {
        let slow = seen.uri.path().ends_with("/slow");
        Reply::ok("done").delay(Duration::from_millis(if slow { 400 } else { 0 }))
    })
    .await;
    let routes = "  - {name: low, paths: [\"/low\"], upstream: up, priority: low}\n  - {name: normal, paths: [\"/normal\"], upstream: up}";
    let server = "  protection: {load_shedding: {max_in_flight: 1000, max_latency: 200ms}}";
    let gw = TestGateway::start(&config(&up.url(), server, routes)).await;
    // The first sample starts the average: 400 ms, above the 200 ms limit.
    assert_eq!(gw.get("/normal/slow").await.status, 200);
    let low = gw.get("/low/now").await;
    assert_eq!(low.status, 503, "the average is above 200ms");
    assert_eq!(low.header("retry-after"), Some("1"));
    // Normal traffic still flows, and its fast answers pull the average down (weight 0.1).
    for _ in 0..10 {
        assert_eq!(gw.get("/normal/now").await.status, 200);
    }
    assert_eq!(
        gw.get("/low/now").await.status,
        200,
        "400ms × 0.9^10 < 200ms"
    );
    assert_eq!(gw.gateway.protection_stats().requests_shed, 1);
}

#[tokio::test]
async fn an_http1_only_listener_cuts_silent_connections_too() {
    let up = MockUpstream::echo().await;
    let yaml = config(&up.url(), "  header_read_timeout: 1s", ALL).replace(
        "listen: 127.0.0.1:0\n",
        "listeners:\n  - {name: h1, address: \"127.0.0.1:0\", http2: false}\n",
    );
    let gw = TestGateway::start(&yaml).await;
    let silent = TcpStream::connect(gw.addr).await.unwrap();
    let took = time_until_closed(silent, b"").await;
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}
