//! Who may do what: no token, bad tokens, each role, the bootstrap token, health endpoints
//! without a token, and the loopback-only development switch.

use http::Method;
use serde_json::json;
use turnpike_admin::{AdminOptions, AdminState, StartError, serve, token};

use crate::support::{Admin, assert_error, base_config, open_store};

#[tokio::test]
async fn health_and_openapi_need_no_token() {
    let admin = Admin::start().await;
    let r = admin.send(Method::GET, "/healthz", None, &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    let r = admin
        .send(Method::GET, "/api/v1/openapi.json", None, &[], "")
        .await;
    assert_eq!(r.status, 200);
    // The change feed polls the store at once; readiness follows within moments.
    let mut ready = None;
    for _ in 0..50 {
        let r = admin.send(Method::GET, "/readyz", None, &[], "").await;
        if r.status == 200 {
            ready = Some(r);
            break;
        }
        assert_eq!(r.status, 503);
        assert!(r.json()["reasons"][0].is_string());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ready = ready.expect("readyz never became ready");
    assert_eq!(ready.json()["status"], "ok");
}

#[tokio::test]
async fn missing_and_bad_tokens_are_401() {
    let admin = Admin::start().await;
    let r = admin
        .send(Method::GET, "/api/v1/routes", None, &[], "")
        .await;
    assert_error(&r, 401, "unauthorized");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));

    let forged = token::generate().unwrap().token;
    let mut wrong_secret = admin.token.clone();
    wrong_secret.pop();
    wrong_secret.push(if admin.token.ends_with('a') { 'b' } else { 'a' });
    for bad in [forged.as_str(), wrong_secret.as_str(), "tpa_nonsense", ""] {
        let r = admin
            .send(Method::GET, "/api/v1/routes", Some(bad), &[], "")
            .await;
        let body = assert_error(&r, 401, "unauthorized");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("invalid_token"),
            "{body}"
        );
    }
    let basic = format!("Basic {}", admin.token);
    let r = admin
        .send(
            Method::GET,
            "/api/v1/routes",
            None,
            &[("authorization", &basic)],
            "",
        )
        .await;
    assert_error(&r, 401, "unauthorized");
    // Tokens never appear in error bodies.
    assert!(!r.text().contains(&admin.token));
}

#[tokio::test]
async fn roles_limit_what_a_token_may_do() {
    let admin = Admin::start().await;
    let reader = admin.token_with("read_only").await;
    let operator = admin.token_with("operator").await;
    let consumer = json!({"name": "c"}).to_string();

    let r = admin
        .send(Method::GET, "/api/v1/consumers", Some(&reader), &[], "")
        .await;
    assert_eq!(r.status, 200);
    let r = admin
        .send(
            Method::POST,
            "/api/v1/consumers",
            Some(&reader),
            &[],
            &consumer,
        )
        .await;
    assert_error(&r, 403, "forbidden");
    let r = admin
        .send(Method::GET, "/api/v1/tokens", Some(&reader), &[], "")
        .await;
    assert_error(&r, 403, "forbidden");

    let r = admin
        .send(
            Method::POST,
            "/api/v1/consumers",
            Some(&operator),
            &[],
            &consumer,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = admin
        .send(
            Method::DELETE,
            "/api/v1/consumers/c",
            Some(&reader),
            &[],
            "",
        )
        .await;
    assert_error(&r, 403, "forbidden");
    for (method, path) in [
        (Method::GET, "/api/v1/tokens"),
        (Method::POST, "/api/v1/tokens"),
        (Method::DELETE, "/api/v1/tokens/abc"),
        (Method::GET, "/api/v1/audit"),
    ] {
        let r = admin.send(method, path, Some(&operator), &[], "").await;
        assert_error(&r, 403, "forbidden");
    }
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
}

#[tokio::test]
async fn bootstrap_token_only_on_an_empty_store() {
    let admin = Admin::start().await;
    let tokens = admin.store.tokens().await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].name, "bootstrap");
    assert_eq!(tokens[0].role, "admin");
    assert_ne!(tokens[0].hash, admin.token, "stored hashed");
    let old = admin.token.clone();
    let dir = admin.stop();

    // A restart with another value: tokens exist, so it is ignored and the old one works.
    let other = token::generate().unwrap().token;
    let options = AdminOptions {
        base: base_config(),
        bootstrap_token: Some(other.clone()),
        insecure_no_auth: false,
    };
    let admin = Admin::start_in(dir, options, old).await;
    assert_eq!(admin.get("/api/v1/tokens").await.status, 200);
    let r = admin
        .send(Method::GET, "/api/v1/routes", Some(&other), &[], "")
        .await;
    assert_error(&r, 401, "unauthorized");
}

#[tokio::test]
async fn bootstrap_from_env_and_malformed_values() {
    let env = |k: &str| (k == "TURNPIKE_ADMIN_TOKEN").then(|| "not-a-token".to_owned());
    let options = AdminOptions::from_env(base_config(), &env);
    assert!(options.bootstrap_token.is_some());
    assert!(
        !format!("{options:?}").contains("not-a-token"),
        "never printed"
    );
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let err = AdminState::new(store.clone(), options).await.unwrap_err();
    assert!(matches!(err, StartError::BadBootstrapToken), "{err}");
    assert_eq!(store.token_count().await.unwrap(), 0);
    // Without the variable nothing is created, and every request is refused.
    let options = AdminOptions::from_env(base_config(), &|_| None);
    assert!(options.bootstrap_token.is_none());
    AdminState::new(store.clone(), options).await.unwrap();
    assert_eq!(store.token_count().await.unwrap(), 0);
}

#[tokio::test]
async fn insecure_no_auth_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let options = AdminOptions {
        base: base_config(),
        bootstrap_token: None,
        insecure_no_auth: true,
    };
    let state = AdminState::new(store, options).await.unwrap();
    let public = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = serve(public, state.clone(), async {}).await.unwrap_err();
    assert!(matches!(err, StartError::InsecureNotLoopback(_)), "{err}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state.clone(), async {
        let _ = rx.await;
    }));
    let client = turnpike_testkit::Client::http1();
    let body = json!({"name": "dev"}).to_string();
    let headers = [("content-type", "application/json")];
    let r = client
        .request(
            Method::POST,
            &format!("{url}/api/v1/consumers"),
            &headers,
            &body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let audit = client.get(&format!("{url}/api/v1/audit")).await.json();
    assert_eq!(audit["items"][0]["actor"], "insecure-no-auth");
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}
