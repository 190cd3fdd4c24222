//! Validation identical to the config file's: a candidate change is applied to the
//! effective configuration document (the file's configuration plus every store entity)
//! and the result goes through `turnpike_config::load_value`.
//!
//! Only problems the change introduces count, so an effective config that is already
//! imperfect (say, a file without listeners in a test) does not block unrelated writes.
//! Positions in lists shift when an item is removed, so problems are compared by name:
//! `routes[3].upstream` becomes `routes["everything"].upstream` (and
//! `oauth.clients[0].consumer` becomes `oauth-clients["app"].consumer`; see `kinds.rs` for
//! where each kind is merged), and problems inside the candidate itself become relative to
//! it (`upstream`), as the API client wrote them.

use std::path::Path;

use serde_json::{Map, Value};
use turnpike_config::load_value;
use turnpike_store::Record;

use crate::error::Detail;
use crate::kinds::{self, KINDS};

/// A write to check.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    /// Create or replace the entity `name` of `kind` with `doc`.
    Put {
        kind: &'a str,
        name: &'a str,
        doc: &'a Value,
    },
    Delete {
        kind: &'a str,
        name: &'a str,
    },
}

impl<'a> Change<'a> {
    fn key(self) -> (&'a str, &'a str) {
        match self {
            Self::Put { kind, name, .. } | Self::Delete { kind, name } => (kind, name),
        }
    }
}

/// The problems `change` would add to the effective configuration; empty when it is fine.
pub(crate) fn check(base: &Value, records: &[Record], change: Change<'_>) -> Vec<Detail> {
    let (kind, name) = change.key();
    if let (Change::Put { .. }, Some(why)) = (change, kinds::homeless(base, kind)) {
        return vec![Detail::new("", why)];
    }
    let before = effective(base, records, None);
    let after = effective(base, records, Some(change));
    let old = problems(&before, None);
    let candidate = match change {
        Change::Put { .. } => Some((kind, name)),
        Change::Delete { .. } => None,
    };
    problems(&after, candidate)
        .into_iter()
        .filter(|p| !old.contains(p))
        .collect()
}

/// The problems a set of writes would add together (an import's routes and upstream);
/// paths name the entities (`routes["r"].upstream`).
pub(crate) fn check_all(base: &Value, records: &[Record], changes: &[Change<'_>]) -> Vec<Detail> {
    let before = effective(base, records, None);
    let after = effective_all(base, records, changes);
    let old = problems(&before, None);
    problems(&after, None)
        .into_iter()
        .filter(|p| !old.contains(p))
        .collect()
}

/// The names the file's configuration defines for `kind` (read-only through the API).
pub(crate) fn base_names(base: &Value, kind: &str) -> Vec<String> {
    kinds::base_names(base, kind)
}

/// The base document with every store entity appended to its section; `change` replaces,
/// adds or drops its entity. Store entities of kinds the config has no section for are
/// left out (they are checked by their own code, not here).
pub(crate) fn effective(base: &Value, records: &[Record], change: Option<Change<'_>>) -> Value {
    effective_all(base, records, change.as_slice())
}

/// [`effective`] with several changes applied.
fn effective_all(base: &Value, records: &[Record], changes: &[Change<'_>]) -> Value {
    let mut doc = match base {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let skip: Vec<_> = changes.iter().map(|c| c.key()).collect();
    for r in records.iter().filter(|r| KINDS.contains(&r.kind.as_str())) {
        if skip.contains(&(r.kind.as_str(), r.name.as_str())) {
            continue;
        }
        kinds::merge(&mut doc, &r.kind, r.doc.clone());
    }
    for change in changes {
        if let Change::Put {
            kind, doc: item, ..
        } = change
        {
            kinds::merge(&mut doc, kind, (*item).clone());
        }
    }
    Value::Object(doc)
}

/// Every problem of `doc`, with list positions replaced by names; problems inside the
/// candidate (kind and name) relative to it. A certificate is merged into every TLS
/// listener, so its problems come once per listener: each is reported once.
fn problems(doc: &Value, candidate: Option<(&str, &str)>) -> Vec<Detail> {
    let Err(errors) = load_value(doc, Path::new("admin-api")) else {
        return Vec::new();
    };
    let mut out: Vec<Detail> = Vec::new();
    for e in errors.errors() {
        let detail = Detail::new(rename(doc, &e.path, candidate), e.message.clone());
        if !out.contains(&detail) {
            out.push(detail);
        }
    }
    out
}

/// `routes[3].upstream` → `routes["everything"].upstream`, or `upstream` for the candidate.
/// The global policies have no index to rename: their problems are `policies.cors...`,
/// or `cors...` when they are the candidate.
fn rename(doc: &Value, path: &str, candidate: Option<(&str, &str)>) -> String {
    if candidate.is_some_and(|(kind, _)| kind == kinds::POLICIES) {
        if let Some(tail) = path.strip_prefix(kinds::POLICIES) {
            if tail.is_empty() {
                return String::new();
            }
            if let Some(rest) = tail.strip_prefix('.') {
                return rest.to_owned();
            }
        }
    }
    match kinds::locate(doc, path) {
        Some((kind, name, tail)) if candidate == Some((kind, name.as_str())) => {
            tail.strip_prefix('.').unwrap_or(tail).to_owned()
        }
        Some((kind, name, tail)) => format!("{kind}[{name:?}]{tail}"),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(kind: &str, doc: Value) -> Record {
        Record {
            kind: kind.to_owned(),
            name: doc["name"].as_str().unwrap_or_default().to_owned(),
            doc,
            revision: 1,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn base() -> Value {
        json!({"listen": "127.0.0.1:8000"})
    }

    fn upstream() -> Record {
        record(
            "upstreams",
            json!({"name": "b", "targets": [{"url": "http://127.0.0.1:9"}]}),
        )
    }

    #[test]
    fn route_to_missing_upstream_is_reported_on_its_field() {
        let doc = json!({"name": "r", "upstream": "nope"});
        let put = Change::Put {
            kind: "routes",
            name: "r",
            doc: &doc,
        };
        let problems = check(&base(), &[upstream()], put);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "upstream");
    }

    #[test]
    fn deleting_a_used_upstream_names_the_route() {
        let route = record("routes", json!({"name": "r", "upstream": "b"}));
        let del = Change::Delete {
            kind: "upstreams",
            name: "b",
        };
        let problems = check(&base(), &[upstream(), route], del);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, r#"routes["r"].upstream"#);
    }

    #[test]
    fn existing_problems_do_not_block_other_writes() {
        let doc = json!({"name": "c"});
        let put = Change::Put {
            kind: "consumers",
            name: "c",
            doc: &doc,
        };
        // No listener at all: a problem of the base, not of this consumer.
        assert!(check(&json!({}), &[], put).is_empty());
    }

    #[test]
    fn unknown_and_nested_fields_are_relative() {
        let doc = json!({"name": "u", "targets": [{"url": "ftp://x"}], "colour": 1});
        let put = Change::Put {
            kind: "upstreams",
            name: "u",
            doc: &doc,
        };
        let mut paths: Vec<_> = check(&base(), &[], put)
            .into_iter()
            .map(|d| d.path)
            .collect();
        paths.sort();
        assert_eq!(paths, ["colour", "targets[0].url"]);
    }

    #[test]
    fn base_names_of_a_section() {
        let base = json!({"routes": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(base_names(&base, "routes"), ["a", "b"]);
        assert!(base_names(&base, "upstreams").is_empty());
    }
}
