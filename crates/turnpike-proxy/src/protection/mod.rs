//! DDoS and abuse protection: per-IP connection caps and rates at accept ([`conn`]),
//! temporary bans of abusive client IPs ([`bans`]), adaptive load shedding by route
//! priority ([`shed`]), and the counters that make all of it visible.
//!
//! The state ([`Protection`]) lives as long as the gateway and is shared by every worker;
//! the thresholds ([`Settings`]) come from the snapshot, so a reload changes them for the
//! next connection or request. `docs/protection.md` describes the behaviour.

mod bans;
mod conn;
mod shed;
mod table;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Response, StatusCode};
use ipnet::IpNet;
use turnpike_config::model;

pub use conn::ConnGuard;
pub(crate) use conn::first_request_within;
pub use shed::LoadGuard;
pub(crate) use shed::shed;

use crate::body::ResponseBody;
use crate::error::GatewayMade;
use crate::pipeline::ConnCtx;
use crate::snapshot::Snapshot;
use table::Clock;

/// Records kept per table before the oldest idle ones are dropped (a few MB at most).
const TABLE_CAPACITY: usize = 65_536;

/// The thresholds of one config version, precompiled.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub max_connections_per_ip: Option<u32>,
    pub new_connections: Option<conn::Rate>,
    pub shedding: Option<shed::Shedding>,
    pub bans: Option<bans::BanSettings>,
}

impl Settings {
    pub fn build(p: &model::Protection) -> Self {
        Self {
            max_connections_per_ip: p.max_connections_per_ip,
            new_connections: p.new_connections_per_ip.as_ref().map(conn::Rate::new),
            shedding: p.load_shedding.as_ref().map(shed::Shedding::new),
            bans: p.bans.as_ref().map(bans::BanSettings::new),
        }
    }
}

/// Counters for metrics; every field only ever grows.
#[derive(Debug, Default)]
pub struct ProtectionStats {
    /// Connections closed at accept because the peer had too many open.
    pub connections_refused_per_ip: AtomicU64,
    /// Connections closed at accept because the peer opened them too fast.
    pub connections_rate_limited: AtomicU64,
    /// Connections closed at accept because the peer is banned.
    pub connections_refused_banned: AtomicU64,
    pub bans_applied: AtomicU64,
    /// Requests refused with 403 `banned`.
    pub banned_requests: AtomicU64,
    /// Requests refused with 503 `overloaded`.
    pub requests_shed: AtomicU64,
    /// Connections or requests cut for being too slow (request head, body, idle start).
    pub slow_clients_cut: AtomicU64,
}

/// A copy of the counters at one moment, plus the gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProtectionCounts {
    pub connections_refused_per_ip: u64,
    pub connections_rate_limited: u64,
    pub connections_refused_banned: u64,
    pub bans_applied: u64,
    pub banned_requests: u64,
    pub requests_shed: u64,
    pub slow_clients_cut: u64,
    /// Requests in flight right now (counted only while load shedding is configured).
    pub in_flight: u64,
}

impl ProtectionStats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Protection state shared by every worker for the life of the gateway.
#[derive(Debug)]
pub struct Protection {
    clock: Clock,
    conns: table::IpTable<conn::ConnRecord>,
    bans: bans::BanTable,
    load: shed::Load,
    stats: ProtectionStats,
    warn: conn::WarnEvery,
}

impl Default for Protection {
    fn default() -> Self {
        Self::new()
    }
}

impl Protection {
    pub fn new() -> Self {
        Self {
            clock: Clock::new(),
            conns: table::IpTable::new(TABLE_CAPACITY),
            bans: bans::BanTable::new(TABLE_CAPACITY),
            load: shed::Load::default(),
            stats: ProtectionStats::default(),
            warn: conn::WarnEvery::default(),
        }
    }

    pub fn stats(&self) -> &ProtectionStats {
        &self.stats
    }

