//! Header handling: hop-by-hop removal, forwarding headers and their trust, Via, request
//! ids, Host policy and per-route transforms.

use http::Method;
use turnpike_testkit::{MockUpstream, TestGateway};

async fn echo_gateway(extra: &str, upstream_extra: &str) -> (TestGateway, MockUpstream) {
    let up = MockUpstream::echo().await;
    let yaml = format!(
        "listen: 127.0.0.1:0\n{extra}\nupstreams:\n  - name: echo\n    targets: [{{url: \"{}\"}}]\n{upstream_extra}\nroutes:\n  - name: all\n    paths: [\"/\"]\n    upstream: echo\n    request_headers:\n      set: {{x-set: one}}\n      add: {{x-add: two}}\n      remove: [x-secret]\n    response_headers:\n      set: {{x-frame-options: DENY}}\n      remove: [server]\n",
        up.url()
    );
    (TestGateway::start(&yaml).await, up)
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let (gw, _up) = echo_gateway("", "").await;
    let headers = [
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "x"),
        ("te", "trailers, deflate"),
        ("x-end", "kept"),
    ];
    let resp = gw
        .client
        .request(Method::GET, &gw.url("/"), &headers, "")
        .await;
    let seen = &resp.json()["headers"];
    for gone in ["x-hop", "keep-alive", "proxy-connection"] {
        assert!(
            seen.get(gone).is_none(),
            "{gone} reached the upstream: {seen}"
        );
    }
    assert_eq!(seen["te"], "trailers", "TE keeps only `trailers`");
    assert_eq!(seen["x-end"], "kept");
}

#[tokio::test]
async fn forwarding_headers_from_untrusted_clients_are_replaced() {
    let (gw, _up) = echo_gateway("", "").await;
    let forged = [
        ("x-forwarded-for", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6"),
        ("x-forwarded-proto", "https"),
        ("host", "api.example.com"),
        ("x-real-ip", "6.6.6.6"),
        ("x-forwarded-port", "1"),
    ];
    let seen = gw
        .client
        .request(Method::GET, &gw.url("/"), &forged, "")
        .await
        .json()["headers"]
        .clone();
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "api.example.com");
    assert_eq!(
        seen["forwarded"],
        "for=127.0.0.1;proto=http;host=\"api.example.com\""
    );
    assert_eq!(seen["via"], "1.1 turnpike");
    assert!(
        seen.get("x-real-ip").is_none() && seen.get("x-forwarded-port").is_none(),
        "{seen}"
    );
}

#[tokio::test]
async fn forwarding_headers_from_trusted_proxies_are_appended() {
    let (gw, _up) = echo_gateway("server:\n  trusted_proxies: [127.0.0.0/8]", "").await;
    let hops = [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9"),
        ("x-forwarded-proto", "https"),
    ];
    let seen = gw
        .client
        .request(Method::GET, &gw.url("/"), &hops, "")
        .await
        .json()["headers"]
        .clone();
    assert_eq!(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert!(
        seen["forwarded"]
            .as_str()
            .is_some_and(|f| f.starts_with("for=203.0.113.9, for=127.0.0.1")),
        "{seen}"
    );
}

#[tokio::test]
async fn request_id_is_generated_or_kept_and_returned() {
    let (gw, _up) = echo_gateway("", "").await;
    let resp = gw.get("/").await;
    let id = resp
        .header("x-request-id")
        .expect("response carries the id")
        .to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(resp.json()["headers"]["x-request-id"], id.as_str());
    let resp = gw
        .client
        .request(
            Method::GET,
            &gw.url("/"),
            &[("x-request-id", "abc-123")],
            "",
        )
        .await;
    assert_eq!(resp.header("x-request-id"), Some("abc-123"));
    assert_eq!(resp.json()["headers"]["x-request-id"], "abc-123");
}

#[tokio::test]
async fn route_header_transforms_apply_to_request_and_response() {
    let (gw, _up) = echo_gateway("", "").await;
    let sent = [
        ("x-set", "client"),
        ("x-add", "client"),
        ("x-secret", "s3cr3t"),
    ];
    let resp = gw
        .client
        .request(Method::GET, &gw.url("/"), &sent, "")
        .await;
    assert_eq!(resp.header("x-frame-options"), Some("DENY"));
    let seen = &resp.json()["headers"];
    assert_eq!(seen["x-set"], "one");
    assert_eq!(seen["x-add"], "client, two");
    assert!(seen.get("x-secret").is_none());
}

#[tokio::test]
async fn host_header_policy_per_upstream() {
    let (gw, up) = echo_gateway("", "    host_header: target").await;
    let seen = gw
        .client
        .request(
            Method::GET,
            &gw.url("/"),
            &[("host", "api.example.com")],
            "",
        )
        .await
        .json();
    assert_eq!(seen["headers"]["host"], up.addr.to_string());
    let (gw, _up) = echo_gateway("", "    host_header: internal.svc").await;
    let seen = gw
        .client
        .request(
            Method::GET,
            &gw.url("/"),
            &[("host", "api.example.com")],
            "",
        )
        .await
        .json();
    assert_eq!(seen["headers"]["host"], "internal.svc");
    let (gw, _up) = echo_gateway("", "").await;
    let seen = gw
        .client
        .request(
            Method::GET,
            &gw.url("/"),
            &[("host", "api.example.com")],
            "",
        )
        .await
        .json();
    assert_eq!(
        seen["headers"]["host"], "api.example.com",
        "preserve is the default"
    );
}

#[tokio::test]
async fn every_forwarding_line_is_kept_from_trusted_proxies() {
    let (gw, _up) = echo_gateway("server:\n  trusted_proxies: [127.0.0.0/8]", "").await;
    let mut req = http::Request::get(gw.url("/"));
    req = req
        .header("x-forwarded-for", "198.51.100.1")
        .header("x-forwarded-for", "198.51.100.2");
    let resp = gw
        .client
        .send(req.body(http_body_util::Full::default()).unwrap())
        .await;
    assert_eq!(
        resp.json()["headers"]["x-forwarded-for"],
        "198.51.100.1, 198.51.100.2, 127.0.0.1"
    );
}

#[tokio::test]
async fn odd_client_request_ids_are_replaced() {
    let (gw, _up) = echo_gateway("", "").await;
    let long = "a".repeat(200);
    for bad in ["has space", "quote\"d", long.as_str()] {
        let resp = gw
            .client
            .request(Method::GET, &gw.url("/"), &[("x-request-id", bad)], "")
            .await;
        let id = resp.header("x-request-id").unwrap().to_owned();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32);
    }
}
