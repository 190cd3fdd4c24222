//! JWT through a real gateway: tokens signed by an independent implementation (PyJWT,
//! see `fixtures/jwt/make.py`) for every algorithm, keys from PEM files, certificates,
//! inline JWKs and a JWKS URL (refreshed, refetched on rotation, rate-limited), every
//! refusal, and what the upstream learns about the caller.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use turnpike_testkit::{MockUpstream, Reply, TestGateway, TestResponse};

use crate::support::gateway;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/security/fixtures/jwt");
const JWKS: &str = include_str!("fixtures/jwt/jwks.json");
const JWKS_ROTATED: &str = include_str!("fixtures/jwt/jwks-rotated.json");
const INVALID_TOKEN: &str = "Bearer realm=\"turnpike\", error=\"invalid_token\"";

fn tokens() -> Value {
    serde_json::from_str(include_str!("fixtures/jwt/tokens.json")).unwrap()
}

fn token(group: &str, name: &str) -> String {
    tokens()[group][name]
        .as_str()
        .unwrap_or_else(|| panic!("no fixture token {group}.{name}"))
        .to_owned()
}

/// A JWKS endpoint whose document the test can swap, counting its fetches.
struct JwksServer {
    upstream: MockUpstream,
    document: Arc<Mutex<&'static str>>,
}

impl JwksServer {
    async fn start(document: &'static str) -> Self {
        Self::start_failing_after(document, usize::MAX).await
    }

    /// Serves `document` `ok_times` times, then answers 500.
    async fn start_failing_after(document: &'static str, ok_times: usize) -> Self {
        let doc = Arc::new(Mutex::new(document));
        let served = Arc::new(AtomicUsize::new(0));
        let shared = doc.clone();
        let upstream = MockUpstream::start(move |_| {
            if served.fetch_add(1, Ordering::SeqCst) >= ok_times {
                return Reply::status(500);
            }
            let body = *shared.lock().unwrap();
            Reply::ok(body).header("content-type", "application/jwk-set+json")
        })
        .await;
        Self {
            upstream,
            document: doc,
        }
    }

    fn url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.upstream.url())
    }

    fn hits(&self) -> usize {
        self.upstream.hits()
    }
}

/// Providers: `idp` (the fixtures' OpenID issuer, keys from its JWKS), `hmac` (shared
/// secrets) and `lenient` (same issuer, PEM key, a minute of leeway).
fn config(jwks_url: &str, jwks_timing: &str) -> String {
    let t = tokens();
    let secret = |alg: &str| t["secrets"][alg].as_str().unwrap().to_owned();
    format!(
        r#"listen: 127.0.0.1:0
auth:
  jwt:
    - name: idp
      issuer: https://idp.example.test
      audiences: [turnpike-tests, other-api]
      algorithms: [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA]
      jwks_url: "{jwks_url}"
{jwks_timing}
      required_claims: [tenant]
      forward_claims:
        email: x-user-email
        roles: x-user-roles
        level: x-user-level
        verified: x-user-verified
        address: x-user-address
    - name: hmac
      issuer: https://hmac.example.test
      algorithms: [HS256, HS384, HS512]
      keys:
        - secret: "{hs256}"
        - secret: "{hs384}"
        - secret: "{hs512}"
    - name: lenient
      issuer: https://idp.example.test
      algorithms: [RS256]
      keys: [{{file: "{FIXTURES}/rsa.pub.pem"}}]
      leeway: 60s
consumers:
  - name: alice
    groups: [partners]
upstreams:
  - name: echo
    targets: [{{url: "{{upstream}}"}}]
routes:
  - name: api
    paths: [/api]
    upstream: echo
    auth: {{methods: [jwt], jwt_providers: [idp, hmac]}}
  - name: admin
    paths: [/admin]
    upstream: echo
    auth: {{methods: [jwt], jwt_providers: [idp], scopes: [admin]}}
  - name: hmac-only
    paths: [/hmac]
    upstream: echo
    auth: {{methods: [jwt], jwt_providers: [hmac]}}
  - name: lenient
    paths: [/lenient]
    upstream: echo
    auth: {{methods: [jwt], jwt_providers: [lenient]}}
"#,
        hs256 = secret("HS256"),
        hs384 = secret("HS384"),
        hs512 = secret("HS512"),
    )
}

async fn call(gw: &TestGateway, path: &str, token: &str) -> TestResponse {
    call_with(gw, path, token, &[]).await
}

