//! Checks of the slow-client settings and `server.protection`: limits that could never
//! admit anything, windows of zero length, and thresholds out of range.

use super::Checker;
use crate::model::{Bans, LoadShedding, MinBodyRate, Server};

/// More in flight than this is not a threshold but a typo.
const MAX_IN_FLIGHT: u64 = 10_000_000;
/// A ban threshold above this would never be reached inside any sensible window.
const MAX_BAN_THRESHOLD: u64 = 1_000_000;

pub(super) fn check(c: &mut Checker<'_>, server: &Server) {
    c.positive(
        "server.body_read_timeout".to_owned(),
        server.body_read_timeout,
    );
    if let Some(rate) = &server.min_body_rate {
        min_body_rate(c, rate);
    }
    let p = &server.protection;
    if let Some(max) = p.max_connections_per_ip {
        in_range(c, "server.protection.max_connections_per_ip", max, 1, None);
    }
    if let Some(rate) = &p.new_connections_per_ip {
        let at = "server.protection.new_connections_per_ip";
        in_range(c, &format!("{at}.limit"), rate.limit, 1, None);
        c.positive(format!("{at}.per"), rate.per);
    }
    if let Some(shed) = &p.load_shedding {
        load_shedding(c, shed);
    }
    if let Some(bans) = &p.bans {
        self::bans(c, bans);
    }
}

fn min_body_rate(c: &mut Checker<'_>, rate: &MinBodyRate) {
    let at = "server.min_body_rate";
    if rate.bytes_per_second.bytes() == 0 {
        c.err(
            format!("{at}.bytes_per_second"),
            "must be at least 1 byte per second (e.g. 1KiB); remove `min_body_rate` to turn it off",
        );
    }
    c.positive(format!("{at}.grace"), rate.grace);
}

fn load_shedding(c: &mut Checker<'_>, shed: &LoadShedding) {
    let at = "server.protection.load_shedding";
    in_range(
        c,
        &format!("{at}.max_in_flight"),
        shed.max_in_flight,
        1,
        Some(MAX_IN_FLIGHT),
    );
    if let Some(latency) = shed.max_latency {
        c.positive(format!("{at}.max_latency"), latency);
    }
    // `Retry-After` carries whole seconds.
    if shed.retry_after.as_std().as_secs() == 0 {
        c.err(
            format!("{at}.retry_after"),
            format!(
                "must be at least 1s (Retry-After counts whole seconds), found {}",
                shed.retry_after
            ),
        );
    }
}

fn bans(c: &mut Checker<'_>, bans: &Bans) {
    let at = "server.protection.bans";
    in_range(
        c,
        &format!("{at}.threshold"),
        bans.threshold,
        1,
        Some(MAX_BAN_THRESHOLD),
    );
    c.positive(format!("{at}.within"), bans.within);
    c.positive(format!("{at}.ban_for"), bans.ban_for);
}

/// `value` must be at least `min` and, when given, at most `max`.
fn in_range(c: &mut Checker<'_>, path: &str, value: u32, min: u64, max: Option<u64>) {
    let value = u64::from(value);
    match max {
        Some(max) if value > max => {
            c.err(path, format!("must be at most {max}, found {value}"));
        }
        _ => c.at_least(path.to_owned(), value, min),
    }
}
