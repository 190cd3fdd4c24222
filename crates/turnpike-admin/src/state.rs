//! What every admin handler shares: the store, its change feed, the configuration the
//! file defines, and the start-up steps (the bootstrap token).

use std::sync::{Arc, RwLock};

use serde_json::Value;
use tokio::sync::Mutex;
use turnpike_config::Config;
use turnpike_config::model::Analytics;
use turnpike_store::{ChangeFeed, NewToken, Store, StoreError};

pub use crate::applied::ConfigStatus;
use crate::token::{self, Role};

/// The environment variable holding the first admin token (see [`AdminOptions::from_env`]).
pub const BOOTSTRAP_ENV: &str = "TURNPIKE_ADMIN_TOKEN";
/// Name of the token created from [`BOOTSTRAP_ENV`].
pub const BOOTSTRAP_NAME: &str = "bootstrap";

/// How the admin API runs.
#[derive(Clone, Default)]
pub struct AdminOptions {
    /// The configuration from the file; store entities are validated together with it, and
    /// names it defines are read-only through the API.
    pub base: Config,
    /// A `tpa_...` token that becomes the `admin` token named `bootstrap` when the store
    /// has no tokens yet.
    pub bootstrap_token: Option<String>,
    /// Development only: every request acts as `admin` without a token. [`crate::serve`]
    /// refuses it unless the listener is on a loopback address.
    pub insecure_no_auth: bool,
}

impl std::fmt::Debug for AdminOptions {
    // By hand, so the bootstrap token can never reach a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminOptions")
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "***"),
            )
            .field("insecure_no_auth", &self.insecure_no_auth)
            .finish_non_exhaustive()
    }
}

impl AdminOptions {
    /// Options with `base`, taking the bootstrap token from `env` ([`BOOTSTRAP_ENV`]);
    /// pass `|k| std::env::var(k).ok()` for the process environment.
    pub fn from_env(base: Config, env: &dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            base,
            bootstrap_token: env(BOOTSTRAP_ENV).filter(|t| !t.trim().is_empty()),
            insecure_no_auth: false,
        }
    }
}

/// Why the admin API could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "{BOOTSTRAP_ENV} is not an admin token: expected tpa_<12 letters or digits>_<43 letters or digits>"
    )]
    BadBootstrapToken,
    #[error("cannot create the bootstrap admin token: {0}")]
    Store(#[from] StoreError),
    #[error("the base configuration cannot be represented as JSON: {0}")]
    Base(serde_json::Error),
    #[error(
        "insecure_no_auth is allowed only on a loopback address, and the admin listener is on {0}"
    )]
    InsecureNotLoopback(std::net::SocketAddr),
    #[error("admin listener: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    SecretsKey(#[from] crate::secrets::SecretError),
}

/// Shared by all handlers; cheap to clone.
#[derive(Clone, Debug)]
pub struct AdminState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) feed: ChangeFeed,
    /// The file's configuration, as the document store entities are merged into.
    pub(crate) base: RwLock<Arc<Value>>,
    pub(crate) insecure_no_auth: bool,
    /// One entity write at a time in this process. The store's writer lock is what keeps
    /// writers (of every process) from validating against a snapshot another one changes;
    /// queueing here first keeps this process's waiting writers from each holding a pooled
    /// connection while they wait for that lock.
    pub(crate) writes: Mutex<()>,
    /// Whether the running configuration is the file plus the store (the follower sets it).
    pub(crate) applied: crate::applied::Applied,
    /// Who this node is, for usage rows, heartbeats and `/api/v1/status`.
    pub(crate) node: NodeInfo,
    /// The file's `analytics:` settings at start (retention decides which tables hold a range).
    pub(crate) analytics: Analytics,
    /// The gateway's response cache, when a gateway runs beside this admin API.
    pub(crate) cache: std::sync::OnceLock<crate::cache::CacheSource>,
    /// `admin.secrets_key` at start: encrypts certificates' private keys in the store.
    pub(crate) secrets: Option<crate::secrets::SecretsKey>,
}

/// This node's identity and age.
#[derive(Debug)]
pub(crate) struct NodeInfo {
    pub(crate) id: String,
    pub(crate) started: std::time::Instant,
    /// Unix seconds.
    pub(crate) started_at: i64,
}

