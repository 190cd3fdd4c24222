//! Hot reload from the config file: on demand (SIGHUP, wired by the binary) or by
//! watching the file and the API keys file it names. A file that fails validation is
//! logged with every error and the running config keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use turnpike_config::ConfigErrors;

use crate::server::Shared;
use crate::snapshot::BuildError;

/// Why a reload was refused; the old config is still serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// Loads, validates and applies `path`; returns the new config version.
pub fn reload_file(shared: &Shared, path: &Path) -> Result<u64, ReloadError> {
    // `apply` counts its own outcome; a file that does not validate is counted here.
    let cfg = turnpike_config::load_file(path).inspect_err(|_| shared.reload_failed())?;
    Ok(shared.apply(&cfg)?)
}

/// Like [`reload_file`], logging the outcome.
pub fn reload_and_log(shared: &Shared, path: &Path) {
    match reload_file(shared, path) {
        Ok(version) => tracing::info!(version, file = %path.display(), "configuration reloaded"),
        Err(err) => {
            tracing::error!(file = %path.display(), "configuration rejected, still serving the previous one:\n{err}")
        }
    }
}

/// Polls the config file, and the keys file the running config names (`auth.keys_file`,
/// which `turnpike keys ...` rewrites), and reloads when either changes. Contents are
/// compared, so editors that replace the file (rename) are caught as well as in-place
/// writes. Runs until the gateway stops.
pub fn watch_file(shared: Arc<Shared>, path: PathBuf, every: Duration) {
    let reload = {
        let (shared, path) = (shared.clone(), path.clone());
        move || reload_and_log(&shared, &path)
    };
    watch_file_with(shared, path, every, reload);
}

/// Like [`watch_file`], but a change calls `reload` (on a blocking thread) instead of
/// reloading the file alone: with a store, a reload merges the store in as well.
pub fn watch_file_with(
    shared: Arc<Shared>,
    path: PathBuf,
    every: Duration,
    reload: impl Fn() + Send + Sync + 'static,
) {
    let reload = Arc::new(reload);
    let handle = shared.control().clone();
    // Taken now, not in the task, so a change made right after this call is not missed.
    let mut last = std::fs::read(&path).ok();
    let mut keys = KeysSeen::now(&shared);
    handle.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = tokio::fs::read(&path).await.ok();
            let config_changed = now != last && now.is_some();
            if config_changed {
                last = now;
            }
            let keys_changed = keys.changed(&shared).await;
            if config_changed || keys_changed {
                let reload = reload.clone();
                // Reading and compiling may touch the disk; keep it off the async threads.
                let _ = tokio::task::spawn_blocking(move || reload()).await;
            }
        }
    });
}

/// The keys file of the running config and its content when last looked at.
struct KeysSeen {
    path: Option<PathBuf>,
    content: Option<Vec<u8>>,
}

impl KeysSeen {
    fn now(shared: &Shared) -> Self {
        let path = shared.snapshot().security.keys_file.clone();
        let content = path.as_ref().and_then(|p| std::fs::read(p).ok());
        Self { path, content }
    }

    /// Whether the keys file changed since the last look. The path is read from the
    /// running snapshot each time, so a reload that names another file is followed (a
    /// new path counts as a change: one extra reload is cheaper than a missed one). A
    /// file that disappears is a change too: no file means no keys.
    async fn changed(&mut self, shared: &Shared) -> bool {
        let path = shared.snapshot().security.keys_file.clone();
        let content = match &path {
            Some(p) => tokio::fs::read(p).await.ok(),
            None => None,
        };
        let changed = path != self.path || content != self.content;
        if changed {
            tracing::info!(file = %path.as_deref().unwrap_or(Path::new("")).display(), "keys file changed");
        }
        self.path = path;
        self.content = content;
        changed
    }
}
