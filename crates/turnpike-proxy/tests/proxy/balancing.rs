//! Load balancing: round robin, weights, consistent hashing, least connections and
//! least latency, each checked by where requests actually landed.

use std::time::Duration;

use http::Method;
use turnpike_testkit::{MockUpstream, Reply, TestGateway};

async fn gateway(balancer: &str, targets: &[(&MockUpstream, u32)]) -> TestGateway {
    let list: String = targets
        .iter()
        .map(|(t, w)| format!("      - {{url: \"{}\", weight: {w}}}\n", t.url()))
        .collect();
    let yaml = format!(
        "listen: 127.0.0.1:0\nserver: {{workers: 1}}\nupstreams:\n  - name: pool\n    {balancer}\n    targets:\n{list}routes:\n  - {{name: all, paths: [\"/\"], upstream: pool}}\n"
    );
    TestGateway::start(&yaml).await
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let (a, b, c) = (
        MockUpstream::named("a").await,
        MockUpstream::named("b").await,
        MockUpstream::named("c").await,
    );
    let gw = gateway("balancer: round_robin", &[(&a, 1), (&b, 1), (&c, 1)]).await;
    for _ in 0..30 {
        assert_eq!(gw.get("/").await.status, 200);
    }
    assert_eq!((a.hits(), b.hits(), c.hits()), (10, 10, 10));
}

#[tokio::test]
async fn weighted_round_robin_follows_weights() {
    let (a, b) = (
        MockUpstream::named("a").await,
        MockUpstream::named("b").await,
    );
    let gw = gateway("balancer: round_robin", &[(&a, 3), (&b, 1)]).await;
    for _ in 0..40 {
        gw.get("/").await;
    }
    assert_eq!((a.hits(), b.hits()), (30, 10));
}

#[tokio::test]
async fn consistent_hash_keeps_a_key_on_one_target() {
    let (a, b, c) = (
        MockUpstream::named("a").await,
        MockUpstream::named("b").await,
        MockUpstream::named("c").await,
    );
    let gw = gateway(
        "balancer: consistent_hash\n    hash_on: {header: x-user}",
        &[(&a, 1), (&b, 1), (&c, 1)],
    )
    .await;
    let mut owners = std::collections::HashMap::new();
    for user in 0..30 {
        let user = format!("user-{user}");
        let first = gw
            .client
            .request(Method::GET, &gw.url("/"), &[("x-user", &user)], "")
            .await
            .text();
        for _ in 0..3 {
            let again = gw
                .client
                .request(Method::GET, &gw.url("/"), &[("x-user", &user)], "")
                .await
                .text();
            assert_eq!(again, first, "{user} moved");
        }
        *owners.entry(first).or_insert(0) += 1;
    }
    assert_eq!(
        owners.len(),
        3,
        "30 keys should use every target: {owners:?}"
    );
}

#[tokio::test]
async fn consistent_hash_moves_only_the_keys_of_a_removed_target() {
    let (a, b, c) = (
        MockUpstream::named("a").await,
        MockUpstream::named("b").await,
        MockUpstream::named("c").await,
    );
    let with_c = gateway(
        "balancer: consistent_hash\n    hash_on: path",
        &[(&a, 1), (&b, 1), (&c, 1)],
    )
    .await;
    let without_c = gateway(
        "balancer: consistent_hash\n    hash_on: path",
        &[(&a, 1), (&b, 1)],
    )
    .await;
    for key in 0..60 {
        let path = format!("/k{key}");
        let before = with_c.get(&path).await.text();
        let after = without_c.get(&path).await.text();
        if before != "c" {
            assert_eq!(before, after, "{path} moved although its target stayed");
        }
    }
}

#[tokio::test]
async fn least_connections_avoids_the_busy_target() {
    let slow = MockUpstream::start(|_| Reply::ok("slow").delay(Duration::from_millis(500))).await;
    let fast = MockUpstream::named("fast").await;
    let gw = gateway("balancer: least_connections", &[(&slow, 1), (&fast, 1)]).await;
    // Occupy the slow target, then every new request should go to the idle one.
    let busy = {
        let (client, url) = (gw.client.clone(), gw.url("/"));
        tokio::spawn(async move { client.get(&url).await })
    };
    while slow.hits() + fast.hits() == 0 {
        tokio::task::yield_now().await;
    }
    let first_went_to_slow = slow.hits() == 1;
    for _ in 0..10 {
        let body = gw.get("/").await.text();
        if first_went_to_slow {
            assert_eq!(body, "fast");
        }
    }
    busy.await.unwrap();
}

#[tokio::test]
async fn least_latency_prefers_the_faster_target() {
    let slow = MockUpstream::start(|_| Reply::ok("slow").delay(Duration::from_millis(30))).await;
    let fast = MockUpstream::named("fast").await;
    let gw = gateway("balancer: least_latency", &[(&slow, 1), (&fast, 1)]).await;
    for _ in 0..60 {
        gw.get("/").await;
    }
    assert!(
        fast.hits() > slow.hits() * 3,
        "fast {} vs slow {}",
        fast.hits(),
        slow.hits()
    );
}
