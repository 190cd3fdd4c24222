//! Turnpike's admin REST API: entity CRUD over the store with the config file's validation,
//! admin tokens with roles, the audit log, health endpoints, and the API's own OpenAPI 3.1
//! document.
//!
//! Routes and their OpenAPI operations are registered together (`utoipa_axum::routes!`), so
//! the served document lists exactly the routes the router has. Everything except
//! `/healthz`, `/readyz` and `/api/v1/openapi.json` needs an admin token.
//!
//! [`analytics::worker::Worker`] is the control plane's usage task: it writes the gateway's
//! per-minute rollups and this node's heartbeat to the store.

pub mod analytics;
mod applied;
mod auth;
mod body;
mod cache;
mod certificates;
mod consumer_auth;
mod entities;
mod error;
mod health;
mod import;
mod keys;
mod kinds;
mod metrics;
mod oauth_clients;
mod policies;
mod push;
mod schema;
mod secrets;
mod service_list;
mod services;
mod sources;
mod state;
mod status;
pub mod sync;
mod tls;
pub mod token;
mod tokens;
mod validate;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::Caller;
pub use cache::{CacheControl, CacheSource, CacheStatus, CdnFailure, PurgeFuture};
pub use error::{ApiError, Detail, ErrorBody, ErrorInfo};
pub use metrics::MetricsSource;
pub use secrets::{SecretError, Undecryptable};
pub use state::{
    AdminOptions, AdminState, BOOTSTRAP_ENV, BOOTSTRAP_NAME, ConfigStatus, StartError,
};
pub use token::Role;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Turnpike admin API",
        description = "Manage a Turnpike gateway: entities, API keys, admin tokens, audit log.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "upstreams", description = "Groups of targets routes send traffic to"),
        (name = "routes", description = "How requests find their upstream"),
        (name = "consumers", description = "Named callers, their credential hashes and API keys"),
        (name = "plans", description = "Tiers of service: rate limits and quotas for consumers"),
        (name = "oauth-clients", description = "Clients of the gateway's OAuth server (`oauth.clients`); secrets stored as argon2 hashes"),
        (name = "certificates", description = "TLS certificates for every TLS listener; private keys are never returned"),
        (name = "policies", description = "The global policies (`policies:`) for every route; read-only when the file sets them"),
        (name = "services", description = "APIs published from their OpenAPI documents"),
        (name = "config", description = "How the file and the store combine"),
        (name = "cache", description = "The response cache: purges and what it holds"),
        (name = "tokens", description = "Admin tokens (admin role)"),
        (name = "audit", description = "Who changed what (admin role)"),
        (name = "health", description = "Liveness and readiness (no token needed); this node's status"),
        (name = "analytics", description = "Usage: time series and top-N by route, service, consumer, status"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` scheme the operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("tpa_<id>_<secret>")
            .description(Some("An admin token; its role decides what it may do."))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The routes that need no token, and those that do, each with their operations.
fn parts() -> (
    (Router<AdminState>, Document),
    (Router<AdminState>, Document),
) {
    let public = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(openapi_json));
    let protected = OpenApiRouter::new()
        .routes(routes!(
            entities::upstreams::list,
            entities::upstreams::create
        ))
        .routes(routes!(
            entities::upstreams::get,
            entities::upstreams::replace,
            entities::upstreams::delete
        ))
        .routes(routes!(entities::routes::list, entities::routes::create))
        .routes(routes!(
            entities::routes::get,
            entities::routes::replace,
            entities::routes::delete
        ))
        .routes(routes!(
            entities::consumers::list,
            entities::consumers::create
        ))
        .routes(routes!(
            entities::consumers::get,
            entities::consumers::replace,
            entities::consumers::delete
        ))
        .routes(routes!(entities::plans::list, entities::plans::create))
        .routes(routes!(
            entities::plans::get,
            entities::plans::replace,
            entities::plans::delete
        ))
        .routes(routes!(
            entities::oauth_clients::list,
            entities::oauth_clients::create
        ))
        .routes(routes!(
            entities::oauth_clients::get,
            entities::oauth_clients::replace,
            entities::oauth_clients::delete
        ))
        .routes(routes!(
            entities::certificates::list,
            entities::certificates::create
        ))
        .routes(routes!(
            entities::certificates::get,
            entities::certificates::replace,
            entities::certificates::delete
        ))
        .routes(routes!(policies::get, policies::replace, policies::delete))
        .routes(routes!(keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(sources::file_entities))
        .merge(push_route())
        .routes(routes!(service_list::list))
        .routes(routes!(services::import, services::document))
        .routes(routes!(services::remove, service_list::get))
        .routes(routes!(
            services::versions::import,
            services::versions::document
        ))
        .routes(routes!(
            services::versions::update,
            services::versions::remove
        ))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(health::audit))
        .routes(routes!(status::status))
        .routes(routes!(analytics::timeseries))
        .routes(routes!(analytics::top))
        .routes(routes!(analytics::consumer_usage))
        .routes(routes!(cache::purge))
        .routes(routes!(cache::status));
    (public.split_for_parts(), protected.split_for_parts())
}

/// `POST /api/v1/config/push` carries a whole configuration's entities at once, so it
/// accepts bodies up to [`push::MAX_PUSH_BODY`] (the others: [`body::MAX_BODY`]).
fn push_route() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(push::push))
        .layer(axum::extract::DefaultBodyLimit::max(push::MAX_PUSH_BODY))
}

/// The admin API's OpenAPI 3.1 document, as served at [`OPENAPI_PATH`].
pub fn openapi() -> Document {
    let ((_, mut doc), (_, protected)) = parts();
    doc.merge(protected);
    doc
}

/// The admin API as an axum router (serve it with connect info, as [`serve`] does, for
/// `insecure_no_auth` to admit loopback clients).
pub fn router(state: AdminState) -> Router {
    router_with_metrics(state, None)
}

/// [`router`] plus `GET /metrics` (no token) rendered by `metrics`, when given.
pub fn router_with_metrics(state: AdminState, metrics: Option<MetricsSource>) -> Router {
    let ((mut public, _), (protected, _)) = parts();
    if let Some(source) = metrics {
        public = public.merge(metrics::route(source));
    }
    let protected = protected.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require,
    ));
    public
        .merge(protected)
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::no_method)
        .layer(axum::extract::DefaultBodyLimit::max(body::MAX_BODY))
        .with_state(state)
}

/// Serves the admin API on `listener` until `shutdown` completes, then lets requests in
/// flight finish. Refuses `insecure_no_auth` unless the listener is on a loopback address.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    serve_with_metrics(listener, state, None, shutdown).await
}

/// [`serve`], with `/metrics` rendered by `metrics` when given.
pub async fn serve_with_metrics(
    listener: tokio::net::TcpListener,
    state: AdminState,
    metrics: Option<MetricsSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let serving = Serving { metrics, tls: None };
    serve_with(listener, state, serving, shutdown).await
}

/// What the admin listener serves besides the API.
#[derive(Default)]
pub struct Serving {
    /// Renders `GET /metrics` (no token), when given.
    pub metrics: Option<MetricsSource>,
    /// Speak TLS (HTTP/1.1 over it) with this config, when given (`admin.tls`).
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("metrics", &self.metrics.is_some())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// [`serve`], with `/metrics` and TLS as `serving` says.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AdminState,
    serving: Serving,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let local = listener.local_addr()?;
    if state.inner.insecure_no_auth && !local.ip().is_loopback() {
        return Err(StartError::InsecureNotLoopback(local));
    }
    let app = router_with_metrics(state, serving.metrics)
        .into_make_service_with_connect_info::<SocketAddr>();
    match serving.tls {
        None => {
            tracing::info!(address = %local, "admin API listening");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        Some(config) => {
            tracing::info!(address = %local, "admin API listening (TLS)");
            // `tap_io` adds nothing but the peer address as connect info, which axum
            // provides for its own listener types only; the loopback check needs it.
            let tls =
                axum::serve::ListenerExt::tap_io(tls::TlsListener::new(listener, config)?, |_| {});
            axum::serve(tls, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
    }
    Ok(())
}

/// The document itself, rendered once: it is fixed for the life of the process.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "This document", content_type = "application/json")))]
async fn openapi_json() -> Response {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let json = JSON.get_or_init(|| {
        openapi().to_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot render the OpenAPI document");
            "{}".to_owned()
        })
    });
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        json.clone(),
    )
        .into_response()
}
