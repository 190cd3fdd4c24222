//! Access tokens: JWTs in the RFC 9068 profile, signed by the first configured key and
//! verified by any published one.
//!
//! Rotation: an operator puts a new key first in `signing_keys` and keeps the old one
//! second. New tokens are signed by the new key; tokens the old key signed still verify,
//! and the old public key stays in the JWKS so resource servers that verify on their
//! own keep accepting them. After `token_ttl` no unexpired token carries the old `kid`,
//! and the old key can be removed.
//!
//! Claims are checked here against the caller's clock (`now`, Unix seconds) rather than
//! jsonwebtoken's, so every check of one request sees the same instant.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::keys::{AT_JWT, SigningKey};

/// Longest token looked at; ours are well under 2 KiB, and anything longer is not worth
/// decoding.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Clock skew tolerated on `nbf`, for gateway nodes whose clocks differ a little: a token
/// issued by a node a few seconds ahead must work at once on the others. `exp` gets no
/// leeway, so a token never outlives what `expires_in` promised.
const NBF_LEEWAY: i64 = 30;

/// The claims of an issued access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The consumer the client acts as (its configured consumer, else the client id).
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// 128 random bits, base64url: what a revocation remembers.
    pub jti: String,
    pub client_id: String,
    /// Space-separated granted scopes; absent when none were granted, since an empty
    /// string is not a valid `scope` value (RFC 6749 §3.3).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

impl Claims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }
}

/// Signs and checks this server's tokens.
#[derive(Debug)]
pub struct Tokens {
    pub issuer: String,
    pub audience: Option<String>,
    /// Lifetime of a new token, in seconds (at least 1).
    pub ttl: i64,
    /// The first signs; all verify and are published.
    pub keys: Vec<SigningKey>,
    rng: SystemRandom,
}

/// A new token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("could not issue a token: the system random number generator failed")]
    Random,
    #[error("could not issue a token: no signing key")]
    NoSigningKey,
    #[error("could not issue a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

impl Tokens {
    pub fn new(issuer: String, audience: Option<String>, ttl: i64, keys: Vec<SigningKey>) -> Self {
        Self {
            issuer,
            audience,
            ttl: ttl.max(1),
            keys,
            rng: SystemRandom::new(),
        }
    }

    /// The claims of a token for `client_id`, acting as `sub`, with `scope`.
    pub fn claims(
        &self,
        client_id: &str,
        sub: &str,
        scope: String,
        now: i64,
    ) -> Result<Claims, IssueError> {
        let mut jti = [0u8; 16];
        self.rng.fill(&mut jti).map_err(|_| IssueError::Random)?;
        Ok(Claims {
            iss: self.issuer.clone(),
            sub: sub.to_owned(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(self.ttl),
            jti: URL_SAFE_NO_PAD.encode(jti),
            client_id: client_id.to_owned(),
            scope,
        })
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, IssueError> {
        let key = self.keys.first().ok_or(IssueError::NoSigningKey)?;
        key.sign(claims).map_err(IssueError::Sign)
    }

    /// The claims of `token` if this server issued it and it is currently valid: a known
    /// `kid` whose key's algorithm matches `alg`, `typ` `at+jwt`, a good signature, our
    /// `iss` and `aud`, and `now` within `nbf`..`exp`. Revocation is the caller's check.
    pub fn verify(&self, token: &str, now: i64) -> Option<Claims> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        // RFC 9068 §4: refuse other JWTs (an ID token, say) signed by the same key.
        let typ = header.typ.as_deref()?;
        if !(typ.eq_ignore_ascii_case(AT_JWT) || typ.eq_ignore_ascii_case("application/at+jwt")) {
            return None;
        }
        let kid = header.kid.as_deref()?;
        let key = self.keys.iter().find(|k| &*k.kid == kid)?;
        // The key decides the algorithm, never the token (no `alg` confusion).
        if header.alg != key.alg {
            return None;
        }
        let claims: Claims = key.verify(token)?;
        let valid = claims.iss == self.issuer
            && claims.aud == self.audience
            && now < claims.exp
            && claims.nbf <= now.saturating_add(NBF_LEEWAY);
        valid.then_some(claims)
    }

    /// Whether `token` claims to come from this issuer, before anything is verified: a
    /// bearer token of another issuer is the `jwt` method's business, not a bad token.
    pub fn claims_our_issuer(&self, token: &str) -> bool {
        #[derive(Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        if token.len() > MAX_TOKEN_LEN {
            return false;
        }
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()
            .and_then(|json| serde_json::from_slice::<Iss>(&json).ok())
            .and_then(|c| c.iss)
            .is_some_and(|iss| iss == self.issuer)
    }
}

#[cfg(test)]
mod tests {
    use turnpike_config::model::JwtAlgorithm;

    use super::*;
    use crate::oauth::keys::tests::pem;

    fn tokens(keys: &[(&str, JwtAlgorithm)]) -> Tokens {
        let keys = keys
            .iter()
            .map(|(kid, alg)| SigningKey::from_pem(kid, *alg, &pem(*alg)).unwrap())
            .collect();
        Tokens::new("https://issuer.test".into(), Some("api".into()), 60, keys)
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let t = tokens(&[("new", JwtAlgorithm::EdDSA), ("old", JwtAlgorithm::ES256)]);
        let claims = t.claims("c1", "alice", "a b".into(), 1000).unwrap();
        assert_eq!(claims.jti.len(), 22);
        let token = t.sign(&claims).unwrap();
        assert!(t.claims_our_issuer(&token));
        assert_eq!(t.verify(&token, 1000), Some(claims.clone()));
        assert_eq!(t.verify(&token, 1059).map(|c| c.exp), Some(1060));
        assert_eq!(t.verify(&token, 1060), None);
        assert_eq!(
            t.verify(&token, 960),
            None,
            "not yet valid beyond the leeway"
        );
        // Rotated: the old key no longer signs, but its tokens still verify.
        let rotated = tokens(&[("old", JwtAlgorithm::ES256)]);
        let old_token = rotated.sign(&claims).unwrap();
        let mut both = rotated;
        both.keys.insert(0, t.keys.into_iter().next().unwrap());
        assert!(both.verify(&old_token, 1000).is_some());
    }

    #[test]
    fn foreign_and_tampered_tokens_fail() {
        let t = tokens(&[("k", JwtAlgorithm::ES256)]);
        let other = tokens(&[("k", JwtAlgorithm::ES256)]);
        let claims = t.claims("c1", "c1", String::new(), 1000).unwrap();
        let forged = other.sign(&claims).unwrap();
        assert_eq!(t.verify(&forged, 1000), None, "same kid, other key");
        let token = t.sign(&claims).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                scope: "admin".into(),
                ..claims.clone()
            })
            .unwrap(),
        );
        parts[1] = &evil;
        assert_eq!(t.verify(&parts.join("."), 1000), None);
        let mut wrong_iss = tokens(&[("k", JwtAlgorithm::ES256)]);
        wrong_iss.issuer = "https://elsewhere.test".into();
        assert!(!wrong_iss.claims_our_issuer(&token));
        assert!(!t.claims_our_issuer("not.a.jwt"));
    }
}
