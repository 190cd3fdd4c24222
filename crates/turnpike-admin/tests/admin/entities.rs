//! Entity CRUD: create, read, replace, delete with ETags, validation with field paths,
//! conflicts, paging, and the audit rows each write leaves.

use http::Method;
use serde_json::json;

use crate::support::{Admin, assert_error, detail_paths};

fn upstream(name: &str) -> serde_json::Value {
    json!({"name": name, "targets": [{"url": "http://127.0.0.1:9001"}]})
}

#[tokio::test]
async fn upstream_lifecycle_with_etags() {
    let admin = Admin::start().await;
    let r = admin.post("/api/v1/upstreams", &upstream("api")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some("/api/v1/upstreams/api"));
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.json(), upstream("api"));

    let r = admin.get("/api/v1/upstreams/api").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.json()["targets"][0]["url"], "http://127.0.0.1:9001");

    let mut changed = upstream("api");
    changed["balancer"] = json!("least_connections");
    let body = changed.to_string();
    let t = admin.token.clone();
    let r = admin
        .send(
            Method::PUT,
            "/api/v1/upstreams/api",
            Some(&t),
            &[("if-match", "\"1\"")],
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(r.json()["balancer"], "least_connections");

    // A writer that read revision 1 is too late now.
    let r = admin
        .send(
            Method::PUT,
            "/api/v1/upstreams/api",
            Some(&t),
            &[("if-match", "\"1\"")],
            &body,
        )
        .await;
    assert_error(&r, 412, "revision_mismatch");
    let r = admin
        .send(
            Method::DELETE,
            "/api/v1/upstreams/api",
            Some(&t),
            &[("if-match", "\"7\"")],
            "",
        )
        .await;
    assert_error(&r, 412, "revision_mismatch");

    // Without If-Match the last writer wins.
    let r = admin
        .call(Method::PUT, "/api/v1/upstreams/api", Some(&upstream("api")))
        .await;
    assert_eq!(r.header("etag"), Some("\"3\""));

    let r = admin
        .send(
            Method::DELETE,
            "/api/v1/upstreams/api",
            Some(&t),
            &[("if-match", "\"3\"")],
            "",
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_error(&admin.get("/api/v1/upstreams/api").await, 404, "not_found");
    let r = admin
        .call(Method::DELETE, "/api/v1/upstreams/api", None)
        .await;
    assert_error(&r, 404, "not_found");
    let r = admin
        .call(Method::PUT, "/api/v1/upstreams/api", Some(&upstream("api")))
        .await;
    assert_error(&r, 404, "not_found");
}

#[tokio::test]
async fn validation_reports_field_paths() {
    let admin = Admin::start().await;
    // A route to an upstream that does not exist.
    let route = json!({"name": "r", "paths": ["/r"], "upstream": "nope"});
    let body = assert_error(
        &admin.post("/api/v1/routes", &route).await,
        400,
        "invalid_entity",
    );
    assert_eq!(detail_paths(&body), ["upstream"], "{body}");
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nope")
    );
    // Nothing of a refused write is stored or audited.
    assert_error(&admin.get("/api/v1/routes/r").await, 404, "not_found");
    let audit = admin.get("/api/v1/audit?kind=routes").await.json();
    assert_eq!(audit["items"], json!([]), "{audit}");

    // Unknown fields and nested mistakes, all at once.
    let bad = json!({"name": "u", "targets": [{"url": "ftp://x"}], "colour": "red"});
    let body = assert_error(
        &admin.post("/api/v1/upstreams", &bad).await,
        400,
        "invalid_entity",
    );
    let mut paths = detail_paths(&body);
    paths.sort();
    assert_eq!(paths, ["colour", "targets[0].url"], "{body}");

    // Wrong types, missing name, not an object.
    let body = assert_error(
        &admin
            .post("/api/v1/upstreams", &json!({"name": "u", "targets": 5}))
            .await,
        400,
        "invalid_entity",
    );
    assert_eq!(detail_paths(&body), ["targets"]);
    let body = assert_error(
        &admin
            .post("/api/v1/consumers", &json!({"groups": []}))
            .await,
        400,
        "invalid_entity",
    );
    assert_eq!(detail_paths(&body), ["name"]);
    assert_error(
        &admin.post("/api/v1/consumers", &json!([1])).await,
        400,
        "invalid_entity",
    );

    // A route may use the file's upstream.
    let ok = json!({"name": "r", "paths": ["/r"], "upstream": "file-backend"});
    assert_eq!(admin.post("/api/v1/routes", &ok).await.status, 201);
    // The name in the body must agree with the URL.
    let renamed = json!({"name": "other", "paths": ["/r"], "upstream": "file-backend"});
    let r = admin
        .call(Method::PUT, "/api/v1/routes/r", Some(&renamed))
        .await;
    assert_eq!(
        detail_paths(&assert_error(&r, 400, "invalid_entity")),
        ["name"]
    );
    // ... or leave it out.
    let unnamed = json!({"paths": ["/r2"], "upstream": "file-backend"});
    let r = admin
        .call(Method::PUT, "/api/v1/routes/r", Some(&unnamed))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["name"], "r");
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let admin = Admin::start().await;
    let t = admin.token.clone();
    let r = admin
        .send(
            Method::POST,
            "/api/v1/routes",
            Some(&t),
            &[],
            "{\n  \"name\": \"x\",\n}",
        )
        .await;
    let body = assert_error(&r, 400, "invalid_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 3"),
        "{body}"
    );
    let r = admin
        .send(
            Method::POST,
            "/api/v1/routes",
            Some(&t),
            &[("content-type", "text/plain")],
            "{}",
        )
        .await;
    assert_error(&r, 415, "unsupported_media_type");
    assert_error(
        &admin.get("/api/v1/routes?limit=abc").await,
        400,
        "invalid_query",
    );
    assert_error(
        &admin.get("/api/v1/routes?limit=0").await,
        400,
        "invalid_query",
    );
    assert_error(&admin.get("/api/v1/nothing").await, 404, "not_found");
    let r = admin.call(Method::PATCH, "/api/v1/routes", None).await;
    assert_error(&r, 405, "method_not_allowed");
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = admin
        .send(Method::POST, "/api/v1/consumers", Some(&t), &[], &big)
        .await;
    assert_error(&r, 413, "payload_too_large");
}