impl AdminState {
    /// Prepares the admin API over `store`: creates the bootstrap token when the store has
    /// none, and starts following the store's change feed (for `/readyz`).
    pub async fn new(store: Store, options: AdminOptions) -> Result<Self, StartError> {
        let base = serde_json::to_value(&options.base).map_err(StartError::Base)?;
        let secrets = options
            .base
            .admin
            .as_ref()
            .and_then(|a| a.secrets_key.as_deref());
        let secrets = secrets
            .map(crate::secrets::SecretsKey::from_config)
            .transpose()?;
        let token = options.bootstrap_token.as_deref();
        if token.is_some_and(|t| token::token_id(t).is_none()) {
            return Err(StartError::BadBootstrapToken);
        }
        match bootstrap(&store, token).await {
            Err(StartError::Store(StoreError::Unavailable(why))) => {
                // The store was opened while its database was down (`open_deferred`):
                // create the token once it answers, so a node started before its database
                // is still administrable when the database comes.
                tracing::warn!(error = %why, "cannot check the admin tokens yet; retrying every second");
                tokio::spawn(bootstrap_later(
                    store.clone(),
                    options.bootstrap_token.clone(),
                ));
            }
            other => other?,
        }
        if options.insecure_no_auth {
            tracing::warn!("admin API runs WITHOUT authentication (insecure_no_auth)");
        }
        let feed = store.watch();
        let node = NodeInfo {
            id: turnpike_analytics::node_id(&options.base),
            started: std::time::Instant::now(),
            started_at: jiff::Timestamp::now().as_second(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                feed,
                base: RwLock::new(Arc::new(base)),
                insecure_no_auth: options.insecure_no_auth,
                writes: Mutex::new(()),
                applied: crate::applied::Applied::default(),
                node,
                analytics: options.base.analytics.clone(),
                cache: std::sync::OnceLock::new(),
                secrets,
            }),
        })
    }

    /// Replaces the file's configuration (after a reload of the file).
    pub fn set_base(&self, base: &Config) -> Result<(), StartError> {
        let value = serde_json::to_value(base).map_err(StartError::Base)?;
        let mut slot = self
            .inner
            .base
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Arc::new(value);
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Whether the gateway serves the file plus the store; `/readyz` and `/metrics` show it.
    pub fn config_status(&self) -> ConfigStatus {
        self.inner.applied.get()
    }

    /// Records how the running configuration relates to the file and the store. The
    /// follower keeps it current; `serve` sets it once at start-up, when the first
    /// configuration could not include the store's entities.
    pub fn set_config_status(&self, status: ConfigStatus) {
        self.inner.applied.set(status);
    }

    /// Connects the gateway's response cache (purges, status); the first one set stays.
    pub fn set_cache(&self, cache: crate::cache::CacheSource) {
        let _ = self.inner.cache.set(cache);
    }

    pub(crate) fn cache(&self) -> Option<crate::cache::CacheSource> {
        self.inner.cache.get().cloned()
    }

    /// This node's id in usage rows and heartbeats.
    pub fn node_id(&self) -> &str {
        &self.inner.node.id
    }

    /// The key certificates' private keys are encrypted with in the store, when set.
    pub(crate) fn secrets(&self) -> Option<&crate::secrets::SecretsKey> {
        self.inner.secrets.as_ref()
    }

    pub(crate) fn analytics_settings(&self) -> &Analytics {
        &self.inner.analytics
    }

    pub(crate) fn base(&self) -> Arc<Value> {
        self.inner
            .base
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// [`bootstrap`], retried every second until the store answers.
async fn bootstrap_later(store: Store, token: Option<String>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        match bootstrap(&store, token.as_deref()).await {
            Err(StartError::Store(StoreError::Unavailable(_))) => continue,
            Err(err) => {
                tracing::error!(error = %err, "cannot create the bootstrap admin token");
                return;
            }
            Ok(()) => return,
        }
    }
}

/// Stores the bootstrap token as `admin` when the store has no tokens at all; once any
/// token exists (even revoked) the variable is ignored, so a leaked old value cannot
/// recreate access that was taken away.
async fn bootstrap(store: &Store, token: Option<&str>) -> Result<(), StartError> {
    let count = store.token_count().await?;
    let Some(token) = token else {
        if count == 0 {
            tracing::warn!(
                "no admin tokens exist: set {BOOTSTRAP_ENV} to create the first one; until then every admin API request is refused"
            );
        }
        return Ok(());
    };
    let id = token::token_id(token).ok_or(StartError::BadBootstrapToken)?;
    if count > 0 {
        tracing::info!("admin tokens exist already; {BOOTSTRAP_ENV} is ignored");
        return Ok(());
    }
    let row = NewToken {
        id: id.to_owned(),
        name: BOOTSTRAP_NAME.to_owned(),
        role: Role::Admin.as_str().to_owned(),
        hash: token::hash(token),
    };
    store.create_token(&row).await?;
    tracing::info!(token_id = %id, "created the bootstrap admin token from {BOOTSTRAP_ENV}");
    Ok(())
}
