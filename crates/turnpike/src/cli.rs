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
    /// Manage API keys in the keys file (`auth.keys_file`): create, list, revoke, rotate.
    Keys(KeysArgs),
    /// Read a password or secret from stdin and print its argon2id hash (for
    /// `consumers[].basic_auth[].password_hash` and `oauth.clients[].secret_hash`).
    HashPassword,
    /// Generate secrets.
    Secret(SecretArgs),
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Configuration file (YAML); it names the keys file and holds the key secret.
    #[arg(
        short,
        long,
        global = true,
        value_name = "FILE",
        env = "TURNPIKE_CONFIG",
        default_value = "turnpike.yaml"
    )]
    pub config: PathBuf,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for a consumer; the key is printed once and only its hash is kept.
    Create {
        /// Consumer the key belongs to (one of `consumers[].name`).
        #[arg(long, value_name = "NAME")]
        consumer: String,
        /// Lifetime of the key, e.g. `90d` or `12h` (default: no expiry).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<turnpike_config::units::Duration>,
    },
    /// List keys (ids and status; the keys themselves cannot be shown).
    List {
        /// Only this consumer's keys.
        #[arg(long, value_name = "NAME")]
        consumer: Option<String>,
    },
    /// Revoke a key at once.
    Revoke {
        /// Key id (as `keys list` shows), or the whole key.
        id: String,
    },
    /// Replace a key: a new key for the same consumer, and the old one keeps working
    /// for the overlap period only.
    Rotate {
        /// Key id (as `keys list` shows), or the whole key.
        id: String,
        /// How long the old key keeps working, e.g. `24h` or `7d`.
        #[arg(long, value_name = "DURATION", default_value = "24h")]
        overlap: turnpike_config::units::Duration,
        /// Lifetime of the new key (default: no expiry).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<turnpike_config::units::Duration>,
    },
}

#[derive(Debug, Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub command: SecretCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print a new random secret (32 bytes, base64url) and its argon2id hash, e.g. for
    /// an OAuth client: the secret goes to the client, the hash into
    /// `oauth.clients[].secret_hash`.
    Generate {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
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
