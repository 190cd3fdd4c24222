//! `GET | PUT | DELETE /api/v1/policies`: the global policies (the configuration's
//! `policies:` section, applied to every route that does not override them) as one store
//! document, kind `policies`, name `global`.
//!
//! The rule with the file is per section (docs/admin.md, "File and store: the rule"): when
//! the file sets `policies:`, the file's section applies and a `PUT` is refused with 409
//! `read_only`, like a file-defined entity; otherwise the store's document *is* the global
//! policies. A `DELETE` only ever removes the store's document, so it is allowed either way.
//!
//! Writes go through the entities' path: the writer lock, validation of the merged
//! configuration with the file's own checks (problems relative to the body: `cors.origins`),
//! `If-Match` against the document's revision, one audited store write, and the change feed
//! that every node rebuilds from. Revision 0 stands for "no store document", so `If-Match:
//! "0"` makes a `PUT` that only creates.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;
use turnpike_store::Record;

use crate::auth::Caller;
use crate::body::{JsonBody, etag, if_match};
use crate::entities::{find, invalid, refuse};
use crate::error::{ApiError, Detail, ErrorBody};
use crate::kinds::{GLOBAL, POLICIES};
use crate::state::AdminState;
use crate::validate::{self, Change};

#[allow(unused_imports, reason = "named only by the OpenAPI attributes")]
use crate::schema;

/// Response header saying where the global policies in effect come from: `store`, `file`
/// (read-only here) or `none` (no global policies).
pub(crate) const SOURCE_HEADER: &str = "turnpike-policies-source";

#[utoipa::path(get, path = "/api/v1/policies", tag = "policies", operation_id = "get_policies",
    security(("bearer" = [])),
    responses((status = 200, description = "The global policies in effect. `Turnpike-Policies-Source` says where they come from (`store`, `file` or `none`); `ETag` is the store document's revision (`\"0\"`: none stored), absent when the file's apply", body = schema::Policies),
        (status = 401, body = ErrorBody)))]
pub(crate) async fn get(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let base = state.base();
    if file_sets(&base) {
        let doc = base.get(POLICIES).cloned().unwrap_or_default();
        return Ok(document(StatusCode::OK, doc, None, "file"));
    }
    Ok(match state.store().get(POLICIES, GLOBAL).await? {
        Some(record) => stored(StatusCode::OK, record),
        None => document(
            StatusCode::OK,
            Value::Object(Default::default()),
            Some(0),
            "none",
        ),
    })
}

#[utoipa::path(put, path = "/api/v1/policies", tag = "policies", operation_id = "replace_policies",
    request_body = schema::Policies,
    params(("If-Match" = Option<String>, Header, description = "Replace only at this revision (its ETag); `\"0\"`: only if the store holds none")),
    security(("bearer" = [])),
    responses((status = 200, description = "Replaced; `ETag` is the new revision", body = schema::Policies),
        (status = 201, description = "Stored for the first time", body = schema::Policies),
        (status = 400, description = "Invalid; `details` name the fields", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "The configuration file sets `policies:` (`read_only`)", body = ErrorBody),
        (status = 412, description = "`If-Match` is not the current revision", body = ErrorBody)))]
pub(crate) async fn replace(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    JsonBody(doc): JsonBody,
) -> Result<Response, ApiError> {
    let expect = if_match(&headers)?;
    if !doc.is_object() {
        return Err(invalid(vec![Detail::new("", "expected a JSON object")]));
    }
    let _one_writer = state.inner.writes.lock().await;
    let base = state.base();
    if file_sets(&base) {
        return Err(ApiError::conflict(
            "read_only",
            "the global policies are set by the configuration file (`policies:`); change them there, or remove the section to manage them here",
        ));
    }
    let mut tx = state.store().begin_write().await?;
    let (_, records) = tx.snapshot().await?;
    let existing = find(&records, POLICIES, GLOBAL);
    precondition(existing, expect)?;
    let put = Change::Put {
        kind: POLICIES,
        name: GLOBAL,
        doc: &doc,
    };
    refuse(
        validate::check(&base, &records, put),
        StatusCode::BAD_REQUEST,
    )?;
    let (status, record) = if existing.is_some() {
        let record = tx.update(POLICIES, GLOBAL, doc, expect, &caller.actor);
        (StatusCode::OK, record.await?)
    } else {
        let record = tx.create(POLICIES, GLOBAL, doc, &caller.actor);
        (StatusCode::CREATED, record.await?)
    };
    tx.commit().await?;
    tracing::info!(revision = record.revision, actor = %caller.actor, "global policies replaced");
    Ok(stored(status, record))
}

#[utoipa::path(delete, path = "/api/v1/policies", tag = "policies", operation_id = "delete_policies",
    params(("If-Match" = Option<String>, Header, description = "Delete only at this revision (its ETag)")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted: the file's `policies:` (or none) apply again"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "The store holds no global policies", body = ErrorBody),
        (status = 409, description = "The configuration would be invalid without them", body = ErrorBody),
        (status = 412, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let expect = if_match(&headers)?;
    let _one_writer = state.inner.writes.lock().await;
    let base = state.base();
    let mut tx = state.store().begin_write().await?;
    let (_, records) = tx.snapshot().await?;
    let Some(existing) = find(&records, POLICIES, GLOBAL) else {
        return Err(ApiError::not_found(
            "the store holds no global policies".to_owned(),
        ));
    };
    precondition(Some(existing), expect)?;
    let del = Change::Delete {
        kind: POLICIES,
        name: GLOBAL,
    };
    refuse(validate::check(&base, &records, del), StatusCode::CONFLICT)?;
    tx.delete(POLICIES, GLOBAL, expect, &caller.actor).await?;
    tx.commit().await?;
    tracing::info!(actor = %caller.actor, "global policies deleted from the store");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Whether the file's configuration sets the global policies (then they are read-only).
fn file_sets(base: &Value) -> bool {
    base.as_object()
        .is_some_and(crate::kinds::file_sets_policies)
}

/// Checks `If-Match` before validating, so a stale writer hears 412 and not about fields;
/// no store document is revision 0. The store checks it again inside its transaction.
fn precondition(existing: Option<&Record>, expect: Option<i64>) -> Result<(), ApiError> {
    let current = existing.map_or(0, |r| r.revision);
    match expect {
        Some(revision) if revision != current => {
            Err(turnpike_store::StoreError::RevisionMismatch { current }.into())
        }
        _ => Ok(()),
    }
}

fn stored(status: StatusCode, record: Record) -> Response {
    document(status, record.doc, Some(record.revision), "store")
}

/// The document as written, its revision as `ETag` (when it has one) and its source.
fn document(status: StatusCode, doc: Value, revision: Option<i64>, source: &str) -> Response {
    let mut response = (status, Json(doc)).into_response();
    let headers = response.headers_mut();
    if let Some(v) = revision.and_then(|r| HeaderValue::from_str(&etag(r)).ok()) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(source) {
        headers.insert(SOURCE_HEADER, v);
    }
    response
}