    pub fn counts(&self) -> ProtectionCounts {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProtectionCounts {
            connections_refused_per_ip: get(&s.connections_refused_per_ip),
            connections_rate_limited: get(&s.connections_rate_limited),
            connections_refused_banned: get(&s.connections_refused_banned),
            bans_applied: get(&s.bans_applied),
            banned_requests: get(&s.banned_requests),
            requests_shed: get(&s.requests_shed),
            slow_clients_cut: get(&s.slow_clients_cut),
            in_flight: self.load.in_flight(),
        }
    }

    /// Counts a client cut off for being too slow.
    pub fn slow_client_cut(&self) {
        ProtectionStats::add(&self.stats.slow_clients_cut);
    }

    /// Whether `ip` is banned right now, and for how much longer.
    pub fn banned_for(&self, settings: &Settings, ip: IpAddr) -> Option<Duration> {
        let bans = settings.bans.as_ref()?;
        self.bans.banned_for(bans, ip, self.clock.now_us())
    }
}

/// The request-level ban check, before any routing work: a banned client IP gets 403
/// `banned`. Computes the client IP only when bans are configured.
pub(crate) fn check_ban(
    snap: &Snapshot,
    conn: &ConnCtx,
    headers: &http::HeaderMap,
) -> Result<Option<IpAddr>, crate::error::GatewayError> {
    if snap.server.protection.bans.is_none() {
        return Ok(None);
    }
    let ip = crate::headers::client_ip(conn.peer.ip(), headers, &snap.server.trusted_proxies);
    let protection = conn.shared.protection();
    match protection.banned_for(&snap.server.protection, ip) {
        Some(left) => {
            ProtectionStats::add(&protection.stats.banned_requests);
            Err(crate::error::GatewayError::Banned {
                retry_after: left.as_secs().max(1),
            })
        }
        None => Ok(Some(ip)),
    }
}

/// After a request: counts gateway rejections towards a ban of `client_ip`, slow bodies
/// cut with 408, and feeds the latency average. Cheap when nothing is configured.
pub(crate) fn observe(
    snap: &Snapshot,
    conn: &ConnCtx,
    client_ip: Option<IpAddr>,
    started: std::time::Instant,
    resp: &Response<ResponseBody>,
) {
    let protection = conn.shared.protection();
    let gateway_made = resp.extensions().get::<GatewayMade>().is_some();
    if !gateway_made {
        if let Some(shedding) = &snap.server.protection.shedding {
            protection
                .load
                .observe_latency(shedding, started.elapsed(), &protection.clock);
        }
        return;
    }
    let status = resp.status();
    if status == StatusCode::REQUEST_TIMEOUT {
        protection.slow_client_cut();
    }
    if let (Some(bans), Some(ip)) = (&snap.server.protection.bans, client_ip) {
        if bans::counts_as_rejection(status) {
            protection.bans.record_rejection(bans, ip, protection);
        }
    }
}

/// How a connection ended, as far as abuse protection cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnEnd {
    Normal,
    /// The request head did not arrive within `header_read_timeout`.
    SlowHead,
    /// hyper refused a request head it could not parse (it answered 400 or 431 itself).
    Malformed,
}

impl ConnEnd {
    pub(crate) fn of(err: &hyper::Error) -> Self {
        if err.is_timeout() {
            Self::SlowHead
        } else if err.is_parse() || err.is_parse_too_large() {
            Self::Malformed
        } else {
            Self::Normal
        }
    }
}

/// Counts what a connection's end says about its client: a slow head is a slow client, a
/// malformed one is a rejection of the peer IP (no headers were read to find another).
pub(crate) fn connection_ended(conn: &ConnCtx, end: ConnEnd) {
    let protection = conn.shared.protection();
    match end {
        ConnEnd::Normal => {}
        ConnEnd::SlowHead => protection.slow_client_cut(),
        ConnEnd::Malformed => {
            let snap = conn.shared.snapshot();
            let peer = conn.peer.ip();
            // A trusted proxy relays many clients; one of them must not get it banned.
            let proxy = crate::headers::is_trusted(peer, &snap.server.trusted_proxies);
            if let (Some(bans), false) = (&snap.server.protection.bans, proxy) {
                protection.bans.record_rejection(bans, peer, protection);
            }
        }
    }
}

/// Whether `ip` falls in any of `nets`.
fn listed(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

/// Microseconds in `d`, saturating.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
