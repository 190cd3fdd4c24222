//! argon2id hashing for low-entropy secrets people choose or copy around: basic-auth
//! passwords and OAuth client secrets. Verification costs milliseconds by design, so
//! callers on the request path run it on the blocking pool and cache successes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("could not hash the secret: {0}")]
    Argon2(argon2::password_hash::Error),
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) with the OWASP-recommended
/// argon2id parameters and a random salt.
pub fn hash(secret: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(HashError::Argon2)
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

/// Too many argon2 checks are already waiting; the caller should answer 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are waiting")]
pub struct Busy;

/// Checks waiting for a slot beyond which new ones are refused at once.
const MAX_WAITING: usize = 64;
/// Longest wait for a slot; a check that cannot start by then is refused.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One limiter for every argon2 check in the process (basic auth, OAuth client secrets):
/// at most half the CPUs at once, so the proxy workers keep the rest, and a bounded
/// queue, so a flood of bad credentials costs the flooder 503s rather than costing the
/// gateway memory (each check holds about 19 MiB) and every other route its latency.
struct Limiter {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

fn limiter() -> &'static Limiter {
    static LIMITER: OnceLock<Limiter> = OnceLock::new();
    LIMITER.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Limiter {
            slots: Arc::new(Semaphore::new((cpus / 2).max(1))),
            waiting: AtomicUsize::new(0),
        }
    })
}

/// Decrements the waiting count however the wait ends (also when the caller is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// [`verify`] on the blocking pool under the process-wide limit. The slot moves into the
/// blocking task, so a caller that gives up (the client hung up) does not free it while
/// argon2 still runs.
pub async fn verify_limited(hash: Arc<str>, secret: String) -> Result<bool, Busy> {
    let limiter = limiter();
    if limiter.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
        limiter.waiting.fetch_sub(1, Ordering::Relaxed);
        return Err(Busy);
    }
    let waiting = Waiting(&limiter.waiting);
    let slot = tokio::time::timeout(MAX_WAIT, limiter.slots.clone().acquire_owned()).await;
    drop(waiting);
    // The semaphore is never closed; a closed one refuses like a full one.
    let Ok(Ok(slot)) = slot else {
        return Err(Busy);
    };
    let task = tokio::task::spawn_blocking(move || {
        let ok = verify(&hash, &secret);
        drop(slot);
        ok
    });
    // A check that did not finish did not succeed.
    Ok(task.await.unwrap_or(false))
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

    #[tokio::test]
    async fn limited_checks_give_the_same_answers() {
        let h: Arc<str> = hash("s3cret").unwrap().into();
        assert_eq!(verify_limited(h.clone(), "s3cret".into()).await, Ok(true));
        assert_eq!(verify_limited(h, "wrong".into()).await, Ok(false));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_cancelled_checks_keep_their_slot() {
        let h: Arc<str> = hash("s3cret").unwrap().into();
        let slots = limiter().slots.available_permits();
        // Cancelled right away: the slot stays taken until argon2 has finished.
        let started = tokio::spawn(verify_limited(h.clone(), "x".into()));
        tokio::task::yield_now().await;
        started.abort();
        let waiting = limiter().waiting.fetch_add(MAX_WAITING, Ordering::Relaxed);
        assert_eq!(verify_limited(h, "s3cret".into()).await, Err(Busy));
        limiter().waiting.fetch_sub(MAX_WAITING, Ordering::Relaxed);
        assert_eq!(limiter().waiting.load(Ordering::Relaxed), waiting);
        assert!(limiter().slots.available_permits() <= slots);
    }
}
