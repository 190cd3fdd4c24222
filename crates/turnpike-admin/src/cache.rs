//! The response cache through the admin API: purge by tag, exact URL or URL prefix
//! (`POST /api/v1/cache/purge`, operator role), and what the cache holds plus the CDN
//! purges that failed (`GET /api/v1/cache`). The gateway plugs its cache in as a
//! [`CacheControl`]; without one (a store-only admin API) both answer 404.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::{Extension, response::IntoResponse};
use serde::{Deserialize, Serialize};
use turnpike_config::model::PurgeKind;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::{ApiError, Detail, ErrorBody};
use crate::state::AdminState;

/// A purge in progress; it ends with how many objects went.
pub type PurgeFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send + 'a>>;

/// What the admin API needs of the gateway's cache.
pub trait CacheControl: Send + Sync + std::fmt::Debug {
    /// Removes matching objects (on this node, and on every node through a shared store)
    /// and tells the CDNs; ends with how many went.
    fn purge<'a>(&'a self, kind: PurgeKind, values: &'a [String]) -> PurgeFuture<'a>;
    fn status(&self) -> CacheStatus;
}

/// The gateway's cache, as the admin API reaches it.
pub type CacheSource = Arc<dyn CacheControl>;

/// Most values one purge request may name.
const MAX_VALUES: usize = 1000;

/// What to purge; at least one list must be non-empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// `Surrogate-Key` / `Cache-Tag` values.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Exact URLs, `scheme://host/path?query` as clients request them.
    #[serde(default)]
    pub urls: Vec<String>,
    /// URL prefixes, e.g. `https://api.example.com/v1/items/`.
    #[serde(default)]
    pub prefixes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Purged {
    /// Objects removed from this node's cache (variants and markers count).
    pub purged: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CacheStatus {
    pub bytes: u64,
    pub objects: u64,
    /// CDN purges that failed after their retries, newest last (at most 100).
    pub cdn_failures: Vec<CdnFailure>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CdnFailure {
    pub endpoint: String,
    pub kind: String,
    pub values: Vec<String>,
    pub error: String,
    pub attempts: u32,
    /// Unix seconds of the last attempt.
    pub at: u64,
}

fn source(state: &AdminState) -> Result<CacheSource, ApiError> {
    state.cache().ok_or_else(|| {
        ApiError::not_found("this admin API runs without a gateway, so it has no cache")
    })
}

#[utoipa::path(post, path = "/api/v1/cache/purge", tag = "cache", operation_id = "purge_cache",
    request_body(content = PurgeRequest, description = "Tags, exact URLs and/or URL prefixes"),
    security(("bearer" = [])),
    responses((status = 200, description = "Purged on this node; CDN endpoints are told in the background", body = Purged),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn purge(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let cache = source(&state)?;
    let req: PurgeRequest = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_request("invalid_request", "the purge request is invalid")
            .with_details(vec![Detail::new(path, e.inner().to_string())])
    })?;
    check(&req)?;
    let mut purged = 0;
    for (kind, values) in [
        (PurgeKind::Tag, &req.tags),
        (PurgeKind::Url, &req.urls),
        (PurgeKind::Prefix, &req.prefixes),
    ] {
        if !values.is_empty() {
            purged += cache.purge(kind, values).await;
        }
    }
    tracing::info!(actor = %caller.actor, tags = req.tags.len(), urls = req.urls.len(), prefixes = req.prefixes.len(), purged, "cache purged");
    Ok(Json(Purged { purged }))
}

fn check(req: &PurgeRequest) -> Result<(), ApiError> {
    let mut details = Vec::new();
    let total = req.tags.len() + req.urls.len() + req.prefixes.len();
    if total == 0 {
        details.push(Detail::new(
            "",
            "name at least one of `tags`, `urls`, `prefixes`",
        ));
    }
    if total > MAX_VALUES {
        details.push(Detail::new(
            "",
            format!("at most {MAX_VALUES} values per purge, found {total}"),
        ));
    }
    for (field, values) in [
        ("tags", &req.tags),
        ("urls", &req.urls),
        ("prefixes", &req.prefixes),
    ] {
        for (i, v) in values.iter().enumerate() {
            let bad_char = v
                .bytes()
                .any(|b| b.is_ascii_control() || b == b' ' && field != "tags");
            if v.is_empty() || bad_char || (field == "tags" && v.contains([' ', ','])) {
                let msg = if field == "tags" {
                    "a tag is one non-empty word without spaces, commas or control characters"
                } else {
                    "expected a non-empty URL without spaces or control characters"
                };
                details.push(Detail::new(format!("{field}[{i}]"), msg));
            } else if field != "tags" && !(v.starts_with("http://") || v.starts_with("https://")) {
                let msg = "expected an absolute URL starting with http:// or https://";
                details.push(Detail::new(format!("{field}[{i}]"), msg));
            }
        }
    }
    if details.is_empty() {
        Ok(())
    } else {
        Err(
            ApiError::bad_request("invalid_request", "the purge request is invalid")
                .with_details(details),
        )
    }
}

#[utoipa::path(get, path = "/api/v1/cache", tag = "cache", operation_id = "cache_status",
    security(("bearer" = [])),
    responses((status = 200, description = "What this node's cache holds, and failed CDN purges", body = CacheStatus),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn status(State(state): State<AdminState>) -> Result<Json<CacheStatus>, ApiError> {
    Ok(Json(source(&state)?.status()))
}
