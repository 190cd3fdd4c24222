//! Sending a request upstream: target choice, per-attempt timeouts, retries within the
//! budget, and the health bookkeeping of every attempt.
//!
//! When retries happen:
//! - a request the upstream never received (no connection, or a pooled connection that
//!   closed before the request was written) goes to another target, whatever its method;
//! - after the upstream received it (error, timeout, or a status in `on_statuses`), only an
//!   idempotent request with an empty body is sent again, since nothing else can be
//!   repeated safely or at all.

use std::time::Instant;

use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version, header};
use hyper::body::Incoming;
use turnpike_config::model::HostHeader;

use crate::body::{RequestBody, is_body_too_large};
use crate::error::GatewayError;
use crate::upstream::health::is_failure_status;
use crate::upstream::pool::{self, ConnSettings, Lease, PoolKey, SendFailure};
use crate::upstream::{InFlight, Upstream};

/// The parts of the upstream request that stay the same across attempts.
#[derive(Debug)]
pub struct Outgoing {
    pub method: Method,
    pub path_and_query: PathAndQuery,
    pub headers: HeaderMap,
    /// The client's Host (or `:authority`), for `host_header: preserve`.
    pub client_host: Option<HeaderValue>,
    /// A protocol upgrade (WebSocket): always sent as HTTP/1.1, since HTTP/2 has no
    /// `Upgrade` and an `http2` upstream would see a plain GET.
    pub upgrade: bool,
}

/// Most targets one request tries (first attempt plus retries).
const MAX_TRIED: usize = 8;

/// The upstream's response head and, for HTTP/1.1, the connection to give back once the
/// body has been read.
pub type Exchange = (Response<Incoming>, Option<Lease>);

/// Sends `out` to `up` and returns the upstream's response head.
pub async fn forward(
    up: &Upstream,
    mut out: Outgoing,
    body: RequestBody,
    hash: Option<u64>,
) -> Result<Exchange, GatewayError> {
    let settings = &up.settings;
    let deadline = tokio::time::Instant::now() + settings.total_timeout;
    // Only these can be built again after the upstream has seen them.
    let resendable = is_idempotent(&out.method) && http_body::Body::is_end_stream(&body);
    let max_attempts = 1 + settings.retry_attempts.min(MAX_TRIED as u32 - 1) as usize;
    up.budget.deposit();
    let mut tried = [usize::MAX; MAX_TRIED];
    let mut last_err = GatewayError::NoHealthyTarget;
    let mut last_resp = None;
    let mut body = Some(body);
    let mut unsent: Option<Request<RequestBody>> = None;
    for attempt in 0..max_attempts {
        if attempt > 0 && !up.budget.withdraw() {
            break;
        }
        if up.breaker.as_ref().is_some_and(|b| !b.allow()) {
            return Err(GatewayError::CircuitOpen);
        }
        let Some(idx) = pick(up, hash, &tried[..attempt]) else {
            break;
        };
        tried[attempt] = idx;
        let last = attempt + 1 == max_attempts;
        let mut req = match (unsent.take(), body.take()) {
            (Some(req), _) => req,
            (None, Some(first)) if resendable && !last => {
                new_request(&out.method, out.headers.clone(), first)
            }
            (None, Some(first)) => {
                new_request(&out.method, std::mem::take(&mut out.headers), first)
            }
            (None, None) if resendable => {
                new_request(&out.method, out.headers.clone(), RequestBody::empty())
            }
            (None, None) => break,
        };
        let http2 = settings.http2 && !out.upgrade;
        address(&mut req, up, idx, &out, http2)?;
        match attempt_once(up, idx, req, http2, deadline).await {
            Ok((resp, lease)) => {
                if is_failure_status(resp.status(), &settings.retry_statuses) && resendable && !last
                {
                    last_resp = Some((resp, lease));
                    continue;
                }
                return Ok((resp, lease));
            }
            Err(Failure::BodyTooLarge) => return Err(GatewayError::BodyTooLarge),
            Err(Failure::Unsent(err, req)) => {
                last_err = err;
                unsent = Some(*req);
            }
            Err(Failure::Sent(err)) => {
                last_err = err;
                if !resendable
                    || (err == GatewayError::UpstreamTimeout
                        && tokio::time::Instant::now() >= deadline)
                {
                    break;
                }
            }
        }
    }
    last_resp.ok_or(last_err)
}

