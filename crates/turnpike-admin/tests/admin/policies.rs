//! `/api/v1/policies`: the global policies as one store document. A `PUT` becomes the
//! merged configuration's `policies:`, validated like the file's with paths relative to the
//! body; `If-Match` guards it (revision 0: none stored); every write is audited; the file's
//! own `policies:` make it read-only; and `config/push` carries it. On SQLite and on the
//! real PostgreSQL.

use std::path::Path;

use http::Method;
use serde_json::{Value, json};
use turnpike_admin::sync::effective_config;
use turnpike_admin::{AdminOptions, AdminState, token};
use turnpike_config::Config;
use turnpike_store::Store;

use crate::cluster::{drop_schema, postgres_schema};
use crate::support::{Admin, BASE_YAML, assert_error, base_config, detail_paths};

const PATH: &str = "/api/v1/policies";

async fn put(
    admin: &Admin,
    body: &Value,
    if_match: Option<&str>,
) -> turnpike_testkit::TestResponse {
    let headers: Vec<(&str, &str)> = if_match.map(|t| ("if-match", t)).into_iter().collect();
    let token = admin.token.clone();
    admin
        .send(Method::PUT, PATH, Some(&token), &headers, &body.to_string())
        .await
}

async fn push(admin: &Admin, body: Value) -> turnpike_testkit::TestResponse {
    admin.post("/api/v1/config/push", &body).await
}

/// The configuration a gateway over this store would serve, with `base` as its file.
async fn merged(store: &Store, base: Config) -> Config {
    let options = AdminOptions {
        base,
        ..AdminOptions::default()
    };
    let state = AdminState::new(store.clone(), options).await.unwrap();
    effective_config(&state).await.unwrap().config
}

