//! Routing: host, path, method and header matching with the documented precedence, path
//! rewrites, and the JSON 404 when nothing matches.

use http::Method;
use turnpike_testkit::{MockUpstream, TestGateway};

/// One upstream per route name, so a response tells which route was chosen.
async fn gateway_with_routes(
    routes: &str,
    names: &[&'static str],
) -> (TestGateway, Vec<MockUpstream>) {
    let mut ups = Vec::new();
    let mut yaml = String::from("listen: 127.0.0.1:0\nupstreams:\n");
    for name in names {
        let up = MockUpstream::named(name).await;
        yaml.push_str(&format!(
            "  - name: {name}\n    targets: [{{url: \"{}\"}}]\n",
            up.url()
        ));
        ups.push(up);
    }
    yaml.push_str("routes:\n");
    yaml.push_str(routes);
    (TestGateway::start(&yaml).await, ups)
}

async fn chosen(
    gw: &TestGateway,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    let resp = gw.client.request(method, &gw.url(path), &all, "").await;
    if resp.status == 404 {
        return "404".to_owned();
    }
    resp.text()
}

#[tokio::test]
async fn minimal_config_from_design_proxies() {
    let up = MockUpstream::echo().await;
    let gw = TestGateway::start(&turnpike_testkit::minimal_config(&up.url())).await;
    let resp = gw.get("/anything/here?x=1").await;
    assert_eq!(resp.status, 200);
    let echo = resp.json();
    assert_eq!(echo["path"], "/anything/here");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn host_precedence_exact_then_wildcard_then_any() {
    let routes = r#"
  - {name: any, paths: ["/"], upstream: any}
  - {name: wild, hosts: ["*.example.com"], paths: ["/"], upstream: wild}
  - {name: deeper, hosts: ["*.eu.example.com"], paths: ["/"], upstream: deeper}
  - {name: exact, hosts: ["api.example.com"], paths: ["/"], upstream: exact}
"#;
    let (gw, _ups) = gateway_with_routes(routes, &["any", "wild", "deeper", "exact"]).await;
    assert_eq!(
        chosen(&gw, Method::GET, "api.example.com", "/", &[]).await,
        "exact"
    );
    assert_eq!(
        chosen(&gw, Method::GET, "API.Example.com:8080", "/", &[]).await,
        "exact"
    );
    assert_eq!(
        chosen(&gw, Method::GET, "shop.example.com", "/x", &[]).await,
        "wild"
    );
    assert_eq!(
        chosen(&gw, Method::GET, "a.eu.example.com", "/x", &[]).await,
        "deeper"
    );
    assert_eq!(
        chosen(&gw, Method::GET, "example.com", "/x", &[]).await,
        "any",
        "wildcard needs a label"
    );
    assert_eq!(
        chosen(&gw, Method::GET, "other.org", "/x", &[]).await,
        "any"
    );
}

#[tokio::test]
async fn path_precedence_exact_template_prefix() {
    let routes = r#"
  - {name: root, paths: ["/"], upstream: root}
  - {name: users, paths: ["/users"], upstream: users}
  - {name: user, paths: ["/users/{id}"], path_type: exact, upstream: user}
  - {name: me, paths: ["/users/me"], path_type: exact, upstream: me}
  - {name: orders, paths: ["/users/{id}/orders"], upstream: orders}
"#;
    let (gw, _ups) = gateway_with_routes(routes, &["root", "users", "user", "me", "orders"]).await;
    let h = "localhost";
    assert_eq!(chosen(&gw, Method::GET, h, "/users/me", &[]).await, "me");
    assert_eq!(chosen(&gw, Method::GET, h, "/users/42", &[]).await, "user");
    assert_eq!(
        chosen(&gw, Method::GET, h, "/users/42/orders/7", &[]).await,
        "orders"
    );
    assert_eq!(
        chosen(&gw, Method::GET, h, "/users/42/profile", &[]).await,
        "users"
    );
    assert_eq!(chosen(&gw, Method::GET, h, "/users", &[]).await, "users");
    assert_eq!(
        chosen(&gw, Method::GET, h, "/usersx", &[]).await,
        "root",
        "prefixes match at / boundaries"
    );
    assert_eq!(chosen(&gw, Method::GET, h, "/", &[]).await, "root");
}

#[tokio::test]
async fn methods_and_headers_narrow_a_route_and_fall_back() {
    let routes = r#"
  - {name: base, paths: ["/api"], upstream: base}
  - {name: writes, paths: ["/api"], methods: [POST, PUT], upstream: writes}
  - {name: v2, paths: ["/api"], headers: {x-version: ["2", "3"]}, upstream: v2}
"#;
    let (gw, _ups) = gateway_with_routes(routes, &["base", "writes", "v2"]).await;
    let h = "localhost";
    assert_eq!(chosen(&gw, Method::GET, h, "/api/x", &[]).await, "base");
    assert_eq!(chosen(&gw, Method::POST, h, "/api/x", &[]).await, "writes");
    assert_eq!(
        chosen(&gw, Method::GET, h, "/api/x", &[("x-version", "3")]).await,
        "v2"
    );
    assert_eq!(
        chosen(&gw, Method::GET, h, "/api/x", &[("x-version", "1")]).await,
        "base"
    );
}

#[tokio::test]
async fn no_route_is_a_json_404() {
    let routes = r#"
  - {name: only, hosts: ["api.example.com"], paths: ["/v1"], upstream: only}
"#;
    let (gw, ups) = gateway_with_routes(routes, &["only"]).await;
    let resp = gw
        .client
        .request(
            Method::GET,
            &gw.url("/v1"),
            &[("host", "other.example.com")],
            "",
        )
        .await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body = resp.json();
    assert_eq!(body["error"]["code"], "no_route");
    assert!(body["error"]["request_id"].is_string());
    assert_eq!(ups[0].hits(), 0);
}

#[tokio::test]
async fn strip_prefix_and_rewrite_keep_the_query() {
    let up = MockUpstream::echo().await;
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
upstreams:
  - name: echo
    targets: [{{url: "{}"}}]
routes:
  - {{name: strip, paths: ["/api/"], strip_prefix: true, upstream: echo}}
  - {{name: rewrite, paths: ["/v1/users/{{id}}"], rewrite: "/internal/accounts/{{id}}/view", upstream: echo}}
"#,
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let path = |p: &str| {
        let gw = &gw;
        let p = p.to_owned();
        async move { gw.get(&p).await.json() }
    };
    assert_eq!(path("/api/orders/1?full=true").await["path"], "/orders/1");
    assert_eq!(path("/api/orders/1?full=true").await["query"], "full=true");
    assert_eq!(path("/api").await["path"], "/");
    assert_eq!(
        path("/v1/users/42").await["path"],
        "/internal/accounts/42/view"
    );
    assert_eq!(
        path("/v1/users/42/extra?q=1").await["path"],
        "/internal/accounts/42/view/extra"
    );
}

#[tokio::test]
async fn ten_thousand_routes_still_route_correctly() {
    let up = MockUpstream::echo().await;
    let mut yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n  - name: echo\n    targets: [{{url: \"{}\"}}]\nroutes:\n",
        up.url()
    );
    for i in 0..10_000 {
        yaml.push_str(&format!("  - {{name: r{i}, paths: [\"/svc{i}/items/{{id}}\"], rewrite: \"/r{i}/{{id}}\", upstream: echo}}\n"));
    }
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(gw.get("/svc9999/items/5").await.json()["path"], "/r9999/5");
    assert_eq!(gw.get("/svc0/items/1").await.json()["path"], "/r0/1");
    assert_eq!(gw.get("/svc10000/items/1").await.status, 404);
}

#[tokio::test]
async fn several_listeners_serve_the_same_routes() {
    let up = MockUpstream::named("up").await;
    let yaml = format!(
        "listen: 127.0.0.1:0\nlisteners:\n  - {{name: internal, address: \"127.0.0.1:0\"}}\n  - {{name: h1only, address: \"127.0.0.1:0\", http2: false}}\nupstreams:\n  - name: b\n    targets: [{{url: \"{}\"}}]\nroutes:\n  - {{name: r, paths: [\"/\"], upstream: b}}\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let addrs: Vec<_> = ["default", "internal", "h1only"]
        .iter()
        .map(|n| gw.gateway.addr(n).expect(n))
        .collect();
    assert_eq!(
        addrs.iter().collect::<std::collections::HashSet<_>>().len(),
        3,
        "three distinct ports"
    );
    for addr in &addrs {
        assert_eq!(gw.client.get(&format!("http://{addr}/")).await.text(), "up");
    }
    // h2c works on the default listener and is refused where http2 is off.
    let h2c = turnpike_testkit::Client::h2c();
    assert_eq!(h2c.get(&format!("http://{}/", addrs[0])).await.status, 200);
    let refused = h2c
        .try_send(
            http::Request::get(format!("http://{}/", addrs[2]))
                .body(Default::default())
                .unwrap(),
        )
        .await;
    assert!(
        refused.is_err(),
        "h2c on an http2: false listener must fail, got {refused:?}"
    );
}
