//! Publishing from OpenAPI: `POST /api/v1/services/{name}/openapi` creates the upstream and
//! one route per operation, re-imports update in place, dry runs change nothing, and bad
//! documents are refused with their place in the document.

use http::Method;
use serde_json::{Value, json};

use crate::support::{Admin, assert_error, detail_paths};

const INVENTORY: &str = include_str!("../../../turnpike/tests/fixtures/inventory-3.1.json");

fn inventory() -> Value {
    serde_json::from_str(INVENTORY).unwrap()
}

async fn import(admin: &Admin, query: &str, doc: &Value) -> turnpike_testkit::TestResponse {
    admin
        .post(&format!("/api/v1/services/inventory/openapi?{query}"), doc)
        .await
}

fn actions(report: &Value) -> Vec<String> {
    let mut out: Vec<String> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {} {}", c["action"], c["kind"], c["name"]).replace('"', ""))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn import_creates_the_upstream_routes_and_keeps_the_document() {
    let admin = Admin::start().await;
    let r = import(
        &admin,
        "upstream=http://127.0.0.1:9001&validate=true",
        &inventory(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        actions(&r.json()),
        [
            "create route addItem",
            "create route getItem",
            "create route listItems",
            "create upstream inventory"
        ]
    );
    let route = admin.get("/api/v1/routes/getItem").await.json();
    assert_eq!(route["paths"], json!(["/items/{sku}"]));
    assert_eq!(route["methods"], json!(["GET"]));
    assert_eq!(route["path_type"], "exact");
    assert_eq!(route["validate"]["parameters"][0]["in"], "path");
    let upstream = admin.get("/api/v1/upstreams/inventory").await.json();
    assert_eq!(
        upstream["targets"],
        json!([{"url": "http://127.0.0.1:9001"}])
    );
    let doc = admin.get("/api/v1/services/inventory/openapi").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.json(), inventory());
    // The same document again changes nothing.
    let again = import(&admin, "", &inventory()).await.json();
    assert!(again["changes"].as_array().unwrap().is_empty(), "{again}");
}

#[tokio::test]
async fn reimport_updates_in_place_and_leaves_hand_made_routes_alone() {
    let admin = Admin::start().await;
    let hand = json!({"name": "hand", "paths": ["/items/special"], "upstream": "file-backend"});
    assert_eq!(admin.post("/api/v1/routes", &hand).await.status, 201);
    assert_eq!(
        import(
            &admin,
            "upstream=http://127.0.0.1:9001&validate=true",
            &inventory()
        )
        .await
        .status,
        200
    );
    // An operator's addition to a generated route survives a re-import.
    let mut item = admin.get("/api/v1/routes/getItem").await.json();
    item["priority"] = json!("high");
    let put = admin
        .call(Method::PUT, "/api/v1/routes/getItem", Some(&item))
        .await;
    assert_eq!(put.status, 200, "{}", put.text());

    let mut doc = inventory();
    doc["paths"].as_object_mut().unwrap().remove("/items");
    doc["paths"]["/items/{sku}"]["delete"] = json!({"operationId": "dropItem", "responses": {}});
    doc["paths"]["/items/{sku}"]["get"]["parameters"] = json!([]);
    let before = admin.store.snapshot().await.unwrap();
    let dry = import(&admin, "validate=true&dry_run=true", &doc).await;
    assert_eq!(dry.status, 200, "{}", dry.text());
    let plan = dry.json();
    assert_eq!(
        actions(&plan),
        [
            "create route dropItem",
            "delete route addItem",
            "delete route listItems",
            "update route getItem"
        ]
    );
    assert_eq!(plan["dry_run"], true);
    assert_eq!(
        admin.store.snapshot().await.unwrap(),
        before,
        "a dry run wrote"
    );

    let r = import(&admin, "validate=true", &doc).await;
    assert_eq!(actions(&r.json()), actions(&plan));
    assert_eq!(admin.get("/api/v1/routes/addItem").await.status, 404);
    let item = admin.get("/api/v1/routes/getItem").await.json();
    assert_eq!(item["priority"], "high");
    assert_eq!(admin.get("/api/v1/routes/hand").await.json(), hand);
}

