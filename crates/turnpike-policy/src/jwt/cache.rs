//! Verified tokens, remembered until they expire, so a client that sends the same token
//! on every request pays for one signature check instead of one per request.
//!
//! The key is the SHA-256 of the whole token: two tokens only share an entry if they are
//! the same token, whatever an attacker tries. Entries live no longer than the token
//! itself, and the map is bounded. It is sharded so the worker threads rarely wait on
//! each other, and no lock is ever held across an `.await`.
//!
//! An entry also remembers which keys verified it ([`KeySource`]): a token verified with
//! a JWKS key is trusted from the cache only while that JWKS set is the current one, so
//! an issuer that drops a key sees its tokens refused after the next refresh rather
//! than when they expire.

use std::sync::{Mutex, MutexGuard};

use ring::digest::{SHA256, digest};

use crate::auth::Identity;

/// SHA-256 of a token.
pub type TokenDigest = [u8; 32];

const SHARDS: usize = 16;

pub fn token_digest(token: &str) -> TokenDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

/// Which keys verified a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// A key from the config; it lives as long as the `JwtSet`, and so as this cache.
    Configured,
    /// A key of the provider's JWKS set of this generation.
    Jwks(u64),
}

/// A verified token.
#[derive(Debug, Clone)]
pub struct Entry {
    pub identity: Identity,
    /// Index of the provider that verified the token.
    pub provider: usize,
    pub keys: KeySource,
    /// Unix second from which the token is refused (its `exp` plus the leeway).
    pub expires: i64,
}

#[derive(Debug)]
pub struct TokenCache {
    shards: Vec<Mutex<foldhash::HashMap<TokenDigest, Entry>>>,
    per_shard: usize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(foldhash::HashMap::default()))
                .collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &TokenDigest) -> MutexGuard<'_, foldhash::HashMap<TokenDigest, Entry>> {
        let shard = &self.shards[usize::from(key[0]) % SHARDS];
        // A panic while holding the lock cannot leave an entry half-written (inserts and
        // removals are single calls), so a poisoned shard is still usable.
        shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A token verified earlier and not yet expired; the caller still checks that its
    /// provider and keys are acceptable.
    pub fn get(&self, key: &TokenDigest, now: i64) -> Option<Entry> {
        let mut shard = self.shard(key);
        let entry = shard.get(key)?;
        if now >= entry.expires {
            shard.remove(key);
            return None;
        }
        Some(entry.clone())
    }

    pub fn insert(&self, key: TokenDigest, entry: Entry, now: i64) {
        let mut shard = self.shard(&key);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, e| now < e.expires);
            // Still full of live tokens: drop an arbitrary one. The map's order is
            // unrelated to age, which is fine for a cache whose misses are only slower.
            if shard.len() >= self.per_shard {
                if let Some(victim) = shard.keys().next().copied() {
                    shard.remove(&victim);
                }
            }
        }
        shard.insert(key, entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::consumer::Consumer;

    fn entry(name: &str, provider: usize, expires: i64) -> Entry {
        let identity = Identity {
            consumer: Arc::new(Consumer::new(name, &[])),
            credential: None,
            scopes: None,
            claims: Arc::default(),
            anonymous: false,
            hide: None,
        };
        Entry {
            identity,
            provider,
            keys: KeySource::Jwks(3),
            expires,
        }
    }

    #[test]
    fn entries_expire_with_their_token() {
        let cache = TokenCache::new(100);
        let key = token_digest("a.b.c");
        cache.insert(key, entry("alice", 1, 1000), 10);
        let hit = cache.get(&key, 999).unwrap();
        assert_eq!((hit.provider, &*hit.identity.consumer.name), (1, "alice"));
        assert_eq!(hit.keys, KeySource::Jwks(3));
        assert!(cache.get(&key, 1000).is_none());
        assert!(
            cache.get(&key, 999).is_none(),
            "an expired entry is removed"
        );
        assert!(cache.get(&token_digest("a.b.d"), 0).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = TokenCache::new(64);
        for i in 0..1000 {
            cache.insert(token_digest(&i.to_string()), entry("x", 0, 5000), 0);
        }
        assert!(cache.len() <= 64, "{}", cache.len());
        // Expired entries make room first.
        let cache = TokenCache::new(16);
        for i in 0..16 {
            cache.insert(token_digest(&i.to_string()), entry("old", 0, 10), 0);
        }
        let fresh = token_digest("fresh");
        cache.insert(fresh, entry("new", 0, 100), 50);
        assert!(cache.get(&fresh, 50).is_some());
    }
}
