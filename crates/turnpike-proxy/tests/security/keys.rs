//! API keys: read from header, query or cookie; stored hashed; expiry, revocation and
//! rotation overlap; identity headers that clients cannot forge.

use http::Method;
use turnpike_policy::key_auth;

use crate::support::{KEY_SECRET, gateway};

/// A consumer `alice` (group `partners`) with the given extra key entries, and a route
/// `/api` that needs key auth.
fn config(keys: &[(&str, &str)], sources: &str) -> String {
    let mut entries = String::new();
    for (hash_of, extra) in keys {
        let id = key_auth::key_id(hash_of).unwrap();
        let hash = key_auth::hash(KEY_SECRET, hash_of);
        entries.push_str(&format!("      - {{id: {id}, hash: \"{hash}\"{extra}}}\n"));
    }
    format!(
        "listen: 127.0.0.1:0
auth:
  key_secret: {KEY_SECRET}
{sources}
consumers:
  - name: alice
    groups: [partners, beta]
    keys:
{entries}
upstreams:
  - name: echo
    targets: [{{url: \"{{upstream}}\"}}]
routes:
  - name: api
    paths: [/api]
    upstream: echo
    auth: {{methods: [key_auth]}}
  - name: open
    paths: [/open]
    upstream: echo
"
    )
}

fn new_key() -> String {
    key_auth::generate(KEY_SECRET).unwrap().key
}

#[tokio::test]
async fn a_valid_key_reaches_the_upstream_as_its_consumer() {
    let key = new_key();
    let (gw, _up) = gateway(&config(&[(&key, "")], "")).await;
    let forged = [
        ("x-api-key", key.as_str()),
        ("x-consumer-id", "mallory"),
        ("x-consumer-groups", "admins"),
    ];
    let resp = gw
        .client
        .request(Method::GET, &gw.url("/api/x"), &forged, "")
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = &resp.json()["headers"];
    assert_eq!(seen["x-consumer-id"], "alice");
    assert_eq!(seen["x-consumer-groups"], "partners,beta");
    assert_eq!(seen["x-credential-id"], key_auth::key_id(&key).unwrap());
    assert!(
        seen.get("x-api-key").is_none(),
        "the key must not reach the upstream"
    );
}

#[tokio::test]
async fn missing_wrong_and_malformed_keys_get_the_same_401() {
    let key = new_key();
    let (gw, up) = gateway(&config(&[(&key, "")], "")).await;
    let id = key_auth::key_id(&key).unwrap();
    let wrong_secret = format!("tp_{id}_{}", "A".repeat(43));
    let mut bodies = Vec::new();
    for headers in [
        vec![],
        vec![("x-api-key", wrong_secret.as_str())],
        vec![("x-api-key", "not-a-key")],
        vec![("x-api-key", "tp_unknownid12_secret")],
    ] {
        let resp = gw
            .client
            .request(Method::GET, &gw.url("/api"), &headers, "")
            .await;
        assert_eq!(resp.status, 401);
        assert_eq!(
            resp.header("www-authenticate"),
            Some("ApiKey realm=\"turnpike\"")
        );
        let mut body = resp.json();
        body["error"]["request_id"] = serde_json::Value::Null;
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(bodies[0]["error"]["code"], "unauthorized");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn identity_headers_are_stripped_on_routes_without_auth_too() {
    let key = new_key();
    let (gw, _up) = gateway(&config(&[(&key, "")], "")).await;
    let forged = [
        ("x-consumer-id", "mallory"),
        ("x-anonymous-consumer", "false"),
    ];
    let seen = gw
        .client
        .request(Method::GET, &gw.url("/open"), &forged, "")
        .await
        .json();
    assert!(seen["headers"].get("x-consumer-id").is_none(), "{seen}");
    assert!(
        seen["headers"].get("x-anonymous-consumer").is_none(),
        "{seen}"
    );
}

#[tokio::test]
async fn keys_are_read_from_query_and_cookie_and_hidden_from_the_upstream() {
    let key = new_key();
    let sources =
        "  key_auth:\n    sources: [{header: x-api-key}, {query: api_key}, {cookie: tp_key}]\n";
    let (gw, _up) = gateway(&config(&[(&key, "")], sources)).await;
    let resp = gw.get(&format!("/api/q?a=1&api_key={key}&b=2")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["query"], "a=1&b=2");
    let cookie = format!("theme=dark; tp_key={key}; lang=en");
    let resp = gw
        .client
        .request(
            Method::GET,
            &gw.url("/api/c"),
            &[("cookie", cookie.as_str())],
            "",
        )
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["headers"]["cookie"], "theme=dark; lang=en");
}

#[tokio::test]
async fn expired_and_revoked_keys_fail_and_a_rotated_key_overlaps() {
    let (expired, revoked, old, new) = (new_key(), new_key(), new_key(), new_key());
    let keys = [
        (expired.as_str(), ", expires_at: \"2020-01-01T00:00:00Z\""),
        (revoked.as_str(), ", revoked: true"),
        // Rotation: the old key keeps working until its overlap ends.
        (old.as_str(), ", expires_at: \"2999-01-01T00:00:00Z\""),
        (new.as_str(), ""),
    ];
    let (gw, _up) = gateway(&config(&keys, "")).await;
    for (key, status) in [(&expired, 401), (&revoked, 401), (&old, 200), (&new, 200)] {
        let resp = gw
            .client
            .request(
                Method::GET,
                &gw.url("/api"),
                &[("x-api-key", key.as_str())],
                "",
            )
            .await;
        assert_eq!(resp.status, status, "{key}");
    }
}
