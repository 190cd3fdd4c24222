//! What a node tells about itself and other admin processes: `/readyz` and `/metrics` while
//! the file plus the store are refused, and two admin API processes (two `AdminState`s with
//! their own pools) writing to the same PostgreSQL at once without breaking the config.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::json;
use sqlx::{ConnectOptions, Connection, Executor};
use turnpike_admin::sync::Follower;
use turnpike_admin::{AdminOptions, AdminState, ConfigStatus, Serving, serve_with, token};
use turnpike_config::Config;
use turnpike_store::Store;
use turnpike_testkit::{Client, TestResponse};

use crate::support::{base_config, open_store};

/// Serves `state` with a `/metrics` that renders nothing of the gateway's; returns its URL.
async fn serve_state(state: AdminState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let serving = Serving {
        metrics: Some(Arc::new(|_| "# EOF\n".to_owned())),
        tls: None,
    };
    tokio::spawn(serve_with(listener, state, serving, std::future::pending()));
    url
}

async fn get(url: &str) -> TestResponse {
    Client::http1().get(url).await
}

/// Polls `url` until `check` holds (10 s at most).
async fn until(url: &str, check: impl Fn(&TestResponse) -> bool) -> TestResponse {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(url).await;
        if check(&r) {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url}: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_merge_shows_in_readyz_and_metrics_until_a_valid_change_applies() {
    let dir = tempfile::tempdir().unwrap();
    let options = AdminOptions {
        base: base_config(),
        ..AdminOptions::default()
    };
    let state = AdminState::new(open_store(dir.path()).await, options)
        .await
        .unwrap();
    let _follower = Follower::start(state.clone(), 0, |_: &Config| Ok::<u64, Infallible>(1));
    let url = serve_state(state.clone()).await;
    assert_eq!(get(&format!("{url}/readyz")).await.status, 200);

    // Behind the API's back (another tool, an older node): nothing validated it.
    let bad = json!({"name": "bad", "paths": ["/bad"], "upstream": "gone"});
    state
        .store()
        .create("routes", "bad", bad, "test")
        .await
        .unwrap();
    let r = until(&format!("{url}/readyz"), |r| r.status == 503).await;
    let reasons = r.json()["reasons"].to_string();
    assert!(
        reasons.contains("store configuration rejected, still serving the previous one")
            && reasons.contains("routes[1].upstream")
            && reasons.contains("gone"),
        "{reasons}"
    );
    assert!(matches!(state.config_status(), ConfigStatus::Rejected(_)));
    let metrics = get(&format!("{url}/metrics")).await.text();
    assert!(
        metrics.contains("turnpike_store_config_rejected 1\n"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");

    state
        .store()
        .delete("routes", "bad", None, "test")
        .await
        .unwrap();
    let r = until(&format!("{url}/readyz"), |r| r.status == 200).await;
    assert_eq!(r.json()["status"], "ok");
    let metrics = get(&format!("{url}/metrics")).await.text();
    assert!(
        metrics.contains("turnpike_store_config_rejected 0\n"),
        "{metrics}"
    );
}

/// A fresh schema on the real PostgreSQL (`TURNPIKE_TEST_POSTGRES`); `None` after saying
/// "skipped" when it is unreachable, unless `CI=true`.
pub(crate) async fn postgres_schema() -> Option<(String, String, String)> {
    let base = std::env::var("TURNPIKE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let opts: sqlx::postgres::PgConnectOptions = base.parse().unwrap();
    let mut conn = match tokio::time::timeout(Duration::from_secs(5), opts.connect()).await {
        Ok(Ok(conn)) => conn,
        other => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL not reachable and CI=true: {:?}",
                other.map(|r| r.err())
            );
            let line = "skipped: PostgreSQL not reachable\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            return None;
        }
    };
    let schema = format!("t_admin_{:016x}", fastrand::u64(..));
    conn.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let _ = conn.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Some((base, schema, url))
}

pub(crate) async fn drop_schema(base: &str, schema: &str) {
    let opts: sqlx::postgres::PgConnectOptions = base.parse().unwrap();
    let mut conn = opts.connect().await.unwrap();
    conn.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
        .await
        .unwrap();
    let _ = conn.close().await;
}

/// Two admin processes: one deletes upstreams while the other adds a route to each. Each
/// write alone is valid; both together would leave routes to nothing. With the store's
/// writer lock, whichever comes second validates against the first and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admin_processes_on_postgres_never_validate_against_a_stale_snapshot() {
    let Some((base, schema, url)) = postgres_schema().await else {
        return;
    };
    let bootstrap = token::generate().unwrap().token;
    let start = |token: Option<String>| {
        let url = url.clone();
        async move {
            let options = AdminOptions {
                base: base_config(),
                bootstrap_token: token,
                insecure_no_auth: false,
            };
            let store = Store::open(&url).await.unwrap();
            AdminState::new(store, options).await.unwrap()
        }
    };
    let a = start(Some(bootstrap.clone())).await;
    let b = start(None).await;
    let (url_a, url_b) = (serve_state(a.clone()).await, serve_state(b.clone()).await);
    const N: usize = 20;
    for i in 0..N {
        let doc = json!({"name": format!("u{i}"), "targets": [{"url": "http://127.0.0.1:9"}]});
        a.store()
            .create("upstreams", &format!("u{i}"), doc, "setup")
            .await
            .unwrap();
    }
    let statuses = race(&bootstrap, (&url_a, &url_b), N).await;
    assert!(
        statuses.iter().all(|s| [201, 204, 400, 409].contains(s)),
        "{statuses:?}"
    );
    let (_, records) = a.store().snapshot().await.unwrap();
    let has = |kind: &str, name: &str| records.iter().any(|r| r.kind == kind && r.name == name);
    for i in 0..N {
        let (route, upstream) = (format!("r{i}"), format!("u{i}"));
        assert!(
            !has("routes", &route) || has("upstreams", &upstream),
            "route {route} survived without its upstream: {statuses:?}"
        );
        // Exactly one of the two writes won: route and upstream, or neither.
        assert_eq!(
            has("routes", &route),
            has("upstreams", &upstream),
            "{route}: {statuses:?}"
        );
    }
    drop((a, b));
    drop_schema(&base, &schema).await;
}

/// For each `i < n` at once: a route to `u{i}` created through `a`, and `u{i}` deleted
/// through `b`. Returns every answer's status.
async fn race(token: &str, (a, b): (&str, &str), n: usize) -> Vec<u16> {
    let call = |base: String, method: Method, path: String, body: String| {
        let auth = format!("Bearer {token}");
        async move {
            let headers = [
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ];
            let url = format!("{base}{path}");
            Client::http1()
                .request(method, &url, &headers, &body)
                .await
                .status
                .as_u16()
        }
    };
    let mut tasks = Vec::new();
    for i in 0..n {
        let route = json!({"name": format!("r{i}"), "paths": [format!("/r{i}")], "upstream": format!("u{i}")});
        let create = call(
            a.to_owned(),
            Method::POST,
            "/api/v1/routes".to_owned(),
            route.to_string(),
        );
        let delete = call(
            b.to_owned(),
            Method::DELETE,
            format!("/api/v1/upstreams/u{i}"),
            String::new(),
        );
        tasks.push(tokio::spawn(create));
        tasks.push(tokio::spawn(delete));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}
