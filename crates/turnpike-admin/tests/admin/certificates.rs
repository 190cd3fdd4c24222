//! TLS certificates through the admin API: the PEM is checked (parses, key matches) with
//! field paths, the private key is stored encrypted and never returned nor audited, a `PUT`
//! without `key` keeps it, and store certificates reach every TLS listener of the merged
//! configuration as inline PEM. Encryption itself: `certificate_keys.rs`.

use http::Method;
use serde_json::json;
use turnpike_admin::AdminOptions;

use crate::oauth_clients::start_with;
use crate::support::{BASE_YAML, assert_error, detail_paths};

/// The store encryption key of these tests (`admin.secrets_key`).
pub const SECRETS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A TLS listener, without `admin:`.
pub const LISTENER_YAML: &str = "listeners:
  - name: tls
    address: 127.0.0.1:8443
    tls:
      certificates: [{cert: /nonexistent/gw.pem, key: /nonexistent/gw-key.pem}]
";

/// `admin.secrets_key` set to [`SECRETS_KEY`].
pub const KEY_YAML: &str = "admin:
  secrets_key: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
";

/// A TLS listener and a secrets key.
pub fn tls_yaml() -> String {
    format!("{LISTENER_YAML}{KEY_YAML}")
}

pub fn pair(name: &str) -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

#[tokio::test]
async fn the_key_is_stored_but_never_shown() {
    let admin = start_with(&tls_yaml()).await;
    let (cert, key) = pair("api.example.test");
    let body = json!({"name": "api", "cert": cert, "key": key, "hosts": ["api.example.test"]});
    let r = admin.post("/api/v1/certificates", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.json().get("key").is_none(), "{}", r.text());
    assert_eq!(r.json()["cert"], cert.as_str());

    let got = admin.get("/api/v1/certificates/api").await;
    assert_eq!(got.status, 200);
    assert!(got.json().get("key").is_none());
    assert!(
        !admin
            .get("/api/v1/certificates")
            .await
            .text()
            .contains("PRIVATE KEY")
    );
    let audit = admin.get("/api/v1/audit?kind=certificates").await.text();
    assert!(!audit.contains("PRIVATE KEY"), "{audit}");
    assert!(audit.contains("[redacted]"), "{audit}");
    // The store has it, encrypted, for the gateway.
    let stored = admin
        .store
        .get("certificates", "api")
        .await
        .unwrap()
        .unwrap();
    let sealed = stored.doc["key"].as_str().unwrap().to_owned();
    assert!(sealed.starts_with("enc:v1:"), "{sealed}");

    // A PUT without `key` keeps it; the ETag moves on.
    let put = json!({"cert": cert, "hosts": ["api.example.test", "*.api.example.test"]});
    let r = admin
        .call(Method::PUT, "/api/v1/certificates/api", Some(&put))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("etag"), Some("\"2\""));
    let stored = admin
        .store
        .get("certificates", "api")
        .await
        .unwrap()
        .unwrap();
    let resealed = stored.doc["key"].as_str().unwrap();
    assert!(
        resealed.starts_with("enc:v1:") && resealed != sealed,
        "{resealed}"
    );

    // Merged (and decrypted) into the TLS listener after the file's certificate, as inline PEM.
    let base = format!("{BASE_YAML}{}", tls_yaml());
    let options = AdminOptions {
        base: turnpike_config::load_str(&base, std::path::Path::new("b"), &|_| None).unwrap(),
        ..AdminOptions::default()
    };
    let state = turnpike_admin::AdminState::new(admin.store.clone(), options)
        .await
        .unwrap();
    let effective = turnpike_admin::sync::effective_config(&state)
        .await
        .unwrap();
    let tls = effective.config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.certificates.len(), 2);
    let merged = &tls.certificates[1];
    assert!(merged.pem);
    assert_eq!(merged.name.as_deref(), Some("api"));
    assert_eq!(merged.key, key);
    assert!(
        !format!("{merged:?}").contains("PRIVATE"),
        "Debug shows the key"
    );
}

#[tokio::test]
async fn bad_pem_and_mismatched_keys_are_400s_on_their_field() {
    let admin = start_with(&tls_yaml()).await;
    let (cert, key) = pair("a.example.test");
    let (_, other) = pair("b.example.test");
    let cases = [
        (json!({"name": "c", "cert": cert, "key": other}), "key"),
        (json!({"name": "c", "cert": "not pem", "key": key}), "cert"),
        (json!({"name": "c", "cert": cert, "key": "not pem"}), "key"),
        (json!({"name": "c", "cert": cert}), ""),
        (
            json!({"name": "c", "cert": cert, "key": key, "pem": true}),
            "pem",
        ),
        (
            json!({"name": "c", "cert": cert, "key": key, "hosts": ["a b"]}),
            "hosts[0]",
        ),
    ];
    for (body, path) in cases {
        let r = admin.post("/api/v1/certificates", &body).await;
        let err = assert_error(&r, 400, "invalid_entity");
        assert_eq!(detail_paths(&err), [path], "{err}");
        assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
    }
    assert_eq!(admin.store.version().await.unwrap(), 0);
}

#[tokio::test]
async fn without_a_tls_listener_certificates_are_refused() {
    let admin = start_with(KEY_YAML).await;
    let (cert, key) = pair("a.example.test");
    let body = json!({"name": "c", "cert": cert, "key": key});
    let r = admin.post("/api/v1/certificates", &body).await;
    let err = assert_error(&r, 400, "invalid_entity");
    assert!(err.to_string().contains("no TLS listener"), "{err}");
}
