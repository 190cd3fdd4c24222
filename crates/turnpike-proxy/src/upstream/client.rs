//! TLS trust for upstreams (the system's roots, or an upstream's own CA and client
//! certificate) and the connector active health checks use. Proxied requests go through
//! the per-worker pool in `pool.rs`.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::RootCertStore;
use turnpike_config::model;

use crate::tls::{self, TlsError};

/// The system's trusted roots, loaded once per process.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for err in &found.errors {
                tracing::warn!(error = %err, "could not load a system root certificate");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, "system root certificates loaded for upstream TLS");
            Arc::new(roots)
        })
        .clone()
}

/// TLS settings for upstreams without their own `tls`: the system's roots.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(system_roots())
        .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// One upstream's `tls`: the CA its targets are verified against (else the system's
/// roots) and the client certificate presented to them, built once per snapshot.
///
/// It is part of the pool key (by `id`), so a connection made with one upstream's
/// certificate never serves another upstream that points at the same address.
pub struct UpstreamTls {
    id: u64,
    /// Without ALPN: the health-check connector sets its own.
    base: Arc<rustls::ClientConfig>,
    h1: Arc<rustls::ClientConfig>,
    h2: Arc<rustls::ClientConfig>,
    /// The settings and file contents it was made from: a reload that changes neither
    /// keeps this one, and with it the pooled connections.
    source: (model::UpstreamTls, Vec<Vec<u8>>),
}

/// By hand: `source` holds the client key's bytes, which must never reach a log.
impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("id", &self.id)
            .field("settings", &self.source.0)
            .finish_non_exhaustive()
    }
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for UpstreamTls {}

impl Hash for UpstreamTls {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl UpstreamTls {
    /// Reads the CA, certificate and key files; `previous` is reused when nothing changed.
    pub fn build(
        cfg: &model::UpstreamTls,
        previous: Option<&Arc<UpstreamTls>>,
    ) -> Result<Arc<Self>, TlsError> {
        let files = [&cfg.ca, &cfg.client_cert, &cfg.client_key];
        let contents = files
            .into_iter()
            .flatten()
            .map(|path| {
                std::fs::read(path).map_err(|source| TlsError::Read {
                    path: path.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let source = (cfg.clone(), contents);
        if let Some(prev) = previous.filter(|p| p.source == source) {
            return Ok(prev.clone());
        }
        let base = Arc::new(client_config(cfg)?);
        let with_alpn = |proto: &[u8]| {
            let mut config = (*base).clone();
            config.alpn_protocols = vec![proto.to_vec()];
            Arc::new(config)
        };
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(Arc::new(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            h1: with_alpn(b"http/1.1"),
            h2: with_alpn(b"h2"),
            base,
            source,
        }))
    }

    /// The config for a connection speaking `h2` or HTTP/1.1; ALPN offers only that one.
    pub fn alpn(&self, http2: bool) -> Arc<rustls::ClientConfig> {
        if http2 {
            self.h2.clone()
        } else {
            self.h1.clone()
        }
    }
}

fn client_config(cfg: &model::UpstreamTls) -> Result<rustls::ClientConfig, TlsError> {
    let roots = match &cfg.ca {
        Some(ca) => Arc::new(tls::load_roots(ca)?),
        None => system_roots(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    match (&cfg.client_cert, &cfg.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = tls::load_certs(cert)?;
            builder
                .with_client_auth_cert(chain, tls::load_key(key)?)
                .map_err(|source| TlsError::ClientCert {
                    cert: cert.clone(),
                    key: key.clone(),
                    source: Box::new(source),
                })
        }
        (Some(path), None) | (None, Some(path)) => Err(TlsError::Unpaired { path: path.clone() }),
    }
}

/// A connector for `http://` and `https://` targets; ALPN offers only the protocol the
/// upstream is configured for. `tls` is the upstream's own TLS settings, if any.
pub fn connector(
    connect_timeout: Duration,
    http2: bool,
    tls: Option<&UpstreamTls>,
) -> Result<HttpsConnector<HttpConnector>, rustls::Error> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.enforce_http(false);
    let config = match tls {
        Some(tls) => tls.base.clone(),
        None => tls_config()?,
    };
    let https = HttpsConnectorBuilder::new()
        .with_tls_config((*config).clone())
        .https_or_http();
    Ok(if http2 {
        https.enable_http2().wrap_connector(http)
    } else {
        https.enable_http1().wrap_connector(http)
    })
}
