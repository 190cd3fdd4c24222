//! Quotas: per-key counters over calendar days or months, persisted across restarts.
//!
//! In memory the counters live in one map, saved to a JSON file (see [`Quotas::memory`]) by a
//! background task about every second when changed, and by [`Quotas::flush`]. In Redis each
//! counter is one key `{prefix}q:{key}|{label}` updated by a small Lua script (add only if it
//! fits) that expires at the period end plus a margin. Periods follow the local calendar of the
//! zone given per call, computed from this node's clock.

mod file;
mod period;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use redis::Script;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

pub use period::{QuotaPeriod, QuotaWindow};

use crate::error::StateError;
use crate::limiter::{FailMode, Limiter, LimiterStats};
use crate::redis_conn::RedisConn;
use file::{QuotaFile, StoredCounter};

/// How often the persister saves changed counters.
const PERSIST_EVERY: Duration = Duration::from_secs(1);
/// Redis counters outlive their period by this much, so late `add`s still land somewhere.
const EXPIRE_MARGIN_SECS: i64 = 3600;

/// The outcome of a quota charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDecision {
    /// Whether the cost fitted (and was added).
    pub allowed: bool,
    /// Used in this period, including this charge when allowed.
    pub used: u64,
    /// `limit - used`, at least 0.
    pub remaining: u64,
    /// unix seconds when the period ends
    pub resets_at: i64,
}

/// Adds only if `used + cost <= limit` (ARGV[4] == '1') or always; expires at ARGV[3].
/// Returns {added (0/1), used}.
const QUOTA_LUA: &str = r#"
local used = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local cost, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if ARGV[4] == '1' and used + cost > limit then return {0, used} end
used = redis.call('INCRBY', KEYS[1], cost)
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return {1, used}
"#;

/// A counter for one period.
#[derive(Debug, Clone)]
struct Counter {
    window: QuotaWindow,
    used: u64,
}

/// A key's counters, one per period kind.
#[derive(Debug, Default)]
struct Slots {
    day: Option<Counter>,
    month: Option<Counter>,
}

impl Slots {
    fn get(&mut self, period: QuotaPeriod) -> &mut Option<Counter> {
        match period {
            QuotaPeriod::Day => &mut self.day,
            QuotaPeriod::Month => &mut self.month,
        }
    }
}

/// In-memory counters with optional file persistence.
#[derive(Debug, Default)]
struct MemoryQuotas {
    counters: Mutex<HashMap<String, Slots>>,
    dirty: AtomicBool,
    file: Option<PathBuf>,
    /// Serialises file writes, so an older snapshot never replaces a newer one.
    writing: tokio::sync::Mutex<()>,
}

impl MemoryQuotas {
    /// Applies `cost` to the current period; `limit: None` never refuses.
    fn apply(
        &self,
        key: &str,
        limit: Option<u64>,
        period: QuotaPeriod,
        tz: &TimeZone,
        cost: u64,
    ) -> Result<(bool, u64, i64), StateError> {
        let now = Timestamp::now();
        let secs = now.as_second();
        let mut map = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(key) {
            map.insert(key.to_owned(), Slots::default());
        }
        let Some(slots) = map.get_mut(key) else {
            return Err(StateError::Time("quota slot vanished".to_owned()));
        };
        let slot = slots.get(period);
        // The cached window spares the calendar arithmetic for every charge but the first
        // of a period.
        let current = slot
            .as_ref()
            .is_some_and(|c| c.window.start <= secs && secs < c.window.end);
        if !current {
            let window = period.window(now, tz)?;
            *slot = Some(Counter { window, used: 0 });
        }
        let Some(counter) = slot.as_mut() else {
            return Err(StateError::Time("quota counter vanished".to_owned()));
        };
        let after = counter.used.saturating_add(cost);
        if limit.is_some_and(|l| after > l) {
            return Ok((false, counter.used, counter.window.end));
        }
        counter.used = after;
        if cost > 0 {
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok((true, after, counter.window.end))
    }

    /// Counters of periods not yet over, in file form.
    fn snapshot(&self, now: i64) -> QuotaFile {
        let mut map = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = BTreeMap::new();
        map.retain(|key, slots| {
            for (period, slot) in [
                (QuotaPeriod::Day, &mut slots.day),
                (QuotaPeriod::Month, &mut slots.month),
            ] {
                // Ended periods are dropped here, which keeps memory and the file bounded.
                if slot.as_ref().is_some_and(|c| c.window.end <= now) {
                    *slot = None;
                }
                if let Some(c) = slot {
                    out.insert(
                        format!("{key}|{}", c.window.label),
                        StoredCounter {
                            period: period.name().to_owned(),
                            start: c.window.start,
                            end: c.window.end,
                            used: c.used,
                        },
                    );
                }
            }
            slots.day.is_some() || slots.month.is_some()
        });
        QuotaFile::new(out)
    }

    /// Restores counters of periods not yet over.
    fn restore(&self, data: QuotaFile, now: i64) {
        let mut map = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, c) in data.counters {
            let (Some((key, label)), Some(period)) =
                (name.rsplit_once('|'), QuotaPeriod::from_name(&c.period))
            else {
                continue;
            };
            if c.end <= now {
                continue;
            }
            let window = QuotaWindow {
                start: c.start,
                end: c.end,
                label: label.to_owned(),
            };
            let slots = map.entry(key.to_owned()).or_default();
            *slots.get(period) = Some(Counter {
                window,
                used: c.used,
            });
        }
    }

