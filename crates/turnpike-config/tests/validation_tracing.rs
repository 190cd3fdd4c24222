//! The `tracing:` section: defaults, every key, and one test per validation rule with its
//! exact `line:column` and path.

mod common;

use common::{assert_has, load, printed, single_error};
use turnpike_config::model::{OtlpProtocol, Tracing};

const BASE: &str = "listen: 127.0.0.1:8000\n";

#[test]
fn absent_or_empty_section_takes_the_defaults() {
    for yaml in [
        BASE.to_owned(),
        format!("{BASE}tracing:\n"),
        format!("{BASE}tracing: {{}}\n"),
    ] {
        assert_eq!(load(&yaml).tracing, Tracing::default(), "{yaml}");
    }
    let t = Tracing::default();
    assert!(!t.enabled, "tracing is off by default");
    assert_eq!(
        (t.sample, t.endpoint.as_str(), t.protocol),
        (1.0, "http://127.0.0.1:4318", OtlpProtocol::HttpJson)
    );
    assert_eq!(
        (t.service_name.as_str(), t.batch_size, t.max_queue),
        ("turnpike", 512, 4096)
    );
    assert_eq!(t.flush_interval.as_std(), std::time::Duration::from_secs(1));
    assert_eq!(t.timeout.as_std(), std::time::Duration::from_secs(10));
}

#[test]
fn every_key_loads() {
    let yaml = format!(
        "{BASE}tracing:
  enabled: true
  sample: 0.25
  endpoint: https://otlp.example.com/otlp
  protocol: http/json
  headers: {{authorization: \"Bearer abc\", x-scope: team-a}}
  service_name: edge
  batch_size: 100
  flush_interval: 250ms
  max_queue: 1000
  timeout: 3s
"
    );
    let t = load(&yaml).tracing;
    assert!(t.enabled);
    assert_eq!(t.sample, 0.25);
    assert_eq!(t.endpoint, "https://otlp.example.com/otlp");
    assert_eq!(t.headers["authorization"], "Bearer abc");
    assert_eq!(t.headers["x-scope"], "team-a");
    assert_eq!(t.service_name, "edge");
    assert_eq!((t.batch_size, t.max_queue), (100, 1000));
    assert_eq!(
        t.flush_interval.as_std(),
        std::time::Duration::from_millis(250)
    );
    assert_eq!(t.timeout.as_std(), std::time::Duration::from_secs(3));
}

#[test]
fn only_otlp_http_json_is_spoken() {
    single_error(
        &format!("{BASE}tracing:\n  protocol: grpc\n"),
        "3:13",
        "tracing.protocol",
        "unknown variant `grpc`, expected `http/json`",
    );
}

#[test]
fn endpoints_must_be_plain_http_urls() {
    for (endpoint, fragment) in [
        ("127.0.0.1:4318", "invalid endpoint \"127.0.0.1:4318\""),
        ("ftp://collector:21", "invalid endpoint"),
        ("http://collector:4318/?x=1", "must not have a query"),
        (
            "http://user:pw@collector:4318",
            "put them in `tracing.headers`",
        ),
        ("http://collector:0", "invalid port"),
        ("http://bad_host:4318", "invalid host"),
        ("http://[::1:4318", "invalid IPv6 address"),
    ] {
        single_error(
            &format!("{BASE}tracing:\n  endpoint: \"{endpoint}\"\n"),
            "3:13",
            "tracing.endpoint",
            fragment,
        );
    }
    for good in [
        "http://localhost:4318",
        "http://[::1]:4318/",
        "https://collector.example.com",
        "https://api.honeycomb.io:443/otlp",
    ] {
        load(&format!("{BASE}tracing:\n  endpoint: \"{good}\"\n"));
    }
}

#[test]
fn bad_values_are_located() {
    let yaml = format!(
        "{BASE}tracing:
  enabled: true
  sample: 1.5
  headers: {{\"bad header\": x, x-ok: \"a\\nb\"}}
  service_name: \" \"
  batch_size: 0
  flush_interval: 0s
  max_queue: 0
  timeout: 0s
  sampel: 0.5
"
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 9, "{}", all.join("\n"));
    assert_has(
        &all,
        "4:11",
        "tracing.sample",
        "must be between 0.0 and 1.0",
    );
    assert_has(
        &all,
        "5:13",
        "tracing.headers[\"bad header\"]",
        "invalid header name",
    );
    assert_has(
        &all,
        "5:36",
        "tracing.headers.x-ok",
        "control character 0x0a",
    );
    assert_has(&all, "6:17", "tracing.service_name", "must not be empty");
    assert_has(&all, "7:15", "tracing.batch_size", "must be between 1 and");
    assert_has(
        &all,
        "8:19",
        "tracing.flush_interval",
        "must be greater than zero",
    );
    assert_has(&all, "9:14", "tracing.max_queue", "must be between 1 and");
    assert_has(
        &all,
        "10:12",
        "tracing.timeout",
        "must be greater than zero",
    );
    assert_has(&all, "11:3", "tracing.sampel", "unknown field `sampel`");
}

#[test]
fn a_batch_cannot_outgrow_the_queue() {
    single_error(
        &format!("{BASE}tracing:\n  batch_size: 200\n  max_queue: 100\n"),
        "3:15",
        "tracing.batch_size",
        "must be between 1 and `max_queue` (100), found 200",
    );
}
