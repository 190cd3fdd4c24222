//! Quotas: refusal semantics, persistence across a restart, corrupt files, the persister,
//! and Redis exactness under concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::tz::TimeZone;
use turnpike_state::{FailMode, Limiter, QuotaPeriod, Quotas, RedisOptions, StateError};

fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("turnpike-state-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test]
async fn charge_refuses_over_limit_without_adding() {
    let q = Quotas::memory(None).unwrap();
    let tz = TimeZone::UTC;
    let d = q
        .charge("alice", 10, QuotaPeriod::Day, &tz, 7, FailMode::Open)
        .await
        .unwrap();
    assert!(d.allowed);
    assert_eq!((d.used, d.remaining), (7, 3));
    let d = q
        .charge("alice", 10, QuotaPeriod::Day, &tz, 4, FailMode::Open)
        .await
        .unwrap();
    assert!(!d.allowed);
    assert_eq!((d.used, d.remaining), (7, 3));
    let d = q
        .charge("alice", 10, QuotaPeriod::Day, &tz, 3, FailMode::Open)
        .await
        .unwrap();
    assert!(d.allowed && d.remaining == 0);
    // add never refuses; day and month counters are separate.
    q.add("alice", QuotaPeriod::Day, &tz, 5).await;
    let d = q
        .charge("alice", 10, QuotaPeriod::Day, &tz, 0, FailMode::Open)
        .await
        .unwrap();
    assert_eq!(d.used, 15);
    let m = q
        .charge("alice", 10, QuotaPeriod::Month, &tz, 1, FailMode::Open)
        .await
        .unwrap();
    assert_eq!(m.used, 1);
    let now = jiff::Timestamp::now().as_second();
    assert!(d.resets_at > now && d.resets_at <= now + 86_400);
    assert!(m.resets_at >= d.resets_at);
}

#[tokio::test]
async fn restart_keeps_counts() {
    let path = temp_file("quotas.json");
    let tz = TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::UTC);
    {
        let q = Quotas::memory(Some(path.clone())).unwrap();
        q.charge("bob", 100, QuotaPeriod::Month, &tz, 40, FailMode::Open)
            .await
            .unwrap();
        q.charge("bob|weird", 100, QuotaPeriod::Day, &tz, 2, FailMode::Open)
            .await
            .unwrap();
        q.flush().await.unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"bob|"), "{text}");
    let q = Quotas::memory(Some(path.clone())).unwrap();
    let d = q
        .charge("bob", 100, QuotaPeriod::Month, &tz, 70, FailMode::Open)
        .await
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(d.used, 40);
    let d = q
        .charge("bob|weird", 100, QuotaPeriod::Day, &tz, 1, FailMode::Open)
        .await
        .unwrap();
    assert_eq!(d.used, 3);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn corrupt_file_is_an_error_naming_it() {
    let path = temp_file("bad.json");
    std::fs::write(&path, b"{\"version\": 1, \"counters\": [").unwrap();
    let err = Quotas::memory(Some(path.clone())).unwrap_err();
    assert!(matches!(err, StateError::QuotaFile { .. }));
    assert!(err.to_string().contains("bad.json"), "{err}");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn persister_saves_changes_about_every_second() {
    let path = temp_file("quotas.json");
    let q = Arc::new(Quotas::memory(Some(path.clone())).unwrap());
    let task = q.spawn_persister(&tokio::runtime::Handle::current());
    q.charge(
        "carol",
        10,
        QuotaPeriod::Day,
        &TimeZone::UTC,
        3,
        FailMode::Open,
    )
    .await
    .unwrap();
    let mut saved = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if std::fs::read_to_string(&path).is_ok_and(|t| t.contains("carol")) {
            saved = true;
            break;
        }
    }
    assert!(saved, "persister did not write within 4 s");
    // The task ends once the quotas are gone.
    drop(q);
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .unwrap()
        .unwrap();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn redis_quota_is_exact_across_nodes() {
    let Some(url) = common::redis_url("redis_quota_is_exact_across_nodes") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let prefix = common::unique_prefix();
    let nodes: Vec<Arc<Quotas>> = (0..2)
        .map(|_| {
            let limiter = Limiter::redis(common::options(&url, &prefix), 100, rt.handle()).unwrap();
            rt.block_on(limiter.wait_ready(Duration::from_secs(5)));
            Arc::new(Quotas::redis(&limiter).unwrap())
        })
        .collect();
    let allowed = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (q, allowed) = (Arc::clone(&nodes[i % 2]), Arc::clone(&allowed));
                tokio::spawn(async move {
                    for _ in 0..100 {
                        let d = q
                            .charge(
                                "dave",
                                500,
                                QuotaPeriod::Month,
                                &TimeZone::UTC,
                                1,
                                FailMode::Closed,
                            )
                            .await
                            .unwrap();
                        allowed.fetch_add(u64::from(d.allowed), Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        nodes[0]
            .add("dave", QuotaPeriod::Month, &TimeZone::UTC, 5)
            .await;
        let d = nodes[1]
            .charge(
                "dave",
                500,
                QuotaPeriod::Month,
                &TimeZone::UTC,
                0,
                FailMode::Closed,
            )
            .await
            .unwrap();
        assert_eq!(d.used, 505);
        assert_eq!(d.remaining, 0);
        common::cleanup(&url, &prefix).await;
    });
    assert_eq!(allowed.load(Ordering::Relaxed), 500);
}

#[tokio::test]
async fn redis_quota_fail_modes() {
    let limiter = Limiter::redis(
        RedisOptions::new("redis://127.0.0.1:1/"),
        10,
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    assert!(Quotas::redis(&Limiter::memory(10)).is_none());
    let q = Quotas::redis(&limiter).unwrap();
    let tz = TimeZone::UTC;
    let err = q
        .charge("erin", 2, QuotaPeriod::Day, &tz, 1, FailMode::Closed)
        .await;
    assert!(matches!(err, Err(StateError::Unavailable)));
    for expect in [true, true, false] {
        let d = q
            .charge("erin", 2, QuotaPeriod::Day, &tz, 1, FailMode::Open)
            .await
            .unwrap();
        assert_eq!(d.allowed, expect);
    }
    assert!(limiter.stats().snapshot().fallbacks >= 3);
}
