//! Admin token management (admin role): list without hashes, create (the token is in the
//! response once and never again), revoke. The audit log of the store records each.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use turnpike_store::{NewToken, TokenRow};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::{ApiError, Detail, ErrorBody};
use crate::state::AdminState;
use crate::token::{self, Role};

/// A stored admin token, without its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    /// The `<id>` of `tpa_<id>_<secret>`.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub revoked: bool,
}

/// All admin tokens, revoked ones included, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenInfo>,
}

/// What a new token is for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// For people: who or what uses it.
    pub name: String,
    pub role: Role,
}

/// A new token: `token` is shown this once; only its hash is kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// `tpa_<id>_<secret>`: use as `Authorization: Bearer <token>`.
    pub token: String,
}

fn info(row: TokenRow) -> Result<TokenInfo, ApiError> {
    let role = Role::parse(&row.role)
        .ok_or_else(|| ApiError::internal("token with an unknown role", &row.id))?;
    Ok(TokenInfo {
        id: row.id,
        name: row.name,
        role,
        created_at: row.created_at,
        revoked: row.revoked,
    })
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", operation_id = "list_tokens", security(("bearer" = [])),
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub(crate) async fn list(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let rows = state.store().tokens().await?;
    let items = rows.into_iter().map(info).collect::<Result<_, _>>()?;
    Ok(Json(TokenList { items }).into_response())
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", operation_id = "create_token", request_body = CreateToken,
    security(("bearer" = [])),
    responses((status = 201, description = "Created; the token is shown only here", body = CreatedToken),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let request: CreateToken = serde_path_to_error::deserialize(&body).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ApiError::bad_request("invalid_request", "the token request is invalid")
            .with_details(vec![Detail::new(path, e.inner().to_string())])
    })?;
    let name = request.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(
            ApiError::bad_request("invalid_request", "the token request is invalid")
                .with_details(vec![Detail::new("name", "must be 1 to 200 characters")]),
        );
    }
    let new = token::generate().map_err(|e| ApiError::internal("token generation", &e))?;
    let row = NewToken {
        id: new.id,
        name: name.to_owned(),
        role: request.role.as_str().to_owned(),
        hash: new.hash,
    };
    let row = state.store().create_token_as(&row, &caller.actor).await?;
    let created = CreatedToken {
        info: info(row)?,
        token: new.token,
    };
    // The secret is in this body: no cache along the way may keep it.
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    Ok((StatusCode::CREATED, no_store, Json(created)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", operation_id = "revoke_token",
    params(("id" = String, Path, description = "The token's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "It is the last active admin token", body = ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = crate::entities::name(id)?;
    let tokens = state.store().tokens().await?;
    let Some(target) = tokens.iter().find(|t| t.id == id) else {
        return Err(ApiError::not_found(format!("admin token {id:?} not found")));
    };
    let admin = Role::Admin.as_str();
    let other_admins = tokens
        .iter()
        .filter(|t| t.id != id && !t.revoked && t.role == admin)
        .count();
    // Revoking the last admin token would leave nobody able to make another one.
    if target.role == admin && !target.revoked && other_admins == 0 {
        return Err(ApiError::conflict(
            "conflict",
            "this is the last active admin token; create another admin token first",
        ));
    }
    state.store().revoke_token(&id, &caller.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
