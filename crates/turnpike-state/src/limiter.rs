//! The rate limiter the gateway calls: GCRA in memory, or in Redis with memory as fallback.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Script;
use smallvec::SmallVec;
use tokio::runtime::Handle;

use std::hash::BuildHasher;

use crate::clock::{duration_nanos, now_nanos};
use crate::error::StateError;
use crate::gcra::{Decision, LUA_MAX, Limit, Params};
use crate::lease::{Leases, batch_for};
use crate::memory::MemoryStore;
use crate::redis_conn::RedisConn;

/// The decisions of one check, one per pair; inline (no heap) up to four pairs.
pub type Decisions = SmallVec<[Decision; 4]>;

/// Microseconds: the unit of the Redis script (exact in Lua doubles for 142 years of TIME).
const REDIS_UNIT_NANOS: u64 = 1_000;

/// What to do when Redis cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Answer from this node's memory counters (limits then hold per node, not cluster-wide).
    #[default]
    Open,
    /// Refuse: the check returns [`StateError::Unavailable`].
    Closed,
}

/// Where and how to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:pass@]host:port[/db]` (or `unix://`), as the redis crate parses it.
    pub url: String,
    /// Bound on each command, the round trip included.
    pub timeout: Duration,
    /// Prepended to every key, so several deployments can share one Redis.
    pub prefix: String,
}

impl Default for RedisOptions {
    /// A local Redis: `redis://127.0.0.1:6379/`, 100 ms, `tp:`.
    fn default() -> Self {
        Self::new("redis://127.0.0.1:6379/")
    }
}

impl RedisOptions {
    /// Options for `url` with a 100 ms timeout and the prefix `tp:`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: Duration::from_millis(100),
            prefix: "tp:".to_owned(),
        }
    }
}

/// Counters for metrics; read them with `load(Ordering::Relaxed)` or [`LimiterStats::snapshot`].
#[derive(Debug, Default)]
pub struct LimiterStats {
    /// Redis commands that failed or timed out (limiter and quotas).
    pub redis_errors: AtomicU64,
    /// Checks answered from memory because Redis was unavailable (FailMode::Open).
    pub fallbacks: AtomicU64,
    /// Keys held in memory now (a gauge; includes expired keys not yet swept).
    pub memory_keys: AtomicU64,
    /// Live keys evicted because memory was full.
    pub evictions: AtomicU64,
    /// Redis-limiter checks answered from cells reserved earlier (no round trip).
    pub local_hits: AtomicU64,
}

/// A plain copy of [`LimiterStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// See [`LimiterStats::redis_errors`].
    pub redis_errors: u64,
    /// See [`LimiterStats::fallbacks`].
    pub fallbacks: u64,
    /// See [`LimiterStats::memory_keys`].
    pub memory_keys: u64,
    /// See [`LimiterStats::evictions`].
    pub evictions: u64,
    /// See [`LimiterStats::local_hits`].
    pub local_hits: u64,
}

impl LimiterStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            redis_errors: self.redis_errors.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            memory_keys: self.memory_keys.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            local_hits: self.local_hits.load(Ordering::Relaxed),
        }
    }
}

/// GCRA over all KEYS atomically. ARGV[1] = cost, then per key, in µs and cells:
/// interval, capacity, refund (unused reserved cells given back), batch (cells to reserve
/// when far below the limit). Returns 5 integers per key: allowed, remaining, reset_after µs,
/// retry_after µs, reserved. TIME is the clock so nodes with skewed clocks agree; TATs are
/// stored as integers expiring (PX) when they stop carrying state.
const GCRA_LUA: &str = r#"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost, n, MAX = tonumber(ARGV[1]), #KEYS, 9007199254740991
local function arg(i, j) return tonumber(ARGV[1 + 4 * (i - 1) + j]) end
local tat, cur, changed, out, all = {}, {}, {}, {}, true
for i = 1, n do
  local k = KEYS[i]
  if tat[k] == nil then tat[k] = tonumber(redis.call('GET', k) or '0') or 0 end
  local refund = arg(i, 3)
  if refund > 0 and tat[k] > now then
    tat[k] = math.max(tat[k] - refund * arg(i, 1), now)
    changed[k] = true
  end
end
for k, v in pairs(tat) do cur[k] = v end
for i = 1, n do
  local k, interval, cap, o = KEYS[i], arg(i, 1), arg(i, 2), 5 * (i - 1)
  local base = math.max(cur[k], now)
  local new = math.min(base + cost * interval, MAX)
  local diff = new - now
  if diff <= cap then
    cur[k] = new
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = 1, math.floor((cap - diff) / interval), diff, 0
  else
    all = false
    local ahead = base - now
    out[o + 1], out[o + 2] = 0, math.floor(math.max(cap - ahead, 0) / interval)
    out[o + 3], out[o + 4] = ahead, diff - cap
  end
  out[o + 5] = 0
