//! Connection-level protection, decided at accept before any TLS or HTTP work: the per-IP
//! cap on open connections, the per-IP rate of new ones (GCRA), bans by peer IP, and the
//! deadline for a connection's first request.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use turnpike_config::model::ConnectionRate;

use super::table::Record;
use super::{Protection, ProtectionStats, Settings, micros};
use crate::pipeline::ConnCtx;

/// Summaries of refused connections are logged at most this often.
const WARN_EVERY_US: u64 = 10_000_000;

/// New connections per period as GCRA: one every `interval_us`, bursts up to `window_us`.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    interval_us: u64,
    window_us: u64,
}

impl Rate {
    pub(super) fn new(r: &ConnectionRate) -> Self {
        let window_us = micros(r.per.as_std()).max(1);
        Self {
            interval_us: (window_us / u64::from(r.limit.max(1))).max(1),
            window_us,
        }
    }
}

/// What is known about one peer IP's connections.
#[derive(Debug, Default)]
pub(super) struct ConnRecord {
    /// Open connections counted against the cap.
    open: u32,
    /// GCRA theoretical arrival time, in clock microseconds.
    tat: u64,
}

impl Record for ConnRecord {
    fn expired(&self, now_us: u64) -> bool {
        self.open == 0 && self.tat <= now_us
    }

    fn evictable(&self) -> bool {
        self.open == 0
    }
}

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    TooMany,
    TooFast,
    Banned,
}

/// Held by a connection for as long as it lives: gives its slot back to the per-IP cap
/// and carries the flag that its first request arrived.
#[derive(Debug)]
pub struct ConnGuard {
    /// Set when the connection counts against its IP's cap.
    counted: Option<(Arc<Protection>, IpAddr)>,
    first_request: AtomicBool,
}

impl ConnGuard {
    /// A guard that counts nothing (protection off, or connections made by tests).
    pub fn uncounted() -> Self {
        Self {
            counted: None,
            first_request: AtomicBool::new(false),
        }
    }

    /// Marks that a request arrived, so the first-request deadline no longer applies.
    pub fn request_seen(&self) {
        if !self.first_request.load(Ordering::Relaxed) {
            self.first_request.store(true, Ordering::Relaxed);
        }
    }

    /// Completes when `limit` has passed without any request on this connection; never
    /// completes otherwise. hyper's own header timeout starts only once it is reading a
    /// request head, which the HTTP/1-or-2 detection and an HTTP/2 preface precede: a
    /// connection that sends nothing, or dribbles the preface, would otherwise stay open.
    pub async fn first_request_deadline(&self, limit: Duration) {
        tokio::time::sleep(limit).await;
        if self.first_request.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }
}

