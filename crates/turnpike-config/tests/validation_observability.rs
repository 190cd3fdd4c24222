//! The `metrics:` and `access_log:` sections: defaults, every key, and one test per
//! validation rule with its exact `line:column` and path.

mod common;

use common::{assert_has, load, printed, single_error};
use turnpike_config::model::{AccessLog, AccessLogFormat, Metrics, StatusMatch};

const BASE: &str = "listen: 127.0.0.1:8000\n";

#[test]
fn absent_or_empty_sections_take_the_defaults() {
    for yaml in [
        BASE.to_owned(),
        format!("{BASE}metrics:\naccess_log:\n"),
        format!("{BASE}metrics: {{}}\naccess_log: {{}}\n"),
    ] {
        let cfg = load(&yaml);
        assert_eq!(cfg.metrics, Metrics::default(), "{yaml}");
        assert_eq!(cfg.access_log, AccessLog::default(), "{yaml}");
    }
    let m = Metrics::default();
    assert_eq!(
        (m.listen, m.consumer_labels, m.max_consumers),
        (None, true, 100)
    );
    let a = AccessLog::default();
    assert!(!a.enabled, "the access log is off by default");
    assert_eq!(
        (a.format, a.output.as_str(), a.sample),
        (AccessLogFormat::Json, "stdout", 1.0)
    );
}

#[test]
fn every_key_loads() {
    let yaml = format!(
        "{BASE}metrics:
  listen: 127.0.0.1:9100
  consumer_labels: false
  max_consumers: 20
access_log:
  enabled: true
  format: text
  output: /var/log/turnpike/access.log
  rotate: {{max_size: 100MiB, keep: 5}}
  sample: 0.5
  only_status: [4xx, 5xx, 302]
  exclude_routes: [health]
  buffer: 1024
"
    );
    let cfg = load(&yaml);
    assert_eq!(
        cfg.metrics.listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9100")
    );
    assert!(!cfg.metrics.consumer_labels);
    assert_eq!(cfg.metrics.max_consumers, 20);
    let a = cfg.access_log;
    assert!(a.enabled);
    assert_eq!(a.format, AccessLogFormat::Text);
    assert_eq!(
        a.rotate.as_ref().map(|r| (r.max_size.bytes(), r.keep)),
        Some((100 << 20, 5))
    );
    assert_eq!(
        a.only_status,
        [
            StatusMatch::Class("4xx".to_owned()),
            StatusMatch::Class("5xx".to_owned()),
            StatusMatch::Code(302)
        ]
    );
    assert_eq!(a.exclude_routes, ["health"]);
    assert_eq!(a.buffer, 1024);
}

#[test]
fn the_metrics_listener_cannot_share_another_listener() {
    single_error(
        &format!("{BASE}metrics:\n  listen: 127.0.0.1:8000\n"),
        "3:11",
        "metrics.listen",
        "address 127.0.0.1:8000 is already used by `listen` (line 1)",
    );
    single_error(
        &format!("{BASE}admin:\n  listen: 127.0.0.1:8001\nmetrics:\n  listen: 0.0.0.0:8001\n"),
        "5:11",
        "metrics.listen",
        "address 0.0.0.0:8001 overlaps 127.0.0.1:8001, used by `admin.listen` (line 3)",
    );
}

#[test]
fn bad_values_are_located() {
    let yaml = format!(
        "{BASE}metrics:
  max_consumers: 0
  lisen: 127.0.0.1:9100
access_log:
  output: \"\"
  sample: 1.5
  only_status: [4xx, 6xx, abc, 600]
  buffer: 0
"
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 8, "{}", all.join("\n"));
    assert_has(
        &all,
        "8:32",
        "access_log.only_status[3]",
        "invalid status 600",
    );
    assert_has(
        &all,
        "3:18",
        "metrics.max_consumers",
        "must be between 1 and 10000, found 0",
    );
    assert_has(&all, "4:3", "metrics.lisen", "unknown field `lisen`");
    assert_has(
        &all,
        "6:11",
        "access_log.output",
        "the output must not be empty",
    );
    assert_has(
        &all,
        "7:11",
        "access_log.sample",
        "must be between 0.0 and 1.0",
    );
    assert_has(
        &all,
        "8:22",
        "access_log.only_status[1]",
        "invalid status \"6xx\"",
    );
    assert_has(
        &all,
        "8:27",
        "access_log.only_status[2]",
        "invalid status \"abc\"",
    );
    assert_has(&all, "9:11", "access_log.buffer", "must be at least 1");
    // A type error leaves the section at its defaults, so it is reported alone.
    single_error(
        &format!("{BASE}access_log:\n  format: xml\n"),
        "3:11",
        "access_log.format",
        "unknown variant `xml`, expected `json` or `text`",
    );
}

#[test]
fn rotation_needs_a_file_and_a_sane_size() {
    single_error(
        &format!("{BASE}access_log:\n  rotate: {{max_size: 10MiB}}\n"),
        "3:11",
        "access_log.rotate",
        "rotation needs a file output, and `output` is stdout",
    );
    single_error(
        &format!("{BASE}access_log:\n  output: a.log\n  rotate: {{max_size: 100B}}\n"),
        "4:22",
        "access_log.rotate.max_size",
        "must be at least 1KiB, found 100",
    );
}
