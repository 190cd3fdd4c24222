//! `GET /api/v1/services`: the services published from OpenAPI documents, one page at a
//! time like every other list, as summaries. The documents themselves can be large, so a
//! list leaves them out; `GET /api/v1/services/{name}/openapi` gives one back.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use turnpike_store::Record;
use utoipa::ToSchema;

use crate::entities::{ListParams, list_query};
use crate::error::{ApiError, ErrorBody};
use crate::services::KIND;
use crate::state::AdminState;

/// A published service, without its document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceSummary {
    pub name: String,
    /// The upstream the import made (named after the service).
    pub upstream: String,
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
}

/// One page of services.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceList {
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

fn summary(record: &Record) -> ServiceSummary {
    let doc = &record.doc;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let info = doc.pointer("/document/info");
    ServiceSummary {
        name: record.name.clone(),
        upstream: text(doc.get("upstream")).unwrap_or_else(|| record.name.clone()),
        url: text(doc.get("url")),
        prefix: text(doc.get("prefix")),
        validate: doc.get("validate").and_then(Value::as_bool) == Some(true),
        routes: doc
            .get("routes")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(|n| text(Some(n))).collect())
            .unwrap_or_default(),
        title: text(info.and_then(|i| i.get("title"))),
        version: text(info.and_then(|i| i.get("version"))),
        updated_at: record.updated_at.clone(),
    }
}
