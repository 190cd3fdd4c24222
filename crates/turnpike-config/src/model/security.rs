//! The security part of the model: consumers and their credentials, how each kind of
//! credential is read and checked (`auth`), the OAuth 2.0 authorization server (`oauth`),
//! and the per-route policies (`auth`, `ip_rules`, `cors`) that may also be set globally
//! under `policies`.
//!
//! Credentials here are only ever hashes: the plain API key, client secret or password is
//! shown once by the CLI that made it and never written to a file.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::units::Duration;

/// A named caller of the APIs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Free-form labels for the operator; not sent anywhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// API keys, as made by `turnpike keys create` (hashes only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<ApiKey>,
    /// Username and argon2 password hash for HTTP Basic authentication.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub basic_auth: Vec<BasicCredential>,
    /// Client certificate names that identify this consumer over mTLS: a subject DN
    /// (RFC 4514, e.g. `CN=alice,O=Example`), or `dns:`, `email:`, `uri:` subject
    /// alternative names and `sha256:` fingerprints, each matching only its own kind
    /// (see [`crate::certificate::CertificateName`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    /// Issuer DN (RFC 4514) the client certificate must have. Without it, every CA any
    /// listener's `client_auth` trusts may issue this consumer's certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_issuer: Option<String>,
    /// The plan (tier) whose limits and quota apply to this consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Replaces the plan's rate limits for this consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<crate::model::RateLimit>>,
    /// Replaces the plan's quota for this consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<crate::model::Quota>,
}

/// One stored API key: the public identifier and a keyed hash of the whole key.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The identifier part of the key (`tp_<id>_<secret>`), used to find it.
    pub id: String,
    /// `hmac-sha256:<hex>` of the whole key under `auth.key_secret`.
    pub hash: String,
    /// RFC 3339 instant after which the key no longer works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    pub username: String,
    /// A PHC-format argon2 hash (`$argon2id$...`), as `turnpike hash-password` prints.
    pub password_hash: String,
}

/// How credentials are read and checked, for every route that asks for them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Server-side secret keying the API-key hashes; usually `${TURNPIKE_KEY_SECRET}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_secret: Option<String>,
    /// JSON file of keys (hashes only) managed by `turnpike keys ...` (paths are relative to the working
    /// directory, like certificate paths).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_file: Option<String>,
    pub consumer_headers: ConsumerHeaders,
    pub key_auth: KeyAuth,
    pub basic_auth: BasicAuth,
    /// Token issuers whose JWTs are accepted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jwt: Vec<JwtProvider>,
}

/// Headers that tell the upstream who called. Whatever a client sends in them is removed
/// first, so they cannot be forged.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerHeaders {
    pub id: String,
    pub groups: String,
    pub credential: String,
    pub anonymous: String,
    pub scopes: String,
}

impl Default for ConsumerHeaders {
    fn default() -> Self {
        Self {
            id: "x-consumer-id".to_owned(),
            groups: "x-consumer-groups".to_owned(),
            credential: "x-credential-id".to_owned(),
            anonymous: "x-anonymous-consumer".to_owned(),
            scopes: "x-consumer-scopes".to_owned(),
        }
    }
}

/// Where an API key is looked for, in order.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KeyAuth {
    pub sources: Vec<KeySource>,
    /// Remove the key from the request before it goes upstream.
    pub hide_credentials: bool,
}

impl Default for KeyAuth {
    fn default() -> Self {
        Self {
            sources: vec![KeySource::Header("x-api-key".to_owned())],
            hide_credentials: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    Header(String),
    Query(String),
    Cookie(String),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub realm: String,
    pub hide_credentials: bool,
}

impl Default for BasicAuth {
    fn default() -> Self {
        Self {
            realm: "turnpike".to_owned(),
            hide_credentials: true,
        }
    }
}

/// A JWT issuer: where its keys come from and what its tokens must say.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtProvider {
    pub name: String,
    /// Required `iss` value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `aud` must contain one of these (when set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Accepted `alg` values; `none` does not exist here.
    pub algorithms: Vec<JwtAlgorithm>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<JwtKey>,
    /// JWKS document fetched, cached and refreshed (also on an unknown `kid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Refresh period of the JWKS document.
    #[serde(default = "hour")]
    pub jwks_refresh: Duration,
    /// Least time between two fetches caused by unknown `kid`s.
    #[serde(default = "half_minute")]
    pub jwks_min_interval: Duration,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default)]
    pub leeway: Duration,
    /// Claims every token must carry (besides `exp`, always required).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_claims: Vec<String>,
    /// Claim naming the consumer (a consumer of that name, else an ad-hoc one).
    #[serde(default = "sub")]
    pub consumer_claim: String,
    /// Claim holding the token's scopes (space-separated string or list).
    #[serde(default = "scope")]
    pub scopes_claim: String,
    /// Claim name to upstream header name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub forward_claims: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl JwtAlgorithm {
    /// Shared-secret algorithms; they may never share a key with the public-key ones.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

