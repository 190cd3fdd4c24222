//! Unit tests of the JWT verifier with HMAC keys signed by `jsonwebtoken` itself; the
//! public-key algorithms and tokens from an independent implementation are covered by
//! the gateway's integration tests (`turnpike-proxy/tests/security/jwt.rs`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use http::{HeaderMap, Method, Uri};
use jsonwebtoken::{DecodingKey, EncodingKey, encode};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

use super::*;

const SECRET: &str = "unit-test-secret-0123456789abcdef0123";
const OTHER_SECRET: &str = "another-secret-0123456789abcdef012345";
const NOW: i64 = 1_800_000_000;

fn provider(extra: Value) -> model::JwtProvider {
    let mut base = json!({
        "name": "local",
        "issuer": "https://issuer.test",
        "algorithms": ["HS256"],
        "keys": [{"secret": SECRET}],
    });
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
        base.extend(extra);
    }
    serde_json::from_value(base).unwrap()
}

fn set(providers: &[model::JwtProvider]) -> JwtSet {
    JwtSet::build(providers, None, None).unwrap()
}

fn consumers() -> Consumers {
    let alice: model::Consumer =
        serde_json::from_value(json!({"name": "alice", "groups": ["staff"]})).unwrap();
    Consumers::build(&[alice])
}

fn sign_with(header: jsonwebtoken::Header, claims: Value, secret: &str) -> String {
    encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn sign(claims: Value) -> String {
    sign_with(jsonwebtoken::Header::default(), claims, SECRET)
}

fn claims(extra: Value) -> Value {
    let mut base = json!({
        "iss": "https://issuer.test",
        "sub": "alice",
        "scope": "read write",
        "exp": NOW + 600,
    });
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
        for (k, v) in extra {
            if v.is_null() {
                base.remove(&k);
            } else {
                base.insert(k, v);
            }
        }
    }
    base
}

async fn attempt_at(jwt: &JwtSet, authorization: &str, allowed: &[&str], now: i64) -> Attempt {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
    let uri = Uri::from_static("/");
    let req = RequestView {
        method: &Method::GET,
        uri: &uri,
        headers: &headers,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        client_cert: None,
    };
    let allowed: Vec<Box<str>> = allowed.iter().map(|a| (*a).into()).collect();
    jwt.attempt(&req, &allowed, &consumers(), now).await
}

async fn attempt(jwt: &JwtSet, token: &str) -> Attempt {
    attempt_at(jwt, &format!("Bearer {token}"), &[], NOW).await
}

fn valid(a: Attempt) -> Identity {
    match a {
        Attempt::Valid(identity) => identity,
        other => panic!("expected a valid token, got {other:?}"),
    }
}

fn is_invalid(a: &Attempt) -> bool {
    matches!(a, Attempt::Invalid)
}

fn is_absent(a: &Attempt) -> bool {
    matches!(a, Attempt::Absent)
}

#[tokio::test]
async fn a_valid_token_names_its_consumer_scopes_and_claims() {
    let forward = json!({"forward_claims": {
        "email": "x-email", "level": "x-level", "admin": "x-admin",
        "roles": "x-roles", "address": "x-address", "evil": "x-evil"
    }});
    let jwt = set(&[provider(forward)]);
    let token = sign(claims(json!({
        "email": "alice@example.test", "level": 3, "admin": true,
        "roles": ["a", 1, "b"], "address": {"city": "Lyon"}, "evil": "x\r\nInjected: yes"
    })));
    let id = valid(attempt(&jwt, &token).await);
    assert_eq!(&*id.consumer.name, "alice");
    assert_eq!(id.consumer.groups, vec![Box::<str>::from("staff")]);
    assert_eq!(id.credential.as_ref().unwrap(), "alice");
    assert_eq!(
        id.scopes.as_deref().unwrap(),
        [Box::<str>::from("read"), Box::from("write")]
    );
    let headers: HashMap<&str, &str> = id
        .claims
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(headers["x-email"], "alice@example.test");
    assert_eq!(headers["x-level"], "3");
    assert_eq!(headers["x-admin"], "true");
    assert_eq!(headers["x-roles"], "a,b");
    assert_eq!(headers["x-evil"], "xInjected: yes");
    assert!(!headers.contains_key("x-address"));
    assert!(!id.anonymous);
}

