//! The writes of an import, worked out before any is made: the generated upstream and
//! routes compared with the store (create, update with the changed fields, or delete), names
//! taken by hand-made routes refused, and the result checked with the config file's
//! validation. Then [`apply`] makes them in the caller's transaction.

use serde::Serialize;
use serde_json::{Value, json};
use turnpike_store::{Record, WriteTx};
use utoipa::ToSchema;

use super::part::{Part, owned};
use crate::auth::Caller;
use crate::entities::find;
use crate::error::{ApiError, Detail};
use crate::import::Generated;
use crate::validate::{self, Change};

/// What an import did, or would do.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportReport {
    service: String,
    /// The version published; absent for the service's unversioned document.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    dry_run: bool,
    /// Creates, updates (with the changed fields) and deletes, in the order applied.
    changes: Vec<Planned>,
    /// Generated routes that stay as they are.
    unchanged: Vec<String>,
}

/// One write of an import.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Planned {
    /// `create`, `update` or `delete`.
    action: &'static str,
    /// `upstream` or `route`.
    kind: &'static str,
    name: String,
    /// The operation a route comes from: `paths["/pets"].get`.
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<String>,
    /// Top-level fields an update changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<String>,
    #[serde(skip)]
    doc: Option<Value>,
    #[serde(skip)]
    revision: Option<i64>,
}

/// The writes of an import, checked.
pub(crate) struct Plan {
    pub(crate) changes: Vec<Planned>,
    pub(crate) unchanged: Vec<String>,
}

impl Plan {
    pub(crate) fn report(&self, service: &str, part: Part<'_>, dry_run: bool) -> ImportReport {
        ImportReport {
            service: service.to_owned(),
            version: part.version().map(str::to_owned),
            dry_run,
            changes: self.changes.clone(),
            unchanged: self.unchanged.clone(),
        }
    }
}

/// A delete of `r`, at the revision it was read at.
pub(crate) fn deletion(kind: &'static str, r: &Record) -> Planned {
    Planned {
        action: "delete",
        kind,
        name: r.name.clone(),
        at: None,
        fields: Vec::new(),
        doc: None,
        revision: Some(r.revision),
    }
}

