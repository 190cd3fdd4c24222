//! The `lifecycle` setting of routes and upstreams: what loads, and one test per
//! validation rule with its exact `line:column` and path.

mod common;

use common::{assert_has, load, printed, single_error};
use turnpike_config::model::LifecycleState;

const BASE: &str = "listen: 127.0.0.1:8000
upstreams:
  - name: api
    targets: [{url: \"http://127.0.0.1:9000\"}]
routes:
  - name: r
    upstream: api
";

#[test]
fn a_full_lifecycle_loads() {
    let yaml = format!(
        "{BASE}    lifecycle: {{state: deprecated, deprecated_at: \"2026-06-01T00:00:00Z\", sunset: \"2027-01-01T00:00:00Z\", link: \"https://docs.example.com\"}}\n"
    );
    let l = load(&yaml).routes[0].lifecycle.clone().unwrap();
    assert_eq!(l.state, LifecycleState::Deprecated);
    assert_eq!(l.sunset.as_deref(), Some("2027-01-01T00:00:00Z"));
}

#[test]
fn deprecation_needs_a_date() {
    single_error(
        &format!("{BASE}    lifecycle: {{state: deprecated}}\n"),
        "8:24",
        "routes[0].lifecycle.state",
        "a deprecated API needs `deprecated_at`",
    );
}

#[test]
fn dates_must_parse_and_come_in_order() {
    let all = printed(&format!(
        "{BASE}    lifecycle: {{state: retired, deprecated_at: \"2027-01-01T00:00:00Z\", sunset: \"2026-01-01T00:00:00Z\", link: \"ftp://x\"}}\n"
    ));
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_has(
        &all,
        "8:80",
        "routes[0].lifecycle.sunset",
        "must not be before `deprecated_at`",
    );
    assert_has(
        &all,
        "8:110",
        "routes[0].lifecycle.link",
        "expected an absolute http(s) URL",
    );
    single_error(
        &format!("{BASE}    lifecycle: {{state: published, sunset: next-year}}\n"),
        "8:43",
        "routes[0].lifecycle.sunset",
        "invalid instant \"next-year\": expected RFC 3339",
    );
    single_error(
        &format!("{BASE}    lifecycle: {{state: sunsetting}}\n"),
        "8:24",
        "routes[0].lifecycle.state",
        "unknown variant `sunsetting`",
    );
}
