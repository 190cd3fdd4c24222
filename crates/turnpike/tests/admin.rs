//! `turnpike serve` with an `admin:` section, as real processes: an entity written through
//! the admin API serves on the gateway within a second, on SQLite and across two gateway
//! processes sharing the real PostgreSQL; deletes propagate, writes survive a restart, and
//! a merged configuration that is invalid leaves the last good one serving.
//!
//! PostgreSQL comes from `TURNPIKE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test uses a fresh schema. Unreachable, the
//! test says "skipped" and passes, except under `CI=true`, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Serve, free_port};

use http::Method;
use sqlx::{ConnectOptions, Connection, Executor};
use turnpike_testkit::{Client, MockUpstream, TestResponse};

/// The bootstrap admin token every node starts with (tpa_ + 12 + _ + 43 characters).
const TOKEN: &str = "tpa_adminTest001_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
/// How fast a change must serve, on this node or another.
const PROPAGATION: Duration = Duration::from_secs(1);
/// How long the poll loops wait before giving up: generous, so a slow machine fails on the
/// assertion that says how long it took, not on a timeout that says nothing.
const PATIENCE: Duration = Duration::from_secs(10);
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A config file with upstreams `b` (and `c` when `with_c`) and an `admin:` section.
fn config(proxy: u16, admin: u16, store: &str, upstream: &str, with_c: bool) -> String {
    let c = if with_c {
        format!("  - name: c\n    targets: [{{url: \"{upstream}\"}}]\n")
    } else {
        String::new()
    };
    format!(
        "listen: 127.0.0.1:{proxy}
upstreams:
  - name: b
    targets: [{{url: \"{upstream}\"}}]
{c}routes:
  - {{name: file-route, paths: [/file], upstream: b}}
admin:
  listen: 127.0.0.1:{admin}
  store: \"{store}\"
"
    )
}

/// One `turnpike serve` process with its proxy and admin ports.
struct Node {
    serve: Serve,
    file: PathBuf,
    proxy: u16,
    admin: u16,
    client: Client,
}

impl Node {
    /// Writes `file` for `store` and starts serving it; returns once both listeners are up.
    fn start(file: &Path, store: &str, upstream: &str) -> Self {
        let (proxy, admin) = (free_port(), free_port());
        std::fs::write(file, config(proxy, admin, store, upstream, true)).unwrap();
        Self::spawn(file, proxy, admin)
    }

    fn spawn(file: &Path, proxy: u16, admin: u16) -> Self {
        let node = Self {
            serve: Serve::start(file, &[("TURNPIKE_ADMIN_TOKEN", TOKEN)]),
            file: file.to_owned(),
            proxy,
            admin,
            client: Client::http1(),
        };
        node.wait_for("admin API listening");
        node
    }

    /// Stops the process (SIGTERM, graceful) and starts it again on the same file and ports.
    fn restart(self) -> Self {
        self.serve.stop(PATIENCE);
        Self::spawn(&self.file, self.proxy, self.admin)
    }

    fn wait_for(&self, needle: &str) -> String {
        self.serve.wait_for(needle, PATIENCE)
    }

    fn signal(&self, sig: &str) {
        self.serve.signal(sig);
    }

    async fn proxy(&self, path: &str) -> u16 {
        let url = format!("http://127.0.0.1:{}{path}", self.proxy);
        self.client.get(&url).await.status.as_u16()
    }

    async fn api(&self, method: Method, path: &str, body: &str) -> TestResponse {
        let url = format!("http://127.0.0.1:{}/api/v1/{path}", self.admin);
        let auth = format!("Bearer {TOKEN}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        self.client.request(method, &url, &headers, body).await
    }

    async fn create_route(&self, name: &str, path: &str, upstream: &str) {
        let body =
            format!(r#"{{"name": "{name}", "paths": ["{path}"], "upstream": "{upstream}"}}"#);
        let resp = self.api(Method::POST, "routes", &body).await;
        assert_eq!(resp.status, 201, "{}", resp.text());
    }

    async fn delete_route(&self, name: &str) {
        let resp = self
            .api(Method::DELETE, &format!("routes/{name}"), "")
            .await;
        assert_eq!(resp.status, 204, "{}", resp.text());
    }

    /// Polls until `path` answers `want`; returns how long that took.
    async fn until(&self, path: &str, want: u16) -> Duration {
        let start = Instant::now();
        loop {
            if self.proxy(path).await == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{path} never answered {want} on port {}",
                self.proxy
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn within_a_second(what: &str, took: Duration) {
    eprintln!("{what}: {took:?}");
    assert!(
        took < PROPAGATION,
        "{what} took {took:?}, more than {PROPAGATION:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_admin_writes_serve_within_a_second_and_survive_a_restart() {
    let up = MockUpstream::named("up").await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.db").display().to_string();
    let node = Node::start(&dir.path().join("turnpike.yaml"), &store, &up.url());
    assert_eq!(node.proxy("/file").await, 200);
    assert_eq!(node.proxy("/svc").await, 404);

    node.create_route("svc", "/svc", "b").await;
    within_a_second("a created route", node.until("/svc", 200).await);

    node.delete_route("svc").await;
    within_a_second("a deleted route", node.until("/svc", 404).await);

    // Names the file defines stay the file's.
    let resp = node.api(Method::DELETE, "routes/file-route", "").await;
    assert_eq!(resp.status, 409, "{}", resp.text());

    node.create_route("kept", "/kept", "b").await;
    node.until("/kept", 200).await;
    let node = node.restart();
    // Served from the first snapshot, before any change arrives.
    assert_eq!(node.proxy("/kept").await, 200);
    assert_eq!(node.proxy("/file").await, 200);
    assert_eq!(node.proxy("/svc").await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_merged_config_keeps_the_last_good_one_serving() {
    let up = MockUpstream::named("up").await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.db").display().to_string();
    let file = dir.path().join("turnpike.yaml");
    let node = Node::start(&file, &store, &up.url());
    node.create_route("to-c", "/to-c", "c").await;
    node.until("/to-c", 200).await;

    // The file drops upstream `c`, which the store's route still uses, and adds a route:
    // the merge is invalid, so none of it applies.
    let without_c = config(node.proxy, node.admin, &store, &up.url(), false).replace(
        "routes:\n",
        "routes:\n  - {name: new, paths: [/new], upstream: b}\n",
    );
    std::fs::write(&file, without_c).unwrap();
    node.signal("-HUP");
    let rejected = node.wait_for("configuration rejected");
    assert!(
        rejected.contains("still serving the previous one"),
        "{rejected}"
    );
    node.wait_for("unknown upstream `c`");
    assert_eq!(node.proxy("/to-c").await, 200);
    assert_eq!(node.proxy("/new").await, 404);

    // A store write while the merge is broken is refused by the API (it would not apply).
    let resp = node
        .api(
            Method::POST,
            "routes",
            r#"{"name": "x", "paths": ["/x"], "upstream": "c"}"#,
        )
        .await;
    assert_eq!(resp.status, 400, "{}", resp.text());

    // Deleting the route through the API repairs the merge: the file's change applies.
    node.delete_route("to-c").await;
    node.until("/new", 200).await;
    assert_eq!(node.proxy("/to-c").await, 404);
}

/// A schema of its own on the test PostgreSQL, dropped afterwards.
struct PgSchema {
    base: String,
    schema: String,
}

impl PgSchema {
    /// `None` (after saying so) when PostgreSQL is unreachable outside CI.
    async fn create() -> Option<Self> {
        let base =
            std::env::var("TURNPIKE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
        let connect = async {
            let opts: sqlx::postgres::PgConnectOptions = base.parse()?;
            opts.connect().await
        };
        let mut conn = match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(conn)) => conn,
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                // CI starts the server, so a skip there would hide a broken setup.
                assert!(
                    !std::env::var("CI").is_ok_and(|v| v == "true"),
                    "PostgreSQL not reachable ({why}) and CI=true"
                );
                // Straight to stderr: libtest captures `eprintln!`, and a skip must be seen.
                let line = format!("skipped: PostgreSQL not reachable ({why})\n");
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                return None;
            }
        };
        let schema = format!("gw_{:016x}", fastrand::u64(..));
        conn.execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .unwrap();
        let _ = conn.close().await;
        Some(Self { base, schema })
    }

    fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.base, self.schema
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, schema) = (self.base.clone(), self.schema.clone());
        // Drop may run inside the test's runtime, which must not block: use a thread.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let opts: sqlx::postgres::PgConnectOptions = base.parse().unwrap();
                let mut conn = opts.connect().await.unwrap();
                let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                let _ = conn.execute(sql.as_str()).await;
                let _ = conn.close().await;
            });
        });
        let _ = dropped.join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_write_on_one_node_serves_on_another_within_a_second() {
    let Some(db) = PgSchema::create().await else {
        return;
    };
    let up = MockUpstream::named("up").await;
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(&dir.path().join("a.yaml"), &db.url(), &up.url());
    let b = Node::start(&dir.path().join("b.yaml"), &db.url(), &up.url());
    assert_eq!(b.proxy("/shared").await, 404);

    a.create_route("shared", "/shared", "b").await;
    within_a_second("node A's write on node B", b.until("/shared", 200).await);
    a.until("/shared", 200).await;

    b.delete_route("shared").await;
    within_a_second("node B's delete on node A", a.until("/shared", 404).await);
    b.until("/shared", 404).await;
    drop((a, b));
}

/// Runs `sql` on the SQLite store behind the store's back.
async fn sqlite_exec(path: &Path, sql: &str) {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = opts.connect().await.unwrap();
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_store_keeps_the_gateway_serving_and_readyz_says_so() {
    let up = MockUpstream::named("up").await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let node = Node::start(
        &dir.path().join("turnpike.yaml"),
        &db.display().to_string(),
        &up.url(),
    );
    node.create_route("svc", "/svc", "b").await;
    node.until("/svc", 200).await;
    let readyz = format!("http://127.0.0.1:{}/readyz", node.admin);
    assert_eq!(node.client.get(&readyz).await.status, 200);

    // The version table disappearing is what an unreachable database looks like to the feed.
    sqlite_exec(
        &db,
        "ALTER TABLE config_version RENAME TO config_version_gone",
    )
    .await;
    let start = Instant::now();
    while node.client.get(&readyz).await.status != 503 {
        assert!(start.elapsed() < PATIENCE, "/readyz never said 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = node.client.get(&readyz).await.text();
    assert!(body.contains("config store unreachable"), "{body}");
    // A reload now cannot read the store, so the gateway keeps what it has.
    node.signal("-HUP");
    node.wait_for("cannot read the store");
    assert_eq!(node.proxy("/svc").await, 200);
    assert_eq!(node.proxy("/file").await, 200);

    sqlite_exec(
        &db,
        "ALTER TABLE config_version_gone RENAME TO config_version",
    )
    .await;
    let start = Instant::now();
    while node.client.get(&readyz).await.status != 200 {
        assert!(start.elapsed() < PATIENCE, "/readyz never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.create_route("after", "/after", "b").await;
    within_a_second("a route after recovery", node.until("/after", 200).await);
}
