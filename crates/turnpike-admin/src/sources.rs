//! Which entity names the gateway's configuration file defines: they are read-only through
//! the API, and `turnpike config push` / `diff` skip them instead of trying to change them.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AdminState;
use crate::validate::base_names;

/// Names per section of the gateway's file (in file order).
#[derive(Debug, Serialize, ToSchema)]
pub struct FileEntities {
    pub upstreams: Vec<String>,
    pub routes: Vec<String>,
    pub consumers: Vec<String>,
    pub plans: Vec<String>,
    /// `client_id`s of the file's `oauth.clients`.
    #[serde(rename = "oauth-clients")]
    pub oauth_clients: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/file-entities", tag = "config", operation_id = "file_entities",
    security(("bearer" = [])),
    responses((status = 200, description = "Names the file defines; read-only through the API", body = FileEntities),
        (status = 401, body = ErrorBody)))]
pub(crate) async fn file_entities(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let base = state.base();
    let names = FileEntities {
        upstreams: base_names(&base, "upstreams"),
        routes: base_names(&base, "routes"),
        consumers: base_names(&base, "consumers"),
        plans: base_names(&base, "plans"),
        oauth_clients: base_names(&base, crate::kinds::OAUTH_CLIENTS),
    };
    Ok(Json(names).into_response())
}
