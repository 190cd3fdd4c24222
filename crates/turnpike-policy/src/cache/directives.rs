//! `Cache-Control` (RFC 9111 §5.2) and `Surrogate-Control` parsed into what the cache
//! decides with. Unknown directives are ignored, as §5.2.3 requires; a malformed value
//! for a known one makes it count as present without a value (the cautious reading:
//! `max-age=abc` is a zero lifetime, not an unlimited one).

use std::time::Duration;

use http::HeaderMap;
use http::header::CACHE_CONTROL;

/// The directives of a response's `Cache-Control` (and `Surrogate-Control`, which wins
/// for this cache where both speak, as the Edge Architecture spec says).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseDirectives {
    pub max_age: Option<Duration>,
    pub s_maxage: Option<Duration>,
    pub no_store: bool,
    /// `no-cache` without field names: store, but revalidate every use.
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    pub stale_while_revalidate: Option<Duration>,
    pub stale_if_error: Option<Duration>,
    /// `Surrogate-Control: max-age` (and `no-store`), meant for this gateway only.
    pub surrogate_max_age: Option<Duration>,
    pub surrogate_no_store: bool,
}

/// The directives of a request's `Cache-Control`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    pub max_age: Option<Duration>,
    /// `max-stale` with no value accepts any staleness.
    pub max_stale: Option<Option<Duration>>,
    pub min_fresh: Option<Duration>,
    pub no_cache: bool,
    pub no_store: bool,
    pub only_if_cached: bool,
}

/// Each directive as (lower-case name, optional unquoted value) from every field line.
fn directives<'a>(
    headers: &'a HeaderMap,
    name: &'a http::HeaderName,
) -> impl Iterator<Item = (String, Option<&'a str>)> + 'a {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(split_list)
        .map(|item| match item.split_once('=') {
            Some((k, v)) => (
                k.trim().to_ascii_lowercase(),
                Some(v.trim().trim_matches('"')),
            ),
            None => (item.trim().to_ascii_lowercase(), None),
        })
}

/// Splits a list on commas outside quoted strings (`no-cache="a, b"` is one item).
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut items = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, b) in value.bytes().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                items.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&value[start..]);
    items.into_iter().filter(|s| !s.trim().is_empty())
}

/// Delta-seconds (RFC 9111 §1.2.2); too large saturates, malformed is zero.
fn seconds(value: Option<&str>) -> Duration {
    let v = value.unwrap_or("");
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(v.parse().unwrap_or(u64::from(u32::MAX)))
    } else {
        Duration::ZERO
    }
}

static SURROGATE_CONTROL: http::HeaderName = http::HeaderName::from_static("surrogate-control");

impl ResponseDirectives {
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut d = Self::default();
        for (name, value) in directives(headers, &CACHE_CONTROL) {
            match name.as_str() {
                "max-age" => d.max_age = Some(seconds(value)),
                "s-maxage" => d.s_maxage = Some(seconds(value)),
                "no-store" => d.no_store = true,
                // `no-cache="field"` only forbids reusing that field; the whole response
                // still needs no revalidation. Treated as plain no-cache: stricter, never wrong.
                "no-cache" => d.no_cache = true,
                // Likewise `private="field"`: not storing at all is the safe reading.
                "private" => d.private = true,
                "public" => d.public = true,
                "must-revalidate" => d.must_revalidate = true,
                "proxy-revalidate" => d.proxy_revalidate = true,
                "must-understand" => d.must_understand = true,
                "stale-while-revalidate" => d.stale_while_revalidate = Some(seconds(value)),
                "stale-if-error" => d.stale_if_error = Some(seconds(value)),
                _ => {}
            }
        }
        for (name, value) in directives(headers, &SURROGATE_CONTROL) {
            match name.as_str() {
                "max-age" => d.surrogate_max_age = Some(seconds(value)),
                "no-store" => d.surrogate_no_store = true,
                _ => {}
            }
        }
        d
    }
}

impl RequestDirectives {
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut d = Self::default();
        for (name, value) in directives(headers, &CACHE_CONTROL) {
            match name.as_str() {
                "max-age" => d.max_age = Some(seconds(value)),
                "max-stale" => d.max_stale = Some(value.map(|v| seconds(Some(v)))),
                "min-fresh" => d.min_fresh = Some(seconds(value)),
                "no-cache" => d.no_cache = true,
                "no-store" => d.no_store = true,
                "only-if-cached" => d.only_if_cached = true,
                _ => {}
            }
        }
        // HTTP/1.0 `Pragma: no-cache` without Cache-Control (RFC 9111 §5.4 leaves it to us).
        if !headers.contains_key(CACHE_CONTROL)
            && headers
                .get(http::header::PRAGMA)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("no-cache"))
        {
            d.no_cache = true;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_headers as headers;

    #[test]
    fn response_directives_across_lines_quotes_and_case() {
        let d = ResponseDirectives::parse(&headers(&[
            ("cache-control", "Max-Age=60, no-cache=\"set-cookie, x-a\""),
            (
                "cache-control",
                "s-maxage=\"120\", stale-while-revalidate=30, public",
            ),
            ("surrogate-control", "max-age=3600"),
        ]));
        assert_eq!(d.max_age, Some(Duration::from_secs(60)));
        assert_eq!(d.s_maxage, Some(Duration::from_secs(120)));
        assert!(d.no_cache && d.public && !d.private && !d.no_store);
        assert_eq!(d.stale_while_revalidate, Some(Duration::from_secs(30)));
        assert_eq!(d.surrogate_max_age, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn malformed_lifetimes_are_zero_and_unknown_directives_ignored() {
        let d = ResponseDirectives::parse(&headers(&[(
            "cache-control",
            "max-age=abc, s-maxage=-5, x-unknown=1, ,",
        )]));
        assert_eq!(d.max_age, Some(Duration::ZERO));
        assert_eq!(d.s_maxage, Some(Duration::ZERO));
        let huge = ResponseDirectives::parse(&headers(&[(
            "cache-control",
            "max-age=99999999999999999999999",
        )]));
        assert_eq!(huge.max_age, Some(Duration::from_secs(u64::from(u32::MAX))));
    }

    #[test]
    fn request_directives() {
        let d = RequestDirectives::parse(&headers(&[(
            "cache-control",
            "max-stale, min-fresh=10, only-if-cached",
        )]));
        assert_eq!(d.max_stale, Some(None));
        assert_eq!(d.min_fresh, Some(Duration::from_secs(10)));
        assert!(d.only_if_cached && !d.no_cache);
        let bounded = RequestDirectives::parse(&headers(&[("cache-control", "max-stale=5")]));
        assert_eq!(bounded.max_stale, Some(Some(Duration::from_secs(5))));
        let pragma = RequestDirectives::parse(&headers(&[("pragma", "no-cache")]));
        assert!(pragma.no_cache);
    }
}
