//! Purges by tag (`Surrogate-Key` / `Cache-Tag`), exact URL and prefix, and their fan-out
//! to a CDN purge webhook (a mock here), with retries and a record of failures.

use std::sync::{Arc, Mutex};

use turnpike_config::model::PurgeKind;
use turnpike_testkit::{MockUpstream, Reply, Seen, TestGateway};

use crate::support::{config, eventually, get, numbered, origin};

async fn tagged_gateway(store: &str) -> (TestGateway, MockUpstream) {
    let (up, _) = origin(|n, seen| {
        let tags = match seen.uri.path() {
            "/items/1" => ("surrogate-key", "item-1 items"),
            "/items/2" => ("cache-tag", "item-2,items"),
            _ => ("surrogate-key", "other"),
        };
        numbered(n, &[("cache-control", "max-age=60"), tags])
    })
    .await;
    let gw = TestGateway::start(&config(store, "{}", &up.url())).await;
    (gw, up)
}

async fn refetched(gw: &TestGateway, path: &str, before: &str) -> bool {
    get(gw, path, &[]).await.text() != before
}

#[tokio::test]
async fn purges_by_tag_url_and_prefix() {
    let (gw, _up) = tagged_gateway("").await;
    let cache = gw.gateway.shared().snapshot().cache.clone();
    let one = get(&gw, "/items/1", &[]).await.text();
    let two = get(&gw, "/items/2", &[]).await.text();
    let other = get(&gw, "/users/1", &[]).await.text();
    // Tags are not shown to clients by default.
    assert!(
        get(&gw, "/items/1", &[])
            .await
            .header("surrogate-key")
            .is_none()
    );
    assert_eq!(cache.purge(PurgeKind::Tag, &["item-1".into()]).await, 1);
    assert!(refetched(&gw, "/items/1", &one).await);
    assert!(!refetched(&gw, "/items/2", &two).await);
    assert_eq!(
        cache.purge(PurgeKind::Tag, &["items".into()]).await,
        2,
        "Cache-Tag values count too"
    );
    assert!(refetched(&gw, "/items/2", &two).await);
    // URLs are scheme://host/path?query as clients ask for them, without the port.
    let url = "http://127.0.0.1/users/1".to_owned();
    assert_eq!(cache.purge(PurgeKind::Url, &[url]).await, 1);
    assert!(refetched(&gw, "/users/1", &other).await);
    let one = get(&gw, "/items/1", &[]).await.text();
    let prefix = "http://127.0.0.1/items/".to_owned();
    assert_eq!(cache.purge(PurgeKind::Prefix, &[prefix]).await, 2);
    assert!(refetched(&gw, "/items/1", &one).await);
}

/// A mock CDN purge API that records what it got and answers with `status`.
async fn cdn(status: u16) -> (MockUpstream, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let up = MockUpstream::start(move |s| {
        log.lock().unwrap().push(s);
        let mut r = Reply::ok("{}");
        r.status = status;
        r
    })
    .await;
    (up, seen)
}

#[tokio::test]
async fn purges_fan_out_to_the_cdn_webhook() {
    let (mock, seen) = cdn(200).await;
    let store = format!(
        "  cdn:\n    - name: fastly\n      url: {}/service/abc/purge\n      headers: {{Fastly-Key: s3cret}}\n      body: '{{\"surrogate_keys\": {{values}}}}'\n      kinds: [tag]\n",
        mock.url()
    );
    let (gw, _up) = tagged_gateway(&store).await;
    let cache = gw.gateway.shared().snapshot().cache.clone();
    cache
        .purge(PurgeKind::Tag, &["item-1".into(), "items".into()])
        .await;
    cache.purge(PurgeKind::Url, &["http://x/y".into()]).await;
    eventually("the CDN purge", || !seen.lock().unwrap().is_empty()).await;
    let got = seen.lock().unwrap()[0].clone();
    assert_eq!(got.method, http::Method::POST);
    assert_eq!(got.uri.path(), "/service/abc/purge");
    assert_eq!(got.headers["fastly-key"], "s3cret");
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"surrogate_keys": ["item-1", "items"]})
    );
    eventually("the counter", || cache.cdn_counts() == (1, 0)).await;
    // Only tag purges were asked for: the URL purge was not sent.
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn failed_cdn_purges_are_retried_then_recorded() {
    let (mock, seen) = cdn(503).await;
    let store = format!(
        "  cdn:\n    - name: edge\n      url: {}/purge/{{value}}\n      retries: 2\n",
        mock.url()
    );
    let (gw, _up) = tagged_gateway(&store).await;
    let cache = gw.gateway.shared().snapshot().cache.clone();
    cache.purge(PurgeKind::Tag, &["a b".into()]).await;
    eventually("the failure record", || !cache.cdn_failures().is_empty()).await;
    let f = &cache.cdn_failures()[0];
    assert_eq!(
        (f.endpoint.as_str(), f.kind, f.attempts),
        ("edge", "tag", 3)
    );
    assert_eq!(f.values, vec!["a b".to_owned()]);
    assert!(f.error.contains("503"), "{}", f.error);
    let paths: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.uri.path().to_owned())
        .collect();
    assert_eq!(paths, vec!["/purge/a%20b"; 3]);
}
