//! Opening, migrating, reopening and following a store, the same on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use serde_json::json;
use turnpike_store::{SCHEMA_VERSION, Store, StoreError};

use common::{TestDb, eventually};

both_backends!(
    two_nodes_open_a_fresh_database_at_once,
    reopen_after_close_keeps_data,
    a_newer_schema_is_refused,
    a_second_handle_sees_a_write_within_a_second,
    another_process_write_is_seen_within_a_second,
    feed_reports_an_unreachable_store_and_recovers,
);

async fn two_nodes_open_a_fresh_database_at_once(db: &TestDb) {
    let (a, b, c) = tokio::join!(
        Store::open(db.url()),
        Store::open(db.url()),
        Store::open(db.url())
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    a.create("upstream", "u", json!({}), "x").await.unwrap();
    assert!(b.get("upstream", "u").await.unwrap().is_some());
    assert_eq!(c.version().await.unwrap(), 1);
    // Exactly one set of migration rows, whoever won the race.
    let reopened = Store::open(db.url()).await.unwrap();
    assert_eq!(reopened.version().await.unwrap(), 1);
}

async fn reopen_after_close_keeps_data(db: &TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    store
        .create("consumer", "alice", json!({"plan": "gold"}), "x")
        .await
        .unwrap();
    store
        .update("consumer", "alice", json!({"plan": "free"}), Some(1), "x")
        .await
        .unwrap();
    store.close().await;
    let err = store.get("consumer", "alice").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    drop(store);

    let store = Store::open(db.url()).await.unwrap();
    let rec = store.get("consumer", "alice").await.unwrap().unwrap();
    assert_eq!((rec.doc, rec.revision), (json!({"plan": "free"}), 2));
    assert_eq!(store.version().await.unwrap(), 2);
}

async fn a_newer_schema_is_refused(db: &TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    store.close().await;
    db.exec(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 'x')",
    )
    .await;
    let err = Store::open(db.url()).await.unwrap_err();
    match &err {
        StoreError::SchemaTooNew { found, known } => {
            assert_eq!((*found, *known), (9999, SCHEMA_VERSION))
        }
        other => panic!("expected SchemaTooNew, got {other}"),
    }
    assert!(err.to_string().contains("newer than this binary"), "{err}");
}

async fn a_second_handle_sees_a_write_within_a_second(db: &TestDb) {
    let writer = Store::open(db.url()).await.unwrap();
    let reader = Store::open(db.url()).await.unwrap();
    let feed = reader.watch();
    assert!(feed.healthy());
    // Let the feed settle (its LISTEN is up) before timing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut rx = feed.subscribe();
    for round in 1..=3 {
        let started = std::time::Instant::now();
        let name = format!("r{round}");
        writer.create("route", &name, json!({}), "x").await.unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(1), rx.wait_for(|v| *v == round)).await;
        assert!(
            seen.is_ok(),
            "round {round}: not seen within 1 s (feed at {})",
            feed.version()
        );
        eprintln!(
            "{}: round {round} seen after {:?}",
            writer.backend_name(),
            started.elapsed()
        );
    }
    assert_eq!(feed.version(), 3);
    assert!(feed.healthy());
}

async fn feed_reports_an_unreachable_store_and_recovers(db: &TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let feed = store.watch();
    assert!(
        eventually(Duration::from_secs(3), || feed.healthy())
            .await
            .is_some()
    );
    // What every poll reads disappears: to the feed that is an unreachable store.
    db.exec("ALTER TABLE config_version RENAME TO config_version_gone")
        .await;
    let lost = eventually(Duration::from_secs(5), || !feed.healthy()).await;
    assert!(lost.is_some(), "feed still healthy");
    let error = feed.last_error().unwrap_or_default();
    assert!(error.contains("config_version"), "{error}");

    db.exec("ALTER TABLE config_version_gone RENAME TO config_version")
        .await;
    assert!(
        eventually(Duration::from_secs(5), || feed.healthy())
            .await
            .is_some(),
        "no recovery"
    );
    // And it follows writes again.
    store.create("plan", "p", json!({}), "x").await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), || feed.version() == 1)
            .await
            .is_some()
    );
}

/// PostgreSQL only: every connection of the store is killed (a restart or failover looks like
/// this); the feed reconnects its LISTEN and polling, and follows writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_feed_reconnects_after_its_connections_are_killed() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = Store::open(db.url()).await.unwrap();
    let feed = store.watch();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let schema = db.pg_schema().unwrap_or_default().to_owned();
    let killed = db
        .pg_i64(&format!(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = '{schema}' AND pid <> pg_backend_pid()"
        ))
        .await;
    // At least the pooled connection and the LISTEN one.
    assert!(killed >= 2, "killed {killed} connections");
    let writer = Store::open(db.url()).await.unwrap();
    writer
        .create("route", "after-kill", json!({}), "x")
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(4), || feed.version() == 1)
            .await
            .is_some(),
        "write not seen"
    );
    assert!(
        eventually(Duration::from_secs(3), || feed.healthy())
            .await
            .is_some()
    );
    // The reader's own pool recovered too.
    assert!(store.get("route", "after-kill").await.unwrap().is_some());
    // And NOTIFY is back: the next write arrives well inside the poll interval.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut rx = feed.subscribe();
    writer
        .create("route", "second", json!({}), "x")
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(1), rx.wait_for(|v| *v == 2)).await;
    assert!(seen.is_ok(), "second write not seen within 1 s");
}

/// The store URL [`child_writer`] writes to; set only for the child process.
const CHILD_URL: &str = "TURNPIKE_STORE_TEST_CHILD_URL";

/// Does nothing in a normal run. As the child of
/// `another_process_write_is_seen_within_a_second` it writes one route and exits.
#[tokio::test]
async fn child_writer() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    store
        .create("route", "from-child", json!({}), "child")
        .await
        .unwrap();
}

async fn another_process_write_is_seen_within_a_second(db: &TestDb) {
    let reader = Store::open(db.url()).await.unwrap();
    let feed = reader.watch();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut rx = feed.subscribe();
    let exe = std::env::current_exe().unwrap();
    let url = db.url().to_owned();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(["--exact", "child_writer", "--test-threads", "1"])
            .env(CHILD_URL, url)
            .stdout(std::process::Stdio::null())
            .status()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(status.success(), "child writer failed: {status}");
    // The write committed before the child exited, so this bounds the delay from above.
    let seen = tokio::time::timeout(Duration::from_secs(1), rx.wait_for(|v| *v == 1)).await;
    assert!(
        seen.is_ok(),
        "not seen within 1 s of the child's exit (feed at {})",
        feed.version()
    );
    assert!(reader.get("route", "from-child").await.unwrap().is_some());
}