/// Serves a connection, closing it if no request has arrived within `limit`: slowloris
/// protection for what hyper's header timeout does not cover (see [`ConnGuard`]).
pub(crate) async fn first_request_within(
    conn: &ConnCtx,
    serving: impl Future<Output = ()>,
    limit: Duration,
) {
    tokio::select! {
        () = serving => {}
        () = conn.guard.first_request_deadline(limit) => {
            tracing::debug!(peer = %conn.peer, "no request within the header read timeout: closed");
            conn.shared.protection().slow_client_cut();
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some((protection, ip)) = self.counted.take() {
            let now = protection.clock.now_us();
            protection.conns.update(ip, |r| {
                r.open = r.open.saturating_sub(1);
                ((), !r.expired(now))
            });
        }
    }
}

impl Protection {
    /// Decides at accept whether `ip` may open another connection; `None` means close it
    /// now. Each refusal is counted and logged at debug, with a periodic warn summary.
    pub fn admit_connection(
        self: &Arc<Self>,
        settings: &Settings,
        ip: IpAddr,
    ) -> Option<ConnGuard> {
        let mut guard = ConnGuard::uncounted();
        let refusal = if self.banned_for(settings, ip).is_some() {
            Some(Refusal::Banned)
        } else if settings.max_connections_per_ip.is_some() || settings.new_connections.is_some() {
            let now = self.clock.now_us();
            let refusal = self.conns.with(ip, now, |r| take_slot(r, settings, now));
            if refusal.is_none() && settings.max_connections_per_ip.is_some() {
                guard.counted = Some((self.clone(), ip));
            }
            refusal
        } else {
            None
        };
        match refusal {
            None => Some(guard),
            Some(why) => {
                self.refused(ip, why);
                None
            }
        }
    }

    fn refused(&self, ip: IpAddr, why: Refusal) {
        let stats = &self.stats;
        ProtectionStats::add(match why {
            Refusal::TooMany => &stats.connections_refused_per_ip,
            Refusal::TooFast => &stats.connections_rate_limited,
            Refusal::Banned => &stats.connections_refused_banned,
        });
        tracing::debug!(%ip, reason = ?why, "connection refused at accept");
        if self.warn.due(self.clock.now_us()) {
            let c = self.counts();
            tracing::warn!(
                too_many_per_ip = c.connections_refused_per_ip,
                too_fast_per_ip = c.connections_rate_limited,
                banned = c.connections_refused_banned,
                "connections refused at accept (totals since start)"
            );
        }
    }
}

/// The cap, then the rate; a refused connection takes nothing.
fn take_slot(r: &mut ConnRecord, settings: &Settings, now: u64) -> Option<Refusal> {
    if settings
        .max_connections_per_ip
        .is_some_and(|max| r.open >= max)
    {
        return Some(Refusal::TooMany);
    }
    if let Some(rate) = settings.new_connections {
        let next = r.tat.max(now) + rate.interval_us;
        if next - now > rate.window_us {
            return Some(Refusal::TooFast);
        }
        r.tat = next;
    }
    if settings.max_connections_per_ip.is_some() {
        r.open += 1;
    }
    None
}

/// Lets one caller through per period: a lock-free "log at most every 10 s".
#[derive(Debug, Default)]
pub(super) struct WarnEvery {
    last_us: AtomicU64,
}

impl WarnEvery {
    pub(super) fn due(&self, now_us: u64) -> bool {
        let last = self.last_us.load(Ordering::Relaxed);
        (last == 0 || now_us.saturating_sub(last) >= WARN_EVERY_US)
            && self
                .last_us
                .compare_exchange(last, now_us.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_config::units;

    fn settings(max: Option<u32>, rate: Option<(u32, u64)>) -> Settings {
        Settings {
            max_connections_per_ip: max,
            new_connections: rate.map(|(limit, ms)| {
                Rate::new(&ConnectionRate {
                    limit,
                    per: units::Duration::from_millis(ms),
                })
            }),
            ..Settings::default()
        }
    }

    #[test]
    fn the_cap_counts_open_connections() {
        let p = Arc::new(Protection::new());
        let s = settings(Some(2), None);
        let ip: IpAddr = "10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        let a = p.admit_connection(&s, ip);
        let b = p.admit_connection(&s, ip);
        assert!(a.is_some() && b.is_some());
        assert!(p.admit_connection(&s, ip).is_none());
        drop(a);
        assert!(p.admit_connection(&s, ip).is_some());
        assert_eq!(p.counts().connections_refused_per_ip, 1);
    }

    #[test]
    fn the_rate_allows_a_burst_then_refuses() {
        let p = Arc::new(Protection::new());
        let s = settings(None, Some((3, 60_000)));
        let ip: IpAddr = "10.0.0.2".parse().unwrap_or_else(|e| panic!("{e}"));
        let admitted = (0..10)
            .filter(|_| p.admit_connection(&s, ip).is_some())
            .count();
        assert_eq!(admitted, 3);
        assert_eq!(p.counts().connections_rate_limited, 7);
    }

    #[test]
    fn a_million_ips_opening_connections_stay_bounded() {
        let p = Arc::new(Protection::new());
        let s = settings(Some(4), Some((10, 60_000)));
        let mut held = Vec::new();
        for n in 0..1_000_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(n.wrapping_mul(2_654_435_761)));
            let guard = p.admit_connection(&s, ip);
            // A few stay open, as real connections would.
            if n % 1000 == 0 {
                held.push(guard);
            }
        }
        assert!(
            p.conns.len() <= super::super::TABLE_CAPACITY,
            "{}",
            p.conns.len()
        );
        drop(held);
    }
}
