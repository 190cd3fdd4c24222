//! Request coalescing: concurrent misses for one key make one upstream request.

use std::time::Duration;

use turnpike_testkit::TestGateway;

use crate::support::{config, get, numbered, origin};

#[tokio::test]
async fn a_hundred_concurrent_misses_make_one_upstream_request() {
    let (up, _) = origin(|n, _| {
        numbered(n, &[("cache-control", "max-age=60")]).delay(Duration::from_millis(300))
    })
    .await;
    let gw = TestGateway::start(&config("", "{}", &up.url())).await;
    let calls = (0..100).map(|_| get(&gw, "/slow", &[]));
    let answers = futures_util::future::join_all(calls).await;
    assert!(
        answers
            .iter()
            .all(|r| r.status.as_u16() == 200 && r.text() == "n=1")
    );
    assert_eq!(up.hits(), 1, "one upstream request for 100 clients");
    let snap = gw.gateway.shared().snapshot();
    let (_, counters) = &snap.cache.all_counters()[0];
    let coalesced = counters
        .coalesced
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(coalesced, 99);
}

#[tokio::test]
async fn waiting_is_bounded_by_lock_timeout() {
    let (up, _) = origin(|n, _| {
        numbered(n, &[("cache-control", "max-age=60")]).delay(Duration::from_millis(600))
    })
    .await;
    let gw = TestGateway::start(&config("", "{lock_timeout: 100ms}", &up.url())).await;
    let calls = (0..5).map(|_| get(&gw, "/slow", &[]));
    let answers = futures_util::future::join_all(calls).await;
    assert!(answers.iter().all(|r| r.status.as_u16() == 200));
    // The waiters gave up on the slow leader and went upstream themselves.
    assert_eq!(up.hits(), 5);
}
