//! Admin token management: created once with the secret shown, listed without secrets,
//! revoked (and then refused), and the last admin token kept.

use http::Method;
use serde_json::json;

use crate::support::{Admin, assert_error, detail_paths};

#[tokio::test]
async fn create_list_revoke() {
    let admin = Admin::start().await;
    let r = admin
        .post("/api/v1/tokens", &json!({"name": "ci", "role": "operator"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let created = r.json();
    let secret = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&format!("tpa_{id}_")));
    assert_eq!(created["role"], "operator");

    let list = admin.get("/api/v1/tokens").await;
    assert_eq!(list.status, 200);
    assert!(
        !list.text().contains(&secret),
        "the token is shown only once"
    );
    assert!(!list.text().contains("hash"));
    let items = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);

    let r = admin
        .send(Method::GET, "/api/v1/routes", Some(&secret), &[], "")
        .await;
    assert_eq!(r.status, 200);
    let r = admin
        .call(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = admin
        .send(Method::GET, "/api/v1/routes", Some(&secret), &[], "")
        .await;
    assert_error(&r, 401, "unauthorized");
    let revoked = admin.get("/api/v1/tokens").await.json();
    let row = revoked["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .cloned();
    assert_eq!(row.unwrap()["revoked"], true);

    let audit = admin.get("/api/v1/audit?kind=admin_token").await.json();
    let actions: Vec<_> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    assert!(actions.contains(&json!("revoke")), "{audit}");
    assert!(!audit.to_string().contains(&secret));
}

#[tokio::test]
async fn bad_requests_and_the_last_admin() {
    let admin = Admin::start().await;
    let r = admin
        .post("/api/v1/tokens", &json!({"name": "x", "role": "root"}))
        .await;
    assert_eq!(
        detail_paths(&assert_error(&r, 400, "invalid_request")),
        ["role"]
    );
    let r = admin
        .post(
            "/api/v1/tokens",
            &json!({"name": "x", "role": "admin", "extra": 1}),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    let r = admin
        .post("/api/v1/tokens", &json!({"name": " ", "role": "admin"}))
        .await;
    assert_eq!(
        detail_paths(&assert_error(&r, 400, "invalid_request")),
        ["name"]
    );
    let r = admin
        .call(Method::DELETE, "/api/v1/tokens/nosuchtoken1", None)
        .await;
    assert_error(&r, 404, "not_found");

    let own = turnpike_admin::token::token_id(&admin.token)
        .unwrap()
        .to_owned();
    let r = admin
        .call(Method::DELETE, &format!("/api/v1/tokens/{own}"), None)
        .await;
    assert_error(&r, 409, "conflict");
    // With a second admin the first can go.
    let second = admin.token_with("admin").await;
    let r = admin
        .send(
            Method::DELETE,
            &format!("/api/v1/tokens/{own}"),
            Some(&second),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_error(&admin.get("/api/v1/tokens").await, 401, "unauthorized");
}
