//! Writers across processes, and stores opened before their database answers.
//!
//! Two `Store` handles on one database stand for two admin API processes: each has its own
//! pool, so nothing in this process orders them; only the store's writer lock does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use serde_json::json;
use sqlx::{ConnectOptions, Connection, Executor};
use turnpike_store::{Store, StoreError};

use common::{TestDb, eventually};

both_backends!(
    a_write_transaction_keeps_other_writers_out_until_it_commits,
    a_rolled_back_write_transaction_leaves_nothing_and_frees_the_lock,
);

/// The race the lock exists for: A validates "route to upstream u" while B deletes u.
async fn a_write_transaction_keeps_other_writers_out_until_it_commits(db: &TestDb) {
    let a = Store::open(db.url()).await.unwrap();
    let b = Store::open(db.url()).await.unwrap();
    a.create("upstreams", "u", json!({"name": "u"}), "setup")
        .await
        .unwrap();

    let mut tx = a.begin_write().await.unwrap();
    let (_, seen) = tx.snapshot().await.unwrap();
    assert!(seen.iter().any(|r| r.name == "u"), "A validates against u");

    // B, "another process", wants to delete u if no route uses it.
    let deleter = tokio::spawn(async move {
        let mut tx = b.begin_write().await.unwrap();
        let (_, records) = tx.snapshot().await.unwrap();
        let used = records.iter().any(|r| r.kind == "routes");
        if !used {
            tx.delete("upstreams", "u", None, "b").await.unwrap();
        }
        tx.commit().await.unwrap();
        used
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!deleter.is_finished(), "B got in while A held the lock");

    tx.create("routes", "r", json!({"upstream": "u"}), "a")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let b_saw_the_route = tokio::time::timeout(Duration::from_secs(10), deleter)
        .await
        .expect("B never got the lock")
        .unwrap();
    assert!(
        b_saw_the_route,
        "B's read after the lock must see A's commit"
    );
    assert!(a.get("upstreams", "u").await.unwrap().is_some());
    assert!(a.get("routes", "r").await.unwrap().is_some());
}

async fn a_rolled_back_write_transaction_leaves_nothing_and_frees_the_lock(db: &TestDb) {
    let a = Store::open(db.url()).await.unwrap();
    let b = Store::open(db.url()).await.unwrap();
    let before = a.version().await.unwrap();
    {
        let mut tx = a.begin_write().await.unwrap();
        tx.create("upstreams", "x", json!({}), "a").await.unwrap();
        tx.create("upstreams", "y", json!({}), "a").await.unwrap();
        // Its own writes are visible inside it.
        assert!(tx.get("upstreams", "x").await.unwrap().is_some());
        // Dropped without commit.
    }
    let write = b.create("upstreams", "z", json!({}), "b");
    tokio::time::timeout(Duration::from_secs(10), write)
        .await
        .expect("the lock outlived the dropped transaction")
        .unwrap();
    assert!(a.get("upstreams", "x").await.unwrap().is_none());
    assert_eq!(
        a.version().await.unwrap(),
        before + 1,
        "only z's bump stays"
    );
}

/// A port nothing listens on: connections are refused at once.
const CLOSED: &str = "postgres://postgres@127.0.0.1:1/turnpike";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_store_answers_unavailable_and_its_feed_says_why() {
    let store = Store::open_deferred(CLOSED, "connection refused at start")
        .await
        .unwrap();
    let feed = store.watch();
    assert!(!feed.healthy());
    assert_eq!(
        feed.last_error().as_deref(),
        Some("connection refused at start")
    );
    match store.version().await {
        Err(StoreError::Unavailable(why)) => {
            assert!(why.contains("127.0.0.1:1"), "{why}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        store.create("upstreams", "u", json!({}), "a").await,
        Err(StoreError::Unavailable(_))
    ));
    // The feed's own polls keep failing, with the driver's reason.
    eventually(Duration::from_secs(5), || {
        feed.last_error().is_some_and(|e| e.contains("127.0.0.1:1"))
    })
    .await
    .expect("the feed did not poll");
    // A malformed URL is still refused at once.
    assert!(matches!(
        Store::open_deferred("postgres://h:notaport/x", "x").await,
        Err(StoreError::Invalid(_))
    ));
}

/// A database created after the store was opened: the store migrates it on first use, and
/// its feed turns healthy and reports the version without anyone asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_store_migrates_when_its_database_appears() {
    let Some(probe) = TestDb::postgres().await else {
        return;
    };
    let TestDb::Postgres { base, .. } = &probe else {
        unreachable!()
    };
    let name = format!("turnpike_late_{:08x}", fastrand::u32(..));
    let admin: sqlx::postgres::PgConnectOptions = base.parse().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let url = match base.split_once('@') {
        // Keep the user and host of TURNPIKE_TEST_POSTGRES; only the database differs.
        Some((user, rest)) => {
            let host = rest.split(['/', '?']).next().unwrap_or("127.0.0.1:5432");
            format!("{user}@{host}/{name}")
        }
        None => url,
    };
    let store = Store::open_deferred(&url, "not there yet").await.unwrap();
    let feed = store.watch();
    let err = store.version().await.unwrap_err();
    assert!(err.to_string().contains(&name), "{err}");

    let mut conn = admin.connect().await.unwrap();
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let result = async {
        eventually(Duration::from_secs(10), || feed.healthy())
            .await
            .expect("the feed did not turn healthy");
        store
            .create("upstreams", "u", json!({"name": "u"}), "a")
            .await
            .unwrap();
        eventually(Duration::from_secs(5), || feed.version() == 1)
            .await
            .expect("the feed did not see the write");
    };
    result.await;
    store.close().await;
    conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    let _ = conn.close().await;
}
