//! Concurrency limits: in-flight requests per route, refused at once or queued with a
//! bounded wait.

use std::time::{Duration, Instant};

use turnpike_testkit::{MockUpstream, Reply, TestGateway};

use crate::support::{burst, count, get_with};

async fn slow_gateway(concurrency: &str, delay: Duration) -> (TestGateway, MockUpstream) {
    let up = MockUpstream::start(move |_| Reply::ok("slow").delay(delay)).await;
    let yaml = format!(
        "listen: 127.0.0.1:0
upstreams:
  - name: slow
    targets: [{{url: \"{}\"}}]
routes:
  - name: api
    paths: [/api]
    upstream: slow
    concurrency: {concurrency}
",
        up.url()
    );
    (TestGateway::start(&yaml).await, up)
}

#[tokio::test]
async fn requests_over_the_limit_are_refused_at_once() {
    let (gw, up) = slow_gateway("{limit: 2}", Duration::from_millis(500)).await;
    let statuses = burst(&gw, "/api", &[], 5).await;
    assert_eq!(count(&statuses, 200), 2, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 3, "{statuses:?}");
    assert_eq!(up.hits(), 2);
    // The slots are free again once the responses are done.
    assert_eq!(get_with(&gw, "/api", &[]).await.status, 200);
}

#[tokio::test]
async fn a_queue_lets_requests_wait_for_a_slot() {
    let queue = "{limit: 1, queue: {size: 10, timeout: 10s}}";
    let (gw, up) = slow_gateway(queue, Duration::from_millis(100)).await;
    let started = Instant::now();
    let statuses = burst(&gw, "/api", &[], 5).await;
    assert_eq!(statuses, vec![200; 5]);
    assert_eq!(up.hits(), 5);
    // One at a time: five 100 ms calls take at least 500 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(480),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_queued_request_gives_up_after_the_timeout() {
    let queue = "{limit: 1, queue: {size: 10, timeout: 200ms}}";
    let (gw, _up) = slow_gateway(queue, Duration::from_millis(1500)).await;
    let statuses = burst(&gw, "/api", &[], 2).await;
    assert_eq!(count(&statuses, 200), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 1, "{statuses:?}");
}

#[tokio::test]
async fn a_full_queue_refuses_at_once() {
    let queue = "{limit: 1, queue: {size: 1, timeout: 10s}}";
    let (gw, _up) = slow_gateway(queue, Duration::from_millis(300)).await;
    let statuses = burst(&gw, "/api", &[], 4).await;
    // One runs, one waits, two find the queue full.
    assert_eq!(count(&statuses, 200), 2, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 2, "{statuses:?}");
}
