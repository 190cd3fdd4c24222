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
    /// Manage API keys: in the keys file (`auth.keys_file`), or through the admin API when
    /// `--admin-url` or `TURNPIKE_ADMIN_URL` is set.
    Keys(KeysArgs),
    /// Upstreams in the store, through the admin API.
    Upstreams(EntityArgs),
    /// Routes in the store, through the admin API.
    Routes(EntityArgs),
    /// Consumers in the store, through the admin API.
    Consumers(EntityArgs),
    /// Plans in the store, through the admin API.
    Plans(EntityArgs),
    /// The global policies (`policies:`) in the store, through the admin API.
    Policies(PoliciesArgs),
    /// Services published from OpenAPI documents, through the admin API.
    Services(ServicesArgs),
    /// The store as YAML, through the admin API: export it, push a file into it, diff.
    Config(ConfigArgs),
    /// Publish an API from its description, through the admin API.
    Import(ImportArgs),
    /// The response cache, through the admin API: purge by tag, URL or prefix; status.
    Cache(CacheArgs),
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

    /// Manage keys of store consumers through this admin API instead of the keys file
    /// (the token comes from TURNPIKE_ADMIN_TOKEN).
    #[arg(long, global = true, value_name = "URL", env = "TURNPIKE_ADMIN_URL")]
    pub admin_url: Option<String>,

    /// PEM file of CA certificates to trust for an https:// admin URL, besides the system's.
    #[arg(long, global = true, value_name = "FILE", env = "TURNPIKE_ADMIN_CA")]
    pub admin_ca: Option<PathBuf>,

    #[command(subcommand)]
    pub command: KeysCommand,
}

/// Where the admin API is and how to print; the token comes from `TURNPIKE_ADMIN_TOKEN`
/// (never an argument, so it does not show in `ps`).
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The admin API's base URL: http:// or https:// (an admin listener with `admin.tls`).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "TURNPIKE_ADMIN_URL",
        default_value = "http://127.0.0.1:8001"
    )]
    pub admin_url: String,

    /// PEM file of CA certificates to trust for an https:// admin URL, besides the system's
    /// (for an admin listener whose certificate comes from a private CA).
    #[arg(long, global = true, value_name = "FILE", env = "TURNPIKE_ADMIN_CA")]
    pub admin_ca: Option<PathBuf>,

    /// Output format: tables (YAML for single entities), or JSON.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct EntityArgs {
    #[command(flatten)]
    pub admin: AdminArgs,

    #[command(subcommand)]
    pub command: EntityCommand,
}

