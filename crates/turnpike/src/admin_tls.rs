//! TLS for the admin API, both ends: the listener's rustls config from `admin.tls` (`serve`,
//! and `validate`, which loads the files too), and the CLI's trust for `https://` admin URLs
//! (the system's roots plus an optional private CA from `--admin-ca`).
//!
//! PEM files are read with the proxy's own loaders, so a missing file, a file without a
//! certificate or a key that does not match is reported the same way as for a listener,
//! naming the file.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::RootCertStore;
use turnpike_config::model::AdminTls;
use turnpike_proxy::tls::{load_certs, load_key};

/// The environment variable `--admin-ca` also reads.
pub const CA_ENV: &str = "TURNPIKE_ADMIN_CA";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The admin listener's TLS settings: TLS 1.2 and 1.3, HTTP/1.1 (the admin API speaks no
/// HTTP/2), the certificate chain and key from `tls`.
pub fn server_config(tls: &AdminTls) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = load_certs(&tls.cert).context("admin.tls.cert")?;
    let key = load_key(&tls.key).context("admin.tls.key")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("admin.tls: TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "admin.tls: the key in {} cannot be used with the certificate in {}",
                tls.key, tls.cert
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A config that trusts nothing, for the connector of a plain `http://` client.
pub fn client_config_plain() -> anyhow::Result<rustls::ClientConfig> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}

/// What the CLI trusts for `https://` admin URLs: the system's roots, plus every certificate
/// in `ca` (a PEM bundle) for an admin listener with a certificate from a private CA.
pub fn client_config(ca: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(found.certs);
    if let Some(path) = ca {
        let shown = path.display();
        let file = path
            .to_str()
            .with_context(|| format!("--admin-ca {shown}: the path is not UTF-8"))?;
        // Every certificate must be usable: one skipped would fail later, less clearly.
        for cert in load_certs(file).with_context(|| format!("--admin-ca ({CA_ENV})"))? {
            roots
                .add(cert)
                .with_context(|| format!("--admin-ca {shown}: a certificate cannot be a CA"))?;
        }
    }
    if roots.is_empty() {
        anyhow::bail!(
            "no trusted CA certificates: the system has none installed; name the admin listener's CA with --admin-ca FILE or {CA_ENV}"
        );
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
