//! The traffic-control settings: defaults, the shapes a limit may take, and one test per
//! validation rule with its exact `line:column` and path.

mod common;

use common::{assert_has, load, printed, single_error};
use turnpike_config::model::{FailMode, LimitKey, QuotaPeriod, Traffic};

const BASE: &str = "listen: 127.0.0.1:8000
upstreams:
  - name: api
    targets: [{url: \"http://127.0.0.1:9000\"}]
";

fn with_route(extra: &str) -> String {
    format!("{BASE}routes:\n  - name: r\n    upstream: api\n{extra}")
}

#[test]
fn defaults_are_memory_state_fail_open_and_ietf_headers() {
    let t = load(BASE).traffic;
    assert_eq!(t, Traffic::default());
    assert_eq!(t.state, "memory");
    assert_eq!(t.redis_url(), None);
    assert_eq!(t.fail, FailMode::Open);
    assert!(t.headers.ietf && !t.headers.legacy);
    assert_eq!(t.time_zone, "UTC");
}

#[test]
fn limits_plans_and_quotas_load() {
    let yaml = format!(
        "{BASE}traffic:
  state: redis://cache.internal:6379/2
  fail: closed
  time_zone: Europe/Berlin
auth:
  key_secret: s3cret-s3cret-s3cret
plans:
  - name: free
    rate_limits: [{{limit: 10, per: second, burst: 20}}, {{limit: 1000, per: hour}}]
    quota: {{limit: 10000, per: month}}
consumers:
  - name: alice
    plan: free
routes:
  - name: r
    upstream: api
    auth: {{methods: [key_auth]}}
    rate_limit:
      fail: open
      limits: [{{name: fast, limit: 5, per: 10s, by: [consumer, ip, \"header:X-Tenant\", route, credential]}}]
    concurrency: {{limit: 4, by: [consumer], queue: {{size: 10, timeout: 2s}}}}
    cost: {{weight: 3, header: x-cost}}
"
    );
    let cfg = load(&yaml);
    assert_eq!(
        cfg.traffic.redis_url(),
        Some("redis://cache.internal:6379/2")
    );
    let plan = &cfg.plans[0];
    assert_eq!(plan.rate_limits[0].burst(), 20);
    assert_eq!(plan.rate_limits[1].burst(), 1000);
    assert_eq!(plan.rate_limits[1].per.0.as_std().as_secs(), 3600);
    assert_eq!(plan.quota.as_ref().map(|q| q.per), Some(QuotaPeriod::Month));
    let route = &cfg.routes[0];
    let limit = &route.rate_limit.as_ref().unwrap().limits[0];
    assert_eq!(limit.display_name(), "fast");
    assert_eq!(limit.by[2], LimitKey::Header("x-tenant".to_owned()));
    assert_eq!(
        route
            .concurrency
            .as_ref()
            .unwrap()
            .queue
            .as_ref()
            .unwrap()
            .size,
        10
    );
    assert_eq!(route.cost.as_ref().unwrap().weight, 3);
}

#[test]
fn a_period_must_be_a_word_or_a_duration() {
    single_error(
        &with_route("    rate_limit: {limits: [{limit: 5, per: fortnight}]}\n"),
        "8:43",
        "routes[0].rate_limit.limits[0].per",
        "invalid period \"fortnight\": expected `second`, `minute`, `hour`, `day` or a duration",
    );
    single_error(
        &with_route("    rate_limit: {limits: [{limit: 5, per: 100ms}]}\n"),
        "8:43",
        "routes[0].rate_limit.limits[0].per",
        "must be between 1s and 31d",
    );
}

#[test]
fn limits_and_bursts_must_be_positive() {
    let all = printed(&with_route(
        "    rate_limit: {limits: [{limit: 0, per: second, burst: 0}]}\n",
    ));
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_has(
        &all,
        "8:35",
        "routes[0].rate_limit.limits[0].limit",
        "must be at least 1, found 0",
    );
    assert_has(
        &all,
        "8:58",
        "routes[0].rate_limit.limits[0].burst",
        "must be at least 1",
    );
    single_error(
        &with_route("    rate_limit: {limits: []}\n"),
        "8:26",
        "routes[0].rate_limit.limits",
        "needs at least one limit",
    );
}

#[test]
fn unknown_key_parts_and_duplicates_are_rejected() {
    single_error(
        &with_route("    rate_limit: {limits: [{limit: 5, per: second, by: [user]}]}\n"),
        "8:56",
        "routes[0].rate_limit.limits[0].by[0]",
        "unknown key part \"user\": expected `consumer`, `credential`, `ip`, `route` or `header:<name>`",
    );
    single_error(
        &with_route("    rate_limit: {limits: [{limit: 5, per: second, by: [ip, ip]}]}\n"),
        "8:60",
        "routes[0].rate_limit.limits[0].by[1]",
        "listed twice",
    );
    single_error(
        &with_route(
            "    rate_limit: {limits: [{limit: 5, per: second}, {limit: 5, per: second}]}\n",
        ),
        "8:60",
        "routes[0].rate_limit.limits[1].limit",
        "two limits are named `5-per-1s`",
    );
}

#[test]
fn a_consumer_must_name_a_real_plan() {
    let yaml = format!(
        "{BASE}plans:\n  - name: free\n    rate_limits: [{{limit: 1, per: second}}]\nconsumers:\n  - name: alice\n    plan: gold\n"
    );
    single_error(
        &yaml,
        "10:11",
        "consumers[0].plan",
        "unknown plan `gold` (known plans: `free`)",
    );
    let dup = format!("{BASE}plans:\n  - name: free\n  - name: free\n");
    single_error(&dup, "7:11", "plans[1].name", "duplicate plan name `free`");
}

#[test]
fn plan_limits_are_per_consumer() {
    let yaml = format!(
        "{BASE}plans:\n  - name: free\n    rate_limits: [{{limit: 1, per: second, by: [ip]}}]\n"
    );
    single_error(
        &yaml,
        "7:43",
        "plans[0].rate_limits[0].by",
        "plan and consumer limits count per consumer",
    );
}

#[test]
fn quotas_need_authentication_somewhere() {
    let yaml = format!("{BASE}plans:\n  - name: trial\n    quota: {{limit: 100, per: day}}\n");
    single_error(
        &yaml,
        "7:5",
        "plans[0].quota",
        "quotas count per consumer, but no route",
    );
}

#[test]
fn state_timeouts_zones_and_queues_are_checked() {
    let all = printed(&format!(
        "{BASE}traffic:\n  state: memcached://x\n  redis_timeout: 30s\n  time_zone: Mars/Olympus\n  max_keys: 10\n"
    ));
    assert_eq!(all.len(), 4, "{all:#?}");
    assert_has(
        &all,
        "6:10",
        "traffic.state",
        "expected `memory` or a `redis://` or `rediss://` URL",
    );
    assert_has(
        &all,
        "7:18",
        "traffic.redis_timeout",
        "must be between 1ms and 10s",
    );
    assert_has(
        &all,
        "8:14",
        "traffic.time_zone",
        "unknown time zone \"Mars/Olympus\"",
    );
    assert_has(&all, "9:13", "traffic.max_keys", "must be at least 1000");
    let all = printed(&with_route(
        "    concurrency: {limit: 2, queue: {size: 0, timeout: 0s}}\n",
    ));
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_has(
        &all,
        "8:43",
        "routes[0].concurrency.queue.size",
        "must be at least 1, found 0",
    );
    assert_has(
        &all,
        "8:55",
        "routes[0].concurrency.queue.timeout",
        "must be between 1ms and 5m",
    );
}