#[derive(Debug, Subcommand)]
pub enum EntityCommand {
    /// List them (every page), in name order.
    List {
        /// Only names starting with this.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Show one, as YAML (or JSON with --output json).
    Get { name: String },
    /// Create from a YAML or JSON file holding one entity, or a list of them.
    Create {
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete one.
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct PoliciesArgs {
    #[command(flatten)]
    pub admin: AdminArgs,

    #[command(subcommand)]
    pub command: PoliciesCommand,
}

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Show the global policies in effect, as YAML (or JSON with --output json), and where
    /// they come from (on stderr).
    Get,
    /// Replace the store's global policies with a YAML or JSON file holding one mapping
    /// (what you would write under `policies:`).
    Set {
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
        /// Replace only if the store's document is still at this revision (`policies get`
        /// prints it); 0: only if the store holds none.
        #[arg(long, value_name = "REVISION")]
        if_revision: Option<i64>,
    },
    /// Delete the store's global policies: the file's `policies:` (or none) apply again.
    Delete,
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    pub admin: AdminArgs,

    #[command(subcommand)]
    pub command: ServicesCommand,
}

#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// List them (every page), in name order, without their documents.
    List {
        /// Only names starting with this.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Delete a service with the routes its imports generated, and their upstreams unless
    /// other routes use them; with `--version`, only that version.
    // `--version` names an API version here, not Turnpike's.
    #[command(disable_version_flag = true)]
    Delete {
        name: String,
        /// Delete only this version of the service.
        #[arg(long = "version", value_name = "VERSION")]
        api_version: Option<String>,
    },
    /// A service's versions: selector, upstream, lifecycle and route count.
    Versions { name: String },
    /// Deprecate a version: still served, with `Deprecation`, `Sunset` and `Link` headers.
    Deprecate {
        name: String,
        #[arg(value_name = "VERSION")]
        api_version: String,
        /// When it was (or will be) deprecated, RFC 3339 (default: now).
        #[arg(long, value_name = "INSTANT")]
        at: Option<String>,
        /// When it may stop working, RFC 3339 (`Sunset`).
        #[arg(long, value_name = "INSTANT")]
        sunset: Option<String>,
        /// Where callers read about the change (`Link: <URL>; rel="deprecation"`).
        #[arg(long, value_name = "URL")]
        link: Option<String>,
    },
    /// Retire a version: 410 Gone, with its `Sunset` and `Link` headers.
    Retire {
        name: String,
        #[arg(value_name = "VERSION")]
        api_version: String,
    },
    /// Publish a version again (or a draft for the first time), without deprecation.
    Publish {
        name: String,
        #[arg(value_name = "VERSION")]
        api_version: String,
    },
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub admin: AdminArgs,

    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the store's upstreams, routes, consumers, plans, OAuth clients and global
    /// policies as YAML.
    Export {
        /// Print the whole served configuration instead: this file (the gateway's own,
        /// as written) with the store's entities appended to its sections.
        #[arg(long, value_name = "FILE")]
        merged: Option<PathBuf>,
    },
    /// Make the store's entities equal to FILE's upstreams, routes, consumers, plans,
    /// `oauth.clients` and `policies`.
    Push { file: PathBuf },
    /// Show what `push FILE` would change; exit code 2 when something would.
    Diff { file: PathBuf },
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(flatten)]
    pub admin: AdminArgs,

    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Remove cached responses on the gateway and tell the configured CDNs.
    Purge {
        /// A `Surrogate-Key` / `Cache-Tag` value (repeatable).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// An exact URL as clients request it, e.g. https://api.example.com/v1/items?page=2
        /// (repeatable).
        #[arg(long = "url", value_name = "URL")]
        urls: Vec<String>,
        /// A URL prefix, e.g. https://api.example.com/v1/items/ (repeatable).
        #[arg(long = "prefix", value_name = "URL")]
        prefixes: Vec<String>,
    },
    /// What the cache holds, and CDN purges that failed.
    Status,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub command: ImportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// An OpenAPI 3.0 or 3.1 document (YAML or JSON) becomes an upstream and one route per
    /// operation; importing again updates them in place.
    // `--version` names an API version here, not Turnpike's.
    #[command(disable_version_flag = true)]
    Openapi(OpenApiArgs),
}

#[derive(Debug, Args)]
pub struct OpenApiArgs {
    #[command(flatten)]
    pub admin: AdminArgs,

    /// The OpenAPI document.
    pub file: PathBuf,

    /// The upstream's URL (required the first time; a re-import keeps the previous one).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,

    /// Service (and upstream) name (default: from `info.title`).
    #[arg(long, visible_alias = "service", value_name = "SERVICE")]
    pub name: Option<String>,

    /// Import the document as this version of the service (`v2`), with its own upstream
    /// and lifecycle; needs `--version-path` or `--version-header` the first time.
    #[arg(long = "version", value_name = "VERSION")]
    pub api_version: Option<String>,

    /// Requests choose the version by this path in front of every route's (`/v2`).
    #[arg(
        long,
        value_name = "PATH",
        requires = "api_version",
        conflicts_with = "version_header"
    )]
    pub version_path: Option<String>,

    /// Requests choose the version by this header (`Accept-Version=2`).
    #[arg(long, value_name = "NAME=VALUE", requires = "api_version")]
    pub version_header: Option<String>,

    /// Import the version as a draft: not served (404) until `turnpike services publish`.
    #[arg(long, requires = "api_version")]
    pub draft: bool,

    /// Publish under this path; the upstream still gets the document's paths
    /// (default: the path of `servers[0].url`, kept).
    #[arg(long, value_name = "PATH")]
    pub prefix: Option<String>,

    /// Check parameters and JSON bodies against the document's schemas (400 otherwise).
    #[arg(long, conflicts_with = "no_validate")]
    pub validate: bool,

    /// Stop validating requests (a re-import otherwise keeps the previous choice).
    #[arg(long)]
    pub no_validate: bool,

    /// Show what would change without changing anything.
    #[arg(long)]
    pub dry_run: bool,
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
    /// Print a new store encryption key (32 random bytes, base64) for `admin.secrets_key`:
    /// it encrypts the certificates' private keys the admin API stores. Give every node
    /// the same one, e.g. as `TURNPIKE_SECRETS_KEY`.
    StoreKey {
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
