//! Sending a request upstream: target choice, per-attempt timeouts, retries within the
//! budget, and the health bookkeeping of every attempt.
//!
//! A request is retried only when its body is empty (nothing was consumed that could not
//! be sent again) and either it is idempotent or the attempt failed to connect.

use std::time::Instant;

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version, header};
use hyper::body::Incoming;

use crate::body::{RequestBody, is_body_too_large};
use crate::error::GatewayError;
use crate::upstream::health::is_failure_status;
use crate::upstream::{InFlight, Upstream, client};
use turnpike_config::model::HostHeader;

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

/// Sends `out` to `up` and returns the upstream's response head.
pub async fn forward(
    up: &Upstream,
    mut out: Outgoing,
    mut body: Option<RequestBody>,
    hash: Option<u64>,
) -> Result<Response<Incoming>, GatewayError> {
    let settings = &up.settings;
    let deadline = tokio::time::Instant::now() + settings.total_timeout;
    let empty_body = body.as_ref().is_none_or(http_body::Body::is_end_stream);
    let idempotent = is_idempotent(&out.method);
    let max_attempts = if empty_body {
        1 + settings.retry_attempts.min(MAX_TRIED as u32 - 1)
    } else {
        1
    } as usize;
    up.budget.deposit();
    let mut tried = [usize::MAX; MAX_TRIED];
    let mut last_err = GatewayError::NoHealthyTarget;
    // A retryable failure response, returned as is if no retry does better.
    let mut last_resp = None;
    for attempt in 0..max_attempts {
        if attempt > 0 && !up.budget.withdraw() {
            break;
        }
        if up.breaker.as_ref().is_some_and(|b| !b.allow()) {
            return Err(GatewayError::CircuitOpen);
        }
        // Another target when there is one; the same one again when it is all we have.
        let picked = up.balancer.pick(&up.targets, hash, &tried[..attempt]);
        let Some(idx) = picked.or_else(|| {
            (attempt > 0)
                .then(|| up.balancer.pick(&up.targets, hash, &[]))
                .flatten()
        }) else {
            break;
        };
        tried[attempt] = idx;
        let last = attempt + 1 == max_attempts;
        let headers = if last {
            std::mem::take(&mut out.headers)
        } else {
            out.headers.clone()
        };
        let req_body = body.take().unwrap_or_else(RequestBody::empty);
        let http2 = settings.http2 && !out.upgrade;
        let req = build_request(up, idx, &out, headers, req_body, http2)?;
        let _in_flight = up
            .balancer
            .uses_in_flight()
            .then(|| InFlight::new(&up.targets[idx].state));
        let started = up.balancer.uses_latency().then(Instant::now);
        let limit = deadline.min(tokio::time::Instant::now() + settings.first_byte_timeout);
        let sent = client::send(settings, http2, req).map_err(|err| {
            tracing::error!(error = %err, "no TLS client configuration for upstreams");
            GatewayError::UpstreamUnreachable
        })?;
        let result = tokio::time::timeout_at(limit, sent).await;
        match result {
            Ok(Ok(resp)) => {
                let failed = is_failure_status(resp.status(), &settings.retry_statuses);
                up.record(idx, !failed, started.map(|s| s.elapsed()));
                if failed && idempotent && !last {
                    last_resp = Some(resp);
                    continue;
                }
                return Ok(resp);
            }
            Ok(Err(err)) => {
                if is_body_too_large(&err) {
                    return Err(GatewayError::BodyTooLarge);
                }
                up.record(idx, false, None);
                let connect = err.is_connect();
                tracing::debug!(upstream = &*up.name, target = &*up.targets[idx].url, error = %err, "upstream attempt failed");
                last_err = if connect {
                    GatewayError::UpstreamUnreachable
                } else {
                    GatewayError::UpstreamProtocol
                };
                if !(connect || idempotent) {
                    break;
                }
            }
            Err(_elapsed) => {
                up.record(idx, false, None);
                last_err = GatewayError::UpstreamTimeout;
                if !idempotent || tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
        }
    }
    last_resp.ok_or(last_err)
}

fn build_request(
    up: &Upstream,
    idx: usize,
    out: &Outgoing,
    mut headers: HeaderMap,
    body: RequestBody,
    http2: bool,
) -> Result<Request<RequestBody>, GatewayError> {
    let target = &up.targets[idx];
    let uri = Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(out.path_and_query.clone())
        .build()
        .map_err(|_| GatewayError::BadRequest("request target cannot be forwarded"))?;
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
    headers.insert(header::HOST, host);
    let mut req = Request::new(body);
    *req.method_mut() = out.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = if http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    *req.headers_mut() = headers;
    Ok(req)
}

/// RFC 9110 §9.2.2.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}