/// Compares the generated entities of `part` with the store, refuses names made by hand,
/// and checks the result with the config file's validation.
pub(crate) fn plan(
    base: &Value,
    records: &[Record],
    (service, part): (&str, Part<'_>),
    url: &str,
    generated: &[Generated],
) -> Result<Plan, ApiError> {
    let owned = owned(records, service, part);
    taken(base, records, &owned, generated)?;
    let mut changes = Vec::new();
    let mut unchanged = Vec::new();
    let upstream = part.upstream(service);
    let existing = find(records, "upstreams", &upstream);
    let doc = upstream_doc(existing, &upstream, url);
    changes.extend(diff("upstream", &upstream, None, existing, doc));
    for g in generated {
        let existing = find(records, "routes", &g.name);
        let doc = merged(existing, &g.doc, part.generated_fields());
        match diff("route", &g.name, Some(&g.at), existing, doc) {
            Some(p) => changes.push(p),
            None => unchanged.push(g.name.clone()),
        }
    }
    for name in owned
        .iter()
        .filter(|n| !generated.iter().any(|g| &g.name == *n))
    {
        if let Some(r) = find(records, "routes", name) {
            changes.push(deletion("route", r));
        }
    }
    check(base, records, &changes, generated)?;
    Ok(Plan { changes, unchanged })
}

/// A generated name that a hand-made route (or the file) already uses stops the import.
fn taken(
    base: &Value,
    records: &[Record],
    owned: &[String],
    generated: &[Generated],
) -> Result<(), ApiError> {
    let file = validate::base_names(base, "routes");
    let problems: Vec<Detail> = generated
        .iter()
        .filter(|g| !owned.contains(&g.name))
        .filter(|g| file.contains(&g.name) || find(records, "routes", &g.name).is_some())
        .map(|g| {
            let msg = format!("route `{}` already exists and was not made by importing this service; rename the operationId or the route", g.name);
            Detail::new(g.at.clone(), msg)
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(ApiError::conflict(
        "conflict",
        "route names of this document are taken by other routes",
    )
    .with_details(problems))
}

/// The upstream: the existing one with its targets replaced, or a new one.
fn upstream_doc(existing: Option<&Record>, name: &str, url: &str) -> Value {
    let mut doc = existing.map_or_else(|| json!({"name": name}), |r| r.doc.clone());
    doc["targets"] = json!([{"url": url}]);
    doc
}

/// The existing route with the generated `fields` replaced (an operator's `auth`, limits
/// and other additions stay).
fn merged(existing: Option<&Record>, generated: &Value, fields: &[&str]) -> Value {
    let Some(Value::Object(mut doc)) = existing.map(|r| r.doc.clone()) else {
        return generated.clone();
    };
    for field in fields {
        match generated.get(*field) {
            Some(v) => doc.insert((*field).to_owned(), v.clone()),
            None => doc.remove(*field),
        };
    }
    Value::Object(doc)
}

fn diff(
    kind: &'static str,
    name: &str,
    at: Option<&str>,
    existing: Option<&Record>,
    doc: Value,
) -> Option<Planned> {
    let (action, fields, revision) = match existing {
        None => ("create", Vec::new(), None),
        Some(r) if r.doc == doc => return None,
        Some(r) => ("update", changed_fields(&r.doc, &doc), Some(r.revision)),
    };
    Some(Planned {
        action,
        kind,
        name: name.to_owned(),
        at: at.map(str::to_owned),
        fields,
        doc: Some(doc),
        revision,
    })
}

fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    let keys = |v: &Value| {
        v.as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut fields: Vec<String> = keys(old).into_iter().chain(keys(new)).collect();
    fields.sort();
    fields.dedup();
    fields.retain(|f| old.get(f) != new.get(f));
    fields
}

fn store_kind(p: &Planned) -> &'static str {
    if p.kind == "upstream" {
        "upstreams"
    } else {
        "routes"
    }
}

/// The config file's validation over every write at once; problems in generated routes
/// are reported at their operation.
pub(crate) fn check(
    base: &Value,
    records: &[Record],
    changes: &[Planned],
    generated: &[Generated],
) -> Result<(), ApiError> {
    let writes: Vec<Change<'_>> = changes
        .iter()
        .map(|p| match &p.doc {
            Some(doc) => Change::Put {
                kind: store_kind(p),
                name: &p.name,
                doc,
            },
            None => Change::Delete {
                kind: store_kind(p),
                name: &p.name,
            },
        })
        .collect();
    let problems = validate::check_all(base, records, &writes);
    if problems.is_empty() {
        return Ok(());
    }
    let located = problems.into_iter().map(|d| locate(d, generated)).collect();
    Err(invalid_document(located))
}

/// `routes["getPet"].paths[0]` → `paths["/pets/{id}"].get` with the route's field named.
fn locate(d: Detail, generated: &[Generated]) -> Detail {
    for g in generated {
        let prefix = format!("routes[{:?}]", g.name);
        if let Some(rest) = d.path.strip_prefix(&prefix) {
            let field = rest.trim_start_matches('.');
            return Detail::new(
                g.at.clone(),
                format!("route `{}` {field}: {}", g.name, d.message),
            );
        }
    }
    d
}

pub(crate) fn invalid_document(details: Vec<Detail>) -> ApiError {
    let n = details.len();
    let s = if n == 1 { "" } else { "s" };
    ApiError::bad_request(
        "invalid_document",
        format!("the OpenAPI document cannot be published ({n} problem{s})"),
    )
    .with_details(details)
}

/// Makes the writes in `tx`: the upstream first, then routes, deletes last.
pub(crate) async fn apply(tx: &mut WriteTx, caller: &Caller, plan: &Plan) -> Result<(), ApiError> {
    for p in &plan.changes {
        let kind = store_kind(p);
        match (&p.doc, p.revision) {
            (Some(doc), None) => drop(tx.create(kind, &p.name, doc.clone(), &caller.actor).await?),
            (Some(doc), rev) => drop(
                tx.update(kind, &p.name, doc.clone(), rev, &caller.actor)
                    .await?,
            ),
            (None, rev) => tx.delete(kind, &p.name, rev, &caller.actor).await?,
        }
    }
    Ok(())
}
