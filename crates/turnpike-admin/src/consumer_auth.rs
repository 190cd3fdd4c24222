//! A consumer reading its own usage (`GET /api/v1/consumers/{name}/usage`) with its own
//! API key in `X-API-Key`, instead of an admin token: what the developer portal needs to
//! show a developer their traffic. The key must be one of that consumer's keys (file or
//! store), not revoked or expired; it is checked against its keyed hash under the file's
//! `auth.key_secret`, in constant time, and never logged. It grants nothing else.

use http::{HeaderMap, Method};
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AdminState;
use crate::token::Role;

/// The header a consumer presents its key in.
pub(crate) const KEY_HEADER: &str = "x-api-key";

/// The consumer whose own usage `path` asks for, when that is what it asks for.
pub(crate) fn own_usage<'p>(method: &Method, path: &'p str) -> Option<&'p str> {
    if method != Method::GET {
        return None;
    }
    let name = path
        .strip_prefix("/api/v1/consumers/")?
        .strip_suffix("/usage")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// The caller, when `headers` carry one of consumer `name`'s own keys.
pub(crate) async fn authenticate(
    state: &AdminState,
    name: &str,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let invalid = || ApiError::unauthorized("the API key is not one of this consumer's keys", true);
    let key = headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(invalid)?;
    let id = turnpike_policy::key_auth::key_id(key).ok_or_else(invalid)?;
    let base = state.base();
    let secret = base
        .pointer("/auth/key_secret")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(invalid)?;
    let from_file = base
        .pointer("/consumers")
        .and_then(Value::as_array)
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .cloned();
    let consumer = match from_file {
        Some(doc) => doc,
        None => state
            .store()
            .get("consumers", name)
            .await?
            .map(|r| r.doc)
            .ok_or_else(invalid)?,
    };
    let entry = consumer["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["id"] == id))
        .ok_or_else(invalid)?;
    if !usable(entry) {
        return Err(invalid());
    }
    let tag = entry["hash"]
        .as_str()
        .and_then(|h| h.strip_prefix("hmac-sha256:"))
        .and_then(unhex)
        .ok_or_else(invalid)?;
    // `hmac::verify` compares in constant time.
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    if ring::hmac::verify(&hmac_key, key.as_bytes(), &tag).is_err() {
        return Err(invalid());
    }
    Ok(Caller {
        actor: format!("consumer:{name}"),
        role: Role::ReadOnly,
    })
}

/// The bytes of lower-case hex, as key hashes are written.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Not revoked, and not past its expiry.
fn usable(entry: &Value) -> bool {
    if entry["revoked"].as_bool().unwrap_or(false) {
        return false;
    }
    match entry["expires_at"].as_str() {
        None => true,
        Some(at) => at
            .parse::<jiff::Timestamp>()
            .is_ok_and(|t| t > jiff::Timestamp::now()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_usage_path_of_one_consumer() {
        assert_eq!(
            own_usage(&Method::GET, "/api/v1/consumers/alice/usage"),
            Some("alice")
        );
        assert_eq!(
            own_usage(&Method::POST, "/api/v1/consumers/alice/usage"),
            None
        );
        assert_eq!(
            own_usage(&Method::GET, "/api/v1/consumers/alice/keys"),
            None
        );
        assert_eq!(own_usage(&Method::GET, "/api/v1/consumers/a/b/usage"), None);
        assert_eq!(own_usage(&Method::GET, "/api/v1/consumers//usage"), None);
    }

    #[test]
    fn revoked_and_expired_keys_are_refused() {
        assert!(usable(&serde_json::json!({"id": "x"})));
        assert!(!usable(&serde_json::json!({"revoked": true})));
        assert!(!usable(
            &serde_json::json!({"expires_at": "2000-01-01T00:00:00Z"})
        ));
        assert!(usable(
            &serde_json::json!({"expires_at": "2999-01-01T00:00:00Z"})
        ));
    }
}
