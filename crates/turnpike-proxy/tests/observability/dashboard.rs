//! `deploy/grafana/turnpike.json` refers only to metrics a real gateway exposes.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{gateway, scrape, upstream};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/grafana/turnpike.json"
);

fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query", Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// Every `turnpike_*` identifier in a PromQL expression.
fn names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("turnpike_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[tokio::test]
async fn every_dashboard_metric_exists_in_a_scrape() {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let mut all = Vec::new();
    exprs(&doc, &mut all);
    assert!(all.len() >= 10, "the dashboard has {} queries", all.len());
    let used: BTreeSet<String> = all.iter().flat_map(|e| names(e)).collect();
    assert!(!used.is_empty());

    let up = upstream().await;
    let yaml = "listen: 127.0.0.1:0\nupstreams:\n  - name: backend\n    targets: [{url: \"{upstream}\"}]\nroutes:\n  - name: api\n    paths: [/api]\n    upstream: backend\n";
    let gw = gateway(yaml, &up).await;
    let text = scrape(&gw).await;
    let mut exposed = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (family, kind) = rest.split_once(' ').unwrap();
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        for s in suffixes {
            exposed.insert(format!("{family}{s}"));
        }
    }
    let missing: Vec<_> = used.iter().filter(|n| !exposed.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics that do not exist: {missing:?}\nexposed: {exposed:?}"
    );
}