end
local write = changed
if all then
  for i = 1, n do
    local k, interval, batch, o = KEYS[i], arg(i, 1), arg(i, 4), 5 * (i - 1)
    if batch > 0 and out[o + 2] >= 2 * batch then
      cur[k] = cur[k] + batch * interval
      out[o + 2], out[o + 3], out[o + 5] = out[o + 2] - batch, out[o + 3] + batch * interval, batch
    end
  end
  write = {}
  for k, v in pairs(cur) do if v ~= tat[k] or changed[k] then write[k] = true end end
else
  for i = 1, n do
    local o = 5 * (i - 1)
    if out[o + 1] == 1 then
      local interval, cap = arg(i, 1), arg(i, 2)
      local ahead = math.max(tat[KEYS[i]], now) - now
      out[o + 2], out[o + 3] = math.floor(math.max(cap - ahead, 0) / interval), ahead
    end
  end
  cur = tat
end
for k in pairs(write) do
  local v = cur[k]
  if v > now then
    redis.call('SET', k, string.format('%.0f', v), 'PX', math.floor((v - now) / 1000) + 1)
  else
    redis.call('DEL', k)
  end
end
return out
"#;

/// One pair prepared for the script.
struct Prepared {
    hash: u64,
    params: Params,
    batch: u64,
}

/// The Redis side of a limiter.
struct RedisBackend {
    conn: RedisConn,
    prefix: Box<[u8]>,
    gcra: Script,
    timeout: Duration,
    stats: Arc<LimiterStats>,
    /// Cells reserved ahead (the local fast path); `None` when batching is off.
    leases: Option<Leases>,
    hasher: foldhash::fast::RandomState,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("batching", &self.leases.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// `{prefix}rl:{key}@{period in ms}`: the period keeps one key under limits of different
    /// periods apart, like the memory store does.
    fn key(&self, key: &[u8], limit: &Limit) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len() + 24);
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(b"rl:");
        k.extend_from_slice(key);
        k.push(b'@');
        k.extend_from_slice(limit.period.as_millis().to_string().as_bytes());
        k
    }

    fn prepare(&self, pairs: &[(&[u8], Limit)]) -> SmallVec<[Prepared; 4]> {
        let mut prepared: SmallVec<[Prepared; 4]> = pairs
            .iter()
            .map(|(key, limit)| Prepared {
                hash: self.hasher.hash_one((key, duration_nanos(limit.period))),
                params: Params::new(limit, REDIS_UNIT_NANOS, LUA_MAX),
                batch: if self.leases.is_some() {
                    batch_for(limit)
                } else {
                    0
                },
            })
            .collect();
        // A key listed twice would need its cells counted per listing: no batching then.
        let dup =
            (1..prepared.len()).any(|i| prepared[..i].iter().any(|p| p.hash == prepared[i].hash));
        if dup {
            prepared.iter_mut().for_each(|p| p.batch = 0);
        }
        prepared
    }

    async fn check(&self, pairs: &[(&[u8], Limit)], cost: u64) -> Result<Decisions, StateError> {
        let prepared = self.prepare(pairs);
        let now = now_nanos();
        if let Some(leases) = &self.leases {
            let hashes: SmallVec<[u64; 4]> = prepared.iter().map(|p| p.hash).collect();
            if prepared.iter().all(|p| p.batch > 0) {
                if let Some(d) = leases.try_serve(&hashes, cost, now) {
                    self.stats.local_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(d);
                }
            }
        }
        let mut inv = self.gcra.prepare_invoke();
        inv.arg(cost.min(LUA_MAX));
        let mut asked: SmallVec<[u64; 4]> = SmallVec::new();
        for ((key, limit), p) in pairs.iter().zip(&prepared) {
            let (refund, batch) = match &self.leases {
                Some(l) => l.begin(p.hash, p.batch, now, self.timeout),
                None => (0, 0),
            };
            asked.push(batch);
            inv.key(self.key(key, limit))
                .arg(p.params.interval)
                .arg(p.params.capacity)
                .arg(refund)
                .arg(batch);
        }
        let raw: Vec<i64> = self.conn.invoke(&inv).await?;
        if raw.len() != pairs.len() * 5 {
            return Err(StateError::Unavailable);
        }
        Ok(self.decide(&raw, &prepared, &asked))
    }

    /// Turns the script's answer into decisions, storing reserved cells as leases.
    fn decide(&self, raw: &[i64], prepared: &[Prepared], asked: &[u64]) -> Decisions {
        let int = |v: i64| u64::try_from(v).unwrap_or(0);
        let now = now_nanos();
        raw.chunks_exact(5)
            .zip(prepared.iter().zip(asked))
            .map(|(c, (p, &asked))| {
                let mut d = Decision {
                    allowed: c[0] == 1,
                    remaining: int(c[1]),
                    reset_after: Duration::from_micros(int(c[2])),
                    retry_after: Duration::from_micros(int(c[3])),
                };
                if let (Some(leases), true) = (&self.leases, asked > 0) {
                    leases.finish(p.hash, int(c[4]), &d, now);
                }
                // Cells reserved for this node are still this client's to use.
                d.remaining = d.remaining.saturating_add(int(c[4]));
                d
            })
            .collect()
    }
}

