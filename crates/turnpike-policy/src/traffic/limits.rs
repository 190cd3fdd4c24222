//! Limits compiled from the config, and the counter key each request maps to.
//!
//! A key starts with the limit's scope (where it was defined and its index, so two
//! limits never share a counter) followed by the `by` parts, each length-prefixed so
//! that no header value can make two different keys read the same.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use turnpike_config::Config;
use turnpike_config::model::{self, LimitKey, QuotaPeriod, RateLimit, Route};
use turnpike_state::{FailMode, Limit, Queue};

use crate::auth::Identity;

/// One rate limit, ready to count.
#[derive(Debug, Clone)]
pub struct CompiledLimit {
    scope: Box<str>,
    pub limit: Limit,
    pub by: Box<[LimitKey]>,
    pub name: Box<str>,
    /// Its item of `RateLimit-Policy`: `"name";q=100;w=60`.
    pub policy_item: Box<str>,
}

impl CompiledLimit {
    fn build(scope: String, l: &RateLimit, default_by: &[LimitKey]) -> Self {
        let period = l.per.0.as_std();
        let name = l.display_name();
        let policy_item = format!("\"{name}\";q={};w={}", l.limit, period.as_secs().max(1));
        let by = if l.by.is_empty() { default_by } else { &l.by };
        Self {
            scope: scope.into(),
            limit: Limit {
                rate: l.limit,
                period,
                burst: l.burst(),
            },
            by: by.into(),
            name: name.into(),
            policy_item: policy_item.into(),
        }
    }

    /// Writes this request's counter key into `buf` (cleared first).
    pub fn key(&self, ctx: &KeyCtx<'_>, buf: &mut Vec<u8>) {
        buf.clear();
        buf.extend_from_slice(self.scope.as_bytes());
        write_parts(&self.by, ctx, buf);
    }
}

/// What a counter key may be made of.
#[derive(Debug, Clone, Copy)]
pub struct KeyCtx<'a> {
    pub route: &'a str,
    pub client_ip: IpAddr,
    pub identity: Option<&'a Identity>,
    pub headers: &'a HeaderMap,
}

