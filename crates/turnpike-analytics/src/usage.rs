//! Usage analytics, in memory: every request is counted into a per-minute cell keyed by
//! (minute, route, service, consumer, status class), with its bytes and a latency
//! [`Sketch`]. The control plane drains closed minutes every few seconds and writes them to
//! the store (`turnpike-store`), where nodes' rows are merged at query time.
//!
//! The request path never waits: each worker thread has its own shard (a mutex nobody else
//! takes, except the drain for a moment every few seconds), looked up without allocating;
//! a cell is allocated once per key and minute.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hashbrown::Equivalent;

use crate::shard;
use crate::sketch::Sketch;

/// Seconds in a minute bucket.
pub const MINUTE: i64 = 60;

/// Which row a request is counted in. `bucket` is the start of its period (Unix seconds);
/// `consumer` is `""` for requests without an identified consumer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageKey {
    pub bucket: i64,
    pub route: String,
    pub service: String,
    pub consumer: String,
    /// 1 to 5 (`1xx` .. `5xx`).
    pub status_class: u8,
}

/// What a row counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageTotals {
    pub requests: u64,
    /// Responses with a 5xx status (the gateway's own 502/503/504 included).
    pub errors: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Total request time (arrival to the end of the response body).
    pub latency: Sketch,
}

impl UsageTotals {
    /// Adds `other` into this: counts sum, sketches merge.
    pub fn merge(&mut self, other: &UsageTotals) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.request_bytes += other.request_bytes;
        self.response_bytes += other.response_bytes;
        self.latency.merge(&other.latency);
    }
}

/// One rollup row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub key: UsageKey,
    pub totals: UsageTotals,
}

/// Merges rows with the same key (from several shards, nodes or periods).
pub fn merge_rows(rows: impl IntoIterator<Item = UsageRow>) -> Vec<UsageRow> {
    let mut merged: BTreeMap<UsageKey, UsageTotals> = BTreeMap::new();
    for row in rows {
        merged.entry(row.key).or_default().merge(&row.totals);
    }
    merged
        .into_iter()
        .map(|(key, totals)| UsageRow { key, totals })
        .collect()
}

/// A shard's key: owned names, allocated once per key and minute.
#[derive(Debug, PartialEq, Eq)]
struct CellKey {
    minute: i64,
    route: Box<str>,
    service: Box<str>,
    consumer: Option<Box<str>>,
    class: u8,
}

/// The same key borrowed from the request, to look a cell up without allocating.
#[derive(Debug, Hash)]
struct KeyRef<'a> {
    minute: i64,
    route: &'a str,
    service: &'a str,
    consumer: Option<&'a str>,
    class: u8,
}

impl CellKey {
    fn view(&self) -> KeyRef<'_> {
        KeyRef {
            minute: self.minute,
            route: &self.route,
            service: &self.service,
            consumer: self.consumer.as_deref(),
            class: self.class,
        }
    }
}

// Hashes through the borrowed view, so both forms hash alike (as `Equivalent` requires).
impl Hash for CellKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.view().hash(state);
    }
}

impl Equivalent<CellKey> for KeyRef<'_> {
    fn equivalent(&self, key: &CellKey) -> bool {
        self.minute == key.minute
            && self.class == key.class
            && self.route == &*key.route
            && self.service == &*key.service
            && self.consumer == key.consumer.as_deref()
    }
}

type Cells = hashbrown::HashMap<CellKey, UsageTotals, foldhash::fast::RandomState>;

/// One thread's cells; aligned so two shards never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Cells>);

/// What one finished request contributes.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub route: &'a str,
    pub service: &'a str,
    pub consumer: Option<&'a str>,
    pub status: u16,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub total: Duration,
}

/// The in-memory rollups of one gateway; outlives config reloads.
#[derive(Debug)]
pub struct Usage {
    enabled: AtomicBool,
    shards: Box<[Shard]>,
}

impl Default for Usage {
    fn default() -> Self {
        Self::new()
    }
}

/// The start of the minute `t` is in, in Unix seconds.
pub fn minute_of(t: SystemTime) -> i64 {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    secs - secs.rem_euclid(MINUTE)
}

