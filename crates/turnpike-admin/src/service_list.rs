//! `GET /api/v1/services`: the services published from OpenAPI documents, one page at a
//! time like every other list, as summaries with their versions; `GET
//! /api/v1/services/{name}` is one of them. The documents themselves can be large, so
//! summaries leave them out; `GET /api/v1/services/{name}/openapi` (or
//! `.../versions/{version}/openapi`) gives one back.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use turnpike_store::Record;
use utoipa::ToSchema;

use crate::entities::{self, ListParams, list_query};
use crate::error::{ApiError, ErrorBody};
use crate::import::Selector;
use crate::services::KIND;
use crate::services::versions::LifecycleBody;
use crate::state::AdminState;

/// A published service, without its document.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ServiceSummary {
    pub name: String,
    /// The upstream the unversioned import made (named after the service); absent when
    /// the service has only versions.
    pub upstream: Option<String>,
    /// The upstream's URL as last imported.
    pub url: Option<String>,
    /// The path the routes are published under, when one was given.
    pub prefix: Option<String>,
    /// Whether requests are validated against the document's schemas.
    pub validate: bool,
    /// The routes the last import generated.
    pub routes: Vec<String>,
    /// The document's `info.title` and `info.version`.
    pub title: Option<String>,
    pub version: Option<String>,
    /// RFC 3339, UTC: when the service was last imported.
    pub updated_at: String,
    /// Its versions, in name order.
    pub versions: Vec<VersionSummary>,
}

/// One version of a service, without its document.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VersionSummary {
    /// The version's name (`v2`).
    pub name: String,
    /// How requests choose it.
    pub selector: Option<Selector>,
    /// The upstream its import made (`{service}-{version}`).
    pub upstream: String,
    pub url: Option<String>,
    pub prefix: Option<String>,
    pub validate: bool,
    /// On every route of the version (`published` when never set).
    pub lifecycle: LifecycleBody,
    /// The routes its last import generated.
    pub routes: Vec<String>,
    /// The document's `info.title` and `info.version`.
    pub title: Option<String>,
    pub document_version: Option<String>,
}

/// One page of services.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ServiceList {
    pub items: Vec<ServiceSummary>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/services", tag = "services", operation_id = "list_services",
    params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "One page, in name order", body = ServiceList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AdminState>,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = list_query(crate::body::query(q)?)?;
    let page = state.store().list(KIND, &query).await?;
    let items = page.items.iter().map(summary).collect();
    Ok(Json(ServiceList {
        items,
        next: page.next,
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/services/{name}", tag = "services", operation_id = "get_service",
    params(("name" = String, Path, description = "The service's name")),
    security(("bearer" = [])),
    responses((status = 200, description = "The service with its versions, without documents", body = ServiceSummary),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AdminState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let service = entities::name(name)?;
    match state.store().get(KIND, &service).await? {
        Some(r) => Ok(Json(summary(&r)).into_response()),
        None => Err(ApiError::not_found(format!(
            "service {service:?} does not exist"
        ))),
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_owned)
}

fn names(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|r| r.iter().filter_map(|n| text(Some(n))).collect())
        .unwrap_or_default()
}

fn version(name: &str, part: &Value) -> VersionSummary {
    let info = part.pointer("/document/info");
    VersionSummary {
        name: name.to_owned(),
        selector: part
            .get("selector")
            .and_then(|s| serde_json::from_value(s.clone()).ok()),
        upstream: text(part.get("upstream")).unwrap_or_default(),
        url: text(part.get("url")),
        prefix: text(part.get("prefix")),
        validate: part.get("validate").and_then(Value::as_bool) == Some(true),
        lifecycle: part
            .get("lifecycle")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_else(|| LifecycleBody {
                state: Some("published".to_owned()),
                ..LifecycleBody::default()
            }),
        routes: names(part.get("routes")),
        title: text(info.and_then(|i| i.get("title"))),
        document_version: text(info.and_then(|i| i.get("version"))),
    }
}

fn summary(record: &Record) -> ServiceSummary {
    let doc = &record.doc;
    let info = doc.pointer("/document/info");
    ServiceSummary {
        name: record.name.clone(),
        upstream: text(doc.get("upstream")),
        url: text(doc.get("url")),
        prefix: text(doc.get("prefix")),
        validate: doc.get("validate").and_then(Value::as_bool) == Some(true),
        routes: names(doc.get("routes")),
        title: text(info.and_then(|i| i.get("title"))),
        version: text(info.and_then(|i| i.get("version"))),
        updated_at: record.updated_at.clone(),
        versions: doc
            .get("versions")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(n, p)| version(n, p)).collect())
            .unwrap_or_default(),
    }
}
