//! Opening a store: parsing the URL, migrating, and building the connection pool per backend.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{Redactor, Result, StoreError};
use crate::migrate;

pub(crate) mod sqlite {
    //! The SQLite `Db`.
    crate::sql::entity_queries!(sqlx::Sqlite, sqlx::SqliteConnection, false);
    crate::sql_admin::admin_queries!();
    crate::sql_usage::usage_queries!();
}

pub(crate) mod postgres {
    //! The PostgreSQL `Db`.
    crate::sql::entity_queries!(sqlx::Postgres, sqlx::PgConnection, true);
    crate::sql_admin::admin_queries!();
    crate::sql_usage::usage_queries!();
}

/// The open database, whichever it is.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(sqlite::Db),
    Postgres(postgres::Db),
}

/// How long a caller waits for a pooled connection, or SQLite for another writer's lock.
const WAIT: Duration = Duration::from_secs(10);
/// Admin writes are rare and serialised anyway; a few connections serve concurrent reads.
const POOL_SIZE: u32 = 5;

/// Opens, migrates and pools the database `url` names.
pub(crate) async fn open(url: &str) -> Result<Backend> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        open_postgres(url).await
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        open_sqlite(path).await
    } else if url.contains("://") {
        Err(StoreError::Invalid(format!(
            "unsupported store URL scheme {:?}: use sqlite://PATH, a file path, or postgres://...",
            url.split("://").next().unwrap_or_default()
        )))
    } else {
        open_sqlite(url).await
    }
}

async fn open_sqlite(path: &str) -> Result<Backend> {
    if path.is_empty() {
        return Err(StoreError::Invalid(
            "the SQLite store needs a file path".into(),
        ));
    }
    let parent = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent.filter(|d| !d.is_dir()) {
        return Err(StoreError::Unavailable(format!(
            "cannot create the store {path:?}: directory {} does not exist",
            dir.display()
        )));
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a committed admin write survives power loss too; writes are rare.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(WAIT);
    let redactor = Redactor::new(None);
    let unavailable =
        |e: sqlx::Error| StoreError::Unavailable(format!("SQLite store {path:?}: {e}"));
    let conn = while_locked(|| options.connect())
        .await
        .map_err(unavailable)?;
    migrate::sqlite(conn, &redactor).await?;
    let pool = while_locked(|| {
        SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(WAIT)
            .connect_with(options.clone())
    })
    .await
    .map_err(unavailable)?;
    Ok(Backend::Sqlite(sqlite::Db { pool, redactor }))
}

/// Retries `connect` while SQLite says "database is locked", for up to [`WAIT`]. Connecting
/// switches a fresh file to WAL, which needs a moment without other locks: while another
/// node migrates the same file, SQLite refuses at once instead of using its busy timeout.
async fn while_locked<T, F>(connect: impl Fn() -> F) -> std::result::Result<T, sqlx::Error>
where
    F: Future<Output = std::result::Result<T, sqlx::Error>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match connect().await {
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("5") && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            other => return other,
        }
    }
}

/// A PostgreSQL URL, parsed, with what its errors need.
struct PgTarget {
    options: PgConnectOptions,
    redactor: Redactor,
    /// `PostgreSQL at host:port/db`, for messages (never the URL: it may hold a password).
    shown: String,
}

fn pg_target(url: &str) -> Result<PgTarget> {
    let redactor = Redactor::new(url_password(url));
    let options = PgConnectOptions::from_str(url).map_err(|e| {
        StoreError::Invalid(format!(
            "PostgreSQL store URL: {}",
            redactor.clean(e.to_string())
        ))
    })?;
    let shown = format!(
        "PostgreSQL at {}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    );
    Ok(PgTarget {
        options,
        redactor,
        shown,
    })
}

fn pg_pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        // One more than readers need: the change feed keeps one for LISTEN.
        .max_connections(POOL_SIZE + 1)
        .acquire_timeout(WAIT)
}

async fn open_postgres(url: &str) -> Result<Backend> {
    let t = pg_target(url)?;
    migrate_postgres(&t).await?;
    let pool = pg_pool_options()
        .connect_with(t.options.clone())
        .await
        .map_err(|e| StoreError::Unavailable(t.redactor.clean(format!("{}: {e}", t.shown))))?;
    Ok(Backend::Postgres(postgres::Db {
        pool,
        redactor: t.redactor,
    }))
}

/// Connects once (failing fast: no pool retries) and migrates.
async fn migrate_postgres(t: &PgTarget) -> Result<()> {
    let unavailable =
        |e: String| StoreError::Unavailable(t.redactor.clean(format!("{}: {e}", t.shown)));
    let conn = match tokio::time::timeout(WAIT, t.options.connect()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(unavailable(e.to_string())),
        Err(_) => return Err(unavailable("connecting timed out".to_owned())),
    };
    migrate::postgres(conn, &t.redactor).await
}

/// A PostgreSQL store whose database did not answer yet: a pool that connects on demand, and
/// the [`Gate`] that migrates before first use.
pub(crate) fn defer_postgres(url: &str) -> Result<(Backend, Gate)> {
    let t = pg_target(url)?;
    let pool = pg_pool_options().connect_lazy_with(t.options.clone());
    let db = postgres::Db {
        pool,
        redactor: t.redactor.clone(),
    };
    let gate = Gate {
        ready: tokio::sync::OnceCell::new(),
        pending: Some(t),
    };
    Ok((Backend::Postgres(db), gate))
}

/// Whether the database has been reached and migrated. A store opened normally is; one
/// opened while its database was down ([`crate::Store::open_deferred`]) connects and
/// migrates on first use, and every call fails with `Unavailable` until that works. Checked
/// before every call, so nothing ever runs against an unmigrated schema.
pub(crate) struct Gate {
    ready: tokio::sync::OnceCell<()>,
    pending: Option<PgTarget>,
}

impl std::fmt::Debug for Gate {
    // By hand: the connect options hold the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("ready", &self.ready.initialized())
            .field("target", &self.pending.as_ref().map(|t| &t.shown))
            .finish()
    }
}

impl Gate {
    /// The gate of a store opened (and migrated) at once.
    pub(crate) fn open() -> Self {
        Self {
            ready: tokio::sync::OnceCell::new_with(Some(())),
            pending: None,
        }
    }

    /// Ok once the database has been migrated; tries it now if not yet. Concurrent callers
    /// wait for one attempt; a failed attempt is tried again by the next call.
    pub(crate) async fn ready(&self) -> Result<()> {
        if self.ready.initialized() {
            return Ok(());
        }
        let Some(target) = &self.pending else {
            return Ok(());
        };
        self.ready
            .get_or_try_init(|| async {
                migrate_postgres(target).await?;
                tracing::info!(store = %target.shown, "config store reached and migrated");
                Ok::<(), StoreError>(())
            })
            .await
            .map(|_| ())
    }
}

/// The password in `scheme://user:password@host/...`, to redact from driver messages.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    Some(password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_password_to_hide() {
        assert_eq!(
            url_password("postgres://u:s3cret@h:5432/db").as_deref(),
            Some("s3cret")
        );
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(url_password("postgres://h/db?user=x"), None);
    }

    #[tokio::test]
    async fn rejects_unknown_schemes_and_missing_directories() {
        let err = open("mysql://x/y").await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        let err = open("/nonexistent-dir-turnpike/store.db")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
