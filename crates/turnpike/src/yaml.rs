//! YAML for the admin CLI: reading entity files (YAML or JSON) into JSON values, and
//! writing JSON values as block-style YAML that loads back to the very same values.
//!
//! Writing is deliberately conservative: a string is left unquoted only when it is made of
//! ordinary characters, starts with a letter or `/`, and is not a word YAML reads as
//! something else (`true`, `null`, ...). Everything else (`"5s"`, `"10"`, `"yes"`, `""`,
//! strings with spaces or `#`) is written double-quoted with JSON escapes, which YAML reads
//! identically. So durations, numbers-as-text and booleans-as-text survive a round trip.

use anyhow::anyhow;
use serde_json::{Map, Value};

/// Parses one YAML (or JSON) document into a JSON value, the way config files are read.
pub fn parse(text: &str) -> anyhow::Result<Value> {
    turnpike_config::parse_yaml(text).map_err(|e| anyhow!("invalid YAML at {e}"))
}

/// `value` as a YAML document (ends with a newline). Objects put `name` first, then the
/// other keys in order, so entities read like the config file.
pub fn emit(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => sequence(&mut out, items, 0),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

/// A mapping as a YAML document with the keys in `order` first, then the others in order
/// (JSON objects here do not keep the order they were read in).
pub fn emit_document(map: &Map<String, Value>, order: &[&str]) -> String {
    let mut out = String::new();
    let first = order.iter().filter_map(|k| map.get_key_value(*k));
    let rest = map.iter().filter(|(k, _)| !order.contains(&k.as_str()));
    for (key, value) in first.chain(rest) {
        out.push_str(&scalar(key));
        out.push(':');
        child(&mut out, value, 0);
    }
    if out.is_empty() {
        out.push_str("{}\n");
    }
    out
}

fn mapping(out: &mut String, map: &Map<String, Value>, indent: usize) {
    let name = map.get_key_value("name");
    for (key, value) in name
        .into_iter()
        .chain(map.iter().filter(|(k, _)| *k != "name"))
    {
        out.push_str(&" ".repeat(indent));
        out.push_str(&scalar(key));
        out.push(':');
        child(out, value, indent);
    }
}

fn sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            // `- name: x` then the other keys under it, two spaces in.
            Value::Object(map) if !map.is_empty() => {
                let mut nested = String::new();
                mapping(&mut nested, map, indent + 2);
                out.push(' ');
                out.push_str(nested.trim_start());
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                sequence(out, inner, indent + 2);
            }
            other => {
                out.push(' ');
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

/// The value after `key:`: inline for scalars and empty collections, else on the next lines.
fn child(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            mapping(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            sequence(out, items, indent + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar(s),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// Words the config loader (and YAML 1.1 readers) take for something other than a string.
const RESERVED: [&str; 16] = [
    "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "yes", "Yes", "no",
    "No", "on", "off", "y",
];

/// A string scalar, plain when that is unambiguous, else double-quoted.
fn scalar(s: &str) -> String {
    let ordinary = |c: char| c.is_ascii_alphanumeric() || "_-./:@".contains(c);
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
        && s.chars().all(ordinary)
        && !s.ends_with(':')
        && !RESERVED.contains(&s)
        && !s.eq_ignore_ascii_case("n");
    if plain {
        s.to_owned()
    } else {
        // JSON string syntax is valid YAML double-quoted syntax with the same meaning.
        Value::String(s.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tricky_strings_round_trip() {
        let doc = json!({"upstreams": [{"name": "api", "targets": [{"url": "http://127.0.0.1:9/", "weight": 3}],
            "timeouts": {"connect": "5s", "total": "1m30s"}, "host_header": "yes",
            "odd": ["10", "1.5", "true", "null", "", " x", "a: b", "#c", "-d", "~", "é", "tab\there", "'q'"],
            "n": 1.5, "neg": -3, "none": null, "empty": {}, "list": [], "nested": [[1, 2], [{"a": "b"}]]}]});
        let text = emit(&doc);
        assert_eq!(parse(&text).unwrap(), doc, "{text}");
        assert!(text.contains("  - name: api\n"), "{text}");
        assert!(text.contains("connect: \"5s\""), "{text}");
    }

    #[test]
    fn documents_keep_the_given_section_order() {
        let doc = json!({"routes": [], "upstreams": [{"name": "u"}], "admin": {"listen": "x"}});
        let text = emit_document(doc.as_object().unwrap(), &["upstreams", "routes"]);
        assert_eq!(
            text,
            "upstreams:\n  - name: u\nroutes: []\nadmin:\n  listen: x\n"
        );
        assert_eq!(parse(&text).unwrap(), doc);
    }

    #[test]
    fn parse_reads_json_too() {
        let v = parse(r#"{"name": "r", "paths": ["/a"], "n": 2}"#).unwrap();
        assert_eq!(v, json!({"name": "r", "paths": ["/a"], "n": 2}));
    }
}
