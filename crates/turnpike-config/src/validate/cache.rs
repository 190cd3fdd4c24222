//! The `cache:` section and the `cache` policies: sizes that make sense together, a
//! storage the gateway can reach, purge webhooks that can be sent, and keys and statuses
//! the cache can use.

use super::Checker;
use crate::de::Parsed;
use crate::lexical;
use crate::model::{CachePolicy, CacheStore, CdnPurge};

/// Smallest memory cache worth having; below it nearly every object is refused.
const MIN_MEMORY: u64 = 64 * 1024;

pub(super) fn check(c: &mut Checker<'_>, parsed: &Parsed) {
    let config = &parsed.config;
    store(c, &config.cache);
    if let Some(p) = &config.policies.cache {
        policy(c, "policies.cache", p);
    }
    for (upstream, i) in config.upstreams.iter().zip(&parsed.upstream_at) {
        if let Some(p) = &upstream.policies.cache {
            policy(c, &format!("upstreams[{i}].policies.cache"), p);
        }
    }
    for (route, i) in config.routes.iter().zip(&parsed.route_at) {
        if let Some(p) = &route.cache {
            policy(c, &format!("routes[{i}].cache"), p);
        }
    }
}

fn store(c: &mut Checker<'_>, s: &CacheStore) {
    if s.memory.bytes() < MIN_MEMORY {
        let msg = format!("must be at least 64KiB, found {}", s.memory);
        c.err("cache.memory", msg);
    }
    if s.max_object.bytes() == 0 || s.max_object.bytes() > s.memory.bytes() / 2 {
        let msg = format!(
            "must be more than 0 and at most half of `cache.memory` ({}), found {}",
            s.memory, s.max_object
        );
        c.err("cache.max_object", msg);
    }
    let storage = s.storage.as_str();
    let redis = storage.starts_with("redis://") || storage.starts_with("rediss://");
    if storage != "memory" && !redis {
        let msg = format!(
            "invalid storage {storage:?}: expected `memory` or a redis:// or rediss:// URL"
        );
        c.err("cache.storage", msg);
    }
    if s.redis_timeout.is_zero() {
        c.err("cache.redis_timeout", "must be more than 0");
    }
    let names = s
        .cdn
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("cache.cdn[{i}]"), p.name.clone()))
        .collect::<Vec<_>>();
    c.unique_names(
        "CDN purge endpoint",
        names.iter().map(|(a, n)| (a.as_str(), n.as_str())),
    );
    for (i, p) in s.cdn.iter().enumerate() {
        cdn(c, &format!("cache.cdn[{i}]"), p);
    }
}

fn cdn(c: &mut Checker<'_>, at: &str, p: &CdnPurge) {
    if !(p.url.starts_with("https://") || p.url.starts_with("http://")) {
        let msg = format!("invalid URL {:?}: expected an absolute http(s) URL", p.url);
        c.err(format!("{at}.url"), msg);
    }
    if let Err(msg) = lexical::method(&p.method) {
        c.err(format!("{at}.method"), msg);
    }
    for (name, value) in &p.headers {
        if let Err(msg) = lexical::header_name(name) {
            c.err_key(format!("{at}.headers.{name}"), msg);
        } else if let Err(msg) = lexical::header_value(value) {
            c.err(format!("{at}.headers.{name}"), msg);
        }
    }
    if p.kinds.is_empty() {
        c.err(
            format!("{at}.kinds"),
            "must name at least one of tag, url, prefix",
        );
    }
    if p.retries > 10 {
        let msg = format!("must be at most 10, found {}", p.retries);
        c.err(format!("{at}.retries"), msg);
    }
    if p.timeout.is_zero() {
        c.err(format!("{at}.timeout"), "must be more than 0");
    }
}

fn policy(c: &mut Checker<'_>, at: &str, p: &CachePolicy) {
    if p.heuristic_percent
        .is_some_and(|pct| !(1..=100).contains(&pct))
    {
        let msg = "must be between 1 and 100 (RFC 9111 suggests 10)";
        c.err(format!("{at}.heuristic_percent"), msg);
    }
    if p.default_ttl.as_ref().is_some_and(|t| t.is_zero()) {
        let msg = "must be more than 0 (leave it out to cache only what the upstream allows)";
        c.err(format!("{at}.default_ttl"), msg);
    }
    for (i, s) in p.statuses.iter().flatten().enumerate() {
        if !(200..=599).contains(s) || *s == 206 || *s == 304 {
            let msg = format!(
                "status {s} cannot be stored: expected a final status from 200 to 599, not 206 (ranges) or 304"
            );
            c.err(format!("{at}.statuses[{i}]"), msg);
        }
    }
    for (i, m) in p.methods.iter().enumerate() {
        if !matches!(m.as_str(), "GET" | "HEAD" | "POST") {
            let msg = format!(
                "method {m:?} cannot be cached: expected GET, HEAD or POST (upper-case); other methods change state and invalidate instead"
            );
            c.err(format!("{at}.methods[{i}]"), msg);
        }
    }
    for (i, name) in p.key.headers.iter().enumerate() {
        if let Err(msg) = lexical::header_name(name) {
            c.err(format!("{at}.key.headers[{i}]"), msg);
        }
    }
    for (i, name) in p.key.ignore_params.iter().enumerate() {
        if name.is_empty() || name.contains(['&', '=']) {
            let msg = format!("invalid query parameter name {name:?}");
            c.err(format!("{at}.key.ignore_params[{i}]"), msg);
        }
    }
    if p.lock_timeout.as_std() > std::time::Duration::from_secs(60) {
        let msg = format!("must be at most 60s, found {}", p.lock_timeout);
        c.err(format!("{at}.lock_timeout"), msg);
    }
}
