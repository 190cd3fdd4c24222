//! Command-line interface (clap). Subcommands map one to one onto the modules that run them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Turnpike: a fast, safe API gateway.
///
/// Run `turnpike demo` to try it with a built-in echo upstream, or
/// `turnpike serve --config turnpike.yaml` to run your own configuration.
#[derive(Debug, Parser)]
#[command(
    name = "turnpike",
    version,
    about,
    long_about,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TURNPIKE_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Log filter, e.g. `info` or `turnpike_proxy=debug` (default: info; RUST_LOG also works).
    #[arg(long, global = true, env = "TURNPIKE_LOG")]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway with a configuration file.
    Serve(ServeArgs),
    /// Check a configuration file and print every problem with file:line:column.
    Validate(ValidateArgs),
    /// Run a demo: a built-in echo upstream behind the gateway, nothing else needed.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (YAML).
    #[arg(short, long, value_name = "FILE", env = "TURNPIKE_CONFIG")]
    pub config: PathBuf,

    /// Do not reload when the file changes (SIGHUP still reloads).
    #[arg(long)]
    pub no_watch: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Configuration file (YAML).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address the demo gateway listens on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: std::net::SocketAddr,

    /// Print the demo's configuration and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
