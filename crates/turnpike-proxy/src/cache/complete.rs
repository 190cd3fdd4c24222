//! The cache phase after the upstream answered: refresh a stored response from a 304,
//! serve a stale one when the upstream fails (`stale-if-error`), store a new response
//! (teeing its body), invalidate after unsafe methods; and the response a client gets
//! from storage (`Age`, `Cache-Status`, its own conditional request answered with 304).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, DATE, ETAG, EXPIRES, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, LOCATION, VARY,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use turnpike_policy::cache::directives::ResponseDirectives;
use turnpike_policy::cache::freshness::{Timing, http_date, lifetime};
use turnpike_policy::cache::storable::{self, Exchange, vary_names};
use turnpike_state::objects::Object;

use super::entry::{
    CACHE_TAG, Head, Outcome, SURROGATE_CONTROL, SURROGATE_KEY, StoredHead, label, now_secs,
};
use super::lookup::{Answer, Fill, Pending, variant_key};
use super::tee::{Storing, Tee};
use super::{CacheRt, RouteCache, url_tag};
use crate::body::ResponseBody;

/// What the cache made of the upstream's answer.
#[derive(Debug)]
pub(crate) enum Completed {
    /// Serve from storage instead (refreshed by a 304, or stale because of an error).
    Stored(Box<Answer>),
    /// Pass the upstream's response on, storing its body through the tee if there is one.
    Upstream(Option<Box<Tee>>),
}

/// The cache phase after the upstream's response head arrived.
pub(crate) fn complete(
    cache: &Arc<CacheRt>,
    rc: &RouteCache,
    pending: Pending,
    resp: &mut Response<Incoming>,
) -> Completed {
    let status = resp.status();
    let outcome = match pending {
        Pending::Bypass(why) => Outcome::Bypass(why),
        Pending::Invalidate { url, scheme, host } => {
            if status.is_success() || status.is_redirection() {
                invalidate(cache, &url, resp.headers(), (scheme, &host));
            }
            Outcome::Bypass("method")
        }
        Pending::Fill(fill) => return filled(cache, rc, *fill, resp),
    };
    finish_headers(cache, rc, resp.headers_mut(), outcome, status);
    rc.counters.count(outcome);
    Completed::Upstream(None)
}

/// The client's response headers: what was meant for this cache goes, the label comes.
fn finish_headers(
    cache: &CacheRt,
    rc: &RouteCache,
    headers: &mut HeaderMap,
    outcome: Outcome,
    status: StatusCode,
) {
    headers.remove(&SURROGATE_CONTROL);
    if rc.strip_tags {
        headers.remove(&SURROGATE_KEY);
        headers.remove(&CACHE_TAG);
    }
    label(
        headers,
        outcome,
        (None, Some(status.as_u16())),
        cache.x_cache,
    );
}

fn filled(
    cache: &Arc<CacheRt>,
    rc: &RouteCache,
    fill: Fill,
    resp: &mut Response<Incoming>,
) -> Completed {
    let status = resp.status();
    let now = now_secs();
    if let Some((key, obj)) = &fill.stored {
        if let Head::Response(head) = &obj.head {
            if status == StatusCode::NOT_MODIFIED {
                let mut head = (**head).clone();
                let timing = Timing::of(resp.headers(), fill.request_time, now);
                head.refresh(resp.headers(), timing, &rc.fallback);
                let ttl = super::tee::shared_ttl(&head);
                let obj = cache.store.put(
                    key,
                    Object {
                        head: Head::Response(Box::new(head)),
                        body: obj.body.clone(),
                        url: obj.url.clone(),
                        tags: obj.tags.clone(),
                    },
                );
                super::tee::share(cache, vec![(key.clone(), obj.clone())], ttl);
                return stored_answer(obj, Outcome::Revalidated, fill);
            }
            if status.is_server_error() && head.stored(now).serves_on_error() {
                return stored_answer(obj.clone(), Outcome::Stale("stale-if-error"), fill);
            }
        }
    }
    // A background refresh is not a client's request: the stale answer was counted.
    let counted = !fill.background;
    let (tee, outcome) = store_new(cache, rc, fill, resp, now);
    finish_headers(cache, rc, resp.headers_mut(), outcome, status);
    if counted {
        rc.counters.count(outcome);
    }
    Completed::Upstream(tee)
}

