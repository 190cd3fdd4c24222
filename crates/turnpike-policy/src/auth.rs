//! Authentication composition: a route accepts one or more credential kinds and maybe an
//! anonymous fallback; the first credential the request carries decides, and a refusal
//! never says which check failed.
//!
//! Each method lives in its own file and answers [`Attempt`]: the request carries no
//! credential of its kind (`Absent`, so the next method is asked), a good one (`Valid`),
//! or a bad one (`Invalid`, which ends the search with a 401).

use std::sync::Arc;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};
use turnpike_config::model::{self, AuthMethod};

use crate::Denied;
use crate::consumer::Consumer;
use crate::request::RequestView;
use crate::security::Security;

/// Who the request is from, once authenticated.
#[derive(Debug, Clone)]
pub struct Identity {
    pub consumer: Arc<Consumer>,
    /// The credential's public identifier (key id, token subject, client id, username).
    pub credential: Option<HeaderValue>,
    /// Scopes a token granted; `None` for credentials that carry no scopes. Shared, like
    /// `claims`, so an identity from the JWT cache is cloned without allocating.
    pub scopes: Option<Arc<[Box<str>]>>,
    /// Extra upstream headers from token claims.
    pub claims: Arc<[(HeaderName, HeaderValue)]>,
    pub anonymous: bool,
    /// Where the credential was, when it must not reach the upstream.
    pub hide: Option<Hide>,
}

/// The place a credential was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hide {
    Header(HeaderName),
    Query(Box<str>),
    Cookie(Box<str>),
}

#[derive(Debug)]
pub enum Attempt {
    Absent,
    Valid(Identity),
    Invalid,
    /// The credential could not be checked now (too many slow checks waiting): 503.
    Busy,
}

/// A route's compiled `auth` policy.
#[derive(Debug, Clone)]
pub struct RouteAuth {
    methods: Vec<AuthMethod>,
    jwt_providers: Vec<Box<str>>,
    anonymous: Option<Arc<Consumer>>,
    scopes: Vec<Box<str>>,
    groups: Vec<Box<str>>,
    /// `WWW-Authenticate` when no credential was accepted.
    challenge: Option<HeaderValue>,
    /// `WWW-Authenticate` for an invalid bearer token.
    invalid_token: Option<HeaderValue>,
    /// `WWW-Authenticate` when the token lacks a scope.
    scope_challenge: HeaderValue,
}

