//! One test per route validation rule: each asserts the exact `line:column`, the path and
//! the part of the message that tells the user what to do.

mod common;

use common::{assert_has, load, printed, single_error, with_route_extra};

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
        "control character 0x0d at byte 5",
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

#[test]
fn a_prefix_with_a_trailing_slash_is_the_same_prefix() {
    let yaml = with_route_extra("").replace("paths: [\"/\"]", "paths: [\"/api\", \"/api/\"]");
    single_error(
        &yaml,
        "8:21",
        "routes[0].paths[1]",
        "matches the same requests as an earlier path of this route (line 8)",
    );
    // For exact routes the slash matters.
    load(&(yaml + "    path_type: exact\n"));
}

#[test]
fn framing_headers_cannot_be_edited_by_routes() {
    let yaml = with_route_extra(
        "    request_headers:\n      remove: [Content-Length]\n      set: {host: other}\n",
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 2, "{}", all.join("\n"));
    assert!(
        all[0].contains("request_headers.remove[0]") && all[0].contains("cannot be edited"),
        "{}",
        all[0]
    );
    assert!(
        all[1].contains("request_headers.set.host") && all[1].contains("host_header"),
        "{}",
        all[1]
    );
}
