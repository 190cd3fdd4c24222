//! `serve` with an `admin:` section: opens the store, starts the admin API on its own
//! listener, and keeps the gateway on the file's configuration plus the store's entities.
//!
//! Wiring only: merging and following the change feed live in `turnpike_admin::sync`.
//! A PostgreSQL store that does not answer at start does not stop it: the gateway serves
//! its file alone, `/readyz` says so, and the follower applies the store's entities once the
//! database answers.
//! The analytics worker (usage rollups and this node's heartbeat to the store) lives in
//! `turnpike_admin::analytics::worker`; it writes its last rows after the gateway drains.
//! The admin API, the follower and the store's pool run on a small runtime of their own,
//! so the proxy's workers never run control-plane work.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use turnpike_admin::sync::{Follower, SyncError, effective_config};
use turnpike_admin::{AdminOptions, AdminState, ConfigStatus, Serving};
use turnpike_config::Config;
use turnpike_config::model::Admin;
use turnpike_proxy::{Gateway, reload};
use turnpike_store::{Store, StoreError};

use crate::cli::ServeArgs;
use crate::serve::{Reload, WATCH_EVERY, log_listeners, run_until_signal};

/// How long admin requests in flight get after the gateway has drained.
const ADMIN_DRAIN: Duration = Duration::from_secs(5);

/// What start-up prepared before the gateway binds.
struct Prepared {
    state: AdminState,
    listener: tokio::net::TcpListener,
    /// The admin listener's TLS settings (`admin.tls`).
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The store version the first configuration was built from; [`UNREAD`] when the
    /// store could not be read.
    version: i64,
    config: Config,
}

/// No store version: the follower rebuilds at once (and retries until the store answers).
const UNREAD: i64 = -1;

pub fn serve(args: &ServeArgs, file: Config, admin: &Admin) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("turnpike-admin")
        .enable_all()
        .build()?;
    let prepared = rt.block_on(prepare(file.clone(), admin))?;
    let gateway = start_gateway(&prepared.config, &file, &prepared.state)?;
    log_listeners(&gateway);
    let follower = {
        // The follower's task belongs on the control-plane runtime.
        let _entered = rt.enter();
        follow(&prepared, gateway.shared())
    };
    let (stop_admin, stopped) = watch::channel(false);
    let metrics: turnpike_admin::MetricsSource = {
        let shared = gateway.shared().clone();
        Arc::new(move |store_up| shared.render_metrics(store_up))
    };
    prepared
        .state
        .set_cache(Arc::new(GatewayCache(gateway.shared().clone())));
    // Usage rollups and this node's heartbeat go to the store from the control-plane runtime.
    let analytics = {
        let _entered = rt.enter();
        let usage = gateway.shared().snapshot().metrics.usage().clone();
        turnpike_admin::analytics::worker::Worker::start(prepared.state.clone(), usage)
    };
    let serving = Serving {
        metrics: Some(metrics),
        tls: prepared.tls,
    };
    let admin_task = rt.spawn(serve_admin(
        prepared.listener,
        (prepared.state, serving),
        stopped,
    ));
    let reload: Reload = {
        let (follower, path) = (follower, args.config.clone());
        Arc::new(move || follower.reload_file_and_log(&path))
    };
    if !args.no_watch {
        let (shared, path, reload) = (
            gateway.shared().clone(),
            args.config.clone(),
            reload.clone(),
        );
        reload::watch_file_with(shared, path, WATCH_EVERY, move || reload());
    }
    run_until_signal(gateway, Some(reload))?;
    // The gateway has drained, so every request is counted: write what is still in memory.
    rt.block_on(analytics.shutdown());
    // Admin requests in flight finish (for a while), then the store's pool goes with the runtime.
    let _ = stop_admin.send(true);
    let _ = rt.block_on(async { tokio::time::timeout(ADMIN_DRAIN, admin_task).await });
    rt.shutdown_background();
    Ok(ExitCode::SUCCESS)
}

/// Keeps the gateway on the file plus the store, from the version start-up built.
fn follow(prepared: &Prepared, shared: &Arc<turnpike_proxy::Shared>) -> Follower {
    let (shared, failed) = (shared.clone(), shared.clone());
    let apply = move |cfg: &Config| shared.apply(cfg);
    // A merge the config checks refuse never reaches `apply`; count it as the failed
    // reload it is (`turnpike_config_reloads_total{result="failure"}`).
    let rejected = move || failed.reload_failed();
    Follower::start_with(prepared.state.clone(), prepared.version, apply, rejected)
}

