//! The gateway's own OAuth 2.0 authorization server: the client-credentials grant
//! (RFC 6749 §4.4) issuing signed JWT access tokens (RFC 9068), introspection (RFC
//! 7662), revocation (RFC 7009), a JWKS and RFC 8414 metadata — and the `oauth`
//! authentication method that accepts those tokens on routes.
//!
//! The proxy asks [`OAuthServer::owns_path`] before routing and hands matching requests
//! to [`OAuthServer::handle`]; routes with `auth: {methods: [oauth]}` call
//! [`OAuthServer::attempt`]. Rotating signing keys is described in `token.rs`; what
//! survives a reload (the revocation list, the argon2 concurrency limit) is handed on
//! through `previous`.
//!
//! Tokens stop working as soon as their client is removed from the config, and carry
//! only the scopes the client is still allowed: the config, not the token, has the last
//! word.

mod clients;
mod discovery;
mod endpoints;
pub mod form;
mod keys;
mod revoked;
mod token;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use serde_json::json;
use turnpike_config::model;

use self::clients::{Client, Clients};
use self::discovery::{JWKS_PATH, Paths};
use self::endpoints::json_response;
pub use self::keys::KeyError;
use self::keys::SigningKey;
use self::revoked::Revocations;
use self::token::{Claims, Tokens};
use crate::auth::{Attempt, Identity};
use crate::consumer::Consumers;
use crate::request::RequestView;

/// Why the OAuth server could not be built from the config.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("at least one signing key is required")]
    NoSigningKey,
}

#[derive(Debug)]
pub struct OAuthServer {
    tokens: Tokens,
    clients: Clients,
    revoked: Revocations,
    paths: Paths,
    jwks: Bytes,
    metadata: Bytes,
    /// `WWW-Authenticate` for a failed client authentication.
    basic_challenge: HeaderValue,
}

/// Which endpoint a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Token,
    Introspect,
    Revoke,
    Jwks,
    Metadata,
}

impl OAuthServer {
    pub fn build(o: &model::OAuth, previous: Option<&OAuthServer>) -> Result<Self, OAuthError> {
        let keys = o
            .signing_keys
            .iter()
            .map(SigningKey::load)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(OAuthError::NoSigningKey);
        }
        let ttl = i64::try_from(o.token_ttl.as_std().as_secs()).unwrap_or(i64::MAX);
        let tokens = Tokens::new(o.issuer.clone(), o.audience.clone(), ttl, keys);
        let clients = Clients::build(&o.clients);
        let paths = Paths::new(&o.path_prefix, &o.issuer);
        // The realm is the issuer, minus anything that would break the quoted string.
        let realm: String = o
            .issuer
            .chars()
            .filter(|c| !matches!(c, '"' | '\\'))
            .collect();
        let basic_challenge = HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
            .unwrap_or(HeaderValue::from_static("Basic realm=\"oauth\""));
        Ok(Self {
            jwks: discovery::jwks(&tokens.keys),
            metadata: discovery::metadata(&o.issuer, &paths, &clients.all_scopes()),
            revoked: previous.map(|p| p.revoked.clone()).unwrap_or_default(),
            tokens,
            clients,
            paths,
            basic_challenge,
        })
    }

    /// The `oauth` authentication method: a bearer token this server issued.
    pub fn attempt(&self, req: &RequestView<'_>, consumers: &Consumers, now: i64) -> Attempt {
        let Some(token) = bearer(req.headers) else {
            return Attempt::Absent;
        };
        // Another issuer's token (or not a JWT at all) is for the `jwt` method to judge.
        if !self.tokens.claims_our_issuer(token) {
            return Attempt::Absent;
        }
        let Some((claims, client)) = self.active(token, now) else {
            return Attempt::Invalid;
        };
        Attempt::Valid(Identity {
            consumer: consumers.get_or_adhoc(&client.consumer),
            credential: client.credential.clone(),
            scopes: Some(
                granted_scopes(&claims, client)
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            ),
            claims: Arc::default(),
            anonymous: false,
            // Upstreams may verify or introspect the token themselves: it goes on.
            hide: None,
        })
    }

    /// The claims of a token that is valid now, and its (still registered) client.
    fn active(&self, token: &str, now: i64) -> Option<(Claims, &Client)> {
        let claims = self.tokens.verify(token, now)?;
        let client = self.clients.get(&claims.client_id)?;
        if self.revoked.is_revoked(&claims.jti) {
            return None;
        }
        Some((claims, client))
    }

    /// Revoked tokens remembered now (for tests and metrics).
    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }

    /// Whether `path` is one of this server's endpoints.
    pub fn owns_path(&self, path: &str) -> bool {
        self.endpoint(path).is_some()
    }

    fn endpoint(&self, path: &str) -> Option<Endpoint> {
        let p = &self.paths;
        if path == p.token {
            Some(Endpoint::Token)
        } else if path == p.introspect {
            Some(Endpoint::Introspect)
        } else if path == p.revoke {
            Some(Endpoint::Revoke)
        } else if path == JWKS_PATH {
            Some(Endpoint::Jwks)
        } else if p.metadata.iter().any(|m| m == path) {
            Some(Endpoint::Metadata)
        } else {
            None
        }
    }

    /// Answers an endpoint request; `body` is `None` when it was too large or broken.
    pub async fn handle(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Option<Bytes>,
        _consumers: &Consumers,
        now: i64,
    ) -> Response<Bytes> {
        let Some(endpoint) = self.endpoint(uri.path()) else {
            let body = json!({ "error": "not_found", "error_description": "no such endpoint" });
            return json_response(StatusCode::NOT_FOUND, &body, endpoints::NO_STORE);
        };
        let body = body.as_deref();
        match endpoint {
            Endpoint::Jwks | Endpoint::Metadata => {
                if method != Method::GET && method != Method::HEAD {
                    return not_allowed("GET, HEAD");
                }
                let doc = if endpoint == Endpoint::Jwks {
                    &self.jwks
                } else {
                    &self.metadata
                };
                endpoints::json_bytes(StatusCode::OK, doc.clone(), discovery::CACHE)
            }
            // RFC 6749 §3.2 and RFC 7662/7009: POST only, so secrets never sit in URLs.
            _ if method != Method::POST => not_allowed("POST"),
            Endpoint::Token => self.token(headers, body, now).await,
            Endpoint::Introspect => self.introspect(headers, body, now).await,
            Endpoint::Revoke => self.revoke(headers, body, now).await,
        }
    }
}

/// The token's scopes that its client may still have.
fn granted_scopes<'a>(claims: &'a Claims, client: &Client) -> Vec<&'a str> {
    claims.scopes().filter(|s| client.allows(s)).collect()
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn not_allowed(allow: &'static str) -> Response<Bytes> {
    let body = json!({
        "error": "invalid_request",
        "error_description": format!("this endpoint accepts {allow} only"),
    });
    let mut resp = json_response(StatusCode::METHOD_NOT_ALLOWED, &body, endpoints::NO_STORE);
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}
