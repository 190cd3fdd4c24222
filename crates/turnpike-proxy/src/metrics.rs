//! `/metrics`: the request registry plus what is read at scrape time only (target health
//! and in-flight counts, protection and Redis counters, config version and reloads), and
//! the optional listener of its own (`metrics.listen`) for gateways without an admin API.
//!
//! Nothing here runs per request: gauges are read from the atomics the data plane keeps
//! anyway. `docs/observability.md` lists every family.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use turnpike_analytics::Encoder;
use turnpike_analytics::encode::{CONTENT_TYPE, Kind};
use turnpike_config::Config;

use crate::server::{Shared, StartError};
use crate::snapshot::Snapshot;
use crate::upstream::now_ms;

/// The whole exposition. `store_up` is the config store's reachability when an admin
/// API with a store runs (it is the admin's to know).
pub fn render(shared: &Shared, store_up: Option<bool>) -> String {
    let snap = shared.snapshot();
    let mut e = Encoder::new();
    e.family("turnpike_build", Kind::Info, "Turnpike's version.");
    e.sample(
        "turnpike_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    snap.metrics.encode(&mut e);
    targets(&mut e, &snap);
    protection(&mut e, shared);
    redis(&mut e, &snap);
    cache(&mut e, &snap);
    crate::trace::encode_metrics(&mut e, &snap);
    config(&mut e, &snap);
    // The family is always there (dashboards can rely on it); the sample only with a store.
    e.family("turnpike_store_up", Kind::Gauge, "1 when the config store answered the change feed's last poll (admin API with a store only).");
    if let Some(up) = store_up {
        e.sample("turnpike_store_up", &[], u8::from(up));
    }
    e.finish()
}

fn targets(e: &mut Encoder, snap: &Snapshot) {
    e.family(
        "turnpike_upstream_target_up",
        Kind::Gauge,
        "1 when the target takes traffic (not down by active checks, not ejected).",
    );
    let now = now_ms();
    for up in &snap.upstreams {
        for t in &up.targets {
            let labels = [("service", &*up.name), ("target", &*t.url)];
            e.sample(
                "turnpike_upstream_target_up",
                &labels,
                u8::from(t.available(|| now)),
            );
        }
    }
    e.family("turnpike_upstream_pool_idle_connections", Kind::Gauge, "Idle HTTP/1.1 connections kept for reuse, per upstream scheme and authority, over all workers (reported by each worker once a second).");
    let pools = crate::upstream::pool_gauges::totals();
    for ((scheme, authority), (idle, _)) in &pools {
        let labels = [("scheme", *scheme), ("authority", authority.as_str())];
        e.sample("turnpike_upstream_pool_idle_connections", &labels, idle);
    }
    e.family(
        "turnpike_upstream_pool_h2_connections",
        Kind::Gauge,
        "Open shared HTTP/2 connections per upstream scheme and authority, over all workers.",
    );
    for ((scheme, authority), (_, h2)) in &pools {
        let labels = [("scheme", *scheme), ("authority", authority.as_str())];
        e.sample("turnpike_upstream_pool_h2_connections", &labels, h2);
    }
    e.family("turnpike_upstream_target_in_flight", Kind::Gauge, "Requests in flight per target (tracked by least-connections and latency-aware balancers only).");
    for up in snap
        .upstreams
        .iter()
        .filter(|u| u.balancer.uses_in_flight())
    {
        for t in &up.targets {
            let labels = [("service", &*up.name), ("target", &*t.url)];
            let n = t.state.in_flight.load(Ordering::Relaxed);
            e.sample("turnpike_upstream_target_in_flight", &labels, n);
        }
    }
}

/// Response-cache results per route, what the store holds, and CDN purges sent.
fn cache(e: &mut Encoder, snap: &Snapshot) {
    let name = "turnpike_cache_requests";
    e.family(name, Kind::Counter, "Requests on caching routes, by how the cache served them: hit, stale (stale-while-revalidate or stale-if-error), revalidated (304 from the upstream), miss, bypass.");
    let all = snap.cache.all_counters();
    for (route, c) in &all {
        for (result, n) in [
            ("hit", &c.hit),
            ("stale", &c.stale),
            ("revalidated", &c.revalidated),
            ("miss", &c.miss),
            ("bypass", &c.bypass),
        ] {
            let labels = [("route", &**route), ("result", result)];
            e.counter(name, &labels, n.load(Ordering::Relaxed));
        }
    }
    for (name, help, pick) in [
        ("turnpike_cache_stored", "Responses stored in the cache.", 0),
        (
            "turnpike_cache_coalesced",
            "Requests that waited for an identical request's upstream fetch instead of making their own.",
            1,
        ),
    ] {
        e.family(name, Kind::Counter, help);
        for (route, c) in &all {
            let n = if pick == 0 { &c.stored } else { &c.coalesced };
            e.counter(name, &[("route", &**route)], n.load(Ordering::Relaxed));
        }
    }
    let (bytes, objects) = snap.cache.usage();
    e.family(
        "turnpike_cache_bytes",
        Kind::Gauge,
        "Bytes the memory cache holds (keys, heads and bodies).",
    );
    e.sample("turnpike_cache_bytes", &[], bytes);
    e.family(
        "turnpike_cache_objects",
        Kind::Gauge,
        "Objects the memory cache holds (variant markers included).",
    );
    e.sample("turnpike_cache_objects", &[], objects);
    e.family(
        "turnpike_cache_redis_up",
        Kind::Gauge,
        "1 when the shared cache store (cache.storage on Redis) answers; no sample without one.",
    );
    if snap.cache.l2.is_some() {
        e.sample(
            "turnpike_cache_redis_up",
            &[],
            u8::from(snap.cache.shared_up()),
        );
    }
    let name = "turnpike_cache_cdn_purges";
    e.family(
        name,
        Kind::Counter,
        "Purge requests sent to CDN endpoints, by result (after retries).",
    );
    let counts = &snap.cache.cdn.counts;
    e.counter(
        name,
        &[("result", "ok")],
        counts.sent.load(Ordering::Relaxed),
    );
    e.counter(
        name,
        &[("result", "failed")],
        counts.failed.load(Ordering::Relaxed),
    );
}

fn protection(e: &mut Encoder, shared: &Shared) {
    let c = shared.protection().counts();
    let counters: [(&str, &str, u64); 5] = [
        (
            "turnpike_bans",
            "Temporary bans applied to client IPs.",
            c.bans_applied,
        ),
        (
            "turnpike_banned_requests",
            "Requests refused with 403 banned.",
            c.banned_requests,
        ),
        (
            "turnpike_shed_requests",
            "Requests refused with 503 overloaded by load shedding.",
            c.requests_shed,
        ),
        (
            "turnpike_slow_clients",
            "Connections or requests cut for being too slow.",
            c.slow_clients_cut,
        ),
        (
            "turnpike_access_log_dropped",
            "Access-log lines dropped because the writer fell behind.",
            shared
                .snapshot()
                .metrics
                .access_log_dropped
                .load(Ordering::Relaxed),
        ),
    ];
    for (name, help, n) in counters {
        e.family(name, Kind::Counter, help);
        e.counter(name, &[], n);
    }
    let name = "turnpike_connections_refused";
    e.family(
        name,
        Kind::Counter,
        "Connections closed at accept, by reason.",
    );
    e.counter(
        name,
        &[("reason", "per_ip_limit")],
        c.connections_refused_per_ip,
    );
    e.counter(name, &[("reason", "rate")], c.connections_rate_limited);
    e.counter(name, &[("reason", "banned")], c.connections_refused_banned);
    e.family(
        "turnpike_in_flight_requests",
        Kind::Gauge,
        "Requests in flight (counted while load shedding is configured).",
    );
    e.sample("turnpike_in_flight_requests", &[], c.in_flight);
}

fn redis(e: &mut Encoder, snap: &Snapshot) {
    let limiter = &snap.traffic.state.limiter;
    let s = limiter.stats().snapshot();
    e.family(
        "turnpike_redis_up",
        Kind::Gauge,
        "1 when rate-limit checks reach Redis (only with traffic.state on Redis).",
    );
    if limiter.is_redis() {
        e.sample("turnpike_redis_up", &[], u8::from(limiter.is_ready()));
    }
    e.family(
        "turnpike_redis_errors",
        Kind::Counter,
        "Redis commands that failed or timed out.",
    );
    e.counter("turnpike_redis_errors", &[], s.redis_errors);
    e.family(
        "turnpike_redis_fallbacks",
        Kind::Counter,
        "Rate-limit checks answered from memory because Redis was unavailable (fail open).",
    );
    e.counter("turnpike_redis_fallbacks", &[], s.fallbacks);
}

fn config(e: &mut Encoder, snap: &Snapshot) {
    e.family(
        "turnpike_config_version",
        Kind::Gauge,
        "The config version serving now (1 at start, +1 per applied reload).",
    );
    e.sample("turnpike_config_version", &[], snap.version);
    let name = "turnpike_config_reloads";
    e.family(
        name,
        Kind::Counter,
        "Config reloads, by result (a failed one keeps the old config serving).",
    );
    e.counter(
        name,
        &[("result", "success")],
        snap.metrics.reloads_ok.load(Ordering::Relaxed),
    );
    e.counter(
        name,
        &[("result", "failure")],
        snap.metrics.reloads_failed.load(Ordering::Relaxed),
    );
}

/// Binds `metrics.listen` (it cannot change on reload) and serves `/metrics` on the
/// control runtime, away from the proxy's workers.
pub(crate) fn start_listener(
    cfg: &Config,
    shared: &Arc<Shared>,
) -> Result<Option<SocketAddr>, StartError> {
    let Some(address) = cfg.metrics.listen else {
        return Ok(None);
    };
    let bind_err = |source| StartError::Bind {
        listener: "metrics".to_owned(),
        address,
        source,
    };
    let std_listener = std::net::TcpListener::bind(address).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let actual = std_listener.local_addr().map_err(bind_err)?;
    let listener = {
        let _entered = shared.control().enter();
        TcpListener::from_std(std_listener).map_err(bind_err)?
    };
    shared.control().spawn(serve(listener, shared.clone()));
    Ok(Some(actual))
}

/// Serves `GET /metrics` on `listener` until the control runtime stops.
async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "metrics connection ended with an error");
            }
        });
    }
}

fn answer(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, CONTENT_TYPE, render(shared, None)),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "only /metrics is served here\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ctype));
    resp
}
