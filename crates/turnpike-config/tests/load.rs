//! Loading whole files: the documented examples load, YAML features work, `${VAR}`
//! substitution, and errors that are located where the user wrote the mistake.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::{FILE, assert_has, errors, load, printed, single_error};
use turnpike_config::model::{Balancer, HashOn, HostHeader, OneOrMany, PathType, UpstreamProtocol};
use turnpike_config::units::{ByteSize, Duration};
use turnpike_config::{ConfigErrors, load_file};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn design_minimal_config_loads() {
    let config = load_file(&fixture("minimal.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.listen, Some(addr("127.0.0.1:8000")));
    assert_eq!(config.upstreams.len(), 1);
    assert_eq!(config.upstreams[0].targets[0].url, "http://127.0.0.1:9000");
    assert_eq!(config.upstreams[0].targets[0].weight, 1);
    assert_eq!(config.routes[0].paths, ["/"]);
    assert_eq!(config.routes[0].upstream, "backend");
    assert_eq!(config.server, turnpike_config::model::Server::default());
}

#[test]
fn the_documented_example_loads() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/turnpike.yaml");
    let config = load_file(&example).unwrap_or_else(|e| panic!("{e}"));
    let admin = config
        .admin
        .unwrap_or_else(|| panic!("the example has an admin section"));
    assert_eq!(admin.listen, addr("127.0.0.1:8001"));
    assert_eq!(admin.store, "turnpike.db");
    assert!(!admin.insecure_no_auth);
}

#[test]
fn full_config_loads_every_field() {
    let config = load_file(&fixture("full.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.listeners.len(), 2);
    let public = &config.listeners[0];
    assert_eq!(public.address, addr("0.0.0.0:8443"));
    let tls = public.tls.as_ref().map(|t| t.certificates.len());
    assert_eq!(tls, Some(2));
    assert!(!config.listeners[1].http2);
    assert_eq!(config.listeners[1].address, addr("[::1]:8080"));

    let server = &config.server;
    assert_eq!(server.workers, 2);
    assert_eq!(server.max_header_bytes, ByteSize(32 * 1024));
    assert_eq!(server.max_body_bytes.bytes(), 1_000_000);
    assert_eq!(server.header_read_timeout, Duration::from_secs(90));
    assert_eq!(server.trusted_proxies.len(), 2);
    assert!(!server.via);
    assert_eq!(server.request_id_header, "X-Correlation-Id");

    let api = &config.upstreams[0];
    assert_eq!(api.balancer, Balancer::ConsistentHash);
    assert_eq!(api.hash_on, Some(HashOn::Header("x-user-id".to_owned())));
    assert_eq!(api.protocol, UpstreamProtocol::Http2);
    assert_eq!(
        api.host_header,
        HostHeader::Fixed("api.internal".to_owned())
    );
    assert_eq!(api.timeouts.total, Duration::from_secs(60));
    assert_eq!(
        api.health.active.as_ref().map(|a| a.timeout),
        Some(Duration::from_millis(500))
    );
    assert_eq!(api.retries.on_statuses, [502, 503]);
    assert_eq!(
        api.circuit_breaker.as_ref().map(|c| c.failure_ratio),
        Some(0.25)
    );
    assert_eq!(config.upstreams[1].host_header, HostHeader::Target);

    let users = &config.routes[0];
    assert_eq!(users.path_type, PathType::Exact);
    assert_eq!(users.methods, ["GET", "PUT"]);
    assert_eq!(
        users.headers.get("x-version"),
        Some(&OneOrMany::One("2".to_owned()))
    );
    assert_eq!(
        users.headers.get("accept").map(|v| v.values().len()),
        Some(2)
    );
    assert_eq!(users.rewrite.as_deref(), Some("/v2/users/{id}"));
    assert_eq!(
        users.request_headers.add.get("x-trace").map(String::as_str),
        Some("on")
    );
    assert!(config.routes[1].strip_prefix);
}

#[test]
fn unreadable_file_names_the_file_and_the_os_error() {
    let missing = Path::new("/nonexistent/turnpike.yaml");
    let err = load_file(missing).err();
    assert!(matches!(err, Some(ConfigErrors::Io { .. })));
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.starts_with("/nonexistent/turnpike.yaml: cannot read"),
        "{text}"
    );
    assert!(text.contains("No such file or directory"), "{text}");
}

#[test]
fn several_independent_errors_are_all_reported_in_file_order() {
    let yaml = r#"listen: 127.0.0.1:8000
upstreams:
  - name: backend
    targets:
      - url: http://127.0.0.1:9000
        weight: 0
routes:
  - name: one
    paths: ["/one"]
    upstream: nope
  - name: two
    paths: [two]
    upstream: backend
  - name: three
    paths: ["/three"]
    upstream: backend
    methods: [get]
    timeout: 5s
"#;
    let all = printed(yaml);
    assert_eq!(all.len(), 5, "{}", all.join("\n"));
    assert_has(
        &all,
        "6:17",
        "upstreams[0].targets[0].weight",
        "weight must be 1 to 10000, found 0",
    );
    assert_has(
        &all,
        "10:15",
        "routes[0].upstream",
        "unknown upstream `nope`",
    );
    assert_has(&all, "12:13", "routes[1].paths[0]", "must start with `/`");
    assert_has(
        &all,
        "17:15",
        "routes[2].methods[0]",
        "must be upper-case: write `GET`",
    );
    assert_has(
        &all,
        "18:5",
        "routes[2].timeout",
        "unknown field `timeout`, expected one of",
    );
    let lines: Vec<usize> = errors(yaml).iter().map(|e| e.line).collect();
    assert_eq!(lines, [6, 10, 12, 17, 18]);
}

#[test]
fn printed_list_ends_with_the_count() {
    let yaml = "listen: 127.0.0.1:8000\nroutes:\n  - name: a\n  - name: b\n";
    let err = turnpike_config::load_str(yaml, Path::new(FILE), &common::test_env).err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        text,
        "gw.yaml:3:5: routes[0]: missing field `upstream`\n\
         gw.yaml:4:5: routes[1]: missing field `upstream`\n\
         2 errors"
    );
}

#[test]
fn several_type_errors_in_one_route_are_all_reported() {
    let yaml = r#"listen: 127.0.0.1:8000
routes:
  - name: a
    paths: "/"
    path_type: exactly
    strip_prefix: maybe
    upstream: [x]
"#;
    let all = printed(yaml);
    assert_eq!(all.len(), 4, "{}", all.join("\n"));
    assert_has(
        &all,
        "4:12",
        "routes[0].paths",
        "invalid type: string \"/\", expected a sequence",
    );
    assert_has(
        &all,
        "5:16",
        "routes[0].path_type",
        "unknown variant `exactly`, expected `prefix` or `exact`",
    );
    assert_has(&all, "6:19", "routes[0].strip_prefix", "expected a boolean");
    // The missing `upstream` that removing the bad one leaves behind is not reported again.
    assert_has(
        &all,
        "7:15",
        "routes[0].upstream",
        "invalid type: sequence, expected a string",
    );
}

#[test]
fn unknown_keys_point_at_the_key() {
    single_error(
        "listen: 127.0.0.1:8000\nlistners: []\n",
        "2:1",
        "listners",
        "unknown field `listners`, expected one of `listen`, `listeners`, `server`, `upstreams`, `routes`",
    );
    let yaml =
        common::with_upstream_extra("    timeouts:\n      connect: 1s\n      conect_timeout: 2s\n");
    single_error(
        &yaml,
        "8:7",
        "upstreams[0].timeouts.conect_timeout",
        "unknown field `conect_timeout`, expected one of `connect`",
    );
    let yaml = "listen: 127.0.0.1:8000\nserver: {max_headers: 10, max_header: 5}\n";
    single_error(
        yaml,
        "2:27",
        "server.max_header",
        "unknown field `max_header`",
    );
}

#[test]
fn type_errors_say_what_was_expected() {
    single_error(
        "listen: localhost\n",
        "1:9",
        "listen",
        "invalid socket address \"localhost\": expected IP:port",
    );
    let yaml = "listen: 127.0.0.1:8000\nserver:\n  max_headers: lots\n";
    single_error(
        yaml,
        "3:16",
        "server.max_headers",
        "invalid type: string \"lots\", expected usize",
    );
    let yaml = "listen: 127.0.0.1:8000\nserver:\n  trusted_proxies: [10.0.0.1]\n";
    single_error(
        yaml,
        "3:21",
        "server.trusted_proxies[0]",
        "expected an address with a prefix length",
    );
    let yaml = common::with_route_extra("    headers: {x-version: 2}\n");
    single_error(
        &yaml,
        "10:26",
        "routes[0].headers.x-version",
        "expected a string or a list of strings",
    );
    single_error("- listen\n", "1:1", "", "expected a mapping of settings");
}

#[test]
fn durations_and_sizes_parse_and_reject() {
    let yaml = "listen: 127.0.0.1:8000\nserver:\n  max_body_bytes: 10MiB\n  max_header_bytes: 16384\n  header_read_timeout: 250ms\n  shutdown_timeout: 1h\n";
    let server = load(yaml).server;
    assert_eq!(server.max_body_bytes, ByteSize(10 * 1024 * 1024));
    assert_eq!(server.max_header_bytes, ByteSize(16_384));
    assert_eq!(server.header_read_timeout, Duration::from_millis(250));
    assert_eq!(server.shutdown_timeout, Duration::from_secs(3600));

    let yaml = "listen: 127.0.0.1:8000\nserver:\n  header_read_timeout: 5x\n";
    single_error(
        yaml,
        "3:24",
        "server.header_read_timeout",
        r#"invalid duration "5x": expected a number followed by ms, s, m, h or d (e.g. "30s")"#,
    );
    let yaml = "listen: 127.0.0.1:8000\nserver:\n  shutdown_timeout: 30\n";
    single_error(
        yaml,
        "3:21",
        "server.shutdown_timeout",
        "a bare number has no unit; expected a number followed by ms, s, m, h or d",
    );
    let yaml = "listen: 127.0.0.1:8000\nserver:\n  max_body_bytes: 10mb\n";
    single_error(
        yaml,
        "3:19",
        "server.max_body_bytes",
        "invalid size \"10mb\": expected a number of bytes, optionally followed by B, KiB, MiB",
    );
    let yaml = "listen: 127.0.0.1:8000\nserver:\n  max_body_bytes: -1\n";
    single_error(
        yaml,
        "3:19",
        "server.max_body_bytes",
        "expected a number of bytes",
    );
}

#[test]
fn env_substitution_with_defaults() {
    let yaml = r#"listen: ${LISTEN:-127.0.0.1:8000}
upstreams:
  - name: backend
    targets:
      - url: http://${UPSTREAM_HOST}:${UPSTREAM_PORT}
        weight: ${WEIGHT:-5}
    host_header: "$${NOT_A_VAR}"
routes:
  - name: everything
    upstream: backend
    request_headers:
      set: {x-empty: "[${EMPTY}]", x-default: "${EMPTY:-fallback}"}
"#;
    let config = load(yaml);
    assert_eq!(config.listen, Some(addr("127.0.0.1:8000")));
    let upstream = &config.upstreams[0];
    assert_eq!(upstream.targets[0].url, "http://10.1.2.3:9000");
    // Unquoted, so the substituted text is read as the number it spells.
    assert_eq!(upstream.targets[0].weight, 5);
    assert_eq!(
        upstream.host_header,
        HostHeader::Fixed("${NOT_A_VAR}".to_owned())
    );
    let set = &config.routes[0].request_headers.set;
    assert_eq!(set.get("x-empty").map(String::as_str), Some("[]"));
    assert_eq!(set.get("x-default").map(String::as_str), Some("fallback"));
}

#[test]
fn missing_env_var_is_located_and_named() {
    let yaml = "listen: 127.0.0.1:8000\nupstreams:\n  - name: backend\n    targets:\n      - url: \"http://${DB_HOST}:${DB_PORT:-5432}\"\nroutes:\n  - name: r\n    upstream: backend\n";
    // Only the substitution is reported, not a bad URL made from the raw text.
    single_error(
        yaml,
        "5:14",
        "upstreams[0].targets[0].url",
        "environment variable `DB_HOST` is not set (write `${DB_HOST:-default}` to give a default)",
    );
    single_error(
        "listen: ${BAD-NAME}\n",
        "1:9",
        "listen",
        "invalid variable reference `${BAD-NAME}`",
    );
}

#[test]
fn duplicate_keys_are_reported_at_the_second() {
    let yaml = common::with_route_extra("    upstream: other\n");
    single_error(
        &yaml,
        "10:5",
        "routes[0].upstream",
        "duplicate key `upstream` (first defined at line 9)",
    );
    single_error(
        "listen: 127.0.0.1:8000\nserver: {via: true, via: false}\n",
        "2:21",
        "server.via",
        "duplicate key `via` (first defined at line 2)",
    );
}

#[test]
fn syntax_errors_are_located() {
    let yaml = "listen: 127.0.0.1:8000\nupstreams: [\n  {name: a\nroutes: []\n";
    let all = printed(yaml);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        all[0].starts_with("gw.yaml:4:7: YAML syntax error: "),
        "{all:?}"
    );
    let all = printed("listen: 127.0.0.1:8000\nroutes:\n\t- name: a\n");
    assert_eq!(
        all,
        ["gw.yaml:3:2: YAML syntax error: tabs disallowed within this context (block indentation)"]
    );
}

