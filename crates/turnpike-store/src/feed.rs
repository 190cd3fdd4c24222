//! The change feed: a background task that follows the store's config version and health.
//!
//! PostgreSQL: a dedicated `LISTEN turnpike_config` connection wakes the task at once; a poll
//! every second catches anything missed and notices when the database comes back. The payload
//! is not trusted: a notification only triggers a read of our own `config_version`, because
//! other schemas in the same database may use the same channel. SQLite has no notifications
//! (and other processes may write the file), so it polls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::db::{Backend, Gate};

/// Notification channel every PostgreSQL write signals.
pub const CHANNEL: &str = "turnpike_config";
/// PostgreSQL's safety-net poll; NOTIFY is the fast path.
const PG_POLL: Duration = Duration::from_secs(1);
/// SQLite's only path, so faster than a second to keep "seen within one second".
const SQLITE_POLL: Duration = Duration::from_millis(250);
/// A poll or reconnect that takes longer counts as a failure: the pool would otherwise wait
/// its full acquire timeout while the database is down, and health would lag behind.
const ATTEMPT: Duration = Duration::from_secs(2);

/// A view of the store's config version and reachability, kept current by a background task.
///
/// Clones share the task. It stops when the store and every feed clone are gone.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    rx: watch::Receiver<i64>,
    health: Arc<Health>,
}

#[derive(Debug)]
struct Health {
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Health {
    fn ok(&self) {
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::info!("config store reachable again");
        }
    }

    fn failed(&self, message: String) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(error = %message, "config store unreachable");
        }
        self.note(message);
    }

    /// Records an error that does not decide health: without LISTEN, polling still follows.
    fn note(&self, message: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message);
    }
}

impl ChangeFeed {
    /// The latest config version seen.
    pub fn version(&self) -> i64 {
        *self.rx.borrow()
    }

    /// A receiver that wakes on every new version (`changed().await`).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.rx.clone()
    }

    /// Whether the last poll of the database succeeded. (PostgreSQL: a lost LISTEN connection
    /// alone does not make the feed unhealthy, since polling still follows every change.)
    pub fn healthy(&self) -> bool {
        self.health.healthy.load(Ordering::Acquire)
    }

    /// The most recent error, kept after recovery so operators can see what happened.
    pub fn last_error(&self) -> Option<String> {
        self.health
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// How a feed begins.
pub(crate) struct Start {
    /// The version reported until the first poll (which runs at once).
    pub(crate) seed: i64,
    /// Polls wait for the database to be reached and migrated.
    pub(crate) gate: Arc<Gate>,
    /// Why the database did not answer when the store was opened: the feed starts unhealthy.
    pub(crate) down: Option<String>,
}

/// Starts the task for `backend`.
pub(crate) fn start(backend: Backend, start: Start) -> ChangeFeed {
    let (tx, rx) = watch::channel(start.seed);
    // Healthy to begin with when the store was just opened (or used) successfully.
    let health = Arc::new(Health {
        healthy: AtomicBool::new(start.down.is_none()),
        last_error: Mutex::new(start.down),
    });
    let feed = ChangeFeed {
        rx,
        health: health.clone(),
    };
    tokio::spawn(run(backend, tx, health, start.gate));
    feed
}

async fn run(backend: Backend, tx: watch::Sender<i64>, health: Arc<Health>, gate: Arc<Gate>) {
    let pg_pool = match &backend {
        Backend::Postgres(db) => Some(db.pool.clone()),
        Backend::Sqlite(_) => None,
    };
    let mut ticker = tokio::time::interval(if pg_pool.is_some() {
        PG_POLL
    } else {
        SQLITE_POLL
    });
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listener: Option<PgListener> = None;
    loop {
        // LISTEN only once the database is there: until then each tick tries the gate.
        if let (Some(pool), None) = (&pg_pool, &listener) {
            let reached = gate.ready().await.is_ok();
            if reached {
                listener = listen(pool, &health).await;
            }
        }
        tokio::select! {
            () = tx.closed() => return,
            _ = ticker.tick() => {}
            alive = notification(&mut listener) => {
                if !alive {
                    listener = None;
                }
            }
        }
        match gate.ready().await {
            Ok(()) => poll(&backend, &tx, &health).await,
            Err(e) => health.failed(e.to_string()),
        }
    }
}

async fn listen(pool: &sqlx::PgPool, health: &Health) -> Option<PgListener> {
    let attempt = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match tokio::time::timeout(ATTEMPT, attempt).await {
        Ok(Ok(listener)) => Some(listener),
        Ok(Err(e)) => {
            health.note(format!("LISTEN {CHANNEL}: {e}"));
            None
        }
        Err(_) => {
            health.note(format!("LISTEN {CHANNEL}: timed out"));
            None
        }
    }
}

/// Waits for a notification: `true` when one came, `false` when the connection was lost.
async fn notification(listener: &mut Option<PgListener>) -> bool {
    match listener {
        // `try_recv` returns `None` when the connection dropped; we reconnect on the next loop.
        Some(l) => matches!(l.try_recv().await, Ok(Some(_))),
        None => std::future::pending().await,
    }
}

async fn poll(backend: &Backend, tx: &watch::Sender<i64>, health: &Health) {
    let read = async {
        match backend {
            Backend::Sqlite(db) => db.version().await,
            Backend::Postgres(db) => db.version().await,
        }
    };
    match tokio::time::timeout(ATTEMPT, read).await {
        Err(_) => health.failed("reading config_version timed out".to_owned()),
        Ok(Err(e)) => health.failed(e.to_string()),
        Ok(Ok(version)) => {
            health.ok();
            tx.send_if_modified(|current| {
                let changed = *current != version;
                *current = version;
                changed
            });
        }
    }
}
