//! TLS trust for upstreams (the system's roots) and the connector active health checks
//! use. Proxied requests go through the per-worker pool in `pool.rs`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;

/// TLS settings for upstreams: the system's trusted roots, loaded once per process.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        tracing::warn!(error = %err, "could not load a system root certificate");
    }
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, "system root certificates loaded for upstream TLS");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// A connector for `http://` and `https://` targets; ALPN offers only the protocol the
/// upstream is configured for.
pub fn connector(
    connect_timeout: Duration,
    http2: bool,
) -> Result<HttpsConnector<HttpConnector>, rustls::Error> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.enforce_http(false);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config((*tls_config()?).clone())
        .https_or_http();
    Ok(if http2 {
        https.enable_http2().wrap_connector(http)
    } else {
        https.enable_http1().wrap_connector(http)
    })
}
