//! Validation of the slow-client settings and `server.protection` (DDoS and abuse
//! protection): each test asserts the exact `line:column`, the path and what to do.

mod common;

use common::{assert_has, load, printed, single_error, with_route_extra};
use turnpike_config::model::{Priority, Server};
use turnpike_config::units::Duration;

/// The minimal config with a `server:` block made of `server` (indented by two spaces);
/// `server` starts on line 3.
fn with_server(server: &str) -> String {
    format!(
        "listen: 127.0.0.1:8000
server:
{server}
upstreams:
  - name: backend
    targets:
      - url: http://127.0.0.1:9000
routes:
  - name: everything
    paths: [\"/\"]
    upstream: backend
"
    )
}

#[test]
fn everything_is_off_by_default() {
    let server = Server::default();
    assert!(server.protection.is_empty());
    assert_eq!(server.body_read_timeout, Duration::from_secs(30));
    assert_eq!(server.min_body_rate, None);
    let config = load(&with_route_extra(""));
    assert_eq!(config.routes[0].priority, Priority::Normal);
}

#[test]
fn a_full_protection_block_loads() {
    let config = load(&with_server(
        "  body_read_timeout: 10s
  min_body_rate: {bytes_per_second: 1KiB, grace: 5s}
  protection:
    max_connections_per_ip: 100
    new_connections_per_ip: {limit: 20, per: 1s}
    load_shedding: {max_in_flight: 1000, max_latency: 500ms}
    bans:
      threshold: 50
      within: 10s
      ban_for: 5m
      never: [10.0.0.0/8, \"::1/128\"]",
    ));
    let p = &config.server.protection;
    assert_eq!(p.max_connections_per_ip, Some(100));
    assert_eq!(p.new_connections_per_ip.as_ref().map(|r| r.limit), Some(20));
    let shed = p
        .load_shedding
        .as_ref()
        .map(|s| (s.max_in_flight, s.retry_after));
    assert_eq!(shed, Some((1000, Duration::from_secs(1))));
    assert_eq!(p.bans.as_ref().map(|b| b.never.len()), Some(2));
    let rate = config
        .server
        .min_body_rate
        .as_ref()
        .map(|r| r.bytes_per_second.bytes());
    assert_eq!(rate, Some(1024));
    let low = load(&with_route_extra("    priority: low\n"));
    assert_eq!(low.routes[0].priority, Priority::Low);
}

#[test]
fn zero_limits_are_refused() {
    let all = printed(&with_server(
        "  body_read_timeout: 0s
  min_body_rate: {bytes_per_second: 0, grace: 0s}
  protection:
    max_connections_per_ip: 0
    new_connections_per_ip: {limit: 0, per: 0s}",
    ));
    assert_eq!(all.len(), 6, "{}", all.join("\n"));
    assert_has(
        &all,
        "3:22",
        "server.body_read_timeout",
        "greater than zero",
    );
    assert_has(
        &all,
        "4:37",
        "server.min_body_rate.bytes_per_second",
        "at least 1 byte per second",
    );
    assert_has(
        &all,
        "4:47",
        "server.min_body_rate.grace",
        "greater than zero",
    );
    assert_has(
        &all,
        "6:29",
        "server.protection.max_connections_per_ip",
        "must be at least 1, found 0",
    );
    assert_has(
        &all,
        "7:37",
        "server.protection.new_connections_per_ip.limit",
        "must be at least 1",
    );
    assert_has(
        &all,
        "7:45",
        "server.protection.new_connections_per_ip.per",
        "greater than zero",
    );
}

#[test]
fn thresholds_out_of_range_are_refused() {
    let all = printed(&with_server(
        "  protection:
    load_shedding: {max_in_flight: 0, max_latency: 0ms, retry_after: 500ms}
    bans: {threshold: 2000000, within: 0s, ban_for: 0s}",
    ));
    assert_eq!(all.len(), 6, "{}", all.join("\n"));
    assert_has(
        &all,
        "4:36",
        "server.protection.load_shedding.max_in_flight",
        "must be at least 1, found 0",
    );
    assert_has(
        &all,
        "4:52",
        "server.protection.load_shedding.max_latency",
        "greater than zero",
    );
    assert_has(
        &all,
        "4:70",
        "server.protection.load_shedding.retry_after",
        "at least 1s",
    );
    assert_has(
        &all,
        "5:23",
        "server.protection.bans.threshold",
        "must be at most 1000000, found 2000000",
    );
    assert_has(
        &all,
        "5:40",
        "server.protection.bans.within",
        "greater than zero",
    );
    assert_has(
        &all,
        "5:53",
        "server.protection.bans.ban_for",
        "greater than zero",
    );
}

#[test]
fn a_bad_cidr_in_never_is_located() {
    single_error(
        &with_server("  protection:\n    bans:\n      never: [10.0.0.0/8, 300.1.0.0/16]"),
        "5:27",
        "server.protection.bans.never[1]",
        "invalid network \"300.1.0.0/16\"",
    );
}

#[test]
fn unknown_keys_and_priorities_are_refused() {
    single_error(
        &with_server("  protection:\n    max_conections_per_ip: 5"),
        "4:5",
        "server.protection.max_conections_per_ip",
        "unknown field `max_conections_per_ip`",
    );
    single_error(
        &with_route_extra("    priority: urgent\n"),
        "10:15",
        "routes[0].priority",
        "unknown variant `urgent`, expected one of `low`, `normal`, `high`",
    );
}
