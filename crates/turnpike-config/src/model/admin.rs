//! The `admin:` section: the admin API's listener and the durable store behind it.
//!
//! Its presence is the switch: without it `turnpike serve` runs on the file alone, with no
//! admin API and no store, so a plain config file keeps meaning what it always meant.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Where the admin API listens and which store it manages.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// The admin API's own listener (DESIGN.md: `127.0.0.1:8001`).
    pub listen: SocketAddr,
    /// `sqlite://PATH`, a plain file path (SQLite), or `postgres://...`.
    pub store: String,
    /// Development only: every admin request acts as `admin` without a token. Allowed only
    /// when `listen` is a loopback address.
    pub insecure_no_auth: bool,
    /// Serve the admin API over TLS with this certificate (absent: plain HTTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<AdminTls>,
}

/// The admin listener's certificate: PEM files, as for the proxy's listeners. Read at start;
/// a renewed certificate takes a restart.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminTls {
    /// PEM file with the certificate chain, leaf first.
    pub cert: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// The admin listener when the section does not name one.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8001,
));
/// The SQLite file, relative to the working directory, when the section names no store.
pub const DEFAULT_STORE: &str = "turnpike.db";

impl Default for Admin {
    fn default() -> Self {
        Self {
            listen: DEFAULT_ADMIN_LISTEN,
            store: DEFAULT_STORE.to_owned(),
            insecure_no_auth: false,
            tls: None,
        }
    }
}
