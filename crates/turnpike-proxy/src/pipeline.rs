//! The request path, in order. This file is the one place that says what happens to a
//! request and when; `docs/request-path.md` draws it.
//!
//! ```text
//! accept (per-IP caps and bans, listener, TLS/SNI) server.rs, protection
//!  → in-flight count, ban of the client IP         protection::check_ban
//!  → limits (URI, headers, body size, framing)     check_limits
//!  → route match (host, path, method, headers)     Snapshot::route
//!  → load shedding by route priority               protection::shed
//!  → pre-auth (request id, client IP)              serve
//!  → lifecycle (draft 404, retired 410)            access::admit (serve_route)
//!  → IP rules, CORS preflight                      access::admit
//!  → authenticate, authorize (scopes, groups)      access::admit
//!  → rate limits, concurrency slot, quota          access::limit
//!  → request validation (params, JSON body)        validate::request
//!  → request transform (path, forwarding, route,   upstream_headers
//!    consumer identity)                            access::identify
//!  → cache lookup (hit, stale, revalidate, miss   cache::phase::exchange
//!    with coalescing)
//!  → upstream select + forward (timeouts, retries) forward::forward (proxy)
//!  → cache store (tee the body), refresh from 304, cache::complete
//!    stale-if-error, invalidate after unsafe
//!    methods
//!  → response transform (hop-by-hop, Via, route,   downstream_response
//!    CORS)                                         access::decorate
//!  → log (always, also on errors); rejections     handle
//!    count towards bans                            protection::observe
//!  → metrics, access log (at body end)             observe::request_done
//! ```
//!
//! The OAuth server's own endpoints are answered before routing. The concurrency slot is
//! held until the response body ends; an upstream-reported cost is charged once the
//! response headers arrive.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use turnpike_policy::request::ClientCert;
use turnpike_policy::traffic::Granted;

use crate::access::{self, Admission, Admitted};
use crate::body::{RequestBody, ResponseBody};
use crate::cache;
use crate::cache::lookup::CacheRequest;
use crate::cache::phase::Exchanged;
use crate::error::GatewayError;
use crate::forward::{self, Outgoing};
use crate::headers::{self, Hop};
use crate::observe::{self, Seen};
use crate::protection;
use crate::router::Match;
use crate::server::Shared;
use crate::snapshot::{RouteRt, Snapshot};
use crate::trace;
use crate::upgrade;
use crate::upstream::balancer::PickCtx;
use crate::upstream::{Held, Upstream};
use crate::validate;

/// What the pipeline knows about the connection a request came on.
#[derive(Debug)]
pub struct ConnCtx {
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub tls: bool,
    /// The TLS server name the client asked for, lower-case.
    pub sni: Option<Box<str>>,
    /// The verified client certificate (mTLS listeners).
    pub client_cert: Option<ClientCert>,
    /// Held by everything this connection keeps running (itself, WebSocket tunnels), so a
    /// drain waits for all of it.
    pub alive: Alive,
    /// The connection's per-IP slot and first-request flag (`protection`).
    pub guard: crate::protection::ConnGuard,
}

/// A token the listener's drain waits on until every holder is gone.
pub type Alive = tokio::sync::mpsc::Sender<()>;

