//! CORS through a real gateway: preflights answered without the upstream, allowed and
//! refused origins, credentials, subdomain patterns, `Vary: Origin` merged with the
//! upstream's, and CORS headers on the gateway's own refusals.

use http::Method;
use turnpike_policy::key_auth;
use turnpike_testkit::{MockUpstream, Reply, TestGateway, TestResponse};

use crate::support::{KEY_SECRET, gateway};

const APP: &str = "https://app.example.com";

/// Routes: `/api` (exact origin, credentials), `/sub` (subdomain pattern), `/any` (`*`),
/// `/locked` (key auth) and `/plain` (global policy), all to the upstream `echo`.
fn config(key: &str) -> String {
    let id = key_auth::key_id(key).unwrap();
    let hash = key_auth::hash(KEY_SECRET, key);
    format!(
        "listen: 127.0.0.1:0
auth:
  key_secret: {KEY_SECRET}
consumers:
  - name: alice
    keys:
      - {{id: {id}, hash: \"{hash}\"}}
policies:
  cors:
    origins: [\"https://global.example\"]
upstreams:
  - name: echo
    targets: [{{url: \"{{upstream}}\"}}]
routes:
  - name: api
    paths: [/api]
    upstream: echo
    cors:
      origins: [\"{APP}\", \"http://localhost:3000\"]
      methods: [GET, PUT]
      headers: [X-Trace, Content-Type]
      expose_headers: [X-Request-Id]
      credentials: true
      max_age: 10m
  - name: sub
    paths: [/sub]
    upstream: echo
    cors: {{origins: [\"https://*.example.com\"]}}
  - name: any
    paths: [/any]
    upstream: echo
    cors: {{origins: [\"*\"]}}
  - name: locked
    paths: [/locked]
    upstream: echo
    auth: {{methods: [key_auth]}}
    cors: {{origins: [\"{APP}\"]}}
  - name: plain
    paths: [/plain]
    upstream: echo
"
    )
}

fn new_key() -> String {
    key_auth::generate(KEY_SECRET).unwrap().key
}

/// A gateway with a consumer key; returns the key too.
async fn start() -> (TestGateway, MockUpstream, String) {
    let key = new_key();
    let (gw, up) = gateway(&config(&key)).await;
    (gw, up, key)
}

async fn preflight(
    gw: &TestGateway,
    path: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> TestResponse {
    let mut h = vec![
        ("origin", origin),
        ("access-control-request-method", method),
    ];
    if let Some(requested) = headers {
        h.push(("access-control-request-headers", requested));
    }
    gw.client
        .request(Method::OPTIONS, &gw.url(path), &h, "")
        .await
}

async fn get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    gw.client
        .request(Method::GET, &gw.url(path), headers, "")
        .await
}

fn vary(resp: &TestResponse) -> Vec<&str> {
    resp.headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

#[tokio::test]
async fn an_allowed_preflight_is_answered_by_the_gateway() {
    let (gw, up, _) = start().await;
    let resp = preflight(&gw, "/api/items", APP, "PUT", Some("x-trace,content-type")).await;
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        resp.header("access-control-allow-methods"),
        Some("GET, PUT")
    );
    assert_eq!(
        resp.header("access-control-allow-headers"),
        Some("x-trace, content-type")
    );
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(resp.header("access-control-max-age"), Some("600"));
    assert_eq!(
        vary(&resp),
        ["Origin, Access-Control-Request-Method, Access-Control-Request-Headers"]
    );
    assert!(resp.body.is_empty());
    assert_eq!(up.hits(), 0, "a preflight must not reach the upstream");
}

#[tokio::test]
async fn a_refused_preflight_gets_no_allow_headers_and_no_upstream() {
    let (gw, up, _) = start().await;
    for (origin, method, headers) in [
        ("https://evil.example", "GET", None),
        ("https://app.example.com.evil.com", "GET", None),
        (APP, "DELETE", None),
        (APP, "GET", Some("x-trace, x-secret")),
    ] {
        let resp = preflight(&gw, "/api", origin, method, headers).await;
        assert_eq!(resp.status, 204, "{origin} {method}");
        let allow: Vec<_> = resp
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .collect();
        assert!(allow.is_empty(), "{origin} {method} {headers:?}: {allow:?}");
        assert!(resp.header("vary").is_some_and(|v| v.contains("Origin")));
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn an_options_request_that_is_not_a_preflight_goes_upstream() {
    let (gw, up, _) = start().await;
    let resp = gw
        .client
        .request(Method::OPTIONS, &gw.url("/api"), &[("origin", APP)], "")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["method"], "OPTIONS");
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn actual_responses_carry_the_policy_and_merge_vary_with_the_upstream() {
    // An upstream with its own (wrong) CORS answer and its own Vary.
    let up = MockUpstream::start(|_| {
        Reply::ok("hi")
            .header("vary", "Accept-Encoding")
            .header("access-control-allow-origin", "*")
            .header("access-control-allow-methods", "DELETE")
    })
    .await;
    let yaml = config(&new_key()).replace("{upstream}", &up.url());
    let gw = TestGateway::start(&yaml).await;

    let resp = get(&gw, "/api", &[("origin", APP)]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        resp.header("access-control-expose-headers"),
        Some("X-Request-Id")
    );
    assert!(resp.header("access-control-allow-methods").is_none());
    assert_eq!(vary(&resp), ["Accept-Encoding, Origin"]);

    // A refused origin and a same-origin (no `Origin`) request: no CORS answer at all,
    // but still `Vary: Origin` so a cache cannot hand this answer to another origin.
    for headers in [vec![("origin", "https://evil.example")], vec![]] {
        let resp = get(&gw, "/api", &headers).await;
        assert!(
            resp.header("access-control-allow-origin").is_none(),
            "{headers:?}"
        );
        assert_eq!(vary(&resp), ["Accept-Encoding, Origin"]);
    }

    // `*` for everyone: no Vary needed beyond the upstream's own.
    let resp = get(&gw, "/any", &[("origin", "https://x.example")]).await;
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    assert!(resp.header("access-control-allow-credentials").is_none());
    assert_eq!(vary(&resp), ["Accept-Encoding"]);
}

#[tokio::test]
async fn subdomain_patterns_match_subdomains_only() {
    let (gw, _up, _) = start().await;
    for (origin, ok) in [
        ("https://a.example.com", true),
        ("https://a.b.example.com", true),
        ("https://example.com", false),
        ("https://evilexample.com", false),
        ("https://example.com.evil.com", false),
        ("http://a.example.com", false),
    ] {
        let resp = preflight(&gw, "/sub", origin, "GET", None).await;
        let acao = resp.header("access-control-allow-origin");
        assert_eq!(acao, ok.then_some(origin), "{origin}");
        let resp = get(&gw, "/sub", &[("origin", origin)]).await;
        let acao = resp.header("access-control-allow-origin");
        assert_eq!(acao, ok.then_some(origin), "{origin}");
    }
}

#[tokio::test]
async fn a_refusal_from_auth_still_carries_cors_so_the_browser_can_read_it() {
    let (gw, up, key) = start().await;
    // The preflight carries no credentials and must not need them.
    let resp = preflight(&gw, "/locked", APP, "GET", Some("x-api-key")).await;
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        resp.header("access-control-allow-headers"),
        Some("x-api-key")
    );

    let resp = get(&gw, "/locked", &[("origin", APP)]).await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["error"]["code"], "unauthorized");
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(vary(&resp), ["Origin"]);
    assert_eq!(up.hits(), 0);

    let resp = get(&gw, "/locked", &[("origin", APP), ("x-api-key", &key)]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
}

#[tokio::test]
async fn the_global_policy_applies_where_a_route_sets_none() {
    let (gw, _up, _) = start().await;
    let resp = get(&gw, "/plain", &[("origin", "https://global.example")]).await;
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://global.example")
    );
    // A route's own policy replaces the global one.
    let resp = get(&gw, "/api", &[("origin", "https://global.example")]).await;
    assert!(resp.header("access-control-allow-origin").is_none());
}
