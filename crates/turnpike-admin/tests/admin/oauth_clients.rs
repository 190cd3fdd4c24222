//! OAuth clients through the admin API: a generated secret is returned once and stored as an
//! argon2 hash, a given hash is taken as is, validation is the file's `oauth.clients` one,
//! file clients are read-only, and store clients reach the merged configuration.

use http::Method;
use serde_json::{Value, json};
use turnpike_admin::{AdminOptions, token};

use crate::support::{Admin, BASE_YAML, assert_error, detail_paths};

/// A file with an OAuth server, one client of its own and a consumer.
pub const OAUTH_YAML: &str = "oauth:
  issuer: https://gw.example.test
  signing_keys: [{kid: k1, algorithm: ES256, key_file: /nonexistent/k1.pem}]
  clients:
    - client_id: file-app
      secret_hash: \"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7X9VFA1lGNaQ8Uc8DfXSeDIDOWOJFBa3yNyDRb1JkPc\"
consumers:
  - name: alice
";

pub async fn start_with(extra: &str) -> Admin {
    let yaml = format!("{BASE_YAML}{extra}");
    let base = turnpike_config::load_str(&yaml, std::path::Path::new("b.yaml"), &|_| None).unwrap();
    let bootstrap = token::generate().unwrap().token;
    let options = AdminOptions {
        base,
        bootstrap_token: Some(bootstrap.clone()),
        insecure_no_auth: false,
    };
    Admin::start_in(tempfile::tempdir().unwrap(), options, bootstrap).await
}

#[tokio::test]
async fn a_generated_secret_is_shown_once_and_stored_hashed() {
    let admin = start_with(OAUTH_YAML).await;
    let body = json!({"client_id": "reports", "scopes": ["orders:read"], "consumer": "alice"});
    let r = admin.post("/api/v1/oauth-clients", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("location"), Some("/api/v1/oauth-clients/reports"));
    let created = r.json();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 40, "{created}");

    let got = admin.get("/api/v1/oauth-clients/reports").await;
    assert_eq!(got.status, 200);
    let doc = got.json();
    assert!(doc.get("client_secret").is_none(), "{doc}");
    assert_eq!(doc["scopes"], json!(["orders:read"]));
    let hash = doc["secret_hash"].as_str().unwrap();
    assert!(turnpike_policy::password::verify(hash, &secret));
    let audit = admin.get("/api/v1/audit?kind=oauth-clients").await.text();
    assert!(!audit.contains(&secret));
    let list = admin.get("/api/v1/oauth-clients").await.json();
    assert_eq!(list["items"][0]["client_id"], "reports");

    // The merged configuration has it next to the file's client.
    let state = turnpike_admin::AdminState::new(
        admin.store.clone(),
        AdminOptions {
            base: turnpike_config::load_str(
                &format!("{BASE_YAML}{OAUTH_YAML}"),
                std::path::Path::new("b"),
                &|_| None,
            )
            .unwrap(),
            ..AdminOptions::default()
        },
    )
    .await
    .unwrap();
    let effective = turnpike_admin::sync::effective_config(&state)
        .await
        .unwrap();
    let oauth = effective.config.oauth.unwrap();
    let ids: Vec<&str> = oauth.clients.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(ids, ["file-app", "reports"]);
}

#[tokio::test]
async fn a_given_hash_is_kept_and_a_put_without_one_keeps_it() {
    let admin = start_with(OAUTH_YAML).await;
    let hash = turnpike_policy::password::hash("s3cret-s3cret").unwrap();
    let body = json!({"client_id": "app", "secret_hash": hash});
    let r = admin.post("/api/v1/oauth-clients", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.json().get("client_secret").is_none());

    let put = json!({"scopes": ["a"]});
    let r = admin
        .call(Method::PUT, "/api/v1/oauth-clients/app", Some(&put))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["secret_hash"], hash.as_str());
    assert_eq!(r.json()["scopes"], json!(["a"]));
    assert_eq!(r.header("etag"), Some("\"2\""));
}

#[tokio::test]
async fn validation_is_the_files_with_field_paths() {
    let admin = start_with(OAUTH_YAML).await;
    let cases: [(Value, &str); 4] = [
        (
            json!({"client_id": "x", "secret_hash": "plain"}),
            "secret_hash",
        ),
        (json!({"client_id": "x", "consumer": "nobody"}), "consumer"),
        (json!({"client_id": "x", "colour": 1}), "colour"),
        (
            json!({"client_id": "x", "client_secret": "no"}),
            "client_secret",
        ),
    ];
    for (body, path) in cases {
        let r = admin.post("/api/v1/oauth-clients", &body).await;
        let err = assert_error(&r, 400, "invalid_entity");
        assert_eq!(detail_paths(&err), [path], "{err}");
    }
    let r = admin
        .post("/api/v1/oauth-clients", &json!({"scopes": []}))
        .await;
    let err = assert_error(&r, 400, "invalid_entity");
    assert_eq!(detail_paths(&err), ["client_id"]);
    // The file's client is read-only.
    let file = json!({"client_id": "file-app"});
    let r = admin.post("/api/v1/oauth-clients", &file).await;
    assert_error(&r, 409, "read_only");
    let r = admin
        .call(Method::DELETE, "/api/v1/oauth-clients/file-app", None)
        .await;
    assert_error(&r, 409, "read_only");
    let names = admin.get("/api/v1/file-entities").await.json();
    assert_eq!(names["oauth-clients"], json!(["file-app"]));
}

#[tokio::test]
async fn a_consumer_in_use_by_a_client_cannot_go() {
    let admin = start_with(OAUTH_YAML).await;
    let r = admin
        .post("/api/v1/consumers", &json!({"name": "bob"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let body = json!({"client_id": "app", "consumer": "bob"});
    let r = admin.post("/api/v1/oauth-clients", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = admin
        .call(Method::DELETE, "/api/v1/consumers/bob", None)
        .await;
    let err = assert_error(&r, 409, "conflict");
    assert_eq!(detail_paths(&err), [r#"oauth-clients["app"].consumer"#]);
}

#[tokio::test]
async fn without_an_oauth_server_clients_are_refused() {
    let admin = Admin::start().await;
    let r = admin
        .post("/api/v1/oauth-clients", &json!({"client_id": "app"}))
        .await;
    let err = assert_error(&r, 400, "invalid_entity");
    let message = err["error"]["details"][0]["message"].as_str().unwrap();
    assert!(message.contains("no `oauth` section"), "{err}");
}