fn stored_answer(obj: super::lookup::Stored, outcome: Outcome, fill: Fill) -> Completed {
    drop(fill.leader);
    Completed::Stored(Box::new(Answer {
        obj,
        outcome,
        refresh: None,
        validators: fill.validators,
    }))
}

/// Decides whether the response may be stored (RFC 9111 §3) and if so sets up the tee.
fn store_new(
    cache: &Arc<CacheRt>,
    rc: &RouteCache,
    fill: Fill,
    resp: &Response<Incoming>,
    now: i64,
) -> (Option<Box<Tee>>, Outcome) {
    let not_stored = |detail| Outcome::Miss {
        stored: false,
        detail: Some(detail),
    };
    if fill.head_only {
        return (None, not_stored("head"));
    }
    let headers = resp.headers();
    let directives = ResponseDirectives::parse(headers);
    let life = lifetime(headers, &directives, &rc.fallback);
    let x = Exchange {
        method: &http::Method::GET,
        req: &fill.req_headers,
        req_directives: &fill.directives,
        status: resp.status(),
        resp: headers,
        directives: &directives,
    };
    if let Err(why) = storable::check(&x, &rc.statuses, life.is_some()) {
        return (None, not_stored(why.as_str()));
    }
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|l| l > cache.max_object) {
        return (None, not_stored("too-large"));
    }
    let timing = Timing::of(headers, fill.request_time, now);
    let head = StoredHead::new(
        resp.status(),
        headers,
        (timing, life.unwrap_or_default()),
        directives,
    );
    let names: Box<[String]> = vary_names(headers).collect();
    let (key, marker) = if names.is_empty() {
        (fill.primary, None)
    } else {
        let key = variant_key(&fill.primary, &names, &fill.req_headers);
        (key, Some((fill.primary, names)))
    };
    let storing = Storing {
        cache: cache.clone(),
        key,
        marker,
        head,
        url: fill.url.as_str().into(),
        tags: tags(headers, &fill.url),
        counters: rc.counters.clone(),
        leader: fill.leader,
    };
    let tee = Tee::new(storing, cache.max_object, length);
    let stored = Outcome::Miss {
        stored: true,
        detail: None,
    };
    (Some(Box::new(tee)), stored)
}

/// The object's tags: `Surrogate-Key` (space-separated) and `Cache-Tag` (comma-separated)
/// values, and its URL's own tag.
fn tags(headers: &HeaderMap, url: &str) -> Box<[Box<str>]> {
    let mut tags: Vec<Box<str>> = headers
        .get_all(&SURROGATE_KEY)
        .iter()
        .chain(headers.get_all(&CACHE_TAG).iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([' ', ',']))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Box::from)
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags.push(url_tag(url).into());
    tags.into()
}

/// After a successful unsafe request, the stored responses for its URL and for the
/// `Location` and `Content-Location` it names (same origin only, RFC 9111 §4.4) go.
fn invalidate(cache: &CacheRt, url: &str, resp: &HeaderMap, (scheme, host): (&str, &str)) {
    let mut tags = vec![url_tag(url)];
    let origin = format!("{scheme}://{host}");
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(v) = resp.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let same_origin = v
            .strip_prefix(&origin)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']));
        if v.starts_with('/') {
            tags.push(url_tag(&format!("{origin}{v}")));
        } else if same_origin {
            tags.push(url_tag(v));
        }
    }
    for tag in &tags {
        cache.store.purge_tag(tag);
    }
    // Other nodes drop theirs when the shared store's purge reaches them.
    if let (Some(l2), Ok(runtime)) = (cache.l2.clone(), tokio::runtime::Handle::try_current()) {
        runtime.spawn(async move {
            if let Err(e) = l2.purge_tags(&tags).await {
                tracing::debug!(error = %e, "cache: Redis invalidation skipped");
            }
        });
    }
}

