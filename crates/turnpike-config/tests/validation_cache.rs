//! The `cache:` section and `cache` policies: defaults, every key, and each validation
//! rule with its exact `line:column` and path.

mod common;

use common::{assert_has, load, printed, with_route_extra};
use turnpike_config::model::{CachePolicy, CacheStore, PurgeKind};

#[test]
fn absent_sections_take_the_defaults_and_routes_do_not_cache() {
    let cfg = load(&with_route_extra(""));
    assert_eq!(cfg.cache, CacheStore::default());
    assert!(cfg.routes[0].cache.is_none(), "caching is opt-in per route");
    let s = CacheStore::default();
    assert_eq!(
        (
            s.memory.bytes(),
            s.max_object.bytes(),
            s.storage.as_str(),
            s.x_cache
        ),
        (64 << 20, 1 << 20, "memory", false)
    );
    let p = load(&with_route_extra("    cache: {}\n")).routes[0]
        .cache
        .clone()
        .unwrap();
    assert_eq!(p, CachePolicy::default());
    assert!(p.enabled && p.default_ttl.is_none() && p.heuristic_percent.is_none());
    assert!(p.strip_tags && p.key.consumer.is_none());
    assert_eq!(p.methods, ["GET", "HEAD"]);
}

#[test]
fn every_key_loads() {
    let yaml = format!(
        "{}cache:
  memory: 256MiB
  max_object: 4MiB
  storage: redis://127.0.0.1:6379
  redis_prefix: \"edge:\"
  redis_timeout: 50ms
  x_cache: true
  cdn:
    - name: fastly
      url: https://api.fastly.com/service/SVC/purge
      method: POST
      headers: {{Fastly-Key: k}}
      body: '{{\"surrogate_keys\": {{values}}}}'
      kinds: [tag]
      retries: 5
      timeout: 2s
",
        with_route_extra(
            "    cache:
      default_ttl: 30s
      heuristic_percent: 10
      heuristic_max: 1h
      statuses: [200, 404]
      methods: [GET, HEAD, POST]
      key: {sort_query: true, ignore_params: [utm_source], headers: [accept-language], consumer: false}
      lock_timeout: 2s
      strip_tags: false
"
        )
    );
    let cfg = load(&yaml);
    let s = &cfg.cache;
    assert_eq!(
        (s.memory.bytes(), s.max_object.bytes()),
        (256 << 20, 4 << 20)
    );
    assert_eq!(s.redis_url(), Some("redis://127.0.0.1:6379"));
    assert_eq!(s.cdn[0].kinds, [PurgeKind::Tag]);
    assert_eq!(
        (s.cdn[0].retries, s.cdn[0].headers["Fastly-Key"].as_str()),
        (5, "k")
    );
    let p = cfg.routes[0].cache.as_ref().unwrap();
    assert_eq!(p.statuses.as_deref(), Some(&[200, 404][..]));
    assert_eq!(p.key.ignore_params, ["utm_source"]);
    assert_eq!(
        (p.key.sort_query, p.key.consumer, p.strip_tags),
        (true, Some(false), false)
    );
    assert_eq!(p.heuristic_percent, Some(10));
    assert_eq!(p.methods, ["GET", "HEAD", "POST"]);
}

#[test]
fn bad_store_settings_are_located() {
    let yaml = format!(
        "{}cache:
  memory: 1KiB
  max_object: 0
  storage: memcached://x
  cdn:
    - name: a
      url: ftp://x
      method: purge
      headers: {{\"bad name\": v}}
      kinds: []
      retries: 11
    - name: a
      url: https://x
",
        with_route_extra("")
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 9, "{}", all.join("\n"));
    assert_has(
        &all,
        "11:11",
        "cache.memory",
        "must be at least 64KiB, found 1KiB",
    );
    assert_has(
        &all,
        "12:15",
        "cache.max_object",
        "at most half of `cache.memory`",
    );
    assert_has(
        &all,
        "13:12",
        "cache.storage",
        "expected `memory` or a redis:// or rediss:// URL",
    );
    assert_has(
        &all,
        "16:12",
        "cache.cdn[0].url",
        "expected an absolute http(s) URL",
    );
    assert_has(
        &all,
        "17:15",
        "cache.cdn[0].method",
        "must be upper-case: write `PURGE`",
    );
    assert_has(
        &all,
        "18:16",
        "cache.cdn[0].headers.bad name",
        "invalid header name",
    );
    assert_has(
        &all,
        "19:14",
        "cache.cdn[0].kinds",
        "at least one of tag, url, prefix",
    );
    assert_has(
        &all,
        "20:16",
        "cache.cdn[0].retries",
        "must be at most 10, found 11",
    );
    assert_has(
        &all,
        "21:13",
        "cache.cdn[1].name",
        "duplicate CDN purge endpoint name `a` (first defined at line 15)",
    );
}

#[test]
fn bad_policies_are_located() {
    let yaml = with_route_extra(
        "    cache:
      default_ttl: 0s
      heuristic_percent: 150
      statuses: [200, 206, 304, 99]
      key: {headers: [\"x y\"], ignore_params: [\"a=b\"]}
      lock_timeout: 2m
      ttl: 5s
      methods: [GET, PUT]
",
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 10, "{}", all.join("\n"));
    assert_has(&all, "16:7", "routes[0].cache.ttl", "unknown field `ttl`");
    assert_has(
        &all,
        "17:22",
        "routes[0].cache.methods[1]",
        "method \"PUT\" cannot be cached",
    );
    assert_has(
        &all,
        "11:20",
        "routes[0].cache.default_ttl",
        "must be more than 0",
    );
    assert_has(
        &all,
        "12:26",
        "routes[0].cache.heuristic_percent",
        "between 1 and 100",
    );
    assert_has(
        &all,
        "13:23",
        "routes[0].cache.statuses[1]",
        "status 206 cannot be stored",
    );
    assert_has(
        &all,
        "13:28",
        "routes[0].cache.statuses[2]",
        "status 304 cannot be stored",
    );
    assert_has(
        &all,
        "13:33",
        "routes[0].cache.statuses[3]",
        "status 99 cannot be stored",
    );
    assert_has(
        &all,
        "14:23",
        "routes[0].cache.key.headers[0]",
        "invalid header name",
    );
    assert_has(
        &all,
        "14:47",
        "routes[0].cache.key.ignore_params[0]",
        "invalid query parameter name",
    );
    assert_has(
        &all,
        "15:21",
        "routes[0].cache.lock_timeout",
        "must be at most 60s, found 2m",
    );
}
