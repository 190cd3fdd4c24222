//! JWT bearer tokens from external issuers: which configured provider a token belongs
//! to, which key verifies it, which claims it must carry, and what the upstream learns
//! from it (the consumer, the scopes, chosen claims as headers).
//!
//! The provider is picked by the token's (unverified) `iss`, so a token from an issuer
//! no provider of the route claims is `Absent` and the route's other methods (the
//! gateway's own OAuth tokens, say) may try it. A provider without an `issuer` claims
//! every token except those of this gateway's own OAuth server: otherwise it would
//! claim them, fail them, and end the search with a 401 before the `oauth` method could
//! accept them. Everything else that is wrong with a token is `Invalid`. The signature
//! algorithm must be one the provider lists and one the key is for, so `none` and
//! HMAC-with-a-public-key never verify.
//!
//! Verified tokens are cached (see [`cache`]): checking an RS256 signature on every
//! request would cost more than proxying the request. A token a JWKS key verified is
//! taken from the cache only while that key set is still the provider's current one.

pub mod cache;
pub mod keys;

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, Header, Validation};
use serde_json::{Map, Value};
use turnpike_config::model;

use self::cache::{Entry, KeySource, TokenCache};
use self::keys::{Family, KeyError, VerifyKey};
use crate::auth::{Attempt, Identity};
use crate::consumer::Consumers;
use crate::jwks::{self, Jwks, JwksError};
use crate::request::RequestView;

/// Verified tokens remembered at most; about a few MiB.
const CACHE_CAPACITY: usize = 10_000;
/// Longest claim value copied into an upstream header.
const MAX_CLAIM_HEADER: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("provider `{provider}`: {source}")]
    Key { provider: String, source: KeyError },
    #[error("provider `{provider}`: {source}")]
    Jwks { provider: String, source: JwksError },
    #[error("provider `{provider}`: forward_claims.{claim}: invalid header name `{header}`")]
    Header {
        provider: String,
        claim: String,
        header: String,
    },
}

/// Every configured JWT provider, compiled.
#[derive(Debug)]
pub struct JwtSet {
    providers: Vec<Provider>,
    /// The `issuer` of this gateway's OAuth server, whose tokens the `oauth` method judges.
    own_issuer: Option<Box<str>>,
    cache: TokenCache,
}

impl Default for JwtSet {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            own_issuer: None,
            cache: TokenCache::new(CACHE_CAPACITY),
        }
    }
}

#[derive(Debug)]
struct Provider {
    name: Box<str>,
    issuer: Option<Box<str>>,
    algorithms: Vec<Algorithm>,
    keys: Vec<VerifyKey>,
    jwks: Option<Arc<Jwks>>,
    timing: jwks::Timing,
    /// Issuer and audience checks; the time checks are ours (see [`Provider::check_times`]).
    validation: Validation,
    leeway: i64,
    required_claims: Vec<Box<str>>,
    consumer_claim: Box<str>,
    scopes_claim: Box<str>,
    forward: Vec<(Box<str>, HeaderName)>,
}

/// A token's parts read before any verification, only to choose provider and key.
#[derive(Debug)]
struct Unverified {
    header: Header,
    issuer: Option<String>,
}

impl JwtSet {
    /// Compiles the providers; `own_issuer` is the issuer of this gateway's OAuth server,
    /// if it runs one. JWKS caches of `previous` with the same URL are kept, so a reload
    /// does not refetch them. The verified-token cache starts empty, since the new config
    /// may trust different keys.
    pub fn build(
        providers: &[model::JwtProvider],
        own_issuer: Option<&str>,
        previous: Option<&JwtSet>,
    ) -> Result<Self, JwtError> {
        let mut by_url: HashMap<&str, Arc<Jwks>> = previous
            .into_iter()
            .flat_map(|p| &p.providers)
            .filter_map(|p| p.jwks.as_ref())
            .map(|j| (j.url(), j.clone()))
            .collect();
        let mut built = Vec::with_capacity(providers.len());
        for p in providers {
            let jwks = match &p.jwks_url {
                Some(url) => Some(match by_url.get(url.as_str()) {
                    Some(existing) => existing.clone(),
                    None => {
                        let new = Jwks::new(url).map_err(|source| JwtError::Jwks {
                            provider: p.name.clone(),
                            source,
                        })?;
                        by_url.insert(url.as_str(), new.clone());
                        new
                    }
                }),
                None => None,
            };
            built.push(Provider::build(p, jwks)?);
        }
        Ok(Self {
            providers: built,
            own_issuer: own_issuer.map(Into::into),
            cache: TokenCache::new(CACHE_CAPACITY),
        })
    }

