//! The gateway's OAuth 2.0 authorization server: the client-credentials grant with both
//! client authentication methods, its errors, tokens on scoped routes, introspection,
//! revocation, key rotation, the discovery documents, and an independent check of issued
//! tokens with PyJWT against the served JWKS.

mod helpers;
mod pyjwt;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use self::helpers::*;
use crate::support::gateway;

#[tokio::test]
async fn tokens_are_issued_to_basic_and_post_clients() {
    let (keys, h) = (Keys::new(), Hashes::new());
    let (gw, _up) = start(&keys, &[("k1", "ES256", "es256")], &h).await;
    let resp = token_basic(
        &gw,
        "billing",
        BILLING_SECRET,
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(resp.header("pragma"), Some("no-cache"));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body = resp.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(
        body["scope"], "orders:read orders:write",
        "no scope asked: all allowed"
    );
    let token = body["access_token"].as_str().unwrap();
    let header = jwt_part(token, 0);
    assert_eq!(
        (header["alg"].as_str(), header["kid"].as_str()),
        (Some("ES256"), Some("k1"))
    );
    assert_eq!(header["typ"], "at+jwt");
    let claims = jwt_part(token, 1);
    assert_eq!(claims["iss"], "https://gw.test");
    assert_eq!(claims["sub"], "billing-service");
    assert_eq!(claims["aud"], "orders-api");
    assert_eq!(claims["client_id"], "billing");
    assert_eq!(claims["scope"], "orders:read orders:write");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(claims["jti"].as_str().unwrap())
            .unwrap()
            .len(),
        16
    );

    // client_secret_post, with a narrower scope and form-encoded values.
    let body = format!(
        "grant_type=client_credentials&client_id=reports&client_secret={}&scope=reports%3Aread",
        form_encode(REPORTS_SECRET)
    );
    let resp = post(&gw, "/oauth/token", &[FORM], &body).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let claims = jwt_part(resp.json()["access_token"].as_str().unwrap(), 1);
    assert_eq!(
        (claims["sub"].as_str(), claims["scope"].as_str()),
        (Some("reports"), Some("reports:read"))
    );
}

