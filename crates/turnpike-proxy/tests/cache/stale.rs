//! RFC 5861: stale-while-revalidate serves the stale copy and refreshes it in the
//! background; stale-if-error serves it when the upstream fails or is down. The
//! upstream's `Age` makes responses stale on arrival, so no test waits for a clock.

use turnpike_testkit::TestGateway;

use crate::support::{WithStatus, config, eventually, get, numbered, origin, x_cache};

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_in_the_background() {
    let (up, _) = origin(|n, _| {
        // Born 20 s old with 10 s of freshness: stale, within the 60 s window.
        numbered(
            n,
            &[
                ("cache-control", "max-age=10, stale-while-revalidate=60"),
                ("age", "20"),
            ],
        )
    })
    .await;
    let gw = TestGateway::start(&config("", "{}", &up.url())).await;
    assert_eq!(get(&gw, "/s", &[]).await.text(), "n=1");
    let stale = get(&gw, "/s", &[]).await;
    assert_eq!((stale.text().as_str(), x_cache(&stale)), ("n=1", "STALE"));
    assert!(
        stale
            .header("cache-status")
            .unwrap()
            .contains("detail=stale-while-revalidate")
    );
    // The refresh replaces the entry without a client waiting for it.
    eventually("the background refresh", || up.hits() == 2).await;
    let snap = gw.gateway.shared().snapshot();
    eventually("the refreshed entry", || {
        snap.cache.all_counters()[0]
            .1
            .stored
            .load(std::sync::atomic::Ordering::Relaxed)
            == 2
    })
    .await;
    assert_eq!(get(&gw, "/s", &[]).await.text(), "n=2");
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_upstream_fails_or_is_down() {
    let (up, _) = origin(|n, _| {
        if n == 1 {
            numbered(
                n,
                &[
                    ("cache-control", "max-age=10, stale-if-error=600"),
                    ("age", "20"),
                ],
            )
        } else {
            numbered(n, &[]).status_code(503)
        }
    })
    .await;
    let gw = TestGateway::start(&config("", "{}", &up.url())).await;
    assert_eq!(get(&gw, "/e", &[]).await.text(), "n=1");
    let failed = get(&gw, "/e", &[]).await;
    assert_eq!(
        (failed.status.as_u16(), failed.text().as_str()),
        (200, "n=1")
    );
    assert_eq!(x_cache(&failed), "STALE");
    assert!(
        failed
            .header("cache-status")
            .unwrap()
            .contains("stale-if-error")
    );
    up.stop();
    let down = get(&gw, "/e", &[]).await;
    assert_eq!((down.status.as_u16(), down.text().as_str()), (200, "n=1"));
}

#[tokio::test]
async fn without_stale_if_error_the_error_reaches_the_client() {
    let (up, _) = origin(|n, _| {
        if n == 1 {
            numbered(n, &[("cache-control", "max-age=10"), ("age", "20")])
        } else {
            numbered(n, &[]).status_code(503)
        }
    })
    .await;
    let gw = TestGateway::start(&config("", "{}", &up.url())).await;
    get(&gw, "/e", &[]).await;
    assert_eq!(get(&gw, "/e", &[]).await.status.as_u16(), 503);
}
