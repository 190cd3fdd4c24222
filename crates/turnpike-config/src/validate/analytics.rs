//! The `analytics:` section: a flush interval shorter than the minute it flushes, a node
//! id that can be shown and stored, and retentions that grow with the resolution.

use super::Checker;
use crate::de::Parsed;
use crate::model::Analytics;
use crate::units::Duration;

/// Closed minutes must reach the store well within the next minute.
const MAX_FLUSH: Duration = Duration::from_secs(60);
const MIN_FLUSH: Duration = Duration::from_millis(100);
/// A node id is a label in the API and a key column in the store.
const MAX_NODE_ID: usize = 200;

pub(super) fn check(c: &mut Checker<'_>, parsed: &Parsed) {
    let a = &parsed.config.analytics;
    if !(MIN_FLUSH..=MAX_FLUSH).contains(&a.flush_interval) {
        let msg = format!(
            "must be between 100ms and 60s (closed minutes are written this often), found {}",
            a.flush_interval
        );
        c.err("analytics.flush_interval", msg);
    }
    if let Some(id) = &a.node_id {
        node_id(c, id);
    }
    retention(c, a);
}

fn node_id(c: &mut Checker<'_>, id: &str) {
    let bad = id.is_empty()
        || id.len() > MAX_NODE_ID
        || id.chars().any(|ch| ch.is_control() || ch.is_whitespace());
    if bad {
        let msg = format!(
            "must be 1 to {MAX_NODE_ID} bytes without spaces or control characters, found {id:?}"
        );
        c.err("analytics.node_id", msg);
    }
}

/// Each resolution must outlive the one below it: an hour is rolled up from an hour of
/// minutes, a day from a day of hours.
fn retention(c: &mut Checker<'_>, a: &Analytics) {
    let r = &a.retention;
    let hour = Duration::from_secs(3_600);
    let day = Duration::from_secs(86_400);
    if r.minute < hour {
        let msg = format!(
            "must be at least 1h (minutes are rolled into hours), found {}",
            r.minute
        );
        c.err("analytics.retention.minute", msg);
    }
    if r.hour < day || r.hour <= r.minute {
        let msg = format!(
            "must be at least 1d and longer than `retention.minute` ({}), found {}",
            r.minute, r.hour
        );
        c.err("analytics.retention.hour", msg);
    }
    if r.day <= r.hour {
        let msg = format!(
            "must be longer than `retention.hour` ({}), found {}",
            r.hour, r.day
        );
        c.err("analytics.retention.day", msg);
    }
}
