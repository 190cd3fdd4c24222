//! Turnpike's durable store: entities as JSON documents keyed by `(kind, name)`, an audit log,
//! admin tokens and a config version that every entity write transaction bumps once, on
//! embedded SQLite (the default) or PostgreSQL with the same schema and migrations.
//!
//! Every write is one transaction: the entity changes, the version bump, the audit rows and,
//! on PostgreSQL, a `NOTIFY turnpike_config` that is delivered only on commit. Secret fields
//! (a certificate's private key, [`AUDIT_REDACTED`]) are kept in the entity but redacted in
//! the audit log. Nodes follow the
//! version through [`Store::watch`]. The store does not interpret documents: the admin API
//! validates them with the config model before they get here. Any kind string works; the
//! admin API uses the config file's section names (`upstreams`, `routes`, `consumers`,
//! `plans`), and the gateway merges exactly those into its configuration.
//!
//! It also keeps usage analytics (per-minute rollups that each node writes under its own id,
//! downsampled to hours and days) and node heartbeats; see [`Store::write_usage`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), turnpike_store::StoreError> {
//! use serde_json::json;
//! use turnpike_store::{ListQuery, Store, StoreError};
//!
//! let store = Store::open("sqlite:///var/lib/turnpike/store.db").await?;
//! let created = store.create("upstream", "backend", json!({"targets": []}), "alice").await?;
//! // If-Match: fails with `RevisionMismatch` if someone else updated it in between.
//! let doc = json!({"targets": [{"url": "http://127.0.0.1:9000"}]});
//! match store.update("upstream", "backend", doc, Some(created.revision), "alice").await {
//!     Ok(_) | Err(StoreError::RevisionMismatch { .. }) => {}
//!     Err(other) => return Err(other),
//! }
//! let page = store.list("upstream", &ListQuery::default()).await?;
//! assert!(page.next.is_none());
//! // Gateway nodes: rebuild the config on every new version.
//! let mut versions = store.watch().subscribe();
//! while versions.changed().await.is_ok() {
//!     let (_version, _records) = store.snapshot().await?;
//! }
//! # Ok(()) }
//! ```

mod db;
mod error;
mod feed;
mod migrate;
mod sql;
mod sql_admin;
mod sql_usage;
mod types;
mod write;

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::db::{Backend, Gate};
pub use crate::error::StoreError;
pub use crate::feed::{CHANNEL, ChangeFeed};
pub use crate::migrate::SCHEMA_VERSION;
pub use crate::types::{
    AUDIT_REDACTED, AuditEntry, AuditQuery, ListQuery, MAX_LIMIT, NewToken, NodeRow, Page,
    REDACTED, Record, Resolution, TOKEN_KIND, TokenRow, UsageQuery,
};
pub use crate::write::WriteTx;
use turnpike_analytics::UsageRow;

/// The actor recorded for [`Store::create_token`], which has none (the bootstrap token).
pub const SYSTEM_ACTOR: &str = "system";

/// Runs the same call on whichever backend is open, once the database has been reached
/// (see [`Store::open_deferred`]).
macro_rules! on_backend {
    ($store:expr, $db:ident => $call:expr) => {{
        $store.inner.gate.ready().await?;
        match &$store.inner.backend {
            Backend::Sqlite($db) => $call,
            Backend::Postgres($db) => $call,
        }
    }};
}

/// A handle on the store; cheap to clone (clones share the pool and the change feed).
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    feed: OnceLock<ChangeFeed>,
    /// The version read at open: the feed's value until its first poll.
    opened_at: i64,
    /// Shared with the change feed, whose polls must not run before the migrations either.
    gate: Arc<Gate>,
    /// Why the database did not answer at open ([`Store::open_deferred`]): the feed starts
    /// unhealthy with this reason.
    down_at_open: Option<String>,
}

