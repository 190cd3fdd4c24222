//! One test per validation rule for listeners, server and upstreams (routes are in
//! `validation_routes.rs`): each asserts the exact `line:column`, the path and the
//! part of the message that tells the user what to do.

mod common;

use common::{assert_has, load, printed, single_error, with_upstream_extra};

// ---- listeners -------------------------------------------------------------------------

#[test]
fn a_listener_is_required() {
    let yaml = "upstreams: []\nroutes: []\n";
    single_error(
        yaml,
        "1:1",
        "",
        "no listener configured: add `listen: 127.0.0.1:8000`",
    );
}

#[test]
fn listener_names_are_present_and_unique() {
    let yaml = r#"listeners:
  - name: public
    address: 127.0.0.1:8000
  - name: ""
    address: 127.0.0.1:8001
  - name: public
    address: 127.0.0.1:8002
"#;
    let all = printed(yaml);
    assert_eq!(all.len(), 2, "{}", all.join("\n"));
    assert_has(
        &all,
        "4:11",
        "listeners[1].name",
        "listener name must not be empty",
    );
    assert_has(
        &all,
        "6:11",
        "listeners[2].name",
        "duplicate listener name `public` (first defined at line 2)",
    );
}

#[test]
fn listeners_cannot_share_an_address() {
    let yaml = r#"listen: 127.0.0.1:8000
listeners:
  - name: a
    address: 127.0.0.1:8000
  - name: b
    address: 0.0.0.0:9000
  - name: c
    address: 127.0.0.1:9000
  - name: d
    address: "[::1]:9000"
"#;
    let all = printed(yaml);
    assert_eq!(all.len(), 2, "{}", all.join("\n"));
    assert_has(
        &all,
        "4:14",
        "listeners[0].address",
        "address 127.0.0.1:8000 is already used by `listen` (line 1)",
    );
    assert_has(
        &all,
        "8:14",
        "listeners[2].address",
        "overlaps 0.0.0.0:9000, used by listener `b` (line 6)",
    );
    // Port 0 asks the OS for a free port, so any number of listeners may use it.
    load("listen: 127.0.0.1:0\nlisteners:\n  - {name: a, address: \"127.0.0.1:0\"}\n");
}

#[test]
fn tls_needs_a_certificate() {
    let yaml =
        "listeners:\n  - name: tls\n    address: 0.0.0.0:8443\n    tls:\n      certificates: []\n";
    single_error(
        yaml,
        "5:21",
        "listeners[0].tls.certificates",
        "TLS needs at least one certificate",
    );
    let yaml = "listeners:\n  - name: tls\n    address: 0.0.0.0:8443\n    tls:\n      certificates:\n        - {cert: a.pem, key: a.key, hosts: [\"a.com:443\"]}\n";
    single_error(
        yaml,
        "6:45",
        "listeners[0].tls.certificates[0].hosts[0]",
        "must not include a port",
    );
}

// ---- server ----------------------------------------------------------------------------

#[test]
fn server_limits_and_timeouts() {
    let yaml = r#"listen: 127.0.0.1:8000
server:
  max_headers: 0
  max_uri_length: 15
  max_header_bytes: 0
  header_read_timeout: 0s
  request_id_header: "x request id"
"#;
    let all = printed(yaml);
    assert_eq!(all.len(), 5, "{}", all.join("\n"));
    assert_has(
        &all,
        "3:16",
        "server.max_headers",
        "must be at least 1, found 0",
    );
    assert_has(
        &all,
        "4:19",
        "server.max_uri_length",
        "must be at least 16, found 15",
    );
    assert_has(
        &all,
        "5:21",
        "server.max_header_bytes",
        "must be at least 8KiB, found 0 bytes",
    );
    assert_has(
        &all,
        "6:24",
        "server.header_read_timeout",
        "must be greater than zero",
    );
    assert_has(
        &all,
        "7:22",
        "server.request_id_header",
        "invalid header name \"x request id\"",
    );
}

// ---- upstreams -------------------------------------------------------------------------

#[test]
fn upstream_names_are_present_and_unique() {
    let yaml = r#"listen: 127.0.0.1:8000
upstreams:
  - name: api
    targets: [{url: "http://127.0.0.1:1"}]
  - name: api
    targets: [{url: "http://127.0.0.1:2"}]
  - name: ""
    targets: [{url: "http://127.0.0.1:3"}]
"#;
    let all = printed(yaml);
    assert_eq!(all.len(), 2, "{}", all.join("\n"));
    assert_has(
        &all,
        "5:11",
        "upstreams[1].name",
        "duplicate upstream name `api` (first defined at line 3)",
    );
    assert_has(
        &all,
        "7:11",
        "upstreams[2].name",
        "upstream name must not be empty",
    );
}

#[test]
fn upstream_needs_targets() {
    let yaml = "listen: 127.0.0.1:8000\nupstreams:\n  - name: api\n    targets: []\n";
    single_error(
        yaml,
        "4:14",
        "upstreams[0].targets",
        "upstream `api` has no targets: add at least one `- url: http://host:port`",
    );
}