#[tokio::test]
async fn scheme_is_case_insensitive_and_other_schemes_are_absent() {
    let jwt = set(&[provider(json!({}))]);
    let token = sign(claims(json!({})));
    valid(attempt_at(&jwt, &format!("bEaReR {token}"), &[], NOW).await);
    assert!(is_absent(&attempt_at(&jwt, "Basic YTpi", &[], NOW).await));
    assert!(is_invalid(&attempt(&jwt, "not-a-jwt").await));
    assert!(is_invalid(&attempt(&jwt, "a.b.c").await));
}

#[tokio::test]
async fn time_claims_respect_the_leeway() {
    let strict = set(&[provider(json!({}))]);
    let lenient = set(&[provider(json!({"leeway": "30s"}))]);
    let late = sign(claims(json!({"exp": NOW - 10})));
    assert!(is_invalid(&attempt(&strict, &late).await));
    valid(attempt(&lenient, &late).await);
    let early = sign(claims(json!({"nbf": NOW + 10})));
    assert!(is_invalid(&attempt(&strict, &early).await));
    valid(attempt(&lenient, &early).await);
    let no_exp = sign(claims(json!({"exp": null})));
    assert!(is_invalid(&attempt(&lenient, &no_exp).await));
    let text_exp = sign(claims(json!({"exp": "tomorrow"})));
    assert!(is_invalid(&attempt(&lenient, &text_exp).await));
    let float_exp = sign(claims(json!({"exp": (NOW + 5) as f64 + 0.5})));
    valid(attempt(&strict, &float_exp).await);
}

#[tokio::test]
async fn cached_tokens_still_expire() {
    let jwt = set(&[provider(json!({}))]);
    let token = sign(claims(json!({"exp": NOW + 60})));
    valid(attempt_at(&jwt, &format!("Bearer {token}"), &[], NOW).await);
    valid(attempt_at(&jwt, &format!("Bearer {token}"), &[], NOW + 59).await);
    let late = attempt_at(&jwt, &format!("Bearer {token}"), &[], NOW + 60).await;
    assert!(is_invalid(&late));
}

#[tokio::test]
async fn issuers_choose_the_provider_and_unknown_ones_are_absent() {
    let other = provider(json!({
        "name": "other", "issuer": "https://other.test", "keys": [{"secret": OTHER_SECRET}]
    }));
    let jwt = set(&[provider(json!({})), other]);
    let theirs = sign_with(
        jsonwebtoken::Header::default(),
        claims(json!({"iss": "https://other.test"})),
        OTHER_SECRET,
    );
    valid(attempt(&jwt, &theirs).await);
    // Signed with the right key for that issuer only.
    let forged = sign(claims(json!({"iss": "https://other.test"})));
    assert!(is_invalid(&attempt(&jwt, &forged).await));
    let stranger = sign(claims(json!({"iss": "https://stranger.test"})));
    assert!(is_absent(&attempt(&jwt, &stranger).await));
    let no_iss = sign(claims(json!({"iss": null})));
    assert!(is_absent(&attempt(&jwt, &no_iss).await));
}

#[tokio::test]
async fn a_route_only_accepts_its_providers_even_from_the_cache() {
    let token = sign(claims(json!({})));
    let header = format!("Bearer {token}");
    let stranger = provider(json!({"name": "z", "issuer": "https://z.test"}));
    let jwt = set(&[provider(json!({})), stranger]);
    // Verified (and cached) for `local`; a route taking only `z` must not see it valid.
    valid(attempt_at(&jwt, &header, &["local"], NOW).await);
    assert!(is_absent(&attempt_at(&jwt, &header, &["z"], NOW).await));
}

#[tokio::test]
async fn audiences_and_required_claims() {
    let jwt = set(&[provider(json!({
        "audiences": ["api", "web"], "required_claims": ["tenant"]
    }))]);
    let good = sign(claims(json!({"aud": ["other", "web"], "tenant": "acme"})));
    valid(attempt(&jwt, &good).await);
    for bad in [
        claims(json!({"aud": "other", "tenant": "acme"})),
        claims(json!({"tenant": "acme"})),
        claims(json!({"aud": "api"})),
        claims(json!({"aud": "api", "tenant": null})),
    ] {
        assert!(
            is_invalid(&attempt(&jwt, &sign(bad.clone())).await),
            "{bad}"
        );
    }
    // Without configured audiences, whatever `aud` says is accepted.
    let open = set(&[provider(json!({}))]);
    valid(attempt(&open, &sign(claims(json!({"aud": "anything"})))).await);
}

#[tokio::test]
async fn only_listed_algorithms_verify() {
    let jwt = set(&[provider(json!({}))]);
    let hs384 = sign_with(
        jsonwebtoken::Header::new(Algorithm::HS384),
        claims(json!({})),
        SECRET,
    );
    assert!(is_invalid(&attempt(&jwt, &hs384).await));
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    assert!(is_invalid(&attempt(&jwt, &none).await));
}