    /// Checks the request's bearer token against the providers in `allowed` (all when
    /// empty). `now` is Unix seconds.
    pub async fn attempt(
        &self,
        req: &RequestView<'_>,
        allowed: &[Box<str>],
        consumers: &Consumers,
        now: i64,
    ) -> Attempt {
        let Some(token) = bearer(req.headers) else {
            return Attempt::Absent;
        };
        let digest = cache::token_digest(token);
        if let Some(hit) = self.cache.get(&digest, now) {
            if self.is_allowed(hit.provider, allowed) && self.still_trusted(&hit) {
                return Attempt::Valid(hit.identity);
            }
        }
        let Some(unverified) = Unverified::read(token) else {
            return Attempt::Invalid;
        };
        let own_issuer = self.own_issuer.as_deref();
        let mut claimed = false;
        for (index, provider) in self.providers.iter().enumerate() {
            if !self.is_allowed(index, allowed) || !provider.claims_issuer(&unverified, own_issuer)
            {
                continue;
            }
            claimed = true;
            if let Some((identity, expires, keys)) =
                provider.verify(token, &unverified, consumers, now).await
            {
                let entry = Entry {
                    identity: identity.clone(),
                    provider: index,
                    keys,
                    expires,
                };
                self.cache.insert(digest, entry, now);
                return Attempt::Valid(identity);
            }
        }
        if claimed {
            Attempt::Invalid
        } else {
            Attempt::Absent
        }
    }

    /// Whether the keys that verified a cached token are still in use. A JWKS set that
    /// changed (or is too old to trust) may no longer hold the key: verify again.
    fn still_trusted(&self, hit: &Entry) -> bool {
        match hit.keys {
            KeySource::Configured => true,
            KeySource::Jwks(generation) => {
                let provider = self.providers.get(hit.provider);
                provider.and_then(|p| p.jwks.as_ref()?.generation(p.timing)) == Some(generation)
            }
        }
    }

    fn is_allowed(&self, index: usize, allowed: &[Box<str>]) -> bool {
        allowed.is_empty()
            || self
                .providers
                .get(index)
                .is_some_and(|p| allowed.contains(&p.name))
    }
}

/// The upstream headers claims may be forwarded in. The pipeline removes them from every
/// request first, so a client cannot set them when its token lacks the claim.
pub fn forwarded_headers(providers: &[model::JwtProvider]) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = providers
        .iter()
        .flat_map(|p| p.forward_claims.values())
        .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

/// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Unverified {
    /// The header and `iss` of something shaped like a JWS in compact form; `None` for
    /// anything else (including `alg: none`, which `jsonwebtoken` has no name for).
    fn read(token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let header = jsonwebtoken::decode_header(token).ok()?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let claims: Map<String, Value> = serde_json::from_slice(&payload).ok()?;
        let issuer = claims.get("iss").and_then(Value::as_str).map(str::to_owned);
        Some(Self { header, issuer })
    }
}

