//! `serve` and `validate`: load the file, start the gateway, and wire signals to reload
//! (SIGHUP) and graceful shutdown (SIGTERM, SIGINT).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use turnpike_proxy::{Gateway, reload};

use crate::cli::ServeArgs;

/// How often the config file is checked for changes.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

pub fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    match turnpike_config::load_file(path) {
        Ok(cfg) => {
            // What only a start can find (certificate files, keys) is checked too.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a runtime")?;
            if let Err(err) = turnpike_proxy::Snapshot::build(&cfg, 0, None, rt.handle()) {
                eprintln!("{}: {err}", path.display());
                return Ok(ExitCode::FAILURE);
            }
            // The admin listener's certificate is loaded by `serve` only: load it here too.
            if let Some(tls) = cfg.admin.as_ref().and_then(|a| a.tls.as_ref())
                && let Err(err) = crate::admin_tls::server_config(tls)
            {
                eprintln!("{}: {err:#}", path.display());
                return Ok(ExitCode::FAILURE);
            }
            let routes = cfg.routes.len();
            let upstreams = cfg.upstreams.len();
            println!(
                "{}: OK ({routes} routes, {upstreams} upstreams)",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = match turnpike_config::load_file(&args.config) {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(admin) = cfg.admin.clone() {
        return crate::control::serve(args, cfg, &admin);
    }
    let gateway = Gateway::start(&cfg).context("starting the gateway")?;
    log_listeners(&gateway);
    if !args.no_watch {
        reload::watch_file(gateway.shared().clone(), args.config.clone(), WATCH_EVERY);
    }
    let reload: Reload = {
        let (shared, path) = (gateway.shared().clone(), args.config.clone());
        Arc::new(move || reload::reload_and_log(&shared, &path))
    };
    run_until_signal(gateway, Some(reload))?;
    Ok(ExitCode::SUCCESS)
}

pub fn log_listeners(gateway: &Gateway) {
    for (name, addr) in gateway.addrs() {
        tracing::info!(listener = &**name, %addr, "listening");
    }
}

/// What SIGHUP does: reload the file (and, with a store, merge the store in again).
pub type Reload = Arc<dyn Fn() + Send + Sync>;

/// Blocks until SIGTERM or SIGINT, reloading on SIGHUP, then drains the gateway.
pub fn run_until_signal(gateway: Gateway, reload: Option<Reload>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = hup.recv() => match &reload {
                    Some(reload) => {
                        // File and certificate reads block; keep them off this thread.
                        let reload = reload.clone();
                        let _ = tokio::task::spawn_blocking(move || reload()).await;
                    }
                    None => tracing::info!("SIGHUP ignored: no configuration file"),
                },
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        tracing::info!("shutting down: draining connections");
        gateway.shutdown().await;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}