/// Entry point for every request on every listener.
pub async fn handle(
    conn: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    // The snapshot is read once; the request finishes on it even if a reload happens.
    let snap = conn.shared.snapshot();
    let arrival = observe::Arrival::new(&snap, &req);
    let started = arrival.started;
    let id_header = &snap.server.request_id_header;
    let request_id = req
        .headers()
        .get(id_header)
        .filter(|v| is_sane_request_id(v))
        .cloned()
        .unwrap_or_else(new_request_id);
    let method = req.method().clone();
    // Abuse protection: the in-flight count, a ban check, and afterwards what to learn.
    let load = protection::LoadGuard::enter(&snap, &conn);
    let mut seen = Seen {
        trace: trace::RequestTrace::start(snap.tracer.as_ref(), &req, conn.tls, started),
        ..Seen::default()
    };
    let (served, client_ip) = match protection::check_ban(&snap, &conn, req.headers()) {
        Ok(client_ip) => (
            serve(&snap, &conn, req, &request_id, &mut seen).await,
            client_ip,
        ),
        Err(banned) => (Err(banned), None),
    };
    let mut resp = match served {
        Ok(resp) => resp,
        Err(err) => {
            tracing::debug!(%method, error = %err, "request answered by the gateway");
            seen.error = Some(err.code());
            err.into_response(Some(&request_id))
        }
    };
    protection::observe(&snap, &conn, client_ip, started, &resp);
    observe::request_done(
        &snap,
        (seen, arrival),
        (&request_id, conn.peer.ip()),
        &mut resp,
    );
    if let Some(load) = load {
        resp.body_mut().hold_load(load);
    }
    resp.headers_mut().insert(id_header.clone(), request_id);
    tracing::trace!(%method, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request done");
    Ok(resp)
}

/// What routing found out about a request, for the phases after it.
struct Routed<'s> {
    route: &'s RouteRt,
    matched: Match,
    host: Option<HeaderValue>,
    upgrade: Option<OnUpgrade>,
    client_ip: IpAddr,
}

/// Limits, host checks, the OAuth endpoints and routing; then the route's phases.
async fn serve<'s>(
    snap: &'s Snapshot,
    conn: &ConnCtx,
    mut req: Request<Incoming>,
    request_id: &HeaderValue,
    seen: &mut Seen<'s>,
) -> Result<Response<ResponseBody>, GatewayError> {
    check_limits(snap, &req)?;
    let upgrade = upgrade::is_upgrade_request(&req).then(|| hyper::upgrade::on(&mut req));
    let host_value = client_host(&req);
    let host = host_value
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .map(normalise_host)
        .unwrap_or_default();
    // The certificate was chosen for the SNI name; a request for another host on the same
    // connection must go to a connection made for that host (RFC 9110 §15.5.20).
    if conn.sni.as_deref().is_some_and(|sni| sni != host) {
        return Err(GatewayError::MisdirectedRequest);
    }
    let client_ip = headers::client_ip(conn.peer.ip(), req.headers(), &snap.server.trusted_proxies);
    seen.client_ip = Some(client_ip);
    if let Some(server) = &snap.security.oauth {
        if server.owns_path(req.uri().path()) {
            // Not a route, but the global IP rules ("everywhere") still hold.
            snap.security.ip_rules.check(client_ip)?;
            return Ok(access::oauth_endpoint(&snap.security, server, req).await);
        }
    }
    let (matched, route) = snap
        .route(&host, req.uri().path(), req.method(), req.headers())
        .ok_or(GatewayError::NoRoute)?;
    seen.route = Some(route);
    protection::shed(snap, conn, route.priority)?;
    let routed = Routed {
        route,
        matched,
        host: host_value,
        upgrade,
        client_ip,
    };
    serve_route(snap, conn, req, routed, (request_id, seen)).await
}

/// The route's policy phases (access, limits, validation), then the upstream. A policy's
/// refusal is an answer, with the route's CORS and lifecycle headers.
async fn serve_route<'s>(
    snap: &'s Snapshot,
    conn: &ConnCtx,
    req: Request<Incoming>,
    routed: Routed<'s>,
    (request_id, seen): (&HeaderValue, &mut Seen<'s>),
) -> Result<Response<ResponseBody>, GatewayError> {
    let (route, client_ip) = (routed.route, routed.client_ip);
    seen.trace.route(snap, route, &routed.matched);
    let admit = access::admit(&snap.security, route, conn, &req, client_ip);
    let admitted = match seen.trace.timed("auth", admit).await {
        Ok(Admission::Continue(admitted)) => admitted,
        Ok(Admission::Respond(resp)) => return Ok(*resp),
        Err(err) => {
            seen.error = Some(err.code());
            let admitted = Admitted::from_request(&req);
            return Ok(refusal(err, route, &admitted, request_id));
        }
    };
    seen.consumer = admitted.identity.as_ref().map(|i| i.consumer.clone());
    let limit = access::limit(&snap.traffic, route, &admitted, &req, client_ip);
    let mut granted = match seen.trace.timed("rate_limit", limit).await {
        Ok(granted) => granted,
        Err(err) => {
            seen.error = Some(err.code());
            return Ok(refusal(err, route, &admitted, request_id));
        }
    };
    let req = match validate::request(route, &routed.matched, &snap.server, req).await {
        Ok(req) => req,
        Err(err) => {
            seen.error = Some(err.code());
            return Ok(refusal(err, route, &admitted, request_id));
        }
    };
    let parts = (request_id, &admitted, granted.as_mut(), &mut *seen);
    let mut resp = proxy(snap, conn, req, routed, parts).await?;
    access::decorate(route, &admitted, resp.headers_mut());
    if let Some(g) = granted {
        g.headers.apply(resp.headers_mut());
    }
    Ok(resp)
}

