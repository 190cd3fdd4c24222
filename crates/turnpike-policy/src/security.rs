//! What every route shares, compiled once per config version: consumers, the key store,
//! basic-auth credentials, JWT verifiers, the OAuth server and the certificate map.
//!
//! State that must outlive a reload (fetched JWKS documents, verified-password caches,
//! revoked tokens) is carried over from the previous version.

use std::path::Path;

use turnpike_config::Config;
use turnpike_config::model::ConsumerHeaders;

use crate::basic_auth::BasicAuth;
use crate::consumer::{Consumers, IdentityHeaders};
use crate::ip_rules::IpRules;
use crate::jwt::{JwtError, JwtSet};
use crate::key_auth::{KeyStore, KeyStoreError, StoredKey};
use crate::keys_file::{self, KeysFileError};
use crate::mtls::CertificateMap;
use crate::oauth::{OAuthError, OAuthServer};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("API keys: {0}")]
    Keys(#[from] KeyStoreError),
    #[error(transparent)]
    KeysFile(#[from] KeysFileError),
    #[error("JWT: {0}")]
    Jwt(#[from] JwtError),
    #[error("OAuth: {0}")]
    OAuth(#[from] OAuthError),
    #[error("consumer headers: {0}")]
    Header(#[from] http::header::InvalidHeaderName),
}

#[derive(Debug)]
pub struct Security {
    pub consumers: Consumers,
    pub keys: KeyStore,
    pub basic: BasicAuth,
    pub jwt: JwtSet,
    pub oauth: Option<OAuthServer>,
    pub certificates: CertificateMap,
    /// `policies.ip_rules`, for what the gateway answers outside routes (OAuth endpoints).
    pub ip_rules: IpRules,
    pub identity_headers: IdentityHeaders,
    pub basic_realm: String,
    /// The keys file this version was built from; the reload watcher follows it.
    pub keys_file: Option<std::path::PathBuf>,
    /// Some route authenticates: identity headers from clients must be removed everywhere.
    pub active: bool,
}

impl Security {
    pub fn build(cfg: &Config, previous: Option<&Security>) -> Result<Self, BuildError> {
        let consumers = Consumers::build(&cfg.consumers);
        let from_file = match &cfg.auth.keys_file {
            Some(path) => keys_file::read_or_empty(Path::new(path))?,
            None => keys_file::KeysFile::default(),
        };
        let inline = cfg.consumers.iter().flat_map(|c| {
            c.keys.iter().map(|key| StoredKey {
                consumer: &c.name,
                key,
            })
        });
        let keys = KeyStore::build(&cfg.auth, inline.chain(from_file.stored()), &consumers)?;
        let active = cfg.policies.auth.is_some()
            || cfg.upstreams.iter().any(|u| u.policies.auth.is_some())
            || cfg.routes.iter().any(|r| r.auth.is_some());
        Ok(Self {
            basic: BasicAuth::build(
                &cfg.consumers,
                &cfg.auth.basic_auth,
                &consumers,
                previous.map(|p| &p.basic),
            ),
            jwt: JwtSet::build(
                &cfg.auth.jwt,
                cfg.oauth.as_ref().map(|o| o.issuer.as_str()),
                previous.map(|p| &p.jwt),
            )?,
            oauth: cfg
                .oauth
                .as_ref()
                .map(|o| OAuthServer::build(o, previous.and_then(|p| p.oauth.as_ref())))
                .transpose()?,
            ip_rules: IpRules::build([cfg.policies.ip_rules.as_ref()]),
            certificates: CertificateMap::build(&cfg.consumers, &consumers),
            identity_headers: IdentityHeaders::build(&cfg.auth.consumer_headers)
                .or_else(|_| IdentityHeaders::build(&ConsumerHeaders::default()))?
                .with_claims(crate::jwt::forwarded_headers(&cfg.auth.jwt)),
            basic_realm: cfg.auth.basic_auth.realm.clone(),
            keys_file: cfg.auth.keys_file.as_ref().map(Into::into),
            consumers,
            keys,
            active,
        })
    }
}
