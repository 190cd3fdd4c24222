//! How long a stored response stays fresh (RFC 9111 §4.2.1, §4.2.2), how old it is
//! (§4.2.3), and whether a request may be answered with it now (§4.2.4, §5.2.1, RFC 5861).
//!
//! Times are Unix seconds as `i64` (HTTP dates have one-second resolution) and ages are
//! whole seconds, so `Age` headers come out exactly as the arithmetic says.

use std::time::Duration;

use http::HeaderMap;
use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};

use super::directives::{RequestDirectives, ResponseDirectives};

/// What the operator allows for responses that carry no freshness of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fallback {
    /// Heuristic freshness (§4.2.2): this share of the time since `Last-Modified`,
    /// capped at `heuristic_max`. Off when `None`.
    pub heuristic_percent: Option<u32>,
    pub heuristic_max: Duration,
    /// A fixed lifetime for responses with no caching headers at all. Off when `None`.
    pub default_ttl: Option<Duration>,
}

/// The time facts of one stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// When the request that fetched it was sent, and when its response arrived.
    pub request_time: i64,
    pub response_time: i64,
    /// `Date` and `Age` as the upstream sent them.
    pub date: Option<i64>,
    pub age: u64,
}

/// An HTTP-date (RFC 9110 §5.6.7) in Unix seconds; any of the three formats.
pub fn http_date(value: &http::HeaderValue) -> Option<i64> {
    let s = value.to_str().ok()?.trim();
    const FORMATS: [&str; 3] = [
        "%a, %d %b %Y %H:%M:%S GMT",
        "%A, %d-%b-%y %H:%M:%S GMT",
        "%a %b %e %H:%M:%S %Y",
    ];
    FORMATS.iter().find_map(|f| {
        jiff::fmt::strtime::parse(f, s)
            .ok()
            .and_then(|tm| tm.to_datetime().ok())
            .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp().as_second())
    })
}

/// Formats Unix seconds as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn format_http_date(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

impl Timing {
    pub fn of(headers: &HeaderMap, request_time: i64, response_time: i64) -> Self {
        let age = headers
            .get(AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Self {
            request_time,
            response_time,
            date: headers.get(DATE).and_then(http_date),
            age,
        }
    }

    /// `current_age` of §4.2.3, in whole seconds.
    pub fn current_age(&self, now: i64) -> u64 {
        let secs = |d: i64| u64::try_from(d).unwrap_or(0);
        let apparent = secs(self.response_time - self.date.unwrap_or(self.response_time));
        let delay = secs(self.response_time - self.request_time);
        let corrected_initial = apparent.max(self.age.saturating_add(delay));
        corrected_initial.saturating_add(secs(now - self.response_time))
    }
}

/// The freshness lifetime for this (shared) cache, or `None` when nothing gives one.
pub fn lifetime(
    headers: &HeaderMap,
    d: &ResponseDirectives,
    fallback: &Fallback,
) -> Option<Duration> {
    if let Some(l) = d.surrogate_max_age.or(d.s_maxage).or(d.max_age) {
        return Some(l);
    }
    if let Some(expires) = headers.get(EXPIRES) {
        // An invalid Expires (often "0") means already expired (§5.3).
        let Some(expires) = http_date(expires) else {
            return Some(Duration::ZERO);
        };
        let date = headers.get(DATE).and_then(http_date)?;
        return Some(Duration::from_secs(
            u64::try_from(expires - date).unwrap_or(0),
        ));
    }
    if let (Some(pct), Some(lm), Some(date)) = (
        fallback.heuristic_percent,
        headers.get(LAST_MODIFIED).and_then(http_date),
        headers.get(DATE).and_then(http_date),
    ) {
        let since = u64::try_from(date - lm).unwrap_or(0);
        let h = Duration::from_secs(since.saturating_mul(u64::from(pct)) / 100);
        return Some(h.min(fallback.heuristic_max));
    }
    fallback.default_ttl
}

/// How a stored response may be used for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Serve it as it is.
    Fresh,
    /// Serve it, and refresh it in the background (stale-while-revalidate).
    StaleWhileRevalidate,
    /// Ask the upstream first (conditionally when validators exist).
    Revalidate,
}

/// The facts about one stored response that decide its use.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    pub lifetime: Duration,
    pub age: u64,
    pub directives: &'a ResponseDirectives,
}

