//! Services published from OpenAPI documents: `POST /api/v1/services/{name}/openapi`
//! turns a document into an upstream and one route per operation (see [`crate::import`]),
//! and a re-import updates them in place; `GET` gives the stored document back.
//!
//! The `services` entity keeps the document, the import's options and the names of the
//! routes it generated. Only those routes are ever updated or deleted by a re-import, so
//! hand-made routes are never touched; an operation whose route name is taken by another
//! route is refused. Writes are checked together with the config file's validation before
//! any is made, then applied in one store transaction under the writer lock the check read
//! with: an import or a delete is all or nothing, and no other writer gets in between.

use axum::Extension;
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use turnpike_store::{Record, WriteTx};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::entities::{self, Locked, find};
use crate::error::{ApiError, Detail, ErrorBody};
use crate::import::{self, DocumentBody, Generated, Options};
use crate::state::AdminState;
use crate::validate::{self, Change};

/// The store kind of services.
pub(crate) const KIND: &str = "services";

/// Route fields an import sets; a re-import leaves every other field as an operator set it.
const GENERATED_FIELDS: [&str; 7] = [
    "name",
    "paths",
    "path_type",
    "methods",
    "upstream",
    "rewrite",
    "validate",
];

/// How to publish; a re-import keeps the previous value of what it leaves out.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportParams {
    /// The upstream's URL (required on the first import).
    upstream: Option<String>,
    /// Publish under this path; the upstream gets the document's own paths.
    prefix: Option<String>,
    /// Check parameters and JSON bodies against the document's schemas.
    validate: Option<bool>,
    /// Only report what would change.
    #[serde(default)]
    dry_run: bool,
}

/// What an import did, or would do.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportReport {
    service: String,
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

#[utoipa::path(post, path = "/api/v1/services/{name}/openapi", tag = "services", operation_id = "import_openapi",
    params(("name" = String, Path, description = "The service (and its upstream's) name"), ImportParams),
    request_body(description = "An OpenAPI 3.0 or 3.1 document, as JSON or YAML",
        content((Object = "application/json"), (Object = "application/yaml"))),
    security(("bearer" = [])),
    responses((status = 200, description = "Imported (or, with `dry_run`, the plan)", body = ImportReport),
        (status = 400, description = "Not a usable OpenAPI 3.x document, or the routes would be invalid; `details` name the place", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "A route name or the upstream is taken by something this service did not make", body = ErrorBody)))]
pub(crate) async fn import(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<ImportParams>, QueryRejection>,
    DocumentBody(doc): DocumentBody,
) -> Result<Response, ApiError> {
    let service = entities::name(name)?;
    let params = crate::body::query(q)?;
    entities::check_name("name", &service)?;
    let _one_writer = state.inner.writes.lock().await;
    let Locked {
        base,
        records,
        mut tx,
    } = entities::lock(&state, "upstreams", &service).await?;
    let previous = find(&records, KIND, &service);
    let settings = Settings::merge(&params, previous)?;
    let generated = import::routes(&doc, &settings.options(&service)).map_err(invalid_document)?;
    let plan = plan(&base, &records, &service, &settings, &generated)?;
    if !params.dry_run {
        apply(&mut tx, &caller, &plan).await?;
        let entity = settings.entity(&service, &generated, doc);
        let previous = previous.map(|r| r.revision);
        save(&mut tx, &caller, previous, &service, entity).await?;
        tx.commit().await?;
    }
    Ok(Json(plan.report(&service, params.dry_run)).into_response())
}