#[tokio::test]
async fn bad_client_credentials_all_get_the_same_401() {
    let (keys, h) = (Keys::new(), Hashes::new());
    let (gw, _up) = start(&keys, &[("k1", "ES256", "es256")], &h).await;
    let grant = "grant_type=client_credentials";
    let mut bodies = Vec::new();
    for resp in [
        token_basic(&gw, "billing", "wrong", grant).await,
        token_basic(&gw, "nobody", BILLING_SECRET, grant).await,
        post(
            &gw,
            "/oauth/token",
            &[FORM],
            &format!("{grant}&client_id=billing&client_secret=wrong"),
        )
        .await,
        post(
            &gw,
            "/oauth/token",
            &[FORM],
            &format!("{grant}&client_id=nobody&client_secret=x"),
        )
        .await,
    ] {
        assert_eq!(resp.status, 401, "{}", resp.text());
        assert_eq!(
            resp.header("www-authenticate"),
            Some("Basic realm=\"https://gw.test\"")
        );
        assert_eq!(resp.header("cache-control"), Some("no-store"));
        bodies.push(resp.json());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(bodies[0]["error"], "invalid_client");
    // No credentials at all, and a client_id without a secret (no public clients).
    for body in [grant.to_owned(), format!("{grant}&client_id=billing")] {
        let resp = post(&gw, "/oauth/token", &[FORM], &body).await;
        assert_eq!(resp.status, 401);
        assert_eq!(resp.json()["error"], "invalid_client");
    }
    // Two methods at once.
    let auth = basic("billing", BILLING_SECRET);
    let both = format!(
        "{grant}&client_id=billing&client_secret={}",
        form_encode(BILLING_SECRET)
    );
    let resp = post(
        &gw,
        "/oauth/token",
        &[FORM, ("authorization", &auth)],
        &both,
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"], "invalid_request");
}

#[tokio::test]
async fn grant_scope_and_request_errors() {
    let (keys, h) = (Keys::new(), Hashes::new());
    let (gw, _up) = start(&keys, &[("k1", "ES256", "es256")], &h).await;
    let cases = [
        (
            "grant_type=client_credentials&scope=orders%3Aread+admin",
            "invalid_scope",
        ),
        (
            "grant_type=client_credentials&scope=reports:read",
            "invalid_scope",
        ),
        (
            "grant_type=password&username=a&password=b",
            "unsupported_grant_type",
        ),
        ("scope=orders:read", "invalid_request"),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            "invalid_request",
        ),
    ];
    for (body, error) in cases {
        let resp = token_basic(&gw, "billing", BILLING_SECRET, body).await;
        assert_eq!(resp.status, 400, "{body}: {}", resp.text());
        let json = resp.json();
        assert_eq!(json["error"], error, "{body}");
        assert!(json["error_description"].is_string());
    }
    let auth = basic("billing", BILLING_SECRET);
    let json_body = [
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    let resp = post(
        &gw,
        "/oauth/token",
        &json_body,
        "{\"grant_type\":\"client_credentials\"}",
    )
    .await;
    assert_eq!(
        (resp.status.as_u16(), resp.json()["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let resp = gw.get("/oauth/token?grant_type=client_credentials").await;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("POST"));
}

#[tokio::test]
async fn tokens_open_routes_that_need_their_scopes() {
    let (keys, h) = (Keys::new(), Hashes::new());
    let (gw, up) = start(&keys, &[("k1", "EdDSA", "ed25519")], &h).await;
    let token = billing_token(&gw, "orders:read").await;
    let resp = call(&gw, "/orders/17", &token).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = &resp.json()["headers"];
    assert_eq!(seen["x-consumer-id"], "billing-service");
    assert_eq!(seen["x-consumer-groups"], "internal");
    assert_eq!(seen["x-credential-id"], "billing");
    assert_eq!(seen["x-consumer-scopes"], "orders:read");

    // A good token without the route's scope: 403 insufficient_scope.
    let write_only = billing_token(&gw, "orders:write").await;
    let resp = call(&gw, "/orders/17", &write_only).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    let challenge = resp.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    let reports = post(
        &gw,
        "/oauth/token",
        &[FORM],
        &format!("grant_type=client_credentials&client_id=reports&client_secret={REPORTS_SECRET}"),
    )
    .await;
    let reports = reports.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(call(&gw, "/orders", &reports).await.status, 403);

    // Tampered and garbage tokens are invalid; no token at all is a plain 401.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = jwt_part(&token, 1);
    claims["scope"] = "orders:read orders:write admin".into();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    for bad in [parts.join("."), "garbage".to_owned()] {
        let resp = call(&gw, "/orders", &bad).await;
        assert_eq!(resp.status, 401);
        let challenge = resp.header("www-authenticate").unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    assert_eq!(gw.get("/orders").await.status, 401);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn introspection_tells_active_from_inactive_tokens() {
    let (keys, h) = (Keys::new(), Hashes::new());
    // Whole seconds: a 1 s token issued at x.999 lives 1 ms, so give it room.
    let yaml = config(&keys.entries(&[("k1", "ES256", "es256")]), "3s", &h);
    let (gw, _up) = gateway(&yaml).await;
    let token = billing_token(&gw, "orders:read").await;
    let info = introspect(&gw, &token).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["scope"], "orders:read");
    assert_eq!(info["client_id"], "billing");
    assert_eq!(info["sub"], "billing-service");
    assert_eq!(info["aud"], "orders-api");
    assert_eq!(info["iss"], "https://gw.test");
    assert_eq!(info["token_type"], "Bearer");
    assert_eq!(info["jti"], jwt_part(&token, 1)["jti"]);
    for field in ["exp", "iat", "nbf"] {
        assert!(info[field].is_i64(), "{field}: {info}");
    }
    let inactive = serde_json::json!({ "active": false });
    assert_eq!(introspect(&gw, "garbage").await, inactive);
    assert_eq!(introspect(&gw, "a.b.c").await, inactive);

    // Expired: wait until the wall clock passes the token's own `exp`.
    let exp = jwt_part(&token, 1)["exp"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let left = std::time::Duration::from_secs(exp.try_into().unwrap()).saturating_sub(now);
    tokio::time::sleep(left + std::time::Duration::from_millis(50)).await;
    assert_eq!(introspect(&gw, &token).await, inactive);
    assert_eq!(call(&gw, "/orders", &token).await.status, 401);

    // Introspection itself needs client credentials.
    let resp = post(&gw, "/oauth/introspect", &[FORM], &format!("token={token}")).await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["error"], "invalid_client");
}

#[tokio::test]
async fn revoked_tokens_stop_working_even_after_a_reload() {
    let (keys, h) = (Keys::new(), Hashes::new());
    let yaml = config(&keys.entries(&[("k1", "ES256", "es256")]), "1h", &h);
    let (gw, up) = gateway(&yaml).await;
    let token = billing_token(&gw, "").await;
    assert_eq!(call(&gw, "/orders", &token).await.status, 200);

    // Another client may not revoke it (RFC 7009 §2.1): refused, and the token lives.
    let resp = revoke(&gw, "reports", REPORTS_SECRET, &token).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["error"], "unauthorized_client");
    assert_eq!(call(&gw, "/orders", &token).await.status, 200);
    // Nor may anyone without credentials.
    assert_eq!(revoke(&gw, "billing", "wrong", &token).await.status, 401);

    let resp = revoke(&gw, "billing", BILLING_SECRET, &token).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = call(&gw, "/orders", &token).await;
    assert_eq!(resp.status, 401);
    assert!(
        resp.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(introspect(&gw, &token).await["active"], false);
    // Again, and unknown tokens: 200 (RFC 7009 §2.2).
    assert_eq!(
        revoke(&gw, "billing", BILLING_SECRET, &token).await.status,
        200
    );
    assert_eq!(
        revoke(&gw, "billing", BILLING_SECRET, "garbage")
            .await
            .status,
        200
    );

    let cfg = turnpike_config::load_str(
        &yaml.replace("{upstream}", &up.url()),
        Path::new("test.yaml"),
        &|_| None,
    )
    .unwrap();
    gw.gateway.reload(&cfg).unwrap();
    assert_eq!(
        call(&gw, "/orders", &token).await.status,
        401,
        "revocations survive a reload"
    );
    let fresh = billing_token(&gw, "").await;
    assert_eq!(call(&gw, "/orders", &fresh).await.status, 200);
}

#[tokio::test]
async fn rotated_keys_keep_old_tokens_valid_until_removed() {
    let (keys, h) = (Keys::new(), Hashes::new());
    let old = [("k-old", "RS256", "rsa")];
    let (gw, up) = start(&keys, &old, &h).await;
    let old_token = billing_token(&gw, "").await;
    assert_eq!(jwt_part(&old_token, 0)["kid"], "k-old");

    let load = |list: &[(&str, &str, &str)]| {
        let yaml = config(&keys.entries(list), "1h", &h).replace("{upstream}", &up.url());
        turnpike_config::load_str(&yaml, Path::new("test.yaml"), &|_| None).unwrap()
    };
    // Step 1: the new key goes first; the old one stays published.
    gw.gateway
        .reload(&load(&[("k-new", "ES256", "es256"), old[0]]))
        .unwrap();
    let new_token = billing_token(&gw, "").await;
    assert_eq!(jwt_part(&new_token, 0)["kid"], "k-new");
    assert_eq!(call(&gw, "/orders", &old_token).await.status, 200);
    assert_eq!(call(&gw, "/orders", &new_token).await.status, 200);
    let jwks = gw.get("/.well-known/jwks.json").await.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["k-new", "k-old"]);

    // Step 2, after token_ttl: the old key goes, and with it whatever it signed.
    gw.gateway
        .reload(&load(&[("k-new", "ES256", "es256")]))
        .unwrap();
    assert_eq!(call(&gw, "/orders", &old_token).await.status, 401);
    assert_eq!(call(&gw, "/orders", &new_token).await.status, 200);
}

#[tokio::test]
async fn metadata_and_jwks_describe_the_server() {
    let (keys, h) = (Keys::new(), Hashes::new());
    let list = [
        ("k-ec", "ES256", "es256"),
        ("k-ed", "EdDSA", "ed25519"),
        ("k-rsa", "PS256", "rsa"),
    ];
    let (gw, _up) = start(&keys, &list, &h).await;
    let resp = gw.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("cache-control"), Some("public, max-age=300"));
    let meta = resp.json();
    assert_eq!(meta["issuer"], "https://gw.test");
    assert_eq!(meta["token_endpoint"], "https://gw.test/oauth/token");
    assert_eq!(
        meta["introspection_endpoint"],
        "https://gw.test/oauth/introspect"
    );
    assert_eq!(meta["revocation_endpoint"], "https://gw.test/oauth/revoke");
    assert_eq!(meta["jwks_uri"], "https://gw.test/.well-known/jwks.json");
    assert_eq!(
        meta["grant_types_supported"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(meta["response_types_supported"], serde_json::json!([]));
    let methods = serde_json::json!(["client_secret_basic", "client_secret_post"]);
    for field in ["token", "introspection", "revocation"] {
        assert_eq!(
            meta[format!("{field}_endpoint_auth_methods_supported")],
            methods
        );
    }
    assert_eq!(
        meta["scopes_supported"],
        serde_json::json!(["orders:read", "orders:write", "reports:read"])
    );

    let resp = gw.get("/.well-known/jwks.json").await;
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let jwks = resp.json();
    let keys: Vec<&Value> = jwks["keys"].as_array().unwrap().iter().collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(
        (keys[0]["kty"].as_str(), keys[0]["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(
        (keys[1]["kty"].as_str(), keys[1]["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(
        (keys[2]["kty"].as_str(), keys[2]["alg"].as_str()),
        (Some("RSA"), Some("PS256"))
    );
    assert_eq!(keys[2]["e"], "AQAB");
    assert!(
        keys.iter()
            .all(|k| k["use"] == "sig" && k.get("d").is_none()),
        "{jwks}"
    );

    let resp = post(&gw, "/.well-known/jwks.json", &[], "").await;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn advertised_endpoints_are_served_when_the_issuer_has_a_path() {
    let (keys, h) = (Keys::new(), Hashes::new());
    let yaml = config(&keys.entries(&[("k1", "ES256", "es256")]), "1h", &h)
        .replace("issuer: https://gw.test", "issuer: https://gw.test/auth");
    let (gw, _up) = gateway(&yaml).await;
    let meta = gw.get("/.well-known/oauth-authorization-server/auth").await;
    assert_eq!(meta.status, 200, "{}", meta.text());
    let meta = meta.json();
    assert_eq!(meta["issuer"], "https://gw.test/auth");
    let path = |field: &str| {
        let url = meta[field].as_str().unwrap();
        url.strip_prefix("https://gw.test")
            .unwrap_or_else(|| panic!("{field} {url} is not on the issuer's host"))
            .to_owned()
    };
    assert_eq!(path("token_endpoint"), "/oauth/token");
    assert_eq!(path("jwks_uri"), "/.well-known/jwks.json");
    // Each advertised URL is one the gateway answers.
    let auth = basic("billing", BILLING_SECRET);
    let headers = [FORM, ("authorization", auth.as_str())];
    let body = "grant_type=client_credentials&scope=orders%3Aread";
    let resp = post(&gw, &path("token_endpoint"), &headers, body).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let token = resp.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_part(&token, 1)["iss"], "https://gw.test/auth");
    let body = format!("token={}", form_encode(&token));
    let resp = post(&gw, &path("introspection_endpoint"), &headers, &body).await;
    assert_eq!(resp.json()["active"], true, "{}", resp.text());
    assert_eq!(gw.get(&path("jwks_uri")).await.status, 200);
    let resp = post(&gw, &path("revocation_endpoint"), &headers, &body).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(call(&gw, "/orders", &token).await.status, 401, "revoked");
}

/// HS256 tokens of a partner, from a provider without `issuer`.
const PARTNER_SECRET: &str = "partner-secret-0123456789abcdef-0123";

fn partner_token(iss: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = serde_json::json!({"iss": iss, "sub": "partner", "exp": exp});
    let key = jsonwebtoken::EncodingKey::from_secret(PARTNER_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

#[tokio::test]
async fn an_issuerless_jwt_provider_leaves_the_gateways_tokens_to_oauth() {
    let (keys, h) = (Keys::new(), Hashes::new());
    let yaml = format!(
        "{}  - name: mixed
    paths: [/mixed]
    upstream: echo
    auth: {{methods: [jwt, oauth]}}
auth:
  jwt:
    - name: partner
      algorithms: [HS256]
      keys: [{{secret: \"{PARTNER_SECRET}\"}}]
",
        config(&keys.entries(&[("k1", "ES256", "es256")]), "1h", &h)
    );
    let (gw, _up) = gateway(&yaml).await;
    let ours = billing_token(&gw, "orders:read").await;
    let resp = call(&gw, "/mixed", &ours).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["headers"]["x-consumer-id"], "billing-service");
    // The provider still takes every other issuer's tokens.
    let resp = call(&gw, "/mixed", &partner_token("https://partner.test")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["headers"]["x-consumer-id"], "partner");
    // A partner-signed token claiming the gateway's issuer is `oauth`'s to judge: refused.
    let forged = partner_token("https://gw.test");
    assert_eq!(call(&gw, "/mixed", &forged).await.status, 401);
}

#[tokio::test]
async fn pyjwt_verifies_issued_tokens_against_the_served_jwks() {
    let (keys, h) = (Keys::new(), Hashes::new());
    for (alg, file) in [
        ("ES256", "es256"),
        ("EdDSA", "ed25519"),
        ("RS256", "rsa"),
        ("PS256", "rsa"),
    ] {
        let (gw, _up) = start(&keys, &[("k1", alg, file)], &h).await;
        let token = billing_token(&gw, "orders:read").await;
        let jwks = gw.get("/.well-known/jwks.json").await.json();
        let Some(claims) = pyjwt::pyjwt_decode(&token, &jwks) else {
            return;
        };
        assert_eq!(claims["client_id"], "billing", "{alg}");
        assert_eq!(claims["scope"], "orders:read", "{alg}");
    }
}