impl Stored<'_> {
    /// Seconds past its lifetime; `None` while fresh (fresh means lifetime > age).
    fn staleness(&self) -> Option<u64> {
        let life = self.lifetime.as_secs();
        (self.age >= life).then(|| self.age - life)
    }

    /// May a stale response be served at all? `must-revalidate`, `proxy-revalidate` and
    /// `s-maxage` say no to a shared cache (§5.2.2.2, §5.2.2.8, §5.2.2.10).
    fn may_serve_stale(&self) -> bool {
        let d = self.directives;
        !(d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some() || d.no_cache)
    }

    /// Whether (and how) this response answers a request with directives `req`.
    pub fn usable(&self, req: &RequestDirectives) -> Use {
        if req.no_cache || self.directives.no_cache {
            return Use::Revalidate;
        }
        let life = self.lifetime.as_secs();
        if req.max_age.is_some_and(|m| self.age > m.as_secs()) {
            return Use::Revalidate;
        }
        if let Some(min_fresh) = req.min_fresh {
            if life.saturating_sub(self.age) < min_fresh.as_secs() {
                return Use::Revalidate;
            }
        }
        let Some(stale) = self.staleness() else {
            return Use::Fresh;
        };
        if !self.may_serve_stale() {
            return Use::Revalidate;
        }
        match req.max_stale {
            Some(None) => return Use::Fresh,
            Some(Some(max)) if stale <= max.as_secs() => return Use::Fresh,
            _ => {}
        }
        match self.directives.stale_while_revalidate {
            Some(w) if stale <= w.as_secs() => Use::StaleWhileRevalidate,
            _ => Use::Revalidate,
        }
    }

    /// Whether this response may stand in for an upstream that failed (RFC 5861 §4).
    pub fn serves_on_error(&self) -> bool {
        let stale = self.staleness().unwrap_or(0);
        self.may_serve_stale()
            && self
                .directives
                .stale_if_error
                .is_some_and(|w| stale <= w.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_headers as headers;

    const T0: i64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn all_three_date_formats_parse() {
        for s in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(http_date(&s.parse().unwrap()), Some(T0), "{s}");
        }
        assert_eq!(format_http_date(T0), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(&"0".parse().unwrap()), None);
    }

    #[test]
    fn lifetime_precedence_surrogate_s_maxage_max_age_expires() {
        let fb = Fallback::default();
        let h = headers(&[
            ("cache-control", "max-age=60, s-maxage=120"),
            ("surrogate-control", "max-age=600"),
        ]);
        let d = ResponseDirectives::parse(&h);
        assert_eq!(lifetime(&h, &d, &fb), Some(Duration::from_secs(600)));
        let h = headers(&[("cache-control", "max-age=60, s-maxage=120")]);
        assert_eq!(
            lifetime(&h, &ResponseDirectives::parse(&h), &fb),
            Some(Duration::from_secs(120))
        );
        let h = headers(&[
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("expires", "Sun, 06 Nov 1994 08:59:37 GMT"),
        ]);
        assert_eq!(
            lifetime(&h, &ResponseDirectives::parse(&h), &fb),
            Some(Duration::from_secs(600))
        );
        let h = headers(&[("date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("expires", "0")]);
        assert_eq!(
            lifetime(&h, &ResponseDirectives::parse(&h), &fb),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn heuristics_and_default_ttl_only_when_configured() {
        let h = headers(&[
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("last-modified", "Sun, 06 Nov 1994 06:49:37 GMT"),
        ]);
        let d = ResponseDirectives::parse(&h);
        assert_eq!(lifetime(&h, &d, &Fallback::default()), None);
        let fb = Fallback {
            heuristic_percent: Some(10),
            heuristic_max: Duration::from_secs(600),
            default_ttl: None,
        };
        assert_eq!(
            lifetime(&h, &d, &fb),
            Some(Duration::from_secs(600)),
            "10% of 2 h, capped"
        );
        let bare = HeaderMap::new();
        let ttl = Fallback {
            default_ttl: Some(Duration::from_secs(5)),
            ..Fallback::default()
        };
        assert_eq!(
            lifetime(&bare, &ResponseDirectives::default(), &ttl),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn age_follows_rfc_9111_4_2_3() {
        // Sent at T0, answered 2 s later by a server whose clock says T0 - 10 and that
        // already held it for 30 s.
        let t = Timing {
            request_time: T0,
            response_time: T0 + 2,
            date: Some(T0 - 10),
            age: 30,
        };
        // corrected initial age = max(12, 30 + 2) = 32; 8 s resident.
        assert_eq!(t.current_age(T0 + 10), 40);
        let clock_ahead = Timing {
            request_time: T0,
            response_time: T0,
            date: Some(T0 + 100),
            age: 0,
        };
        assert_eq!(clock_ahead.current_age(T0 + 5), 5);
    }

    fn stored(life: u64, age: u64, d: &ResponseDirectives) -> Use {
        Stored {
            lifetime: Duration::from_secs(life),
            age,
            directives: d,
        }
        .usable(&RequestDirectives::default())
    }

    #[test]
    fn fresh_stale_and_revalidation_rules() {
        let plain = ResponseDirectives::default();
        assert_eq!(stored(60, 59, &plain), Use::Fresh);
        assert_eq!(stored(60, 60, &plain), Use::Revalidate);
        let swr = ResponseDirectives {
            stale_while_revalidate: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        assert_eq!(stored(60, 80, &swr), Use::StaleWhileRevalidate);
        assert_eq!(stored(60, 91, &swr), Use::Revalidate);
        let must = ResponseDirectives {
            must_revalidate: true,
            ..swr.clone()
        };
        assert_eq!(stored(60, 80, &must), Use::Revalidate);
        let sie = ResponseDirectives {
            stale_if_error: Some(Duration::from_secs(100)),
            ..Default::default()
        };
        let s = Stored {
            lifetime: Duration::from_secs(60),
            age: 150,
            directives: &sie,
        };
        assert!(s.serves_on_error());
        let too_old = Stored { age: 161, ..s };
        assert!(!too_old.serves_on_error());
    }

    #[test]
    fn request_directives_tighten_or_loosen() {
        let plain = ResponseDirectives::default();
        let s = Stored {
            lifetime: Duration::from_secs(60),
            age: 30,
            directives: &plain,
        };
        let req = |cc: &str| RequestDirectives::parse(&headers(&[("cache-control", cc)]));
        assert_eq!(s.usable(&req("max-age=10")), Use::Revalidate);
        assert_eq!(s.usable(&req("min-fresh=40")), Use::Revalidate);
        assert_eq!(s.usable(&req("min-fresh=20")), Use::Fresh);
        assert_eq!(s.usable(&req("no-cache")), Use::Revalidate);
        let stale = Stored { age: 90, ..s };
        assert_eq!(stale.usable(&req("max-stale=40")), Use::Fresh);
        assert_eq!(stale.usable(&req("max-stale=20")), Use::Revalidate);
        assert_eq!(stale.usable(&req("max-stale")), Use::Fresh);
    }
}