impl Provider {
    fn build(p: &model::JwtProvider, jwks: Option<Arc<Jwks>>) -> Result<Self, JwtError> {
        let algorithms: Vec<Algorithm> = p.algorithms.iter().map(|a| keys::algorithm(*a)).collect();
        let mut families: Vec<Family> = algorithms.iter().map(|a| Family::of(*a)).collect();
        families.dedup();
        let keys = p
            .keys
            .iter()
            .map(|k| keys::from_config(k, &families))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| JwtError::Key {
                provider: p.name.clone(),
                source,
            })?;
        let forward = p
            .forward_claims
            .iter()
            .map(|(claim, header)| {
                HeaderName::from_bytes(header.as_bytes())
                    .map(|h| (claim.as_str().into(), h))
                    .map_err(|_| JwtError::Header {
                        provider: p.name.clone(),
                        claim: claim.clone(),
                        header: header.clone(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: p.name.as_str().into(),
            issuer: p.issuer.as_deref().map(Into::into),
            keys,
            jwks,
            timing: jwks::Timing::new(p.jwks_refresh.as_std(), p.jwks_min_interval.as_std()),
            validation: validation(p),
            leeway: i64::try_from(p.leeway.as_std().as_secs()).unwrap_or(i64::MAX),
            required_claims: p
                .required_claims
                .iter()
                .map(|c| c.as_str().into())
                .collect(),
            consumer_claim: p.consumer_claim.as_str().into(),
            scopes_claim: p.scopes_claim.as_str().into(),
            forward,
            algorithms,
        })
    }

    /// A provider with an issuer takes only that issuer's tokens; one without takes any
    /// but those of this gateway's own OAuth server (`own_issuer`).
    fn claims_issuer(&self, token: &Unverified, own_issuer: Option<&str>) -> bool {
        match &self.issuer {
            Some(issuer) => token.issuer.as_deref() == Some(&**issuer),
            None => own_issuer.is_none_or(|own| token.issuer.as_deref() != Some(own)),
        }
    }

    /// The identity of a token this provider accepts, when the token stops being
    /// accepted, and which keys verified it; `None` for any failure (the reason is
    /// logged, the token never).
    async fn verify(
        &self,
        token: &str,
        unverified: &Unverified,
        consumers: &Consumers,
        now: i64,
    ) -> Option<(Identity, i64, KeySource)> {
        let alg = unverified.header.alg;
        if !self.algorithms.contains(&alg) {
            tracing::debug!(provider = %self.name, ?alg, "JWT algorithm not accepted");
            return None;
        }
        let (claims, keys) = self
            .verified_claims(token, alg, unverified.header.kid.as_deref())
            .await?;
        let expires = self.check_claims(&claims, now)?;
        let identity = self.identity(&claims, consumers)?;
        Some((identity, expires, keys))
    }

    /// The claims of a token whose signature one of the fitting keys verifies, and
    /// where that key came from.
    async fn verified_claims(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Option<(Map<String, Value>, KeySource)> {
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        let fits = |(k, _): &(&VerifyKey, KeySource)| k.fits(alg);
        // `&mut dyn`, because the callers' iterators differ in type.
        let try_keys = |keys: &mut dyn Iterator<Item = (&VerifyKey, KeySource)>| {
            keys.map(|(k, source)| Some((decode(token, k, &validation, &self.name)?, source)))
                .find(Option::is_some)
                .flatten()
        };
        let configured = || self.keys.iter().map(|k| (k, KeySource::Configured));
        let Some(kid) = kid else {
            let set = self.key_set().await;
            return try_keys(&mut configured().chain(fetched(&set, None)).filter(fits));
        };
        let named = |k: &VerifyKey| k.kid.as_deref() == Some(kid);
        // A kid among the configured keys needs no JWKS (nor a fetch of it).
        let is_configured = self.keys.iter().any(named);
        let mut set = if is_configured {
            None
        } else {
            self.key_set().await
        };
        let known = is_configured
            || set
                .as_ref()
                .is_some_and(|s| s.with_kid(kid).next().is_some());
        if !known {
            if let Some(jwks) = &self.jwks {
                set = jwks.refetch(self.timing).await;
            }
        }
        let mut exact = configured()
            .filter(|(k, _)| named(k))
            .chain(fetched(&set, Some(kid)))
            .filter(fits);
        if let Some(found) = try_keys(&mut exact) {
            return Some(found);
        }
        // A configured key without a `kid` stands for whatever kid the issuer uses.
        try_keys(&mut configured().filter(|(k, _)| k.kid.is_none()).filter(fits))
    }

    async fn key_set(&self) -> Option<Arc<jwks::KeySet>> {
        match &self.jwks {
            Some(jwks) => jwks.current(self.timing).await,
            None => None,
        }
    }

    /// `exp` (required), `nbf`, and the configured required claims; returns the Unix
    /// second from which the token is refused. Checked here rather than by
    /// `jsonwebtoken`, which reads the system clock instead of the request's `now`.
    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Option<i64> {
        let expires = numeric_date(claims.get("exp")?)?.saturating_add(self.leeway);
        if now >= expires {
            tracing::debug!(provider = %self.name, "JWT expired");
            return None;
        }
        if let Some(nbf) = claims.get("nbf") {
            if now.saturating_add(self.leeway) < numeric_date(nbf)? {
                tracing::debug!(provider = %self.name, "JWT not valid yet");
                return None;
            }
        }
        if let Some(missing) = self
            .required_claims
            .iter()
            .find(|c| claims.get(&***c).is_none_or(Value::is_null))
        {
            tracing::debug!(provider = %self.name, claim = %missing, "JWT lacks a required claim");
            return None;
        }
        Some(expires)
    }

    /// Who the token speaks for, its scopes, and the claims forwarded as headers.
    fn identity(&self, claims: &Map<String, Value>, consumers: &Consumers) -> Option<Identity> {
        let name = match claims.get(&*self.consumer_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                let claim = &self.consumer_claim;
                tracing::debug!(provider = %self.name, %claim, "JWT lacks the consumer claim");
                return None;
            }
        };
        let scopes = match claims.get(&*self.scopes_claim) {
            Some(Value::String(s)) => s.split_whitespace().map(Into::into).collect(),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(Into::into)
                .collect(),
            _ => Arc::default(),
        };
        let forwarded = self
            .forward
            .iter()
            .filter_map(|(claim, header)| {
                claim_header(claims.get(&**claim)?).map(|v| (header.clone(), v))
            })
            .collect();
        Some(Identity {
            consumer: consumers.get_or_adhoc(&name),
            credential: header_value(&name),
            scopes: Some(scopes),
            claims: forwarded,
            anonymous: false,
            hide: None,
        })
    }
}

/// The keys of a fetched set (those named `kid`, when given), tagged with its generation.
fn fetched<'a>(
    set: &'a Option<Arc<jwks::KeySet>>,
    kid: Option<&'a str>,
) -> impl Iterator<Item = (&'a VerifyKey, KeySource)> + 'a {
    set.iter().flat_map(move |s| {
        let source = KeySource::Jwks(s.generation);
        s.keys
            .iter()
            .filter(move |k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .map(move |k| (k, source))
    })
}

/// What `jsonwebtoken` checks for us: the signature, `iss` and `aud`.
fn validation(p: &model::JwtProvider) -> Validation {
    let mut v = Validation::default();
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.leeway = 0;
    if let Some(issuer) = &p.issuer {
        v.set_issuer(&[issuer]);
        v.required_spec_claims.insert("iss".to_owned());
    }
    if p.audiences.is_empty() {
        // Without configured audiences any `aud` is fine; `jsonwebtoken` would refuse all.
        v.validate_aud = false;
    } else {
        v.set_audience(&p.audiences);
        v.required_spec_claims.insert("aud".to_owned());
    }
    v
}

fn decode(
    token: &str,
    key: &VerifyKey,
    validation: &Validation,
    provider: &str,
) -> Option<Map<String, Value>> {
    match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
        Ok(data) => Some(data.claims),
        Err(error) => {
            // The error names the failed check only; it never contains the token.
            tracing::debug!(%provider, kid = ?key.kid, %error, "JWT not verified");
            None
        }
    }
}

/// A JSON NumericDate as whole Unix seconds (fractions are allowed by RFC 7519).
fn numeric_date(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.floor() as i64)),
        _ => None,
    }
}

/// A claim as header text: strings as they are, numbers and booleans as JSON writes
/// them, lists of strings joined with `,`; objects and other shapes are not forwarded.
fn claim_header(value: &Value) -> Option<HeaderValue> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => {
            let strings: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            if strings.is_empty() {
                return None;
            }
            strings.join(",")
        }
        Value::Object(_) | Value::Null => return None,
    };
    header_value(&text)
}

/// `text` as a header value, without the control characters a header may not carry
/// (so a claim cannot smuggle a line break into the upstream request).
fn header_value(text: &str) -> Option<HeaderValue> {
    if text.len() > MAX_CLAIM_HEADER {
        return None;
    }
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    HeaderValue::from_str(clean.trim()).ok()
}

#[cfg(test)]
mod tests;
