//! One self-healing Redis connection shared by the limiter and the quotas.
//!
//! A background task (spawned on the runtime handle given at construction, so the redis
//! driver task lives there too) connects, and reconnects whenever a command fails. Callers on
//! any runtime clone the current multiplexed connection (a few reference-count bumps) and
//! bound every command by the configured timeout. After a broken connection (or several
//! timeouts in a row) Redis counts as down for a short back-off: callers then get
//! [`StateError::Unavailable`] at once instead of waiting, so a dead Redis costs the request
//! path nothing but a branch. A single slow reply under load is not an outage: it fails only
//! its own request, so a burst cannot turn one late answer into a second of refusals.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, FromRedisValue, ScriptInvocation};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::clock::{duration_nanos, now_nanos};
use crate::error::StateError;
use crate::limiter::LimiterStats;

/// How long Redis counts as down after a failed command.
const DOWN_FOR: Duration = Duration::from_secs(1);
/// First and longest pause between connection attempts.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// Timeouts in a row (with no reply in between) that count as an outage.
const TIMEOUTS_FOR_OUTAGE: u32 = 3;
/// Warnings about Redis are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// A live connection and its generation, so stale failure reports are ignored.
#[derive(Debug)]
struct Held {
    generation: u64,
    conn: MultiplexedConnection,
}

#[derive(Debug)]
struct Shared {
    current: ArcSwapOption<Held>,
    /// Process-clock nanos until which Redis is not asked.
    down_until: AtomicU64,
    /// Generation whose failure woke the maintainer (0 = none).
    broken: AtomicU64,
    /// Commands timed out since the last reply.
    timeouts_in_a_row: AtomicU32,
    wake: Arc<Notify>,
    timeout: Duration,
    last_warn: AtomicU64,
    stats: Arc<LimiterStats>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Lets the maintainer notice that nobody uses the connection any more and exit.
        self.wake.notify_one();
    }
}

/// Cloneable handle to the shared connection.
#[derive(Debug, Clone)]
pub(crate) struct RedisConn {
    shared: Arc<Shared>,
}

