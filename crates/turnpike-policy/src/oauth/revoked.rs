//! Revoked access tokens (RFC 7009), remembered by `jti` until the token would have
//! expired anyway — after that its `exp` refuses it and the entry is dropped.
//!
//! The list is shared by every config version (`OAuthServer::build` hands it on through
//! `previous`), so a reload does not resurrect revoked tokens. It lives in this process's
//! memory only: a restart forgets it and other gateway nodes never see it. Persisting and
//! sharing it belongs to the durable store (issue "store"); until then a revoked token
//! stays usable on other nodes for at most `token_ttl`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, PoisonError, RwLock};

/// Most revocations remembered at once. Entries live at most `token_ttl`, so this bounds
/// revocations per TTL window (about 100 bytes each: ~10 MB at the limit).
pub const CAPACITY: usize = 100_000;

/// The list is full of unexpired entries; RFC 7009 §2.2.1 answers 503 so the client
/// retries later, rather than forgetting an earlier revocation to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many revoked tokens are still unexpired")]
pub struct Full;

#[derive(Debug, Clone)]
pub struct Revocations {
    inner: Arc<RwLock<Inner>>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// `jti` → `exp`.
    by_jti: foldhash::HashMap<Box<str>, i64>,
    /// Soonest expiry first, for pruning.
    by_exp: BinaryHeap<Reverse<(i64, Box<str>)>>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl Revocations {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::default(),
            capacity,
        }
    }

    /// Remembers `jti` until `exp`; revoking twice is fine.
    pub fn revoke(&self, jti: &str, exp: i64, now: i64) -> Result<(), Full> {
        // A poisoned lock only means another thread panicked mid-update; the map and heap
        // stay usable (at worst an entry is in one and not the other).
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.prune(now);
        if inner.by_jti.contains_key(jti) {
            return Ok(());
        }
        if inner.by_jti.len() >= self.capacity {
            return Err(Full);
        }
        inner.by_jti.insert(jti.into(), exp);
        inner.by_exp.push(Reverse((exp, jti.into())));
        Ok(())
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_jti
            .contains_key(jti)
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_jti
            .len()
    }
}

impl Inner {
    /// Drops entries whose tokens have expired: they are refused by `exp` now.
    fn prune(&mut self, now: i64) {
        while let Some(Reverse((exp, _))) = self.by_exp.peek() {
            if *exp > now {
                break;
            }
            if let Some(Reverse((_, jti))) = self.by_exp.pop() {
                self.by_jti.remove(&jti);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry_and_refuses_when_full() {
        let list = Revocations::with_capacity(2);
        list.revoke("a", 100, 0).unwrap();
        list.revoke("a", 100, 0).unwrap();
        list.revoke("b", 200, 0).unwrap();
        assert!(list.is_revoked("a") && list.is_revoked("b"));
        assert_eq!(list.revoke("c", 300, 50), Err(Full));
        // At 100 `a` has expired, which makes room.
        list.revoke("c", 300, 100).unwrap();
        assert!(!list.is_revoked("a"));
        assert!(list.is_revoked("c"));
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn clones_share_the_list() {
        let list = Revocations::default();
        let carried = list.clone();
        list.revoke("x", 10, 0).unwrap();
        assert!(carried.is_revoked("x"));
    }
}
