//! The response cache's store: objects (a serialized response head and its body) by key,
//! bounded by bytes, with TinyLFU admission and LRU eviction (moka), and purges by exact
//! URL, URL prefix or tag.
//!
//! The store does not understand HTTP: the head is whatever the cache policy keeps (it
//! only has to say how many bytes it holds).
//! It keeps, per object, the URL it answers (for URL and prefix purges) and its tags
//! (`Surrogate-Key` / `Cache-Tag`), with a tag index so a tag purge does not scan. No
//! cache call is ever made while the index is locked: moka runs evictions (and so the
//! listener that updates the index) inside its own calls.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use moka::notification::RemovalCause;

/// The bytes a stored head holds, for the store's byte bound.
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// One stored response.
#[derive(Debug, Clone)]
pub struct Object<H> {
    /// Status, headers and timing, as the cache policy keeps them.
    pub head: H,
    pub body: Bytes,
    /// The URL it answers (scheme://host/path?query), for URL and prefix purges.
    pub url: Box<str>,
    pub tags: Box<[Box<str>]>,
}

impl<H: Weigh> Object<H> {
    fn weight(&self, key: &[u8]) -> u32 {
        let tags: usize = self.tags.iter().map(|t| t.len()).sum();
        let bytes = key.len() + self.head.weight() + self.body.len() + self.url.len() + tags + 64;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

type Key = Box<[u8]>;
type TagIndex = Arc<Mutex<HashMap<Box<str>, HashSet<Key>>>>;

/// Objects in memory, at most `max_bytes` of them (keys, heads, bodies and bookkeeping).
#[derive(Clone)]
pub struct ObjectStore<H = Bytes> {
    cache: moka::sync::Cache<Key, Arc<Object<H>>>,
    tags: TagIndex,
}

impl<H> std::fmt::Debug for ObjectStore<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("entries", &self.cache.entry_count())
            .field("bytes", &self.cache.weighted_size())
            .finish_non_exhaustive()
    }
}

fn lock(tags: &TagIndex) -> MutexGuard<'_, HashMap<Box<str>, HashSet<Key>>> {
    // The index is only ever changed by single insert/remove calls: still consistent.
    tags.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<H: Weigh + Send + Sync + 'static> ObjectStore<H> {
    pub fn memory(max_bytes: u64) -> Self {
        let tags: TagIndex = Arc::default();
        let index = tags.clone();
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Key, v: &Arc<Object<H>>| v.weight(k))
            .eviction_listener(move |key: Arc<Key>, obj: Arc<Object<H>>, cause| {
                // A replaced object's tags were re-indexed by `put`; forget the rest.
                if cause != RemovalCause::Replaced {
                    forget(&index, &key, &obj);
                }
            })
            .build();
        Self { cache, tags }
    }

    pub fn get(&self, key: &[u8]) -> Option<Arc<Object<H>>> {
        self.cache.get(key)
    }

    /// Stores `obj` under `key`, replacing what was there. An object larger than the
    /// whole store is not kept (the caller bounds single objects far lower).
    pub fn put(&self, key: &[u8], obj: Object<H>) -> Arc<Object<H>> {
        let key: Key = key.into();
        // Read before locking the index: a cache call may run evictions, whose listener
        // takes the index lock itself.
        let old = self.cache.get(&key);
        {
            let mut index = lock(&self.tags);
            if let Some(old) = old {
                for tag in old.tags.iter() {
                    if let Some(keys) = index.get_mut(tag) {
                        keys.remove(&key);
                    }
                }
            }
            for tag in obj.tags.iter() {
                index.entry(tag.clone()).or_default().insert(key.clone());
            }
        }
        let obj = Arc::new(obj);
        self.cache.insert(key, obj.clone());
        obj
    }

    pub fn remove(&self, key: &[u8]) {
        self.cache.invalidate(key);
    }

    /// Removes every object tagged `tag`; returns how many there were.
    pub fn purge_tag(&self, tag: &str) -> usize {
        let keys = lock(&self.tags).remove(tag).unwrap_or_default();
        let n = keys
            .iter()
            .filter(|k| self.cache.contains_key(&***k))
            .count();
        for key in keys {
            self.cache.invalidate(&key);
        }
        n
    }

    /// Removes every object whose URL `matches`; a scan, meant for purges, not requests.
    pub fn purge_where(&self, matches: impl Fn(&str) -> bool) -> usize {
        let keys: Vec<Arc<Key>> = self
            .cache
            .iter()
            .filter(|(_, obj)| matches(&obj.url))
            .map(|(k, _)| k)
            .collect();
        for key in &keys {
            self.cache.invalidate(&***key);
        }
        keys.len()
    }

    pub fn purge_url(&self, url: &str) -> usize {
        self.purge_where(|u| u == url)
    }

    pub fn purge_prefix(&self, prefix: &str) -> usize {
        self.purge_where(|u| u.starts_with(prefix))
    }

    /// Bytes held now (after pending evictions have run).
    pub fn bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }

    pub fn entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

fn forget<H>(index: &TagIndex, key: &Key, obj: &Object<H>) {
    let mut index = lock(index);
    for tag in obj.tags.iter() {
        if let Some(keys) = index.get_mut(tag) {
            keys.remove(key);
            if keys.is_empty() {
                index.remove(tag);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(url: &str, tags: &[&str], body: usize) -> Object<Bytes> {
        Object {
            head: Bytes::from_static(b"head"),
            body: Bytes::from(vec![b'x'; body]),
            url: url.into(),
            tags: tags.iter().map(|t| Box::from(*t)).collect(),
        }
    }

    #[test]
    fn purges_by_tag_url_and_prefix() {
        let store = ObjectStore::<Bytes>::memory(1 << 20);
        store.put(b"a", obj("https://api/items/1", &["item-1", "items"], 10));
        store.put(
            b"a-gzip",
            obj("https://api/items/1", &["item-1", "items"], 10),
        );
        store.put(b"b", obj("https://api/items/2", &["items"], 10));
        store.put(b"c", obj("https://api/users/1", &["user-1"], 10));
        assert_eq!(store.purge_tag("item-1"), 2);
        assert!(store.get(b"a").is_none() && store.get(b"b").is_some());
        assert_eq!(store.purge_tag("item-1"), 0);
        assert_eq!(store.purge_prefix("https://api/items/"), 1);
        assert_eq!(store.purge_url("https://api/users/1"), 1);
        assert_eq!(store.entries(), 0);
    }

    #[test]
    fn a_replaced_object_keeps_only_its_new_tags() {
        let store = ObjectStore::<Bytes>::memory(1 << 20);
        store.put(b"a", obj("u", &["old"], 1));
        store.put(b"a", obj("u", &["new"], 1));
        store.cache.run_pending_tasks();
        assert_eq!(store.purge_tag("old"), 0);
        assert!(store.get(b"a").is_some());
        assert_eq!(store.purge_tag("new"), 1);
    }

    #[test]
    fn the_store_stays_within_its_byte_limit_under_unique_keys() {
        let limit = 256 * 1024;
        let store = ObjectStore::<Bytes>::memory(limit);
        for i in 0..20_000u32 {
            store.put(&i.to_be_bytes(), obj(&format!("u{i}"), &["t"], 100));
        }
        assert!(store.bytes() <= limit, "{} > {limit}", store.bytes());
        assert!(store.entries() > 100, "it still holds a useful number");
        // The tag index forgets what was evicted.
        assert!(lock(&store.tags).get("t").map_or(0, HashSet::len) as u64 <= store.entries() + 64);
    }
}
