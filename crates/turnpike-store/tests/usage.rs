//! Usage rollups and node heartbeats on SQLite and PostgreSQL: rows written twice merge,
//! two nodes' rows merge at query time, downsampling minute → hour → day keeps every count
//! and sketch, retention deletes, and peers come from heartbeats.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use turnpike_analytics::usage::merge_rows;
use turnpike_analytics::{Sketch, UsageKey, UsageRow, UsageTotals};
use turnpike_store::{NodeRow, Resolution, Store, UsageQuery};

use common::TestDb;

both_backends!(
    rows_written_twice_add_up,
    two_nodes_merge_at_query_time,
    filters_select_rows,
    downsampling_keeps_counts_and_sketches,
    retention_deletes_old_rows,
    heartbeats_list_recent_nodes,
);

/// 2026-01-01T00:00:00Z: a day, hour and minute boundary.
const T0: i64 = 1_767_225_600;

fn row(bucket: i64, route: &str, consumer: &str, class: u8, latencies_ms: &[u64]) -> UsageRow {
    let mut latency = Sketch::new();
    for ms in latencies_ms {
        latency.add(Duration::from_millis(*ms));
    }
    let n = latencies_ms.len() as u64;
    UsageRow {
        key: UsageKey {
            bucket,
            route: route.to_owned(),
            service: format!("{route}-svc"),
            consumer: consumer.to_owned(),
            status_class: class,
        },
        totals: UsageTotals {
            requests: n,
            errors: if class == 5 { n } else { 0 },
            request_bytes: 10 * n,
            response_bytes: 100 * n,
            latency,
        },
    }
}

fn query(resolution: Resolution) -> UsageQuery {
    UsageQuery {
        resolution,
        from: 0,
        to: i64::MAX,
        route: None,
        service: None,
        consumer: None,
        status_class: None,
    }
}

async fn rows_of(store: &Store, q: &UsageQuery) -> Vec<UsageRow> {
    merge_rows(store.usage(q).await.unwrap().into_iter().map(|(_, r)| r))
}

async fn rows_written_twice_add_up(db: &TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let first = row(T0, "api", "alice", 2, &[1, 2, 3]);
    let second = row(T0, "api", "alice", 2, &[100, 200]);
    store
        .write_usage(Resolution::Minute, "n1", std::slice::from_ref(&first))
        .await
        .unwrap();
    store
        .write_usage(Resolution::Minute, "n1", std::slice::from_ref(&second))
        .await
        .unwrap();
    let stored = store.usage(&query(Resolution::Minute)).await.unwrap();
    assert_eq!(stored.len(), 1, "one row per key and node");
    let (node, got) = &stored[0];
    assert_eq!(node, "n1");
    let mut expected = first.totals.clone();
    expected.merge(&second.totals);
    assert_eq!(got.totals, expected);
    assert_eq!(
        (
            got.totals.requests,
            got.totals.request_bytes,
            got.totals.response_bytes
        ),
        (5, 50, 500)
    );
}

async fn two_nodes_merge_at_query_time(db: &TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    // Node a is fast, node b slow; together: 100 requests, p50 in a's range, p99 in b's.
    let fast: Vec<u64> = (1..=90).collect();
    let slow: Vec<u64> = (1..=10).map(|i| 1000 + i * 100).collect();
    let a = [row(T0, "api", "", 2, &fast), row(T0, "api", "", 5, &[7])];
    let b = [row(T0, "api", "", 2, &slow)];
    store
        .write_usage(Resolution::Minute, "a", &a)
        .await
        .unwrap();
    store
        .write_usage(Resolution::Minute, "b", &b)
        .await
        .unwrap();
    let raw = store.usage(&query(Resolution::Minute)).await.unwrap();
    assert_eq!(raw.len(), 3, "each node keeps its own rows");
    let merged = rows_of(&store, &query(Resolution::Minute)).await;
    assert_eq!(merged.len(), 2, "{merged:?}");
    let ok = &merged[0].totals;
    assert_eq!((ok.requests, ok.errors), (100, 0));
    assert_eq!((merged[1].totals.requests, merged[1].totals.errors), (1, 1));
    let mut all: Vec<u64> = fast.iter().chain(&slow).copied().collect();
    all.sort_unstable();
    for q in [0.5, 0.95, 0.99] {
        let exact = all[(q * 99.0_f64).floor() as usize] as f64;
        let got = ok.latency.quantile_ms(q).unwrap();
        assert!(
            (got - exact).abs() <= exact * 0.01 + 1e-9,
            "p{q}: {got} vs {exact}"
        );
    }
}

