//! API lifecycle: a draft is not served, a deprecated API says so in every response, a
//! retired one answers 410, and a service-level lifecycle covers its routes.

use turnpike_testkit::{MockUpstream, TestGateway};

async fn gateway() -> (TestGateway, MockUpstream) {
    let up = MockUpstream::echo().await;
    let yaml = format!(
        "listen: 127.0.0.1:0
upstreams:
  - name: v1
    targets: [{{url: \"{url}\"}}]
    policies:
      lifecycle: {{state: retired, sunset: \"2026-01-01T00:00:00Z\", link: \"https://docs.example.com/v2\"}}
  - name: v2
    targets: [{{url: \"{url}\"}}]
routes:
  - {{name: v1-orders, paths: [/v1/orders], upstream: v1}}
  - name: v2-orders
    paths: [/v2/orders]
    upstream: v2
    lifecycle:
      state: deprecated
      deprecated_at: \"2026-06-01T00:00:00Z\"
      sunset: \"2027-01-01T00:00:00Z\"
      link: https://docs.example.com/v3
  - name: v3-orders
    paths: [/v3/orders]
    upstream: v2
    lifecycle: {{state: draft}}
  - {{name: v2-users, paths: [/v2/users], upstream: v2}}
",
        url = up.url()
    );
    (TestGateway::start(&yaml).await, up)
}

#[tokio::test]
async fn each_lifecycle_state_answers_as_documented() {
    let (gw, up) = gateway().await;

    let deprecated = gw.get("/v2/orders").await;
    assert_eq!(deprecated.status, 200);
    assert_eq!(deprecated.header("deprecation"), Some("@1780272000"));
    assert_eq!(
        deprecated.header("sunset"),
        Some("Fri, 01 Jan 2027 00:00:00 GMT")
    );
    assert_eq!(
        deprecated.header("link"),
        Some("<https://docs.example.com/v3>; rel=\"deprecation\"")
    );

    let retired = gw.get("/v1/orders").await;
    assert_eq!(retired.status, 410);
    assert_eq!(retired.json()["error"]["code"], "retired");
    assert_eq!(
        retired.header("sunset"),
        Some("Thu, 01 Jan 2026 00:00:00 GMT")
    );

    // A draft looks exactly like a path nothing serves.
    let draft = gw.get("/v3/orders").await;
    let nothing = gw.get("/v4/orders").await;
    assert_eq!(draft.status, 404);
    assert_eq!(nothing.status, 404);
    assert_eq!(
        draft.json()["error"]["code"],
        nothing.json()["error"]["code"]
    );
    assert!(draft.header("deprecation").is_none() && draft.header("link").is_none());

    let published = gw.get("/v2/users").await;
    assert_eq!(published.status, 200);
    assert!(published.header("deprecation").is_none());
    assert_eq!(
        up.hits(),
        2,
        "only the deprecated and the published API reach the upstream"
    );
}
