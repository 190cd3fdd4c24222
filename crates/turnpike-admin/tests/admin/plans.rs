//! Plans as entities: CRUD like the other kinds, consumers that name them, and the config
//! file's own checks (unknown plan, `by` in a plan, deleting a plan in use).

use http::Method;
use serde_json::json;

use crate::support::{Admin, assert_error, detail_paths};

fn gold() -> serde_json::Value {
    json!({"name": "gold", "rate_limits": [{"limit": 100, "per": "minute", "burst": 20}]})
}

#[tokio::test]
async fn plan_lifecycle_and_consumers_that_use_it() {
    let admin = Admin::start().await;
    let r = admin.post("/api/v1/plans", &gold()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some("/api/v1/plans/gold"));
    assert_eq!(r.json(), gold());
    let list = admin.get("/api/v1/plans").await.json();
    assert_eq!(list["items"], json!([gold()]));

    let r = admin
        .post(
            "/api/v1/consumers",
            &json!({"name": "alice", "plan": "gold"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = admin
        .post(
            "/api/v1/consumers",
            &json!({"name": "bob", "plan": "silver"}),
        )
        .await;
    let body = assert_error(&r, 400, "invalid_entity");
    assert_eq!(detail_paths(&body), ["plan"], "{body}");

    // In use: the consumer is named in the conflict.
    let r = admin.call(Method::DELETE, "/api/v1/plans/gold", None).await;
    let body = assert_error(&r, 409, "conflict");
    assert_eq!(
        detail_paths(&body),
        [r#"consumers["alice"].plan"#],
        "{body}"
    );

    let mut changed = gold();
    changed["quota"] = json!({"limit": 1000, "per": "day"});
    let r = admin
        .call(Method::PUT, "/api/v1/plans/gold", Some(&changed))
        .await;
    // A quota needs some route with `auth`, and the base file has none.
    let body = assert_error(&r, 400, "invalid_entity");
    assert_eq!(detail_paths(&body), ["quota"], "{body}");

    let r = admin
        .call(Method::DELETE, "/api/v1/consumers/alice", None)
        .await;
    assert_eq!(r.status, 204);
    let r = admin.call(Method::DELETE, "/api/v1/plans/gold", None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(admin.get("/api/v1/plans/gold").await.status, 404);
}

#[tokio::test]
async fn plan_validation_is_the_files() {
    let admin = Admin::start().await;
    let bad = json!({"name": "p", "rate_limits": [{"limit": 5, "per": "fortnight", "by": ["ip"]}]});
    let r = admin.post("/api/v1/plans", &bad).await;
    let body = assert_error(&r, 400, "invalid_entity");
    assert!(
        detail_paths(&body)
            .iter()
            .any(|p| p.starts_with("rate_limits[0].per")),
        "{body}"
    );
    let by = json!({"name": "p", "rate_limits": [{"limit": 5, "per": "second", "by": ["ip"]}]});
    let body = assert_error(
        &admin.post("/api/v1/plans", &by).await,
        400,
        "invalid_entity",
    );
    assert_eq!(detail_paths(&body), ["rate_limits[0].by"], "{body}");
    let unknown = json!({"name": "p", "colour": "blue"});
    let body = assert_error(
        &admin.post("/api/v1/plans", &unknown).await,
        400,
        "invalid_entity",
    );
    assert_eq!(detail_paths(&body), ["colour"], "{body}");
    // Read-only roles cannot write plans.
    let reader = admin.token_with("read_only").await;
    let r = admin
        .send(
            Method::POST,
            "/api/v1/plans",
            Some(&reader),
            &[],
            &gold().to_string(),
        )
        .await;
    assert_error(&r, 403, "forbidden");
}