#[utoipa::path(get, path = "/api/v1/services/{name}/openapi", tag = "services", operation_id = "get_service_openapi",
    params(("name" = String, Path, description = "The service's name")),
    security(("bearer" = [])),
    responses((status = 200, description = "The document as last imported", content_type = "application/json"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn document(
    State(state): State<AdminState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let service = entities::name(name)?;
    match state.store().get(KIND, &service).await? {
        Some(r) => Ok(Json(r.doc.get("document").cloned().unwrap_or(Value::Null)).into_response()),
        None => Err(ApiError::not_found(format!(
            "service {service:?} does not exist"
        ))),
    }
}

#[utoipa::path(delete, path = "/api/v1/services/{name}", tag = "services", operation_id = "delete_service",
    params(("name" = String, Path, description = "The service's name")),
    security(("bearer" = [])),
    responses((status = 204, description = "The service, its generated routes and (unless other routes use it) its upstream are deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Other entities depend on the generated routes", body = ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let service = entities::name(name)?;
    let _one_writer = state.inner.writes.lock().await;
    let Locked {
        base,
        records,
        mut tx,
    } = entities::lock(&state, "upstreams", &service).await?;
    let record = find(&records, KIND, &service)
        .ok_or_else(|| ApiError::not_found(format!("service {service:?} does not exist")))?;
    let mut deletes: Vec<Planned> = owned(&records, &service)
        .iter()
        .filter_map(|n| find(&records, "routes", n))
        .map(|r| deletion("route", r))
        .collect();
    let routes_only = deletes.len();
    if let Some(u) = find(&records, "upstreams", &service) {
        deletes.push(deletion("upstream", u));
    }
    // The upstream stays when hand-made routes still use it.
    if check(&base, &records, &deletes, &[]).is_err() {
        deletes.truncate(routes_only);
    }
    check(&base, &records, &deletes, &[]).map_err(|e| {
        ApiError::conflict(
            "conflict",
            "other entities depend on this service's routes; change them first",
        )
        .with_details(e.details)
    })?;
    let plan = Plan {
        changes: deletes,
        unchanged: Vec::new(),
    };
    apply(&mut tx, &caller, &plan).await?;
    tx.delete(KIND, &service, Some(record.revision), &caller.actor)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn deletion(kind: &'static str, r: &Record) -> Planned {
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

/// The route names the service's last import generated.
fn owned(records: &[Record], service: &str) -> Vec<String> {
    find(records, KIND, service)
        .and_then(|r| r.doc.get("routes")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// The import's options: the request's, else those of the previous import.
struct Settings {
    url: String,
    prefix: Option<String>,
    validate: bool,
}

impl Settings {
    fn merge(params: &ImportParams, previous: Option<&Record>) -> Result<Self, ApiError> {
        let old = |key: &str| previous.and_then(|r| r.doc.get(key));
        let url = params
            .upstream
            .clone()
            .or_else(|| old("url").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    "`upstream` (the upstream's URL) is required on the first import",
                )
                .with_details(vec![Detail::new("upstream", "required")])
            })?;
        let prefix = params
            .prefix
            .clone()
            .or_else(|| old("prefix").and_then(Value::as_str).map(str::to_owned));
        let validate = params
            .validate
            .or_else(|| old("validate").and_then(Value::as_bool))
            .unwrap_or(false);
        Ok(Self {
            url,
            prefix,
            validate,
        })
    }

    fn options(&self, service: &str) -> Options {
        Options {
            service: service.to_owned(),
            prefix: self.prefix.clone(),
            validate: self.validate,
        }
    }

    fn entity(&self, service: &str, generated: &[Generated], document: Value) -> Value {
        let routes: Vec<&str> = generated.iter().map(|g| g.name.as_str()).collect();
        json!({"name": service, "upstream": service, "url": self.url, "prefix": self.prefix,
            "validate": self.validate, "routes": routes, "document": document})
    }
}

/// The writes of an import, checked.
struct Plan {
    changes: Vec<Planned>,
    unchanged: Vec<String>,
}

impl Plan {
    fn report(&self, service: &str, dry_run: bool) -> ImportReport {
        ImportReport {
            service: service.to_owned(),
            dry_run,
            changes: self.changes.clone(),
            unchanged: self.unchanged.clone(),
        }
    }
}

/// Compares the generated entities with the store, refuses names made by hand, and checks
/// the result with the config file's validation.
fn plan(
    base: &Value,
    records: &[Record],
    service: &str,
    settings: &Settings,
    generated: &[Generated],
) -> Result<Plan, ApiError> {
    let owned = owned(records, service);
    taken(base, records, &owned, generated)?;
    let mut changes = Vec::new();
    let mut unchanged = Vec::new();
    let upstream = upstream_doc(find(records, "upstreams", service), service, &settings.url);
    changes.extend(diff(
        "upstream",
        service,
        None,
        find(records, "upstreams", service),
        upstream,
    ));
    for g in generated {
        let existing = find(records, "routes", &g.name);
        let doc = merged(existing, &g.doc);
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
fn upstream_doc(existing: Option<&Record>, service: &str, url: &str) -> Value {
    let mut doc = existing.map_or_else(|| json!({"name": service}), |r| r.doc.clone());
    doc["targets"] = json!([{"url": url}]);
    doc
}

/// The existing route with the generated fields replaced (an operator's `auth`, limits and
/// other additions stay).
fn merged(existing: Option<&Record>, generated: &Value) -> Value {
    let Some(Value::Object(mut doc)) = existing.map(|r| r.doc.clone()) else {
        return generated.clone();
    };
    for field in GENERATED_FIELDS {
        match generated.get(field) {
            Some(v) => doc.insert(field.to_owned(), v.clone()),
            None => doc.remove(field),
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

/// The config file's validation over every write at once; problems in generated routes
/// are reported at their operation.
fn check(
    base: &Value,
    records: &[Record],
    changes: &[Planned],
    generated: &[Generated],
) -> Result<(), ApiError> {
    let writes: Vec<Change<'_>> = changes
        .iter()
        .map(|p| {
            let kind = if p.kind == "upstream" {
                "upstreams"
            } else {
                "routes"
            };
            match &p.doc {
                Some(doc) => Change::Put {
                    kind,
                    name: &p.name,
                    doc,
                },
                None => Change::Delete {
                    kind,
                    name: &p.name,
                },
            }
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

fn invalid_document(details: Vec<Detail>) -> ApiError {
    let n = details.len();
    let s = if n == 1 { "" } else { "s" };
    ApiError::bad_request(
        "invalid_document",
        format!("the OpenAPI document cannot be published ({n} problem{s})"),
    )
    .with_details(details)
}

/// Makes the writes in `tx`: the upstream first, then routes, deletes last.
async fn apply(tx: &mut WriteTx, caller: &Caller, plan: &Plan) -> Result<(), ApiError> {
    let store = tx;
    for p in &plan.changes {
        let kind = if p.kind == "upstream" {
            "upstreams"
        } else {
            "routes"
        };
        match (&p.doc, p.revision) {
            (Some(doc), None) => drop(
                store
                    .create(kind, &p.name, doc.clone(), &caller.actor)
                    .await?,
            ),
            (Some(doc), rev) => drop(
                store
                    .update(kind, &p.name, doc.clone(), rev, &caller.actor)
                    .await?,
            ),
            (None, rev) => store.delete(kind, &p.name, rev, &caller.actor).await?,
        }
    }
    Ok(())
}

async fn save(
    store: &mut WriteTx,
    caller: &Caller,
    previous: Option<i64>,
    service: &str,
    entity: Value,
) -> Result<(), ApiError> {
    match previous {
        Some(revision) => drop(
            store
                .update(KIND, service, entity, Some(revision), &caller.actor)
                .await?,
        ),
        None => drop(store.create(KIND, service, entity, &caller.actor).await?),
    }
    Ok(())
}
