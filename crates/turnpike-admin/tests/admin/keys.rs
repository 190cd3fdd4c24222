//! API keys through the admin API: the key is in the creation response once, only its id
//! and hash reach the store, `GET` and the audit log, revocation marks it, file consumers
//! stay read-only, and a file without `auth.key_secret` gets a clear 409.

use http::Method;
use serde_json::{Value, json};
use turnpike_admin::{AdminOptions, token};

use crate::support::{Admin, assert_error, detail_paths, open_store};

const SECRET: &str = "test-key-secret-0123456789abcdef";

/// An admin API whose file has a key secret and a consumer of its own.
async fn with_secret() -> Admin {
    let yaml = format!(
        "{}auth:\n  key_secret: {SECRET}\nconsumers:\n  - name: file-consumer\n",
        crate::support::BASE_YAML
    );
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
async fn key_is_returned_once_and_stored_hashed() {
    let admin = with_secret().await;
    let r = admin
        .post("/api/v1/consumers", &json!({"name": "alice"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let body = json!({"expires_at": "2999-01-01T00:00:00Z"});
    let r = admin.post("/api/v1/consumers/alice/keys", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let created = r.json();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("tp_{id}_")), "{created}");
    assert_eq!(created["expires_at"], "2999-01-01T00:00:00Z");
    assert_eq!(created["consumer"], "alice");

    // GET shows the id and the hash, never the key; the hash is the gateway's own.
    let consumer = admin.get("/api/v1/consumers/alice").await;
    assert_eq!(consumer.header("etag"), Some("\"2\""));
    let doc = consumer.json();
    assert!(!doc.to_string().contains(&key), "{doc}");
    assert_eq!(doc["keys"][0]["id"], id.as_str());
    assert_eq!(
        doc["keys"][0]["hash"],
        turnpike_policy::key_auth::hash(SECRET, &key)
    );
    // Neither the store nor the audit log has it in clear.
    let audit = admin.get("/api/v1/audit?kind=consumers").await.json();
    assert!(!audit.to_string().contains(&key));
    assert!(audit.to_string().contains(&id));
    let dir = admin.stop();
    let store = open_store(dir.path()).await;
    let (_, records) = store.snapshot().await.unwrap();
    assert!(!format!("{records:?}").contains(&key));
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()));
    }
}

#[tokio::test]
async fn revoke_marks_the_key() {
    let admin = with_secret().await;
    admin
        .post("/api/v1/consumers", &json!({"name": "bob"}))
        .await;
    // No body at all is a key without expiry.
    let r = admin
        .call(Method::POST, "/api/v1/consumers/bob/keys", None)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert!(r.json().get("expires_at").is_none());
    let path = format!("/api/v1/consumers/bob/keys/{id}");
    let r = admin.call(Method::DELETE, &path, None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let doc: Value = admin.get("/api/v1/consumers/bob").await.json();
    assert_eq!(doc["keys"][0]["revoked"], true);
    // Twice is fine; an unknown id is 404.
    assert_eq!(admin.call(Method::DELETE, &path, None).await.status, 204);
    let r = admin
        .call(Method::DELETE, "/api/v1/consumers/bob/keys/nope", None)
        .await;
    assert_error(&r, 404, "not_found");
}

#[tokio::test]
async fn key_requests_that_cannot_work() {
    let admin = with_secret().await;
    admin.post("/api/v1/consumers", &json!({"name": "c"})).await;
    let r = admin
        .post("/api/v1/consumers/file-consumer/keys", &json!({}))
        .await;
    assert_error(&r, 409, "read_only");
    let r = admin.post("/api/v1/consumers/ghost/keys", &json!({})).await;
    assert_error(&r, 404, "not_found");
    let r = admin
        .post(
            "/api/v1/consumers/c/keys",
            &json!({"expires_at": "tomorrow"}),
        )
        .await;
    let body = assert_error(&r, 400, "invalid_entity");
    assert_eq!(detail_paths(&body), ["expires_at"], "{body}");
    let r = admin
        .post("/api/v1/consumers/c/keys", &json!({"ttl": 1}))
        .await;
    assert_error(&r, 400, "invalid_request");
    // Nothing of the refused requests was written.
    assert_eq!(
        admin.get("/api/v1/consumers/c").await.header("etag"),
        Some("\"1\"")
    );
    let reader = admin.token_with("read_only").await;
    let r = admin
        .send(
            Method::POST,
            "/api/v1/consumers/c/keys",
            Some(&reader),
            &[],
            "{}",
        )
        .await;
    assert_error(&r, 403, "forbidden");
    let operator = admin.token_with("operator").await;
    let r = admin
        .send(
            Method::POST,
            "/api/v1/consumers/c/keys",
            Some(&operator),
            &[],
            "{}",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn without_a_key_secret_keys_are_refused_clearly() {
    let admin = Admin::start().await;
    admin.post("/api/v1/consumers", &json!({"name": "c"})).await;
    let r = admin.post("/api/v1/consumers/c/keys", &json!({})).await;
    let body = assert_error(&r, 409, "no_key_secret");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("auth.key_secret")
    );
}

#[tokio::test]
async fn a_consumer_reads_its_own_usage_with_its_own_key_and_nothing_else() {
    let admin = with_secret().await;
    for name in ["alice", "bob"] {
        let r = admin
            .post("/api/v1/consumers", &json!({"name": name}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let key = |name: &str| {
        let admin = &admin;
        let path = format!("/api/v1/consumers/{name}/keys");
        async move {
            let r = admin.post(&path, &json!({})).await;
            assert_eq!(r.status, 201, "{}", r.text());
            r.json()["key"].as_str().unwrap().to_owned()
        }
    };
    let (alice, bob) = (key("alice").await, key("bob").await);
    let with_key = |path: &str, k: &str| {
        let (admin, path, k) = (&admin, path.to_owned(), k.to_owned());
        async move {
            admin
                .send(Method::GET, &path, None, &[("x-api-key", &k)], "")
                .await
        }
    };
    let own = with_key("/api/v1/consumers/alice/usage", &alice).await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert!(own.json()["series"].is_array(), "{}", own.text());
    // Another consumer's usage, another endpoint, a made-up key: refused.
    assert_eq!(
        with_key("/api/v1/consumers/bob/usage", &alice).await.status,
        401
    );
    assert_eq!(
        with_key("/api/v1/consumers/alice", &alice).await.status,
        401
    );
    assert_eq!(
        with_key("/api/v1/analytics/top?by=route", &alice)
            .await
            .status,
        401
    );
    // Bob's key with its last character changed (to one it is not).
    let last = if bob.ends_with('x') { 'y' } else { 'x' };
    let forged = format!("{}{last}", &bob[..bob.len() - 1]);
    assert_eq!(
        with_key("/api/v1/consumers/bob/usage", &forged)
            .await
            .status,
        401
    );
    assert_eq!(
        with_key("/api/v1/consumers/bob/usage", &bob).await.status,
        200
    );
    // A revoked key stops working.
    let id = turnpike_policy::key_auth::key_id(&alice)
        .unwrap()
        .to_owned();
    let r = admin
        .call(
            Method::DELETE,
            &format!("/api/v1/consumers/alice/keys/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        with_key("/api/v1/consumers/alice/usage", &alice)
            .await
            .status,
        401
    );
}