#[tokio::test]
async fn conflicts() {
    let admin = Admin::start().await;
    assert_eq!(
        admin.post("/api/v1/upstreams", &upstream("b")).await.status,
        201
    );
    let r = admin.post("/api/v1/upstreams", &upstream("b")).await;
    assert_error(&r, 409, "already_exists");
    // Names the file defines are read-only here.
    let r = admin
        .post("/api/v1/upstreams", &upstream("file-backend"))
        .await;
    assert_error(&r, 409, "read_only");
    let r = admin
        .call(Method::DELETE, "/api/v1/routes/file-route", None)
        .await;
    assert_error(&r, 409, "read_only");

    let route = json!({"name": "uses-b", "upstream": "b", "paths": ["/b"]});
    assert_eq!(admin.post("/api/v1/routes", &route).await.status, 201);
    let r = admin
        .call(Method::DELETE, "/api/v1/upstreams/b", None)
        .await;
    let body = assert_error(&r, 409, "conflict");
    assert_eq!(
        detail_paths(&body),
        [r#"routes["uses-b"].upstream"#],
        "{body}"
    );
    // Nothing was deleted; after the route goes, the upstream can.
    assert_eq!(admin.get("/api/v1/upstreams/b").await.status, 200);
    assert_eq!(
        admin
            .call(Method::DELETE, "/api/v1/routes/uses-b", None)
            .await
            .status,
        204
    );
    assert_eq!(
        admin
            .call(Method::DELETE, "/api/v1/upstreams/b", None)
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn paging_and_prefix() {
    let admin = Admin::start().await;
    for name in ["a1", "a2", "a3", "b1", "b2"] {
        let r = admin
            .post("/api/v1/consumers", &json!({"name": name}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/consumers?limit=2".to_owned();
    for _ in 0..5 {
        let page = admin.get(&path).await.json();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["name"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/consumers?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["a1", "a2", "a3", "b1", "b2"]);
    let page = admin.get("/api/v1/consumers?prefix=b").await.json();
    let names: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names, [json!("b1"), json!("b2")]);
    assert!(page["next"].is_null());
}

#[tokio::test]
async fn writes_are_audited_with_actor_and_documents() {
    let admin = Admin::start().await;
    let operator = admin.token_with("operator").await;
    let body = json!({"name": "c", "groups": ["g"]}).to_string();
    let r = admin
        .send(
            Method::POST,
            "/api/v1/consumers",
            Some(&operator),
            &[],
            &body,
        )
        .await;
    assert_eq!(r.status, 201);
    let r = admin
        .send(
            Method::DELETE,
            "/api/v1/consumers/c",
            Some(&operator),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 204);

    let page = admin.get("/api/v1/audit?kind=consumers&name=c").await;
    assert_eq!(page.status, 200, "{}", page.text());
    let page = page.json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{page}");
    let operator_id = turnpike_admin::token::token_id(&operator).unwrap();
    // Newest first.
    assert_eq!(items[0]["action"], "delete");
    assert_eq!(items[0]["before"]["groups"], json!(["g"]));
    assert!(items[0]["after"].is_null());
    assert_eq!(items[1]["action"], "create");
    assert_eq!(items[1]["after"]["name"], "c");
    assert_eq!(items[1]["actor"], format!("token:{operator_id}"));

    // Paging backwards through everything, token creation included.
    let first = admin.get("/api/v1/audit?limit=1").await.json();
    let next = first["next"].as_i64().unwrap();
    let second = admin
        .get(&format!("/api/v1/audit?limit=1&before_id={next}"))
        .await
        .json();
    assert!(second["items"][0]["id"].as_i64().unwrap() < next);
}

#[tokio::test]
async fn concurrent_writers_with_if_match_one_wins() {
    let admin = Admin::start().await;
    assert_eq!(
        admin
            .post("/api/v1/consumers", &json!({"name": "c"}))
            .await
            .status,
        201
    );
    let t = admin.token.clone();
    let put = |group: &'static str| {
        let body = json!({"name": "c", "groups": [group]}).to_string();
        let (admin, t) = (&admin, &t);
        async move {
            let h = [("if-match", "\"1\"")];
            let r = admin
                .send(Method::PUT, "/api/v1/consumers/c", Some(t), &h, &body)
                .await;
            r.status.as_u16()
        }
    };
    let (a, b, c, d) = tokio::join!(put("a"), put("b"), put("c"), put("d"));
    let mut statuses = [a, b, c, d];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412, 412, 412]);
    assert_eq!(
        admin.get("/api/v1/consumers/c").await.header("etag"),
        Some("\"2\"")
    );
}

#[tokio::test]
async fn entities_survive_a_restart() {
    let admin = Admin::start().await;
    assert_eq!(
        admin
            .post("/api/v1/upstreams", &upstream("kept"))
            .await
            .status,
        201
    );
    let token = admin.token.clone();
    let dir = admin.stop();
    let options = turnpike_admin::AdminOptions {
        base: crate::support::base_config(),
        bootstrap_token: None,
        insecure_no_auth: false,
    };
    let admin = Admin::start_in(dir, options, token).await;
    let r = admin.get("/api/v1/upstreams/kept").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), upstream("kept"));
}