/// Request transform, forward (balancer, timeouts, retries) and response transform.
async fn proxy<'s>(
    snap: &'s Snapshot,
    conn: &ConnCtx,
    req: Request<RequestBody>,
    mut routed: Routed<'s>,
    (request_id, admitted, granted, seen): (
        &HeaderValue,
        &Admitted,
        Option<&mut Granted>,
        &mut Seen<'s>,
    ),
) -> Result<Response<ResponseBody>, GatewayError> {
    let route = routed.route;
    let upstream = &snap.upstreams[route.upstream];
    // The URL the client asked for keys the cache (a cheap, reference-counted copy).
    let client_uri = route.cache.as_ref().map(|_| req.uri().clone());
    let path = req.uri().path();
    let path_and_query = match route.upstream_path(&routed.matched, path) {
        // Unchanged path: share the client's bytes instead of copying them.
        Cow::Borrowed(p) if p.len() == path.len() => req.uri().path_and_query().cloned(),
        new => Some(upstream_path(&new, req.uri().query())?),
    }
    .ok_or(GatewayError::BadRequest("invalid request target"))?;
    let version = req.version();
    let (parts, body) = req.into_parts();
    let mut out = Outgoing {
        method: parts.method,
        path_and_query,
        headers: parts.headers,
        // A caching route still needs the host for its cache key; others hand it over.
        client_host: if route.cache.is_some() {
            routed.host.clone()
        } else {
            routed.host.take()
        },
        upgrade: routed.upgrade.is_some(),
    };
    upstream_headers(snap, conn, route, &mut out, (parts.version, request_id));
    let identity = admitted.identity.as_ref();
    access::identify(
        &snap.security,
        identity,
        &mut out.headers,
        &mut out.path_and_query,
    );
    let hash = upstream.balancer.key_hash(&PickCtx {
        headers: &out.headers,
        client_ip: routed.client_ip,
        path: out.path_and_query.path(),
    });
    seen.trace.inject(&mut out.headers);
    let body = body.metered(&mut seen.request_bytes);
    let asked = Instant::now();
    let phase = seen.trace.phase("upstream");
    let cache_phase = route.cache.as_ref().map(|_| seen.trace.phase("cache"));
    let cached = (client_uri, identity.map(|i| &*i.consumer.name));
    let exchanged = exchange(snap, conn, &routed, cached, (upstream, out, body, hash)).await;
    if let Some(p) = cache_phase {
        let result = [("turnpike.cache.result", cache::result_of(&exchanged))];
        seen.trace.end_with(p, None, &result);
    }
    seen.trace
        .upstream(phase, upstream, trace::exchanged(&exchanged));
    let exchanged = exchanged?;
    let (mut resp, mut held, tee) = match exchanged {
        Exchanged::Stored(resp) => return Ok(downstream_response(snap, route, resp, version)),
        Exchanged::Upstream(resp, held, tee) => (resp, held, tee),
    };
    seen.upstream_time = Some(asked.elapsed());
    seen.target = held.target;
    if let Some(g) = granted {
        snap.traffic
            .charge_reported(g, &route.policies.traffic, resp.headers())
            .await;
        held.permit = g.permit.take();
    }
    let idle = upstream.settings.idle_timeout;
    take_over_upgrade(&mut resp, &mut held, routed.upgrade, (idle, &conn.alive))?;
    let mut resp = resp.map(|b| ResponseBody::upstream(b, idle, held));
    if let Some(tee) = tee {
        resp.body_mut().tee_into(tee);
    }
    Ok(downstream_response(snap, route, resp, version))
}

