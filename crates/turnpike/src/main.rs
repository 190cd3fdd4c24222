//! The `turnpike` binary: command line, logging, signals and wiring. Everything else
//! lives in the library crates.

#![allow(
    clippy::print_stdout,
    reason = "a command-line tool prints its results"
)]

mod cli;
mod demo;
mod logging;
mod serve;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format, cli.log_level.as_deref());
    let result = match cli.command {
        cli::Command::Validate(args) => serve::validate(&args.config),
        cli::Command::Serve(args) => serve::serve(&args),
        cli::Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // Logs go to stderr too; one line is enough.
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
