//! Limiter behaviour seen from outside: memory bounded under a key flood, exact under
//! concurrency, and one limiter (memory or Redis) shared by several single-threaded runtimes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use turnpike_state::{FailMode, Limit, Limiter};

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_million_distinct_keys_stay_bounded() {
    let max_keys = 10_000;
    let limiter = Limiter::memory(max_keys);
    let limit = Limit::new(5, Duration::from_secs(3600));
    current_thread().block_on(async {
        let mut key = [0u8; 8];
        for i in 0..1_000_000u64 {
            key.copy_from_slice(&i.to_le_bytes());
            let d = limiter
                .check(&[(&key, limit)], 1, FailMode::Open)
                .await
                .unwrap();
            assert!(d[0].allowed);
        }
        let stats = limiter.stats().snapshot();
        assert!(stats.memory_keys <= max_keys as u64, "{stats:?}");
        assert!(stats.evictions > 0);

        // A key used just now still limits: its burst of 5 is spent after 5 more.
        let recent = 999_999u64.to_le_bytes();
        let mut allowed = 1; // the flood already took one
        for _ in 0..10 {
            let d = limiter
                .check(&[(&recent, limit)], 1, FailMode::Open)
                .await
                .unwrap();
            allowed += u64::from(d[0].allowed);
        }
        assert_eq!(allowed, 5);
    });
}

#[test]
fn reports_remaining_reset_and_retry() {
    let limiter = Limiter::memory(100);
    let limit = Limit::new(10, Duration::from_secs(10)).with_burst(2);
    current_thread().block_on(async {
        let pair: [(&[u8], Limit); 1] = [(b"k", limit)];
        let d = limiter.check(&pair, 1, FailMode::Open).await.unwrap()[0];
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
        assert_eq!(d.retry_after, Duration::ZERO);
        assert!(d.reset_after <= Duration::from_secs(1));
        limiter.check(&pair, 1, FailMode::Open).await.unwrap();
        let d = limiter.check(&pair, 1, FailMode::Open).await.unwrap()[0];
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(
            d.retry_after > Duration::from_millis(900) && d.retry_after <= Duration::from_secs(1)
        );
        // A cost larger than the burst can never pass.
        let d = limiter
            .check(&[(b"other", limit)], 3, FailMode::Open)
            .await
            .unwrap()[0];
        assert!(!d.allowed);
    });
}

/// Two current-thread runtimes on their own threads share one limiter built on a third.
fn hammer_from_two_runtimes(limiter: Arc<Limiter>, key: &'static [u8], limit: Limit) -> u64 {
    let allowed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let limiter = Arc::clone(&limiter);
            let allowed = Arc::clone(&allowed);
            std::thread::spawn(move || {
                current_thread().block_on(async {
                    let tasks: Vec<_> = (0..4)
                        .map(|_| {
                            let limiter = Arc::clone(&limiter);
                            let allowed = Arc::clone(&allowed);
                            tokio::spawn(async move {
                                for _ in 0..100 {
                                    let d = limiter
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
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    allowed.load(Ordering::Relaxed)
}

#[test]
fn memory_limiter_from_several_runtimes() {
    let limiter = Arc::new(Limiter::memory(1000));
    let limit = Limit::new(300, Duration::from_secs(3600));
    assert_eq!(hammer_from_two_runtimes(limiter, b"shared", limit), 300);
}

mod common;

#[test]
fn redis_limiter_from_several_runtimes() {
    let Some(url) = common::redis_url("redis_limiter_from_several_runtimes") else {
        return;
    };
    // The control runtime owns the connection tasks; the callers are other runtimes.
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let prefix = common::unique_prefix();
    let limiter =
        Arc::new(Limiter::redis(common::options(&url, &prefix), 1000, control.handle()).unwrap());
    assert!(current_thread().block_on(limiter.wait_ready(Duration::from_secs(5))));
    let limit = Limit::new(300, Duration::from_secs(3600));
    assert_eq!(
        hammer_from_two_runtimes(Arc::clone(&limiter), b"shared", limit),
        300
    );
    assert_eq!(limiter.stats().snapshot().fallbacks, 0);
    control.block_on(common::cleanup(&url, &prefix));
}
