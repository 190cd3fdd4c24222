//! HTTP Basic auth: usernames with argon2 password hashes; the right password names the
//! consumer, every failure gets the same 401 and challenge, and the `Authorization`
//! header stays at the gateway unless `hide_credentials: false`. (That repeated requests
//! are served from the verified-password cache is tested in the policy crate.)

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::Method;
use turnpike_policy::password;

use crate::support::gateway;

const CHALLENGE: &str = "Basic realm=\"turnpike\", charset=\"UTF-8\"";

/// Consumer `alice` (group `staff`) with username `alice` and password `pw`, a route
/// `/api` that needs basic auth, and an `auth:` section (may be empty).
fn config(pw: &str, auth_section: &str) -> String {
    let hash = password::hash(pw).unwrap();
    format!(
        "listen: 127.0.0.1:0
{auth_section}consumers:
  - name: alice
    groups: [staff]
    basic_auth:
      - {{username: alice, password_hash: \"{hash}\"}}
upstreams:
  - name: echo
    targets: [{{url: \"{{upstream}}\"}}]
routes:
  - name: api
    paths: [/api]
    upstream: echo
    auth: {{methods: [basic_auth]}}
"
    )
}

fn basic(user_pass: &str) -> String {
    format!("Basic {}", STANDARD.encode(user_pass))
}

#[tokio::test]
async fn the_right_password_reaches_the_upstream_as_its_consumer() {
    let (gw, _up) = gateway(&config("correct horse", "")).await;
    for scheme in ["Basic", "basic", "BASIC"] {
        let auth = format!("{scheme} {}", STANDARD.encode("alice:correct horse"));
        let resp = gw
            .client
            .request(
                Method::GET,
                &gw.url("/api/x"),
                &[("authorization", auth.as_str())],
                "",
            )
            .await;
        assert_eq!(resp.status, 200, "{scheme}: {}", resp.text());
        let seen = &resp.json()["headers"];
        assert_eq!(seen["x-consumer-id"], "alice");
        assert_eq!(seen["x-consumer-groups"], "staff");
        assert_eq!(seen["x-credential-id"], "alice");
        assert!(
            seen.get("authorization").is_none(),
            "the password must not reach the upstream: {seen}"
        );
    }
}

#[tokio::test]
async fn wrong_unknown_and_malformed_credentials_get_the_same_401() {
    let (gw, up) = gateway(&config("correct horse", "")).await;
    let mut bodies = Vec::new();
    for auth in [
        None,
        Some(basic("alice:wrong")),
        Some(basic("alice:")),
        Some(basic("bob:correct horse")),
        Some(basic("alice")),
        Some("Basic !!not-base64!!".to_owned()),
        Some("Basic".to_owned()),
        Some(format!("Basic {}", STANDARD.encode([b'a', b':', 0xff]))),
    ] {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let resp = gw
            .client
            .request(Method::GET, &gw.url("/api"), &headers, "")
            .await;
        assert_eq!(resp.status, 401, "{auth:?}");
        assert_eq!(resp.header("www-authenticate"), Some(CHALLENGE), "{auth:?}");
        let mut body = resp.json();
        body["error"]["request_id"] = serde_json::Value::Null;
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(bodies[0]["error"]["code"], "unauthorized");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn credentials_can_be_forwarded_and_the_realm_named() {
    let section = "auth:\n  basic_auth: {realm: partners, hide_credentials: false}\n";
    let (gw, _up) = gateway(&config("pw", section)).await;
    let auth = basic("alice:pw");
    let resp = gw
        .client
        .request(
            Method::GET,
            &gw.url("/api"),
            &[("authorization", auth.as_str())],
            "",
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["headers"]["authorization"], auth.as_str());
    let resp = gw.get("/api").await;
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Basic realm=\"partners\", charset=\"UTF-8\"")
    );
}
