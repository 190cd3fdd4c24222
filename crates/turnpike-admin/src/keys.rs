//! API keys of store consumers: create (the key is in the response once and never again)
//! and revoke. Only the key's id and its keyed hash (under the file's `auth.key_secret`)
//! are written to the consumer entity, so the store, the audit log and every `GET` see the
//! hash at most. The plain key is never logged.
//!
//! A key is a change to its consumer, validated and stored like a `PUT` of the consumer
//! (same writer lock, same `If-Match` on the revision read), so the gateway serves it
//! within a second like any other write.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::entities::{Locked, find, lock, not_found, refuse};
use crate::error::{ApiError, Detail, ErrorBody};
use crate::state::AdminState;
use crate::validate::{self, Change};

const KIND: &str = "consumers";

/// Optional settings of a new key; the body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// RFC 3339 instant after which the key no longer works (default: never).
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A new API key: `key` is shown this once; only `id` and a hash are kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub consumer: String,
    /// The id part of `tp_<id>_<secret>`; names the key in `keys`, the audit log and revoke.
    pub id: String,
    /// `tp_<id>_<secret>`: what the client sends (by default in `x-api-key`).
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/consumers/{name}/keys", tag = "consumers", operation_id = "create_key",
    params(("name" = String, Path, description = "The consumer's name")),
    request_body(content = Option<CreateKey>, description = "Optional; `{}` or no body for a key without expiry"),
    security(("bearer" = [])),
    responses((status = 201, description = "Created; the key is shown only here", body = CreatedKey),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The consumer is defined in the file, or the file has no `auth.key_secret`", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    name: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = crate::entities::name(name)?;
    let request = parse_request(&body)?;
    let secret = key_secret(&state)?;
    let _one_writer = state.inner.writes.lock().await;
    let locked = lock(&state, KIND, &name).await?;
    let existing = find(&locked.records, KIND, &name).ok_or_else(|| not_found(KIND, &name))?;
    let new = turnpike_policy::key_auth::generate(&secret)
        .map_err(|e| ApiError::internal("API key generation", &e))?;
    let mut entry = Map::new();
    entry.insert("id".to_owned(), Value::String(new.id.clone()));
    entry.insert("hash".to_owned(), Value::String(new.hash));
    if let Some(at) = &request.expires_at {
        entry.insert("expires_at".to_owned(), Value::String(at.clone()));
    }
    let mut doc = existing.doc.clone();
    let keys = keys_of(&mut doc)?;
    keys.push(Value::Object(entry));
    let new_key = format!("keys[{}].", keys.len() - 1);
    let revision = existing.revision;
    save(&caller, locked, (&name, revision), doc, Some(&new_key)).await?;
    // The id only: the key itself must never reach a log.
    tracing::info!(consumer = %name, key_id = %new.id, actor = %caller.actor, "API key created");
    let created = CreatedKey {
        consumer: name,
        id: new.id,
        key: new.key,
        expires_at: request.expires_at,
    };
    // The key is in this body: no cache along the way may keep it.
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    Ok((StatusCode::CREATED, no_store, Json(created)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/consumers/{name}/keys/{id}", tag = "consumers", operation_id = "revoke_key",
    params(("name" = String, Path, description = "The consumer's name"),
        ("id" = String, Path, description = "The key's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked (or already revoked)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The consumer is defined in the file", body = ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (name, id) = path
        .map(|Path(p)| p)
        .map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let _one_writer = state.inner.writes.lock().await;
    let locked = lock(&state, KIND, &name).await?;
    let existing = find(&locked.records, KIND, &name).ok_or_else(|| not_found(KIND, &name))?;
    let revision = existing.revision;
    let mut doc = existing.doc.clone();
    let key = keys_of(&mut doc)?
        .iter_mut()
        .find(|k| k.get("id").and_then(Value::as_str) == Some(id.as_str()))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiError::not_found(format!("consumer {name:?} has no API key {id:?}")))?;
    if key.get("revoked") == Some(&Value::Bool(true)) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    key.insert("revoked".to_owned(), Value::Bool(true));
    save(&caller, locked, (&name, revision), doc, None).await?;
    tracing::info!(consumer = %name, key_id = %id, actor = %caller.actor, "API key revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Validates the changed consumer like a `PUT` and stores it at the revision it was read at,
/// under the writer lock it was read with. Problems inside the new key (`new_key`: its path
/// prefix) are reported relative to the request body, which holds only the key's fields.
async fn save(
    caller: &Caller,
    locked: Locked,
    (name, revision): (&str, i64),
    doc: Value,
    new_key: Option<&str>,
) -> Result<(), ApiError> {
    let Locked {
        base,
        records,
        mut tx,
    } = locked;
    let put = Change::Put {
        kind: KIND,
        name,
        doc: &doc,
    };
    let mut problems = validate::check(&base, &records, put);
    if let Some(prefix) = new_key {
        for p in &mut problems {
            if let Some(rest) = p.path.strip_prefix(prefix) {
                p.path = rest.to_owned();
            }
        }
    }
    refuse(problems, StatusCode::BAD_REQUEST)?;
    tx.update(KIND, name, doc, Some(revision), &caller.actor)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The consumer's `keys` list, created when absent.
fn keys_of(doc: &mut Value) -> Result<&mut Vec<Value>, ApiError> {
    let fields = doc
        .as_object_mut()
        .ok_or_else(|| ApiError::internal("consumer document", &"not an object"))?;
    let keys = fields
        .entry("keys")
        .or_insert_with(|| Value::Array(Vec::new()));
    keys.as_array_mut()
        .ok_or_else(|| ApiError::internal("consumer document", &"`keys` is not a list"))
}

fn parse_request(body: &[u8]) -> Result<CreateKey, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CreateKey::default());
    }
    let value = crate::body::parse_json(body)?;
    serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ApiError::bad_request("invalid_request", "the key request is invalid")
            .with_details(vec![Detail::new(path, e.inner().to_string())])
    })
}

/// The file's `auth.key_secret`, which every key hash is keyed with.
fn key_secret(state: &AdminState) -> Result<String, ApiError> {
    let base = state.base();
    match base.pointer("/auth/key_secret").and_then(Value::as_str) {
        Some(secret) if !secret.is_empty() => Ok(secret.to_owned()),
        _ => Err(ApiError::conflict(
            "no_key_secret",
            "the gateway's configuration file has no `auth.key_secret`, so API keys cannot be made; set it (usually `${TURNPIKE_KEY_SECRET}`) and restart or reload",
        )),
    }
}
