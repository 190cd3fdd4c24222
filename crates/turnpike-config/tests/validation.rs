//! One test per validation rule: each asserts the exact `line:column`, the path and the
//! part of the message that tells the user what to do.

mod common;

use common::{assert_has, load, printed, single_error, with_route_extra, with_upstream_extra};

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
  client_idle_timeout: 0ms
  shutdown_timeout: 0s
  request_id_header: "x request id"
"#;
    let all = printed(yaml);
    assert_eq!(all.len(), 6, "{}", all.join("\n"));
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
        "must be greater than zero",
    );
    assert_has(
        &all,
        "6:24",
        "server.header_read_timeout",
        "must be greater than zero",
    );
    assert_has(
        &all,
        "7:24",
        "server.client_idle_timeout",
        "must be greater than zero",
    );
    assert_has(
        &all,
        "9:22",
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

// ---- routes ----------------------------------------------------------------------------

#[test]
fn route_names_are_present_and_unique() {
    let yaml = with_route_extra(
        "  - name: everything\n    paths: [/other]\n    upstream: backend\n  - name: \"\"\n    paths: [/third]\n    upstream: backend\n",
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 2, "{}", all.join("\n"));
    assert_has(
        &all,
        "10:11",
        "routes[1].name",
        "duplicate route name `everything` (first defined at line 7)",
    );
    assert_has(
        &all,
        "13:11",
        "routes[2].name",
        "route name must not be empty",
    );
}

#[test]
fn route_upstream_must_exist() {
    let yaml = with_route_extra("").replace("upstream: backend\n", "upstream: backnd\n");
    single_error(
        &yaml,
        "9:15",
        "routes[0].upstream",
        "unknown upstream `backnd` (defined upstreams: backend)",
    );
    let yaml = "listen: 127.0.0.1:8000\nroutes:\n  - name: r\n    upstream: x\n";
    single_error(
        yaml,
        "4:15",
        "routes[0].upstream",
        "unknown upstream `x` (no upstreams are defined)",
    );
}

#[test]
fn route_paths_and_templates() {
    let cases = [
        ("api", "must start with `/`"),
        ("/files/*", "`*` is not supported"),
        (
            "/users/id-{id}",
            "segment \"id-{id}\" must be a whole `{name}` parameter",
        ),
        (
            "/users/{1st}",
            "parameter name \"1st\" must start with a letter or `_`",
        ),
        ("/users/{id}/friends/{id}", "parameter `id` appears twice"),
        ("/search?q=x", "must not contain a query"),
    ];
    for (path, fragment) in cases {
        let yaml =
            with_route_extra("").replace("paths: [\"/\"]", &format!("paths: [\"/\", \"{path}\"]"));
        single_error(&yaml, "8:18", "routes[0].paths[1]", fragment);
    }
    load(
        &with_route_extra("").replace("paths: [\"/\"]", "paths: [\"/users/{id}/posts/{post_id}\"]"),
    );
}

#[test]
fn route_hosts() {
    let cases = [
        (
            "api.example.com:8080",
            "host \"api.example.com:8080\" must not include a port: hosts match the Host header without its port, so write \"api.example.com\"",
        ),
        (
            "api.*.example.com",
            "a wildcard must be the whole leftmost label, as in \"*.example.com\"",
        ),
        (
            "*api.example.com",
            "a wildcard must be the whole leftmost label",
        ),
        (
            "api_v1.example.com",
            "label \"api_v1\" must be 1 to 63 letters, digits or `-`",
        ),
        ("", "expected a host name"),
    ];
    for (host, fragment) in cases {
        let yaml = with_route_extra(&format!("    hosts: [\"example.com\", \"{host}\"]\n"));
        single_error(&yaml, "10:28", "routes[0].hosts[1]", fragment);
    }
    let yaml = with_route_extra("    hosts: [Example.COM, example.com]\n");
    single_error(
        &yaml,
        "10:26",
        "routes[0].hosts[1]",
        "is listed twice (hosts are case-insensitive)",
    );
    load(&with_route_extra(
        "    hosts: [API.Example.com, \"*.example.com\", 192.0.2.1]\n",
    ));
}

#[test]
fn route_methods_are_upper_case_tokens() {
    let yaml = with_route_extra("    methods: [GET, post, \"BAD METHOD\"]\n");
    let all = printed(&yaml);
    assert_eq!(all.len(), 2, "{}", all.join("\n"));
    assert_has(
        &all,
        "10:20",
        "routes[0].methods[1]",
        "method `post` must be upper-case: write `POST`",
    );
    assert_has(
        &all,
        "10:26",
        "routes[0].methods[2]",
        "invalid method \"BAD METHOD\"",
    );
    load(&with_route_extra("    methods: [GET, PURGE, M-SEARCH]\n"));
}

#[test]
fn route_header_matches() {
    let yaml = with_route_extra("    headers:\n      \"x version\": \"1\"\n      x-tenant: []\n");
    let all = printed(&yaml);
    assert_eq!(all.len(), 2, "{}", all.join("\n"));
    assert_has(
        &all,
        "11:7",
        "routes[0].headers[\"x version\"]",
        "invalid header name \"x version\"",
    );
    assert_has(
        &all,
        "12:17",
        "routes[0].headers.x-tenant",
        "must list at least one accepted value",
    );
}

#[test]
fn header_transforms() {
    let extra = r#"    request_headers:
      remove: ["bad name"]
      set: {"x:y": "1"}
    response_headers:
      add: {x-note: "line1\r\nInjected: yes"}
"#;
    let all = printed(&with_route_extra(extra));
    assert_eq!(all.len(), 3, "{}", all.join("\n"));
    assert_has(
        &all,
        "11:16",
        "routes[0].request_headers.remove[0]",
        "invalid header name \"bad name\"",
    );
    assert_has(
        &all,
        "12:13",
        "routes[0].request_headers.set[\"x:y\"]",
        "invalid header name \"x:y\"",
    );
    assert_has(
        &all,
        "14:21",
        "routes[0].response_headers.add.x-note",
        "control characters (here 0x0d) are not allowed",
    );
}

#[test]
fn strip_prefix_and_rewrite_exclude_each_other() {
    let yaml = with_route_extra("    strip_prefix: true\n    rewrite: /new\n");
    single_error(
        &yaml,
        "11:14",
        "routes[0].rewrite",
        "`strip_prefix` and `rewrite` cannot be combined",
    );
}

#[test]
fn rewrite_uses_only_params_every_path_defines() {
    let yaml = with_route_extra("    rewrite: v2/x\n");
    single_error(
        &yaml,
        "10:14",
        "routes[0].rewrite",
        "rewrite \"v2/x\" must start with `/`",
    );
    let yaml = with_route_extra("")
        .replace("paths: [\"/\"]", "paths: [\"/u/{id}\", \"/users/{uid}\"]")
        + "    rewrite: /v2/users/{id}\n";
    single_error(
        &yaml,
        "10:14",
        "routes[0].rewrite",
        "rewrite uses `{id}`, but path \"/users/{uid}\" does not define it",
    );
    let yaml = with_route_extra("")
        .replace("paths: [\"/\"]", "paths: [\"/u/{id}\", \"/users/{id}\"]")
        + "    rewrite: /v2/users/{id}\n";
    load(&yaml);
}

#[test]
fn identical_routes_cannot_both_be_chosen() {
    let yaml = r#"listen: 127.0.0.1:8000
upstreams:
  - name: backend
    targets: [{url: "http://127.0.0.1:9000"}]
routes:
  - name: first
    hosts: [a.example.com, B.example.com]
    paths: ["/users/{id}"]
    methods: [GET, POST]
    headers: {X-Tenant: [b, a]}
    upstream: backend
  - name: second
    hosts: [b.example.com, a.example.com]
    paths: ["/other", "/users/{user}"]
    methods: [POST, GET]
    headers: {x-tenant: [a, b]}
    upstream: backend
"#;
    single_error(
        yaml,
        "14:23",
        "routes[1].paths[1]",
        "route `second` can never be chosen for \"/users/{user}\": route `first` (line 6) matches the same hosts, path, methods and headers first",
    );
    // Any difference in hosts, methods, headers or path type keeps both reachable.
    for (from, to) in [
        ("[b.example.com, a.example.com]", "[b.example.com]"),
        ("[POST, GET]", "[POST]"),
        ("{x-tenant: [a, b]}", "{x-tenant: a}"),
    ] {
        load(&yaml.replacen(from, to, 1));
    }
    load(&(yaml.to_owned() + "    path_type: exact\n"));
}

#[test]
fn a_path_repeated_within_a_route_is_reported() {
    let yaml = with_route_extra("").replace("paths: [\"/\"]", "paths: [\"/a/{x}\", \"/a/{y}\"]");
    single_error(
        &yaml,
        "8:23",
        "routes[0].paths[1]",
        "matches the same requests as an earlier path of this route (line 8)",
    );
}

#[test]
fn routes_without_paths_match_the_root() {
    let yaml = with_route_extra("  - name: fallback\n    upstream: backend\n");
    single_error(
        &yaml,
        "10:5",
        "routes[1]",
        "route `fallback` can never be chosen for \"/\": route `everything` (line 7)",
    );
}
