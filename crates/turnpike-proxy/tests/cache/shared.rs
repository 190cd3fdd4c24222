//! The shared cache in Redis (`cache.storage: redis://...`): what one gateway stores
//! another serves, a purge on one reaches every node's memory cache, an unsafe method on
//! one invalidates for all, and a Redis that is down leaves each node caching on its own.
//!
//! Skipped with a message when no Redis answers on 127.0.0.1:6379, except under `CI=true`.

use std::time::Duration;

use http::Method;
use turnpike_config::model::PurgeKind;
use turnpike_testkit::{MockUpstream, TestGateway, redis_available};

use crate::support::{config, eventually, get, numbered, origin, send, x_cache};

/// Store settings with a prefix no other run uses.
fn redis_store(url: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "  storage: {url}\n  redis_prefix: \"tpcache:{nanos:x}:{}:\"\n  redis_timeout: 1s\n",
        std::process::id()
    )
}

/// Two gateways sharing one Redis store, in front of one upstream.
async fn two_nodes() -> (TestGateway, TestGateway, MockUpstream) {
    let (up, _) = origin(|n, seen| {
        if seen.method == Method::DELETE {
            return numbered(n, &[]);
        }
        numbered(
            n,
            &[
                ("cache-control", "max-age=600"),
                ("surrogate-key", "shared"),
            ],
        )
    })
    .await;
    let store = redis_store("redis://127.0.0.1:6379");
    let a = TestGateway::start(&config(&store, "{}", &up.url())).await;
    let b = TestGateway::start(&config(&store, "{}", &up.url())).await;
    // Both connect in the background; wait until their shared stores answer.
    for gw in [&a, &b] {
        let cache = gw.gateway.shared().snapshot().cache.clone();
        eventually("Redis connected", || cache.shared_up()).await;
    }
    (a, b, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_node_stores_another_serves() {
    if !redis_available() {
        return;
    }
    let (a, b, up) = two_nodes().await;
    assert_eq!(get(&a, "/x", &[]).await.text(), "n=1");
    // The write to Redis happens after the response; wait for B to see it.
    let cache = b.gateway.shared().snapshot().cache.clone();
    for _ in 0..200 {
        let r = get(&b, "/x", &[("cache-control", "only-if-cached")]).await;
        if r.status.as_u16() == 200 {
            assert_eq!((r.text().as_str(), x_cache(&r)), ("n=1", "HIT"));
            assert_eq!(up.hits(), 1);
            assert!(cache.usage().1 >= 1, "B keeps it in memory too");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("node B never found node A's response in Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_on_one_node_reaches_every_node() {
    if !redis_available() {
        return;
    }
    let (a, b, _up) = two_nodes().await;
    get(&a, "/p", &[]).await;
    get(&b, "/p", &[]).await;
    // Both hold it in memory now (B read it from Redis, or fetched and stored it).
    let only = [("cache-control", "only-if-cached")];
    assert_eq!(get(&b, "/p", &only).await.status.as_u16(), 200);
    let purged = a
        .gateway
        .shared()
        .snapshot()
        .cache
        .purge(PurgeKind::Tag, &["shared".into()])
        .await;
    assert!(purged >= 1);
    let b_cache = b.gateway.shared().snapshot().cache.clone();
    eventually("B's memory copy purged", || b_cache.usage().1 == 0).await;
    assert_eq!(get(&b, "/p", &only).await.status.as_u16(), 504);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_method_on_one_node_invalidates_on_all() {
    if !redis_available() {
        return;
    }
    let (a, b, _up) = two_nodes().await;
    let first = get(&a, "/items", &[]).await.text();
    let only = [("cache-control", "only-if-cached")];
    for _ in 0..200 {
        if get(&b, "/items", &only).await.status.as_u16() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        send(&a, Method::DELETE, "/items", &[])
            .await
            .status
            .as_u16(),
        200
    );
    let b_cache = b.gateway.shared().snapshot().cache.clone();
    eventually("B's copy invalidated", || b_cache.usage().1 == 0).await;
    assert_ne!(get(&b, "/items", &[]).await.text(), first);
}

#[tokio::test]
async fn without_redis_each_node_still_caches() {
    // Nothing listens on port 1: Redis is down from the start.
    let (up, _) = origin(|n, _| numbered(n, &[("cache-control", "max-age=600")])).await;
    let store = redis_store("redis://127.0.0.1:1");
    let gw = TestGateway::start(&config(&store, "{}", &up.url())).await;
    assert_eq!(get(&gw, "/d", &[]).await.text(), "n=1");
    let hit = get(&gw, "/d", &[]).await;
    assert_eq!((hit.text().as_str(), x_cache(&hit)), ("n=1", "HIT"));
    assert_eq!(up.hits(), 1);
}