/// GCRA rate limiter; `Send + Sync`, share it in an `Arc` across runtimes.
#[derive(Debug)]
pub struct Limiter {
    memory: MemoryStore,
    redis: Option<RedisBackend>,
    stats: Arc<LimiterStats>,
}

impl Limiter {
    /// In-process counters, at most `max_keys` live keys (idle ones expire; a flood of distinct keys evicts instead of growing).
    pub fn memory(max_keys: usize) -> Self {
        Self {
            memory: MemoryStore::new(max_keys),
            redis: None,
            stats: Arc::default(),
        }
    }

    /// Redis-backed, shared by every node; memory (same `max_keys`) is the fallback under
    /// [`FailMode::Open`]. Only an invalid URL is an error: an unreachable server is not (it
    /// connects and reconnects in the background, its driver tasks spawned on `handle`, which
    /// must have the time and IO drivers enabled and outlive the limiter's use).
    pub fn redis(opts: RedisOptions, max_keys: usize, handle: &Handle) -> Result<Self, StateError> {
        let stats = Arc::<LimiterStats>::default();
        let conn = RedisConn::new(&opts.url, opts.timeout, Arc::clone(&stats), handle)?;
        Ok(Self {
            memory: MemoryStore::new(max_keys),
            redis: Some(RedisBackend {
                conn,
                prefix: opts.prefix.into_bytes().into_boxed_slice(),
                gcra: Script::new(GCRA_LUA),
                timeout: opts.timeout,
                stats: Arc::clone(&stats),
                leases: Some(Leases::new(max_keys)),
                hasher: foldhash::fast::RandomState::default(),
            }),
            stats,
        })
    }

    /// Checks every (key, limit) pair for `cost` requests; consumes from all of them only if
    /// all allow (all-or-nothing). One [`Decision`] per pair, in order.
    ///
    /// Redis unreachable: [`FailMode::Open`] answers from the memory fallback (counted in
    /// stats, logged at most every few seconds); [`FailMode::Closed`] gives
    /// [`StateError::Unavailable`]. After a failure Redis is skipped for about a second, so
    /// an outage does not add the timeout to every request.
    pub async fn check(
        &self,
        pairs: &[(&[u8], Limit)],
        cost: u64,
        fail: FailMode,
    ) -> Result<Decisions, StateError> {
        let Some(redis) = &self.redis else {
            return Ok(self.memory.check(pairs, cost, &self.stats));
        };
        if pairs.is_empty() {
            return Ok(Decisions::new());
        }
        // Boxed: the Redis round trip's future is large, and inline it would be moved with
        // every check's, the memory limiter's included.
        match Box::pin(redis.check(pairs, cost)).await {
            Ok(d) => Ok(d),
            Err(e) => match fail {
                FailMode::Closed => Err(e),
                FailMode::Open => {
                    self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                    if redis.conn.should_warn() {
                        tracing::warn!(
                            "Redis unavailable: rate limits answered from this node's memory"
                        );
                    }
                    Ok(self.memory.check(pairs, cost, &self.stats))
                }
            },
        }
    }

    /// Turns the local fast path of a Redis limiter on (the default) or off. On, a node far
    /// below a limit reserves 0.5 % of its burst per round trip and admits that many requests
    /// locally: never more than the limit in total, at most one batch per node less (so within
    /// 1 % with two nodes). Off, every check is one round trip and exact. Limits with a burst
    /// under 400 are never batched.
    #[must_use]
    pub fn with_batching(mut self, on: bool) -> Self {
        if let Some(r) = &mut self.redis {
            r.leases = on.then(|| Leases::new(self.memory.max_keys()));
        }
        self
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &LimiterStats {
        &self.stats
    }

    /// Whether this limiter is Redis-backed (whether or not Redis is up now).
    pub fn is_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// Whether checks go to Redis now: connected and not backing off after a failure.
    /// `true` for a memory limiter (it is always ready). Useful for `/readyz`.
    pub fn is_ready(&self) -> bool {
        self.redis.as_ref().is_none_or(|r| r.conn.is_up())
    }

    /// Waits until [`Limiter::is_ready`] or `within` passes; returns the final readiness.
    pub async fn wait_ready(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// The Redis connection and key prefix, for quotas sharing them.
    pub(crate) fn redis_parts(&self) -> Option<(RedisConn, Box<[u8]>, Arc<LimiterStats>)> {
        self.redis
            .as_ref()
            .map(|r| (r.conn.clone(), r.prefix.clone(), Arc::clone(&self.stats)))
    }
}
