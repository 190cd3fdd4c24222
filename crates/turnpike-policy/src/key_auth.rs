//! API keys: generation, the keyed hash that is all we store, and the lookup on the
//! request path.
//!
//! A key reads `tp_<id>_<secret>`: the `tp_` prefix makes leaked keys easy to spot (and
//! to register with secret scanners), the id finds the stored entry without scanning, and
//! the secret carries 256 random bits. We store `HMAC-SHA256(key_secret, key)`. A slow
//! password hash buys nothing here: it exists to make guessing low-entropy passwords
//! expensive, while guessing a 256-bit secret is impossible at any speed. The server-side
//! `key_secret` means a stolen key file alone cannot even confirm a guess. The check is
//! one hash-map lookup and one HMAC, whatever the number of keys, and the comparison is
//! constant-time (`ring::hmac::verify`).

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use turnpike_config::model::{self, KeySource};

use crate::auth::{Attempt, Hide, Identity};
use crate::consumer::{Consumer, Consumers};
use crate::request::RequestView;

pub const PREFIX: &str = "tp_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 43;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key: the full key is shown once, then only `id` and `hash` stay.
#[derive(Debug)]
pub struct NewKey {
    pub key: String,
    pub id: String,
    pub hash: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// Makes a key and its stored hash under `secret`.
pub fn generate(secret: &str) -> Result<NewKey, RandomError> {
    let rng = SystemRandom::new();
    let id = base62(&rng, ID_LEN)?;
    let key = format!("{PREFIX}{id}_{}", base62(&rng, SECRET_LEN)?);
    let hash = hash(secret, &key);
    Ok(NewKey { key, id, hash })
}

/// `hmac-sha256:<hex>` of `key` under `secret`.
pub fn hash(secret: &str, key: &str) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&k, key.as_bytes());
    let mut out = String::with_capacity(12 + 64);
    out.push_str("hmac-sha256:");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Uniform base62 characters by rejection sampling (bytes ≥ 248 would bias the result).
fn base62(rng: &SystemRandom, len: usize) -> Result<String, RandomError> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rng.fill(&mut buf).map_err(|_| RandomError)?;
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(BASE62[usize::from(*b % 62)] as char);
        }
    }
    Ok(out)
}

/// The id of a key in `tp_<id>_<secret>` form, if it has that form.
pub fn key_id(key: &str) -> Option<&str> {
    let (id, secret) = key.strip_prefix(PREFIX)?.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some(id)
}

/// One stored key.
#[derive(Debug)]
struct Entry {
    consumer: Arc<Consumer>,
    tag: [u8; 32],
    /// Unix seconds after which the key is refused.
    expires_at: Option<i64>,
    revoked: bool,
    id_value: HeaderValue,
}

/// A key as the config or the keys file lists it, with its consumer.
#[derive(Debug, Clone)]
pub struct StoredKey<'a> {
    pub consumer: &'a str,
    pub key: &'a model::ApiKey,
}

/// Every key, by id.
#[derive(Debug, Default)]
pub struct KeyStore {
    secret: Option<hmac::Key>,
    by_id: foldhash::HashMap<Box<str>, Entry>,
    sources: Vec<Source>,
    hide: bool,
}

#[derive(Debug)]
enum Source {
    Header(HeaderName),
    Query(Box<str>),
    Cookie(Box<str>),
}

/// Why the key store could not be built (the validator catches these first).
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("key {id}: {message}")]
    Key { id: String, message: String },
    #[error("invalid key source header: {0}")]
    Source(#[from] http::header::InvalidHeaderName),
}

