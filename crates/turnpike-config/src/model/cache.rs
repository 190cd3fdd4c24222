//! The response-cache part of the model: where cached objects live and where purges fan
//! out to (`cache:`), and the per-route policy (`cache:` on a route, or under `policies`
//! of an upstream or of every route) that says what is cached and under which key.
//!
//! Everything HTTP decides (freshness, `Vary`, revalidation) follows the upstream's
//! headers (RFC 9111); these settings only fill in what an API that sends no caching
//! headers leaves open, and that stays off unless configured (docs/caching.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, Duration};

/// Cache storage and CDN purge fan-out, shared by every cached route.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheStore {
    /// Memory for cached responses (keys, headers, bodies); least valuable evicted first.
    /// With Redis, this is the L1 in front of it.
    pub memory: ByteSize,
    /// Largest response body stored; bigger ones pass through uncached.
    pub max_object: ByteSize,
    /// `memory` (this node), or a `redis://` / `rediss://` URL every node shares.
    pub storage: String,
    /// Prefix of every Redis key, so environments can share one Redis.
    pub redis_prefix: String,
    /// Longest wait for Redis before the cache acts as a miss (or skips the store).
    pub redis_timeout: Duration,
    /// Also send `X-Cache: HIT|MISS|STALE|BYPASS` (`Cache-Status` is always sent).
    pub x_cache: bool,
    /// Endpoints told about every purge (a CDN's purge API, say).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cdn: Vec<CdnPurge>,
}

impl Default for CacheStore {
    fn default() -> Self {
        Self {
            memory: ByteSize(64 * 1024 * 1024),
            max_object: ByteSize(1024 * 1024),
            storage: "memory".to_owned(),
            redis_prefix: "tpc:".to_owned(),
            redis_timeout: Duration::from_millis(100),
            x_cache: false,
            cdn: Vec::new(),
        }
    }
}

impl CacheStore {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub fn redis_url(&self) -> Option<&str> {
        (self.storage != "memory").then_some(self.storage.as_str())
    }
}

/// A purge webhook. `url`, header values and `body` are templates: `{kind}` is `tag`,
/// `url` or `prefix`, `{values}` the purged values as a JSON array, and `{value}` one of
/// them (a template that uses `{value}` makes one request per value).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CdnPurge {
    pub name: String,
    pub url: String,
    #[serde(default = "post")]
    pub method: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The purge kinds this endpoint is told about.
    #[serde(default = "all_kinds")]
    pub kinds: Vec<PurgeKind>,
    /// Extra attempts after a failure (network error, 5xx or 429), with back-off.
    #[serde(default = "three")]
    pub retries: u32,
    #[serde(default = "five_seconds")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PurgeKind {
    Tag,
    Url,
    Prefix,
}

impl PurgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tag => "tag",
            Self::Url => "url",
            Self::Prefix => "prefix",
        }
    }
}

fn post() -> String {
    "POST".to_owned()
}

fn all_kinds() -> Vec<PurgeKind> {
    vec![PurgeKind::Tag, PurgeKind::Url, PurgeKind::Prefix]
}

fn three() -> u32 {
    3
}

fn five_seconds() -> Duration {
    Duration::from_millis(5000)
}

/// Caching for the routes it applies to. Present means on; `enabled: false` turns off a
/// policy inherited from the upstream or `policies`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CachePolicy {
    pub enabled: bool,
    /// Lifetime of a response that carries no freshness information at all; off when
    /// absent, as RFC 9111 wants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<Duration>,
    /// Heuristic freshness (RFC 9111 §4.2.2): this percentage of the time since
    /// `Last-Modified`; off when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heuristic_percent: Option<u32>,
    /// Longest heuristic lifetime.
    pub heuristic_max: Duration,
    /// Statuses that may be stored; by default those HTTP calls heuristically cacheable
    /// (200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<u16>>,
    /// Methods whose responses are cached: `GET` and `HEAD` (answered from a stored
    /// `GET`), and on request `POST`, keyed by its body as well (bodies up to 64KiB).
    pub methods: Vec<String>,
    pub key: CacheKey,
    /// Longest wait for an identical request already on its way upstream before going
    /// upstream too (request coalescing).
    pub lock_timeout: Duration,
    /// Remove `Surrogate-Key` and `Cache-Tag` before the response reaches the client (a CDN
    /// in front may want them: set false).
    pub strip_tags: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            default_ttl: None,
            heuristic_percent: None,
            heuristic_max: Duration::from_millis(24 * 3600 * 1000),
            statuses: None,
            methods: vec!["GET".to_owned(), "HEAD".to_owned()],
            key: CacheKey::default(),
            lock_timeout: Duration::from_millis(5000),
            strip_tags: true,
        }
    }
}

/// What the cache key is made of beyond method, scheme, host, path and query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheKey {
    /// Sort query parameters, so `?a=1&b=2` and `?b=2&a=1` share an entry.
    pub sort_query: bool,
    /// Query parameters left out of the key (tracking parameters, say).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore_params: Vec<String>,
    /// Request headers whose values are part of the key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Key by the authenticated consumer, so one consumer's response never reaches
    /// another. Defaults to on for routes that authenticate; `false` shares entries
    /// between consumers (only for responses that are the same for all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<bool>,
}
