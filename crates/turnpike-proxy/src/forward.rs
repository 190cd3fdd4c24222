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

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version, header};
use hyper::body::Incoming;
use turnpike_config::model::HostHeader;

use crate::body::{RequestBody, is_body_too_large, is_body_too_slow};
use crate::error::GatewayError;
use crate::upstream::health::is_failure_status;
use crate::upstream::pool::{self, ConnSettings, PoolKey, SendFailure};
use crate::upstream::{Held, InFlight, Upstream};

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
pub type Exchange = (Response<Incoming>, Held);

/// Sends `out` to `up` and returns the upstream's response head.
pub async fn forward(
    up: &Upstream,
    out: Outgoing,
    body: RequestBody,
    hash: Option<u64>,
) -> Result<Exchange, GatewayError> {
    let settings = &up.settings;
    let deadline = tokio::time::Instant::now() + settings.total_timeout;
    // Only these can be built again after the upstream has seen them.
    let resendable = is_idempotent(&out.method) && http_body::Body::is_end_stream(&body);
    let max_attempts = 1 + settings.retry_attempts.min(MAX_TRIED as u32 - 1) as usize;
    up.budget.deposit();
    let mut requests = Requests {
        out,
        body: Some(body),
        unsent: None,
        resendable,
    };
    let mut tried = [usize::MAX; MAX_TRIED];
    let mut last_err = GatewayError::NoHealthyTarget;
    let mut last_resp = None;
    for attempt in 0..max_attempts {
        if attempt > 0 && (tokio::time::Instant::now() >= deadline || !up.budget.withdraw()) {
            break;
        }
        if up.breaker.as_ref().is_some_and(|b| !b.allow()) {
            last_err = GatewayError::CircuitOpen;
            break;
        }
        let Some(idx) = pick(up, hash, &tried[..attempt]) else {
            break;
        };
        tried[attempt] = idx;
        let last = attempt + 1 == max_attempts;
        let Some(mut req) = requests.next(last) else {
            break;
        };
        let http2 = settings.http2 && !requests.out.upgrade;
        address(&mut req, up, idx, &requests.out, http2)?;
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
            Err(Failure::BodyTooSlow) => return Err(GatewayError::RequestTimeout),
            Err(Failure::Unsent(err, req)) => {
                last_err = err;
                requests.unsent = Some(*req);
            }
            Err(Failure::Sent(err)) => last_err = err,
        }
    }
    // A real upstream answer beats a gateway-made error.
    last_resp.ok_or(last_err)
}

/// Where each attempt's request comes from: the one an earlier attempt got back unsent,
/// the client's own, or, for resendable requests, a copy.
struct Requests {
    out: Outgoing,
    body: Option<RequestBody>,
    unsent: Option<Request<RequestBody>>,
    resendable: bool,
}

impl Requests {
    fn next(&mut self, last: bool) -> Option<Request<RequestBody>> {
        if let Some(req) = self.unsent.take() {
            return Some(req);
        }
        let headers = match (self.resendable, last) {
            (true, false) => self.out.headers.clone(),
            (true, true) => std::mem::take(&mut self.out.headers),
            // Sent once already and not repeatable.
            (false, _) if self.body.is_none() => return None,
            (false, _) => std::mem::take(&mut self.out.headers),
        };
        let body = self.body.take().unwrap_or_else(RequestBody::empty);
        let mut req = Request::new(body);
        *req.method_mut() = self.out.method.clone();
        *req.headers_mut() = headers;
        Some(req)
    }
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
    /// The client's body stalled or crawled: its fault, not the target's.
    BodyTooSlow,
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
        tls: up.tls.clone(),
    };
    let conn = ConnSettings {
        connect_timeout: settings.connect_timeout,
        idle_timeout: settings.pool_idle_timeout,
        max_idle: settings.pool_max_idle,
    };
    let in_flight = up
        .balancer
        .uses_in_flight()
        .then(|| InFlight::new(&target.state));
    let started = up.balancer.uses_latency().then(Instant::now);
    let limit = deadline.min(tokio::time::Instant::now() + settings.first_byte_timeout);
    let result = tokio::time::timeout_at(limit, pool::send(&key, conn, req)).await;
    let failure = match result {
        Ok(Ok((resp, lease))) => {
            let failed = is_failure_status(resp.status(), &settings.retry_statuses);
            up.record(idx, !failed, started.map(|s| s.elapsed()));
            return Ok((
                resp,
                Held {
                    lease,
                    in_flight,
                    permit: None,
                    target: Some(idx),
                },
            ));
        }
        Ok(Err(SendFailure { error, .. })) if is_body_too_large(&error) => {
            return Err(Failure::BodyTooLarge);
        }
        Ok(Err(SendFailure { error, .. })) if is_body_too_slow(&error) => {
            return Err(Failure::BodyTooSlow);
        }
        Ok(Err(SendFailure { error, unsent })) => {
            tracing::debug!(upstream = &*up.name, target = &*target.url, %error, "upstream attempt failed");
            match unsent {
                Some(req) => Failure::Unsent(GatewayError::UpstreamUnreachable, req),
                None => Failure::Sent(GatewayError::UpstreamProtocol),
            }
        }
        Err(_elapsed) => Failure::Sent(GatewayError::UpstreamTimeout),
    };
    up.record(idx, false, None);
    Err(failure)
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
    let host = match &up.settings.host_header {
        HostHeader::Preserve => out.client_host.as_ref().unwrap_or(&target.host_value),
        HostHeader::Target => &target.host_value,
        HostHeader::Fixed(_) => up
            .settings
            .fixed_host
            .as_ref()
            .unwrap_or(&target.host_value),
    };
    if http2 {
        // HTTP/2 carries the host in `:authority` (from the URI); a differing `Host` is
        // forbidden (RFC 9113 §8.3.1), so send none. The connection is still the target's.
        let authority =
            Authority::try_from(host.as_bytes()).unwrap_or_else(|_| target.authority.clone());
        let uri = Uri::builder()
            .scheme(target.scheme.clone())
            .authority(authority)
            .path_and_query(out.path_and_query.clone())
            .build()
            .map_err(|_| GatewayError::BadRequest("request target cannot be forwarded"))?;
        req.headers_mut().remove(header::HOST);
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_2;
    } else {
        // HTTP/1.1 sends origin-form and the Host header.
        req.headers_mut().insert(header::HOST, host.clone());
        *req.uri_mut() = Uri::from(out.path_and_query.clone());
        *req.version_mut() = Version::HTTP_11;
    }
    Ok(())
}

/// RFC 9110 §9.2.2.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}
