//! `GET /metrics` on the admin listener: the gateway's Prometheus metrics, no token
//! needed (like `/healthz`). The gateway renders them; this adds the store's reachability
//! and `turnpike_store_config_rejected`, which only the admin API knows. Not in the OpenAPI document: it is not a JSON API.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AdminState;

/// Renders the gateway's metrics as OpenMetrics text, given whether the config store is
/// reachable now.
pub type MetricsSource = Arc<dyn Fn(Option<bool>) -> String + Send + Sync>;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `/metrics` route, rendering with `source`.
pub(crate) fn route(source: MetricsSource) -> Router<AdminState> {
    let handler = move |State(state): State<AdminState>| {
        let source = source.clone();
        async move {
            let store_up = state.inner.feed.healthy();
            let body = source(Some(store_up));
            let body = crate::applied::add_metrics(body, &state.config_status());
            let resp: Response =
                ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response();
            resp
        }
    };
    Router::new().route("/metrics", get(handler))
}
