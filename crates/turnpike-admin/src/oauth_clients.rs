//! OAuth clients of the gateway's authorization server as store entities
//! (`/api/v1/oauth-clients`), merged into the file's `oauth.clients` and validated like them.
//!
//! The stored document is the file's client object (`client_id`, `secret_hash`, `scopes`,
//! `consumer`), so only an argon2 hash of the secret is ever stored, returned or audited.
//! A `POST` without `secret_hash` makes a random secret and returns it in that response
//! only (like API keys); a `POST` with one takes the hash as given (`turnpike secret
//! generate`). A `PUT` without `secret_hash` keeps the stored one, so changing a client's
//! scopes does not rotate its secret.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use ring::rand::SystemRandom;
use serde_json::Value;
use turnpike_store::Record;

use crate::auth::Caller;
use crate::body::{etag, segment};
use crate::entities::{create_record, invalid};
use crate::error::{ApiError, Detail};
use crate::kinds::public_view;
use crate::state::AdminState;

/// Characters of a generated secret: base62, about 256 bits.
const SECRET_LEN: usize = 43;

/// `POST /api/v1/oauth-clients`: creates the client; with no `secret_hash` in `doc`, makes
/// the secret and returns it as `client_secret`, this once.
pub(crate) async fn create(
    state: &AdminState,
    caller: &Caller,
    kind: &str,
    mut doc: Value,
) -> Result<Response, ApiError> {
    let mut secret = None;
    if let Some(fields) = doc.as_object_mut() {
        if !fields.contains_key("secret_hash") {
            let (plain, hash) = new_secret().await?;
            fields.insert("secret_hash".to_owned(), Value::String(hash));
            secret = Some(plain);
        }
    }
    let record = create_record(state, caller, kind, doc).await?;
    tracing::info!(client_id = %record.name, actor = %caller.actor, generated_secret = secret.is_some(), "OAuth client created");
    Ok(created(kind, &record, secret))
}

/// A random secret and its argon2id hash. Hashing takes tens of milliseconds of CPU and
/// memory, so it runs off the async workers, and before the writer lock is taken.
async fn new_secret() -> Result<(String, String), ApiError> {
    let secret = crate::token::base62(&SystemRandom::new(), SECRET_LEN)
        .map_err(|e| ApiError::internal("OAuth client secret generation", &e))?;
    let plain = secret.clone();
    let hash = tokio::task::spawn_blocking(move || turnpike_policy::password::hash(&plain))
        .await
        .map_err(|e| ApiError::internal("OAuth client secret hashing", &e))?
        .map_err(|e| ApiError::internal("OAuth client secret hashing", &e))?;
    Ok((secret, hash))
}

/// 201 with the entity, plus `client_secret` when it was generated; never cached.
fn created(kind: &str, record: &Record, secret: Option<String>) -> Response {
    let mut body = public_view(kind, record.doc.clone());
    if let (Some(secret), Some(fields)) = (secret, body.as_object_mut()) {
        fields.insert("client_secret".to_owned(), Value::String(secret));
    }
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let headers = response.headers_mut();
    // The secret may be in this body: no cache along the way may keep it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&etag(record.revision)) {
        headers.insert(header::ETAG, v);
    }
    let location = format!("/api/v1/{kind}/{}", segment(&record.name));
    if let Ok(v) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    response
}

/// Under the writer lock: a `PUT` without `secret_hash` keeps the stored one. A secret in
/// clear is refused by name, so it is not echoed back as an unknown field either.
pub(crate) fn complete(doc: &mut Value, existing: Option<&Record>) -> Result<(), ApiError> {
    let Some(fields) = doc.as_object_mut() else {
        return Ok(());
    };
    if fields.contains_key("client_secret") {
        let msg = "send `secret_hash` (an argon2 hash, from `turnpike secret generate`), or neither to have a secret generated on create; a secret in clear is never stored";
        return Err(invalid(vec![Detail::new("client_secret", msg)]));
    }
    let stored = existing.and_then(|r| r.doc.get("secret_hash"));
    if let (false, Some(hash)) = (fields.contains_key("secret_hash"), stored) {
        fields.insert("secret_hash".to_owned(), hash.clone());
    }
    Ok(())
}
