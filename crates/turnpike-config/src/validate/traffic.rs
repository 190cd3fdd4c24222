//! Traffic-control checks: a state URL that can work, limits that can be met, plans that
//! exist, and counter keys that mean something.

use std::collections::HashSet;

use super::Checker;
use crate::de::Parsed;
use crate::lexical;
use crate::model::{ConcurrencyLimit, Cost, LimitKey, Policies, RateLimit, Traffic};
use crate::units::Duration;

pub(super) fn check(c: &mut Checker<'_>, parsed: &Parsed) {
    let config = &parsed.config;
    traffic(c, &config.traffic);
    let plans: Vec<(String, &crate::model::Plan)> = config
        .plans
        .iter()
        .zip(&parsed.plan_at)
        .map(|(p, i)| (format!("plans[{i}]"), p))
        .collect();
    c.unique_names(
        "plan",
        plans.iter().map(|(at, p)| (at.as_str(), p.name.as_str())),
    );
    for (at, plan) in &plans {
        per_consumer_limits(c, &format!("{at}.rate_limits"), &plan.rate_limits);
        if let Some(q) = &plan.quota {
            c.at_least(format!("{at}.quota.limit"), q.limit, 1);
        }
    }
    for (consumer, i) in config.consumers.iter().zip(&parsed.consumer_at) {
        let at = format!("consumers[{i}]");
        if let Some(plan) = &consumer.plan {
            if !config.plans.iter().any(|p| &p.name == plan) {
                let msg = format!("unknown plan `{plan}`{}", known(&config.plans));
                c.err(format!("{at}.plan"), msg);
            }
        }
        if let Some(limits) = &consumer.rate_limits {
            per_consumer_limits(c, &format!("{at}.rate_limits"), limits);
        }
        if let Some(q) = &consumer.quota {
            c.at_least(format!("{at}.quota.limit"), q.limit, 1);
        }
    }
    policies(c, "policies", &config.policies);
    for (upstream, i) in config.upstreams.iter().zip(&parsed.upstream_at) {
        policies(c, &format!("upstreams[{i}].policies"), &upstream.policies);
    }
    for (route, i) in config.routes.iter().zip(&parsed.route_at) {
        let at = format!("routes[{i}]");
        if let Some(p) = &route.rate_limit {
            rate_limits(c, &format!("{at}.rate_limit"), &p.limits);
        }
        if let Some(conc) = &route.concurrency {
            concurrency(c, &format!("{at}.concurrency"), conc);
        }
        if let Some(cost) = &route.cost {
            self::cost(c, &format!("{at}.cost"), cost);
        }
    }
    quotas_need_consumers(c, parsed);
}

fn known(plans: &[crate::model::Plan]) -> String {
    if plans.is_empty() {
        return " (no `plans` are defined)".to_owned();
    }
    let names: Vec<_> = plans.iter().map(|p| format!("`{}`", p.name)).collect();
    format!(" (known plans: {})", names.join(", "))
}

fn traffic(c: &mut Checker<'_>, t: &Traffic) {
    if let Some(url) = t.redis_url() {
        if let Err(msg) = redis_url(url) {
            c.err("traffic.state", msg);
        }
    }
    let timeout = t.redis_timeout.as_std();
    if timeout.is_zero() || timeout > std::time::Duration::from_secs(10) {
        let msg = "must be between 1ms and 10s: it is how long a request may wait on Redis";
        c.err("traffic.redis_timeout", msg);
    }
    c.at_least("traffic.max_keys".to_owned(), t.max_keys as u64, 1000);
    if t.quota_file.trim().is_empty() {
        c.err("traffic.quota_file", "must not be empty");
    }
    if jiff::tz::TimeZone::get(&t.time_zone).is_err() {
        let msg = format!(
            "unknown time zone {:?}: expected an IANA name such as \"UTC\" or \"Europe/Berlin\"",
            t.time_zone
        );
        c.err("traffic.time_zone", msg);
    }
}

fn redis_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
        .ok_or_else(|| {
            format!("expected `memory` or a `redis://` or `rediss://` URL, found {url:?}")
        })?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("the Redis URL {url:?} names no host"));
    }
    Ok(())
}

fn policies(c: &mut Checker<'_>, at: &str, p: &Policies) {
    if let Some(rl) = &p.rate_limit {
        rate_limits(c, &format!("{at}.rate_limit"), &rl.limits);
    }
    if let Some(conc) = &p.concurrency {
        concurrency(c, &format!("{at}.concurrency"), conc);
    }
}

