//! argon2id hashing for low-entropy secrets people choose or copy around: basic-auth
//! passwords and OAuth client secrets. Verification costs milliseconds by design, so
//! callers on the request path run it on the blocking pool and cache successes.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

#[derive(Debug, thiserror::Error)]
#[error("could not hash the secret: {0}")]
pub struct HashError(String);

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) with the OWASP-recommended
/// argon2id parameters and a random salt.
pub fn hash(secret: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `secret` matches the PHC `hash`; a malformed hash matches nothing.
pub fn verify(hash: &str, secret: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A valid hash of nothing anyone knows, verified against when the user is unknown so
/// that "no such user" takes as long as "wrong password".
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7X9VFA1lGNaQ8Uc8DfXSeDIDOWOJFBa3yNyDRb1JkPc"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_secret() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "correct horsE"));
        assert!(!verify("not a hash", "correct horse"));
        assert!(PasswordHash::new(dummy_hash()).is_ok());
        assert!(!verify(dummy_hash(), ""));
    }
}
