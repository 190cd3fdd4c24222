//! `turnpike import openapi` against a real `turnpike serve` on SQLite: an import creates
//! the upstream and routes, which serve within a second; a re-import shows the diff and
//! adds, updates and removes routes while hand-made ones stay; a dry run changes nothing;
//! bad documents get clear errors; and request validation refuses what the document does
//! not allow with a 400 the upstream never sees. Versions of a service (by path and by
//! header) are served side by side, and deprecating or retiring one changes what its
//! callers get, and only its callers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Run, Serve, free_port};
use http::Method;
use serde_json::Value;
use turnpike_testkit::{Client, MockUpstream};

const TOKEN: &str = "tpa_importTst001_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
const PATIENCE: Duration = Duration::from_secs(10);

fn fixture(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    dir.join(name).to_str().unwrap().to_owned()
}

/// A `turnpike serve` process with a file-defined upstream `b`.
struct Node {
    _serve: Serve,
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
admin:
  listen: 127.0.0.1:{admin}
  store: \"{}\"
",
            store.display()
        );
        let file = dir.path().join("gateway.yaml");
        std::fs::write(&file, yaml).unwrap();
        let node = Self {
            _serve: Serve::start(&file, &[("TURNPIKE_ADMIN_TOKEN", TOKEN)]),
            dir,
            proxy,
            admin,
        };
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", admin)).is_err() {
            assert!(Instant::now() < deadline, "the node did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn cli(&self, args: &[&str]) -> Run {
        common::cli(&format!("http://127.0.0.1:{}", self.admin), TOKEN, args)
    }

    async fn send(&self, method: Method, path: &str, body: &str) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.proxy);
        let headers = [("content-type", "application/json")];
        let r = Client::http1().request(method, &url, &headers, body).await;
        let json = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status.as_u16(), json)
    }

    async fn send_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> turnpike_testkit::TestResponse {
        let url = format!("http://127.0.0.1:{}{path}", self.proxy);
        Client::http1()
            .request(Method::GET, &url, headers, "")
            .await
    }

    /// Polls until `check` holds for `GET path` with `headers`, and returns that answer.
    async fn until_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        check: impl Fn(&turnpike_testkit::TestResponse) -> bool,
    ) -> turnpike_testkit::TestResponse {
        let start = Instant::now();
        loop {
            let r = self.send_with(path, headers).await;
            if check(&r) {
                return r;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{path}: {} {}",
                r.status,
                r.text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls until `path` answers `want`; returns how long it took.
    async fn until(&self, method: Method, path: &str, want: u16) -> Duration {
        let start = Instant::now();
        loop {
            if self.send(method.clone(), path, "").await.0 == want {
                return start.elapsed();
            }
            assert!(start.elapsed() < PATIENCE, "{path} never answered {want}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_serves_and_reimport_updates_in_place() {
    let up = MockUpstream::echo().await;
    let node = Node::start(&up.url());
    let hand = node.file("hand.yaml", "name: hand\npaths: [/v1/hand]\nupstream: b\n");
    node.cli(&["routes", "create", "-f", &hand]).outcome(0);
    let v1 = fixture("petstore-3.0.yaml");
    let out = node
        .cli(&[
            "import",
            "openapi",
            &v1,
            "--upstream",
            &up.url(),
            "--validate",
        ])
        .outcome(0);
    for line in [
        "+ create upstream petstore",
        "+ create route listPets",
        "+ create route petstore-delete-pets-petid",
    ] {
        assert!(out.contains(line), "{out}");
    }
    assert!(
        out.ends_with("service petstore: 5 created, 0 updated, 0 deleted, 0 unchanged\n"),
        "{out}"
    );
    let took = node.until(Method::GET, "/v1/pets?limit=5", 200).await;
    assert!(took < Duration::from_secs(1), "served after {took:?}");
    // servers[0].url's path is kept: the upstream gets the full path.
    let (_, echo) = node.send(Method::GET, "/v1/pets/7", "").await;
    assert_eq!(echo["path"], "/v1/pets/7");

    reimport_v2(&node).await;
}

/// Re-imports the v2 document: DELETE /pets/{petId} gone, PUT and /owners new.
async fn reimport_v2(node: &Node) {
    let v2 = fixture("petstore-3.0-v2.yaml");
    let dry = node
        .cli(&["import", "openapi", &v2, "--dry-run"])
        .outcome(0);
    assert!(dry.contains("dry run, nothing written"), "{dry}");
    for line in [
        "+ create route listOwners",
        "+ create route updatePet",
        "- delete route petstore-delete-pets-petid",
        "~ update route createPet",
    ] {
        assert!(dry.contains(line), "{dry}");
    }
    node.cli(&["routes", "get", "listOwners"]).outcome(1);
    assert_eq!(node.send(Method::DELETE, "/v1/pets/7", "").await.0, 200);

    let out = node
        .cli(&["import", "openapi", &v2, "--output", "json"])
        .outcome(0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["dry_run"], false);
    node.until(Method::GET, "/v1/owners", 200).await;
    node.until(Method::DELETE, "/v1/pets/7", 404).await;
    assert_eq!(
        node.send(Method::GET, "/v1/hand", "").await.0,
        200,
        "the hand-made route went"
    );
    let again = node.cli(&["import", "openapi", &v2]).outcome(0);
    assert!(again.contains("no changes"), "{again}");
}

/// Requests the inventory document does not allow, and a word their message must hold.
const REFUSED: [(&str, &str, &str, &str); 5] = [
    (
        "POST",
        "/inv/items",
        r#"{"sku": "ABC-1", "quantity": -1}"#,
        "/quantity",
    ),
    ("POST", "/inv/items", "", "required"),
    ("POST", "/inv/items", "{not json", "not valid JSON"),
    ("GET", "/inv/items?in_stock=maybe", "", "in_stock"),
    ("GET", "/inv/items/lowercase-1", "", "sku"),
];

/// A 400 `invalid_request` with a request id and a short message mentioning `needle`.
fn assert_refused(json: &Value, needle: &str) {
    assert_eq!(json["error"]["code"], "invalid_request", "{json}");
    assert!(json["error"]["request_id"].is_string(), "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message}");
    assert!(message.len() < 400, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_refuses_what_the_document_does_not_allow() {
    let up = MockUpstream::echo().await;
    let node = Node::start(&up.url());
    let doc = fixture("inventory-3.1.json");
    node.cli(&[
        "import",
        "openapi",
        &doc,
        "--upstream",
        &up.url(),
        "--prefix",
        "/inv",
        "--validate",
    ])
    .outcome(0);
    node.until(Method::GET, "/inv/items", 200).await;
    // --prefix is stripped: the upstream gets the document's paths.
    let (status, echo) = node
        .send(
            Method::POST,
            "/inv/items",
            r#"{"sku": "ABC-1", "quantity": 2}"#,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(echo["path"], "/items");
    // The buffered body goes on whole.
    assert_eq!(
        echo["body_bytes"],
        r#"{"sku": "ABC-1", "quantity": 2}"#.len()
    );
    let hits = up.hits();

    let huge = format!(
        r#"{{"sku": "ABC-1", "quantity": 1, "extra": "{}"}}"#,
        "x".repeat(100_000)
    );
    let (_, json) = node.send(Method::POST, "/inv/items", &huge).await;
    assert_refused(&json, "extra");
    for (method, path, body, needle) in REFUSED {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, json) = node.send(method, path, body).await;
        assert_eq!(status, 400, "{path} {json}");
        assert_refused(&json, needle);
    }
    assert_eq!(up.hits(), hits, "the upstream saw a refused request");
    assert_eq!(
        node.send(Method::GET, "/inv/items?tag=a&tag=b&in_stock=true", "")
            .await
            .0,
        200
    );
    assert_eq!(node.send(Method::GET, "/inv/items/ABC-12", "").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn petstore_query_parameters_are_required() {
    let up = MockUpstream::echo().await;
    let node = Node::start(&up.url());
    node.cli(&[
        "import",
        "openapi",
        &fixture("petstore-3.0.yaml"),
        "--upstream",
        &up.url(),
        "--validate",
    ])
    .outcome(0);
    node.until(Method::GET, "/v1/pets?limit=1", 200).await;
    let hits = up.hits();
    let (status, json) = node.send(Method::GET, "/v1/pets", "").await;
    assert_eq!(status, 400);
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`limit` is required"),
        "{json}"
    );
    let (status, json) = node.send(Method::POST, "/v1/pets", r#"{"name": 5}"#).await;
    assert_eq!(status, 400);
    assert!(
        json["error"]["message"].as_str().unwrap().contains("/name"),
        "{json}"
    );
    // `nullable: true` (OpenAPI 3.0) accepts null.
    assert_eq!(
        node.send(Method::POST, "/v1/pets", r#"{"name": "rex", "tag": null}"#)
            .await
            .0,
        200
    );
    assert_eq!(up.hits(), hits + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_documents_get_clear_errors() {
    let up = MockUpstream::echo().await;
    let node = Node::start(&up.url());
    let url = up.url();
    let import = |file: &str| node.cli(&["import", "openapi", file, "--upstream", &url]);
    let yaml = node.file("broken.yaml", "openapi: 3.0.0\npaths:\n  /a: [unclosed\n");
    let err = import(&yaml).outcome(1);
    assert!(err.contains("line 3") || err.contains("line 4"), "{err}");
    let swagger = node.file(
        "swagger.yaml",
        "swagger: \"2.0\"\ninfo: {title: old, version: \"1\"}\npaths: {}\n",
    );
    let err = import(&swagger).outcome(1);
    assert!(err.contains("Swagger 2.0"), "{err}");
    let dup = node.file(
        "dup.yaml",
        "openapi: 3.1.0\ninfo: {title: dup, version: \"1\"}\npaths:\n  /a: {get: {operationId: same}}\n  /b: {get: {operationId: same}}\n",
    );
    let err = import(&dup).outcome(1);
    assert!(err.contains(r#"paths["/b"].get.operationId"#), "{err}");
    // Nothing was created by the refused imports.
    node.cli(&["upstreams", "get", "dup"]).outcome(1);
}

const V2: [(&str, &str); 1] = [("X-API-Version", "2")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_deprecated_and_retired_one_at_a_time() {
    let (up1, up2) = (MockUpstream::echo().await, MockUpstream::echo().await);
    let node = Node::start(&up1.url());
    let doc = fixture("inventory-3.1.json");
    let (url1, url2) = (up1.url(), up2.url());
    let import = |args: &[&str]| {
        let mut all = vec!["import", "openapi", &doc, "--service", "inventory"];
        all.extend_from_slice(args);
        node.cli(&all).outcome(0)
    };
    let out = import(&[
        "--upstream",
        &url1,
        "--version",
        "v1",
        "--version-path",
        "/v1",
    ]);
    assert!(out.contains("+ create upstream inventory-v1"), "{out}");
    let out = import(&[
        "--upstream",
        &url2,
        "--version",
        "v2",
        "--version-header",
        "X-API-Version=2",
    ]);
    assert!(out.contains("service inventory v2: 4 created"), "{out}");
    let v1 = node.until_with("/v1/items", &[], |r| r.status == 200).await;
    assert_eq!(
        v1.json()["path"],
        "/items",
        "the version path reaches the upstream"
    );
    assert!(v1.header("deprecation").is_none());
    node.until_with("/items", &V2, |r| r.status == 200).await;
    assert_eq!(
        node.send_with("/items", &[]).await.status,
        404,
        "no default version"
    );
    assert_eq!((up1.hits(), up2.hits()), (1, 1));
    let table = node.cli(&["services", "versions", "inventory"]).outcome(0);
    assert!(table.contains("x-api-version: 2"), "{table}");

    let out = node
        .cli(&[
            "services",
            "deprecate",
            "inventory",
            "v1",
            "--at",
            "2026-06-01T00:00:00Z",
            "--sunset",
            "2027-01-01T00:00:00Z",
            "--link",
            "https://docs.example.com/v2",
        ])
        .outcome(0);
    assert!(
        out.contains("~ update route inventory-v1-listItems"),
        "{out}"
    );
    assert!(out.contains(": lifecycle"), "{out}");
    let r = node
        .until_with("/v1/items", &[], |r| r.header("deprecation").is_some())
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("deprecation"), Some("@1780272000"));
    assert_eq!(r.header("sunset"), Some("Fri, 01 Jan 2027 00:00:00 GMT"));
    assert_eq!(
        r.header("link"),
        Some("<https://docs.example.com/v2>; rel=\"deprecation\"")
    );
    let v2 = node.send_with("/items", &V2).await;
    assert_eq!(v2.status, 200);
    assert!(v2.header("deprecation").is_none() && v2.header("sunset").is_none());

    node.cli(&["services", "retire", "inventory", "v1"])
        .outcome(0);
    let r = node.until_with("/v1/items", &[], |r| r.status == 410).await;
    assert_eq!(r.json()["error"]["code"], "retired");
    assert_eq!(r.header("sunset"), Some("Fri, 01 Jan 2027 00:00:00 GMT"));
    let hits = up1.hits();
    assert_eq!(node.send_with("/v1/items/ABC-1", &[]).await.status, 410);
    assert_eq!(up1.hits(), hits, "a retired version reached its upstream");
    assert_eq!(node.send_with("/items/ABC-1", &V2).await.status, 200);

    node.cli(&["services", "delete", "inventory", "--version", "v1"])
        .outcome(0);
    node.until_with("/v1/items", &[], |r| r.status == 404).await;
    assert_eq!(node.send_with("/items", &V2).await.status, 200);
}
