//! Plans and quotas: limits per consumer on every route, per-consumer overrides, calendar
//! quotas with their reset time, route costs, and quotas that survive a restart.

use turnpike_testkit::{MockUpstream, Reply, TestGateway};

use crate::support::{Caller, code, gateway, get_as, key_auth_section};

fn config(consumers: &str, plans: &str, route_extra: &str, traffic: &str) -> String {
    format!(
        "listen: 127.0.0.1:0
{auth}{traffic}
plans:
{plans}
consumers:
{consumers}
upstreams:
  - name: echo
    targets: [{{url: \"{{upstream}}\"}}]
routes:
  - name: api
    paths: [/api]
    upstream: echo
    auth: {{methods: [key_auth]}}
{route_extra}
",
        auth = key_auth_section()
    )
}

const PLANS: &str = "  - name: free
    rate_limits: [{limit: 2, per: hour}]
  - name: pro
    rate_limits: [{limit: 5, per: hour}]
";

#[tokio::test]
async fn each_consumer_gets_what_its_plan_allows() {
    let (alice, bob, carol) = (
        Caller::new("alice"),
        Caller::new("bob"),
        Caller::new("carol"),
    );
    let consumers = [
        alice.yaml("    plan: free\n"),
        bob.yaml("    plan: pro\n"),
        // Her own limit replaces the plan's.
        carol.yaml("    plan: free\n    rate_limits: [{limit: 3, per: hour}]\n"),
    ]
    .concat();
    let (gw, _up) = gateway(&config(&consumers, PLANS, "", "")).await;
    for (caller, allowed) in [(&alice, 2), (&bob, 5), (&carol, 3)] {
        for i in 0..allowed {
            let resp = get_as(&gw, "/api", caller).await;
            assert_eq!(
                resp.status,
                200,
                "{} call {i}: {}",
                caller.name,
                resp.text()
            );
        }
        let resp = get_as(&gw, "/api", caller).await;
        assert_eq!(resp.status, 429, "{} over its plan", caller.name);
        assert_eq!(code(&resp), "rate_limited");
    }
    let policy = get_as(&gw, "/api", &bob).await;
    assert_eq!(
        policy.header("ratelimit-policy"),
        Some("\"5-per-1h\";q=5;w=3600")
    );
}

#[tokio::test]
async fn a_used_up_quota_says_when_it_resets() {
    let alice = Caller::new("alice");
    let plans = "  - name: trial\n    quota: {limit: 3, per: day}\n";
    let dir = tempfile::tempdir().unwrap();
    let traffic = format!(
        "traffic:\n  quota_file: {}\n",
        dir.path().join("q.json").display()
    );
    let yaml = config(&alice.yaml("    plan: trial\n"), plans, "", &traffic);
    let (gw, up) = gateway(&yaml).await;
    for left in (0..3).rev() {
        let resp = get_as(&gw, "/api", &alice).await;
        assert_eq!(resp.status, 200);
        let state = resp.header("ratelimit").unwrap();
        assert!(
            state.starts_with(&format!("\"quota-day\";r={left};t=")),
            "{state}"
        );
    }
    let resp = get_as(&gw, "/api", &alice).await;
    assert_eq!(resp.status, 429);
    assert_eq!(code(&resp), "quota_exceeded");
    let message = resp.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("resets at") && message.contains("T00:00:00Z"),
        "{message}"
    );
    let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn quotas_survive_a_restart() {
    let alice = Caller::new("alice");
    let plans = "  - name: trial\n    quota: {limit: 3, per: month}\n";
    let dir = tempfile::tempdir().unwrap();
    let traffic = format!(
        "traffic:\n  quota_file: {}\n",
        dir.path().join("q.json").display()
    );
    let up = MockUpstream::echo().await;
    let yaml = config(&alice.yaml("    plan: trial\n"), plans, "", &traffic)
        .replace("{upstream}", &up.url());
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(get_as(&gw, "/api", &alice).await.status, 200);
    assert_eq!(get_as(&gw, "/api", &alice).await.status, 200);
    gw.gateway.shutdown().await;
    let gw = TestGateway::start(&yaml).await;
    let resp = get_as(&gw, "/api", &alice).await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("ratelimit").unwrap().contains("r=0"),
        "{:?}",
        resp.header("ratelimit")
    );
    assert_eq!(get_as(&gw, "/api", &alice).await.status, 429);
}

#[tokio::test]
async fn routes_cost_their_weight_and_what_the_upstream_reports() {
    let alice = Caller::new("alice");
    let plans = "  - name: metered\n    quota: {limit: 10, per: day}\n";
    let dir = tempfile::tempdir().unwrap();
    let traffic = format!(
        "traffic:\n  quota_file: {}\n",
        dir.path().join("q.json").display()
    );
    let route = "    cost: {weight: 2, header: x-request-cost}";
    let up = MockUpstream::start(|_| Reply::ok("done").header("x-request-cost", "5")).await;
    let yaml = config(&alice.yaml("    plan: metered\n"), plans, route, &traffic)
        .replace("{upstream}", &up.url());
    let gw = TestGateway::start(&yaml).await;
    // 2 up front, then 3 more once the upstream says the call cost 5.
    let first = get_as(&gw, "/api", &alice).await;
    assert_eq!(first.status, 200);
    assert!(first.header("ratelimit").unwrap().contains("r=8;"));
    let mut seen = String::new();
    for _ in 0..100 {
        let resp = get_as(&gw, "/api", &alice).await;
        seen = resp.header("ratelimit").unwrap_or_default().to_owned();
        if resp.status == 429 {
            break;
        }
    }
    // 10 = 5 + 5: the second call was allowed (5 + 2 <= 10), the third was not.
    assert_eq!(up.hits(), 2, "{seen}");
}
