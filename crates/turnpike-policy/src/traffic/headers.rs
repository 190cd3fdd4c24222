//! The rate-limit response headers: `RateLimit-Policy` and `RateLimit` as
//! draft-ietf-httpapi-ratelimit-headers-10 defines them (structured-field lists of
//! `"name";q=<quota>;w=<window>` and `"name";r=<remaining>;t=<seconds to reset>`), and the
//! legacy `X-RateLimit-Limit`, `-Remaining`, `-Reset` for the limit closest to refusing.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
static X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// One counter's state as the client is told it.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub name: &'a str,
    pub quota: u64,
    pub remaining: u64,
    pub reset: Duration,
}

/// Whole seconds, rounded up: a client that waits `t` seconds must find the limit reset.
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Builds the headers for one request. The common case (one policy source, such as a
/// route's limits) reuses that source's precomputed `RateLimit-Policy` value, so a
/// request formats only its `RateLimit` state.
#[derive(Debug, Default)]
pub struct LimitHeaders {
    /// Inline: a route's and a plan's values, the most a request has, need no allocation.
    policy: SmallVec<[HeaderValue; 2]>,
    /// The `RateLimit` value; bytes, so the numbers need no UTF-8 handling.
    state: Vec<u8>,
    /// The item with the least left: what the legacy headers report.
    tightest: Option<(u64, u64, u64)>,
}

/// The finished header values, applied to the response without a second header map.
#[derive(Debug, Default)]
pub struct LimitHeaderValues {
    policy: Option<HeaderValue>,
    state: Option<HeaderValue>,
    legacy: Option<(u64, u64, u64)>,
}

impl LimitHeaderValues {
    pub fn apply(self, out: &mut HeaderMap) {
        if let Some(v) = self.policy {
            out.insert(RATELIMIT_POLICY.clone(), v);
        }
        if let Some(v) = self.state {
            out.insert(RATELIMIT.clone(), v);
        }
        if let Some((q, r, t)) = self.legacy {
            out.insert(X_LIMIT.clone(), HeaderValue::from(q));
            out.insert(X_REMAINING.clone(), HeaderValue::from(r));
            out.insert(X_RESET.clone(), HeaderValue::from(t));
        }
    }
}

/// A `RateLimit-Policy` value made once, at config build.
pub fn policy_value(items: &str) -> Option<HeaderValue> {
    (!items.is_empty())
        .then(|| HeaderValue::from_str(items).ok())
        .flatten()
}

impl LimitHeaders {
    /// Adds one source's policy items (precomputed).
    pub fn push_policy_value(&mut self, value: Option<&HeaderValue>) {
        if let Some(v) = value {
            self.policy.push(v.clone());
        }
    }

    pub fn push_policy(&mut self, items: &str) {
        self.push_policy_value(policy_value(items).as_ref());
    }

    pub fn push(&mut self, item: Item<'_>) {
        if self.state.is_empty() {
            // Room for the item and its two numbers: the value is allocated once.
            self.state.reserve(item.name.len() + 48);
        } else {
            self.state.extend_from_slice(b", ");
        }
        let t = ceil_secs(item.reset);
        // Written by hand: `write!` cost several hundred instructions per request here.
        self.state.push(b'"');
        self.state.extend_from_slice(item.name.as_bytes());
        self.state.extend_from_slice(b"\";r=");
        push_decimal(&mut self.state, item.remaining);
        self.state.extend_from_slice(b";t=");
        push_decimal(&mut self.state, t);
        if self.tightest.is_none_or(|(_, r, _)| item.remaining < r) {
            self.tightest = Some((item.quota, item.remaining, t));
        }
    }

    /// The values the config asks for.
    pub fn finish(self, ietf: bool, legacy: bool) -> LimitHeaderValues {
        let mut out = LimitHeaderValues {
            legacy: self.tightest.filter(|_| legacy),
            ..LimitHeaderValues::default()
        };
        if ietf {
            out.policy = match self.policy.len() {
                0 => None,
                1 => self.policy.into_iter().next(),
                _ => {
                    let parts: Vec<&[u8]> = self.policy.iter().map(HeaderValue::as_bytes).collect();
                    HeaderValue::from_bytes(&parts.join(&b", "[..])).ok()
                }
            };
            out.state = (!self.state.is_empty())
                .then(|| HeaderValue::try_from(self.state).ok())
                .flatten();
        }
        out
    }

    /// Adds the headers the config asks for to `out` (refusals).
    pub fn write(self, ietf: bool, legacy: bool, out: &mut HeaderMap) {
        self.finish(ietf, legacy).apply(out);
    }
}

/// Appends `n` in decimal, as `Display` writes it.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 4_294_967_296, u64::MAX] {
            let mut s = Vec::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string().as_bytes());
        }
    }

    #[test]
    fn headers_follow_the_draft_syntax_and_legacy_reports_the_tightest() {
        let mut h = LimitHeaders::default();
        h.push_policy("\"10-per-1s\";q=10;w=1");
        h.push_policy("\"1000-per-1h\";q=1000;w=3600");
        h.push(Item {
            name: "10-per-1s",
            quota: 10,
            remaining: 9,
            reset: Duration::from_millis(100),
        });
        h.push(Item {
            name: "1000-per-1h",
            quota: 1000,
            remaining: 3,
            reset: Duration::from_secs(3600),
        });
        let mut out = HeaderMap::new();
        h.write(true, true, &mut out);
        let h = {
            let mut h = LimitHeaders::default();
            h.push(Item {
                name: "1000-per-1h",
                quota: 1000,
                remaining: 3,
                reset: Duration::from_secs(3600),
            });
            h
        };
        assert_eq!(
            out["ratelimit-policy"],
            "\"10-per-1s\";q=10;w=1, \"1000-per-1h\";q=1000;w=3600"
        );
        assert_eq!(
            out["ratelimit"],
            "\"10-per-1s\";r=9;t=1, \"1000-per-1h\";r=3;t=3600"
        );
        assert_eq!(out["x-ratelimit-limit"], "1000");
        assert_eq!(out["x-ratelimit-remaining"], "3");
        assert_eq!(out["x-ratelimit-reset"], "3600");
        let mut only_ietf = HeaderMap::new();
        h.write(true, false, &mut only_ietf);
        assert!(!only_ietf.contains_key("x-ratelimit-limit"));
    }

    #[test]
    fn reset_rounds_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }
}
