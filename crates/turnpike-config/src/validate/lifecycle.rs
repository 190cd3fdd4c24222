//! Lifecycle checks: dates that parse and come in order, a deprecation that says when,
//! and a link that is safe to put in a header.

use super::Checker;
use crate::de::Parsed;
use crate::model::{Lifecycle, LifecycleState};

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
    let deprecated = instant(
        c,
        &format!("{at}.deprecated_at"),
        l.deprecated_at.as_deref(),
    );
    let sunset = instant(c, &format!("{at}.sunset"), l.sunset.as_deref());
    if l.state == LifecycleState::Deprecated && l.deprecated_at.is_none() {
        let msg =
            "a deprecated API needs `deprecated_at` (the `Deprecation` header carries the date)";
        c.err(format!("{at}.state"), msg);
    }
    if let (Some(d), Some(s)) = (deprecated, sunset) {
        if s < d {
            c.err(format!("{at}.sunset"), "must not be before `deprecated_at`");
        }
    }
    if let Some(link) = &l.link {
        let scheme = link.starts_with("https://") || link.starts_with("http://");
        let safe = link
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"'));
        if !scheme || !safe {
            let msg = "expected an absolute http(s) URL without spaces, quotes or angle brackets";
            c.err(format!("{at}.link"), msg);
        }
    }
}

fn instant(c: &mut Checker<'_>, at: &str, value: Option<&str>) -> Option<jiff::Timestamp> {
    let value = value?;
    match value.parse::<jiff::Timestamp>() {
        Ok(t) => Some(t),
        Err(_) => {
            let msg = format!(
                "invalid instant {value:?}: expected RFC 3339, e.g. \"2027-01-01T00:00:00Z\""
            );
            c.err(at, msg);
            None
        }
    }
}
