//! Cluster-wide counting through the real Redis: two gateways share one limit exactly,
//! quotas are shared, and a Redis outage gives the configured fail mode (never a 401 or
//! 403) until Redis is back.
//!
//! Skipped with a message when no Redis answers on 127.0.0.1:6379, except under `CI=true`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use turnpike_testkit::{MockUpstream, REDIS, TestGateway, redis_available};

use crate::support::{Caller, code, count, get_as, get_with, key_auth_section};

/// A key prefix no other test run uses.
fn fresh_prefix() -> String {
    format!("tptest:{}:", fastrand_suffix())
}

fn fastrand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{:x}", std::process::id())
}

fn config(state: &str, prefix: &str, fail: &str, upstream: &str, limit: &str) -> String {
    format!(
        "listen: 127.0.0.1:0
traffic:
  state: {state}
  redis_prefix: \"{prefix}\"
  redis_timeout: 1s
upstreams:
  - name: echo
    targets: [{{url: \"{upstream}\"}}]
routes:
  - name: api
    paths: [/api]
    upstream: echo
    rate_limit:
      fail: {fail}
      limits: [{limit}]
"
    )
}

#[tokio::test]
async fn two_gateways_share_one_limit_exactly() {
    if !redis_available() {
        return;
    }
    let up = MockUpstream::echo().await;
    let yaml = config(
        &format!("redis://{REDIS}"),
        &fresh_prefix(),
        "closed",
        &up.url(),
        "{limit: 200, per: hour, by: [ip]}",
    );
    let (a, b) = (
        TestGateway::start(&yaml).await,
        TestGateway::start(&yaml).await,
    );
    let calls = (0..300).map(|i| {
        let gw = if i % 2 == 0 { &a } else { &b };
        get_with(gw, "/api", &[])
    });
    let statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(count(&statuses, 200), 200, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 100);
    assert_eq!(up.hits(), 200);
}

#[tokio::test]
async fn quotas_are_shared_by_every_node() {
    if !redis_available() {
        return;
    }
    let alice = Caller::new("alice");
    let up = MockUpstream::echo().await;
    let yaml = format!(
        "listen: 127.0.0.1:0
{auth}traffic:
  state: redis://{REDIS}
  redis_prefix: \"{prefix}\"
plans:
  - name: trial
    quota: {{limit: 5, per: month}}
consumers:
{consumer}
upstreams:
  - name: echo
    targets: [{{url: \"{url}\"}}]
routes:
  - name: api
    paths: [/api]
    upstream: echo
    auth: {{methods: [key_auth]}}
",
        auth = key_auth_section(),
        prefix = fresh_prefix(),
        consumer = alice.yaml("    plan: trial\n"),
        url = up.url()
    );
    let (a, b) = (
        TestGateway::start(&yaml).await,
        TestGateway::start(&yaml).await,
    );
    for i in 0..5 {
        let gw = if i % 2 == 0 { &a } else { &b };
        assert_eq!(get_as(gw, "/api", &alice).await.status, 200, "call {i}");
    }
    let resp = get_as(&b, "/api", &alice).await;
    assert_eq!(resp.status, 429);
    assert_eq!(code(&resp), "quota_exceeded");
}

#[tokio::test]
async fn an_unreachable_redis_fails_as_configured_never_with_401_or_403() {
    // Port 1 is never a Redis: the outage is there from the start.
    let up = MockUpstream::echo().await;
    let limit = "{limit: 3, per: hour, by: [ip]}";
    let closed = TestGateway::start(&config(
        "redis://127.0.0.1:1",
        "x:",
        "closed",
        &up.url(),
        limit,
    ))
    .await;
    let started = Instant::now();
    let resp = closed.get("/api").await;
    assert_eq!(resp.status, 503);
    assert_eq!(code(&resp), "rate_limit_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let open = TestGateway::start(&config(
        "redis://127.0.0.1:1",
        "x:",
        "open",
        &up.url(),
        limit,
    ))
    .await;
    // Counted locally instead: the limit still holds on this node.
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(open.get("/api").await.status.as_u16());
    }
    assert_eq!(seen, vec![200, 200, 200, 429]);
    assert_eq!(up.hits(), 3);
}

/// A Redis of our own, so the test can kill it and start it again on the same port.
struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed where Redis tests run");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test]
async fn the_gateway_reconnects_when_redis_comes_back() {
    if !redis_available() {
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = OwnRedis::start(port);
    let up = MockUpstream::echo().await;
    let state = format!("redis://127.0.0.1:{port}");
    let limit = "{limit: 1000, per: hour, by: [ip]}";
    let closed = TestGateway::start(&config(&state, "r:", "closed", &up.url(), limit)).await;
    let open = TestGateway::start(&config(&state, "r:", "open", &up.url(), limit)).await;
    assert_eq!(poll_status(&closed, 200).await, 200, "Redis up");
    let port = redis.stop();
    assert_eq!(
        poll_status(&closed, 503).await,
        503,
        "fail closed while Redis is down"
    );
    assert_eq!(
        open.get("/api").await.status,
        200,
        "fail open while Redis is down"
    );
    let _redis = OwnRedis::start(port);
    assert_eq!(poll_status(&closed, 200).await, 200, "back once Redis is");
}

/// Sends requests until one gets `want` (or 10 s pass); returns the last status.
async fn poll_status(gw: &TestGateway, want: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = gw.get("/api").await.status.as_u16();
        if status == want || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