impl RedisConn {
    /// Parses `url` and starts connecting in the background on `handle`.
    pub(crate) fn new(
        url: &str,
        timeout: Duration,
        stats: Arc<LimiterStats>,
        handle: &Handle,
    ) -> Result<Self, StateError> {
        let client = Client::open(url).map_err(|e| StateError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let wake = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            current: ArcSwapOption::empty(),
            down_until: AtomicU64::new(0),
            broken: AtomicU64::new(0),
            timeouts_in_a_row: AtomicU32::new(0),
            wake: Arc::clone(&wake),
            timeout,
            last_warn: AtomicU64::new(0),
            stats,
        });
        handle.spawn(maintain(Arc::downgrade(&shared), client, wake, timeout));
        Ok(Self { shared })
    }

    /// Whether a connection is established and Redis is not in its back-off window.
    pub(crate) fn is_up(&self) -> bool {
        self.shared.current.load().is_some()
            && now_nanos() >= self.shared.down_until.load(Ordering::Relaxed)
    }

    /// Runs a script invocation, bounded by the timeout; any failure marks Redis down.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T, StateError> {
        let (generation, mut conn) = self.connection()?;
        let result = tokio::time::timeout(self.shared.timeout, inv.invoke_async(&mut conn)).await;
        self.settle(generation, result)
    }

    /// Runs one command, bounded by the timeout, like [`RedisConn::invoke`].
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StateError> {
        let (generation, mut conn) = self.connection()?;
        let result = tokio::time::timeout(self.shared.timeout, cmd.query_async(&mut conn)).await;
        self.settle(generation, result)
    }

    /// What a command's outcome means for the connection: a broken connection or several
    /// timeouts in a row mark Redis down; an error reply or one late answer do not.
    fn settle<T>(
        &self,
        generation: u64,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, StateError> {
        match result {
            Ok(Ok(v)) => {
                self.shared.timeouts_in_a_row.store(0, Ordering::Relaxed);
                Ok(v)
            }
            Ok(Err(e)) if e.is_io_error() || e.is_connection_dropped() => {
                self.failed(generation, &e.to_string());
                Err(StateError::Unavailable)
            }
            Ok(Err(e)) => {
                // Redis answered, with an error: the connection is fine.
                self.shared
                    .stats
                    .redis_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "Redis command failed");
                Err(StateError::Unavailable)
            }
            Err(_) => {
                let n = self
                    .shared
                    .timeouts_in_a_row
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                if n >= TIMEOUTS_FOR_OUTAGE {
                    self.failed(generation, "commands timed out");
                } else {
                    self.shared
                        .stats
                        .redis_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(StateError::Unavailable)
            }
        }
    }

    fn connection(&self) -> Result<(u64, MultiplexedConnection), StateError> {
        if now_nanos() < self.shared.down_until.load(Ordering::Relaxed) {
            return Err(StateError::Unavailable);
        }
        let guard = self.shared.current.load();
        let held = guard.as_ref().ok_or(StateError::Unavailable)?;
        Ok((held.generation, held.conn.clone()))
    }

    fn failed(&self, generation: u64, reason: &str) {
        let s = &self.shared;
        s.stats.redis_errors.fetch_add(1, Ordering::Relaxed);
        let until = now_nanos().saturating_add(duration_nanos(DOWN_FOR));
        s.down_until.fetch_max(until, Ordering::Relaxed);
        // Only the first report for the live connection triggers a reconnect.
        let live = s.current.load().as_ref().map(|h| h.generation);
        if live == Some(generation) && s.broken.swap(generation, Ordering::Relaxed) != generation {
            s.wake.notify_one();
        }
        if self.should_warn() {
            tracing::warn!(
                reason,
                down_for_ms = DOWN_FOR.as_millis() as u64,
                "Redis command failed; shared counters unavailable for a moment"
            );
        }
    }

    /// True at most once per [`WARN_EVERY`], so a Redis outage does not flood the log.
    pub(crate) fn should_warn(&self) -> bool {
        let now = now_nanos();
        let last = self.shared.last_warn.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < duration_nanos(WARN_EVERY) {
            return false;
        }
        self.shared
            .last_warn
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// Connects, waits for a failure report, drops the connection and connects again; exits
/// once every [`RedisConn`] is gone.
async fn maintain(weak: Weak<Shared>, client: Client, wake: Arc<Notify>, timeout: Duration) {
    let connect_timeout = timeout
        .saturating_mul(10)
        .clamp(Duration::from_millis(500), Duration::from_secs(5));
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(timeout.max(Duration::from_millis(1))));
    let mut generation = 0u64;
    let mut pause = RETRY_MIN;
    loop {
        let attempt = tokio::time::timeout(
            connect_timeout,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await;
        let Some(shared) = weak.upgrade() else { return };
        match attempt {
            Ok(Ok(conn)) => {
                generation += 1;
                shared
                    .current
                    .store(Some(Arc::new(Held { generation, conn })));
                shared.down_until.store(0, Ordering::Relaxed);
                shared.timeouts_in_a_row.store(0, Ordering::Relaxed);
                tracing::info!(generation, "Redis connected");
                pause = RETRY_MIN;
                drop(shared);
                wake.notified().await;
                let Some(shared) = weak.upgrade() else { return };
                // Stop handing out the failed connection; callers fail fast until replaced.
                shared.current.store(None);
            }
            Ok(Err(e)) => connect_failed(&shared, &e.to_string()),
            Err(_) => connect_failed(&shared, "connect timed out"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
}

fn connect_failed(shared: &Arc<Shared>, reason: &str) {
    let conn = RedisConn {
        shared: Arc::clone(shared),
    };
    if conn.should_warn() {
        tracing::warn!(
            reason,
            "cannot connect to Redis; retrying in the background"
        );
    } else {
        tracing::debug!(reason, "cannot connect to Redis");
    }
}
