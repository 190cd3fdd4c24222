//! The `analytics:` section: defaults, every key, and one test per validation rule with
//! its exact `line:column` and path.

mod common;

use common::{assert_has, load, printed, single_error};
use turnpike_config::model::{Analytics, Retention};
use turnpike_config::units::Duration;

const BASE: &str = "listen: 127.0.0.1:8000\n";

#[test]
fn absent_or_empty_section_takes_the_defaults() {
    for yaml in [
        BASE.to_owned(),
        format!("{BASE}analytics:\n"),
        format!("{BASE}analytics: {{}}\n"),
    ] {
        assert_eq!(load(&yaml).analytics, Analytics::default(), "{yaml}");
    }
    let a = Analytics::default();
    assert!(a.enabled, "on wherever there is a store");
    assert_eq!(
        (a.node_id, a.flush_interval),
        (None, Duration::from_secs(5))
    );
    let r = Retention::default();
    assert_eq!(
        (r.minute, r.hour, r.day),
        (
            Duration::from_secs(2 * 86_400),
            Duration::from_secs(90 * 86_400),
            Duration::from_secs(730 * 86_400)
        )
    );
}

#[test]
fn every_key_loads() {
    let yaml = format!(
        "{BASE}analytics:
  enabled: false
  node_id: gw-1
  flush_interval: 2s
  retention: {{minute: 6h, hour: 30d, day: 365d}}
"
    );
    let a = load(&yaml).analytics;
    assert!(!a.enabled);
    assert_eq!(a.node_id.as_deref(), Some("gw-1"));
    assert_eq!(a.flush_interval, Duration::from_secs(2));
    assert_eq!(a.retention.minute, Duration::from_secs(6 * 3600));
    assert_eq!(a.retention.hour, Duration::from_secs(30 * 86_400));
    assert_eq!(a.retention.day, Duration::from_secs(365 * 86_400));
}

#[test]
fn bad_values_are_located() {
    let yaml = format!(
        "{BASE}analytics:
  node_id: \"gw 1\"
  flush_interval: 2m
  retention:
    minute: 30m
    hour: 12h
    day: 12h
"
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 5, "{}", all.join("\n"));
    assert_has(
        &all,
        "3:12",
        "analytics.node_id",
        "without spaces or control characters",
    );
    assert_has(
        &all,
        "4:19",
        "analytics.flush_interval",
        "must be between 100ms and 60s",
    );
    assert_has(
        &all,
        "6:13",
        "analytics.retention.minute",
        "must be at least 1h",
    );
    assert_has(
        &all,
        "7:11",
        "analytics.retention.hour",
        "must be at least 1d",
    );
    assert_has(
        &all,
        "8:10",
        "analytics.retention.day",
        "must be longer than `retention.hour`",
    );
}

#[test]
fn unknown_keys_and_types_are_reported() {
    single_error(
        &format!("{BASE}analytics:\n  retension: {{minute: 1d}}\n"),
        "3:3",
        "analytics.retension",
        "unknown field `retension`",
    );
    single_error(
        &format!("{BASE}analytics:\n  flush_interval: 5\n"),
        "3:19",
        "analytics.flush_interval",
        "invalid",
    );
    single_error(
        &format!("{BASE}analytics:\n  node_id: \"\"\n"),
        "3:12",
        "analytics.node_id",
        "must be 1 to 200 bytes",
    );
}
