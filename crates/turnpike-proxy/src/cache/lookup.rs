//! The cache phase before the upstream: find the stored response for a request (its
//! variant, when the response `Vary`s), decide whether it may be used as it is, used
//! stale while it is refreshed, or must be revalidated; on a miss, let one request fetch
//! while identical ones wait for it (request coalescing, bounded by `lock_timeout`).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};
use http::{HeaderMap, Method};
use tokio::sync::watch;
use turnpike_policy::cache::directives::RequestDirectives;
use turnpike_policy::cache::freshness::Use;
use turnpike_policy::cache::key::{KeyInput, secondary};
use turnpike_state::objects::Object;

use super::complete::Validators;
use super::entry::{Head, Outcome, StoredHead, now_secs};
use super::{CacheRt, RouteCache, lock};
use crate::forward::Outgoing;

/// The request as the cache sees it: the URL the client asked for and who asked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheRequest<'a> {
    pub(crate) scheme: &'static str,
    pub(crate) host: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) consumer: Option<&'a str>,
    /// A POST's body, read in full, when the route caches POSTs and it is small enough.
    pub(crate) body: Option<&'a [u8]>,
}

impl CacheRequest<'_> {
    /// `scheme://host/path?query`, what URL purges and invalidation match.
    pub(crate) fn url(&self) -> String {
        match self.query {
            Some(q) => format!("{}://{}{}?{q}", self.scheme, self.host, self.path),
            None => format!("{}://{}{}", self.scheme, self.host, self.path),
        }
    }
}

/// A stored object.
pub(crate) type Stored = Arc<Object<Head>>;

/// A stored response and the key it was found under.
pub(crate) type Found<'p> = (Cow<'p, [u8]>, Stored);

/// An answer from storage.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Always a `Head::Response` object.
    pub(crate) obj: Stored,
    pub(crate) outcome: Outcome,
    /// Set for stale-while-revalidate: the refresh to run in the background.
    pub(crate) refresh: Option<Pending>,
    /// The client's own conditional request, answered from storage.
    pub(crate) validators: Validators,
}

impl Answer {
    pub(crate) fn head(&self) -> Option<&StoredHead> {
        match &self.obj.head {
            Head::Response(h) => Some(h),
            Head::Variants(_) => None,
        }
    }
}

/// What the cache decided before the upstream.
#[derive(Debug)]
pub(crate) enum Lookup {
    Serve(Box<Answer>),
    /// `only-if-cached` and nothing usable is stored (RFC 9111 §5.2.1.7: 504).
    NotCached,
    Forward(Pending),
}