fn write_parts(by: &[LimitKey], ctx: &KeyCtx<'_>, buf: &mut Vec<u8>) {
    for part in by {
        let start = buf.len();
        // Placeholder for the length, filled in once the part is written.
        buf.extend_from_slice(&[0, 0, 0, 0]);
        let identity = ctx.identity.filter(|i| !i.anonymous);
        match part {
            LimitKey::Consumer => match identity {
                Some(i) => {
                    buf.extend_from_slice(b"c:");
                    buf.extend_from_slice(i.consumer.name.as_bytes());
                }
                None => ip_part(ctx.client_ip, buf),
            },
            LimitKey::Credential => match identity.and_then(|i| i.credential.as_ref()) {
                Some(cred) => {
                    buf.extend_from_slice(b"k:");
                    buf.extend_from_slice(cred.as_bytes());
                }
                None => ip_part(ctx.client_ip, buf),
            },
            LimitKey::Ip => ip_part(ctx.client_ip, buf),
            LimitKey::Route => buf.extend_from_slice(ctx.route.as_bytes()),
            LimitKey::Header(name) => {
                if let Some(v) = ctx.headers.get(name.as_str()) {
                    buf.extend_from_slice(v.as_bytes());
                }
            }
        }
        let len = u32::try_from(buf.len() - start - 4).unwrap_or(u32::MAX);
        buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// The address's raw octets: no text formatting on the request path.
fn ip_part(ip: IpAddr, buf: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => {
            buf.extend_from_slice(b"i4:");
            buf.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            buf.extend_from_slice(b"i6:");
            buf.extend_from_slice(&v6.octets());
        }
    }
}

/// A route's rate limits (all must allow).
#[derive(Debug, Clone)]
pub struct RateLimitRt {
    pub limits: Vec<CompiledLimit>,
    pub fail: Option<FailMode>,
    /// The route's items of `RateLimit-Policy`, joined, as a ready header value.
    pub policy_value: Option<HeaderValue>,
}

/// In-flight slots for a route.
#[derive(Debug, Clone)]
pub struct ConcurrencyRt {
    scope: Box<str>,
    pub limit: u32,
    pub by: Box<[LimitKey]>,
    pub queue: Option<Queue>,
}

impl ConcurrencyRt {
    pub fn key(&self, ctx: &KeyCtx<'_>, buf: &mut Vec<u8>) {
        buf.clear();
        buf.extend_from_slice(self.scope.as_bytes());
        write_parts(&self.by, ctx, buf);
    }
}

/// One route's traffic policies.
#[derive(Debug, Clone, Default)]
pub struct RouteTraffic {
    pub rate: Option<RateLimitRt>,
    pub concurrency: Option<ConcurrencyRt>,
    /// Charged to the consumer's quota before the request goes upstream.
    pub cost: u64,
    /// The upstream reports the real cost here; the excess is charged afterwards.
    pub cost_header: Option<HeaderName>,
}

impl RouteTraffic {
    /// `route`'s policies over its upstream's over the global ones.
    pub fn build(route: &Route, cfg: &Config) -> Self {
        let service = cfg
            .upstreams
            .iter()
            .find(|u| u.name == route.upstream)
            .map(|u| (&u.policies, u.name.as_str()));
        let rate = route
            .rate_limit
            .as_ref()
            .map(|p| (p, format!("r:{}", route.name)))
            .or_else(|| {
                service.and_then(|(p, n)| p.rate_limit.as_ref().map(|r| (r, format!("u:{n}"))))
            })
            .or_else(|| {
                cfg.policies
                    .rate_limit
                    .as_ref()
                    .map(|r| (r, "g".to_owned()))
            });
        let concurrency = route
            .concurrency
            .as_ref()
            .map(|c| (c, format!("r:{}", route.name)))
            .or_else(|| {
                service.and_then(|(p, n)| p.concurrency.as_ref().map(|c| (c, format!("u:{n}"))))
            })
            .or_else(|| {
                cfg.policies
                    .concurrency
                    .as_ref()
                    .map(|c| (c, "g".to_owned()))
            });
        let cost = route.cost.as_ref();
        Self {
            rate: rate.map(|(p, scope)| rate_rt(p, &scope)),
            concurrency: concurrency.map(|(c, scope)| ConcurrencyRt {
                scope: format!("{scope}|").into(),
                limit: c.limit,
                by: c.by.as_slice().into(),
                queue: c.queue.as_ref().map(|q| Queue {
                    max_waiting: q.size,
                    timeout: q.timeout.as_std(),
                }),
            }),
            cost: cost.map_or(1, |c| c.weight),
            cost_header: cost
                .and_then(|c| c.header.as_deref())
                .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rate.is_none() && self.concurrency.is_none()
    }
}

fn rate_rt(p: &model::RateLimitPolicy, scope: &str) -> RateLimitRt {
    let limits: Vec<CompiledLimit> = p
        .limits
        .iter()
        .enumerate()
        .map(|(i, l)| CompiledLimit::build(format!("{scope}:{i}|"), l, &[LimitKey::Consumer]))
        .collect();
    let policy_value = super::headers::policy_value(&join_items(&limits));
    RateLimitRt {
        limits,
        fail: p.fail.map(super::fail_mode),
        policy_value,
    }
}

fn join_items(limits: &[CompiledLimit]) -> String {
    let items: Vec<&str> = limits.iter().map(|l| &*l.policy_item).collect();
    items.join(", ")
}

/// A consumer's quota.
#[derive(Debug, Clone)]
pub struct QuotaRt {
    pub limit: u64,
    pub period: turnpike_state::QuotaPeriod,
    /// Its name in the `RateLimit` headers: `quota-day` or `quota-month`.
    pub name: &'static str,
}

/// What a consumer's plan (or its own override) allows on every route.
#[derive(Debug, Clone, Default)]
pub struct ConsumerLimits {
    pub limits: Vec<CompiledLimit>,
    pub quota: Option<QuotaRt>,
    /// Its limits' items of `RateLimit-Policy`, as a ready header value.
    pub policy_value: Option<HeaderValue>,
}

/// Per consumer with a plan or limits of its own.
pub fn consumer_limits(cfg: &Config) -> foldhash::HashMap<Box<str>, Arc<ConsumerLimits>> {
    let mut out = foldhash::HashMap::default();
    for c in &cfg.consumers {
        let plan = c
            .plan
            .as_ref()
            .and_then(|name| cfg.plans.iter().find(|p| &p.name == name));
        let (limits, scope) = match (&c.rate_limits, plan) {
            (Some(own), _) => (own.as_slice(), format!("k:{}", c.name)),
            (None, Some(plan)) => (plan.rate_limits.as_slice(), format!("p:{}", plan.name)),
            (None, None) => (&[][..], String::new()),
        };
        let quota = c.quota.as_ref().or(plan.and_then(|p| p.quota.as_ref()));
        if limits.is_empty() && quota.is_none() {
            continue;
        }
        let limits: Vec<CompiledLimit> = limits
            .iter()
            .enumerate()
            .map(|(i, l)| CompiledLimit::build(format!("{scope}:{i}|"), l, &[LimitKey::Consumer]))
            .collect();
        let quota = quota.map(|q| QuotaRt {
            limit: q.limit,
            period: match q.per {
                QuotaPeriod::Day => turnpike_state::QuotaPeriod::Day,
                QuotaPeriod::Month => turnpike_state::QuotaPeriod::Month,
            },
            name: match q.per {
                QuotaPeriod::Day => "quota-day",
                QuotaPeriod::Month => "quota-month",
            },
        });
        let policy_value = super::headers::policy_value(&join_items(&limits));
        let entry = ConsumerLimits {
            limits,
            quota,
            policy_value,
        };
        out.insert(c.name.as_str().into(), Arc::new(entry));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::Consumer;

    fn limit(by: &[LimitKey]) -> CompiledLimit {
        let l: RateLimit =
            serde_json::from_value(serde_json::json!({"limit": 1, "per": "second"})).unwrap();
        CompiledLimit::build("s|".to_owned(), &l, by)
    }

    fn identity(name: &str, anonymous: bool) -> Identity {
        Identity {
            consumer: Arc::new(Consumer::new(name, &[])),
            credential: Some(http::HeaderValue::from_static("key-1")),
            scopes: None,
            claims: Arc::new([]),
            anonymous,
            hide: None,
        }
    }

    fn key(l: &CompiledLimit, identity: Option<&Identity>, ip: &str) -> Vec<u8> {
        let headers = HeaderMap::new();
        let ctx = KeyCtx {
            route: "r",
            client_ip: ip.parse().unwrap(),
            identity,
            headers: &headers,
        };
        let mut buf = Vec::new();
        l.key(&ctx, &mut buf);
        buf
    }

    #[test]
    fn consumers_share_a_counter_across_ips_and_anonymous_callers_do_not() {
        let l = limit(&[LimitKey::Consumer]);
        let alice = identity("alice", false);
        assert_eq!(
            key(&l, Some(&alice), "10.0.0.1"),
            key(&l, Some(&alice), "10.0.0.2")
        );
        let anon = identity("anonymous", true);
        assert_ne!(
            key(&l, Some(&anon), "10.0.0.1"),
            key(&l, Some(&anon), "10.0.0.2")
        );
        assert_eq!(key(&l, Some(&anon), "10.0.0.1"), key(&l, None, "10.0.0.1"));
        // A consumer named like an address does not share the address's counter.
        let sly = identity("i:10.0.0.1", false);
        assert_ne!(key(&l, Some(&sly), "10.0.0.9"), key(&l, None, "10.0.0.1"));
    }

    #[test]
    fn credential_keys_fall_back_to_the_ip() {
        let l = limit(&[LimitKey::Credential, LimitKey::Route]);
        let alice = identity("alice", false);
        let k = key(&l, Some(&alice), "10.0.0.1");
        assert!(k.windows(7).any(|w| w == b"k:key-1"), "{k:?}");
        assert_eq!(key(&l, None, "10.0.0.1"), key(&l, None, "10.0.0.1"));
        assert_ne!(key(&l, None, "10.0.0.1"), key(&l, None, "10.0.0.2"));
    }
}
