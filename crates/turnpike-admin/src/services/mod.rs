//! Services published from OpenAPI documents: `POST /api/v1/services/{name}/openapi`
//! turns a document into an upstream and one route per operation (see [`crate::import`]),
//! and a re-import updates them in place; `GET` gives the stored document back. A service
//! can also hold versions, each with its own document, upstream, selector and lifecycle
//! (see [`versions`]).
//!
//! The `services` entity keeps the documents, the imports' options and the names of the
//! routes each generated (see [`part`]). Only those routes are ever updated or deleted by a
//! re-import, so hand-made routes are never touched; an operation whose route name is taken
//! by another route is refused. Writes are checked together with the config file's
//! validation before any is made, then applied in one store transaction under the writer
//! lock the check read with: an import or a delete is all or nothing, and no other writer
//! gets in between.

mod part;
mod plan;
pub(crate) mod versions;

use axum::Extension;
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use turnpike_store::Record;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::entities::{self, Locked, find};
use crate::error::{ApiError, ErrorBody};
use crate::import::{self, DocumentBody};
use crate::state::AdminState;
use part::{Part, Settings, route_names, with_part};
pub(crate) use plan::{ImportReport, Planned};
use plan::{Plan, apply, check, deletion, invalid_document};

/// The store kind of services.
pub(crate) const KIND: &str = "services";

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
    let locked = entities::lock(&state, "upstreams", &service).await?;
    let previous = find(&locked.records, KIND, &service).and_then(|r| Part::Default.stored(&r.doc));
    let settings = Settings::merge(
        params.upstream.as_deref(),
        params.prefix.as_deref(),
        params.validate,
        previous,
    )?;
    let job = Job {
        service: &service,
        part: Part::Default,
        settings,
        dry_run: params.dry_run,
    };
    let report = publish(locked, &caller, job, doc).await?;
    Ok(Json(report).into_response())
}

/// One import to make: a part of a service, with the options it is made with.
pub(crate) struct Job<'a> {
    pub(crate) service: &'a str,
    pub(crate) part: Part<'a>,
    pub(crate) settings: Settings,
    pub(crate) dry_run: bool,
}

/// Generates `doc`'s routes for the job, plans the writes and (unless a dry run) makes
/// them and saves the service, all in the transaction `locked` holds.
pub(crate) async fn publish(
    locked: Locked,
    caller: &Caller,
    job: Job<'_>,
    doc: Value,
) -> Result<ImportReport, ApiError> {
    let Locked {
        base,
        records,
        mut tx,
    } = locked;
    let Job {
        service,
        part,
        settings,
        dry_run,
    } = job;
    let options = settings.options(service, part);
    let generated = import::routes(&doc, &options).map_err(invalid_document)?;
    let plan = plan::plan(&base, &records, (service, part), &settings.url, &generated)?;
    if !dry_run {
        apply(&mut tx, caller, &plan).await?;
        let previous = find(&records, KIND, service);
        let entity = with_part(
            previous.map(|r| &r.doc),
            (service, part),
            &settings,
            &generated,
            doc,
        );
        save(
            &mut tx,
            caller,
            previous.map(|r| r.revision),
            service,
            entity,
        )
        .await?;
        tx.commit().await?;
    }
    Ok(plan.report(service, part, dry_run))
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
    let Some(record) = state.store().get(KIND, &service).await? else {
        return Err(ApiError::not_found(format!(
            "service {service:?} does not exist"
        )));
    };
    match Part::Default.stored(&record.doc) {
        Some(part) => {
            Ok(Json(part.get("document").cloned().unwrap_or(Value::Null)).into_response())
        }
        None => Err(ApiError::not_found(format!(
            "service {service:?} has only versions; get a version's document at /api/v1/services/{service}/versions/{{version}}/openapi"
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
    let record = part::service(&records, &service)?;
    let deletes = deletions(&base, &records, (&service, &part::parts(&record.doc)))?;
    apply(&mut tx, &caller, &deletes).await?;
    tx.delete(KIND, &service, Some(record.revision), &caller.actor)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes of the routes `parts` of `service` generated, then of their upstreams, except an
/// upstream that hand-made routes still use (it stays). Refused when other entities depend
/// on the routes.
pub(crate) fn deletions(
    base: &Value,
    records: &[Record],
    (service, parts): (&str, &[Part<'_>]),
) -> Result<Plan, ApiError> {
    let Some(entity) = find(records, KIND, service) else {
        return Ok(Plan {
            changes: Vec::new(),
            unchanged: Vec::new(),
        });
    };
    let mut deletes: Vec<Planned> = parts
        .iter()
        .filter_map(|p| p.stored(&entity.doc))
        .flat_map(route_names)
        .filter_map(|n| find(records, "routes", &n))
        .map(|r| deletion("route", r))
        .collect();
    for p in parts {
        let Some(u) = find(records, "upstreams", &p.upstream(service)) else {
            continue;
        };
        deletes.push(deletion("upstream", u));
        if check(base, records, &deletes, &[]).is_err() {
            deletes.pop();
        }
    }
    check(base, records, &deletes, &[]).map_err(|e| {
        ApiError::conflict(
            "conflict",
            "other entities depend on this service's routes; change them first",
        )
        .with_details(e.details)
    })?;
    Ok(Plan {
        changes: deletes,
        unchanged: Vec::new(),
    })
}

async fn save(
    store: &mut turnpike_store::WriteTx,
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
