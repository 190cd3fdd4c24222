//! Cache keys: an authenticating route keys by consumer by default, so one consumer's
//! response never reaches another (checked over random request sequences), and query
//! normalisation is opt-in.

use turnpike_policy::key_auth::{self, NewKey};
use turnpike_testkit::TestGateway;

use crate::support::{WithBody, get, numbered, origin, x_cache};

const SECRET: &str = "cache-test-key-secret-0123456789ab";

fn consumers(keys: &[(&str, &NewKey)]) -> String {
    keys.iter()
        .map(|(name, k)| {
            format!(
                "  - name: {name}\n    keys: [{{id: {}, hash: \"{}\"}}]\n",
                k.id, k.hash
            )
        })
        .collect()
}

fn config(upstream: &str, keys: &[(&str, &NewKey)], policy: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\ncache:\n  x_cache: true\nauth:\n  key_secret: {SECRET}\nconsumers:\n{}upstreams:\n  - name: backend\n    targets: [{{url: {upstream}}}]\nroutes:\n  - name: api\n    paths: [\"/\"]\n    upstream: backend\n    auth: {{methods: [key_auth]}}\n    cache: {policy}\n",
        consumers(keys)
    )
}

#[tokio::test]
async fn per_consumer_responses_never_reach_another_consumer() {
    // The upstream answers with the consumer it was called for, and allows caching.
    let (up, _) = origin(|n, seen| {
        let who = seen
            .headers
            .get("x-consumer-id")
            .map_or("?", |v| v.to_str().unwrap());
        numbered(n, &[("cache-control", "max-age=60, public")]).body_text(who)
    })
    .await;
    let names = ["alice", "bob", "carol"];
    let keys: Vec<NewKey> = names
        .iter()
        .map(|_| key_auth::generate(SECRET).unwrap())
        .collect();
    let pairs: Vec<(&str, &NewKey)> = names.iter().copied().zip(keys.iter()).collect();
    let gw = TestGateway::start(&config(&up.url(), &pairs, "{}")).await;
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..300 {
        let who = rng.usize(..names.len());
        let path = format!("/p{}?q={}", rng.usize(..4), rng.usize(..2));
        let r = get(&gw, &path, &[("x-api-key", &keys[who].key)]).await;
        assert_eq!(
            r.text(),
            names[who],
            "seed {seed}: {path} for {} got another's response",
            names[who]
        );
    }
    // And the cache did work: at most one fetch per consumer, path and query.
    assert!(
        up.hits() <= names.len() * 8,
        "seed {seed}: {} fetches",
        up.hits()
    );
}

#[tokio::test]
async fn shared_entries_only_when_the_operator_says_so() {
    let (up, _) = origin(|n, _| numbered(n, &[("cache-control", "max-age=60")])).await;
    let (a, b) = (
        key_auth::generate(SECRET).unwrap(),
        key_auth::generate(SECRET).unwrap(),
    );
    let gw = TestGateway::start(&config(
        &up.url(),
        &[("alice", &a), ("bob", &b)],
        "{key: {consumer: false}}",
    ))
    .await;
    get(&gw, "/shared", &[("x-api-key", &a.key)]).await;
    let r = get(&gw, "/shared", &[("x-api-key", &b.key)]).await;
    assert_eq!((r.text().as_str(), x_cache(&r)), ("n=1", "HIT"));
}

#[tokio::test]
async fn query_normalisation_and_key_headers() {
    let (up, _) = origin(|n, _| numbered(n, &[("cache-control", "max-age=60")])).await;
    let policy = "{key: {sort_query: true, ignore_params: [utm_source], headers: [x-tenant]}}";
    let yaml = crate::support::config("", policy, &up.url());
    let gw = TestGateway::start(&yaml).await;
    let t1 = [("x-tenant", "t1")];
    let first = get(&gw, "/q?a=1&b=2", &t1).await.text();
    assert_eq!(get(&gw, "/q?b=2&utm_source=x&a=1", &t1).await.text(), first);
    assert_ne!(
        get(&gw, "/q?a=1&b=2", &[("x-tenant", "t2")]).await.text(),
        first
    );
    assert_ne!(get(&gw, "/q?a=1&b=3", &t1).await.text(), first);
}
