//! Policies on an upstream (the service) apply to every route that sends traffic to it,
//! below a route's own and above the global ones.

use http::Method;
use turnpike_policy::key_auth;

use crate::support::{KEY_SECRET, gateway};

#[tokio::test]
async fn service_policies_cover_its_routes_and_routes_can_override_them() {
    let key = key_auth::generate(KEY_SECRET).unwrap().key;
    let id = key_auth::key_id(&key).unwrap();
    let hash = key_auth::hash(KEY_SECRET, &key);
    let yaml = format!(
        "listen: 127.0.0.1:0
auth: {{key_secret: {KEY_SECRET}}}
consumers:
  - name: alice
    keys: [{{id: {id}, hash: \"{hash}\"}}]
  - name: guest
upstreams:
  - name: echo
    targets: [{{url: \"{{upstream}}\"}}]
    policies:
      auth: {{methods: [key_auth]}}
  - name: internal
    targets: [{{url: \"{{upstream}}\"}}]
    policies:
      ip_rules: {{deny: [127.0.0.0/8, \"::1/128\"]}}
routes:
  - {{name: a, paths: [/a], upstream: echo}}
  - {{name: b, paths: [/b], upstream: echo}}
  - {{name: public, paths: [/public], upstream: echo, auth: {{anonymous: guest}}}}
  - {{name: internal, paths: [/internal], upstream: internal}}
"
    );
    let (gw, _up) = gateway(&yaml).await;
    for path in ["/a", "/b"] {
        assert_eq!(gw.get(path).await.status, 401, "{path} without a key");
        let resp = gw
            .client
            .request(
                Method::GET,
                &gw.url(path),
                &[("x-api-key", key.as_str())],
                "",
            )
            .await;
        assert_eq!(resp.status, 200, "{path} with a key");
        assert_eq!(resp.json()["headers"]["x-consumer-id"], "alice");
    }
    let public = gw.get("/public").await;
    assert_eq!(
        public.status, 200,
        "the route's own auth replaces the service's"
    );
    assert_eq!(public.json()["headers"]["x-consumer-id"], "guest");
    let internal = gw.get("/internal").await;
    assert_eq!(internal.status, 403);
    assert_eq!(internal.json()["error"]["code"], "forbidden");
}
