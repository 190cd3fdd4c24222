//! The access log through a real gateway: the JSON fields, no secrets, filters, and
//! rotation by size.

use http::Method;
use serde_json::Value;
use turnpike_policy::key_auth;

use crate::support::{gateway, upstream, wait_for_lines};

const KEY_SECRET: &str = "test-key-secret-0123456789abcdef";

fn config(log: &std::path::Path, extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0
upstreams:
  - name: backend
    targets: [{{url: \"{{upstream}}\"}}]
routes:
  - name: api
    paths: [/api]
    upstream: backend
  - name: quiet
    paths: [/quiet]
    upstream: backend
access_log:
  enabled: true
  output: {}
{extra}",
        log.display()
    )
}

#[tokio::test]
async fn a_json_line_per_request_with_its_fields() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let up = upstream().await;
    let gw = gateway(&config(&log, ""), &up).await;
    let resp = gw
        .client
        .request(
            Method::POST,
            &gw.url("/api/orders?page=2"),
            &[("x-request-id", "req-42")],
            "abc",
        )
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(gw.get("/nowhere").await.status, 404);
    let lines = wait_for_lines(&log, 2).await;
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["request_id"], "req-42");
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/api/orders", "no query string");
    assert_eq!(first["route"], "api");
    assert_eq!(first["service"], "backend");
    assert_eq!(first["upstream_target"], up.url().as_str());
    assert_eq!(first["consumer"], Value::Null);
    assert_eq!(first["status"], 200);
    assert_eq!(first["request_bytes"], 3);
    assert_eq!(first["response_bytes"], 5);
    assert!(first["total_ms"].as_f64().unwrap() >= first["upstream_ms"].as_f64().unwrap());
    assert_eq!(first["error"], Value::Null);
    let time = first["time"].as_str().unwrap();
    assert!(time.len() == 24 && time.ends_with('Z'), "{time}");
    let second: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["status"], 404);
    assert_eq!(second["route"], "");
    assert_eq!(second["error"], "no_route");
    assert_eq!(second["upstream_ms"], Value::Null);
    assert_eq!(second["upstream_target"], Value::Null);
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let key = key_auth::generate(KEY_SECRET).unwrap().key;
    let (id, hash) = (
        key_auth::key_id(&key).unwrap(),
        key_auth::hash(KEY_SECRET, &key),
    );
    let yaml = format!(
        "{}auth:
  key_secret: {KEY_SECRET}
  key_auth:
    sources: [{{header: x-api-key}}, {{query: api_key}}]
consumers:
  - name: alice
    keys:
      - {{id: {id}, hash: \"{hash}\"}}
policies:
  auth: {{methods: [key_auth]}}
",
        config(&log, "")
    );
    let up = upstream().await;
    let gw = gateway(&yaml, &up).await;
    let by_header = gw
        .client
        .request(
            Method::GET,
            &gw.url("/api"),
            &[
                ("x-api-key", &key),
                ("authorization", "Bearer token-xyz-secret"),
                ("cookie", "session=cookie-secret-1"),
            ],
            "",
        )
        .await;
    assert_eq!(by_header.status, 200, "{}", by_header.text());
    let by_query = gw.get(&format!("/api?api_key={key}&x=1")).await;
    assert_eq!(by_query.status, 200, "{}", by_query.text());
    let bad = gw.get("/api?api_key=tp_wrong_guess").await;
    assert_eq!(bad.status, 401);
    let lines = wait_for_lines(&log, 3).await;
    let all = lines.join("\n");
    for secret in [
        key.as_str(),
        "token-xyz-secret",
        "cookie-secret-1",
        "tp_wrong_guess",
        "api_key",
    ] {
        assert!(!all.contains(secret), "{secret} is in the log:\n{all}");
    }
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["consumer"], "alice");
    let third: Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(third["error"], "unauthorized");
}

#[tokio::test]
async fn filters_choose_the_lines_and_text_is_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let extra = "  format: text\n  only_status: [4xx]\n  exclude_routes: [quiet]\n";
    let up = upstream().await;
    let gw = gateway(&config(&log, extra), &up).await;
    assert_eq!(gw.get("/api").await.status, 200);
    assert_eq!(gw.get("/quiet/missing").await.status, 404);
    assert_eq!(gw.get("/api/missing").await.status, 404);
    let lines = wait_for_lines(&log, 1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(
        line.contains(" 127.0.0.1 \"GET /api/missing\" 404 0 0 "),
        "{line}"
    );
    assert!(line.contains(" route=api service=backend "), "{line}");
}

#[tokio::test]
async fn the_file_rotates_by_size_and_keeps_that_many() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let extra = "  rotate: {max_size: 1KiB, keep: 2}\n";
    let up = upstream().await;
    let gw = gateway(&config(&log, extra), &up).await;
    // Each line is about 300 bytes: 30 lines fill several 1 KiB files.
    for _ in 0..30 {
        assert_eq!(gw.get("/api").await.status, 200);
    }
    let rotated = |n: usize| dir.path().join(format!("access.log.{n}"));
    let deadline = std::time::Instant::now() + crate::support::PATIENCE;
    while !(rotated(1).exists() && rotated(2).exists()) {
        assert!(std::time::Instant::now() < deadline, "no rotation happened");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!rotated(3).exists(), "keep: 2 keeps two old files");
    for path in [log.clone(), rotated(1), rotated(2)] {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.len() <= 1024,
            "{} is {} bytes",
            path.display(),
            text.len()
        );
        for line in text.lines() {
            serde_json::from_str::<Value>(line).unwrap();
        }
    }
}
