//! Versions of a service: v1 by path and v2 by header imported from the same document next
//! to the unversioned one, v1 deprecated and then retired in one transaction each with only
//! its routes changed (checked in the merged configuration), bad selectors and lifecycles
//! refused at their field, and a deleted version taking its routes and upstream along. Run
//! on SQLite, and on the real PostgreSQL when it is reachable.

use http::Method;
use serde_json::{Value, json};
use turnpike_admin::{AdminOptions, AdminState, token};
use turnpike_config::model::LifecycleState;
use turnpike_store::Store;

use crate::cluster::{drop_schema, postgres_schema};
use crate::support::{Admin, assert_error, base_config, detail_paths};

const INVENTORY: &str = include_str!("../../../turnpike/tests/fixtures/inventory-3.1.json");
const DEPRECATE: &str = r#"{"lifecycle": {"state": "deprecated", "deprecated_at": "2026-06-01T00:00:00Z",
    "sunset": "2027-01-01T00:00:00Z", "link": "https://docs.example.com/inventory/v2"}}"#;

fn inventory() -> Value {
    serde_json::from_str(INVENTORY).unwrap()
}

fn version_path(version: &str, query: &str) -> String {
    format!("/api/v1/services/inventory/versions/{version}/openapi?{query}")
}

async fn patch(admin: &Admin, version: &str, body: &Value) -> turnpike_testkit::TestResponse {
    let path = format!("/api/v1/services/inventory/versions/{version}");
    admin.call(Method::PATCH, &path, Some(body)).await
}