#[tokio::test]
async fn kids_pick_keys_and_kidless_keys_stand_for_any() {
    let keys = json!({"keys": [
        {"kid": "one", "secret": SECRET},
        {"kid": "two", "secret": OTHER_SECRET},
    ]});
    let jwt = set(&[provider(keys)]);
    let header = jsonwebtoken::Header {
        kid: Some("two".into()),
        ..Default::default()
    };
    valid(
        attempt(
            &jwt,
            &sign_with(header.clone(), claims(json!({})), OTHER_SECRET),
        )
        .await,
    );
    // Named key `two`, signed with key `one`: the named key alone is tried.
    let wrong = sign_with(header, claims(json!({"jti": "x"})), SECRET);
    assert!(is_invalid(&attempt(&jwt, &wrong).await));
    // No kid: every fitting key is tried.
    valid(attempt(&jwt, &sign(claims(json!({"jti": "y"})))).await);

    let kidless = set(&[provider(json!({}))]);
    let header = jsonwebtoken::Header {
        kid: Some("whatever".into()),
        ..Default::default()
    };
    valid(attempt(&kidless, &sign_with(header, claims(json!({})), SECRET)).await);
}

#[tokio::test]
async fn the_consumer_claim_is_configurable_and_required() {
    let jwt = set(&[provider(
        json!({"consumer_claim": "client_id", "scopes_claim": "scp"}),
    )]);
    let token = sign(claims(json!({"client_id": "robot", "scp": ["a", "b"]})));
    let id = valid(attempt(&jwt, &token).await);
    assert_eq!(&*id.consumer.name, "robot");
    assert!(id.consumer.groups.is_empty(), "an ad-hoc consumer");
    assert_eq!(
        id.scopes.as_deref().unwrap(),
        [Box::<str>::from("a"), Box::from("b")]
    );
    let anonymous = sign(claims(json!({})));
    assert!(is_invalid(&attempt(&jwt, &anonymous).await));
}

#[tokio::test]
async fn jwks_keys_are_used_and_never_hmac() {
    let p = provider(json!({
        "algorithms": ["RS256"], "keys": [], "jwks_url": "http://127.0.0.1:9/jwks"
    }));
    let jwt = set(&[p]);
    let jwks = jwt.providers[0].jwks.clone().unwrap();
    // Even if a document somehow held an HMAC key, an HS256 token would not be accepted.
    jwks.preload(vec![VerifyKey {
        kid: Some("k".into()),
        family: Family::Hmac,
        alg: None,
        key: jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
    }]);
    let header = jsonwebtoken::Header {
        kid: Some("k".into()),
        ..Default::default()
    };
    let token = sign_with(header, claims(json!({})), SECRET);
    assert!(is_invalid(&attempt(&jwt, &token).await));
}

/// A new ES256 key: what signs, and the public key as a JWKS would hold it.
fn es256(kid: &str) -> (EncodingKey, VerifyKey) {
    let rng = SystemRandom::new();
    let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
    let der = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(alg, der.as_ref(), &rng).unwrap();
    let public = VerifyKey {
        kid: Some(kid.into()),
        family: Family::Ec,
        alg: Some(Algorithm::ES256),
        key: DecodingKey::from_ec_der(pair.public_key().as_ref()),
    };
    (EncodingKey::from_ec_der(der.as_ref()), public)
}

/// An ES256 provider whose JWKS URL leads nowhere (port 9), so its keys are preloaded.
fn jwks_provider() -> JwtSet {
    let url = json!({"algorithms": ["ES256"], "keys": [], "jwks_url": "http://127.0.0.1:9/jwks"});
    set(&[provider(url)])
}

fn sign_es256(key: &EncodingKey, kid: &str) -> String {
    let header = jsonwebtoken::Header {
        kid: Some(kid.into()),
        ..jsonwebtoken::Header::new(Algorithm::ES256)
    };
    encode(&header, &claims(json!({})), key).unwrap()
}

