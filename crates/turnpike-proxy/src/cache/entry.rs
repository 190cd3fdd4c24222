//! What the cache keeps of a response (its head: status, headers, timing, lifetime and
//! directives) and how a stored response becomes one for a client: `Age` recomputed,
//! `Cache-Status` (RFC 9211) and optionally `X-Cache` added.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{AGE, HeaderName};
use http::{HeaderMap, HeaderValue, StatusCode};
use turnpike_policy::cache::directives::ResponseDirectives;
use turnpike_policy::cache::freshness::{Fallback, Stored, Timing, lifetime};
use turnpike_policy::cache::storable::stored_headers;
use turnpike_state::objects::Weigh;

pub(crate) static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
pub(crate) static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
pub(crate) static SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");
pub(crate) static SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
pub(crate) static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// Seconds since the Unix epoch, the unit of RFC 9111's age arithmetic.
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A stored response head, or (under a primary key whose responses vary) the marker that
/// names the request fields the variants are chosen by.
#[derive(Debug, Clone)]
pub(crate) enum Head {
    Response(Box<StoredHead>),
    Variants(Box<[String]>),
}

#[derive(Debug, Clone)]
pub(crate) struct StoredHead {
    pub(crate) status: StatusCode,
    /// The upstream's headers minus hop-by-hop ones and `Surrogate-Control`.
    pub(crate) headers: HeaderMap,
    pub(crate) timing: Timing,
    pub(crate) lifetime: Duration,
    pub(crate) directives: ResponseDirectives,
}

impl Weigh for Head {
    /// An estimate of the memory a head holds: names, values and the map's own entries
    /// (about 64 bytes each in `http`'s layout), plus the fixed fields.
    fn weight(&self) -> usize {
        match self {
            Self::Variants(names) => names.iter().map(|n| n.len() + 24).sum::<usize>() + 64,
            Self::Response(h) => {
                let headers: usize = h
                    .headers
                    .iter()
                    .map(|(k, v)| k.as_str().len() + v.len() + 64)
                    .sum();
                headers + 256
            }
        }
    }
}

impl StoredHead {
    /// Keeps what a shared cache may keep of `headers` (RFC 9111 §3.1); `Surrogate-Control`
    /// was meant for this cache alone (it is honoured, then dropped).
    pub(crate) fn new(
        status: StatusCode,
        headers: &HeaderMap,
        (timing, lifetime): (Timing, Duration),
        directives: ResponseDirectives,
    ) -> Self {
        let mut kept = stored_headers(headers);
        kept.remove(&SURROGATE_CONTROL);
        Self {
            status,
            headers: kept,
            timing,
            lifetime,
            directives,
        }
    }

    pub(crate) fn age(&self, now: i64) -> u64 {
        self.timing.current_age(now)
    }

    pub(crate) fn stored(&self, now: i64) -> Stored<'_> {
        Stored {
            lifetime: self.lifetime,
            age: self.age(now),
            directives: &self.directives,
        }
    }

    /// Seconds of freshness left; negative once stale (RFC 9211 `ttl`).
    pub(crate) fn ttl(&self, now: i64) -> i64 {
        let life = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        life.saturating_sub(i64::try_from(self.age(now)).unwrap_or(i64::MAX))
    }

    /// Headers of a 304 update the stored ones (RFC 9111 §4.3.4), except those that
    /// describe the 304's own framing.
    pub(crate) fn refresh(&mut self, from: &HeaderMap, timing: Timing, fallback: &Fallback) {
        let fresh = stored_headers(from);
        for name in fresh.keys() {
            if matches!(
                name.as_str(),
                "content-length" | "content-encoding" | "content-range"
            ) {
                continue;
            }
            self.headers.remove(name);
            for v in fresh.get_all(name) {
                self.headers.append(name.clone(), v.clone());
            }
        }
        self.headers.remove(&SURROGATE_CONTROL);
        self.timing = timing;
        // The 304's `Surrogate-Control`, if any, still counts for the new lifetime.
        let mut all = self.headers.clone();
        for v in from.get_all(&SURROGATE_CONTROL) {
            all.append(SURROGATE_CONTROL.clone(), v.clone());
        }
        self.directives = ResponseDirectives::parse(&all);
        self.lifetime = lifetime(&all, &self.directives, fallback).unwrap_or_default();
    }

    /// The `ETag` and `Last-Modified` to revalidate with.
    pub(crate) fn validators(&self) -> (Option<&HeaderValue>, Option<&HeaderValue>) {
        (
            self.headers.get(http::header::ETAG),
            self.headers.get(http::header::LAST_MODIFIED),
        )
    }
}

/// How a response was served, for `Cache-Status` and `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Fresh from the cache.
    Hit,
    /// Stale from the cache: refreshing in the background, or the upstream failed.
    Stale(&'static str),
    /// Revalidated with the upstream (304): the stored body was served.
    Revalidated,
    /// Fetched from the upstream; `stored` says whether it was kept, `detail` why not.
    Miss {
        stored: bool,
        detail: Option<&'static str>,
    },
    /// Not looked up: the request could not be answered from a cache.
    Bypass(&'static str),
}

impl Outcome {
    pub(crate) fn x_cache(self) -> &'static str {
        match self {
            Self::Hit | Self::Revalidated => "HIT",
            Self::Stale(_) => "STALE",
            Self::Miss { .. } => "MISS",
            Self::Bypass(_) => "BYPASS",
        }
    }

    /// The `Cache-Status` entry; `ttl` for responses served from storage, `fwd_status`
    /// for those the upstream answered.
    pub(crate) fn cache_status(self, ttl: Option<i64>, fwd_status: Option<u16>) -> HeaderValue {
        use std::fmt::Write;
        // The common case costs no formatting (RFC 9211's `ttl` is optional).
        if self == Self::Hit {
            return HeaderValue::from_static("Turnpike; hit");
        }
        let mut s = String::from("Turnpike");
        match self {
            Self::Hit => s.push_str("; hit"),
            Self::Stale(detail) => {
                let _ = write!(s, "; hit; detail={detail}");
            }
            Self::Revalidated => s.push_str("; fwd=stale"),
            Self::Miss { .. } => s.push_str("; fwd=miss"),
            Self::Bypass(detail) => {
                let _ = write!(s, "; fwd=bypass; detail={detail}");
            }
        }
        if let Some(status) = fwd_status {
            let _ = write!(s, "; fwd-status={status}");
        }
        if let Some(ttl) = ttl {
            let _ = write!(s, "; ttl={ttl}");
        }
        if let Self::Miss { stored, detail } = self {
            if stored {
                s.push_str("; stored");
            }
            if let Some(d) = detail {
                let _ = write!(s, "; detail={d}");
            }
        }
        HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("Turnpike"))
    }
}

/// Marks a response with how the cache served it.
pub(crate) fn label(
    headers: &mut HeaderMap,
    outcome: Outcome,
    status: (Option<i64>, Option<u16>),
    x_cache: bool,
) {
    headers.insert(
        CACHE_STATUS.clone(),
        outcome.cache_status(status.0, status.1),
    );
    if x_cache {
        headers.insert(X_CACHE.clone(), HeaderValue::from_static(outcome.x_cache()));
    }
}

/// The stored response as a client gets it: stored headers, a recomputed `Age`.
pub(crate) fn response_head(head: &StoredHead, now: i64) -> (StatusCode, HeaderMap) {
    let mut headers = head.headers.clone();
    headers.insert(AGE, HeaderValue::from(head.age(now)));
    (head.status, headers)
}
