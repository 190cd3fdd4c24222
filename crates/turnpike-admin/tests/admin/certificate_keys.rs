//! Certificates' private keys at rest: encrypted under `admin.secrets_key` (no PEM key text
//! anywhere in the database files), decrypted only when merged into the served
//! configuration; without the key writes are refused; plaintext keys of earlier versions
//! still load and are encrypted at their next write; a wrong key, a tampered value or one
//! moved to another certificate is a refused merge naming the certificate.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use turnpike_admin::sync::{Follower, SyncError, effective_config};
use turnpike_admin::{AdminOptions, AdminState, ConfigStatus};
use turnpike_config::Config;
use turnpike_store::Store;

use crate::certificates::{KEY_YAML, LISTENER_YAML, SECRETS_KEY, pair, tls_yaml};
use crate::oauth_clients::start_with;
use crate::support::{Admin, BASE_YAML, assert_error};

const OTHER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// An admin state over `store` whose file is the tests' base plus `extra`.
async fn state(store: &Store, extra: &str) -> AdminState {
    let yaml = format!("{BASE_YAML}{extra}");
    let base = turnpike_config::load_str(&yaml, std::path::Path::new("b.yaml"), &|_| None).unwrap();
    let options = AdminOptions {
        base,
        ..AdminOptions::default()
    };
    AdminState::new(store.clone(), options).await.unwrap()
}

/// The listener's certificates of the merged configuration.
async fn served(state: &AdminState) -> Vec<turnpike_config::model::Certificate> {
    let effective = effective_config(state).await.unwrap();
    let tls = effective.config.listeners[0].tls.clone().unwrap();
    tls.certificates
}

