//! Metric values after known traffic, exactly.

use http::Method;
use turnpike_policy::key_auth;

use crate::support::{gateway, scrape, upstream, value, wait_for};

const MINIMAL: &str = "listen: 127.0.0.1:0
upstreams:
  - name: backend
    targets: [{url: \"{upstream}\"}]
routes:
  - name: api
    paths: [/api]
    upstream: backend
";

fn series(name: &str, labels: &str) -> String {
    format!("{name}{{{labels}}}")
}

#[tokio::test]
async fn counts_and_histograms_match_the_traffic_sent() {
    let up = upstream().await;
    let gw = gateway(MINIMAL, &up).await;
    for _ in 0..3 {
        assert_eq!(gw.get("/api/ok").await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(gw.get("/api/missing").await.status, 404);
    }
    let route = "route=\"api\",service=\"backend\"";
    let text = wait_for(
        &gw,
        &series("turnpike_request_duration_seconds_count", route),
        5.0,
    )
    .await;
    let requests = |class: &str| {
        let labels = format!("{route},method=\"GET\",status_class=\"{class}\"");
        value(&text, &series("turnpike_requests_total", &labels))
    };
    assert_eq!(requests("2xx"), Some(3.0), "{text}");
    assert_eq!(requests("4xx"), Some(2.0), "{text}");
    assert_eq!(requests("5xx"), None, "{text}");
    for h in [
        "turnpike_upstream_duration_seconds",
        "turnpike_gateway_duration_seconds",
    ] {
        let count = value(&text, &series(&format!("{h}_count"), route));
        assert_eq!(count, Some(5.0), "{h}\n{text}");
        let inf = value(
            &text,
            &series(&format!("{h}_bucket"), &format!("{route},le=\"+Inf\"")),
        );
        assert_eq!(inf, Some(5.0), "{h}\n{text}");
    }
    // The upstream's 404s are its own answers, not the gateway's.
    assert!(
        !text.contains("turnpike_gateway_responses_total{"),
        "{text}"
    );
    assert_eq!(value(&text, "turnpike_config_version"), Some(1.0));
    let target = format!("service=\"backend\",target=\"{}\"", up.url());
    assert_eq!(
        value(&text, &series("turnpike_upstream_target_up", &target)),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_paths_never_become_labels() {
    let up = upstream().await;
    let gw = gateway(MINIMAL, &up).await;
    for path in ["/nope/secret-123", "/other-path?key=abc", "/x"] {
        assert_eq!(gw.get(path).await.status, 404);
    }
    let labels = "route=\"\",service=\"\",method=\"GET\",status_class=\"4xx\"";
    let text = wait_for(&gw, &series("turnpike_requests_total", labels), 3.0).await;
    for leaked in ["nope", "secret-123", "other-path", "key=abc"] {
        assert!(!text.contains(leaked), "{leaked} leaked into:\n{text}");
    }
    let code = series("turnpike_gateway_responses_total", "code=\"no_route\"");
    assert_eq!(value(&text, &code), Some(3.0), "{text}");
    // Odd methods share one label value.
    let resp = gw
        .client
        .request(
            Method::from_bytes(b"PROPFIND").unwrap(),
            &gw.url("/api"),
            &[],
            "",
        )
        .await;
    assert_eq!(resp.status, 200);
    let labels = "route=\"api\",service=\"backend\",method=\"other\",status_class=\"2xx\"";
    wait_for(&gw, &series("turnpike_requests_total", labels), 1.0).await;
}

#[tokio::test]
async fn a_rate_limit_refusal_is_counted_as_one() {
    let yaml =
        format!("{MINIMAL}    rate_limit:\n      limits: [{{limit: 2, per: minute, by: [ip]}}]\n");
    let up = upstream().await;
    let gw = gateway(&yaml, &up).await;
    let statuses = [
        gw.get("/api").await.status,
        gw.get("/api").await.status,
        gw.get("/api").await.status,
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [200, 200, 429]);
    let labels = "route=\"api\",service=\"backend\",method=\"GET\",status_class=\"4xx\"";
    let text = wait_for(&gw, &series("turnpike_requests_total", labels), 1.0).await;
    assert_eq!(
        value(&text, "turnpike_rate_limit_refusals_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "turnpike_quota_refusals_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "turnpike_concurrency_refusals_total"),
        Some(0.0),
        "{text}"
    );
    let code = series("turnpike_gateway_responses_total", "code=\"rate_limited\"");
    assert_eq!(value(&text, &code), Some(1.0), "{text}");
    // Refused before the upstream: no upstream time for it.
    let route = "route=\"api\",service=\"backend\"";
    let up_count = series("turnpike_upstream_duration_seconds_count", route);
    assert_eq!(value(&text, &up_count), Some(2.0), "{text}");
}

#[tokio::test]
async fn bytes_are_counted_as_the_bodies_stream() {
    let up =
        turnpike_testkit::MockUpstream::start(|_| turnpike_testkit::Reply::ok(vec![b'x'; 500]))
            .await;
    let gw = gateway(MINIMAL, &up).await;
    let body = "y".repeat(1000);
    let resp = gw
        .client
        .request(Method::POST, &gw.url("/api"), &[], &body)
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), 500);
    let route = "route=\"api\",service=\"backend\"";
    let text = wait_for(&gw, &series("turnpike_response_bytes_total", route), 500.0).await;
    assert_eq!(
        value(&text, &series("turnpike_request_bytes_total", route)),
        Some(1000.0),
        "{text}"
    );
}

const KEY_SECRET: &str = "test-key-secret-0123456789abcdef";

/// Consumers `c0`..`c{n}` with one key each, a key-auth route, and `metrics_extra`.
fn consumers_config(n: usize, metrics_extra: &str) -> (String, Vec<String>) {
    let mut consumers = String::new();
    let mut keys = Vec::new();
    for i in 0..n {
        let key = key_auth::generate(KEY_SECRET).unwrap().key;
        let id = key_auth::key_id(&key).unwrap();
        let hash = key_auth::hash(KEY_SECRET, &key);
        consumers.push_str(&format!(
            "  - name: c{i}\n    keys:\n      - {{id: {id}, hash: \"{hash}\"}}\n"
        ));
        keys.push(key);
    }
    let yaml = format!(
        "{MINIMAL}    auth: {{methods: [key_auth]}}
auth:
  key_secret: {KEY_SECRET}
consumers:
{consumers}metrics:
  listen: 127.0.0.1:0
{metrics_extra}"
    );
    (yaml, keys)
}

#[tokio::test]
async fn consumer_labels_are_capped_and_the_rest_is_other() {
    let up = upstream().await;
    let (yaml, keys) = consumers_config(4, "  max_consumers: 2\n");
    let gw = gateway(&yaml, &up).await;
    for key in &keys {
        let resp = gw
            .client
            .request(Method::GET, &gw.url("/api"), &[("x-api-key", key)], "")
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    assert_eq!(gw.get("/api").await.status, 401);
    let other = series(
        "turnpike_consumer_requests_total",
        "consumer=\"other\",status_class=\"2xx\"",
    );
    let text = wait_for(&gw, &other, 2.0).await;
    let lines: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("turnpike_consumer_requests_total"))
        .collect();
    assert_eq!(lines.len(), 3, "two named consumers and `other`:\n{text}");
    let auth = series(
        "turnpike_auth_failures_total",
        "status=\"401\",code=\"unauthorized\"",
    );
    assert_eq!(value(&text, &auth), Some(1.0), "{text}");
}

#[tokio::test]
async fn consumer_labels_can_be_switched_off() {
    let up = upstream().await;
    let (yaml, keys) = consumers_config(1, "  consumer_labels: false\n");
    let gw = gateway(&yaml, &up).await;
    let resp = gw
        .client
        .request(Method::GET, &gw.url("/api"), &[("x-api-key", &keys[0])], "")
        .await;
    assert_eq!(resp.status, 200);
    let labels = "route=\"api\",service=\"backend\",method=\"GET\",status_class=\"2xx\"";
    let text = wait_for(&gw, &series("turnpike_requests_total", labels), 1.0).await;
    assert!(
        text.contains("# TYPE turnpike_consumer_requests counter"),
        "{text}"
    );
    assert!(
        !text.contains("turnpike_consumer_requests_total{"),
        "{text}"
    );
    assert!(!text.contains("c0"), "{text}");
}

#[tokio::test]
async fn reloads_are_counted_by_result() {
    let up = upstream().await;
    let yaml = format!(
        "{}metrics:\n  listen: 127.0.0.1:0\n",
        MINIMAL.replace("{upstream}", &up.url())
    );
    let gw = turnpike_testkit::TestGateway::start_from_file(&yaml).await;
    gw.write_config(&yaml.replace("/api", "/v2"));
    turnpike_proxy::reload::reload_file(gw.gateway.shared(), gw.config_path()).unwrap();
    gw.write_config("listen: [not valid");
    assert!(turnpike_proxy::reload::reload_file(gw.gateway.shared(), gw.config_path()).is_err());
    let text = scrape(&gw).await;
    assert_eq!(value(&text, "turnpike_config_version"), Some(2.0), "{text}");
    let ok = series("turnpike_config_reloads_total", "result=\"success\"");
    let failed = series("turnpike_config_reloads_total", "result=\"failure\"");
    assert_eq!(value(&text, &ok), Some(1.0), "{text}");
    assert_eq!(value(&text, &failed), Some(1.0), "{text}");
}

#[tokio::test]
async fn pooled_upstream_connections_are_reported() {
    let up = upstream().await;
    let gw = gateway(MINIMAL, &up).await;
    // One keep-alive client in sequence: the same upstream connection comes back each time.
    for _ in 0..3 {
        assert_eq!(gw.get("/api").await.status.as_u16(), 200);
    }
    let authority = up.addr.to_string();
    let idle = series(
        "turnpike_upstream_pool_idle_connections",
        &format!("scheme=\"http\",authority=\"{authority}\""),
    );
    // Each worker reports once a second.
    let text = wait_for(&gw, &idle, 1.0).await;
    assert!(text.contains("# TYPE turnpike_upstream_pool_h2_connections gauge"));
}
