//! Route rate limits: GCRA counting, keys, several limits at once, the IETF and legacy
//! headers, and counters that survive a reload.

use std::time::Duration;

use crate::support::{burst, code, count, gateway, get_with};

fn config(rate_limit: &str, traffic: &str) -> String {
    format!(
        "listen: 127.0.0.1:0
{traffic}
upstreams:
  - name: echo
    targets: [{{url: \"{{upstream}}\"}}]
routes:
  - name: limited
    paths: [/limited]
    upstream: echo
    rate_limit:
{rate_limit}
  - name: open
    paths: [/open]
    upstream: echo
"
    )
}

#[tokio::test]
async fn a_limit_allows_its_burst_then_answers_429_with_retry_after() {
    let limit = "      limits: [{limit: 5, per: minute, by: [ip]}]";
    let (gw, up) = gateway(&config(limit, "")).await;
    for left in (0..5).rev() {
        let resp = gw.get("/limited").await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            resp.header("ratelimit-policy"),
            Some("\"5-per-1m\";q=5;w=60")
        );
        let state = resp.header("ratelimit").unwrap();
        assert!(
            state.starts_with(&format!("\"5-per-1m\";r={left};t=")),
            "{state}"
        );
    }
    let resp = gw.get("/limited").await;
    assert_eq!(resp.status, 429);
    assert_eq!(code(&resp), "rate_limited");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    // One request is earned back every 12 s.
    let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!((11..=12).contains(&retry), "Retry-After: {retry}");
    assert!(resp.header("ratelimit").unwrap().contains(";r=0;"));
    assert_eq!(up.hits(), 5, "refused requests never reach the upstream");
    // Other routes are not limited and carry no limit headers.
    let open = gw.get("/open").await;
    assert_eq!(open.status, 200);
    assert!(open.header("ratelimit").is_none());
}

#[tokio::test]
async fn concurrent_callers_get_exactly_the_limit() {
    let limit = "      limits: [{limit: 20, per: hour, by: [ip]}]";
    let (gw, up) = gateway(&config(limit, "")).await;
    let statuses = burst(&gw, "/limited", &[], 60).await;
    assert_eq!(count(&statuses, 200), 20, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 40, "{statuses:?}");
    assert_eq!(up.hits(), 20);
}

#[tokio::test]
async fn each_key_has_its_own_counter() {
    let limit = "      limits: [{limit: 2, per: hour, by: [\"header:x-tenant\"]}]";
    let (gw, _up) = gateway(&config(limit, "")).await;
    let a = [("x-tenant", "a")];
    let b = [("x-tenant", "b")];
    assert_eq!(
        burst(&gw, "/limited", &a, 3)
            .await
            .iter()
            .filter(|s| **s == 200)
            .count(),
        2
    );
    assert_eq!(get_with(&gw, "/limited", &a).await.status, 429);
    assert_eq!(get_with(&gw, "/limited", &b).await.status, 200);
    // Values that would read the same if joined naively still count apart.
    let (x, y) = ([("x-tenant", "a|b")], [("x-tenant", "a")]);
    assert_eq!(get_with(&gw, "/limited", &x).await.status, 200);
    assert_eq!(get_with(&gw, "/limited", &y).await.status, 429);
}

#[tokio::test]
async fn several_limits_apply_together_and_a_refusal_costs_nothing() {
    let limit = "      limits:
        - {name: fast, limit: 2, per: 2s, by: [ip]}
        - {name: hourly, limit: 3, per: hour, by: [ip]}";
    let (gw, _up) = gateway(&config(limit, "")).await;
    assert_eq!(gw.get("/limited").await.status, 200);
    let second = gw.get("/limited").await;
    assert_eq!(second.status, 200);
    assert_eq!(
        second.header("ratelimit-policy"),
        Some("\"fast\";q=2;w=2, \"hourly\";q=3;w=3600")
    );
    // The per-2s limit refuses; the hourly counter must not be charged for it.
    let refused = gw.get("/limited").await;
    assert_eq!(refused.status, 429);
    let state = refused.header("ratelimit").unwrap();
    assert!(state.contains("\"hourly\";r=1;"), "{state}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        gw.get("/limited").await.status,
        200,
        "one request earned back"
    );
    let hourly = gw.get("/limited").await;
    assert_eq!(hourly.status, 429, "now the hourly limit is used up");
    assert!(
        hourly
            .header("ratelimit")
            .unwrap()
            .contains("\"hourly\";r=0;")
    );
}

#[tokio::test]
async fn legacy_headers_report_the_tightest_limit_when_configured() {
    let limit = "      limits:
        - {limit: 100, per: second, by: [ip]}
        - {limit: 10, per: day, by: [ip]}";
    let traffic = "traffic:\n  headers: {ietf: false, legacy: true}";
    let (gw, _up) = gateway(&config(limit, traffic)).await;
    let resp = gw.get("/limited").await;
    assert_eq!(resp.status, 200);
    assert!(resp.header("ratelimit").is_none());
    assert_eq!(resp.header("x-ratelimit-limit"), Some("10"));
    assert_eq!(resp.header("x-ratelimit-remaining"), Some("9"));
    let reset: u64 = resp.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!((8_600..=8_640).contains(&reset), "{reset}");
}

#[tokio::test]
async fn a_reload_keeps_the_counters() {
    let limit = "      limits: [{limit: 2, per: hour, by: [ip]}]";
    let up = turnpike_testkit::MockUpstream::echo().await;
    let yaml = config(limit, "").replace("{upstream}", &up.url());
    let gw = turnpike_testkit::TestGateway::start(&yaml).await;
    assert_eq!(burst(&gw, "/limited", &[], 2).await, vec![200, 200]);
    let changed = yaml.replace("name: open", "name: still-open");
    let cfg =
        turnpike_config::load_str(&changed, std::path::Path::new("t.yaml"), &|_| None).unwrap();
    gw.gateway.reload(&cfg).unwrap();
    assert_eq!(gw.get("/limited").await.status, 429);
    assert_eq!(gw.get("/open").await.status, 200);
}