/// Every byte of the store's files (SQLite: the database, its WAL and shared memory).
fn raw_store(dir: &std::path::Path) -> String {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// The second line of a PEM document: base64 of its body, which no encoding hides.
fn body_line(pem: &str) -> &str {
    pem.lines().nth(1).unwrap()
}

fn with_key(mut doc: Value, key: &str) -> Value {
    doc["key"] = Value::String(key.to_owned());
    doc
}

#[tokio::test]
async fn the_store_holds_no_key_text_and_the_gateway_gets_it_back() {
    let admin = start_with(&tls_yaml()).await;
    let (cert, key) = pair("api.example.test");
    let body = json!({"name": "api", "cert": cert, "key": key});
    let r = admin.post("/api/v1/certificates", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let raw = raw_store(admin.dir.path());
    // The right files: the certificate, which is public, is there in clear.
    assert!(
        raw.contains(body_line(&cert)),
        "the store's files hold no certificate"
    );
    assert!(!raw.contains("PRIVATE KEY"));
    assert!(!raw.contains(body_line(&key)));
    assert!(!raw.contains(SECRETS_KEY));

    let state = state(&admin.store, &tls_yaml()).await;
    let certs = served(&state).await;
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[1].name.as_deref(), Some("api"));
    assert_eq!(certs[1].key, key);
    assert_eq!(certs[1].cert, cert);
}

#[tokio::test]
async fn without_a_secrets_key_writes_are_refused_and_old_plaintext_still_loads() {
    let admin = start_with(LISTENER_YAML).await;
    let (cert, key) = pair("api.example.test");
    let body = json!({"name": "api", "cert": cert, "key": key});
    let r = admin.post("/api/v1/certificates", &body).await;
    let err = assert_error(&r, 409, "no_secrets_key");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("admin.secrets_key") && message.contains("turnpike secret store-key"),
        "{message}"
    );
    assert_eq!(admin.store.version().await.unwrap(), 0);

    // A key in clear, as an earlier version stored it: served as it is, with or without a
    // secrets key; a PUT without the key is refused too (it would store it again).
    let legacy = json!({"name": "old", "cert": cert, "key": key});
    admin
        .store
        .create("certificates", "old", legacy, "test")
        .await
        .unwrap();
    assert_eq!(
        served(&state(&admin.store, LISTENER_YAML).await).await[1].key,
        key
    );
    assert_eq!(
        served(&state(&admin.store, &tls_yaml()).await).await[1].key,
        key
    );
    let put = json!({"cert": cert});
    let r = admin
        .call(Method::PUT, "/api/v1/certificates/old", Some(&put))
        .await;
    assert_error(&r, 409, "no_secrets_key");
    // Deleting needs no key.
    let r = admin
        .call(Method::DELETE, "/api/v1/certificates/old", None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
}

#[tokio::test]
async fn a_plaintext_key_is_encrypted_at_its_next_write() {
    let admin = start_with(&tls_yaml()).await;
    let (cert, key) = pair("api.example.test");
    let legacy = json!({"name": "old", "cert": cert, "key": key});
    admin
        .store
        .create("certificates", "old", legacy, "test")
        .await
        .unwrap();
    // The chain alone: the stored key is kept, and now encrypted.
    let r = admin
        .call(
            Method::PUT,
            "/api/v1/certificates/old",
            Some(&json!({"cert": cert})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let stored = admin
        .store
        .get("certificates", "old")
        .await
        .unwrap()
        .unwrap();
    assert!(stored.doc["key"].as_str().unwrap().starts_with("enc:v1:"));
    let state = state(&admin.store, &tls_yaml()).await;
    assert_eq!(served(&state).await[1].key, key);
}

#[tokio::test]
async fn a_wrong_key_is_reported_by_name_and_never_applied() {
    let admin = start_with(&tls_yaml()).await;
    let (cert, key) = pair("api.example.test");
    let r = admin
        .post(
            "/api/v1/certificates",
            &json!({"name": "api", "cert": cert, "key": key}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // Another key (rotated without re-storing), or none at all.
    let other = format!("{LISTENER_YAML}admin:\n  secrets_key: {OTHER_KEY}\n");
    for extra in [other.as_str(), LISTENER_YAML] {
        let wrong = state(&admin.store, extra).await;
        let err = match effective_config(&wrong).await {
            Err(err @ SyncError::Secrets(_)) => err,
            other => panic!("expected undecryptable certificates, got {other:?}"),
        };
        let summary = err.summary();
        assert!(summary.contains(r#"certificates["api"].key"#), "{summary}");
        for text in [summary, err.to_string()] {
            assert!(
                !text.contains("PRIVATE") && !text.contains("enc:v1"),
                "{text}"
            );
            assert!(
                !text.contains(OTHER_KEY) && !text.contains(SECRETS_KEY),
                "{text}"
            );
        }
    }

    // A running follower keeps its configuration and says why in `/readyz`.
    let wrong = state(&admin.store, &other).await;
    let _follower = Follower::start(wrong.clone(), 0, |_: &Config| {
        Ok::<u64, std::convert::Infallible>(1)
    });
    let reason = until_rejected(&wrong).await;
    assert!(reason.contains("store configuration rejected"), "{reason}");
    assert!(reason.contains(r#"certificates["api"].key"#), "{reason}");
    assert!(reason.contains("cannot be decrypted"), "{reason}");

    // A PUT without `key` cannot keep a key it cannot read; with `key` it re-encrypts.
    let wrong_admin = start_with_store(&admin, &other).await;
    let r = wrong_admin
        .call(
            Method::PUT,
            "/api/v1/certificates/api",
            Some(&json!({"cert": cert})),
        )
        .await;
    assert_error(&r, 409, "secrets_key_mismatch");
    let put = json!({"cert": cert, "key": key});
    let r = wrong_admin
        .call(Method::PUT, "/api/v1/certificates/api", Some(&put))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served(&wrong).await[1].key, key);
}

#[tokio::test]
async fn tampered_or_moved_ciphertext_is_refused() {
    let admin = start_with(&tls_yaml()).await;
    let (cert_a, key_a) = pair("a.example.test");
    let (cert_b, key_b) = pair("b.example.test");
    for (name, cert, key) in [("a", &cert_a, &key_a), ("b", &cert_b, &key_b)] {
        let body = json!({"name": name, "cert": cert, "key": key});
        let r = admin.post("/api/v1/certificates", &body).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let stored = |name: &'static str| {
        let store = admin.store.clone();
        async move { store.get("certificates", name).await.unwrap().unwrap().doc }
    };
    let (doc_a, doc_b) = (stored("a").await, stored("b").await);
    let state = state(&admin.store, &tls_yaml()).await;

    // One character of the ciphertext changed, behind the API's back.
    let sealed = doc_a["key"].as_str().unwrap();
    let at = sealed.len() - 10;
    let flipped = if &sealed[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &sealed[..at], &sealed[at + 1..]);
    let update = |doc: Value| {
        let store = admin.store.clone();
        async move {
            store
                .update("certificates", "a", doc, None, "test")
                .await
                .unwrap()
        }
    };
    update(with_key(doc_a.clone(), &tampered)).await;
    let err = effective_config(&state).await.unwrap_err();
    assert!(err.summary().contains(r#"certificates["a"].key"#), "{err}");

    // b's (valid) ciphertext in a's row: bound to b, so refused as well.
    update(with_key(doc_a.clone(), doc_b["key"].as_str().unwrap())).await;
    let err = effective_config(&state).await.unwrap_err();
    assert!(err.summary().contains(r#"certificates["a"].key"#), "{err}");

    update(doc_a).await;
    let certs = served(&state).await;
    assert_eq!(
        (certs[1].key.as_str(), certs[2].key.as_str()),
        (key_a.as_str(), key_b.as_str())
    );
}

/// Polls the state's config status until the follower reports a rejection.
async fn until_rejected(state: &AdminState) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let ConfigStatus::Rejected(_) = state.config_status() {
            return state.config_status().reason().unwrap_or_default();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rejection within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A second admin API over `admin`'s store, with the file's base plus `extra`.
async fn start_with_store(admin: &Admin, extra: &str) -> Admin {
    let yaml = format!("{BASE_YAML}{extra}");
    let base = turnpike_config::load_str(&yaml, std::path::Path::new("b.yaml"), &|_| None).unwrap();
    let options = AdminOptions {
        base,
        bootstrap_token: None,
        insecure_no_auth: false,
    };
    let (store, dir) = (admin.store.clone(), tempfile::tempdir().unwrap());
    Admin::start_over(store, dir, options, admin.token.clone()).await
}

#[test]
fn key_yaml_is_the_tests_key() {
    assert!(KEY_YAML.contains(SECRETS_KEY));
}