#[tokio::test]
async fn a_cached_token_is_verified_again_when_its_jwks_changes() {
    let jwt = jwks_provider();
    let jwks = jwt.providers[0].jwks.clone().unwrap();
    let (signer, public) = es256("a");
    let (_, other) = es256("b");
    jwks.preload(vec![public.clone()]);
    let token = sign_es256(&signer, "a");
    valid(attempt(&jwt, &token).await);
    let entry = jwt.cache.get(&cache::token_digest(&token), NOW).unwrap();
    assert_eq!(entry.keys, KeySource::Jwks(1));
    valid(attempt(&jwt, &token).await);
    // The issuer drops key `a`: the cached token is checked again, and refused.
    jwks.preload(vec![other]);
    assert!(is_invalid(&attempt(&jwt, &token).await));
    assert!(
        is_invalid(&attempt(&jwt, &token).await),
        "and stays refused"
    );
    // Back in a later set, the key verifies again (and the entry moves on with it).
    jwks.preload(vec![public]);
    valid(attempt(&jwt, &token).await);
    let entry = jwt.cache.get(&cache::token_digest(&token), NOW).unwrap();
    assert_eq!(entry.keys, KeySource::Jwks(3));
}

#[tokio::test]
async fn keys_too_old_to_trust_refuse_even_cached_tokens() {
    let mut jwt = jwks_provider();
    jwt.providers[0].timing.max_stale = Duration::from_millis(100);
    let jwks = jwt.providers[0].jwks.clone().unwrap();
    let (signer, public) = es256("a");
    jwks.preload(vec![public]);
    let token = sign_es256(&signer, "a");
    valid(attempt(&jwt, &token).await);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The refresh fails (nothing listens), and the old set is no longer used.
    assert!(is_invalid(&attempt(&jwt, &token).await));
}

#[tokio::test]
async fn tokens_of_configured_keys_stay_cached_across_jwks_changes() {
    let both = json!({"jwks_url": "http://127.0.0.1:9/jwks"});
    let jwt = set(&[provider(both)]);
    let token = sign(claims(json!({})));
    valid(attempt(&jwt, &token).await);
    let entry = jwt.cache.get(&cache::token_digest(&token), NOW).unwrap();
    assert_eq!(entry.keys, KeySource::Configured);
    jwt.providers[0].jwks.as_ref().unwrap().preload(Vec::new());
    assert!(jwt.still_trusted(&entry));
}

#[tokio::test]
async fn issuerless_providers_leave_the_gateways_own_tokens_alone() {
    let own = "https://gw.test";
    let open = provider(json!({"issuer": null}));
    let jwt = JwtSet::build(std::slice::from_ref(&open), Some(own), None).unwrap();
    let ours = sign(claims(json!({"iss": own})));
    assert!(is_absent(&attempt(&jwt, &ours).await), "left to `oauth`");
    let theirs = sign(claims(json!({"iss": "https://elsewhere.test"})));
    valid(attempt(&jwt, &theirs).await);
    valid(attempt(&jwt, &sign(claims(json!({"iss": null})))).await);
    // Without an OAuth server there is no own issuer to leave alone.
    valid(attempt(&set(std::slice::from_ref(&open)), &ours).await);
    // A provider that names the gateway's issuer does take its tokens.
    let named = provider(json!({"name": "self", "issuer": own}));
    let jwt = JwtSet::build(&[open, named], Some(own), None).unwrap();
    valid(attempt(&jwt, &ours).await);
    let forged = sign_with(
        jsonwebtoken::Header::default(),
        claims(json!({"iss": own, "jti": "f"})),
        OTHER_SECRET,
    );
    assert!(is_invalid(&attempt(&jwt, &forged).await));
}

#[test]
fn jwks_caches_survive_a_reload_by_url() {
    let url = json!({"algorithms": ["RS256"], "keys": [], "jwks_url": "http://idp.test/jwks"});
    let first = set(&[provider(url.clone())]);
    let mut moved = url.clone();
    moved["name"] = json!("renamed");
    let second = JwtSet::build(&[provider(moved)], None, Some(&first)).unwrap();
    let a = first.providers[0].jwks.as_ref().unwrap();
    let b = second.providers[0].jwks.as_ref().unwrap();
    assert!(Arc::ptr_eq(a, b));
    let other = json!({"algorithms": ["RS256"], "keys": [], "jwks_url": "http://idp.test/other"});
    let third = JwtSet::build(&[provider(other)], None, Some(&second)).unwrap();
    assert!(!Arc::ptr_eq(a, third.providers[0].jwks.as_ref().unwrap()));
}

#[test]
fn forwarded_header_names_are_collected_once() {
    let a = provider(json!({"forward_claims": {"email": "x-email", "r": "x-roles"}}));
    let b = provider(json!({"name": "b", "forward_claims": {"mail": "X-Email"}}));
    let names = forwarded_headers(&[a, b]);
    assert_eq!(names, ["x-email", "x-roles"]);
}