/// One verification key: exactly one of `file` (PEM public key or certificate), `jwk`
/// (an inline JWK object) or `secret` (HMAC).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The OAuth 2.0 authorization server (client-credentials grant).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OAuth {
    /// Issuer identifier (`iss` of issued tokens, RFC 8414 `issuer`): an https URL.
    pub issuer: String,
    /// Path prefix of the token, introspection and revocation endpoints.
    #[serde(default = "oauth_prefix")]
    pub path_prefix: String,
    #[serde(default = "hour")]
    pub token_ttl: Duration,
    /// Signing keys; the first signs, the others stay published until their tokens expire.
    pub signing_keys: Vec<SigningKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<OAuthClient>,
    /// `aud` of issued tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: JwtAlgorithm,
    /// PEM private key (PKCS#8).
    pub key_file: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    pub client_id: String,
    /// argon2 PHC hash of the client secret.
    pub secret_hash: String,
    /// Scopes this client may be granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Consumer the client's tokens act as; defaults to an ad-hoc one named after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
}

/// Policies for every route (top-level `policies`) or every route of one upstream
/// (`upstreams[].policies`). The most specific `auth` and `cors` win (route, then
/// upstream, then global), while IP rules from every level apply.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Policies {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<RouteAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_rules: Option<IpRules>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::model::RateLimitPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<crate::model::ConcurrencyLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<crate::model::Lifecycle>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::model::CachePolicy>,
}

impl Policies {
    pub fn is_empty(&self) -> bool {
        self.auth.is_none()
            && self.ip_rules.is_none()
            && self.cors.is_none()
            && self.rate_limit.is_none()
            && self.concurrency.is_none()
            && self.lifecycle.is_none()
            && self.cache.is_none()
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RouteAuth {
    /// Accepted credentials; the first one the request carries decides.
    pub methods: Vec<AuthMethod>,
    /// JWT providers accepted (by name); empty means all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jwt_providers: Vec<String>,
    /// Consumer for requests that carry no credential at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous: Option<String>,
    /// Scopes the token must grant (all of them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Consumer groups allowed (any of them); empty means every consumer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    KeyAuth,
    BasicAuth,
    Jwt,
    /// Tokens issued by this gateway's own OAuth server.
    Oauth,
    Mtls,
}

/// Client addresses allowed and denied; deny wins, and a non-empty allow list admits only
/// what it names.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IpRules {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<IpNet>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<IpNet>,
}

/// Cross-origin resource sharing, with preflights answered by the gateway.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Cors {
    /// Exact origins, `*`, or patterns with one `*` label (`https://*.example.com`).
    pub origins: Vec<String>,
    pub methods: Vec<String>,
    /// Request headers allowed; empty allows what the preflight asks for.
    pub headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub credentials: bool,
    pub max_age: Duration,
}

impl Default for Cors {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
                .map(str::to_owned)
                .to_vec(),
            headers: Vec::new(),
            expose_headers: Vec::new(),
            credentials: false,
            max_age: Duration::from_secs(600),
        }
    }
}

/// Client certificates on a TLS listener.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientAuth {
    /// PEM bundle of the CAs that client certificates must chain to.
    pub ca: String,
    /// Refuse the handshake without a valid certificate; when false a certificate is
    /// optional and routes with the `mtls` method require it.
    #[serde(default = "super::yes")]
    pub required: bool,
}

/// TLS towards an upstream's `https://` targets.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTls {
    /// PEM bundle of CAs to verify the upstream against, instead of the system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Client certificate chain and key presented to the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

fn half_minute() -> Duration {
    Duration::from_secs(30)
}

fn sub() -> String {
    "sub".to_owned()
}

fn scope() -> String {
    "scope".to_owned()
}

fn oauth_prefix() -> String {
    "/oauth".to_owned()
}
