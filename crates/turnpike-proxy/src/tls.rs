//! TLS termination: rustls server configs with certificates chosen by SNI (exact names
//! and `*.wildcards`), TLS 1.2 and 1.3 only, ALPN for HTTP/2.
//!
//! A certificate's `hosts` are the SNI names it serves; one listed without `hosts`
//! serves the names in the certificate itself (its subject alternative names). Names
//! nothing claims, and clients without SNI, get the first certificate. Every file is read
//! when a snapshot is built, so a reload picks up renewed certificates for new
//! connections; a certificate whose key does not match fails the build, naming the files.
//! Certificates with `pem: true` carry the PEM text itself (the admin API's certificates,
//! merged in from the store), so a store change reaches new connections the same way.
//!
//! A listener with `client_auth` asks clients for certificates and verifies them against
//! its CA bundle (webpki): a `required` one refuses the handshake without a valid
//! certificate; an optional one lets clients without a certificate in, and routes with
//! the `mtls` auth method refuse them. The CA and PEM loaders here also serve the TLS
//! settings of upstreams.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use rustls::client::verify_server_name;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    ClientHello, ParsedCertificate, ResolvesServerCert, VerifierBuilderError, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore};
use turnpike_config::model;

/// A certificate or key that cannot be used, with the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCert { path: String },
    #[error("{path}: the certificate cannot be parsed: {source}")]
    BadCert { path: String, source: rustls::Error },
    #[error("{path}: no PEM private key found (PKCS#8, PKCS#1 or SEC1 expected)")]
    NoKey { path: String },
    #[error("{path}: unsupported private key: {source}")]
    BadKey { path: String, source: rustls::Error },
    #[error("{key} does not match the certificate in {cert}")]
    Mismatch { cert: String, key: String },
    #[error("{path}: a CA certificate cannot be used: {source}")]
    BadCa { path: String, source: rustls::Error },
    #[error("{path}: cannot verify client certificates with these CAs: {source}")]
    ClientAuth {
        path: String,
        source: VerifierBuilderError,
    },
    #[error("client certificate {cert} with key {key} cannot be used: {source}")]
    ClientCert {
        cert: String,
        key: String,
        // Boxed: every other variant is much smaller, and errors travel by value.
        source: Box<rustls::Error>,
    },
    #[error("{path}: `client_cert` and `client_key` must be given together")]
    Unpaired { path: String },
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

#[derive(Debug, Default)]
struct SniResolver {
    /// Names listed in `hosts`.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `hosts` wildcards, keyed by the suffix after `*`, e.g. `.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// Certificates listed without `hosts`: they serve the names in the certificate itself.
    by_contents: Vec<Arc<CertifiedKey>>,
    /// Served when the client sends no SNI or a name nothing claims: the first certificate.
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// The certificate for `name`: configured names first (exact, then wildcard), then
    /// the names inside certificates listed without `hosts`, then the default.
    fn pick(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.to_ascii_lowercase();
        if let Some(ck) = self.exact.get(&name) {
            return Some(ck.clone());
        }
        // A wildcard covers exactly one label: `*.example.com` serves `a.example.com`
        // but neither `example.com` nor `a.b.example.com`.
        let suffix = name.find('.').map(|i| &name[i..]);
        if let Some(ck) = suffix.and_then(|s| self.wildcard.get(s)) {
            return Some(ck.clone());
        }
        if !self.by_contents.is_empty() {
            if let Ok(server_name) = ServerName::try_from(name.as_str()) {
                if let Some(ck) = self
                    .by_contents
                    .iter()
                    .find(|ck| certificate_covers(ck, &server_name))
                {
                    return Some(ck.clone());
                }
            }
        }
        self.default.clone()
    }
}

/// True when the leaf certificate's subject alternative names cover `name`.
fn certificate_covers(ck: &CertifiedKey, name: &ServerName<'_>) -> bool {
    ck.end_entity_cert()
        .ok()
        .and_then(|leaf| ParsedCertificate::try_from(leaf).ok())
        .is_some_and(|parsed| verify_server_name(&parsed, name).is_ok())
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match hello.server_name() {
            Some(name) => self.pick(name),
            None => self.default.clone(),
        }
    }
}

/// Builds the server config of one TLS listener, reading every certificate and key.
pub fn server_config(
    cfg: &model::ListenerTls,
    http2: bool,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut resolver = SniResolver::default();
    for cert in &cfg.certificates {
        let key = Arc::new(load_certified_key(cert)?);
        for host in &cert.hosts {
            let host = host.to_ascii_lowercase();
            // The first certificate that lists a name serves it.
            match host.strip_prefix('*') {
                Some(suffix) => resolver
                    .wildcard
                    .entry(suffix.to_owned())
                    .or_insert_with(|| key.clone()),
                None => resolver.exact.entry(host).or_insert_with(|| key.clone()),
            };
        }
        if cert.hosts.is_empty() {
            resolver.by_contents.push(key.clone());
        }
        resolver.default.get_or_insert(key);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = client_verifier(cfg.client_auth.as_ref(), &provider)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}

/// Who may connect: anyone (no `client_auth`), or clients whose certificate chains to
/// the CA bundle, optionally also clients without a certificate.
fn client_verifier(
    auth: Option<&model::ClientAuth>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let Some(auth) = auth else {
        return Ok(WebPkiClientVerifier::no_client_auth());
    };
    let roots = load_roots(&auth.ca)?;
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if auth.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|source| TlsError::ClientAuth {
        path: auth.ca.clone(),
        source,
    })
}

fn open(path: &str) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

/// Every certificate in a PEM file; at least one.
pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_certs(&mut open(path)?, path)
}

/// Every certificate in PEM text read from `pem`, named `path` in errors; at least one.
fn read_certs(
    pem: &mut dyn std::io::BufRead,
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(pem)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    read_key(&mut open(path)?, path)
}

/// The first private key in PEM text read from `pem`, named `path` in errors.
fn read_key(
    pem: &mut dyn std::io::BufRead,
    path: &str,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(pem)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_owned(),
        })
}

/// A PEM CA bundle as trust anchors. Every certificate must be usable: one silently
/// skipped would turn away the clients or upstreams it was meant to admit.
pub fn load_roots(path: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::BadCa {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}

fn load_certified_key(cert: &model::Certificate) -> Result<CertifiedKey, TlsError> {
    // Inline PEM (the admin API's certificates) is named in errors, never quoted: the key
    // text is a secret.
    let (chain, key, cert_at, key_at) = if cert.pem {
        let name = cert.name.as_deref().unwrap_or("(unnamed)");
        let cert_at = format!("certificate {name:?} (inline PEM chain)");
        let key_at = format!("certificate {name:?} (inline PEM key)");
        let chain = read_certs(&mut cert.cert.as_bytes(), &cert_at)?;
        let key = read_key(&mut cert.key.as_bytes(), &key_at)?;
        (chain, key, cert_at, key_at)
    } else {
        let chain = load_certs(&cert.cert)?;
        let key = load_key(&cert.key)?;
        (chain, key, cert.cert.clone(), cert.key.clone())
    };
    let signing = any_supported_type(&key).map_err(|source| TlsError::BadKey {
        path: key_at.clone(),
        source,
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // Key types whose public key rustls cannot derive are checked at handshake time.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: cert_at,
            key: key_at,
        }),
        Err(source) => Err(TlsError::BadCert {
            path: cert_at,
            source,
        }),
    }
}
