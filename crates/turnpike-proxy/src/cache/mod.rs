//! The response cache on the request path (RFC 9111 shared cache, RFC 5861 stale
//! extensions, RFC 9211 `Cache-Status`). The rules themselves are pure functions in
//! `turnpike_policy::cache`; the store is `turnpike_state::objects`. This module holds
//! what outlives a reload ([`CacheRt`]: the store, requests in flight, counters, the CDN
//! purger), each route's compiled policy ([`RouteCache`]), and purges.
//!
//! - [`lookup`]: the phase before the upstream: hit, stale, revalidate, or miss (with
//!   request coalescing);
//! - [`complete`]: the phase after it: store (teeing the body), refresh from a 304,
//!   stale-if-error, invalidation after unsafe methods;
//! - [`tee`]: the body that is stored while it streams to the client;
//! - [`cdn`]: purge fan-out to CDN webhooks.

pub mod cdn;
pub(crate) mod codec;
pub(crate) mod complete;
pub(crate) mod entry;
pub(crate) mod lookup;
pub(crate) mod phase;
pub mod tee;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;

use turnpike_config::model::{CachePolicy, CacheStore, Config, PurgeKind, Route};
use turnpike_policy::cache::freshness::Fallback;
use turnpike_policy::cache::key::{Extra, KeySpec};
use turnpike_policy::cache::storable::HEURISTIC_STATUSES;
use turnpike_state::objects::ObjectStore;
use turnpike_state::objects_redis::{self, RedisObjects};

use entry::Head;

/// The cache shared by every route and every config version that keeps the same
/// storage settings.
#[derive(Debug)]
pub struct CacheRt {
    pub(crate) store: ObjectStore<Head>,
    pub(crate) max_object: u64,
    pub(crate) x_cache: bool,
    /// Primary keys being fetched now, so identical misses wait for one upstream request.
    pub(crate) inflight: Mutex<HashMap<Box<[u8]>, lookup::Waiter>>,
    counters: Mutex<HashMap<Arc<str>, Arc<CacheCounters>>>,
    pub(crate) cdn: Arc<cdn::Purger>,
    /// The shared store behind the memory one (`storage: redis://...`).
    pub(crate) l2: Option<RedisObjects>,
    /// Held while this store is in use; the purge subscriber stops once it is gone.
    alive: Arc<()>,
    /// The settings the store was made from; a reload that changes them starts empty.
    settings: (u64, String, String),
}

/// One route's cache results, for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub hit: AtomicU64,
    pub stale: AtomicU64,
    pub revalidated: AtomicU64,
    pub miss: AtomicU64,
    pub bypass: AtomicU64,
    pub stored: AtomicU64,
    /// Requests that waited for another's identical miss instead of going upstream.
    pub coalesced: AtomicU64,
}