fn rate_limits(c: &mut Checker<'_>, at: &str, limits: &[RateLimit]) {
    if limits.is_empty() {
        c.err(format!("{at}.limits"), "needs at least one limit");
    }
    let mut names = HashSet::new();
    for (i, limit) in limits.iter().enumerate() {
        let at = format!("{at}.limits[{i}]");
        one_limit(c, &at, limit);
        keys(c, &format!("{at}.by"), &limit.by);
        if !names.insert(limit.display_name()) {
            let msg = format!(
                "two limits are named `{}`; give each a distinct `name`",
                limit.display_name()
            );
            c.err(format!("{at}.limit"), msg);
        }
    }
}

/// Plan and consumer limits are always counted per consumer.
fn per_consumer_limits(c: &mut Checker<'_>, at: &str, limits: &[RateLimit]) {
    for (i, limit) in limits.iter().enumerate() {
        let at = format!("{at}[{i}]");
        one_limit(c, &at, limit);
        if !limit.by.is_empty() {
            let msg = "plan and consumer limits count per consumer; `by` belongs on a route's `rate_limit`";
            c.err_key(format!("{at}.by"), msg);
        }
    }
}

fn one_limit(c: &mut Checker<'_>, at: &str, limit: &RateLimit) {
    c.at_least(format!("{at}.limit"), limit.limit, 1);
    if let Some(burst) = limit.burst {
        c.at_least(format!("{at}.burst"), burst, 1);
    }
    let period = limit.per.0.as_std();
    if period < std::time::Duration::from_secs(1)
        || period > std::time::Duration::from_secs(31 * 86_400)
    {
        c.err(format!("{at}.per"), "must be between 1s and 31d");
    }
    if let Some(name) = &limit.name {
        let plain = !name.is_empty()
            && name
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if !plain {
            let msg =
                "must be printable ASCII without `\"` or `\\` (it is sent in `RateLimit-Policy`)";
            c.err(format!("{at}.name"), msg);
        }
    }
}

fn keys(c: &mut Checker<'_>, at: &str, by: &[LimitKey]) {
    let mut seen = HashSet::new();
    for (i, key) in by.iter().enumerate() {
        if !seen.insert(key) {
            c.err(format!("{at}[{i}]"), "listed twice");
        }
        if let LimitKey::Header(name) = key {
            if let Err(msg) = lexical::header_name(name) {
                c.err(format!("{at}[{i}]"), msg);
            }
        }
    }
}

fn concurrency(c: &mut Checker<'_>, at: &str, conc: &ConcurrencyLimit) {
    c.at_least(format!("{at}.limit"), u64::from(conc.limit), 1);
    keys(c, &format!("{at}.by"), &conc.by);
    if let Some(q) = &conc.queue {
        c.at_least(format!("{at}.queue.size"), u64::from(q.size), 1);
        if q.timeout.is_zero() || q.timeout > Duration::from_secs(300) {
            c.err(format!("{at}.queue.timeout"), "must be between 1ms and 5m");
        }
    }
}

fn cost(c: &mut Checker<'_>, at: &str, cost: &Cost) {
    if let Some(name) = &cost.header {
        if let Err(msg) = lexical::header_name(name) {
            c.err(format!("{at}.header"), msg);
        }
    }
}

/// A quota counts per consumer; without authentication anywhere it could never apply.
fn quotas_need_consumers(c: &mut Checker<'_>, parsed: &Parsed) {
    let config = &parsed.config;
    let in_plan = config
        .plans
        .iter()
        .zip(&parsed.plan_at)
        .find(|(p, _)| p.quota.is_some())
        .map(|(_, i)| format!("plans[{i}].quota"));
    let in_consumer = || {
        config
            .consumers
            .iter()
            .zip(&parsed.consumer_at)
            .find(|(k, _)| k.quota.is_some())
            .map(|(_, i)| format!("consumers[{i}].quota"))
    };
    let Some(at) = in_plan.or_else(in_consumer) else {
        return;
    };
    let auth = config.policies.auth.is_some()
        || config.routes.iter().any(|r| r.auth.is_some())
        || config.upstreams.iter().any(|u| u.policies.auth.is_some());
    if !auth {
        let msg = "quotas count per consumer, but no route, upstream or `policies` has `auth`";
        c.err_key(at, msg);
    }
}