    async fn flush(&self) -> Result<(), StateError> {
        let Some(path) = self.file.clone() else {
            return Ok(());
        };
        let _writing = self.writing.lock().await;
        // Cleared before the snapshot: a change racing with the write marks it dirty again.
        self.dirty.store(false, Ordering::Relaxed);
        let data = self.snapshot(Timestamp::now().as_second());
        let result = match serde_json::to_vec(&data) {
            Ok(bytes) => tokio::task::spawn_blocking(move || file::store(&path, &bytes))
                .await
                .map_err(|e| StateError::Task(e.to_string()))
                .and_then(|r| r),
            Err(e) => Err(StateError::Task(e.to_string())),
        };
        if result.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        result
    }
}

/// Redis-backed counters sharing the limiter's connection.
#[derive(Debug)]
struct RedisQuotas {
    conn: RedisConn,
    prefix: Box<[u8]>,
    script: Script,
    stats: Arc<LimiterStats>,
}

impl RedisQuotas {
    async fn apply(
        &self,
        key: &str,
        limit: Option<u64>,
        window: &QuotaWindow,
        cost: u64,
    ) -> Result<(bool, u64), StateError> {
        let mut name = Vec::with_capacity(self.prefix.len() + key.len() + 16);
        name.extend_from_slice(&self.prefix);
        name.extend_from_slice(b"q:");
        name.extend_from_slice(key.as_bytes());
        name.push(b'|');
        name.extend_from_slice(window.label.as_bytes());
        let mut inv = self.script.prepare_invoke();
        inv.key(name)
            .arg(cost)
            .arg(limit.unwrap_or(u64::MAX))
            .arg(window.end.saturating_add(EXPIRE_MARGIN_SECS))
            .arg(if limit.is_some() { "1" } else { "0" });
        let (added, used): (i64, i64) = self.conn.invoke(&inv).await?;
        Ok((added == 1, u64::try_from(used).unwrap_or(0)))
    }
}

#[derive(Debug)]
enum Backend {
    Memory,
    Redis(RedisQuotas),
}

/// Quota counters; `Send + Sync`, share it in an `Arc`.
#[derive(Debug)]
pub struct Quotas {
    backend: Backend,
    /// The counters of a memory backend, or the fallback of a Redis one (never persisted).
    memory: MemoryQuotas,
}

impl Quotas {
    /// Counters in memory, persisted to `file` (JSON, written atomically via temp+rename,
    /// every ~1 s when changed once [`Quotas::spawn_persister`] runs, and by
    /// [`Quotas::flush`]) so a restart keeps them. Loads the file if present; a corrupt file
    /// is an error naming the file.
    pub fn memory(file: Option<PathBuf>) -> Result<Self, StateError> {
        let memory = MemoryQuotas {
            file,
            ..MemoryQuotas::default()
        };
        // No let-chains: the workspace's MSRV is 1.85.
        if let Some(path) = &memory.file {
            if let Some(data) = file::load(path)? {
                memory.restore(data, Timestamp::now().as_second());
            }
        }
        Ok(Self {
            backend: Backend::Memory,
            memory,
        })
    }

