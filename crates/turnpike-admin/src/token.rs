//! Admin tokens: `tpa_<id>_<secret>`, like API keys (`tp_...`, see
//! `turnpike_policy::key_auth`) with their own prefix so a leaked one is recognisable as
//! an admin credential.
//!
//! The 12-character id finds the stored row without a scan; the 43-character base62 secret
//! carries 256 random bits. We store the SHA-256 of the whole token: a slow password hash
//! exists to make guessing low-entropy secrets expensive, and a 256-bit secret cannot be
//! guessed at any speed. The comparison is constant-time.

use ring::digest::{SHA256, digest};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const PREFIX: &str = "tpa_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 43;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// What a token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads entities (GET only); no tokens, no audit log.
    ReadOnly,
    /// Also creates, changes and deletes entities.
    Operator,
    /// Also manages admin tokens and reads the audit log.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read_only",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read_only" => Some(Self::ReadOnly),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// A freshly generated token: `token` is shown once, `id` and `hash` are stored.
#[derive(Debug)]
pub struct NewToken {
    pub token: String,
    pub id: String,
    pub hash: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// Makes a new token.
pub fn generate() -> Result<NewToken, RandomError> {
    let rng = SystemRandom::new();
    let id = base62(&rng, ID_LEN)?;
    let token = format!("{PREFIX}{id}_{}", base62(&rng, SECRET_LEN)?);
    let hash = hash(&token);
    Ok(NewToken { token, id, hash })
}

/// The id of a well-formed token; `None` for anything else.
pub fn token_id(token: &str) -> Option<&str> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    let ok = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (ok(id, ID_LEN) && ok(secret, SECRET_LEN)).then_some(id)
}

/// Lower-case hex SHA-256 of the whole token: what the store keeps.
pub fn hash(token: &str) -> String {
    let d = digest(&SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `token` hashes to `stored`, compared in constant time.
///
/// ring keeps its constant-time comparison internal but `hmac::verify` is one: comparing
/// HMACs of both values under any key is equal exactly when the values are, and the key
/// need not be secret because the tag only hides timing, not the stored hash.
pub fn matches(token: &str, stored: &str) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"turnpike admin token comparison");
    let tag = hmac::sign(&key, stored.as_bytes());
    hmac::verify(&key, hash(token).as_bytes(), tag.as_ref()).is_ok()
}

/// Uniform base62 characters by rejection sampling (bytes ≥ 248 would bias the result).
pub(crate) fn base62(rng: &SystemRandom, len: usize) -> Result<String, RandomError> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rng.fill(&mut buf).map_err(|_| RandomError)?;
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(char::from(BASE62[usize::from(*b % 62)]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_match() {
        let t = generate().unwrap();
        assert_eq!(t.token.len(), 4 + 12 + 1 + 43);
        assert_eq!(token_id(&t.token), Some(t.id.as_str()));
        assert!(matches(&t.token, &t.hash));
        assert!(!matches(&format!("{}x", t.token), &t.hash));
        assert_eq!(t.hash.len(), 64);
    }

    #[test]
    fn malformed_tokens_have_no_id() {
        for bad in [
            "",
            "tpa_",
            "tp_abcdefghijkl_0123456789012345678901234567890123456789012",
            "tpa_abcdefghijk_0123456789012345678901234567890123456789012",
            "tpa_abcdefghijkl_012345678901234567890123456789012345678901",
            "tpa_abcdefghij-l_0123456789012345678901234567890123456789012",
        ] {
            assert_eq!(token_id(bad), None, "{bad}");
        }
        let good = "tpa_abcdefghijkl_0123456789012345678901234567890123456789012";
        assert_eq!(token_id(good), Some("abcdefghijkl"));
    }

    #[test]
    fn roles_order_and_names() {
        assert!(Role::ReadOnly < Role::Operator && Role::Operator < Role::Admin);
        for r in [Role::ReadOnly, Role::Operator, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