/// The upstream exchange, through the route's cache when it has one (never for
/// protocol upgrades).
async fn exchange(
    snap: &Snapshot,
    conn: &ConnCtx,
    routed: &Routed<'_>,
    (client_uri, consumer): (Option<http::Uri>, Option<&str>),
    (upstream, out, body, hash): (&Arc<Upstream>, Outgoing, RequestBody, Option<u64>),
) -> Result<Exchanged, GatewayError> {
    if let (Some(rc), Some(uri), None) = (&routed.route.cache, client_uri, &routed.upgrade) {
        let host = routed.host.as_ref().and_then(|h| h.to_str().ok());
        let host = host.map(normalise_host).unwrap_or_default();
        let req = CacheRequest {
            scheme: if conn.tls { "https" } else { "http" },
            host: &host,
            path: uri.path(),
            query: uri.query(),
            consumer,
            body: None,
        };
        // Boxed: the cache phase's future is the largest on the path, and inline it would
        // be moved with every request's, routes without a cache included.
        let cached = cache::phase::exchange((&snap.cache, rc), req, (upstream, out, body, hash));
        return Box::pin(cached).await;
    }
    let (resp, held) = forward::forward(upstream, out, body, hash).await?;
    Ok(Exchanged::Upstream(resp, held, None))
}

/// A policy's refusal, with the CORS headers a browser needs to read it.
fn refusal(
    err: GatewayError,
    route: &crate::snapshot::RouteRt,
    admitted: &Admitted,
    request_id: &HeaderValue,
) -> Response<ResponseBody> {
    let mut resp = err.into_response(Some(request_id));
    access::decorate(route, admitted, resp.headers_mut());
    resp
}

/// The host the client asked for: the absolute-form or HTTP/2 authority, else `Host`.
fn client_host(req: &Request<Incoming>) -> Option<HeaderValue> {
    let authority = req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    authority.or_else(|| req.headers().get(header::HOST).cloned())
}

/// A 101 hands both connections to a tunnel (which stays counted while it lasts); any
/// other response loses its hop-by-hop headers.
fn take_over_upgrade(
    resp: &mut Response<Incoming>,
    held: &mut Held,
    upgrade: Option<OnUpgrade>,
    (idle, alive): (std::time::Duration, &Alive),
) -> Result<(), GatewayError> {
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        headers::strip_hop_by_hop(resp.headers_mut(), false);
        return Ok(());
    }
    // A 101 the client did not ask for would leave its connection in no known state.
    let client_side = upgrade.ok_or(GatewayError::UpstreamProtocol)?;
    held.lease = None;
    upgrade::splice(
        client_side,
        hyper::upgrade::on(resp),
        idle,
        held.in_flight.take(),
        alive.clone(),
    );
    Ok(())
}

/// Rejects what must never reach an upstream; cheap checks before any routing work.
fn check_limits(snap: &Snapshot, req: &Request<Incoming>) -> Result<(), GatewayError> {
    let limits = &snap.server;
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri_length {
        return Err(GatewayError::UriTooLong);
    }
    if req.headers().len() > limits.max_headers {
        return Err(GatewayError::TooManyHeaders);
    }
    let headers = req.headers();
    if headers.contains_key(header::TRANSFER_ENCODING)
        && headers.contains_key(header::CONTENT_LENGTH)
    {
        // Both framings at once is how request smuggling starts (RFC 9112 §6.3).
        return Err(GatewayError::BadRequest(
            "both Content-Length and Transfer-Encoding are present",
        ));
    }
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        if lengths.any(|other| other != first) {
            return Err(GatewayError::BadRequest(
                "conflicting Content-Length values",
            ));
        }
        let len: u64 = first
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(GatewayError::BadRequest("invalid Content-Length"))?;
        if len > limits.max_body_bytes {
            return Err(GatewayError::BodyTooLarge);
        }
    }
    check_target(req)
}