/// The global `ip_rules.deny` networks of `config`.
fn denied(config: &Config) -> Vec<String> {
    let rules = config.policies.ip_rules.as_ref().unwrap();
    rules.deny.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn global_policies_are_stored_merged_and_audited_on_sqlite() {
    global_policies(&Admin::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_policies_are_stored_merged_and_audited_on_postgres() {
    let Some((base, schema, url)) = postgres_schema().await else {
        return;
    };
    let bootstrap = token::generate().unwrap().token;
    let options = AdminOptions {
        base: base_config(),
        bootstrap_token: Some(bootstrap.clone()),
        insecure_no_auth: false,
    };
    let store = Store::open(&url).await.unwrap();
    let admin = Admin::start_over(store, tempfile::tempdir().unwrap(), options, bootstrap).await;
    global_policies(&admin).await;
    drop(admin);
    drop_schema(&base, &schema).await;
}

async fn global_policies(admin: &Admin) {
    // Nothing stored, nothing in the file: empty, revision 0.
    let r = admin.get(PATH).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({}));
    assert_eq!(r.header("etag"), Some("\"0\""));
    assert_eq!(r.header("turnpike-policies-source"), Some("none"));

    // Created only if still absent.
    let doc = json!({"ip_rules": {"deny": ["10.0.0.0/8"]},
        "cors": {"origins": ["https://app.example.com"]}});
    let r = put(admin, &doc, Some("\"0\"")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("etag"), Some("\"1\""));
    let r = admin.get(PATH).await;
    assert_eq!(r.json(), doc);
    assert_eq!(r.header("turnpike-policies-source"), Some("store"));
    let config = merged(&admin.store, base_config()).await;
    assert_eq!(denied(&config), ["10.0.0.0/8"]);
    let origins = &config.policies.cors.as_ref().unwrap().origins;
    assert_eq!(origins, &["https://app.example.com"]);

    // A stale or wrong revision: 412, nothing written.
    assert_error(
        &put(admin, &json!({}), Some("\"0\"")).await,
        412,
        "revision_mismatch",
    );
    assert_error(
        &put(admin, &json!({}), Some("\"7\"")).await,
        412,
        "revision_mismatch",
    );
    let doc2 = json!({"ip_rules": {"allow": ["127.0.0.0/8"]}});
    let r = put(admin, &doc2, Some("\"1\"")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("etag"), Some("\"2\""));

    // Validation is the file's, at the body's own paths; nothing of it is stored.
    refusals(admin).await;
    assert_eq!(admin.get(PATH).await.json(), doc2);

    // Every write is in the audit log with its documents.
    let audit = admin.get("/api/v1/audit?kind=policies").await.json();
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{audit}");
    assert_eq!(items[0]["action"], "update");
    assert_eq!(items[0]["name"], "global");
    assert_eq!(items[0]["before"], doc);
    assert_eq!(items[0]["after"], doc2);
    assert_eq!(items[1]["action"], "create");

    // Read-only tokens read but do not write.
    let reader = admin.token_with("read_only").await;
    let r = admin.send(Method::GET, PATH, Some(&reader), &[], "").await;
    assert_eq!(r.status, 200);
    let r = admin
        .send(Method::PUT, PATH, Some(&reader), &[], "{}")
        .await;
    assert_error(&r, 403, "forbidden");

    // Delete: back to none, and audited.
    let del = |tag: &'static str| {
        let token = admin.token.clone();
        async move {
            admin
                .send(Method::DELETE, PATH, Some(&token), &[("if-match", tag)], "")
                .await
        }
    };
    assert_error(&del("\"1\"").await, 412, "revision_mismatch");
    assert_eq!(del("\"2\"").await.status, 204);
    assert_eq!(
        admin.get(PATH).await.header("turnpike-policies-source"),
        Some("none")
    );
    assert!(
        merged(&admin.store, base_config())
            .await
            .policies
            .is_empty()
    );
    assert_error(&del("*").await, 404, "not_found");
    let audit = admin.get("/api/v1/audit?kind=policies").await.json();
    assert_eq!(audit["items"][0]["action"], "delete", "{audit}");
}

async fn refusals(admin: &Admin) {
    let paths = |r: turnpike_testkit::TestResponse| {
        let body = assert_error(&r, 400, "invalid_entity");
        let mut paths = detail_paths(&body);
        paths.sort();
        paths
    };
    let bad = json!({"ip_rules": {"deny": ["not-a-network"]}, "colour": 1});
    assert_eq!(
        paths(put(admin, &bad, None).await),
        ["colour", "ip_rules.deny[0]"]
    );
    let bad = json!({"auth": {"methods": ["key_auth"], "anonymous": "nobody"}});
    assert_eq!(paths(put(admin, &bad, None).await), ["auth.anonymous"]);
    let bad = json!({"cors": {"origins": ["https://a.example"], "max_age": "soon"}});
    assert_eq!(paths(put(admin, &bad, None).await), ["cors.max_age"]);
    let r = put(admin, &json!(["ip_rules"]), None).await;
    assert_error(&r, 400, "invalid_entity");
}

#[tokio::test]
async fn a_consumer_the_global_policies_name_cannot_go() {
    let admin = Admin::start().await;
    let r = admin
        .post("/api/v1/consumers", &json!({"name": "guest"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let doc = json!({"auth": {"methods": ["key_auth"], "anonymous": "guest"}});
    assert_eq!(put(&admin, &doc, None).await.status, 201);
    let r = admin
        .call(Method::DELETE, "/api/v1/consumers/guest", None)
        .await;
    let body = assert_error(&r, 409, "conflict");
    assert_eq!(detail_paths(&body), ["policies.auth.anonymous"], "{body}");
}

#[tokio::test]
async fn the_files_policies_are_read_only_and_win() {
    let yaml = format!("{BASE_YAML}policies:\n  ip_rules: {{deny: [192.0.2.0/24]}}\n");
    let base = turnpike_config::load_str(&yaml, Path::new("base.yaml"), &|_| None).unwrap();
    let bootstrap = token::generate().unwrap().token;
    let options = AdminOptions {
        base: base.clone(),
        bootstrap_token: Some(bootstrap.clone()),
        insecure_no_auth: false,
    };
    let admin = Admin::start_in(tempfile::tempdir().unwrap(), options, bootstrap).await;
    let r = admin.get(PATH).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("turnpike-policies-source"), Some("file"));
    assert_eq!(r.header("etag"), None);
    assert_eq!(r.json(), json!({"ip_rules": {"deny": ["192.0.2.0/24"]}}));
    let r = put(&admin, &json!({"cors": {"origins": ["*"]}}), None).await;
    assert_error(&r, 409, "read_only");

    // One stored before the file got its section is not applied, and can be deleted.
    let stored = json!({"ip_rules": {"deny": ["10.0.0.0/8"]}});
    admin
        .store
        .create("policies", "global", stored, "test")
        .await
        .unwrap();
    let config = merged(&admin.store, base).await;
    assert_eq!(denied(&config), ["192.0.2.0/24"]);
    let r = admin.call(Method::DELETE, PATH, None).await;
    assert_eq!(r.status, 204, "{}", r.text());

    // A push of policies is skipped, like a file-defined entity.
    let body = json!({"policies": {"cors": {"origins": ["*"]}}});
    let r = admin.post("/api/v1/config/push", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let result = r.json();
    assert_eq!(result["changes"], json!([]), "{result}");
    assert_eq!(result["skipped"][0]["kind"], "policies", "{result}");
}

#[tokio::test]
async fn config_push_replaces_and_deletes_the_global_policies() {
    let admin = Admin::start().await;
    let doc = json!({"rate_limit": {"limits": [{"limit": 5, "per": "second", "by": ["ip"]}]}});
    let r = push(&admin, json!({"policies": doc})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["changes"],
        json!([{"action": "create", "kind": "policies", "name": "global"}])
    );
    assert_eq!(admin.get(PATH).await.json(), doc);
    // The same again: no change. Left out: not touched.
    let r = push(&admin, json!({"policies": doc})).await;
    assert_eq!(r.json()["changes"], json!([]));
    let r = push(&admin, json!({"consumers": []})).await;
    assert_eq!(r.json()["changes"], json!([]));

    // Refused as a whole, with the policies' paths; nothing written.
    let version = admin.store.version().await.unwrap();
    let bad = json!({"policies": {"ip_rules": {"allow": ["x"]}}});
    let body = assert_error(&push(&admin, bad).await, 400, "invalid_entity");
    assert_eq!(
        detail_paths(&body),
        ["policies.ip_rules.allow[0]"],
        "{body}"
    );
    let body = assert_error(
        &push(&admin, json!({"policies": 5})).await,
        400,
        "invalid_entity",
    );
    assert_eq!(detail_paths(&body), ["policies"], "{body}");
    assert_eq!(admin.store.version().await.unwrap(), version);

    // `null` deletes them.
    let r = push(&admin, json!({"policies": null})).await;
    assert_eq!(
        r.json()["changes"],
        json!([{"action": "delete", "kind": "policies", "name": "global"}])
    );
    assert_eq!(
        admin.get(PATH).await.header("turnpike-policies-source"),
        Some("none")
    );
}