/// What the cache needs to finish after the upstream answered.
#[derive(Debug)]
pub(crate) enum Pending {
    Bypass(&'static str),
    /// An unsafe method: on success, stored responses for these URLs go.
    Invalidate {
        url: String,
        scheme: &'static str,
        host: String,
    },
    Fill(Box<Fill>),
}

/// A request whose response may be stored (a miss or a revalidation).
#[derive(Debug)]
pub(crate) struct Fill {
    pub(crate) primary: Vec<u8>,
    pub(crate) url: String,
    /// The request headers the storage rules and `Vary` look at.
    pub(crate) req_headers: HeaderMap,
    pub(crate) directives: RequestDirectives,
    pub(crate) request_time: i64,
    /// The stored response being revalidated (its key and object).
    pub(crate) stored: Option<(Vec<u8>, Stored)>,
    /// Held while this request fetches for others waiting on the same key.
    pub(crate) leader: Option<Leader>,
    pub(crate) head_only: bool,
    /// A stale-while-revalidate refresh, which no client waits for.
    pub(crate) background: bool,
    /// The client's own validators (the cache may replace them with its own).
    pub(crate) validators: Validators,
}

/// A request fetching `key` for others; dropping it wakes them.
#[derive(Debug)]
pub(crate) struct Leader {
    cache: Arc<CacheRt>,
    key: Box<[u8]>,
    id: u64,
    _wake: watch::Sender<()>,
}

/// How a waiting request learns the fetch is over: the sender is dropped.
pub(crate) type Waiter = (u64, watch::Receiver<()>);

impl Drop for Leader {
    fn drop(&mut self) {
        let mut inflight = lock(&self.cache.inflight);
        if inflight
            .get(&self.key)
            .is_some_and(|(id, _)| *id == self.id)
        {
            inflight.remove(&self.key);
        }
    }
}

static LEADER_IDS: AtomicU64 = AtomicU64::new(0);

/// Becomes the one request fetching `key`, or returns the fetch to wait for.
fn lead(cache: &Arc<CacheRt>, key: &[u8]) -> Result<Leader, watch::Receiver<()>> {
    let mut inflight = lock(&cache.inflight);
    if let Some((_, rx)) = inflight.get(key) {
        return Err(rx.clone());
    }
    let id = LEADER_IDS.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = watch::channel(());
    inflight.insert(key.into(), (id, rx));
    Ok(Leader {
        cache: cache.clone(),
        key: key.into(),
        id,
        _wake: tx,
    })
}

/// The stored response for a request: the object under the primary key, or, when that
/// names the fields responses vary on, the variant for this request's values of them.
pub(crate) async fn find<'p>(
    cache: &CacheRt,
    primary: &'p [u8],
    req: &HeaderMap,
) -> Option<Found<'p>> {
    let obj = get(cache, primary).await?;
    match &obj.head {
        Head::Response(_) => Some((Cow::Borrowed(primary), obj)),
        Head::Variants(names) => {
            let key = variant_key(primary, names, req);
            let found = get(cache, &key).await?;
            matches!(found.head, Head::Response(_)).then_some((Cow::Owned(key), found))
        }
    }
}

/// From memory, else from the shared store (and then kept in memory too). Redis being
/// slow or down makes a miss, never an error.
async fn get(cache: &CacheRt, key: &[u8]) -> Option<Stored> {
    if let Some(obj) = cache.store.get(key) {
        return Some(obj);
    }
    let l2 = cache.l2.as_ref()?;
    let bytes = l2.get(key).await.ok()??;
    let obj = super::codec::decode(&bytes)?;
    Some(cache.store.put(key, obj))
}

/// The key of one variant: the primary key, a separator no primary key ends with, and
/// the request's values of the varying fields.
pub(crate) fn variant_key(primary: &[u8], names: &[String], req: &HeaderMap) -> Vec<u8> {
    let mut key = primary.to_vec();
    key.extend_from_slice(b"\xffvary");
    key.extend_from_slice(&secondary(names, req));
    key
}

/// The cache phase before the upstream. May add validators to `out` (revalidation).
pub(crate) async fn lookup(
    cache: &Arc<CacheRt>,
    rc: &RouteCache,
    req: &CacheRequest<'_>,
    out: &mut Outgoing,
) -> Lookup {
    let head_only = out.method == Method::HEAD;
    let (cached, key_method) = match out.method {
        Method::GET => (rc.methods.get, "GET"),
        Method::HEAD => (rc.methods.head, "GET"),
        Method::POST if rc.methods.post => (req.body.is_some(), "POST"),
        _ => (false, ""),
    };
    if !cached {
        return Lookup::Forward(not_cached(rc, req, &out.method));
    }
    let directives = RequestDirectives::parse(&out.headers);
    let primary = rc.key.primary(&KeyInput {
        method: key_method,
        body: req.body,
        scheme: req.scheme,
        host: req.host,
        path: req.path,
        query: req.query,
        headers: &out.headers,
        consumer: req.consumer,
    });
    let mut waited = false;
    loop {
        let now = now_secs();
        let fill = |out: &Outgoing, stored, leader| Fill {
            primary: primary.clone(),
            url: req.url(),
            req_headers: out.headers.clone(),
            directives: directives.clone(),
            request_time: now,
            stored,
            leader,
            head_only,
            background: false,
            validators: Validators::of(&out.headers),
        };
        if let Some(found) = find(cache, &primary, &out.headers).await {
            return use_stored(cache, (&primary, found, now), &directives, out, &fill);
        }
        if directives.only_if_cached {
            return Lookup::NotCached;
        }
        // A HEAD response has no body to store, and a second wait is not worth it.
        if head_only || waited {
            return Lookup::Forward(Pending::Fill(Box::new(fill(out, None, None))));
        }
        match lead(cache, &primary) {
            Ok(leader) => {
                let f = fill(out, None, Some(leader));
                return Lookup::Forward(Pending::Fill(Box::new(f)));
            }
            Err(mut done) => {
                rc.counters.coalesced.fetch_add(1, Ordering::Relaxed);
                let _ = tokio::time::timeout(rc.lock_timeout, done.changed()).await;
                waited = true;
            }
        }
    }
}