/// The request target and Host must be unambiguous: what the router sees is what the
/// upstream acts on.
fn check_target(req: &Request<Incoming>) -> Result<(), GatewayError> {
    let path = req.uri().path();
    if !path.starts_with('/') {
        return Err(GatewayError::BadRequest(
            "request target must be an absolute path",
        ));
    }
    // `/public/../admin` would match `/public` here and be `/admin` upstream.
    if path.split('/').any(is_dot_segment) {
        return Err(GatewayError::BadRequest(
            "the path contains a `.` or `..` segment",
        ));
    }
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Err(GatewayError::BadRequest("more than one Host header"));
    }
    let authority = req.uri().authority();
    if hosts == 0 && authority.is_none() && req.version() == Version::HTTP_11 {
        return Err(GatewayError::BadRequest("the Host header is missing"));
    }
    if authority.is_some_and(|a| a.as_str().contains('@')) {
        return Err(GatewayError::BadRequest(
            "the request target carries user information",
        ));
    }
    Ok(())
}

/// `.` or `..`, also percent-encoded (`%2e`, `.%2E`, ...).
fn is_dot_segment(segment: &str) -> bool {
    if segment.is_empty() || segment.len() > 6 {
        return false;
    }
    let mut rest = segment;
    let mut dots = 0;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else if rest
            .as_bytes()
            .get(..3)
            .is_some_and(|b| b.eq_ignore_ascii_case(b"%2e"))
        {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots <= 2
}

/// Lower-case host without port; allocates only when the client used capitals.
fn normalise_host(host: &str) -> Cow<'_, str> {
    let bare = match host.strip_prefix('[') {
        // IPv6 literal: keep the brackets, drop what follows them.
        Some(rest) => rest.find(']').map_or(host, |i| &host[..i + 2]),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    if bare.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(bare.to_ascii_lowercase())
    } else {
        Cow::Borrowed(bare)
    }
}

fn upstream_path(path: &str, query: Option<&str>) -> Result<PathAndQuery, GatewayError> {
    let pq = match query {
        Some(q) => PathAndQuery::try_from(format!("{path}?{q}")),
        None => PathAndQuery::try_from(path),
    };
    pq.map_err(|_| GatewayError::BadRequest("invalid request target"))
}

/// The request headers as the upstream gets them: hop-by-hop removed, this hop's
/// forwarding headers, `Via` and the request id added, then the route's own edits.
fn upstream_headers(
    snap: &Snapshot,
    conn: &ConnCtx,
    route: &crate::snapshot::RouteRt,
    out: &mut Outgoing,
    (version, request_id): (Version, &HeaderValue),
) {
    let headers = &mut out.headers;
    headers::strip_hop_by_hop(headers, out.upgrade);
    let trusted_peer = headers::is_trusted(conn.peer.ip(), &snap.server.trusted_proxies);
    let proto = if conn.tls { "https" } else { "http" };
    let hop = Hop {
        peer: conn.peer.ip(),
        trusted_peer,
        proto,
        host: out.client_host.as_ref(),
    };
    headers::add_forwarded(headers, &hop);
    if snap.server.via {
        headers::add_via(headers, version);
    }
    headers.insert(snap.server.request_id_header.clone(), request_id.clone());
    route.request_headers.apply(headers);
}

fn downstream_response(
    snap: &Snapshot,
    route: &crate::snapshot::RouteRt,
    resp: Response<ResponseBody>,
    client_version: Version,
) -> Response<ResponseBody> {
    let (mut parts, body) = resp.into_parts();
    if snap.server.via {
        headers::add_via(&mut parts.headers, parts.version);
    }
    route.response_headers.apply(&mut parts.headers);
    parts.version = client_version;
    Response::from_parts(parts, body)
}

/// A client's own request id is kept only if it is short and plain, so ids in logs and
/// upstream headers cannot be used to inject or bloat them.
fn is_sane_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
}

/// 128 random bits as 32 hex digits.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    let n = fastrand::u128(..);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((n >> (i * 4)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
}