impl RouteAuth {
    pub fn build(auth: &model::RouteAuth, sec: &Security) -> Self {
        let realm = &sec.basic_realm;
        let bearer = auth
            .methods
            .iter()
            .any(|m| matches!(m, AuthMethod::Jwt | AuthMethod::Oauth));
        let mut challenges = Vec::new();
        for m in &auth.methods {
            let c = match m {
                AuthMethod::Jwt | AuthMethod::Oauth => format!("Bearer realm=\"{realm}\""),
                AuthMethod::BasicAuth => format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
                AuthMethod::KeyAuth => format!("ApiKey realm=\"{realm}\""),
                AuthMethod::Mtls => continue,
            };
            if !challenges.contains(&c) {
                challenges.push(c);
            }
        }
        let header = |s: String| HeaderValue::from_str(&s).ok();
        let scope_list = auth.scopes.join(" ");
        Self {
            methods: auth.methods.clone(),
            jwt_providers: auth
                .jwt_providers
                .iter()
                .map(|p| p.as_str().into())
                .collect(),
            anonymous: auth
                .anonymous
                .as_deref()
                .and_then(|n| sec.consumers.get(n).cloned()),
            scopes: auth.scopes.iter().map(|s| s.as_str().into()).collect(),
            groups: auth.groups.iter().map(|s| s.as_str().into()).collect(),
            challenge: (!challenges.is_empty())
                .then(|| header(challenges.join(", ")))
                .flatten(),
            invalid_token: bearer
                .then(|| header(format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")))
                .flatten(),
            scope_challenge: header(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{scope_list}\""
            ))
            .unwrap_or(HeaderValue::from_static(
                "Bearer error=\"insufficient_scope\"",
            )),
        }
    }

    /// Authenticates, then authorizes (scopes, groups). `now` is Unix seconds.
    pub async fn check(
        &self,
        sec: &Security,
        req: &RequestView<'_>,
        now: i64,
    ) -> Result<Identity, Denied> {
        let identity = self.authenticate(sec, req, now).await?;
        self.authorize(&identity)?;
        Ok(identity)
    }

    async fn authenticate(
        &self,
        sec: &Security,
        req: &RequestView<'_>,
        now: i64,
    ) -> Result<Identity, Denied> {
        for method in &self.methods {
            let attempt = match method {
                AuthMethod::KeyAuth => sec.keys.attempt(req, now),
                AuthMethod::BasicAuth => sec.basic.attempt(req, &sec.consumers).await,
                AuthMethod::Jwt => {
                    sec.jwt
                        .attempt(req, &self.jwt_providers, &sec.consumers, now)
                        .await
                }
                AuthMethod::Oauth => match &sec.oauth {
                    Some(server) => server.attempt(req, &sec.consumers, now),
                    None => Attempt::Absent,
                },
                AuthMethod::Mtls => sec.certificates.attempt(req),
            };
            match attempt {
                Attempt::Absent => {}
                Attempt::Valid(identity) => return Ok(identity),
                Attempt::Invalid => return Err(self.invalid(req)),
                Attempt::Busy => return Err(Denied::busy()),
            }
        }
        // A credential nobody recognised is a bad credential, not an anonymous caller.
        match &self.anonymous {
            Some(consumer) if !carries_credential(sec, req) => Ok(Identity {
                consumer: consumer.clone(),
                credential: None,
                scopes: None,
                claims: Arc::default(),
                anonymous: true,
                hide: None,
            }),
            _ => Err(self.invalid(req)),
        }
    }

    fn invalid(&self, req: &RequestView<'_>) -> Denied {
        let bearer = req.headers.get(AUTHORIZATION).is_some_and(|v| {
            v.as_bytes().len() > 7 && v.as_bytes()[..7].eq_ignore_ascii_case(b"bearer ")
        });
        let challenge = if bearer {
            self.invalid_token.clone()
        } else {
            None
        };
        Denied::unauthorized(challenge.or_else(|| self.challenge.clone()))
    }

    fn authorize(&self, identity: &Identity) -> Result<(), Denied> {
        if !self.scopes.is_empty() {
            let granted = identity.scopes.as_deref().unwrap_or_default();
            if !self.scopes.iter().all(|s| granted.contains(s)) {
                return Err(Denied::insufficient_scope(self.scope_challenge.clone()));
            }
        }
        if !self.groups.is_empty() && !identity.consumer.in_any_group(&self.groups) {
            return Err(Denied::forbidden("this consumer may not call this API"));
        }
        Ok(())
    }
}

fn carries_credential(sec: &Security, req: &RequestView<'_>) -> bool {
    req.headers.contains_key(AUTHORIZATION) || sec.keys.is_presented(req)
}

/// Removes a header or cookie credential from the request before it goes upstream; a
/// query parameter is removed by the caller, which owns the request target
/// ([`query_without`]).
pub fn hide(headers: &mut HeaderMap, hide: &Hide) {
    match hide {
        Hide::Header(name) => {
            headers.remove(name);
        }
        Hide::Query(_) => {}
        Hide::Cookie(name) => {
            let kept: Vec<String> = headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .map(str::trim)
                .filter(|c| !c.is_empty() && c.split_once('=').is_none_or(|(k, _)| k != &**name))
                .map(str::to_owned)
                .collect();
            headers.remove(COOKIE);
            if !kept.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
                    headers.insert(COOKIE, v);
                }
            }
        }
    }
}

/// The query string without parameter `name`.
pub fn query_without(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name))
        .collect::<Vec<_>>()
        .join("&")
}
