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
const WATCH_EVERY: Duration = Duration::from_secs(1);

pub fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    match turnpike_config::load_file(path) {
        Ok(cfg) => {
            // What only a start can find (certificate files, keys) is checked too.
            if let Err(err) = turnpike_proxy::Snapshot::build(&cfg, 0, None) {
                eprintln!("{}: {err}", path.display());
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
    let gateway = Gateway::start(&cfg).context("starting the gateway")?;
    for (name, addr) in gateway.addrs() {
        tracing::info!(listener = &**name, %addr, "listening");
    }
    if !args.no_watch {
        reload::watch_file(gateway.shared().clone(), args.config.clone(), WATCH_EVERY);
    }
    run_until_signal(gateway, Some(args.config.as_path()))?;
    Ok(ExitCode::SUCCESS)
}

/// Blocks until SIGTERM or SIGINT, reloading on SIGHUP, then drains the gateway.
pub fn run_until_signal(gateway: Gateway, config: Option<&Path>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shared = Arc::clone(gateway.shared());
        loop {
            tokio::select! {
                _ = hup.recv() => match config {
                    Some(path) => {
                        // File and certificate reads block; keep them off this thread.
                        let (shared, path) = (shared.clone(), path.to_owned());
                        let _ = tokio::task::spawn_blocking(move || reload::reload_and_log(&shared, &path)).await;
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
