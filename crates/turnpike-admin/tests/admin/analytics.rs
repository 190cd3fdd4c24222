//! The analytics API and the status endpoint over a real SQLite store: known traffic goes
//! through the analytics worker (the in-memory rollups drained to the store), then time
//! series, top-N and a consumer's usage must count it exactly and give percentiles within
//! the sketch's 1%; two nodes' rows merge; bad parameters get 400s naming the parameter.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use turnpike_admin::analytics::worker::Worker;
use turnpike_admin::{AdminOptions, AdminState};
use turnpike_analytics::usage::{Request, minute_of};
use turnpike_analytics::{Sketch, Usage, UsageKey, UsageRow, UsageTotals};
use turnpike_store::{NodeRow, Resolution};

use crate::support::{Admin, assert_error, base_config, detail_paths};

fn record(usage: &Usage, minute: i64, who: (&str, Option<&str>), status: u16, n: u32, ms: u64) {
    for _ in 0..n {
        usage.record_at(
            minute,
            &Request {
                route: who.0,
                service: &format!("{}-svc", who.0),
                consumer: who.1,
                status,
                request_bytes: 10,
                response_bytes: 100,
                total: Duration::from_millis(ms),
            },
        );
    }
}

/// A second admin state over the same store, for the worker (as `serve` does).
async fn state(admin: &Admin) -> AdminState {
    let options = AdminOptions {
        base: base_config(),
        bootstrap_token: None,
        insecure_no_auth: false,
    };
    AdminState::new(admin.store.clone(), options).await.unwrap()
}

fn within(got: &Value, exact: f64) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {got}"));
    assert!(
        (got - exact).abs() <= exact * 0.01 + 1e-6,
        "{got} vs {exact}"
    );
}

