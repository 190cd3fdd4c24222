//! The `turnpike` binary: command line, logging, signals and wiring. Everything else
//! lives in the library crates.

#![allow(
    clippy::print_stdout,
    reason = "a command-line tool prints its results"
)]

mod admin_cli;
mod admin_client;
mod admin_tls;
mod cache_cli;
mod cli;
mod config_sync;
mod control;
mod demo;
mod diff;
mod import;
mod keys;
mod keys_admin;
mod logging;
mod policies_cli;
mod secrets;
mod serve;
mod services_cli;
mod yaml;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format, cli.log_level.as_deref());
    // The gateway reports failures in its log; one-shot commands talk to a person.
    let logs = matches!(cli.command, cli::Command::Serve(_) | cli::Command::Demo(_));
    let result = match cli.command {
        cli::Command::Validate(args) => serve::validate(&args.config),
        cli::Command::Serve(args) => serve::serve(&args),
        cli::Command::Demo(args) => demo::run(&args),
        cli::Command::Keys(args) => keys::run(&args),
        cli::Command::Upstreams(args) => admin_cli::run("upstreams", &args),
        cli::Command::Routes(args) => admin_cli::run("routes", &args),
        cli::Command::Consumers(args) => admin_cli::run("consumers", &args),
        cli::Command::Plans(args) => admin_cli::run("plans", &args),
        cli::Command::Policies(args) => policies_cli::run(&args),
        cli::Command::Services(args) => services_cli::run(&args),
        cli::Command::Config(args) => config_sync::run(&args),
        cli::Command::Import(args) => import::run(&args),
        cli::Command::Cache(args) => cache_cli::run(&args),
        cli::Command::HashPassword => secrets::hash_password(),
        cli::Command::Secret(args) => secrets::run(&args.command),
    };
    match result {
        Ok(code) => code,
        Err(err) if logs => {
            // Logs go to stderr too; one line is enough.
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
