//! The rate-limit / quota phase of one request, in this order: rate limits (the route's
//! and the consumer's plan's, all-or-nothing), then an in-flight slot (which may queue),
//! then the quota. The quota comes last so a request refused earlier costs nothing.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use smallvec::SmallVec;
use turnpike_state::{Decision, Limit, Permit};

use super::Traffic;
use super::headers::{Item, LimitHeaderValues, LimitHeaders, ceil_secs};
use super::limits::{ConsumerLimits, KeyCtx, RouteTraffic};

/// The request may go on; what it keeps until its response is done.
#[derive(Debug, Default)]
pub struct Granted {
    /// The in-flight slot; dropping it frees the slot.
    pub permit: Option<Permit>,
    /// Rate-limit headers for the response.
    pub headers: LimitHeaderValues,
    /// The consumer whose quota an upstream-reported cost is charged to.
    pub quota_owner: Option<(Box<str>, Arc<ConsumerLimits>)>,
}

/// A refusal: 429 (limit, quota, concurrency) or 503 (counters unreachable, fail closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub headers: HeaderMap,
}

impl Limited {
    fn unavailable() -> Box<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Box::new(Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "rate_limit_unavailable",
            message: "the rate-limit service cannot be reached; retry shortly".to_owned(),
            headers,
        })
    }

    fn too_many(code: &'static str, message: String, retry: u64, headers: HeaderMap) -> Box<Self> {
        let mut headers = headers;
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry.max(1)));
        Box::new(Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code,
            message,
            headers,
        })
    }
}

impl Traffic {
    /// Runs the phase for one request; `now` is the Unix time in seconds.
    pub async fn check(
        &self,
        route: &RouteTraffic,
        ctx: &KeyCtx<'_>,
        now: i64,
    ) -> Result<Granted, Box<Limited>> {
        let consumer = ctx
            .identity
            .filter(|i| !i.anonymous)
            .and_then(|i| self.consumers.get_key_value(&*i.consumer.name));
        let mut granted = Granted::default();
        let mut out = LimitHeaders::default();
        self.rate_limits(route, consumer.map(|(_, c)| &**c), ctx, &mut out)
            .await?;
        if let Some(conc) = &route.concurrency {
            let mut key = Vec::with_capacity(64);
            conc.key(ctx, &mut key);
            let permit = self
                .state
                .concurrency
                .acquire(&key, conc.limit, conc.queue)
                .await
                .map_err(|_| {
                    let msg = "too many requests are in progress; retry shortly".to_owned();
                    Limited::too_many("too_many_concurrent_requests", msg, 1, HeaderMap::new())
                })?;
            granted.permit = Some(permit);
        }
        if let Some((name, limits)) = consumer {
            if let Some(quota) = &limits.quota {
                // Boxed: only consumers with a quota pay for its large future.
                Box::pin(self.quota(name, quota, route.cost, now, &mut out)).await?;
                granted.quota_owner = Some((name.clone(), limits.clone()));
            }
        }
        granted.headers = out.finish(self.headers.ietf, self.headers.legacy);
        Ok(granted)
    }

    async fn rate_limits(
        &self,
        route: &RouteTraffic,
        consumer: Option<&ConsumerLimits>,
        ctx: &KeyCtx<'_>,
        out: &mut LimitHeaders,
    ) -> Result<(), Box<Limited>> {
        let route_limits = route.rate.as_ref().map_or(&[][..], |r| &r.limits[..]);
        let plan_limits = consumer.map_or(&[][..], |c| &c.limits[..]);
        if route_limits.is_empty() && plan_limits.is_empty() {
            return Ok(());
        }
        // Inline up to four limits: no list allocations on the common path.
        let all: SmallVec<[_; 4]> = route_limits.iter().chain(plan_limits).collect();
        let keys: SmallVec<[Vec<u8>; 4]> = all
            .iter()
            .map(|l| {
                let mut buf = Vec::with_capacity(48);
                l.key(ctx, &mut buf);
                buf
            })
            .collect();
        let pairs: SmallVec<[(&[u8], Limit); 4]> = keys
            .iter()
            .map(|k| &k[..])
            .zip(all.iter().map(|l| l.limit))
            .collect();
        let fail = route
            .rate
            .as_ref()
            .and_then(|r| r.fail)
            .unwrap_or(self.fail);
        let decisions = self
            .state
            .limiter
            .check(&pairs, 1, fail)
            .await
            .map_err(|_| Limited::unavailable())?;
        out.push_policy_value(route.rate.as_ref().and_then(|r| r.policy_value.as_ref()));
        out.push_policy_value(consumer.and_then(|c| c.policy_value.as_ref()));
        for (l, d) in all.iter().zip(decisions.iter()) {
            out.push(Item {
                name: &l.name,
                quota: l.limit.rate,
                remaining: d.remaining,
                reset: d.reset_after,
            });
        }
        refuse_if_limited(&decisions, out, self)
    }

    async fn quota(
        &self,
        name: &str,
        quota: &super::limits::QuotaRt,
        cost: u64,
        now: i64,
        out: &mut LimitHeaders,
    ) -> Result<(), Box<Limited>> {
        let q = self
            .state
            .quotas
            .charge(name, quota.limit, quota.period, &self.tz, cost, self.fail)
            .await
            .map_err(|_| Limited::unavailable())?;
        let left = u64::try_from(q.resets_at.saturating_sub(now)).unwrap_or(0);
        out.push_policy(&format!("\"{}\";q={}", quota.name, quota.limit));
        out.push(Item {
            name: quota.name,
            quota: quota.limit,
            remaining: q.remaining,
            reset: Duration::from_secs(left),
        });
        if q.allowed {
            return Ok(());
        }
        let resets = jiff::Timestamp::from_second(q.resets_at)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let msg = format!(
            "the quota of {} requests per {} is used up; it resets at {resets}",
            quota.limit,
            if quota.name == "quota-day" {
                "day"
            } else {
                "month"
            }
        );
        let mut headers = HeaderMap::new();
        std::mem::take(out).write(self.headers.ietf, self.headers.legacy, &mut headers);
        Err(Limited::too_many("quota_exceeded", msg, left, headers))
    }

    /// Charges what the upstream reported beyond the route's fixed cost; never refuses
    /// (the response is already on its way). Awaited, so the next request sees it.
    pub async fn charge_reported(&self, granted: &Granted, route: &RouteTraffic, resp: &HeaderMap) {
        let (Some(name_header), Some((name, limits))) = (&route.cost_header, &granted.quota_owner)
        else {
            return;
        };
        let Some(quota) = &limits.quota else { return };
        let reported = resp
            .get(name_header)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let Some(extra) = reported
            .and_then(|r| r.checked_sub(route.cost))
            .filter(|e| *e > 0)
        else {
            return;
        };
        self.state
            .quotas
            .add(name, quota.period, &self.tz, extra)
            .await;
    }
}

fn refuse_if_limited(
    decisions: &[Decision],
    out: &mut LimitHeaders,
    t: &Traffic,
) -> Result<(), Box<Limited>> {
    let retry = decisions
        .iter()
        .filter(|d| !d.allowed)
        .map(|d| ceil_secs(d.retry_after))
        .max();
    let Some(retry) = retry else { return Ok(()) };
    let mut headers = HeaderMap::new();
    std::mem::take(out).write(t.headers.ietf, t.headers.legacy, &mut headers);
    let msg = format!("the rate limit is exceeded; retry in {} s", retry.max(1));
    Err(Limited::too_many("rate_limited", msg, retry, headers))
}