async fn filters_select_rows(db: &TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let rows = [
        row(T0, "api", "alice", 2, &[1]),
        row(T0, "api", "", 4, &[1, 1]),
        row(T0 + 60, "web", "bob", 2, &[1, 1, 1]),
    ];
    store
        .write_usage(Resolution::Minute, "n", &rows)
        .await
        .unwrap();
    let count = |q: UsageQuery| {
        let store = store.clone();
        async move {
            let rows = store.usage(&q).await.unwrap();
            rows.iter().map(|(_, r)| r.totals.requests).sum::<u64>()
        }
    };
    let base = query(Resolution::Minute);
    let with = |f: &dyn Fn(&mut UsageQuery)| {
        let mut q = base.clone();
        f(&mut q);
        q
    };
    assert_eq!(count(base.clone()).await, 6);
    assert_eq!(count(with(&|q| q.route = Some("api".into()))).await, 3);
    assert_eq!(
        count(with(&|q| q.service = Some("web-svc".into()))).await,
        3
    );
    assert_eq!(count(with(&|q| q.consumer = Some(String::new()))).await, 2);
    assert_eq!(count(with(&|q| q.status_class = Some(2))).await, 4);
    assert_eq!(count(with(&|q| q.to = T0 + 60)).await, 3, "to is exclusive");
    assert_eq!(count(with(&|q| q.from = T0 + 60)).await, 3);
    let hour = query(Resolution::Hour);
    assert!(store.usage(&hour).await.unwrap().is_empty());
}

async fn downsampling_keeps_counts_and_sketches(db: &TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    // Two hours of minutes from two nodes, then the minute of the cutoff's own hour.
    let mut written = Vec::new();
    for (node, base_ms) in [("a", 1), ("b", 50)] {
        let mut rows = Vec::new();
        for m in 0..120 {
            let class = if m % 10 == 0 { 5 } else { 2 };
            rows.push(row(
                T0 + m * 60,
                "api",
                "alice",
                class,
                &[base_ms + m as u64 % 7],
            ));
        }
        rows.push(row(T0 + 2 * 3600, "api", "alice", 2, &[3]));
        store
            .write_usage(Resolution::Minute, node, &rows)
            .await
            .unwrap();
        written.extend(rows);
    }
    // A cutoff in the middle of the third hour moves only the two whole hours before it.
    let moved = store
        .rollup(Resolution::Minute, T0 + 2 * 3600 + 1800)
        .await
        .unwrap();
    assert_eq!(moved, 2 * 120);
    let minutes = store.usage(&query(Resolution::Minute)).await.unwrap();
    assert_eq!(minutes.len(), 2, "the third hour's minutes stay");
    let hours = store.usage(&query(Resolution::Hour)).await.unwrap();
    // Per node: 2 hours x 2 classes.
    assert_eq!(hours.len(), 8, "{hours:?}");
    assert!(hours.iter().all(|(_, r)| r.key.bucket % 3600 == 0));
    let total = |rows: &[(String, UsageRow)]| -> (u64, u64) {
        rows.iter().fold((0, 0), |(n, e), (_, r)| {
            (n + r.totals.requests, e + r.totals.errors)
        })
    };
    assert_eq!(total(&hours), (240, 24));
    // The sketches merged exactly: the hourly rows hold the same buckets as the minutes did.
    let mut before = Sketch::new();
    written
        .iter()
        .filter(|r| r.key.bucket < T0 + 2 * 3600)
        .for_each(|r| before.merge(&r.totals.latency));
    let mut after = Sketch::new();
    hours
        .iter()
        .for_each(|(_, r)| after.merge(&r.totals.latency));
    assert_eq!(after, before);
    // Running it again moves nothing; hours into days keeps the counts too.
    assert_eq!(
        store
            .rollup(Resolution::Minute, T0 + 2 * 3600)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.rollup(Resolution::Hour, T0 + 86_400).await.unwrap(),
        8
    );
    let days = store.usage(&query(Resolution::Day)).await.unwrap();
    assert_eq!(days.len(), 4, "per node and class");
    assert_eq!(total(&days), (240, 24));
    assert!(days.iter().all(|(_, r)| r.key.bucket == T0));
}

async fn retention_deletes_old_rows(db: &TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let rows = [
        row(T0, "api", "", 2, &[1]),
        row(T0 + 86_400, "api", "", 2, &[1]),
    ];
    store
        .write_usage(Resolution::Day, "n", &rows)
        .await
        .unwrap();
    let deleted = store
        .expire_usage(Resolution::Day, T0 + 86_400)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let left = store.usage(&query(Resolution::Day)).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1.key.bucket, T0 + 86_400);
}

async fn heartbeats_list_recent_nodes(db: &TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let node = |id: &str, seen_at: i64| NodeRow {
        id: id.to_owned(),
        version: "0.1.0".to_owned(),
        started_at: 100,
        seen_at,
        config_version: 3,
    };
    store.heartbeat(&node("b", 1_000)).await.unwrap();
    store.heartbeat(&node("a", 500)).await.unwrap();
    store.heartbeat(&node("a", 990)).await.unwrap();
    store.heartbeat(&node("old", 10)).await.unwrap();
    let recent = store.nodes(900).await.unwrap();
    assert_eq!(recent, [node("a", 990), node("b", 1_000)]);
    assert_eq!(store.forget_nodes(900).await.unwrap(), 1);
    assert_eq!(store.nodes(0).await.unwrap().len(), 2);
}
