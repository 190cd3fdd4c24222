//! Liveness, readiness and the audit log.
//!
//! `/healthz` only says the process answers. `/readyz` says whether this node serves, and
//! follows, what the file and the store say: the change feed reached the store on its last
//! poll, and the last rebuild applied the store's entities (see [`crate::applied`]). A node
//! that loses the store, or whose merged configuration is refused, keeps serving its last
//! good config, so it is alive but not ready.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use turnpike_store::{AuditEntry, AuditQuery, MAX_LIMIT};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, Detail, ErrorBody};
use crate::state::AdminState;

/// Liveness or readiness, with the reasons when not ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Why the node is not ready; empty when it is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The config version this node has seen (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_version: Option<i64>,
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        reasons: Vec::new(),
        config_version: None,
    })
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready; `reasons` say why", body = Health)))]
pub(crate) async fn readyz(State(state): State<AdminState>) -> Response {
    let feed = &state.inner.feed;
    let mut reasons = Vec::new();
    if !feed.healthy() {
        let why = feed
            .last_error()
            .unwrap_or_else(|| "not reached yet".to_owned());
        reasons.push(format!("config store unreachable: {why}"));
    }
    reasons.extend(state.config_status().reason());
    let ready = reasons.is_empty();
    let body = Health {
        status: if ready { "ok" } else { "unavailable" }.to_owned(),
        reasons,
        config_version: Some(feed.version()),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Which audit entries, newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Entries per page, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// The previous page's `next`: entries older than this id.
    before_id: Option<i64>,
    /// Only this entity kind (`routes`, ..., `admin_token`).
    kind: Option<String>,
    /// Only this entity name.
    name: Option<String>,
}

/// One audited write: who, when, what, and the document before and after.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    /// RFC 3339, UTC.
    pub at: String,
    /// `token:<id>` of the admin token used, or `system`.
    pub actor: String,
    /// `create`, `update`, `delete`, `revoke`.
    pub action: String,
    pub kind: String,
    pub name: String,
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
}

/// One page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditRecord>,
    /// Pass as `before_id` for older entries; absent on the last page.
    pub next: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    security(("bearer" = [])),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn audit(
    State(state): State<AdminState>,
    q: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = crate::body::query(q)?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )
        .with_details(vec![Detail::new("limit", format!("found {limit}"))]));
    }
    let query = AuditQuery {
        limit,
        before_id: p.before_id,
        kind: p.kind,
        name: p.name,
    };
    let entries = state.store().audit(&query).await?;
    // A full page may have more behind it; a short one is the last.
    let full = entries.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next = entries.last().filter(|_| full).map(|e| e.id);
    let items = entries.into_iter().map(record).collect();
    Ok(Json(AuditPage { items, next }).into_response())
}

fn record(e: AuditEntry) -> AuditRecord {
    AuditRecord {
        id: e.id,
        at: e.at,
        actor: e.actor,
        action: e.action,
        kind: e.kind,
        name: e.name,
        before: e.before,
        after: e.after,
    }
}
