//! `GET /api/v1/status` (read-only role): this node's version, uptime, id and config
//! version, the store's reachability, and the cluster peers seen, which are the nodes whose
//! heartbeat (written every `analytics.flush_interval`) reached the store recently.
//!
//! It answers even when the store is down: then `peers` is empty and `store.reachable`
//! says why.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

#[allow(unused_imports, reason = "named only by the OpenAPI attributes")]
use crate::error::ErrorBody;
use crate::state::AdminState;

/// A node counts as a peer while its last heartbeat is at most this old (seconds).
pub(crate) const PEER_WINDOW: i64 = 30;

/// This node and the cluster it sees.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// Turnpike's version.
    pub version: String,
    /// This node's id (`analytics.node_id`, or `HOSTNAME:PORT`).
    pub node_id: String,
    /// When this node started, RFC 3339 UTC.
    pub started_at: String,
    pub uptime_seconds: u64,
    /// The store's config version this node has seen.
    pub config_version: i64,
    pub store: StoreStatus,
    /// Whether usage analytics are recorded (`analytics.enabled`).
    pub analytics_enabled: bool,
    /// Nodes with a heartbeat in the last 30 seconds, this one included, by id.
    pub peers: Vec<Peer>,
}

/// The admin store.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreStatus {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Whether the change feed's last poll reached it.
    pub reachable: bool,
    /// The last error, when unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A node sharing the store.
#[derive(Debug, Serialize, ToSchema)]
pub struct Peer {
    pub node_id: String,
    pub version: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// Its last heartbeat, RFC 3339 UTC.
    pub last_seen: String,
    /// The store config version it had seen then.
    pub config_version: i64,
    /// True for the node answering this request.
    pub this_node: bool,
}

#[utoipa::path(get, path = "/api/v1/status", tag = "health", operation_id = "status",
    security(("bearer" = [])),
    responses((status = 200, body = Status), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub(crate) async fn status(State(state): State<AdminState>) -> Json<Status> {
    use crate::analytics::rfc3339;
    let inner = &state.inner;
    let feed = &inner.feed;
    let reachable = feed.healthy();
    let since = jiff::Timestamp::now().as_second() - PEER_WINDOW;
    let peers = match state.store().nodes(since).await {
        Ok(nodes) => nodes,
        Err(e) => {
            tracing::debug!(error = %e, "status: cannot read the nodes table");
            Vec::new()
        }
    };
    let peers = peers
        .into_iter()
        .map(|n| Peer {
            this_node: n.id == inner.node.id,
            node_id: n.id,
            version: n.version,
            started_at: rfc3339(n.started_at),
            last_seen: rfc3339(n.seen_at),
            config_version: n.config_version,
        })
        .collect();
    Json(Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        node_id: inner.node.id.clone(),
        started_at: rfc3339(inner.node.started_at),
        uptime_seconds: inner.node.started.elapsed().as_secs(),
        config_version: feed.version(),
        store: StoreStatus {
            backend: state.store().backend_name().to_owned(),
            reachable,
            error: if reachable { None } else { feed.last_error() },
        },
        analytics_enabled: inner.analytics.enabled,
        peers,
    })
}