impl KeyStore {
    pub fn build<'a>(
        auth: &model::Auth,
        keys: impl IntoIterator<Item = StoredKey<'a>>,
        consumers: &Consumers,
    ) -> Result<Self, KeyStoreError> {
        let secret = auth
            .key_secret
            .as_ref()
            .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes()));
        let mut by_id = foldhash::HashMap::default();
        for StoredKey { consumer, key } in keys {
            let bad = |message: String| KeyStoreError::Key {
                id: key.id.clone(),
                message,
            };
            let tag = parse_hash(&key.hash).ok_or_else(|| bad("invalid hash".into()))?;
            let expires_at = match &key.expires_at {
                Some(t) => Some(
                    t.parse::<jiff::Timestamp>()
                        .map_err(|e| bad(format!("invalid expires_at: {e}")))?
                        .as_second(),
                ),
                None => None,
            };
            let Some(consumer) = consumers.get(consumer).cloned() else {
                // A consumer removed from the config takes its keys with it. Refusing the
                // reload instead would keep the removed consumer's keys working.
                tracing::warn!(key_id = %key.id, consumer, "API key of an unknown consumer ignored");
                continue;
            };
            let id_value = HeaderValue::from_str(&key.id).map_err(|_| bad("invalid id".into()))?;
            let entry = Entry {
                consumer,
                tag,
                expires_at,
                revoked: key.revoked,
                id_value,
            };
            if by_id.insert(key.id.as_str().into(), entry).is_some() {
                return Err(bad("the same key id is listed twice".into()));
            }
        }
        let sources = auth
            .key_auth
            .sources
            .iter()
            .map(|s| {
                Ok(match s {
                    KeySource::Header(h) => Source::Header(HeaderName::from_bytes(h.as_bytes())?),
                    KeySource::Query(q) => Source::Query(q.as_str().into()),
                    KeySource::Cookie(c) => Source::Cookie(c.as_str().into()),
                })
            })
            .collect::<Result<_, KeyStoreError>>()?;
        Ok(Self {
            secret,
            by_id,
            sources,
            hide: auth.key_auth.hide_credentials,
        })
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The key the request carries, from the first configured source that has one.
    fn presented<'r>(&self, req: &'r RequestView<'r>) -> Option<(&'r str, Hide)> {
        self.sources.iter().find_map(|s| match s {
            Source::Header(h) => req
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(|v| (v, Hide::Header(h.clone()))),
            Source::Query(q) => req.query_param(q).map(|v| (v, Hide::Query(q.clone()))),
            Source::Cookie(c) => req.cookie(c).map(|v| (v, Hide::Cookie(c.clone()))),
        })
    }

    /// Whether the request carries something in a key source.
    pub fn is_presented(&self, req: &RequestView<'_>) -> bool {
        self.presented(req).is_some()
    }

    /// Checks the request's key; `now` is Unix seconds.
    pub fn attempt(&self, req: &RequestView<'_>, now: i64) -> Attempt {
        let Some((key, hide)) = self.presented(req) else {
            return Attempt::Absent;
        };
        match self.check(key.trim(), now) {
            Some(entry) => Attempt::Valid(Identity {
                consumer: entry.consumer.clone(),
                credential: Some(entry.id_value.clone()),
                scopes: None,
                claims: Arc::default(),
                anonymous: false,
                hide: self.hide.then_some(hide),
            }),
            None => Attempt::Invalid,
        }
    }

    fn check(&self, key: &str, now: i64) -> Option<&Entry> {
        let secret = self.secret.as_ref()?;
        let entry = self.by_id.get(key_id(key)?)?;
        // Verify first so a caller cannot tell a revoked key from a wrong one by timing.
        let valid = hmac::verify(secret, key.as_bytes(), &entry.tag).is_ok();
        let live = !entry.revoked && entry.expires_at.is_none_or(|t| now < t);
        (valid && live).then_some(entry)
    }
}

fn parse_hash(hash: &str) -> Option<[u8; 32]> {
    let hex = hash.strip_prefix("hmac-sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape_and_verify() {
        let k = generate("0123456789abcdef0123").unwrap();
        assert!(k.key.starts_with("tp_"));
        assert_eq!(key_id(&k.key), Some(k.id.as_str()));
        assert_eq!(k.key.len(), 3 + ID_LEN + 1 + SECRET_LEN);
        assert_eq!(hash("0123456789abcdef0123", &k.key), k.hash);
        assert_ne!(hash("another-secret-of-length", &k.key), k.hash);
        assert!(parse_hash(&k.hash).is_some());
        let other = generate("0123456789abcdef0123").unwrap();
        assert_ne!(k.key, other.key);
    }

    #[test]
    fn malformed_keys_have_no_id() {
        for bad in ["", "tp_", "tp__x", "tp_abc_", "xx_abc_def", "tp_abc"] {
            assert_eq!(key_id(bad), None, "{bad}");
        }
    }
}