#[test]
fn other_yaml_structure_errors() {
    single_error(
        "listen: 127.0.0.1:8000\n---\nlisten: 127.0.0.1:8001\n",
        "2:1",
        "",
        "a configuration file holds one YAML document",
    );
    single_error(
        "listen: 127.0.0.1:8000\n8080: x\n",
        "2:1",
        "",
        "mapping keys must be strings, found number `8080`",
    );
    single_error(
        "listen: 127.0.0.1:8000\n[a, b]: x\n",
        "2:1",
        "",
        "mapping keys must be strings, found a sequence",
    );
}

#[test]
fn yaml_core_schema_and_quoting() {
    // `on` is a plain string in YAML 1.2, and a quoted number stays a string.
    let yaml = common::with_route_extra("    headers: {x-flag: on, x-v: \"2\"}\n");
    let config = load(&yaml);
    assert_eq!(
        config.routes[0].headers.get("x-flag"),
        Some(&OneOrMany::One("on".to_owned()))
    );
    let yaml = common::with_route_extra("    strip_prefix: \"true\"\n");
    single_error(
        &yaml,
        "10:19",
        "routes[0].strip_prefix",
        "invalid type: string \"true\", expected a boolean",
    );
    let yaml = "listen: 127.0.0.1:8000\nserver: {max_headers: 0x20, workers: ~}\n";
    single_error(
        yaml,
        "2:38",
        "server.workers",
        "invalid type: null, expected usize",
    );
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let yaml = r#"listen: 127.0.0.1:8000
upstreams:
  - &defaults
    name: a
    targets: [{url: "http://127.0.0.1:9000"}]
    timeouts: {connect: 1s, first_byte: 0s}
  - <<: *defaults
    name: b
routes:
  - {name: r, upstream: b}
"#;
    let all = printed(yaml);
    // The merged value is reported for both upstreams, each at the text that defines it.
    assert_eq!(all.len(), 2, "{}", all.join("\n"));
    assert_has(
        &all,
        "6:41",
        "upstreams[0].timeouts.first_byte",
        "must be greater than zero",
    );
    assert_has(
        &all,
        "6:41",
        "upstreams[1].timeouts.first_byte",
        "must be greater than zero",
    );

    let config = load(&yaml.replace("first_byte: 0s", "first_byte: 2s"));
    assert_eq!(config.upstreams[1].name, "b");
    assert_eq!(config.upstreams[1].timeouts.connect, Duration::from_secs(1));
    assert_eq!(config.upstreams[1].targets, config.upstreams[0].targets);
}

#[test]
fn empty_file_needs_a_listener() {
    single_error(
        "",
        "1:1",
        "",
        "no listener configured: add `listen: 127.0.0.1:8000` or a `listeners:` list",
    );
}