impl CacheCounters {
    pub(crate) fn count(&self, outcome: entry::Outcome) {
        let c = match outcome {
            entry::Outcome::Hit => &self.hit,
            entry::Outcome::Stale(_) => &self.stale,
            entry::Outcome::Revalidated => &self.revalidated,
            entry::Outcome::Miss { .. } => &self.miss,
            entry::Outcome::Bypass(_) => &self.bypass,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

impl CacheRt {
    /// The cache for `cfg`: `previous`'s when its storage settings are unchanged (entries
    /// survive the reload), else a new, empty one. With Redis storage, the connection and
    /// the purge subscriber run on `control`.
    pub fn build(
        cfg: &CacheStore,
        previous: Option<&Arc<CacheRt>>,
        control: &Handle,
    ) -> Arc<CacheRt> {
        let settings = (
            cfg.memory.bytes(),
            cfg.storage.clone(),
            cfg.redis_prefix.clone(),
        );
        let cdn = Arc::new(cdn::Purger::new(&cfg.cdn));
        if let Some(prev) = previous.filter(|p| p.settings == settings) {
            // Same store; the lighter settings and the CDN list may still change.
            return Arc::new(CacheRt {
                store: prev.store.clone(),
                max_object: cfg.max_object.bytes(),
                x_cache: cfg.x_cache,
                inflight: Mutex::default(),
                counters: Mutex::new(lock(&prev.counters).clone()),
                cdn: cdn.inherit(&prev.cdn),
                l2: prev.l2.clone(),
                alive: prev.alive.clone(),
                settings,
            });
        }
        let store = ObjectStore::memory(cfg.memory.bytes());
        let alive = Arc::new(());
        let l2 = cfg
            .redis_url()
            .and_then(|url| shared_store(cfg, url, (&store, &alive), control));
        Arc::new(CacheRt {
            store,
            max_object: cfg.max_object.bytes(),
            x_cache: cfg.x_cache,
            inflight: Mutex::default(),
            counters: Mutex::default(),
            cdn,
            l2,
            alive,
            settings,
        })
    }

    /// The counters of route `name`, the same ones across reloads.
    fn counters(&self, name: &Arc<str>) -> Arc<CacheCounters> {
        lock(&self.counters)
            .entry(name.clone())
            .or_default()
            .clone()
    }

    /// Every route's counters, for `/metrics`.
    pub fn all_counters(&self) -> Vec<(Arc<str>, Arc<CacheCounters>)> {
        let mut all: Vec<_> = lock(&self.counters)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Whether the shared store (Redis) answers; false without one.
    pub fn shared_up(&self) -> bool {
        self.l2.as_ref().is_some_and(RedisObjects::is_up)
    }

    /// Bytes and objects held now.
    pub fn usage(&self) -> (u64, u64) {
        (self.store.bytes(), self.store.entries())
    }

    /// Removes what matches here and in the shared store (whose purge reaches every node),
    /// then tells the CDNs in the background. Returns how many objects went.
    pub async fn purge(&self, kind: PurgeKind, values: &[String]) -> usize {
        let tags: Vec<String> = match kind {
            PurgeKind::Tag => values.to_vec(),
            PurgeKind::Url => values.iter().map(|v| url_tag(v)).collect(),
            PurgeKind::Prefix => Vec::new(),
        };
        let mut local = 0;
        for tag in &tags {
            local += self.store.purge_tag(tag);
        }
        if kind == PurgeKind::Prefix {
            for v in values {
                local += self.store.purge_prefix(v);
            }
        }
        let shared = match &self.l2 {
            Some(l2) => shared_purge(l2, kind, values, tags).await,
            None => 0,
        };
        self.cdn.send(kind, values);
        local.max(shared)
    }

    /// Purges sent to CDN endpoints: accepted, and failed after retries.
    pub fn cdn_counts(&self) -> (u64, u64) {
        let c = &self.cdn.counts;
        (
            c.sent.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
        )
    }

    /// The purge webhooks' recent failures (newest last).
    pub fn cdn_failures(&self) -> Vec<cdn::Failure> {
        self.cdn.failures()
    }
}

/// The Redis store and the subscriber that applies every node's purges to `store`.
fn shared_store(
    cfg: &CacheStore,
    url: &str,
    (store, alive): (&ObjectStore<Head>, &Arc<()>),
    control: &Handle,
) -> Option<RedisObjects> {
    let l2 = RedisObjects::new(url, &cfg.redis_prefix, cfg.redis_timeout.as_std(), control)
        .inspect_err(|e| tracing::error!(error = %e, "cache storage: Redis not used"))
        .ok()?;
    let (local, token) = (store.clone(), Arc::downgrade(alive));
    let subscribed = objects_redis::subscribe(
        url,
        l2.channel(),
        control,
        move || token.strong_count() > 0,
        move |tag| {
            local.purge_tag(tag);
        },
    );
    if let Err(e) = subscribed {
        tracing::error!(error = %e, "cache storage: purges from other nodes will not be seen");
    }
    Some(l2)
}

/// A purge in the shared store; a prefix is turned into the URL tags it covers first.
async fn shared_purge(
    l2: &RedisObjects,
    kind: PurgeKind,
    values: &[String],
    mut tags: Vec<String>,
) -> usize {
    if kind == PurgeKind::Prefix {
        for v in values {
            match l2.url_tags_with_prefix(&url_tag(v)).await {
                Ok(found) => tags.extend(found),
                Err(e) => tracing::warn!(error = %e, "cache purge: Redis prefix scan failed"),
            }
        }
    }
    l2.purge_tags(&tags)
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "cache purge: Redis did not answer"))
        .unwrap_or(0)
}

/// How the cache served an exchange, for the trace's `cache` span: `hit`, `stale`,
/// `revalidated`, `miss`, `bypass`, or `error` when nothing was served.
pub(crate) fn result_of(
    exchanged: &Result<phase::Exchanged, crate::error::GatewayError>,
) -> &'static str {
    let headers = match exchanged {
        Ok(phase::Exchanged::Stored(r)) => r.headers(),
        Ok(phase::Exchanged::Upstream(r, ..)) => r.headers(),
        Err(_) => return "error",
    };
    let status = headers
        .get(&entry::CACHE_STATUS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if status.contains("detail=stale") {
        "stale"
    } else if status.contains("; hit") {
        "hit"
    } else if status.contains("fwd=stale") {
        "revalidated"
    } else if status.contains("fwd=miss") {
        "miss"
    } else {
        "bypass"
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The tag every object carries for its URL, so URL purges and invalidation after
/// unsafe methods need no scan. NUL cannot appear in a header, so no `Surrogate-Key`
/// can pose as one.
pub(crate) fn url_tag(url: &str) -> String {
    format!("\0url {url}")
}

/// The methods a route caches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Methods {
    pub(crate) get: bool,
    pub(crate) head: bool,
    pub(crate) post: bool,
}

/// One route's cache policy, compiled.
#[derive(Debug)]
pub struct RouteCache {
    pub(crate) key: KeySpec,
    pub(crate) methods: Methods,
    pub(crate) statuses: Vec<u16>,
    pub(crate) fallback: Fallback,
    pub(crate) lock_timeout: Duration,
    pub(crate) strip_tags: bool,
    pub(crate) counters: Arc<CacheCounters>,
}

impl RouteCache {
    /// `route`'s cache policy over its upstream's over the global one; none when no level
    /// sets one or the nearest says `enabled: false`.
    pub fn build(route: &Route, cfg: &Config, cache: &CacheRt, name: &Arc<str>) -> Option<Self> {
        let service = cfg
            .upstreams
            .iter()
            .find(|u| u.name == route.upstream)
            .and_then(|u| u.policies.cache.as_ref());
        let p: &CachePolicy = route
            .cache
            .as_ref()
            .or(service)
            .or(cfg.policies.cache.as_ref())
            .filter(|p| p.enabled)?;
        let authenticates = route.auth.is_some()
            || cfg
                .upstreams
                .iter()
                .any(|u| u.name == route.upstream && u.policies.auth.is_some())
            || cfg.policies.auth.is_some();
        let mut extras: Vec<Extra> = p
            .key
            .headers
            .iter()
            .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
            .map(Extra::Header)
            .collect();
        // Safe by default: an authenticating route keys by consumer unless told not to.
        if p.key.consumer.unwrap_or(authenticates) {
            extras.push(Extra::Consumer);
        }
        let has = |m: &str| p.methods.iter().any(|x| x == m);
        Some(Self {
            methods: Methods {
                get: has("GET"),
                head: has("HEAD"),
                post: has("POST"),
            },
            key: KeySpec {
                sort_query: p.key.sort_query,
                ignore_params: p.key.ignore_params.clone(),
                extras,
            },
            statuses: p.statuses.clone().unwrap_or_else(|| {
                HEURISTIC_STATUSES
                    .iter()
                    .copied()
                    .filter(|s| *s != 206)
                    .collect()
            }),
            fallback: Fallback {
                heuristic_percent: p.heuristic_percent,
                heuristic_max: p.heuristic_max.as_std(),
                default_ttl: p.default_ttl.map(|d| d.as_std()),
            },
            lock_timeout: p.lock_timeout.as_std(),
            strip_tags: p.strip_tags,
            counters: cache.counters(name),
        })
    }
}
