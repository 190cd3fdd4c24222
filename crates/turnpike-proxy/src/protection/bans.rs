//! Temporary bans: a client IP whose requests the gateway itself rejected `threshold`
//! times within `within` is banned for `ban_for`; the ban lifts by itself. Networks in
//! `never` are never banned.
//!
//! Only the gateway's own refusals count (malformed, unauthenticated, forbidden, unrouted,
//! too slow, too large, rate limited), never an upstream's answer, nor a ban or a shed.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;
use ipnet::IpNet;
use turnpike_config::model::Bans;

use super::table::{IpTable, Record};
use super::{Protection, ProtectionStats, listed, micros};

/// Precompiled `server.protection.bans`.
#[derive(Debug, Clone)]
pub struct BanSettings {
    threshold: u32,
    within_us: u64,
    ban_for_us: u64,
    never: Vec<IpNet>,
}

impl BanSettings {
    pub(super) fn new(b: &Bans) -> Self {
        Self {
            threshold: b.threshold.max(1),
            within_us: micros(b.within.as_std()).max(1),
            ban_for_us: micros(b.ban_for.as_std()).max(1),
            never: b.never.clone(),
        }
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        // An unreadable forwarded address is reported as unspecified; banning it would
        // ban every such client at once.
        ip.is_unspecified() || listed(&self.never, ip)
    }
}

/// Statuses of gateway refusals that count towards a ban.
pub(super) fn counts_as_rejection(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        400 | 401 | 403 | 404 | 408 | 413 | 414 | 429 | 431
    )
}

/// Rejections in the current window and the ban, per IP.
#[derive(Debug, Default)]
pub(super) struct BanRecord {
    count: u32,
    window_end: u64,
    banned_until: u64,
}

impl Record for BanRecord {
    fn expired(&self, now_us: u64) -> bool {
        self.banned_until <= now_us && self.window_end <= now_us
    }

    fn evictable(&self) -> bool {
        // Counters may be forgotten before bans are.
        self.banned_until == 0
    }
}

/// The per-IP records, and the end of the latest ban so the common case (nobody banned)
/// costs one atomic load.
#[derive(Debug)]
pub(super) struct BanTable {
    records: IpTable<BanRecord>,
    latest_ban_end: AtomicU64,
}

impl BanTable {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            records: IpTable::new(capacity),
            latest_ban_end: AtomicU64::new(0),
        }
    }

    /// The time left on `ip`'s ban, if it has one.
    pub(super) fn banned_for(
        &self,
        settings: &BanSettings,
        ip: IpAddr,
        now: u64,
    ) -> Option<Duration> {
        if self.latest_ban_end.load(Ordering::Relaxed) <= now || settings.exempt(ip) {
            return None;
        }
        let until = self.records.get(ip, |r| r.banned_until)?;
        (until > now).then(|| Duration::from_micros(until - now))
    }

    /// Counts one rejection of `ip`; bans it when the threshold is reached.
    pub(super) fn record_rejection(&self, settings: &BanSettings, ip: IpAddr, p: &Protection) {
        if settings.exempt(ip) {
            return;
        }
        let now = p.clock.now_us();
        let banned_until = self.records.with(ip, now, |r| {
            if r.banned_until > now {
                return None;
            }
            if r.window_end <= now {
                r.count = 0;
                r.window_end = now + settings.within_us;
            }
            r.count += 1;
            if r.count < settings.threshold {
                return None;
            }
            r.count = 0;
            r.window_end = 0;
            r.banned_until = now + settings.ban_for_us;
            Some(r.banned_until)
        });
        if let Some(until) = banned_until {
            self.latest_ban_end.fetch_max(until, Ordering::Relaxed);
            ProtectionStats::add(&p.stats.bans_applied);
            let secs = Duration::from_micros(settings.ban_for_us).as_secs_f64();
            tracing::warn!(%ip, ban_for_s = secs, rejections = settings.threshold, "client IP banned");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_config::units;

    fn settings(threshold: u32, never: &[&str]) -> BanSettings {
        BanSettings::new(&Bans {
            threshold,
            within: units::Duration::from_secs(60),
            ban_for: units::Duration::from_secs(60),
            never: never
                .iter()
                .map(|n| n.parse().unwrap_or_else(|e| panic!("{n}: {e}")))
                .collect(),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_threshold_bans_and_the_allow_list_never_is() {
        let p = Protection::new();
        let s = settings(3, &["10.9.0.0/16"]);
        for _ in 0..2 {
            p.bans.record_rejection(&s, ip("10.0.0.1"), &p);
        }
        assert!(
            p.bans
                .banned_for(&s, ip("10.0.0.1"), p.clock.now_us())
                .is_none()
        );
        p.bans.record_rejection(&s, ip("10.0.0.1"), &p);
        assert!(
            p.bans
                .banned_for(&s, ip("10.0.0.1"), p.clock.now_us())
                .is_some()
        );
        for _ in 0..10 {
            p.bans.record_rejection(&s, ip("10.9.1.1"), &p);
        }
        assert!(
            p.bans
                .banned_for(&s, ip("10.9.1.1"), p.clock.now_us())
                .is_none()
        );
        assert_eq!(p.counts().bans_applied, 1);
    }

    #[test]
    fn a_million_rejected_ips_stay_bounded() {
        let p = Protection::new();
        let s = settings(2, &[]);
        for n in 0..1_000_000u32 {
            p.bans
                .record_rejection(&s, IpAddr::V4(std::net::Ipv4Addr::from(n | 1 << 24)), &p);
        }
        assert!(p.bans.records.len() <= super::super::TABLE_CAPACITY);
    }
}
