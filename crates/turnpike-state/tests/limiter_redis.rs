//! Redis limiter against the real server: cluster-wide exactness, all-or-nothing, fail modes
//! and recovery after the server restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use turnpike_state::{FailMode, Limit, Limiter, RedisOptions, StateError};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn two_nodes_allow_exactly_the_limit() {
    let Some(url) = common::redis_url("two_nodes_allow_exactly_the_limit") else {
        return;
    };
    let rt = runtime();
    let prefix = common::unique_prefix();
    let nodes: Vec<Arc<Limiter>> = (0..2)
        .map(|_| {
            Arc::new(Limiter::redis(common::options(&url, &prefix), 1000, rt.handle()).unwrap())
        })
        .collect();
    let limit = Limit::new(1000, Duration::from_secs(3600));
    let allowed = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        for n in &nodes {
            assert!(n.wait_ready(Duration::from_secs(5)).await);
        }
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let node = Arc::clone(&nodes[i % 2]);
                let allowed = Arc::clone(&allowed);
                tokio::spawn(async move {
                    for _ in 0..200 {
                        let d = node
                            .check(&[(b"hot", limit)], 1, FailMode::Closed)
                            .await
                            .unwrap();
                        allowed.fetch_add(u64::from(d[0].allowed), Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        common::cleanup(&url, &prefix).await;
    });
    assert_eq!(allowed.load(Ordering::Relaxed), 1000);
    for n in &nodes {
        assert_eq!(n.stats().snapshot().fallbacks, 0);
    }
}

#[test]
fn all_or_nothing_and_headers_in_redis() {
    let Some(url) = common::redis_url("all_or_nothing_and_headers_in_redis") else {
        return;
    };
    let rt = runtime();
    let prefix = common::unique_prefix();
    let limiter = Limiter::redis(common::options(&url, &prefix), 100, rt.handle()).unwrap();
    assert!(limiter.is_redis());
    rt.block_on(async {
        assert!(limiter.wait_ready(Duration::from_secs(5)).await);
        let tight = Limit::new(2, Duration::from_secs(60));
        let loose = Limit::new(100, Duration::from_secs(60));
        let pairs: [(&[u8], Limit); 2] = [(b"consumer", loose), (b"route", tight)];
        for left in [1, 0] {
            let d = limiter.check(&pairs, 1, FailMode::Closed).await.unwrap();
            assert!(d[0].allowed && d[1].allowed);
            assert_eq!(d[1].remaining, left);
        }
        let d = limiter.check(&pairs, 1, FailMode::Closed).await.unwrap();
        assert!(d[0].allowed && !d[1].allowed);
        assert_eq!(
            d[0].remaining, 98,
            "refused request must not charge the loose limit"
        );
        assert!(
            d[1].retry_after > Duration::from_secs(29)
                && d[1].retry_after <= Duration::from_secs(30)
        );
        assert!(
            d[1].reset_after > Duration::from_secs(59)
                && d[1].reset_after <= Duration::from_secs(60)
        );
        // The same key listed twice is charged twice.
        let dup: [(&[u8], Limit); 2] = [(b"dup", tight), (b"dup", tight)];
        let d = limiter.check(&dup, 1, FailMode::Closed).await.unwrap();
        assert!(d[0].allowed && d[1].allowed);
        assert_eq!(d[1].remaining, 0);
        common::cleanup(&url, &prefix).await;
    });
}

#[test]
fn unreachable_redis_fails_open_to_memory_or_closed_quickly() {
    let rt = runtime();
    let opts = RedisOptions::new("redis://127.0.0.1:1/");
    let limiter = Limiter::redis(opts, 100, rt.handle()).unwrap();
    let limit = Limit::new(3, Duration::from_secs(60));
    rt.block_on(async {
        let started = Instant::now();
        let err = limiter.check(&[(b"k", limit)], 1, FailMode::Closed).await;
        assert!(matches!(err, Err(StateError::Unavailable)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        let mut allowed = 0;
        for _ in 0..5 {
            let d = limiter
                .check(&[(b"k", limit)], 1, FailMode::Open)
                .await
                .unwrap();
            allowed += u32::from(d[0].allowed);
        }
        // The memory fallback still limits.
        assert_eq!(allowed, 3);
        assert!(limiter.stats().snapshot().fallbacks >= 5);
        assert!(!limiter.is_ready());
    });
}

#[test]
fn invalid_url_is_the_only_construction_error() {
    let rt = runtime();
    let err = Limiter::redis(RedisOptions::new("http://nope"), 10, rt.handle());
    assert!(matches!(err, Err(StateError::InvalidUrl { .. })), "{err:?}");
}

/// Checks with FailMode::Closed until one succeeds (true) or `within` passes (false).
async fn until_redis_answers(limiter: &Limiter, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let limit = Limit::new(1_000_000, Duration::from_secs(1));
    while Instant::now() < deadline {
        if limiter
            .check(&[(b"probe", limit)], 1, FailMode::Closed)
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[test]
fn recovers_after_redis_restart_without_rebuilding() {
    let Some(mut server) = common::ThrowawayRedis::start() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot start redis-server and CI=true"
        );
        eprintln!("recovers_after_redis_restart: skipped: cannot start redis-server");
        return;
    };
    let rt = runtime();
    let opts = RedisOptions {
        timeout: Duration::from_millis(200),
        ..RedisOptions::new(server.url())
    };
    let limiter = Limiter::redis(opts, 100, rt.handle()).unwrap();
    rt.block_on(async {
        assert!(until_redis_answers(&limiter, Duration::from_secs(5)).await);
        server.kill();
        // The dead connection is noticed by the next command, which fails fast.
        let limit = Limit::new(1_000_000, Duration::from_secs(1));
        let mut failed = false;
        for _ in 0..50 {
            if limiter
                .check(&[(b"probe", limit)], 1, FailMode::Closed)
                .await
                .is_err()
            {
                failed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(failed, "checks kept succeeding with the server dead");
        let d = limiter
            .check(&[(b"probe", limit)], 1, FailMode::Open)
            .await
            .unwrap();
        assert!(d[0].allowed);
        assert!(limiter.stats().snapshot().fallbacks >= 1);
        assert!(server.restart(), "redis-server did not restart");
        assert!(
            until_redis_answers(&limiter, Duration::from_secs(10)).await,
            "no recovery"
        );
        assert!(limiter.stats().snapshot().redis_errors >= 1);
    });
}

/// Hammers `key` from 8 tasks split over `nodes`, `per_task` checks each; returns admitted.
async fn hammer(nodes: &[Arc<Limiter>], key: &'static [u8], limit: Limit, per_task: u32) -> u64 {
    let allowed = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let node = Arc::clone(&nodes[i % nodes.len()]);
            let allowed = Arc::clone(&allowed);
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let d = node
                        .check(&[(key, limit)], 1, FailMode::Closed)
                        .await
                        .unwrap();
                    allowed.fetch_add(u64::from(d[0].allowed), Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    allowed.load(Ordering::Relaxed)
}

#[test]
fn batching_saves_round_trips_within_one_percent() {
    let Some(url) = common::redis_url("batching_saves_round_trips_within_one_percent") else {
        return;
    };
    let rt = runtime();
    let prefix = common::unique_prefix();
    let nodes: Vec<Arc<Limiter>> = (0..2)
        .map(|_| {
            Arc::new(Limiter::redis(common::options(&url, &prefix), 1000, rt.handle()).unwrap())
        })
        .collect();
    // Batches of 50; one cell per 36 s, so regeneration cannot blur the count.
    let limit = Limit::new(10_000, Duration::from_secs(360_000));
    rt.block_on(async {
        for n in &nodes {
            assert!(n.wait_ready(Duration::from_secs(5)).await);
        }
        let allowed = hammer(&nodes, b"hot", limit, 1_500).await;
        assert!((9_900..=10_000).contains(&allowed), "admitted {allowed}");
        let local: u64 = nodes.iter().map(|n| n.stats().snapshot().local_hits).sum();
        eprintln!("batching: admitted {allowed} of 10000, {local} of 12000 checks local");
        assert!(local > 8_000, "only {local} checks were local");
        common::cleanup(&url, &prefix).await;
    });
}

#[test]
fn unused_reserved_cells_are_refunded() {
    let Some(url) = common::redis_url("unused_reserved_cells_are_refunded") else {
        return;
    };
    let rt = runtime();
    let prefix = common::unique_prefix();
    let holder = Limiter::redis(common::options(&url, &prefix), 100, rt.handle()).unwrap();
    let exact = Arc::new(
        Limiter::redis(common::options(&url, &prefix), 100, rt.handle())
            .unwrap()
            .with_batching(false),
    );
    // Batches of 5; one cell per 36 s, so regeneration cannot blur the counts.
    let limit = Limit::new(1000, Duration::from_secs(36_000));
    let pair: [(&[u8], Limit); 1] = [(b"k", limit)];
    rt.block_on(async {
        assert!(holder.wait_ready(Duration::from_secs(5)).await);
        assert!(exact.wait_ready(Duration::from_secs(5)).await);
        // The holder takes 1 and reserves 5 more, of which it uses none.
        let d = holder.check(&pair, 1, FailMode::Closed).await.unwrap();
        assert!(d[0].allowed);
        assert_eq!(
            d[0].remaining, 999,
            "reserved cells count as remaining for the holder"
        );
        let others = hammer(std::slice::from_ref(&exact), b"k", limit, 130).await;
        assert_eq!(others, 1000 - 1 - 5);
        // After the lease lapses the holder's next round trip gives its 5 cells back:
        // it takes one of them, and the other node gets (at least) the remaining 4.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(holder.check(&pair, 1, FailMode::Closed).await.unwrap()[0].allowed);
        let more = hammer(std::slice::from_ref(&exact), b"k", limit, 2).await;
        assert_eq!(more, 4, "the 4 cells the holder did not use went back");
        assert_eq!(holder.stats().snapshot().local_hits, 0);
        common::cleanup(&url, &prefix).await;
    });
}
