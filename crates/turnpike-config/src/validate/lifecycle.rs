//! Lifecycle checks: dates that parse and come in order, a deprecation that says when,
//! and a link that is safe to put in a header (see [`Lifecycle::problems`]).

use super::Checker;
use crate::de::Parsed;
use crate::model::Lifecycle;

pub(super) fn check(c: &mut Checker<'_>, parsed: &Parsed) {
    let config = &parsed.config;
    if let Some(l) = &config.policies.lifecycle {
        lifecycle(c, "policies.lifecycle", l);
    }
    for (upstream, i) in config.upstreams.iter().zip(&parsed.upstream_at) {
        if let Some(l) = &upstream.policies.lifecycle {
            lifecycle(c, &format!("upstreams[{i}].policies.lifecycle"), l);
        }
    }
    for (route, i) in config.routes.iter().zip(&parsed.route_at) {
        if let Some(l) = &route.lifecycle {
            lifecycle(c, &format!("routes[{i}].lifecycle"), l);
        }
    }
}

fn lifecycle(c: &mut Checker<'_>, at: &str, l: &Lifecycle) {
    for (field, message) in l.problems() {
        c.err(format!("{at}.{field}"), message);
    }
}
