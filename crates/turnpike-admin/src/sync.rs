//! Keeps a gateway on the effective configuration: the file's configuration plus every store
//! entity (and the store's global policies, unless the file sets `policies:`), rebuilt whenever the store's change feed moves or the file is reloaded.
//!
//! One task does every rebuild, so a file reload and a store write can never apply out of
//! order. A rebuild that fails (the store is unreachable, or the merged configuration is
//! invalid, e.g. a store route to an upstream the file no longer defines) changes nothing:
//! the gateway keeps serving its last good snapshot. Store failures are retried on a timer,
//! since the feed may not move again when the database comes back; invalid configurations
//! wait for the next change, because retrying them would only repeat the same error.
//!
//! Every rebuild records its outcome in the state's [`ConfigStatus`], which `/readyz` and
//! `/metrics` report: a refusal stays visible until a later rebuild applies.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use turnpike_config::{Config, ConfigErrors, load_value};
use turnpike_store::StoreError;

use crate::applied::{ConfigStatus, summary};
use crate::kinds;
use crate::state::AdminState;
use crate::validate::effective;

/// Changes arriving this close together become one rebuild.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How soon a rebuild that could not read the store is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Why the effective configuration could not be built; the running one stays.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot read the store: {0}")]
    Store(#[from] StoreError),
    #[error("the configuration file and the store together are invalid:\n{0}")]
    Invalid(ConfigErrors),
    #[error("the configuration file is invalid:\n{0}")]
    File(ConfigErrors),
    #[error(transparent)]
    Base(#[from] crate::state::StartError),
    /// Store certificates whose private key `admin.secrets_key` cannot decrypt (named).
    #[error("the store's certificates cannot be used:\n{0}")]
    Secrets(#[from] crate::secrets::Undecryptable),
}

impl SyncError {
    /// One line for `/readyz` ([`ConfigStatus::Rejected`]): the first problem, where it is,
    /// and how many more there are.
    pub fn summary(&self) -> String {
        rejection(self)
    }
}

/// The effective configuration at store version `version`.
#[derive(Debug, Clone)]
pub struct Effective {
    pub version: i64,
    pub config: Config,
}

/// Reads every store entity and merges it into the file's configuration (the state's base),
/// checked with the same `load_value` the admin API validates writes with. Certificates'
/// private keys are decrypted here, for the listeners, and nowhere else.
pub async fn effective_config(state: &AdminState) -> Result<Effective, SyncError> {
    let (version, mut records) = state.store().snapshot().await?;
    let plaintext = crate::secrets::reveal_all(state.secrets(), &mut records)?;
    if plaintext > 0 {
        // Written by an earlier version; each is encrypted at its next write (a `PUT`
        // of its `cert` alone is enough).
        tracing::warn!(
            certificates = plaintext,
            "store certificates with a private key in clear; PUT them again to encrypt them"
        );
    }
    let base = state.base();
    if records.iter().any(|r| r.kind == kinds::POLICIES)
        && !kinds::base_names(&base, kinds::POLICIES).is_empty()
    {
        // Not an error: the rule says the file's section wins. But a store document that
        // never applies would surprise whoever wrote it, so say so on every rebuild.
        tracing::warn!(
            "the store's global policies are not applied: the configuration file sets `policies:`"
        );
    }
    let doc = effective(&base, &records, None);
    let config = load_value(&doc, Path::new("file + store")).map_err(SyncError::Invalid)?;
    Ok(Effective { version, config })
}

/// The running follower: ask it to rebuild, or to reload the file first.
#[derive(Debug, Clone)]
pub struct Follower {
    state: AdminState,
    kick: Arc<Notify>,
}

impl Follower {
    /// Starts following on the current tokio runtime. `apply` swaps a configuration into the
    /// gateway (it runs on a blocking thread: building a snapshot may read files) and
    /// returns the gateway's new config version.
    ///
    /// `since` is the store version the running configuration was built from: if the feed
    /// has already seen another one, the first rebuild happens at once, so a write made
    /// between building that configuration and this call is not missed.
    pub fn start<F, E>(state: AdminState, since: i64, apply: F) -> Self
    where
        F: Fn(&Config) -> Result<u64, E> + Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        Self::start_with(state, since, apply, || {})
    }

    /// [`Follower::start`], calling `rejected` whenever the file plus the store make an
    /// invalid configuration (`apply` is not called then), e.g. to count a failed reload.
    pub fn start_with<F, E>(
        state: AdminState,
        since: i64,
        apply: F,
        rejected: impl Fn() + Send + Sync + 'static,
    ) -> Self
    where
        F: Fn(&Config) -> Result<u64, E> + Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let kick = Arc::new(Notify::new());
        let versions = state.inner.feed.subscribe();
        if *versions.borrow() != since {
            kick.notify_one();
        }
        let task = Task {
            state: state.clone(),
            kick: kick.clone(),
            apply: Arc::new(apply),
            rejected: Box::new(rejected),
        };
        tokio::spawn(task.run(versions));
        Self { state, kick }
    }

    /// Asks for a rebuild soon (several asks in a row make one rebuild).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Loads the configuration file as the new base and asks for a rebuild. Blocking (it
    /// reads the file); an invalid file changes nothing.
    pub fn reload_file(&self, path: &Path) -> Result<(), SyncError> {
        let base = turnpike_config::load_file(path).map_err(SyncError::File)?;
        // The store and the admin listener were set up at start; a reload cannot move them.
        let before = self.state.base().get("admin").cloned();
        let after = serde_json::to_value(&base.admin)
            .ok()
            .filter(|v| !v.is_null());
        if before != after {
            tracing::warn!("the `admin` section changed; it applies at the next restart");
        }
        self.state.set_base(&base)?;
        self.kick();
        Ok(())
    }

    /// [`Follower::reload_file`], logging a refusal.
    pub fn reload_file_and_log(&self, path: &Path) {
        if let Err(err) = self.reload_file(path) {
            tracing::error!(file = %path.display(), "configuration rejected, still serving the previous one:\n{err}");
        }
    }
}

