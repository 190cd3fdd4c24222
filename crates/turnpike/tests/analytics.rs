//! Usage analytics end to end, as real processes: two `turnpike serve` nodes sharing one
//! store (SQLite, and the real PostgreSQL) take known traffic; each writes its own rows
//! (the last minute at shutdown), and the analytics API of a restarted node counts all of
//! it exactly, merged across the nodes; the status endpoint lists both as peers.
//!
//! PostgreSQL comes from `TURNPIKE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test uses a fresh schema. Unreachable, the
//! test says "skipped" and passes, except under `CI=true`, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Serve, free_port};

use http::Method;
use serde_json::Value;
use sqlx::{ConnectOptions, Connection, Executor};
use turnpike_testkit::{Client, MockUpstream};

const TOKEN: &str = "tpa_analytics001_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
const PATIENCE: Duration = Duration::from_secs(15);
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

struct Node {
    serve: Serve,
    file: PathBuf,
    proxy: u16,
    admin: u16,
    client: Client,
}

impl Node {
    fn start(file: &Path, store: &str, upstream: &str) -> Self {
        let (proxy, admin) = (free_port(), free_port());
        let yaml = format!(
            "listen: 127.0.0.1:{proxy}
upstreams:
  - name: b
    targets: [{{url: \"{upstream}\"}}]
routes:
  - {{name: file-route, paths: [/file], upstream: b}}
admin:
  listen: 127.0.0.1:{admin}
  store: \"{store}\"
analytics:
  flush_interval: 200ms
"
        );
        std::fs::write(file, yaml).unwrap();
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
        node.serve.wait_for("admin API listening", PATIENCE);
        node
    }

    /// SIGTERM, and wait until the process has written its last rows and exited.
    fn stop(self) -> (PathBuf, u16, u16) {
        self.serve.stop(PATIENCE);
        (self.file, self.proxy, self.admin)
    }

    async fn traffic(&self, path: &str, n: usize, want: u16) {
        let url = format!("http://127.0.0.1:{}{path}", self.proxy);
        for _ in 0..n {
            assert_eq!(self.client.get(&url).await.status.as_u16(), want);
        }
    }

    async fn api(&self, path: &str) -> Value {
        let url = format!("http://127.0.0.1:{}/api/v1/{path}", self.admin);
        let auth = format!("Bearer {TOKEN}");
        let r = self
            .client
            .request(Method::GET, &url, &[("authorization", auth.as_str())], "")
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    }
}

fn total(series: &Value) -> u64 {
    series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .sum()
}

async fn two_nodes_count_known_traffic(store: &str) {
    let up = MockUpstream::named("up").await;
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(&dir.path().join("a.yaml"), store, &up.url());
    let b = Node::start(&dir.path().join("b.yaml"), store, &up.url());
    let from = jiff::Timestamp::now().as_second() - 60;
    a.traffic("/file", 20, 200).await;
    a.traffic("/nowhere", 3, 404).await;
    b.traffic("/file", 10, 200).await;
    a.stop();
    let (file, proxy, admin) = b.stop();
    let b = Node::spawn(&file, proxy, admin);

    let to = jiff::Timestamp::now().as_second() + 120;
    let series = b
        .api(&format!(
            "analytics/timeseries?from={from}&to={to}&interval=hour&group_by=route"
        ))
        .await;
    let groups: Vec<(&str, u64)> = series["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["group"].as_str().unwrap(), total(s)))
        .collect();
    assert_eq!(groups, [("", 3), ("file-route", 30)], "{series}");
    let top = b
        .api(&format!("analytics/top?from={from}&to={to}&by=service"))
        .await;
    assert_eq!(top["items"][0]["name"], "b", "{top}");
    assert_eq!(top["items"][0]["requests"], 30);
    assert_eq!(top["items"][0]["errors"], 0);
    assert!(top["items"][0]["p50_ms"].as_f64().unwrap() > 0.0, "{top}");
    let errors = b
        .api(&format!(
            "analytics/timeseries?from={from}&to={to}&interval=hour&status_class=4xx"
        ))
        .await;
    assert_eq!(total(&errors["series"][0]), 3);

    // Node a's last heartbeat (at its shutdown) is recent: both are peers.
    let status = b.api("status").await;
    let peers = status["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "{status}");
    assert!(
        peers
            .iter()
            .any(|p| p["this_node"] == true && p["node_id"] == status["node_id"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_nodes_count_known_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.db").display().to_string();
    two_nodes_count_known_traffic(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_count_known_traffic() {
    let base = std::env::var("TURNPIKE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
    let connect = async {
        let opts: sqlx::postgres::PgConnectOptions = base.parse()?;
        opts.connect().await
    };
    let mut conn = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(conn)) => conn,
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "PostgreSQL not reachable ({why}) and CI=true"
            );
            let line = format!("skipped: PostgreSQL not reachable ({why})\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            return;
        }
    };
    let schema = format!("t_analytics_{:016x}", fastrand::u64(..));
    conn.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    two_nodes_count_known_traffic(&url).await;
    conn.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
    let _ = conn.close().await;
}
