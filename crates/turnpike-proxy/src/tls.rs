//! TLS termination: rustls server configs with certificates chosen by SNI (exact names
//! and `*.wildcards`), TLS 1.2 and 1.3 only, ALPN for HTTP/2.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use turnpike_config::model;

/// A certificate or key that cannot be used, with the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: no PEM certificate found")]
    NoCert { path: String },
    #[error("{path}: no PEM private key found (PKCS#8, PKCS#1 or SEC1 expected)")]
    NoKey { path: String },
    #[error("{path}: unsupported private key: {source}")]
    BadKey { path: String, source: rustls::Error },
    #[error("{key} does not match the certificate in {cert}")]
    Mismatch { cert: String, key: String },
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

#[derive(Debug, Default)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*`, e.g. `.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name().map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        if let Some(ck) = self.exact.get(&name) {
            return Some(ck.clone());
        }
        let suffix = name.find('.').map(|i| &name[i..]);
        suffix.and_then(|s| self.wildcard.get(s)).cloned().or_else(|| self.default.clone())
    }
}

/// Builds the server config of one TLS listener, reading every certificate and key.
pub fn server_config(cfg: &model::ListenerTls, http2: bool) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut resolver = SniResolver::default();
    let (mut catch_all, mut first) = (None, None);
    for cert in &cfg.certificates {
        let key = Arc::new(load_certified_key(cert)?);
        for host in &cert.hosts {
            let host = host.to_ascii_lowercase();
            match host.strip_prefix('*') {
                Some(suffix) => resolver.wildcard.insert(suffix.to_owned(), key.clone()),
                None => resolver.exact.insert(host, key.clone()),
            };
        }
        if cert.hosts.is_empty() && catch_all.is_none() {
            catch_all = Some(key.clone());
        }
        first.get_or_insert(key);
    }
    // Names no certificate claims get the first one without `hosts`, else the first one.
    resolver.default = catch_all.or(first);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(Arc::new(config))
}

fn load_certified_key(cert: &model::Certificate) -> Result<CertifiedKey, TlsError> {
    let open = |path: &str| {
        File::open(path).map(BufReader::new).map_err(|source| TlsError::Read { path: path.to_owned(), source })
    };
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut open(&cert.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read { path: cert.cert.clone(), source })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert { path: cert.cert.clone() });
    }
    let key = rustls_pemfile::private_key(&mut open(&cert.key)?)
        .map_err(|source| TlsError::Read { path: cert.key.clone(), source })?
        .ok_or_else(|| TlsError::NoKey { path: cert.key.clone() })?;
    let signing = any_supported_type(&key).map_err(|source| TlsError::BadKey { path: cert.key.clone(), source })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TlsError::Mismatch { cert: cert.cert.clone(), key: cert.key.clone() });
        }
        // Key types whose public key rustls cannot derive are checked at handshake time.
        Err(_) => {}
    }
    Ok(certified)
}