#[tokio::test]
async fn bad_documents_are_refused_with_their_place() {
    let admin = Admin::start().await;
    let q = "upstream=http://127.0.0.1:9001";
    let r = import(&admin, q, &json!({"swagger": "2.0", "paths": {}})).await;
    let body = assert_error(&r, 400, "invalid_document");
    assert_eq!(detail_paths(&body), ["swagger"]);

    let mut dup = inventory();
    dup["paths"]["/items/{sku}"]["get"]["operationId"] = json!("listItems");
    let body = assert_error(&import(&admin, q, &dup).await, 400, "invalid_document");
    assert_eq!(
        detail_paths(&body),
        [r#"paths["/items/{sku}"].get.operationId"#]
    );

    let mut bad_ref = inventory();
    bad_ref["paths"]["/items"]["post"]["requestBody"]["content"]["application/json"]["schema"] =
        json!({"$ref": "#/components/schemas/Nope"});
    let body = assert_error(
        &import(&admin, &format!("{q}&validate=true"), &bad_ref).await,
        400,
        "invalid_document",
    );
    assert!(detail_paths(&body)[0].ends_with(".schema.$ref"), "{body}");

    let no_upstream = import(&admin, "", &inventory()).await;
    assert_error(&no_upstream, 400, "invalid_query");
    let bad_url = import(&admin, "upstream=ftp://x", &inventory()).await;
    assert_error(&bad_url, 400, "invalid_document");

    // A name or a path a hand-made route already has.
    let hand = json!({"name": "getItem", "paths": ["/elsewhere"], "upstream": "file-backend"});
    assert_eq!(admin.post("/api/v1/routes", &hand).await.status, 201);
    let body = assert_error(&import(&admin, q, &inventory()).await, 409, "conflict");
    assert_eq!(detail_paths(&body), [r#"paths["/items/{sku}"].get"#]);
    admin
        .call(Method::DELETE, "/api/v1/routes/getItem", None)
        .await;
    let same = json!({"name": "mine", "paths": ["/items"], "path_type": "exact", "methods": ["GET"], "upstream": "file-backend"});
    assert_eq!(admin.post("/api/v1/routes", &same).await.status, 201);
    let body = assert_error(
        &import(&admin, q, &inventory()).await,
        400,
        "invalid_document",
    );
    assert!(
        detail_paths(&body).contains(&r#"paths["/items"].get"#.to_owned()),
        "{body}"
    );
    // Nothing was written by the refused imports.
    assert_eq!(admin.get("/api/v1/upstreams/inventory").await.status, 404);
    assert_eq!(
        admin.get("/api/v1/services/inventory/openapi").await.status,
        404
    );
}

#[tokio::test]
async fn deleting_a_service_removes_what_it_made() {
    let admin = Admin::start().await;
    let q = "upstream=http://127.0.0.1:9001";
    assert_eq!(import(&admin, q, &inventory()).await.status, 200);
    // A hand-made route on the service's upstream keeps the upstream alive.
    let hand = json!({"name": "hand", "paths": ["/hand"], "upstream": "inventory"});
    assert_eq!(admin.post("/api/v1/routes", &hand).await.status, 201);
    let r = admin
        .call(Method::DELETE, "/api/v1/services/inventory", None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(admin.get("/api/v1/routes/getItem").await.status, 404);
    assert_eq!(admin.get("/api/v1/routes/hand").await.status, 200);
    assert_eq!(admin.get("/api/v1/upstreams/inventory").await.status, 200);
    assert_eq!(
        admin.get("/api/v1/services/inventory/openapi").await.status,
        404
    );
    let again = admin
        .call(Method::DELETE, "/api/v1/services/inventory", None)
        .await;
    assert_error(&again, 404, "not_found");
}

#[tokio::test]
async fn yaml_documents_are_accepted_and_their_errors_have_lines() {
    let admin = Admin::start().await;
    let yaml = include_str!("../../../turnpike/tests/fixtures/petstore-3.0.yaml");
    let path = "/api/v1/services/petstore/openapi?upstream=http://127.0.0.1:9001";
    let send = async |body: &str, media: &str| {
        let headers = [("content-type", media)];
        admin
            .send(Method::POST, path, Some(&admin.token), &headers, body)
            .await
    };
    let r = send(yaml, "application/yaml").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        admin.get("/api/v1/routes/listPets").await.json()["paths"],
        json!(["/v1/pets"])
    );
    let body = assert_error(
        &send(
            "openapi: 3.0.0\npaths:\n  /a: [unclosed\n",
            "application/yaml",
        )
        .await,
        400,
        "invalid_yaml",
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("line "),
        "{body}"
    );
    assert_error(
        &send("<xml/>", "application/xml").await,
        415,
        "unsupported_media_type",
    );
}

#[tokio::test]
async fn services_list_in_pages_without_their_documents() {
    let admin = Admin::start().await;
    let empty = admin.get("/api/v1/services").await;
    assert_eq!(empty.status, 200, "{}", empty.text());
    assert_eq!(empty.json(), json!({"items": [], "next": null}));
    // Without operationIds, route names come from the service: three imports cannot clash.
    let mut doc = inventory();
    for item in doc["paths"].as_object_mut().unwrap().values_mut() {
        for op in item.as_object_mut().unwrap().values_mut() {
            op.as_object_mut().unwrap().remove("operationId");
        }
    }
    for name in ["inventory", "stock", "warehouse"] {
        let r = admin
            .post(
                &format!(
                    "/api/v1/services/{name}/openapi?upstream=http://127.0.0.1:9001&prefix=/{name}"
                ),
                &doc,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let page = admin.get("/api/v1/services?limit=2").await.json();
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["inventory", "stock"]);
    assert_eq!(page["next"], "stock");
    let first = &page["items"][0];
    assert_eq!(first["url"], "http://127.0.0.1:9001");
    assert_eq!(first["prefix"], "/inventory");
    assert_eq!(first["upstream"], "inventory");
    assert_eq!(first["title"], "Inventory");
    assert_eq!(first["version"], "1.0.0");
    assert_eq!(first["routes"].as_array().unwrap().len(), 3);
    assert!(first.get("document").is_none(), "{first}");
    let rest = admin.get("/api/v1/services?after=stock").await.json();
    assert_eq!(rest["items"][0]["name"], "warehouse");
    assert!(rest["next"].is_null());
    let only = admin.get("/api/v1/services?prefix=wa").await.json();
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    assert_error(
        &admin.get("/api/v1/services?limit=0").await,
        400,
        "invalid_query",
    );
    let anonymous = admin
        .send(Method::GET, "/api/v1/services", None, &[], "")
        .await;
    assert_error(&anonymous, 401, "unauthorized");
}