/// Makes the [`Fill`] of a request that goes upstream (or refreshes in the background).
type MakeFill<'f> = dyn Fn(&Outgoing, Option<(Vec<u8>, Stored)>, Option<Leader>) -> Fill + 'f;

/// A stored response was found: use it, use it stale while it is refreshed, or revalidate.
fn use_stored(
    cache: &Arc<CacheRt>,
    (primary, (key, obj), now): (&[u8], Found<'_>, i64),
    directives: &RequestDirectives,
    out: &mut Outgoing,
    fill: &MakeFill<'_>,
) -> Lookup {
    let Head::Response(head) = &obj.head else {
        return Lookup::Forward(Pending::Bypass("variants"));
    };
    match head.stored(now).usable(directives) {
        Use::Fresh => answer(obj, Outcome::Hit, None, out),
        Use::StaleWhileRevalidate => {
            // One refresh at a time; others get the stale copy meanwhile.
            let refresh = lead(cache, primary).ok().map(|leader| {
                let mut f = fill(out, Some((key.into_owned(), obj.clone())), Some(leader));
                f.head_only = false;
                f.background = true;
                Pending::Fill(Box::new(f))
            });
            answer(obj, Outcome::Stale("stale-while-revalidate"), refresh, out)
        }
        Use::Revalidate if directives.only_if_cached => Lookup::NotCached,
        Use::Revalidate => {
            let leader = lead(cache, primary).ok();
            let f = fill(out, Some((key.into_owned(), obj.clone())), leader);
            add_validators(head, &mut out.headers);
            Lookup::Forward(Pending::Fill(Box::new(f)))
        }
    }
}

fn answer(obj: Stored, outcome: Outcome, refresh: Option<Pending>, out: &Outgoing) -> Lookup {
    Lookup::Serve(Box::new(Answer {
        obj,
        outcome,
        refresh,
        validators: Validators::of(&out.headers),
    }))
}

/// Asks the upstream whether the stored response is still good (RFC 9111 §4.3.1).
pub(crate) fn add_validators(head: &StoredHead, headers: &mut HeaderMap) {
    let (etag, last_modified) = head.validators();
    headers.remove(IF_NONE_MATCH);
    headers.remove(IF_MODIFIED_SINCE);
    if let Some(etag) = etag {
        headers.insert(IF_NONE_MATCH, etag.clone());
    }
    if let Some(lm) = last_modified {
        headers.insert(IF_MODIFIED_SINCE, lm.clone());
    }
}

/// What happens to a request the route does not cache: a successful unsafe method
/// invalidates its URL, unless it is a POST the route caches (one too large to key).
fn not_cached(rc: &RouteCache, req: &CacheRequest<'_>, method: &Method) -> Pending {
    if *method == Method::POST && rc.methods.post {
        return Pending::Bypass("body");
    }
    if is_unsafe(method) {
        return Pending::Invalidate {
            url: req.url(),
            scheme: req.scheme,
            host: req.host.to_owned(),
        };
    }
    Pending::Bypass("method")
}

/// RFC 9110 §9.2.1: methods that may change what the target serves.
fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}
