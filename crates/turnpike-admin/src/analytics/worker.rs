//! The control plane's analytics task: every `analytics.flush_interval` it takes the closed
//! minutes out of the gateway's in-memory rollups and writes them to the store under this
//! node's id (with the heartbeat `/api/v1/status` lists peers from); every few minutes it
//! downsamples and expires old rows. At shutdown it writes everything still in memory.
//!
//! A failed write keeps its rows for the next attempt (merged with newer ones), up to a
//! bound past which the oldest minutes are dropped with a warning: the store being down
//! must not grow the gateway's memory without limit.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval, interval_at};
use turnpike_analytics::usage::{merge_rows, minute_of};
use turnpike_analytics::{Usage, UsageRow};
use turnpike_store::{NodeRow, Resolution};

use crate::state::AdminState;

/// Rows per write transaction.
const BATCH: usize = 500;
/// Rows kept in memory while the store cannot be written.
const MAX_PENDING: usize = 200_000;
/// How often downsampling and expiry run, and how soon after start the first run is.
const ROLLUP_EVERY: Duration = Duration::from_secs(300);
const ROLLUP_FIRST: Duration = Duration::from_secs(30);
/// Nodes silent this long are removed from the `nodes` table.
const FORGET_NODES: i64 = 7 * 86_400;
/// The final flush at shutdown gives up after this long.
const FINAL_FLUSH: Duration = Duration::from_secs(10);

/// The running task; [`Worker::shutdown`] flushes what is left.
#[derive(Debug)]
pub struct Worker {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Worker {
    /// Starts the task on the current tokio runtime, draining `usage` (the gateway's
    /// `Metrics::usage()`) into the store of `state`.
    pub fn start(state: AdminState, usage: Arc<Usage>) -> Self {
        let (stop, stopped) = oneshot::channel();
        let run = Run {
            state,
            usage,
            pending: Vec::new(),
            failing: false,
        };
        Self {
            stop: Some(stop),
            task: tokio::spawn(run.main(stopped)),
        }
    }

    /// Stops the task after writing every row still in memory (the current minute too).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

struct Run {
    state: AdminState,
    usage: Arc<Usage>,
    /// Rows not written yet, sorted by key (oldest minute first).
    pending: Vec<UsageRow>,
    /// Whether the last write failed (so the warning is logged once per outage).
    failing: bool,
}

impl Run {
    async fn main(mut self, mut stopped: oneshot::Receiver<()>) {
        let settings = self.state.analytics_settings().clone();
        let mut flush = interval(settings.flush_interval.as_std());
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let first = tokio::time::Instant::now() + ROLLUP_FIRST;
        let mut rollup = interval_at(first, ROLLUP_EVERY);
        rollup.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = flush.tick() => {
                    let current = minute_of(std::time::SystemTime::now());
                    self.flush(Some(current)).await;
                    self.heartbeat().await;
                }
                _ = rollup.tick() => self.rollup().await,
            }
        }
        let last = async {
            self.flush(None).await;
            self.heartbeat().await;
        };
        if tokio::time::timeout(FINAL_FLUSH, last).await.is_err() {
            tracing::warn!(
                "analytics: the final write to the store timed out; recent usage is lost"
            );
        }
    }

    /// Writes the minutes before `before` (all of them when `None`) and anything pending.
    async fn flush(&mut self, before: Option<i64>) {
        let drained = self.usage.drain(before);
        if drained.is_empty() && self.pending.is_empty() {
            return;
        }
        let rows = merge_rows(std::mem::take(&mut self.pending).into_iter().chain(drained));
        let store = self.state.store().clone();
        let node = self.state.node_id().to_owned();
        let mut written = 0;
        for chunk in rows.chunks(BATCH) {
            if let Err(e) = store.write_usage(Resolution::Minute, &node, chunk).await {
                if !self.failing {
                    tracing::warn!(error = %e, "analytics: cannot write usage to the store; keeping it in memory and retrying");
                }
                self.failing = true;
                break;
            }
            written += chunk.len();
        }
        if written == rows.len() {
            if self.failing {
                tracing::info!("analytics: usage written to the store again");
            }
            self.failing = false;
            return;
        }
        self.keep(rows.into_iter().skip(written).collect());
    }

    /// Keeps unwritten rows, dropping the oldest past [`MAX_PENDING`].
    fn keep(&mut self, mut rows: Vec<UsageRow>) {
        if rows.len() > MAX_PENDING {
            let dropped = rows.len() - MAX_PENDING;
            tracing::warn!(
                rows = dropped,
                "analytics: the store is unreachable for long; dropping the oldest usage rows"
            );
            rows.drain(..dropped);
        }
        self.pending = rows;
    }

    async fn heartbeat(&self) {
        let inner = &self.state.inner;
        let row = NodeRow {
            id: inner.node.id.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: inner.node.started_at,
            seen_at: jiff::Timestamp::now().as_second(),
            config_version: inner.feed.version(),
        };
        // The change feed already reports an unreachable store; this would repeat it.
        if let Err(e) = self.state.store().heartbeat(&row).await {
            tracing::debug!(error = %e, "analytics: heartbeat not written");
        }
    }

    /// Downsamples past each resolution's retention and deletes what the last one outlives.
    async fn rollup(&self) {
        let r = &self.state.analytics_settings().retention;
        let now = jiff::Timestamp::now().as_second();
        let ago = |d: turnpike_config::units::Duration| {
            now.saturating_sub(i64::try_from(d.as_std().as_secs()).unwrap_or(i64::MAX))
        };
        let store = self.state.store();
        let results = [
            store.rollup(Resolution::Minute, ago(r.minute)).await,
            store.rollup(Resolution::Hour, ago(r.hour)).await,
            store.expire_usage(Resolution::Day, ago(r.day)).await,
            store.forget_nodes(now - FORGET_NODES).await,
        ];
        for e in results.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %e, "analytics: downsampling failed; retrying in {} minutes", ROLLUP_EVERY.as_secs() / 60);
        }
    }
}
