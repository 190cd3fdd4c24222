//! `load_value`: an already-parsed (JSON) document goes through the same deserialization
//! and validation as a file, with the same paths and messages and no positions.

mod common;

use std::path::Path;

use serde_json::{Value, json};
use turnpike_config::{ConfigError, load_str, load_value};

const ORIGIN: &str = "admin-api";

fn value_errors(doc: &Value) -> Vec<ConfigError> {
    match load_value(doc, Path::new(ORIGIN)) {
        Ok(_) => panic!("document should be rejected: {doc}"),
        Err(e) => e.errors().to_vec(),
    }
}

/// (path, message) pairs, which is all a position-less error has to compare.
fn pairs(errors: &[ConfigError]) -> Vec<(String, String)> {
    let mut all: Vec<_> = errors
        .iter()
        .map(|e| (e.path.clone(), e.message.clone()))
        .collect();
    all.sort();
    all
}

fn base() -> Value {
    json!({
        "listen": "127.0.0.1:8000",
        "upstreams": [{"name": "backend", "targets": [{"url": "http://127.0.0.1:9000"}]}],
        "routes": [{"name": "everything", "paths": ["/"], "upstream": "backend"}],
    })
}

#[test]
fn valid_document_loads_like_the_file() {
    let from_value = load_value(&base(), Path::new(ORIGIN)).unwrap_or_else(|e| panic!("{e}"));
    let yaml = "listen: 127.0.0.1:8000\nupstreams:\n  - name: backend\n    targets:\n      - url: http://127.0.0.1:9000\nroutes:\n  - name: everything\n    paths: [\"/\"]\n    upstream: backend\n";
    let from_text = common::load(yaml);
    assert_eq!(from_value, from_text);
}

#[test]
fn missing_upstream_is_reported_at_its_path_without_position() {
    let mut doc = base();
    doc["routes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "second", "paths": ["/b"], "upstream": "nope"}));
    let errors = value_errors(&doc);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(e.path, "routes[1].upstream");
    assert!(e.message.contains("nope"), "{}", e.message);
    assert_eq!((e.line, e.column), (0, 0));
    assert_eq!(e.file, Path::new(ORIGIN));
}

#[test]
fn same_errors_as_the_same_yaml() {
    let doc = json!({
        "listen": "127.0.0.1:8000",
        "upstreams": [{"name": "u", "targets": [{"url": "ftp://x", "wieght": 2}], "timeouts": {"connect": "0s"}}],
        "routes": [
            {"name": "r", "paths": ["nope"], "upstream": "u", "methods": ["get"]},
            {"name": "r", "upstream": "missing", "extra": true},
        ],
        "bogus": 1,
    });
    let yaml = r#"
listen: 127.0.0.1:8000
upstreams:
  - name: u
    targets: [{url: "ftp://x", wieght: 2}]
    timeouts: {connect: 0s}
routes:
  - {name: r, paths: [nope], upstream: u, methods: [get]}
  - {name: r, upstream: missing, extra: true}
bogus: 1
"#;
    let from_value = pairs(&value_errors(&doc));
    let from_text = pairs(&common::errors(yaml));
    // Messages that cite another setting's line have no line to cite without a file.
    let strip = |v: Vec<(String, String)>| -> Vec<(String, String)> {
        v.into_iter()
            .map(|(p, m)| {
                (
                    p,
                    m.split(" (first defined at line")
                        .next()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect()
    };
    assert!(from_value.len() >= 5, "{from_value:?}");
    assert_eq!(strip(from_value), strip(from_text));
}

#[test]
fn strings_are_literal_not_substituted() {
    let mut doc = base();
    doc["upstreams"][0]["targets"][0]["url"] = json!("http://${UPSTREAM_HOST}:9000");
    let errors = value_errors(&doc);
    assert!(
        errors
            .iter()
            .any(|e| e.path == "upstreams[0].targets[0].url"),
        "{errors:?}"
    );
}

#[test]
fn not_a_mapping() {
    let errors = value_errors(&json!([1, 2]));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "");
    assert!(errors[0].message.contains("expected a mapping"));
}

/// The admin API stores entities as their serialized model; serializing a loaded config
/// and loading it again must give the same config back.
#[test]
fn serialized_config_loads_back_unchanged() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in ["minimal.yaml", "full.yaml"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let config = load_str(&text, Path::new(name), &common::test_env)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let doc = serde_json::to_value(&config).unwrap();
        let back = load_value(&doc, Path::new(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, config, "{name}");
    }
}
