//! Test harness: every store test runs against SQLite (a temp directory) and the real
//! PostgreSQL, each test in a fresh schema of its own that is dropped afterwards.
//!
//! PostgreSQL comes from `TURNPIKE_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/test`).
//! When it is unreachable the PostgreSQL half prints "skipped: ..." and passes, except under
//! `CI=true`, where it fails: CI starts the server, so a skip there would hide a broken setup.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use sqlx::{ConnectOptions, Connection, Executor};

pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh, empty database for one test; removed on drop (also when the test panics).
#[derive(Debug)]
pub enum TestDb {
    Sqlite {
        dir: PathBuf,
        url: String,
    },
    Postgres {
        base: String,
        schema: String,
        url: String,
    },
}

fn random_suffix() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// The URL without its password, if it has one.
fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("turnpike-store-{}", random_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("store.db").display());
        TestDb::Sqlite { dir, url }
    }

    /// `None` (after saying so) when PostgreSQL is not reachable outside CI.
    pub async fn postgres() -> Option<TestDb> {
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
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!(
                        "PostgreSQL not reachable at {} ({why}) and CI=true",
                        shown(&base)
                    );
                }
                // Straight to stderr: libtest captures `eprintln!`, and a skip must be seen.
                let line = format!(
                    "skipped: PostgreSQL not reachable at {} ({why})\n",
                    shown(&base)
                );
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                return None;
            }
        };
        let schema = format!("t_{}", random_suffix());
        conn.execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .unwrap();
        let _ = conn.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        // The application name lets a test find (and kill) exactly its own connections.
        let url =
            format!("{base}{sep}options=-c%20search_path%3D{schema}&application_name={schema}");
        Some(TestDb::Postgres { base, schema, url })
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    /// PostgreSQL: this test's schema, also its connections' `application_name`.
    pub fn pg_schema(&self) -> Option<&str> {
        match self {
            TestDb::Postgres { schema, .. } => Some(schema),
            TestDb::Sqlite { .. } => None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres { .. })
    }

    /// Runs raw SQL on this test's database (its schema, for PostgreSQL), outside the store.
    pub async fn exec(&self, sql: &str) {
        match self {
            TestDb::Sqlite { dir, .. } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(dir.join("store.db"))
                    .busy_timeout(Duration::from_secs(10));
                let mut conn = opts.connect().await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            TestDb::Postgres { url, .. } => {
                let opts: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
                let mut conn = opts.connect().await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

impl TestDb {
    /// PostgreSQL: runs a query returning one BIGINT on this test's schema.
    pub async fn pg_i64(&self, sql: &str) -> i64 {
        let opts: sqlx::postgres::PgConnectOptions = self.url().parse().unwrap();
        let mut conn = opts.connect().await.unwrap();
        let n = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        n
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self {
            TestDb::Sqlite { dir, .. } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            TestDb::Postgres { base, schema, .. } => {
                // Drop runs outside any runtime we may block, so use a thread with its own.
                let (base, schema) = (base.clone(), schema.clone());
                let dropped = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        let opts: sqlx::postgres::PgConnectOptions = base.parse().unwrap();
                        let mut conn = opts.connect().await.unwrap();
                        conn.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
                            .await
                            .unwrap();
                        let _ = conn.close().await;
                    });
                });
                let _ = dropped.join();
            }
        }
    }
}

/// Declares `mod NAME { sqlite, postgres }` tests that run `BODY(&TestDb)` on each backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = $crate::common::TestDb::sqlite();
                    super::$name(&db).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = $crate::common::TestDb::postgres().await {
                        super::$name(&db).await;
                    }
                }
            }
        )+
    };
}

/// Waits up to `within` for `check` to hold, polling every 20 ms; returns how long it took.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() <= within {
        if check() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