impl Store {
    /// Opens (and migrates) the store at `url`: `sqlite://PATH` or a plain file path (created
    /// if missing; its directory must exist), or `postgres://...`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let backend = db::open(url).await?;
        let opened_at = match &backend {
            Backend::Sqlite(db) => db.version().await?,
            Backend::Postgres(db) => db.version().await?,
        };
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                feed: OnceLock::new(),
                opened_at,
                gate: Arc::new(Gate::open()),
                down_at_open: None,
            }),
        })
    }

    /// Like [`Store::open`], for a PostgreSQL store whose database does not answer yet
    /// (down, or not created yet): returns at once with a store that connects and migrates
    /// on first use. Until the database answers, every call fails with `Unavailable` and the
    /// change feed is unhealthy with `why` as its error; once it answers, the feed reports the
    /// store's version, so a follower picks up its entities. Only a malformed URL fails here.
    /// SQLite stores are opened as by [`Store::open`] (a local file that cannot be opened is a
    /// setting to fix, not an outage to wait out).
    pub async fn open_deferred(url: &str, why: &str) -> Result<Store, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Store::open(url).await;
        }
        let (backend, gate) = db::defer_postgres(url)?;
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                feed: OnceLock::new(),
                opened_at: 0,
                gate: Arc::new(gate),
                down_at_open: Some(why.to_owned()),
            }),
        })
    }

    /// Starts a write transaction holding the store's writer lock, which every entity write
    /// in every process sharing the database takes: read, validate and write in it, and no
    /// other writer gets in between (see [`WriteTx`]).
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        self.inner.gate.ready().await?;
        match &self.inner.backend {
            Backend::Sqlite(db) => WriteTx::sqlite(db).await,
            Backend::Postgres(db) => WriteTx::postgres(db).await,
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match &self.inner.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool; calls made afterwards fail with `Unavailable`.
    pub async fn close(&self) {
        match &self.inner.backend {
            Backend::Sqlite(db) => db.close().await,
            Backend::Postgres(db) => db.close().await,
        }
    }

    /// One page of `kind`'s entities in name order.
    pub async fn list(&self, kind: &str, query: &ListQuery) -> Result<Page, StoreError> {
        on_backend!(self, db => db.list(kind, query).await)
    }

    pub async fn get(&self, kind: &str, name: &str) -> Result<Option<Record>, StoreError> {
        on_backend!(self, db => db.get(kind, name).await)
    }

    /// Creates an entity at revision 1; `Exists` if the key is taken.
    pub async fn create(
        &self,
        kind: &str,
        name: &str,
        doc: Value,
        actor: &str,
    ) -> Result<Record, StoreError> {
        let mut tx = self.begin_write().await?;
        let record = tx.create(kind, name, doc, actor).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Replaces an entity's document. With `expect`, only if that is the current revision
    /// (`RevisionMismatch` otherwise).
    pub async fn update(
        &self,
        kind: &str,
        name: &str,
        doc: Value,
        expect: Option<i64>,
        actor: &str,
    ) -> Result<Record, StoreError> {
        let mut tx = self.begin_write().await?;
        let record = tx.update(kind, name, doc, expect, actor).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Deletes an entity. With `expect`, only if that is the current revision.
    pub async fn delete(
        &self,
        kind: &str,
        name: &str,
        expect: Option<i64>,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        tx.delete(kind, name, expect, actor).await?;
        tx.commit().await
    }

    /// Every entity (ordered by kind, then name) at one consistent config version.
    pub async fn snapshot(&self) -> Result<(i64, Vec<Record>), StoreError> {
        on_backend!(self, db => db.snapshot().await)
    }

    /// The current config version (0 on a new store).
    pub async fn version(&self) -> Result<i64, StoreError> {
        on_backend!(self, db => db.version().await)
    }

    /// Audit entries, newest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        on_backend!(self, db => db.audit(query).await)
    }

    /// Stores an admin token, audited with the actor [`SYSTEM_ACTOR`].
    pub async fn create_token(&self, token: &NewToken) -> Result<TokenRow, StoreError> {
        self.create_token_as(token, SYSTEM_ACTOR).await
    }

    /// Stores an admin token, audited as created by `actor`; `Exists` if the id is taken.
    pub async fn create_token_as(
        &self,
        token: &NewToken,
        actor: &str,
    ) -> Result<TokenRow, StoreError> {
        on_backend!(self, db => db.create_token(token, actor).await)
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        on_backend!(self, db => db.token(id).await)
    }

    /// Every admin token, revoked ones included, by id.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        on_backend!(self, db => db.tokens().await)
    }

    /// Marks a token revoked (`NotFound` if unknown; revoking twice is a no-op).
    pub async fn revoke_token(&self, id: &str, actor: &str) -> Result<(), StoreError> {
        on_backend!(self, db => db.revoke_token(id, actor).await)
    }

    /// How many admin tokens exist, revoked ones included (0 means: bootstrap allowed).
    pub async fn token_count(&self) -> Result<u64, StoreError> {
        on_backend!(self, db => db.token_count().await)
    }

    /// Adds `rows` of node `node` into the `table` rollups (one transaction); a row whose
    /// key exists is merged into it (counts summed, sketches merged).
    pub async fn write_usage(
        &self,
        table: Resolution,
        node: &str,
        rows: &[UsageRow],
    ) -> Result<(), StoreError> {
        on_backend!(self, db => db.write_usage(table, node, rows).await)
    }

    /// Every node's matching rows, unmerged, with the node that wrote each.
    pub async fn usage(&self, query: &UsageQuery) -> Result<Vec<(String, UsageRow)>, StoreError> {
        on_backend!(self, db => db.usage(query).await)
    }

    /// Moves `from` rows older than `cutoff` (Unix seconds) into the next resolution,
    /// merged per node and key; safe to run on several nodes at once. Returns rows moved.
    pub async fn rollup(&self, from: Resolution, cutoff: i64) -> Result<u64, StoreError> {
        on_backend!(self, db => db.rollup(from, cutoff).await)
    }

    /// Deletes `table` rows older than `cutoff` (Unix seconds). Returns rows deleted.
    pub async fn expire_usage(&self, table: Resolution, cutoff: i64) -> Result<u64, StoreError> {
        on_backend!(self, db => db.expire_usage(table, cutoff).await)
    }

    /// Writes or refreshes a node's heartbeat.
    pub async fn heartbeat(&self, node: &NodeRow) -> Result<(), StoreError> {
        on_backend!(self, db => db.heartbeat(node).await)
    }

    /// Nodes seen at or after `since` (Unix seconds), by id.
    pub async fn nodes(&self, since: i64) -> Result<Vec<NodeRow>, StoreError> {
        on_backend!(self, db => db.nodes(since).await)
    }

    /// Forgets nodes not seen since `before` (Unix seconds).
    pub async fn forget_nodes(&self, before: i64) -> Result<u64, StoreError> {
        on_backend!(self, db => db.forget_nodes(before).await)
    }

    /// The change feed of this handle (and its clones): one background task, started on the
    /// first call. Must be called inside a tokio runtime.
    pub fn watch(&self) -> ChangeFeed {
        self.inner
            .feed
            .get_or_init(|| {
                let start = feed::Start {
                    seed: self.inner.opened_at,
                    gate: self.inner.gate.clone(),
                    down: self.inner.down_at_open.clone(),
                };
                feed::start(self.inner.backend.clone(), start)
            })
            .clone()
    }
}
