//! Set-up and requests shared by the OAuth tests: key files, client secrets, the config,
//! and one helper per endpoint.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::Method;
use serde_json::Value;
use turnpike_policy::password;
use turnpike_testkit::{MockUpstream, TestGateway, TestResponse};

use crate::support::gateway;

pub const BILLING_SECRET: &str = "billing s3cret:with+odd%chars";
pub const REPORTS_SECRET: &str = "reports-secret";
pub const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// Key files for a test: ES256 and Ed25519 made now, RSA from the fixture (ring cannot
/// generate RSA keys).
pub struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, alg) in [
            ("es256.pem", &rcgen::PKCS_ECDSA_P256_SHA256),
            ("ed25519.pem", &rcgen::PKCS_ED25519),
        ] {
            let pem = rcgen::KeyPair::generate_for(alg).unwrap().serialize_pem();
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        if name == "rsa" {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/security/fixtures/oauth/rsa-2048.pem")
        } else {
            self.dir.path().join(format!("{name}.pem"))
        }
    }

    /// `signing_keys` entries for `(kid, algorithm, file)`.
    pub fn entries(&self, keys: &[(&str, &str, &str)]) -> String {
        keys.iter()
            .map(|(kid, alg, file)| {
                let path = self.path(file);
                format!(
                    "    - {{kid: {kid}, algorithm: {alg}, key_file: \"{}\"}}\n",
                    path.display()
                )
            })
            .collect()
    }
}

/// Client secret hashes, made once per test (argon2 is slow on purpose).
pub struct Hashes {
    pub billing: String,
    pub reports: String,
}

impl Hashes {
    pub fn new() -> Self {
        Self {
            billing: password::hash(BILLING_SECRET).unwrap(),
            reports: password::hash(REPORTS_SECRET).unwrap(),
        }
    }
}

/// Clients `billing` (as consumer `billing-service`) and `reports`, and a route
/// `/orders` that needs `orders:read`.
pub fn config(keys: &str, ttl: &str, h: &Hashes) -> String {
    format!(
        "listen: 127.0.0.1:0
consumers:
  - name: billing-service
    groups: [internal]
oauth:
  issuer: https://gw.test
  token_ttl: {ttl}
  audience: orders-api
  signing_keys:
{keys}  clients:
    - client_id: billing
      secret_hash: \"{}\"
      scopes: [orders:read, orders:write]
      consumer: billing-service
    - client_id: reports
      secret_hash: \"{}\"
      scopes: [reports:read]
upstreams:
  - name: echo
    targets: [{{url: \"{{upstream}}\"}}]
routes:
  - name: orders
    paths: [/orders]
    upstream: echo
    auth: {{methods: [oauth], scopes: [orders:read]}}
",
        h.billing, h.reports
    )
}

pub async fn start(
    keys: &Keys,
    list: &[(&str, &str, &str)],
    h: &Hashes,
) -> (TestGateway, MockUpstream) {
    gateway(&config(&keys.entries(list), "1h", h)).await
}

/// RFC 6749 §2.3.1 form-encoding, for client ids and secrets inside Basic.
pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn basic(id: &str, secret: &str) -> String {
    let raw = format!("{}:{}", form_encode(id), form_encode(secret));
    format!("Basic {}", STANDARD.encode(raw))
}

pub async fn post(
    gw: &TestGateway,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> TestResponse {
    gw.client
        .request(Method::POST, &gw.url(path), headers, body)
        .await
}

/// Posts to the token endpoint with Basic client authentication.
pub async fn token_basic(gw: &TestGateway, id: &str, secret: &str, body: &str) -> TestResponse {
    let auth = basic(id, secret);
    post(gw, "/oauth/token", &[FORM, ("authorization", &auth)], body).await
}

/// A billing token with `scope` (all allowed scopes when empty).
pub async fn billing_token(gw: &TestGateway, scope: &str) -> String {
    let mut body = "grant_type=client_credentials".to_owned();
    if !scope.is_empty() {
        body.push_str(&format!("&scope={}", form_encode(scope)));
    }
    let resp = token_basic(gw, "billing", BILLING_SECRET, &body).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["access_token"].as_str().unwrap().to_owned()
}

pub fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

pub async fn call(gw: &TestGateway, path: &str, token: &str) -> TestResponse {
    let auth = format!("Bearer {token}");
    gw.client
        .request(Method::GET, &gw.url(path), &[("authorization", &auth)], "")
        .await
}

/// Introspects `token` as the billing client.
pub async fn introspect(gw: &TestGateway, token: &str) -> Value {
    let auth = basic("billing", BILLING_SECRET);
    let body = format!("token={}", form_encode(token));
    let resp = post(
        gw,
        "/oauth/introspect",
        &[FORM, ("authorization", &auth)],
        &body,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    resp.json()
}

pub async fn revoke(gw: &TestGateway, id: &str, secret: &str, token: &str) -> TestResponse {
    let auth = basic(id, secret);
    let body = format!("token={}&token_type_hint=access_token", form_encode(token));
    post(
        gw,
        "/oauth/revoke",
        &[FORM, ("authorization", &auth)],
        &body,
    )
    .await
}
