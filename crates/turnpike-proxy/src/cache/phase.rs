//! The cache around the upstream exchange, as the pipeline calls it: look up, forward
//! when needed, complete, and refresh stale entries in the background
//! (`stale-while-revalidate`) without a client waiting.

use std::sync::Arc;

use http::Response;
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::complete::{Completed, complete, on_error, respond};
use super::entry::Head;
use super::lookup::{CacheRequest, Lookup, Pending, add_validators, lookup};
use super::tee::Tee;
use super::{CacheRt, RouteCache};
use crate::body::{RequestBody, ResponseBody};
use crate::error::GatewayError;
use crate::forward::{self, Outgoing};
use crate::upstream::{Held, Upstream};

/// What the exchange produced.
#[derive(Debug)]
pub(crate) enum Exchanged {
    /// Answered from storage.
    Stored(Response<ResponseBody>),
    /// The upstream's response, with the tee that stores its body when it is cacheable.
    Upstream(Response<Incoming>, Held, Option<Box<Tee>>),
}

/// The upstream exchange of a cached route.
pub(crate) async fn exchange(
    (cache, rc): (&Arc<CacheRt>, &Arc<RouteCache>),
    req: CacheRequest<'_>,
    (upstream, mut out, body, hash): (&Arc<Upstream>, Outgoing, RequestBody, Option<u64>),
) -> Result<Exchanged, GatewayError> {
    let head_only = out.method == http::Method::HEAD;
    let (body, post_body) = if out.method == http::Method::POST && rc.methods.post {
        key_body(body, &out.headers).await?
    } else {
        (body, None)
    };
    let req = CacheRequest {
        body: post_body.as_deref(),
        ..req
    };
    let mut pending = match lookup(cache, rc, &req, &mut out).await {
        Lookup::Serve(mut answer) => {
            if let Some(refresh) = answer.refresh.take() {
                if let Head::Response(head) = &answer.obj.head {
                    let mut out = out;
                    out.method = http::Method::GET;
                    add_validators(head, &mut out.headers);
                    spawn_refresh((cache, rc), upstream.clone(), (out, hash), refresh);
                }
            }
            return Ok(Exchanged::Stored(respond(cache, rc, &answer, head_only)));
        }
        Lookup::NotCached => return Err(GatewayError::NotCached),
        Lookup::Forward(pending) => pending,
    };
    let (mut resp, mut held) = match forward::forward(upstream, out, body, hash).await {
        Ok(exchange) => exchange,
        Err(err) => {
            return match on_error(&mut pending) {
                Some(answer) => Ok(Exchanged::Stored(respond(cache, rc, &answer, head_only))),
                None => Err(err),
            };
        }
    };
    match complete(cache, rc, pending, &mut resp) {
        Completed::Stored(answer) => {
            // A 304 has no body: its connection can serve the next request.
            if resp.body().is_end_stream() {
                held.finish();
            }
            Ok(Exchanged::Stored(respond(cache, rc, &answer, head_only)))
        }
        Completed::Upstream(tee) => Ok(Exchanged::Upstream(resp, held, tee)),
    }
}

/// Largest POST body a cached POST is keyed by; bigger ones (or ones of unknown length)
/// pass through uncached.
const MAX_KEYED_BODY: u64 = 64 * 1024;

/// Reads a POST's body in full when it is small enough to be part of the key; it is then
/// forwarded from memory.
async fn key_body(
    body: RequestBody,
    headers: &http::HeaderMap,
) -> Result<(RequestBody, Option<bytes::Bytes>), GatewayError> {
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let small = length.is_some_and(|l| l <= MAX_KEYED_BODY) || body.is_end_stream();
    if !small {
        return Ok((body, None));
    }
    let bytes = body
        .collect()
        .await
        .map_err(crate::validate::read_error)?
        .to_bytes();
    Ok((RequestBody::buffered(bytes.clone()), Some(bytes)))
}

/// Refreshes a stale entry while clients keep getting the stale copy.
fn spawn_refresh(
    (cache, rc): (&Arc<CacheRt>, &Arc<RouteCache>),
    upstream: Arc<Upstream>,
    (out, hash): (Outgoing, Option<u64>),
    pending: Pending,
) {
    let (cache, rc) = (cache.clone(), rc.clone());
    tokio::spawn(async move {
        let Ok((mut resp, mut held)) =
            forward::forward(&upstream, out, RequestBody::empty(), hash).await
        else {
            return;
        };
        match complete(&cache, &rc, pending, &mut resp) {
            Completed::Upstream(Some(mut tee)) => {
                let idle = upstream.settings.idle_timeout;
                let mut body = resp.into_body();
                loop {
                    match tokio::time::timeout(idle, body.frame()).await {
                        Ok(Some(Ok(frame))) => {
                            if let Some(data) = frame.data_ref() {
                                tee.data(data);
                            }
                        }
                        Ok(None) => {
                            tee.end();
                            held.finish();
                            return;
                        }
                        // An error or a stall: nothing stored, the connection is dropped.
                        Ok(Some(Err(_))) | Err(_) => return,
                    }
                }
            }
            _ if resp.body().is_end_stream() => held.finish(),
            _ => {}
        }
    });
}