/// The upstream could not be reached or timed out: a stale response that allows it
/// (`stale-if-error`) is served instead of the error.
pub(crate) fn on_error(pending: &mut Pending) -> Option<Box<Answer>> {
    let Pending::Fill(fill) = pending else {
        return None;
    };
    let (_, obj) = fill.stored.as_ref()?;
    let Head::Response(head) = &obj.head else {
        return None;
    };
    head.stored(now_secs()).serves_on_error().then(|| {
        Box::new(Answer {
            obj: obj.clone(),
            outcome: Outcome::Stale("stale-if-error"),
            refresh: None,
            validators: fill.validators.clone(),
        })
    })
}

/// The client's own validators, kept before the cache puts its own on the request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Validators {
    if_none_match: Option<HeaderValue>,
    if_modified_since: Option<HeaderValue>,
}

impl Validators {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        Self {
            if_none_match: headers.get(IF_NONE_MATCH).cloned(),
            if_modified_since: headers.get(IF_MODIFIED_SINCE).cloned(),
        }
    }

    /// RFC 9110 §13.1.2-3, §13.2.2: `If-None-Match` decides when present (weak
    /// comparison), else `If-Modified-Since` against `Last-Modified`.
    fn not_modified(&self, stored: &HeaderMap) -> bool {
        if let Some(inm) = &self.if_none_match {
            let Some(etag) = stored.get(ETAG).and_then(|v| v.to_str().ok()) else {
                return false;
            };
            let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
            return inm
                .to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim() == "*" || weak(t) == weak(etag));
        }
        match (&self.if_modified_since, stored.get(LAST_MODIFIED)) {
            (Some(ims), Some(lm)) => match (http_date(ims), http_date(lm)) {
                (Some(ims), Some(lm)) => lm <= ims,
                _ => false,
            },
            _ => false,
        }
    }
}

/// The response a client gets from storage.
pub(crate) fn respond(
    cache: &CacheRt,
    rc: &RouteCache,
    answer: &Answer,
    head_only: bool,
) -> Response<ResponseBody> {
    let Some(head) = answer.head() else {
        return Response::new(ResponseBody::full(Bytes::new()));
    };
    let now = now_secs();
    let (status, mut headers) = super::entry::response_head(head, now);
    if rc.strip_tags {
        headers.remove(&SURROGATE_KEY);
        headers.remove(&CACHE_TAG);
    }
    let ttl = (answer.outcome != Outcome::Hit).then(|| head.ttl(now));
    let fwd = matches!(answer.outcome, Outcome::Revalidated).then_some(304);
    label(&mut headers, answer.outcome, (ttl, fwd), cache.x_cache);
    rc.counters.count(answer.outcome);
    let (status, body) = if status == StatusCode::OK && answer.validators.not_modified(&headers) {
        headers = not_modified_headers(&headers);
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else if head_only {
        (status, Bytes::new())
    } else {
        (status, answer.obj.body.clone())
    };
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// A 304 carries the fields a cache downstream would update, not the representation's.
fn not_modified_headers(full: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    for name in [
        CACHE_CONTROL,
        CONTENT_LOCATION,
        DATE,
        ETAG,
        EXPIRES,
        VARY,
        http::header::AGE,
    ] {
        for v in full.get_all(&name) {
            h.append(name.clone(), v.clone());
        }
    }
    for name in [&super::entry::CACHE_STATUS, &super::entry::X_CACHE] {
        if let Some(v) = full.get(name) {
            h.insert(name.clone(), v.clone());
        }
    }
    h
}