/// Opens (and migrates) the store, creates the bootstrap token, binds the admin listener and
/// builds the first configuration. A merged configuration that is invalid, or a PostgreSQL
/// store that does not answer, starts on the file alone (there is no last good one yet).
async fn prepare(file: Config, admin: &Admin) -> anyhow::Result<Prepared> {
    let tls = admin
        .tls
        .as_ref()
        .map(crate::admin_tls::server_config)
        .transpose()?;
    let store = open_store(&admin.store).await?;
    tracing::info!(backend = store.backend_name(), "store opened");
    let mut options = AdminOptions::from_env(file.clone(), &|k| std::env::var(k).ok());
    options.insecure_no_auth = admin.insecure_no_auth;
    let state = AdminState::new(store, options)
        .await
        .context("starting the admin API")?;
    let listener = bind(admin.listen).await?;
    let (version, config) = match effective_config(&state).await {
        Ok(effective) => (effective.version, effective.config),
        // Certificates the secrets key cannot decrypt are a refused merge like any other.
        Err(err @ (SyncError::Invalid(_) | SyncError::Secrets(_))) => {
            tracing::error!(
                "store entities not applied, serving the configuration file alone until the next change:\n{err}"
            );
            state.set_config_status(ConfigStatus::Rejected(err.summary()));
            (state.store().version().await.unwrap_or(0), file)
        }
        Err(SyncError::Store(err)) => {
            tracing::error!(error = %err, "cannot read the store: serving the configuration file alone until it answers");
            state.set_config_status(ConfigStatus::FileOnly(err.to_string()));
            (UNREAD, file)
        }
        Err(err) => return Err(err).context("reading the store"),
    };
    Ok(Prepared {
        state,
        listener,
        tls,
        version,
        config,
    })
}

/// Opens the store. A PostgreSQL database that does not answer yet (down, or not created
/// yet) does not stop start-up: the store connects and migrates when it answers. A store
/// that answers but cannot be used (a newer schema, a failed migration) does stop it.
async fn open_store(url: &str) -> anyhow::Result<Store> {
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    match Store::open(url).await {
        Ok(store) => Ok(store),
        Err(StoreError::Unavailable(why)) if postgres => {
            // The URL is never logged: it may hold a database password.
            tracing::error!(error = %why, "config store unreachable at start: serving the configuration file alone until it answers");
            Store::open_deferred(url, &why)
                .await
                .context("opening the store (admin.store)")
        }
        Err(err) => Err(err).context("opening the store (admin.store)"),
    }
}

async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (admin.listen)"))
}

/// Starts on `config`; if the store's part makes the build fail (a file it names is gone,
/// say), starts on the file alone rather than not at all.
fn start_gateway(config: &Config, file: &Config, state: &AdminState) -> anyhow::Result<Gateway> {
    match Gateway::start(config) {
        Err(turnpike_proxy::StartError::Build(err)) if config != file => {
            tracing::error!(error = %err, "store entities not applied, serving the configuration file alone");
            state.set_config_status(ConfigStatus::Rejected(err.to_string()));
            Gateway::start(file).context("starting the gateway")
        }
        started => started.context("starting the gateway"),
    }
}

async fn serve_admin(
    listener: tokio::net::TcpListener,
    (state, serving): (AdminState, Serving),
    mut stopped: watch::Receiver<bool>,
) {
    let shutdown = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let served = turnpike_admin::serve_with(listener, state, serving, shutdown);
    if let Err(err) = served.await {
        tracing::error!(error = %err, "the admin API stopped");
    }
}

/// The gateway's response cache, for the admin API's purge and status endpoints. Always
/// the current snapshot's cache, so purges reach what requests are served from.
struct GatewayCache(Arc<turnpike_proxy::Shared>);

impl std::fmt::Debug for GatewayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayCache")
    }
}

impl turnpike_admin::CacheControl for GatewayCache {
    fn purge<'a>(
        &'a self,
        kind: turnpike_config::model::PurgeKind,
        values: &'a [String],
    ) -> turnpike_admin::PurgeFuture<'a> {
        let cache = self.0.snapshot().cache.clone();
        Box::pin(async move { cache.purge(kind, values).await })
    }

    fn status(&self) -> turnpike_admin::CacheStatus {
        let cache = self.0.snapshot().cache.clone();
        let (bytes, objects) = cache.usage();
        let cdn_failures = cache
            .cdn_failures()
            .into_iter()
            .map(|f| turnpike_admin::CdnFailure {
                endpoint: f.endpoint,
                kind: f.kind.to_owned(),
                values: f.values,
                error: f.error,
                attempts: f.attempts,
                at: f.at,
            })
            .collect();
        turnpike_admin::CacheStatus {
            bytes,
            objects,
            cdn_failures,
        }
    }
}
