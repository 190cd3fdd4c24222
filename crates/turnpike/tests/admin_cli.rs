//! The CLI as an admin client, against a real `turnpike serve` with an `admin:` section on
//! SQLite: entity commands with tables, JSON and clear errors; API keys made through the
//! admin API that work on the gateway within a second and are never stored, returned or
//! logged in clear; and `config push | export | diff` with a lossless round trip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Run, Serve, free_port, until_status};

use serde_json::{Map, Value, json};
use turnpike_testkit::MockUpstream;

const TOKEN: &str = "tpa_adminCliT001_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
const KEY_SECRET: &str = "cli-test-key-secret-0123456789abcdef";
const PATIENCE: Duration = Duration::from_secs(10);

/// A `turnpike serve` process with a file-defined upstream `b` and routes `file-route`
/// and `cached-route` (which caches for 60 s).
struct Node {
    serve: Serve,
    dir: tempfile::TempDir,
    proxy: u16,
    admin: u16,
}

impl Node {
    fn start(upstream: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (proxy, admin) = (free_port(), free_port());
        let store = dir.path().join("store.db");
        let yaml = format!(
            "listen: 127.0.0.1:{proxy}
upstreams:
  - name: b
    targets: [{{url: \"{upstream}\"}}]
routes:
  - {{name: file-route, paths: [/file], upstream: b}}
  - {{name: cached-route, paths: [/cached], upstream: b, cache: {{default_ttl: 60s}}}}
auth:
  key_secret: {KEY_SECRET}
admin:
  listen: 127.0.0.1:{admin}
  store: \"{}\"
",
            store.display()
        );
        let file = dir.path().join("gateway.yaml");
        std::fs::write(&file, yaml).unwrap();
        let node = Self {
            serve: Serve::start(&file, &[("TURNPIKE_ADMIN_TOKEN", TOKEN)]),
            dir,
            proxy,
            admin,
        };
        let deadline = Instant::now() + PATIENCE;
        while !node.logged("admin API listening") {
            assert!(Instant::now() < deadline, "the node did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    fn logged(&self, needle: &str) -> bool {
        self.serve.logged(needle)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin)
    }

    /// Writes `text` into the node's directory and returns its path.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs the CLI against this node's admin API with the admin token in the environment.
    fn cli(&self, args: &[&str]) -> Run {
        common::cli(&self.url(), TOKEN, args)
    }

    /// Polls the gateway until `path` (with `headers`) answers `want`; returns how long it took.
    async fn until(&self, path: &str, headers: &[(&str, &str)], want: u16) -> Duration {
        let url = format!("http://127.0.0.1:{}{path}", self.proxy);
        until_status(&url, headers, want, PATIENCE).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_commands_print_tables_and_json() {
    let up = MockUpstream::named("up").await;
    let node = Node::start(&up.url());
    let file = node.file(
        "u.yaml",
        "name: api\ntargets:\n  - url: http://127.0.0.1:9001\n",
    );
    let out = node.cli(&["upstreams", "create", "-f", file.to_str().unwrap()]);
    assert_eq!(out.expect(0), "created upstream api\n");
    let table = node.cli(&["upstreams", "list"]).expect(0);
    assert_eq!(
        table,
        "NAME  TARGETS                BALANCER\napi   http://127.0.0.1:9001  round_robin\n"
    );
    let json: Value = serde_json::from_str(
        &node
            .cli(&["upstreams", "get", "api", "--output", "json"])
            .expect(0),
    )
    .unwrap();
    assert_eq!(
        json,
        json!({"name": "api", "targets": [{"url": "http://127.0.0.1:9001"}]})
    );
    let yaml = node.cli(&["upstreams", "get", "api"]).expect(0);
    assert!(yaml.starts_with("name: api\ntargets:\n"), "{yaml}");

    // A JSON file works too; the route serves on the gateway.
    let route = node.file(
        "r.json",
        r#"{"name": "cli-route", "paths": ["/cli"], "upstream": "b"}"#,
    );
    node.cli(&["routes", "create", "-f", route.to_str().unwrap()])
        .expect(0);
    node.until("/cli", &[], 200).await;

    let plan = node.file(
        "p.yaml",
        "- name: gold\n  rate_limits: [{limit: 100, per: minute}]\n  quota: {limit: 5000, per: day}\n- name: free\n",
    );
    // A quota needs some route with auth: the first plan is refused, nothing after it runs.
    let out = node.cli(&["plans", "create", "-f", plan.to_str().unwrap()]);
    assert!(out.stderr().contains("quota"), "{}", out.stderr());
    let keyed = node.file(
        "k.yaml",
        "name: keyed\npaths: [/keyed]\nupstream: b\nauth: {methods: [key_auth]}\n",
    );
    node.cli(&["routes", "create", "-f", keyed.to_str().unwrap()])
        .expect(0);
    node.cli(&["plans", "create", "-f", plan.to_str().unwrap()])
        .expect(0);
    let table = node.cli(&["plans", "list"]).expect(0);
    assert!(table.contains("gold  100/minute   5000/day"), "{table}");
    let out = node.cli(&["upstreams", "delete", "api", "--output", "json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&out.expect(0)).unwrap(),
        json!({"deleted": "api", "kind": "upstreams"})
    );
    let empty = node.cli(&["upstreams", "list"]);
    assert_eq!(empty.expect(0), "");
    assert!(empty.stderr().contains("no upstreams in the store"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_command_errors_say_status_code_message_and_field() {
    let up = MockUpstream::named("up").await;
    let node = Node::start(&up.url());
    // API errors: status, code, message and the field path; non-zero exit.
    let bad = node.file("bad.yaml", "name: bad\nupstream: nope\n");
    let out = node.cli(&["routes", "create", "-f", bad.to_str().unwrap()]);
    out.expect(1);
    let err = out.stderr();
    assert!(err.contains("400 Bad Request (invalid_entity)"), "{err}");
    assert!(err.contains("  upstream: unknown upstream `nope`"), "{err}");
    let err = node.cli(&["upstreams", "delete", "b"]).stderr();
    assert!(err.contains("409 Conflict (read_only)"), "{err}");
    let err = node.cli(&["routes", "get", "ghost"]).stderr();
    assert!(err.contains("404 Not Found (not_found)"), "{err}");

    // No token: 401, with a hint where the token goes.
    let mut cmd = common::turnpike();
    cmd.args(["plans", "list", "--admin-url", &node.url()])
        .env_remove("TURNPIKE_ADMIN_TOKEN");
    let out = Run(cmd.output().unwrap());
    out.expect(1);
    assert!(
        out.stderr().contains("401 Unauthorized"),
        "{}",
        out.stderr()
    );
    assert!(out.stderr().contains("TURNPIKE_ADMIN_TOKEN"));

    // Nothing listening: the message names the URL.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let out = node.cli(&["routes", "list", "--admin-url", &nowhere]);
    out.expect(1);
    let expected = format!("cannot reach the admin API at {nowhere}");
    assert!(out.stderr().contains(&expected), "{}", out.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_through_the_admin_api_work_within_a_second_and_stay_secret() {
    let up = MockUpstream::named("up").await;
    let node = Node::start(&up.url());
    let consumer = node.file("c.yaml", "name: alice\n");
    node.cli(&["consumers", "create", "-f", consumer.to_str().unwrap()])
        .expect(0);
    let route = node.file(
        "r.yaml",
        "name: keyed\npaths: [/keyed]\nupstream: b\nauth: {methods: [key_auth]}\n",
    );
    node.cli(&["routes", "create", "-f", route.to_str().unwrap()])
        .expect(0);
    node.until("/keyed", &[], 401).await;

    // TURNPIKE_ADMIN_URL is set, so `keys create` goes to the admin API, not to a keys file.
    let run = node.cli(&["keys", "create", "--consumer", "alice", "--output", "json"]);
    let created: Value = serde_json::from_str(&run.expect(0)).unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tp_"), "{created}");
    assert!(run.stderr().contains("only time the key is shown"));
    let took = node.until("/keyed", &[("x-api-key", &key)], 200).await;
    assert!(
        took < Duration::from_secs(1),
        "the key took {took:?} to work"
    );

    // Never in clear: not from GET, not in the store's files, not in the gateway's log.
    let got = node
        .cli(&["consumers", "get", "alice", "--output", "json"])
        .expect(0);
    assert!(!got.contains(&key) && got.contains(&id), "{got}");
    for entry in std::fs::read_dir(node.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let found = bytes.windows(key.len()).any(|w| w == key.as_bytes());
        assert!(!found, "the key is in {}", path.display());
    }
    let listed = node.cli(&["keys", "list"]).expect(0);
    assert!(
        listed.contains(&id) && listed.contains("active"),
        "{listed}"
    );

    let out = node.cli(&["keys", "revoke", &id]).expect(0);
    assert_eq!(out, format!("revoked key {id} of consumer `alice`\n"));
    node.until("/keyed", &[("x-api-key", &key)], 401).await;
    assert!(!node.logged(&key));
    assert!(node.logged(&id), "the key id is logged");

    // The file form still means the keys file; rotate has no admin form.
    let err = node.cli(&["keys", "rotate", &id]).stderr();
    assert!(err.contains("keys file only"), "{err}");
}

/// The file pushed in the round trip: durations, nested policies, rate limits, quotas,
/// strings that look like numbers and booleans.
const PUSHED: &str = r#"upstreams:
  - name: api
    targets:
      - {url: "http://127.0.0.1:9001", weight: 3}
      - {url: "http://127.0.0.1:9002"}
    balancer: least_connections
    timeouts: {connect: 5s, total: 1m30s}
    retries: {attempts: 2, on_statuses: [502, 503]}
    health:
      passive: {consecutive_failures: 3, cooldown: 10s}
    circuit_breaker: {failure_ratio: 0.5, min_requests: 20}
    policies:
      ip_rules: {deny: [10.0.0.0/8]}
routes:
  - name: orders
    paths: ["/orders/{id}"]
    path_type: exact
    methods: [GET, PUT]
    headers: {x-version: ["1", "2"]}
    upstream: api
    auth: {methods: [key_auth]}
    request_headers: {set: {x-flag: "true", x-n: "007"}}
    rate_limit:
      limits:
        - {limit: 10, per: 10s, burst: 5, by: [ip, "header:x-tenant"]}
  - name: public
    paths: [/public]
    upstream: b
consumers:
  - name: acme
    plan: gold
    groups: [partners]
    metadata: {tier: "1", active: "yes", note: "a: b # c"}
    rate_limits:
      - {limit: 50, per: minute}
plans:
  - name: gold
    rate_limits:
      - {name: gold-burst, limit: 100, per: second, burst: 200}
    quota: {limit: 100000, per: month}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_push_export_diff_round_trip_losslessly() {
    let up = MockUpstream::named("up").await;
    let node = Node::start(&up.url());
    let pushed = node.file("pushed.yaml", PUSHED);
    let pushed_arg = pushed.to_str().unwrap();
    let diff = node.cli(&["config", "diff", pushed_arg]).expect(2);
    assert!(diff.contains("create upstream api\n"), "{diff}");
    assert!(diff.contains("5 to create"), "{diff}");

    let out = node.cli(&["config", "push", pushed_arg]).expect(0);
    assert!(out.ends_with("5 created\n"), "{out}");
    let export = node.cli(&["config", "export"]).expect(0);
    assert_eq!(
        sections(&yaml(&export)),
        sections(&yaml(PUSHED)),
        "{export}"
    );
    assert_eq!(
        node.cli(&["config", "push", pushed_arg]).expect(0),
        "no changes\n"
    );
    assert_eq!(
        node.cli(&["config", "diff", pushed_arg]).expect(0),
        "no changes\n"
    );
    // The export pushed back changes nothing either.
    let exported = node.file("exported.yaml", &export);
    node.cli(&["config", "diff", exported.to_str().unwrap()])
        .expect(0);

    // `--merged` is the whole served configuration, and `validate` accepts it.
    let gateway = node.dir.path().join("gateway.yaml");
    let merged = node
        .cli(&["config", "export", "--merged", gateway.to_str().unwrap()])
        .expect(0);
    let merged_file = node.file("merged.yaml", &merged);
    let mut validate = common::turnpike();
    validate.args(["validate", "--config", merged_file.to_str().unwrap()]);
    assert!(
        Run(validate.output().unwrap()).0.status.success(),
        "{merged}"
    );
    assert_eq!(yaml(&merged)["upstreams"][0]["name"], "b");
    node.until("/orders/1", &[("x-version", "2")], 401).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_diff_names_fields_and_push_applies_updates_and_deletes() {
    let up = MockUpstream::named("up").await;
    let node = Node::start(&up.url());
    let pushed = node.file("pushed.yaml", PUSHED);
    node.cli(&["config", "push", pushed.to_str().unwrap()])
        .expect(0);
    // A change, a delete, and a file entity that is skipped with a note.
    let changed = PUSHED
        .replace("paths: [/public]", "paths: [/open]")
        .replace("    plan: gold\n", "")
        .replace(
            "upstreams:\n",
            "upstreams:\n  - name: b\n    targets: [{url: \"http://127.0.0.1:1\"}]\n",
        );
    let changed = changed.split("plans:\n").next().unwrap();
    let changed_file = node.file("changed.yaml", changed);
    let run = node.cli(&["config", "diff", changed_file.to_str().unwrap()]);
    let diff = run.expect(2);
    let note = "note: upstream b is defined in the gateway's configuration file";
    assert!(run.stderr().contains(note), "{}", run.stderr());
    assert!(
        diff.contains("update route public\n    ~ paths[0]: \"/public\" -> \"/open\"\n"),
        "{diff}"
    );
    assert!(
        diff.contains("update consumer acme\n    - plan: \"gold\"\n"),
        "{diff}"
    );
    assert!(diff.contains("delete plan gold\n"), "{diff}");
    assert!(diff.ends_with("2 to update, 1 to delete\n"), "{diff}");
    let json: Value = serde_json::from_str(
        &node
            .cli(&[
                "config",
                "diff",
                changed_file.to_str().unwrap(),
                "--output",
                "json",
            ])
            .expect(2),
    )
    .unwrap();
    assert_eq!(json["changes"].as_array().unwrap().len(), 3, "{json}");
    node.cli(&["config", "push", changed_file.to_str().unwrap()])
        .expect(0);
    node.until("/open", &[], 200).await;
    let export = yaml(&node.cli(&["config", "export"]).expect(0));
    assert!(export.get("plans").is_none(), "{export}");
    assert_eq!(export["routes"][1]["paths"], json!(["/open"]));
}

/// The four entity sections of a document, each item keyed by name.
fn sections(doc: &Value) -> Value {
    let mut out = Map::new();
    for kind in ["upstreams", "routes", "consumers", "plans"] {
        let items = doc[kind].as_array().cloned().unwrap_or_default();
        let by_name: Map<String, Value> = items
            .into_iter()
            .map(|i| (i["name"].as_str().unwrap().to_owned(), i))
            .collect();
        out.insert(kind.to_owned(), Value::Object(by_name));
    }
    Value::Object(out)
}

/// YAML text as JSON, read the way the gateway reads its config.
fn yaml(text: &str) -> Value {
    turnpike_config::parse_yaml(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_purge_and_status_through_the_cli() {
    let up = MockUpstream::named("up").await;
    let node = Node::start(&up.url());
    node.until("/cached/a", &[], 200).await;
    node.until("/cached/a", &[], 200).await;
    assert_eq!(up.hits(), 1, "the second request was a cache hit");
    let status: Value =
        serde_json::from_str(&node.cli(&["cache", "status", "--output", "json"]).expect(0))
            .unwrap();
    assert_eq!(status["objects"], 1);
    assert_eq!(status["cdn_failures"], json!([]));
    let none = node.cli(&["cache", "purge"]);
    assert_eq!(none.code(), 1);
    assert!(
        none.stderr().contains("nothing to purge"),
        "{}",
        none.stderr()
    );
    let bad = node.cli(&["cache", "purge", "--url", "/cached/a"]);
    assert_eq!(bad.code(), 1);
    assert!(bad.stderr().contains("urls[0]"), "{}", bad.stderr());
    let out = node.cli(&["cache", "purge", "--url", "http://127.0.0.1/cached/a"]);
    assert_eq!(out.expect(0), "purged 1 cached objects\n");
    node.until("/cached/a", &[], 200).await;
    assert_eq!(up.hits(), 2, "purged, so fetched again");
    assert!(
        node.logged("cache purged"),
        "purges are logged with who made them"
    );
}
