//! Request validation (`routes[].validate`) written by hand: parameters are read as their
//! schema's type and percent-decoded, a validated body is bounded by `max_body_bytes` and
//! forwarded whole, and routes without `validate` are not affected.

use http::Method;
use turnpike_testkit::{Client, MockUpstream, TestGateway};

async fn gateway() -> (TestGateway, MockUpstream) {
    let up = MockUpstream::echo().await;
    let yaml = format!(
        "listen: 127.0.0.1:0
server: {{max_body_bytes: 1KiB}}
upstreams:
  - name: api
    targets: [{{url: \"{url}\"}}]
routes:
  - name: things
    paths: [\"/things/{{code}}\"]
    path_type: exact
    upstream: api
    validate:
      parameters:
        - {{name: code, in: path, schema: {{type: string, pattern: \"^[A-Z]+$\"}}}}
        - {{name: n, in: query, schema: {{type: integer, minimum: 1}}}}
      body: {{schema: {{type: object, properties: {{note: {{type: string}}}}}}}}
  - {{name: open, paths: [/open], upstream: api}}
",
        url = up.url()
    );
    (TestGateway::start(&yaml).await, up)
}

async fn send(gw: &TestGateway, method: Method, path: &str, body: &str) -> u16 {
    let headers = [("content-type", "application/json")];
    let r = Client::http1()
        .request(method, &gw.url(path), &headers, body)
        .await;
    r.status.as_u16()
}

#[tokio::test]
async fn parameters_and_bodies_are_checked_before_forwarding() {
    let (gw, up) = gateway().await;
    assert_eq!(send(&gw, Method::GET, "/things/%41BC?n=2", "").await, 200);
    assert_eq!(
        send(&gw, Method::POST, "/things/ABC", r#"{"note": "hi"}"#).await,
        200
    );
    let seen = up.hits();
    assert_eq!(send(&gw, Method::GET, "/things/abc", "").await, 400);
    assert_eq!(send(&gw, Method::GET, "/things/ABC?n=0", "").await, 400);
    assert_eq!(send(&gw, Method::GET, "/things/ABC?n=two", "").await, 400);
    assert_eq!(
        send(&gw, Method::POST, "/things/ABC", r#"{"note": 1}"#).await,
        400
    );
    let big = format!(r#"{{"note": "{}"}}"#, "x".repeat(2000));
    assert_eq!(send(&gw, Method::POST, "/things/ABC", &big).await, 413);
    assert_eq!(up.hits(), seen, "the upstream saw a refused request");
    // A route without `validate` forwards anything, as always.
    assert_eq!(send(&gw, Method::POST, "/open", "{not json").await, 200);
}
