//! `POST /api/v1/config/push`: a whole set of entities in one transaction with one version,
//! validated as a whole; a refused push leaves the store exactly as it was.

use serde_json::{Value, json};

use crate::support::{Admin, assert_error, detail_paths};

async fn push(admin: &Admin, body: &Value) -> turnpike_testkit::TestResponse {
    admin.post("/api/v1/config/push", body).await
}

fn actions(result: &Value) -> Vec<String> {
    result["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["action"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn one_push_is_one_transaction_and_one_version() {
    let admin = Admin::start().await;
    // The route comes before the upstream it needs: validated as a whole, order is moot.
    let body = json!({
        "routes": [{"name": "r", "paths": ["/r"], "upstream": "u"}],
        "upstreams": [{"name": "u", "targets": [{"url": "http://127.0.0.1:9001"}]}],
        "consumers": [{"name": "c"}],
    });
    let r = push(&admin, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut done = actions(&r.json());
    done.sort();
    assert_eq!(
        done,
        [
            "create consumers c",
            "create routes r",
            "create upstreams u"
        ]
    );
    assert_eq!(admin.store.version().await.unwrap(), 1);

    // Again: nothing to do, nothing written.
    let r = push(&admin, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(actions(&r.json()).is_empty());
    assert_eq!(admin.store.version().await.unwrap(), 1);

    // Sections left out are untouched; an empty one is emptied; file names are skipped.
    let body = json!({"consumers": [], "routes": [
        {"name": "file-route", "paths": ["/x"], "upstream": "u"},
        {"name": "r", "paths": ["/r2"], "upstream": "u"},
    ]});
    let r = push(&admin, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let result = r.json();
    assert_eq!(actions(&result), ["delete consumers c", "update routes r"]);
    assert_eq!(result["skipped"][0]["name"], "file-route");
    assert_eq!(admin.store.version().await.unwrap(), 2);
    assert!(admin.store.get("upstreams", "u").await.unwrap().is_some());
}

#[tokio::test]
async fn a_refused_push_changes_nothing() {
    let admin = Admin::start().await;
    let good = json!({"upstreams": [{"name": "u", "targets": [{"url": "http://127.0.0.1:9001"}]}],
        "routes": [{"name": "r", "upstream": "u"}]});
    assert_eq!(push(&admin, &good).await.status, 200);
    let before = admin.store.snapshot().await.unwrap();

    // Valid changes next to one invalid route: nothing of it is written.
    let bad = json!({
        "upstreams": [{"name": "u", "targets": [{"url": "http://127.0.0.1:9002"}]},
                      {"name": "v", "targets": [{"url": "http://127.0.0.1:9003"}]}],
        "routes": [{"name": "r", "upstream": "u"}, {"name": "broken", "paths": ["/b"], "upstream": "nope"}],
    });
    let r = push(&admin, &bad).await;
    let err = assert_error(&r, 400, "invalid_entity");
    assert_eq!(detail_paths(&err), [r#"routes["broken"].upstream"#]);
    assert_eq!(admin.store.snapshot().await.unwrap(), before);

    // Deleting an upstream a route still uses (routes not pushed): 409, nothing written.
    let r = push(&admin, &json!({"upstreams": []})).await;
    let err = assert_error(&r, 409, "conflict");
    assert_eq!(detail_paths(&err), [r#"routes["r"].upstream"#]);
    assert_eq!(admin.store.snapshot().await.unwrap(), before);

    // Malformed input: the item's path.
    let r = push(&admin, &json!({"routes": [{"paths": []}]})).await;
    let err = assert_error(&r, 400, "invalid_entity");
    assert_eq!(detail_paths(&err), ["routes[0]"]);
    let r = push(&admin, &json!({"routes": [{"name": "a"}, {"name": "a"}]})).await;
    let err = assert_error(&r, 400, "invalid_entity");
    assert_eq!(detail_paths(&err), ["routes[1].name"]);
    let r = push(&admin, &json!({"certificates": []})).await;
    assert_error(&r, 400, "invalid_entity");
    assert_eq!(admin.store.snapshot().await.unwrap(), before);
}

#[tokio::test]
async fn dry_run_reports_without_writing() {
    let admin = Admin::start().await;
    let body = json!({"consumers": [{"name": "c"}]});
    let r = admin.post("/api/v1/config/push?dry_run=true", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(actions(&r.json()), ["create consumers c"]);
    assert_eq!(r.json()["dry_run"], true);
    assert_eq!(admin.store.version().await.unwrap(), 0);
}

#[tokio::test]
async fn read_only_tokens_cannot_push() {
    let admin = Admin::start().await;
    let token = admin.token_with("read_only").await;
    let r = admin
        .send(
            http::Method::POST,
            "/api/v1/config/push",
            Some(&token),
            &[],
            "{}",
        )
        .await;
    assert_error(&r, 403, "forbidden");
}