impl Usage {
    /// Off until [`Self::set_enabled`]: only a gateway with a store keeps usage.
    pub fn new() -> Self {
        Self {
            enabled: AtomicBool::new(false),
            shards: (0..shard::count()).map(|_| Shard::default()).collect(),
        }
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Counts a finished request in the current minute (when enabled).
    pub fn record(&self, r: &Request<'_>) {
        if self.enabled() {
            self.record_at(minute_of(SystemTime::now()), r);
        }
    }

    /// Counts a request in the minute starting at `minute` (Unix seconds).
    pub fn record_at(&self, minute: i64, r: &Request<'_>) {
        let class = class_of(r.status);
        let view = KeyRef {
            minute,
            route: r.route,
            service: r.service,
            consumer: r.consumer,
            class,
        };
        let shard = &self.shards[shard::index(self.shards.len())];
        // Only this thread and, briefly, the drain take this lock.
        let mut cells = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(totals) = cells.get_mut(&view) {
            add(totals, r, class);
            return;
        }
        let mut totals = UsageTotals::default();
        add(&mut totals, r, class);
        let key = CellKey {
            minute,
            route: r.route.into(),
            service: r.service.into(),
            consumer: r.consumer.map(Into::into),
            class,
        };
        cells.insert(key, totals);
    }

    /// Takes every minute before `before` (Unix seconds) out of memory, merged across
    /// shards; `None` takes everything (at shutdown).
    pub fn drain(&self, before: Option<i64>) -> Vec<UsageRow> {
        let mut taken = Vec::new();
        for shard in &*self.shards {
            let mut cells = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
            taken.extend(cells.extract_if(|k, _| before.is_none_or(|b| k.minute < b)));
            // The lock is released here; merging happens without it.
        }
        merge_rows(taken.into_iter().map(|(k, totals)| UsageRow {
            key: UsageKey {
                bucket: k.minute,
                route: k.route.into(),
                service: k.service.into(),
                consumer: k.consumer.map(Into::into).unwrap_or_default(),
                status_class: k.class,
            },
            totals,
        }))
    }
}

fn add(t: &mut UsageTotals, r: &Request<'_>, class: u8) {
    t.requests += 1;
    t.errors += u64::from(class == 5);
    t.request_bytes += r.request_bytes;
    t.response_bytes += r.response_bytes;
    t.latency.add(r.total);
}

/// 1 to 5 for `1xx` to `5xx`; out-of-range statuses count as 5.
fn class_of(status: u16) -> u8 {
    u8::try_from(status / 100).unwrap_or(5).clamp(1, 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(route: &'a str, consumer: Option<&'a str>, status: u16, ms: u64) -> Request<'a> {
        Request {
            route,
            service: "svc",
            consumer,
            status,
            request_bytes: 10,
            response_bytes: 100,
            total: Duration::from_millis(ms),
        }
    }

    #[test]
    fn counts_per_key_and_drains_closed_minutes_only() {
        let u = Usage::new();
        u.record(&req("r", None, 200, 5));
        assert!(u.drain(None).is_empty(), "off by default");
        u.set_enabled(true);
        for _ in 0..3 {
            u.record_at(60, &req("r", Some("alice"), 200, 5));
        }
        u.record_at(60, &req("r", Some("alice"), 503, 50));
        u.record_at(60, &req("r", None, 200, 5));
        u.record_at(120, &req("r", None, 404, 1));
        let closed = u.drain(Some(120));
        let summary: Vec<_> = closed
            .iter()
            .map(|r| {
                let k = &r.key;
                let t = &r.totals;
                (
                    k.bucket,
                    k.consumer.as_str(),
                    k.status_class,
                    t.requests,
                    t.errors,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (60, "", 2, 1, 0),
                (60, "alice", 2, 3, 0),
                (60, "alice", 5, 1, 1)
            ]
        );
        let alice = &closed[1].totals;
        assert_eq!((alice.request_bytes, alice.response_bytes), (30, 300));
        let p50 = alice.latency.quantile_ms(0.5).unwrap();
        assert!((p50 - 5.0).abs() <= 0.05, "{p50}");
        assert!(u.drain(Some(120)).is_empty(), "taken once");
        let rest = u.drain(None);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].key.status_class, 4);
    }

    #[test]
    fn threads_record_into_their_own_shards_and_nothing_is_lost() {
        let u = std::sync::Arc::new(Usage::new());
        u.set_enabled(true);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let u = u.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        u.record_at(0, &req("r", Some("c"), 200 + (i % 2) * 300, 1));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let rows = u.drain(None);
        let total: u64 = rows.iter().map(|r| r.totals.requests).sum();
        let errors: u64 = rows.iter().map(|r| r.totals.errors).sum();
        assert_eq!((rows.len(), total, errors), (2, 4000, 2000));
    }

    #[test]
    fn minutes_and_classes() {
        let t = UNIX_EPOCH + Duration::from_secs(3_725);
        assert_eq!(minute_of(t), 3_720);
        assert_eq!((class_of(99), class_of(204), class_of(999)), (1, 2, 5));
    }
}