/// Another target when there is one; the same one again when it is all we have.
fn pick(up: &Upstream, hash: Option<u64>, tried: &[usize]) -> Option<usize> {
    let picked = up.balancer.pick(&up.targets, hash, tried);
    picked.or_else(|| {
        (!tried.is_empty())
            .then(|| up.balancer.pick(&up.targets, hash, &[]))
            .flatten()
    })
}

enum Failure {
    BodyTooLarge,
    /// The upstream never saw the request; here it is back.
    Unsent(GatewayError, Box<Request<RequestBody>>),
    Sent(GatewayError),
}

/// One exchange with target `idx`, with the first-byte timeout and health bookkeeping.
async fn attempt_once(
    up: &Upstream,
    idx: usize,
    req: Request<RequestBody>,
    http2: bool,
    deadline: tokio::time::Instant,
) -> Result<Exchange, Failure> {
    let settings = &up.settings;
    let target = &up.targets[idx];
    let key = PoolKey {
        https: target.scheme == Scheme::HTTPS,
        authority: target.authority.clone(),
        http2,
    };
    let conn = ConnSettings {
        connect_timeout: settings.connect_timeout,
        idle_timeout: settings.pool_idle_timeout,
        max_idle: settings.pool_max_idle,
    };
    let _in_flight = up
        .balancer
        .uses_in_flight()
        .then(|| InFlight::new(&target.state));
    let started = up.balancer.uses_latency().then(Instant::now);
    let limit = deadline.min(tokio::time::Instant::now() + settings.first_byte_timeout);
    let result = tokio::time::timeout_at(limit, pool::send(&key, conn, req)).await;
    let failure = match result {
        Ok(Ok(exchange)) => {
            let failed = is_failure_status(exchange.0.status(), &settings.retry_statuses);
            up.record(idx, !failed, started.map(|s| s.elapsed()));
            return Ok(exchange);
        }
        Ok(Err(SendFailure { error, .. })) if is_body_too_large(&error) => {
            return Err(Failure::BodyTooLarge);
        }
        Ok(Err(SendFailure { error, unsent })) => {
            tracing::debug!(upstream = &*up.name, target = &*target.url, %error, "upstream attempt failed");
            match unsent {
                Some(req) => Failure::Unsent(GatewayError::UpstreamUnreachable, Box::new(req)),
                None if error.is_connect() => Failure::Sent(GatewayError::UpstreamUnreachable),
                None => Failure::Sent(GatewayError::UpstreamProtocol),
            }
        }
        Err(_elapsed) => Failure::Sent(GatewayError::UpstreamTimeout),
    };
    up.record(idx, false, None);
    Err(failure)
}

fn new_request(method: &Method, headers: HeaderMap, body: RequestBody) -> Request<RequestBody> {
    let mut req = Request::new(body);
    *req.method_mut() = method.clone();
    *req.headers_mut() = headers;
    req
}

/// Points `req` at target `idx`: URI form, version and Host for that target.
fn address(
    req: &mut Request<RequestBody>,
    up: &Upstream,
    idx: usize,
    out: &Outgoing,
    http2: bool,
) -> Result<(), GatewayError> {
    let target = &up.targets[idx];
    // HTTP/1.1 sends origin-form; HTTP/2 needs scheme and authority for its pseudo-headers.
    let uri = if http2 {
        Uri::builder()
            .scheme(target.scheme.clone())
            .authority(target.authority.clone())
            .path_and_query(out.path_and_query.clone())
            .build()
            .map_err(|_| GatewayError::BadRequest("request target cannot be forwarded"))?
    } else {
        Uri::from(out.path_and_query.clone())
    };
    let host = match &up.settings.host_header {
        HostHeader::Preserve => out
            .client_host
            .clone()
            .unwrap_or_else(|| target.host_value.clone()),
        HostHeader::Target => target.host_value.clone(),
        HostHeader::Fixed(_) => up
            .settings
            .fixed_host
            .clone()
            .unwrap_or_else(|| target.host_value.clone()),
    };
    req.headers_mut().insert(header::HOST, host);
    *req.uri_mut() = uri;
    *req.version_mut() = if http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    Ok(())
}

/// RFC 9110 §9.2.2.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}