/// The lifecycle state of every route of the merged configuration, by route name.
async fn lifecycles(admin: &Admin) -> Vec<(String, Option<LifecycleState>)> {
    let options = AdminOptions {
        base: base_config(),
        ..AdminOptions::default()
    };
    let state = AdminState::new(admin.store.clone(), options).await.unwrap();
    let effective = turnpike_admin::sync::effective_config(&state)
        .await
        .unwrap();
    let mut out: Vec<_> = effective
        .config
        .routes
        .iter()
        .map(|r| (r.name.clone(), r.lifecycle.as_ref().map(|l| l.state)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn versions_are_published_deprecated_retired_and_deleted_on_sqlite() {
    versions_lifecycle(&Admin::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_published_deprecated_retired_and_deleted_on_postgres() {
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
    versions_lifecycle(&admin).await;
    drop(admin);
    drop_schema(&base, &schema).await;
}

async fn versions_lifecycle(admin: &Admin) {
    publish_three(admin).await;
    let before = admin.store.snapshot().await.unwrap().0;
    let r = patch(admin, "v1", &serde_json::from_str(DEPRECATE).unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(report["version"], "v1");
    let changes = report["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{report}");
    assert!(
        changes
            .iter()
            .all(|c| c["action"] == "update" && c["fields"] == json!(["lifecycle"])),
        "{report}"
    );
    // One transaction: one config version for the three routes and the service.
    assert_eq!(admin.store.snapshot().await.unwrap().0, before + 1);
    let deprecated = Some(LifecycleState::Deprecated);
    for (name, state) in lifecycles(admin).await {
        let want = if name.starts_with("inventory-v1-") {
            deprecated
        } else {
            None
        };
        assert_eq!(state, want, "{name}");
    }
    let route = admin
        .get("/api/v1/routes/inventory-v1-getItem")
        .await
        .json();
    assert_eq!(route["lifecycle"]["sunset"], "2027-01-01T00:00:00Z");

    // Retiring keeps the dates and the link (410s carry Sunset and Link).
    let r = patch(admin, "v1", &json!({"lifecycle": {"state": "retired"}})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let service = admin.get("/api/v1/services/inventory").await.json();
    let v1 = &service["versions"][0];
    assert_eq!(v1["lifecycle"]["state"], "retired");
    assert_eq!(
        v1["lifecycle"]["link"],
        "https://docs.example.com/inventory/v2"
    );
    assert_eq!(
        service["versions"][1]["lifecycle"],
        json!({"state": "published"})
    );
    let retired = lifecycles(admin).await;
    let v1_states: Vec<_> = retired
        .iter()
        .filter(|(n, _)| n.starts_with("inventory-v1-"))
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(v1_states, [Some(LifecycleState::Retired); 3]);

    refusals(admin).await;
    delete_versions(admin).await;
}

/// The unversioned document, v1 under `/v1` and v2 by `X-API-Version: 2`.
async fn publish_three(admin: &Admin) {
    let doc = inventory();
    let r = admin
        .post(
            "/api/v1/services/inventory/openapi?upstream=http://127.0.0.1:9000",
            &doc,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin
        .post(
            &version_path("v1", "upstream=http://127.0.0.1:9001&path=/v1/"),
            &doc,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let q = "upstream=http://127.0.0.1:9002&header_name=X-API-Version&header_value=2&validate=true";
    let r = admin.post(&version_path("v2", q), &doc).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], "v2");

    let v1 = admin
        .get("/api/v1/routes/inventory-v1-getItem")
        .await
        .json();
    assert_eq!(v1["paths"], json!(["/v1/items/{sku}"]));
    assert_eq!(v1["rewrite"], "/items/{sku}");
    assert_eq!(v1["upstream"], "inventory-v1");
    let v2 = admin
        .get("/api/v1/routes/inventory-v2-getItem")
        .await
        .json();
    assert_eq!(v2["paths"], json!(["/items/{sku}"]));
    assert_eq!(v2["headers"], json!({"x-api-version": "2"}));
    assert_eq!(v2["upstream"], "inventory-v2");
    let up = admin.get("/api/v1/upstreams/inventory-v2").await.json();
    assert_eq!(up["targets"], json!([{"url": "http://127.0.0.1:9002"}]));

    // Re-importing the unversioned document keeps the versions.
    let again = admin
        .post("/api/v1/services/inventory/openapi", &doc)
        .await
        .json();
    assert!(again["changes"].as_array().unwrap().is_empty(), "{again}");
    let service = admin.get("/api/v1/services/inventory").await.json();
    assert_eq!(service["upstream"], "inventory");
    let versions = service["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{service}");
    assert_eq!(versions[0]["name"], "v1");
    assert_eq!(versions[0]["selector"], json!({"path": "/v1"}));
    assert_eq!(versions[0]["routes"].as_array().unwrap().len(), 3);
    assert_eq!(
        versions[1]["selector"],
        json!({"header": {"name": "x-api-version", "value": "2"}})
    );
    assert_eq!(versions[1]["validate"], true);
    assert_eq!(versions[1]["document_version"], "1.0.0");
    let listed = admin.get("/api/v1/services").await.json();
    assert_eq!(listed["items"][0]["versions"], service["versions"]);
    let doc_back = admin
        .get("/api/v1/services/inventory/versions/v2/openapi")
        .await;
    assert_eq!(doc_back.json(), doc);
}

async fn refusals(admin: &Admin) {
    let before = admin.store.snapshot().await.unwrap();
    let bad = json!({"lifecycle": {"state": "deprecated", "deprecated_at": "2027-01-01T00:00:00Z",
        "sunset": "2026-01-01T00:00:00Z", "link": "not a url"}});
    let body = assert_error(&patch(admin, "v2", &bad).await, 400, "invalid_entity");
    assert_eq!(detail_paths(&body), ["lifecycle.sunset", "lifecycle.link"]);
    let body = assert_error(
        &patch(
            admin,
            "v2",
            &json!({"lifecycle": {"state": "gone"}, "colour": 1}),
        )
        .await,
        400,
        "invalid_entity",
    );
    assert_eq!(detail_paths(&body), ["colour", "lifecycle.state"]);
    let body = assert_error(
        &patch(admin, "v2", &json!({"selector": {"path": "/v1"}})).await,
        409,
        "conflict",
    );
    assert_eq!(detail_paths(&body), ["selector"]);
    assert_error(&patch(admin, "v9", &json!({})).await, 404, "not_found");
    assert_error(
        &patch(admin, "bad%20name", &json!({})).await,
        400,
        "invalid_request",
    );

    let doc = inventory();
    let no_selector = admin
        .post(&version_path("v3", "upstream=http://127.0.0.1:9003"), &doc)
        .await;
    let body = assert_error(&no_selector, 400, "invalid_query");
    assert_eq!(detail_paths(&body), ["path"]);
    let both = version_path(
        "v3",
        "upstream=http://x:1&path=/v3&header_name=a&header_value=b",
    );
    assert_error(&admin.post(&both, &doc).await, 400, "invalid_query");
    let half = version_path("v3", "upstream=http://x:1&header_name=a");
    let body = assert_error(&admin.post(&half, &doc).await, 400, "invalid_query");
    assert_eq!(detail_paths(&body), ["header_value"]);
    let taken = version_path("v3", "upstream=http://x:1&path=/v1");
    assert_error(&admin.post(&taken, &doc).await, 409, "conflict");
    // The file's upstream name cannot become a version's.
    let file = admin
        .post(
            "/api/v1/services/file/versions/backend/openapi?upstream=http://x:1&path=/b",
            &doc,
        )
        .await;
    assert_error(&file, 409, "read_only");
    assert_eq!(
        admin.store.snapshot().await.unwrap(),
        before,
        "a refusal wrote"
    );
}

async fn delete_versions(admin: &Admin) {
    let del = async |v: &str| {
        let path = format!("/api/v1/services/inventory/versions/{v}");
        admin.call(Method::DELETE, &path, None).await
    };
    assert_eq!(del("v1").await.status, 204);
    assert_eq!(
        admin
            .get("/api/v1/routes/inventory-v1-getItem")
            .await
            .status,
        404
    );
    assert_eq!(
        admin.get("/api/v1/upstreams/inventory-v1").await.status,
        404
    );
    assert_error(&del("v1").await, 404, "not_found");
    let service = admin.get("/api/v1/services/inventory").await.json();
    assert_eq!(service["versions"].as_array().unwrap().len(), 1);
    // Deleting the service takes the remaining version with it.
    let r = admin
        .call(Method::DELETE, "/api/v1/services/inventory", None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        admin.get("/api/v1/upstreams/inventory-v2").await.status,
        404
    );
    assert_eq!(
        admin
            .get("/api/v1/routes/inventory-v2-listItems")
            .await
            .status,
        404
    );
    assert_error(
        &admin.get("/api/v1/services/inventory").await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_service_of_versions_only_goes_with_its_last_version() {
    let admin = Admin::start().await;
    let q = "upstream=http://127.0.0.1:9001&path=/v1&draft=true";
    let r = admin.post(&version_path("v1", q), &inventory()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let route = admin
        .get("/api/v1/routes/inventory-v1-listItems")
        .await
        .json();
    assert_eq!(route["lifecycle"], json!({"state": "draft"}));
    let service = admin.get("/api/v1/services/inventory").await.json();
    assert!(service["upstream"].is_null(), "{service}");
    assert_error(
        &admin.get("/api/v1/services/inventory/openapi").await,
        404,
        "not_found",
    );
    // Publishing the draft by re-importing with draft=false.
    let r = admin
        .post(&version_path("v1", "draft=false"), &inventory())
        .await;
    assert_eq!(r.json()["changes"].as_array().unwrap().len(), 3);
    let route = admin
        .get("/api/v1/routes/inventory-v1-listItems")
        .await
        .json();
    assert_eq!(route["lifecycle"], json!({"state": "published"}));
    let r = admin
        .call(
            Method::DELETE,
            "/api/v1/services/inventory/versions/v1",
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_error(
        &admin.get("/api/v1/services/inventory").await,
        404,
        "not_found",
    );
}
