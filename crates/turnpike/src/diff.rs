//! Field-level differences between two JSON documents, for `turnpike config diff`: one
//! line per field added, removed or changed, with paths in the config file's spelling
//! (`targets[0].url`, `timeouts.connect`).

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Value, json};

/// One field that differs.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldChange {
    Added {
        path: String,
        to: Value,
    },
    Removed {
        path: String,
        from: Value,
    },
    Changed {
        path: String,
        from: Value,
        to: Value,
    },
}

impl FieldChange {
    pub fn to_json(&self) -> Value {
        match self {
            Self::Added { path, to } => json!({"op": "add", "path": path, "to": to}),
            Self::Removed { path, from } => json!({"op": "remove", "path": path, "from": from}),
            Self::Changed { path, from, to } => {
                json!({"op": "change", "path": path, "from": from, "to": to})
            }
        }
    }
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Added { path, to } => write!(f, "+ {path}: {to}"),
            Self::Removed { path, from } => write!(f, "- {path}: {from}"),
            Self::Changed { path, from, to } => write!(f, "~ {path}: {from} -> {to}"),
        }
    }
}

/// What changes from `from` to `to`, field by field; list items are compared by position.
pub fn field_changes(from: &Value, to: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", from, to, &mut out);
    out
}

fn walk(path: &str, from: &Value, to: &Value, out: &mut Vec<FieldChange>) {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => walk(&at, x, y, out),
                    (Some(x), None) => out.push(FieldChange::Removed {
                        path: at,
                        from: x.clone(),
                    }),
                    (None, Some(y)) => out.push(FieldChange::Added {
                        path: at,
                        to: y.clone(),
                    }),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let at = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => walk(&at, x, y, out),
                    (Some(x), None) => out.push(FieldChange::Removed {
                        path: at,
                        from: x.clone(),
                    }),
                    (None, Some(y)) => out.push(FieldChange::Added {
                        path: at,
                        to: y.clone(),
                    }),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => out.push(FieldChange::Changed {
            path: path.to_owned(),
            from: a.clone(),
            to: b.clone(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_are_named() {
        let a =
            json!({"name": "u", "targets": [{"url": "http://a"}], "timeouts": {"connect": "5s"}});
        let b = json!({"name": "u", "targets": [{"url": "http://b"}, {"url": "http://c"}], "balancer": "random"});
        let lines: Vec<String> = field_changes(&a, &b)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                r#"+ balancer: "random""#,
                r#"~ targets[0].url: "http://a" -> "http://b""#,
                r#"+ targets[1]: {"url":"http://c"}"#,
                r#"- timeouts: {"connect":"5s"}"#,
            ]
        );
        assert!(field_changes(&a, &a).is_empty());
    }
}