    /// Counters in Redis, sharing the limiter's connection and key prefix; `None` if the
    /// limiter is memory-only.
    pub fn redis(limiter: &Limiter) -> Option<Self> {
        let (conn, prefix, stats) = limiter.redis_parts()?;
        Some(Self {
            backend: Backend::Redis(RedisQuotas {
                conn,
                prefix,
                script: Script::new(QUOTA_LUA),
                stats,
            }),
            memory: MemoryQuotas::default(),
        })
    }

    /// Charges `cost` to `key` for the period containing now in `tz`; refuses
    /// (`allowed = false`, nothing added) when `used + cost > limit`.
    ///
    /// Redis unavailable: [`FailMode::Open`] charges this node's memory counters instead
    /// (not persisted), [`FailMode::Closed`] gives [`StateError::Unavailable`].
    pub async fn charge(
        &self,
        key: &str,
        limit: u64,
        period: QuotaPeriod,
        tz: &TimeZone,
        cost: u64,
        fail: FailMode,
    ) -> Result<QuotaDecision, StateError> {
        let decision = |(allowed, used, resets_at): (bool, u64, i64)| QuotaDecision {
            allowed,
            used,
            remaining: limit.saturating_sub(used),
            resets_at,
        };
        let Backend::Redis(redis) = &self.backend else {
            return self
                .memory
                .apply(key, Some(limit), period, tz, cost)
                .map(decision);
        };
        let window = period.window(Timestamp::now(), tz)?;
        match redis.apply(key, Some(limit), &window, cost).await {
            Ok((allowed, used)) => Ok(decision((allowed, used, window.end))),
            Err(e) if fail == FailMode::Closed => Err(e),
            Err(_) => {
                redis.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.memory
                    .apply(key, Some(limit), period, tz, cost)
                    .map(decision)
            }
        }
    }

    /// Adds a cost known only after the response (upstream-reported); never refuses.
    /// Failures (Redis down, calendar out of range) are logged and the cost is then counted
    /// in this node's memory, if at all.
    pub async fn add(&self, key: &str, period: QuotaPeriod, tz: &TimeZone, cost: u64) {
        if let Backend::Redis(redis) = &self.backend {
            let added = match period.window(Timestamp::now(), tz) {
                Ok(window) => redis.apply(key, None, &window, cost).await.is_ok(),
                Err(_) => false,
            };
            if added {
                return;
            }
            redis.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = self.memory.apply(key, None, period, tz, cost) {
            tracing::warn!(error = %e, "quota cost not counted");
        }
    }

    /// Writes the counters to the file now (memory backend with a file; otherwise nothing).
    pub async fn flush(&self) -> Result<(), StateError> {
        match self.backend {
            Backend::Memory => self.memory.flush().await,
            Backend::Redis(_) => Ok(()),
        }
    }

    /// Starts saving changed counters about every second, on `handle` (the control runtime).
    /// The task holds only a weak reference: it ends once the last `Arc<Quotas>` is dropped.
    /// Call [`Quotas::flush`] at shutdown to save the last second's changes. Redis-backed
    /// or file-less quotas get a task that ends at once.
    pub fn spawn_persister(self: &Arc<Self>, handle: &Handle) -> JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let persists = matches!(self.backend, Backend::Memory) && self.memory.file.is_some();
        handle.spawn(async move {
            if !persists {
                return;
            }
            let mut tick = tokio::time::interval(PERSIST_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(quotas) = weak.upgrade() else { return };
                if !quotas.memory.dirty.load(Ordering::Relaxed) {
                    continue;
                }
                if let Err(e) = quotas.memory.flush().await {
                    tracing::warn!(error = %e, "quota counters not saved; retrying");
                }
            }
        })
    }
}
