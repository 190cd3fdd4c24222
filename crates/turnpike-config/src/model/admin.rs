//! The `admin:` section: the admin API's listener and the durable store behind it.
//!
//! Its presence is the switch: without it `turnpike serve` runs on the file alone, with no
//! admin API and no store, so a plain config file keeps meaning what it always meant.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Where the admin API listens and which store it manages.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
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
    /// Encrypts the secrets the store must give back in clear (certificates' private keys):
    /// 32 random bytes as base64 or 64 hex digits, normally `${TURNPIKE_SECRETS_KEY}`
    /// ([`secrets_key_bytes`] reads it). `Debug` never shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets_key: Option<String>,
}

impl std::fmt::Debug for Admin {
    // By hand, so the secrets key can never reach a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("listen", &self.listen)
            .field("store", &self.store)
            .field("insecure_no_auth", &self.insecure_no_auth)
            .field("tls", &self.tls)
            .field("secrets_key", &self.secrets_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Why an `admin.secrets_key` cannot be used. The messages never quote the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretsKeyError {
    #[error(
        "must be 32 random bytes as base64 (44 characters) or hex (64 characters), \
         e.g. from `turnpike secret store-key`; found {0} characters"
    )]
    Format(usize),
    #[error(
        "decodes to {0} bytes, but AES-256 needs exactly 32 (`turnpike secret store-key` makes one)"
    )]
    Length(usize),
}

/// The 32 key bytes of an `admin.secrets_key`: 64 hex digits, or base64 (standard or
/// URL-safe alphabet, padded or not, as `openssl rand -base64 32` or other tools print it).
/// Surrounding whitespace is ignored, since keys often come from files with a newline.
pub fn secrets_key_bytes(text: &str) -> Result<[u8; 32], SecretsKeyError> {
    let text = text.trim();
    // Hex first: 64 hex digits are also valid base64, of 48 bytes.
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; 32];
        for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
            *byte = (hex_digit(pair[0]) << 4) | hex_digit(pair[1]);
        }
        return Ok(key);
    }
    let bytes = base64_decode(text).ok_or(SecretsKeyError::Format(text.chars().count()))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| SecretsKeyError::Length(bytes.len()))
}

/// The value of a hex digit (the caller checked it is one).
fn hex_digit(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    if text.is_empty() {
        return None;
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
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
            secrets_key: None,
        }
    }
}