#[test]
fn target_urls_are_scheme_host_and_port_only() {
    let cases = [
        (
            "127.0.0.1:9000",
            "expected http://host:port or https://host:port",
        ),
        (
            "ftp://files:21",
            "expected http://host:port or https://host:port",
        ),
        ("http://backend", "has no port"),
        ("http://backend:0", "invalid port"),
        ("http://backend:80/api", "must not have a path (\"/api\")"),
        ("http://backend:80/?x=1", "must not have a query"),
        ("http://user:pw@backend:80", "must not contain credentials"),
        ("http://bad_host:80", "has an invalid host"),
    ];
    for (url, fragment) in cases {
        let yaml = format!(
            "listen: 127.0.0.1:8000\nupstreams:\n  - name: api\n    targets:\n      - url: \"{url}\"\n"
        );
        single_error(&yaml, "5:14", "upstreams[0].targets[0].url", fragment);
    }
    let yaml = "listen: 127.0.0.1:8000\nupstreams:\n  - name: api\n    targets:\n      - url: \"http://[::1]:80/\"\n";
    load(yaml);
}

#[test]
fn target_weight_is_1_to_10000() {
    let yaml = with_upstream_extra("").replace("9000\n", "9000\n        weight: 0\n      - url: http://127.0.0.1:9001\n        weight: 10001\n      - url: http://127.0.0.1:9002\n        weight: 10000\n");
    let all = printed(&yaml);
    assert_eq!(all.len(), 2, "{}", all.join("\n"));
    assert_has(
        &all,
        "6:17",
        "upstreams[0].targets[0].weight",
        "weight must be 1 to 10000, found 0",
    );
    assert_has(
        &all,
        "8:17",
        "upstreams[0].targets[1].weight",
        "weight must be 1 to 10000, found 10001",
    );
}

#[test]
fn consistent_hash_and_hash_on_go_together() {
    let yaml = with_upstream_extra("    balancer: consistent_hash\n");
    single_error(
        &yaml,
        "6:15",
        "upstreams[0].balancer",
        "balancer `consistent_hash` needs `hash_on`",
    );
    let yaml = with_upstream_extra("    hash_on: client_ip\n");
    single_error(
        &yaml,
        "6:14",
        "upstreams[0].hash_on",
        "`hash_on` only applies to `balancer: consistent_hash`",
    );
    let yaml =
        with_upstream_extra("    balancer: consistent_hash\n    hash_on: {header: \"x user\"}\n");
    single_error(
        &yaml,
        "7:23",
        "upstreams[0].hash_on.header",
        "invalid header name \"x user\"",
    );
    load(&with_upstream_extra(
        "    balancer: consistent_hash\n    hash_on: {cookie: session}\n",
    ));
}

#[test]
fn active_health_checks() {
    let extra = r#"    health:
      active:
        path: healthz
        healthy_threshold: 0
        unhealthy_threshold: 0
        expected_statuses: [200, 99, 600]
        interval: 0s
"#;
    let all = printed(&with_upstream_extra(extra));
    assert_eq!(all.len(), 6, "{}", all.join("\n"));
    assert_has(
        &all,
        "8:15",
        "upstreams[0].health.active.path",
        "health check path \"healthz\" must start with `/`",
    );
    assert_has(
        &all,
        "9:28",
        "upstreams[0].health.active.healthy_threshold",
        "must be at least 1, found 0",
    );
    assert_has(
        &all,
        "10:30",
        "upstreams[0].health.active.unhealthy_threshold",
        "must be at least 1, found 0",
    );
    assert_has(
        &all,
        "11:34",
        "upstreams[0].health.active.expected_statuses[1]",
        "status 99 is out of range: expected 100 to 599",
    );
    assert_has(
        &all,
        "11:38",
        "upstreams[0].health.active.expected_statuses[2]",
        "status 600 is out of range",
    );
    assert_has(
        &all,
        "12:19",
        "upstreams[0].health.active.interval",
        "must be greater than zero",
    );
}

#[test]
fn retry_statuses_are_5xx() {
    let yaml = with_upstream_extra("    retries:\n      on_statuses: [502, 404]\n");
    single_error(
        &yaml,
        "7:26",
        "upstreams[0].retries.on_statuses[1]",
        "status 404 is out of range: expected 500 to 599",
    );
}

#[test]
fn circuit_breaker_ratio_is_above_0_and_at_most_1() {
    for (ratio, col) in [("0", "22"), ("1.5", "22"), ("-0.5", "22")] {
        let yaml = with_upstream_extra(&format!(
            "    circuit_breaker:\n      failure_ratio: {ratio}\n"
        ));
        let at = format!("7:{col}");
        single_error(
            &yaml,
            &at,
            "upstreams[0].circuit_breaker.failure_ratio",
            "failure_ratio must be above 0 and at most 1",
        );
    }
    load(&with_upstream_extra(
        "    circuit_breaker:\n      failure_ratio: 1\n",
    ));
}

#[test]
fn upstream_timeouts_are_positive() {
    let yaml = with_upstream_extra("    timeouts: {connect: 0s, total: 1s}\n");
    single_error(
        &yaml,
        "6:25",
        "upstreams[0].timeouts.connect",
        "must be greater than zero (e.g. \"5s\")",
    );
}

#[test]
fn retries_are_capped_at_seven() {
    single_error(
        &with_upstream_extra("    retries: {attempts: 8}\n"),
        "6:25",
        "upstreams[0].retries.attempts",
        "must be at most 7, found 8",
    );
}

#[test]
fn the_default_listener_name_is_taken_by_listen() {
    let yaml =
        "listen: 127.0.0.1:8000\nlisteners:\n  - name: default\n    address: 127.0.0.1:8001\n";
    single_error(
        yaml,
        "3:11",
        "listeners[0].name",
        "belongs to the listener of `listen:`",
    );
}