/// Polls `path` until `check` holds (the worker writes asynchronously).
async fn until(admin: &Admin, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let r = admin.get(path).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        if check(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never satisfied the check");
}

fn requests(series: &Value) -> Vec<u64> {
    series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn known_traffic_is_counted_exactly() {
    let admin = Admin::start().await;
    let usage = Arc::new(Usage::new());
    usage.set_enabled(true);
    let now = minute_of(SystemTime::now());
    let (m1, m2) = (now - 120, now - 60);
    record(&usage, m1, ("api", Some("alice")), 200, 30, 10);
    record(&usage, m1, ("api", Some("alice")), 500, 2, 20);
    record(&usage, m2, ("web", None), 404, 5, 1);
    record(&usage, m2, ("web", None), 200, 10, 100);
    record(&usage, m2, ("api", Some("bob")), 200, 3, 1000);
    let worker = Worker::start(state(&admin).await, usage.clone());

    let range = format!("from={m1}&to={now}&interval=minute");
    let body = until(
        &admin,
        &format!("/api/v1/analytics/timeseries?{range}"),
        |b| requests(&b["series"][0]) == [32, 18],
    )
    .await;
    let points = &body["series"][0]["points"];
    assert_eq!(body["interval"], "minute");
    assert_eq!(points[0]["errors"], 2);
    assert_eq!(points[0]["request_bytes"], 320);
    assert_eq!(points[0]["response_bytes"], 3200);
    within(&points[0]["p50_ms"], 10.0);
    within(&points[0]["p99_ms"], 20.0);
    within(&points[1]["p50_ms"], 100.0);
    within(&points[1]["p99_ms"], 1000.0);

    let by_route = admin
        .get(&format!(
            "/api/v1/analytics/timeseries?{range}&group_by=route"
        ))
        .await
        .json();
    let groups: Vec<_> = by_route["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["group"].clone())
        .collect();
    assert_eq!(groups, ["api", "web"]);
    assert_eq!(requests(&by_route["series"][0]), [32, 3]);
    assert_eq!(requests(&by_route["series"][1]), [0, 15]);
    let a = &admin;
    let filtered = |q: &str| {
        let path = format!("/api/v1/analytics/timeseries?{range}&{q}");
        async move { requests(&a.get(&path).await.json()["series"][0]) }
    };
    assert_eq!(filtered("consumer=alice").await, [32, 0]);
    assert_eq!(
        filtered("consumer=").await,
        [0, 15],
        "requests without a consumer"
    );
    assert_eq!(filtered("status_class=5xx").await, [2, 0]);
    assert_eq!(filtered("service=web-svc&status_class=4").await, [0, 5]);

    // The current minute is written at shutdown.
    record(&usage, now, ("api", Some("alice")), 200, 7, 5);
    worker.shutdown().await;
    let hour = format!("from={m1}&to={}&interval=hour", now + 60);
    let body = admin
        .get(&format!("/api/v1/analytics/timeseries?{hour}"))
        .await
        .json();
    let total: u64 = requests(&body["series"][0]).iter().sum();
    assert_eq!(total, 57);

    let top = |q: &str| {
        let path = format!("/api/v1/analytics/top?from={m1}&to={}&{q}", now + 60);
        async move { a.get(&path).await.json() }
    };
    let names = |b: &Value| -> Vec<String> {
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let routes = top("by=route&metric=requests").await;
    assert_eq!(names(&routes), ["api", "web"]);
    assert_eq!(routes["items"][0]["requests"], 42);
    assert_eq!(routes["items"][1]["requests"], 15);
    assert_eq!(names(&top("by=consumer").await), ["alice", "bob"]);
    assert_eq!(names(&top("by=route&metric=errors&limit=1").await), ["api"]);
    let p99 = top("by=consumer&metric=p99").await;
    assert_eq!(names(&p99), ["bob", "alice"]);
    within(&p99["items"][0]["p99_ms"], 1000.0);
    assert_eq!(
        names(&top("by=service&metric=bytes").await),
        ["api-svc", "web-svc"]
    );

    let alice = admin
        .get(&format!(
            "/api/v1/consumers/alice/usage?from={m1}&to={}&interval=hour",
            now + 60
        ))
        .await;
    assert_eq!(alice.status, 200, "{}", alice.text());
    let alice: u64 = requests(&alice.json()["series"][0]).iter().sum();
    assert_eq!(alice, 39);
}

fn stored(bucket: i64, ms: &[u64]) -> UsageRow {
    let mut latency = Sketch::new();
    ms.iter()
        .for_each(|m| latency.add(Duration::from_millis(*m)));
    UsageRow {
        key: UsageKey {
            bucket,
            route: "api".into(),
            service: "api-svc".into(),
            consumer: String::new(),
            status_class: 2,
        },
        totals: UsageTotals {
            requests: ms.len() as u64,
            latency,
            ..UsageTotals::default()
        },
    }
}

#[tokio::test]
async fn two_nodes_rows_are_merged() {
    let admin = Admin::start().await;
    let minute = minute_of(SystemTime::now()) - 60;
    let fast: Vec<u64> = (1..=99).collect();
    admin
        .store
        .write_usage(Resolution::Minute, "a", &[stored(minute, &fast)])
        .await
        .unwrap();
    admin
        .store
        .write_usage(Resolution::Minute, "b", &[stored(minute, &[5000])])
        .await
        .unwrap();
    let body = admin
        .get(&format!(
            "/api/v1/analytics/timeseries?from={minute}&to={}",
            minute + 60
        ))
        .await
        .json();
    let point = &body["series"][0]["points"][0];
    assert_eq!(point["requests"], 100);
    within(&point["p50_ms"], 50.0);
    within(&point["p99_ms"], 99.0);
    let top = admin
        .get(&format!("/api/v1/analytics/top?from={minute}&metric=p99"))
        .await
        .json();
    within(&top["items"][0]["p99_ms"], 99.0);
}

#[tokio::test]
async fn bad_parameters_are_400_with_their_names() {
    let admin = Admin::start().await;
    let cases = [
        (
            "/api/v1/analytics/timeseries?interval=week",
            vec!["interval"],
        ),
        (
            "/api/v1/analytics/timeseries?from=yesterday&to=2",
            vec!["from"],
        ),
        ("/api/v1/analytics/timeseries?from=10&to=5", vec!["from"]),
        (
            "/api/v1/analytics/timeseries?status_class=7xx&group_by=path",
            vec!["status_class", "group_by"],
        ),
        (
            "/api/v1/analytics/top?by=status_class&metric=avg&limit=0",
            vec!["by", "metric", "limit"],
        ),
        (
            "/api/v1/consumers/alice/usage?group_by=consumer",
            vec!["group_by"],
        ),
    ];
    for (path, expected) in cases {
        let body = assert_error(&admin.get(path).await, 400, "invalid_query");
        assert_eq!(detail_paths(&body), expected, "{path}: {body}");
    }
    let old = "/api/v1/analytics/timeseries?from=1000&to=2000&interval=minute";
    let body = assert_error(&admin.get(old).await, 400, "invalid_query");
    assert!(body.to_string().contains("use interval=hour"), "{body}");
    let typo = assert_error(
        &admin.get("/api/v1/analytics/top?metrc=p99").await,
        400,
        "invalid_query",
    );
    assert!(typo.to_string().contains("metrc"), "{typo}");
}

#[tokio::test]
async fn status_shows_this_node_and_recent_peers() {
    let admin = Admin::start().await;
    let worker = Worker::start(state(&admin).await, Arc::new(Usage::new()));
    let now = jiff::Timestamp::now().as_second();
    let peer = |id: &str, seen_at: i64| NodeRow {
        id: id.to_owned(),
        version: "9.9.9".to_owned(),
        started_at: now - 100,
        seen_at,
        config_version: 0,
    };
    admin
        .store
        .heartbeat(&peer("other:8000", now))
        .await
        .unwrap();
    admin
        .store
        .heartbeat(&peer("gone:8000", now - 3600))
        .await
        .unwrap();
    let reader = admin.token_with("read_only").await;
    let r = admin
        .send(http::Method::GET, "/api/v1/status", Some(&reader), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let node = body["node_id"].as_str().unwrap().to_owned();
    assert!(node.ends_with(":8000"), "{node}");
    assert!(body["uptime_seconds"].as_u64().is_some());
    assert!(body["started_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["config_version"], 0);
    assert_eq!(body["store"]["backend"], "sqlite");
    assert_eq!(body["store"]["reachable"], true);
    assert_eq!(body["analytics_enabled"], true);
    // This node's heartbeat arrives with the worker's first tick.
    let body = until(&admin, "/api/v1/status", |b| {
        b["peers"].as_array().unwrap().len() == 2
    })
    .await;
    let peers: Vec<(&str, bool)> = body["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["node_id"].as_str().unwrap(),
                p["this_node"].as_bool().unwrap(),
            )
        })
        .collect();
    let mut expected = vec![("other:8000", false), (node.as_str(), true)];
    expected.sort();
    assert_eq!(peers, expected);
    worker.shutdown().await;
    let r = admin
        .send(http::Method::GET, "/api/v1/status", None, &[], "")
        .await;
    assert_error(&r, 401, "unauthorized");
}