struct Task<F> {
    state: AdminState,
    kick: Arc<Notify>,
    apply: Arc<F>,
    rejected: Box<dyn Fn() + Send + Sync>,
}

impl<F, E> Task<F>
where
    F: Fn(&Config) -> Result<u64, E> + Send + Sync + 'static,
    E: std::fmt::Display + Send + 'static,
{
    async fn run(self, mut versions: watch::Receiver<i64>) {
        let mut feed_alive = true;
        let mut retry = false;
        loop {
            tokio::select! {
                changed = versions.changed(), if feed_alive => {
                    // The feed's task is gone (it cannot be while we hold a receiver, unless
                    // it panicked); file reloads still work.
                    if changed.is_err() {
                        tracing::error!("the store's change feed stopped; store changes are no longer followed");
                        feed_alive = false;
                        continue;
                    }
                }
                () = self.kick.notified() => {}
                () = tokio::time::sleep(RETRY), if retry => {}
            }
            tokio::time::sleep(DEBOUNCE).await;
            // What arrived during the pause is part of this rebuild.
            versions.borrow_and_update();
            retry = self.rebuild(retry).await;
        }
    }

    /// One rebuild; `true` when it should be retried because the store could not be read.
    /// `retrying`: the last one failed that way too, and said so already.
    async fn rebuild(&self, retrying: bool) -> bool {
        let effective = match effective_config(&self.state).await {
            Ok(effective) => effective,
            Err(SyncError::Store(err)) if retrying => {
                tracing::debug!(error = %err, "still cannot read the store");
                return true;
            }
            Err(SyncError::Store(err)) => {
                tracing::warn!(error = %err, "cannot read the store, still serving the previous configuration; retrying every second");
                return true;
            }
            Err(err) => {
                tracing::error!("configuration rejected, still serving the previous one:\n{err}");
                (self.rejected)();
                self.state
                    .set_config_status(ConfigStatus::Rejected(rejection(&err)));
                return false;
            }
        };
        let apply = self.apply.clone();
        let config = effective.config;
        let status = match tokio::task::spawn_blocking(move || apply(&config)).await {
            Ok(Ok(version)) => {
                tracing::info!(
                    version,
                    store_version = effective.version,
                    "configuration reloaded"
                );
                ConfigStatus::Applied
            }
            Ok(Err(err)) => {
                tracing::error!("configuration rejected, still serving the previous one:\n{err}");
                ConfigStatus::Rejected(summary(&err.to_string()))
            }
            Err(err) => {
                tracing::error!(error = %err, "applying the configuration failed");
                ConfigStatus::Rejected(format!("applying the configuration failed: {err}"))
            }
        };
        let before = self.state.inner.applied.set(status.clone());
        if status == ConfigStatus::Applied && before != ConfigStatus::Applied {
            tracing::info!("the file plus the store are applied again");
        }
        false
    }
}

/// [`rejection`] for certificates that cannot be decrypted: the first one named.
fn secrets_rejection(failures: &crate::secrets::Undecryptable) -> String {
    let text = failures.to_string();
    let first = text.lines().next().unwrap_or_default();
    match failures.0.len() {
        0 | 1 => first.to_owned(),
        n => format!("{first} (and {} more)", n - 1),
    }
}

/// One line for `/readyz`: the first problem, where it is, and how many more there are.
fn rejection(err: &SyncError) -> String {
    let problems = match err {
        SyncError::Invalid(errors) | SyncError::File(errors) => errors.errors(),
        SyncError::Secrets(failures) => return secrets_rejection(failures),
        _ => &[],
    };
    match problems {
        [] => summary(&err.to_string()),
        [one] => format!("{}: {}", one.path, one.message),
        [first, rest @ ..] => format!(
            "{}: {} (and {} more)",
            first.path,
            first.message,
            rest.len()
        ),
    }
}