async fn call_with(
    gw: &TestGateway,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> TestResponse {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    gw.client
        .request(Method::GET, &gw.url(path), &headers, "")
        .await
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An RS256 token signed now with the fixtures' key `rsa-1`.
fn sign_now(extra: Value) -> String {
    let mut claims = json!({
        "iss": "https://idp.example.test",
        "aud": "turnpike-tests",
        "sub": "alice",
        "tenant": "acme",
        "exp": now() + 600,
        "jti": format!("{:?}", SystemTime::now()),
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let pem = std::fs::read(format!("{FIXTURES}/rsa.key.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

fn assert_invalid(resp: &TestResponse, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {}", resp.text());
    assert_eq!(
        resp.header("www-authenticate"),
        Some(INVALID_TOKEN),
        "{what}"
    );
}

#[tokio::test]
async fn every_algorithm_from_an_external_issuer_passes() {
    let jwks = JwksServer::start(JWKS).await;
    let (gw, _up) = gateway(&config(&jwks.url(), "")).await;
    let valid = tokens()["valid"].as_object().unwrap().clone();
    assert_eq!(valid.len(), 12);
    for (alg, token) in &valid {
        let resp = call(&gw, "/api/x", token.as_str().unwrap()).await;
        assert_eq!(resp.status, 200, "{alg}: {}", resp.text());
        assert_eq!(resp.json()["headers"]["x-consumer-id"], "alice", "{alg}");
    }
    assert_eq!(jwks.hits(), 1, "the JWKS is fetched once and cached");
}

#[tokio::test]
async fn keys_from_pem_files_certificates_and_inline_jwks() {
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    let jwk = |i: usize| jwks["keys"][i].to_string();
    let provider = |name: &str, algs: &str, keys: String| {
        format!(
            "    - name: {name}\n      issuer: https://idp.example.test\n      algorithms: [{algs}]\n      keys: [{keys}]\n"
        )
    };
    let pems = ["rsa", "ec256", "ec384", "ed25519"]
        .map(|k| format!("{{file: \"{FIXTURES}/{k}.pub.pem\"}}"))
        .join(", ");
    let all = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";
    let jwks_inline = (0..4)
        .map(|i| format!("{{jwk: {}}}", jwk(i)))
        .collect::<Vec<_>>()
        .join(", ");
    let providers = [
        provider("pem", all, pems),
        provider(
            "cert",
            "RS256, PS256",
            format!("{{file: \"{FIXTURES}/rsa.cert.pem\"}}"),
        ),
        provider("jwk", all, jwks_inline),
    ]
    .concat();
    let mut routes = String::new();
    for name in ["pem", "cert", "jwk"] {
        routes.push_str(&format!(
            "  - {{name: {name}, paths: [/{name}], upstream: echo, auth: {{methods: [jwt], jwt_providers: [{name}]}}}}\n"
        ));
    }
    let yaml = format!(
        "listen: 127.0.0.1:0\nauth:\n  jwt:\n{providers}upstreams:\n  - name: echo\n    targets: [{{url: \"{{upstream}}\"}}]\nroutes:\n{routes}"
    );
    let (gw, _up) = gateway(&yaml).await;
    let t = tokens();
    for (alg, token) in t["valid"].as_object().unwrap() {
        if alg.starts_with("HS") {
            continue;
        }
        let token = token.as_str().unwrap();
        for route in ["/pem", "/jwk"] {
            let resp = call(&gw, route, token).await;
            assert_eq!(resp.status, 200, "{alg} on {route}: {}", resp.text());
        }
        let resp = call(&gw, "/cert", token).await;
        let expected = if alg == "RS256" || alg == "PS256" {
            200
        } else {
            401
        };
        assert_eq!(resp.status, expected, "{alg} on /cert");
    }
    // Tokens without a `kid` are tried against every key of the right family.
    let resp = call(&gw, "/jwk", &token("special", "no_kid")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test]
async fn every_bad_token_gets_the_same_401() {
    let jwks = JwksServer::start(JWKS).await;
    let (gw, up) = gateway(&config(&jwks.url(), "")).await;
    let mut cases: Vec<(String, String)> = ["RS256", "ES256", "EdDSA", "HS256", "HS512"]
        .iter()
        .map(|alg| (format!("expired {alg}"), token("expired", alg)))
        .collect();
    for name in [
        "wrong_issuer",
        "wrong_audience",
        "no_audience",
        "bad_signature",
        "alg_none",
        "alg_none_kid",
        "swapped",
        "not_a_jwt",
        "no_tenant",
        "no_exp",
    ] {
        cases.push((name.to_owned(), token("special", name)));
    }
    let not_yet = sign_now(json!({"nbf": now() + 3600}));
    cases.push(("nbf in the future".into(), not_yet));
    let mut bodies = Vec::new();
    for (what, token) in &cases {
        let resp = call(&gw, "/api", token).await;
        assert_invalid(&resp, what);
        let mut body = resp.json();
        body["error"]["request_id"] = Value::Null;
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(bodies[0]["error"]["code"], "unauthorized");
    assert_eq!(up.hits(), 0, "no bad token reaches the upstream");
    // A route restricted to the HMAC provider does not take the OpenID issuer's tokens.
    let resp = call(&gw, "/hmac", &token("valid", "RS256")).await;
    assert_invalid(&resp, "RS256 token on an HMAC-only route");
    assert_eq!(
        call(&gw, "/hmac", &token("valid", "HS384")).await.status,
        200
    );
}

#[tokio::test]
async fn leeway_forgives_a_little_clock_skew_only() {
    let jwks = JwksServer::start(JWKS).await;
    let (gw, _up) = gateway(&config(&jwks.url(), "")).await;
    let just_expired = sign_now(json!({"exp": now() - 10}));
    assert_invalid(&call(&gw, "/api", &just_expired).await, "strict provider");
    assert_eq!(call(&gw, "/lenient", &just_expired).await.status, 200);
    let almost_valid = sign_now(json!({"nbf": now() + 10}));
    assert_invalid(&call(&gw, "/api", &almost_valid).await, "nbf, strict");
    assert_eq!(call(&gw, "/lenient", &almost_valid).await.status, 200);
    let long_expired = sign_now(json!({"exp": now() - 600}));
    assert_invalid(&call(&gw, "/lenient", &long_expired).await, "beyond leeway");
    let far_future = sign_now(json!({"nbf": now() + 600}));
    assert_invalid(
        &call(&gw, "/lenient", &far_future).await,
        "nbf beyond leeway",
    );
}

#[tokio::test]
async fn the_upstream_learns_the_consumer_scopes_and_chosen_claims() {
    let jwks = JwksServer::start(JWKS).await;
    let (gw, _up) = gateway(&config(&jwks.url(), "")).await;
    let forged = [
        ("x-consumer-id", "mallory"),
        ("x-user-address", "forged"),
        ("x-consumer-scopes", "admin"),
    ];
    let resp = call_with(&gw, "/api", &token("special", "claims"), &forged).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = &resp.json()["headers"];
    assert_eq!(seen["x-consumer-id"], "alice");
    assert_eq!(seen["x-consumer-groups"], "partners");
    assert_eq!(seen["x-credential-id"], "alice");
    assert_eq!(seen["x-consumer-scopes"], "read write");
    assert_eq!(seen["x-user-email"], "alice@example.test");
    assert_eq!(seen["x-user-roles"], "admin,dev");
    assert_eq!(seen["x-user-level"], "3");
    assert_eq!(seen["x-user-verified"], "true");
    assert!(
        seen.get("x-user-address").is_none(),
        "objects are not forwarded: {seen}"
    );

    // A subject that is no configured consumer is an ad-hoc one, without groups.
    let resp = call(&gw, "/api", &token("special", "adhoc")).await;
    let seen = &resp.json()["headers"];
    assert_eq!(seen["x-consumer-id"], "bob");
    assert!(seen.get("x-consumer-groups").is_none(), "{seen}");
    assert_eq!(seen["x-consumer-scopes"], "read");
    assert!(seen.get("x-user-email").is_none(), "{seen}");
}

#[tokio::test]
async fn a_route_needing_a_scope_refuses_tokens_without_it() {
    let jwks = JwksServer::start(JWKS).await;
    let (gw, up) = gateway(&config(&jwks.url(), "")).await;
    let resp = call(&gw, "/admin", &token("valid", "RS256")).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"admin\""), "{challenge}");
    assert_eq!(resp.json()["error"]["code"], "insufficient_scope");
    assert_eq!(up.hits(), 0);
    for name in ["admin_scope", "admin_scope_list"] {
        let resp = call(&gw, "/admin", &token("special", name)).await;
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
    }
}

#[tokio::test]
async fn a_rotated_key_is_found_by_refetching_the_jwks() {
    let jwks = JwksServer::start(JWKS).await;
    // 1s is the least interval the config allows.
    let timing = "      jwks_min_interval: 1s";
    let (gw, _up) = gateway(&config(&jwks.url(), timing)).await;
    assert_eq!(
        call(&gw, "/api", &token("valid", "RS256")).await.status,
        200
    );
    assert_eq!(jwks.hits(), 1);
    *jwks.document.lock().unwrap() = JWKS_ROTATED;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resp = call(&gw, "/api", &token("special", "rotated")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(jwks.hits(), 2);
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let jwks = JwksServer::start(JWKS).await;
    let timing = "      jwks_min_interval: 1s";
    let (gw, _up) = gateway(&config(&jwks.url(), timing)).await;
    let nowhere = token("special", "unknown_kid");
    for _ in 0..5 {
        assert_invalid(&call(&gw, "/api", &nowhere).await, "unknown kid");
    }
    assert_eq!(jwks.hits(), 1, "the first fetch only");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let burst = (0..10).map(|_| call(&gw, "/api", &nowhere));
    for resp in futures_util::future::join_all(burst).await {
        assert_invalid(&resp, "unknown kid in a burst");
    }
    assert_eq!(jwks.hits(), 2, "a burst shares one refetch");
}

#[tokio::test]
async fn stale_keys_refresh_in_the_background_and_survive_failures() {
    let jwks = JwksServer::start_failing_after(JWKS, 1).await;
    let timing = "      jwks_refresh: 1s\n      jwks_min_interval: 1s";
    let (gw, _up) = gateway(&config(&jwks.url(), timing)).await;
    assert_eq!(call(&gw, "/api", &sign_now(json!({}))).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Stale: served from the cached set while a refresh (which fails) runs behind.
    assert_eq!(call(&gw, "/api", &sign_now(json!({}))).await.status, 200);
    for _ in 0..50 {
        if jwks.hits() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(jwks.hits(), 2, "one background refresh");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let resp = call(&gw, "/api", &sign_now(json!({}))).await;
    assert_eq!(
        resp.status,
        200,
        "the last good keys are kept: {}",
        resp.text()
    );
}
