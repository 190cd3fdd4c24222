//! Embedded, versioned, forward-only migrations, recorded in `schema_migrations`.
//!
//! Each runs under a lock so two nodes starting together do not race: PostgreSQL takes an
//! advisory lock on a dedicated connection (closing it releases the lock even if we fail
//! halfway); SQLite runs everything in one `BEGIN IMMEDIATE` transaction (its DDL is
//! transactional, so a failed migration leaves nothing behind).

use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::error::{Redactor, Result, StoreError};

/// One schema step. Files live in `migrations/`: `NNNN_name.sql` when both backends share the
/// SQL, `NNNN_name.sqlite.sql` plus `NNNN_name.postgres.sql` where it must differ.
#[derive(Debug)]
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
}

/// Every migration this binary knows, in order. Append only: a released step never changes.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../migrations/0001_init.sqlite.sql"),
        postgres: include_str!("../migrations/0001_init.postgres.sql"),
    },
    Migration {
        version: 2,
        name: "analytics",
        sqlite: include_str!("../migrations/0002_analytics.sqlite.sql"),
        postgres: include_str!("../migrations/0002_analytics.postgres.sql"),
    },
];

/// The newest schema version this binary knows.
pub const SCHEMA_VERSION: i64 = 2;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";
const CURRENT: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
const RECORD: &str =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)";

/// Any number: it only has to be the same in every Turnpike that shares a database.
const PG_LOCK_KEY: i64 = 0x7475_726e_7069_6b65; // "turnpike"

fn failed(r: &Redactor, step: &str, e: sqlx::Error) -> StoreError {
    StoreError::Migration(format!("{step}: {}", r.clean(e.to_string())))
}

fn check_not_newer(found: i64) -> Result<()> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings a SQLite database up to [`SCHEMA_VERSION`]; the connection is closed afterwards.
pub(crate) async fn sqlite(mut conn: SqliteConnection, r: &Redactor) -> Result<()> {
    let result = sqlite_steps(&mut conn, r).await;
    if result.is_err() {
        // Best effort: closing the connection rolls back anyway.
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
    }
    let _ = conn.close().await;
    result
}

async fn sqlite_steps(conn: &mut SqliteConnection, r: &Redactor) -> Result<()> {
    // IMMEDIATE takes the write lock now, so a second opener waits here (busy timeout) and then
    // sees the finished schema instead of applying it twice.
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .map_err(|e| failed(r, "lock", e))?;
    sqlx::query(CREATE_TABLE)
        .execute(&mut *conn)
        .await
        .map_err(|e| failed(r, "schema_migrations", e))?;
    let current: i64 = sqlx::query_scalar(CURRENT)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| failed(r, "read", e))?;
    check_not_newer(current)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let step = format!("{:04}_{}", m.version, m.name);
        sqlx::raw_sql(m.sqlite)
            .execute(&mut *conn)
            .await
            .map_err(|e| failed(r, &step, e))?;
        sqlx::query(RECORD)
            .bind(m.version)
            .bind(m.name)
            .bind(crate::types::now())
            .execute(&mut *conn)
            .await
            .map_err(|e| failed(r, &step, e))?;
    }
    sqlx::raw_sql("COMMIT")
        .execute(&mut *conn)
        .await
        .map_err(|e| failed(r, "commit", e))?;
    Ok(())
}

/// Brings a PostgreSQL database (the connection's `search_path` schema) up to date.
pub(crate) async fn postgres(mut conn: PgConnection, r: &Redactor) -> Result<()> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(PG_LOCK_KEY)
        .execute(&mut conn)
        .await
        .map_err(|e| failed(r, "lock", e))?;
    let result = postgres_steps(&mut conn, r).await;
    // Closing the session releases the advisory lock whether or not the unlock ran.
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(PG_LOCK_KEY)
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    result
}

async fn postgres_steps(conn: &mut PgConnection, r: &Redactor) -> Result<()> {
    sqlx::query(CREATE_TABLE)
        .execute(&mut *conn)
        .await
        .map_err(|e| failed(r, "schema_migrations", e))?;
    let current: i64 = sqlx::query_scalar(CURRENT)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| failed(r, "read", e))?;
    check_not_newer(current)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let step = format!("{:04}_{}", m.version, m.name);
        // One transaction per step: a failed step leaves the schema at the previous version.
        let mut tx = conn.begin().await.map_err(|e| failed(r, &step, e))?;
        // Without arguments this is PostgreSQL's simple query protocol, so a file may hold
        // several statements. (Not `raw_sql`: its generic future cannot be proven `Send`, and
        // a deferred store migrates from inside the change feed's spawned task.)
        sqlx::Executor::execute(&mut *tx, m.postgres)
            .await
            .map_err(|e| failed(r, &step, e))?;
        sqlx::query(RECORD)
            .bind(m.version)
            .bind(m.name)
            .bind(crate::types::now())
            .execute(&mut *tx)
            .await
            .map_err(|e| failed(r, &step, e))?;
        tx.commit().await.map_err(|e| failed(r, &step, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in `migrations/` is listed, in order, and the list ends at `SCHEMA_VERSION`.
    #[test]
    fn migrations_match_the_directory() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut listed = Vec::new();
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "versions are consecutive from 1");
            let stem = format!("{:04}_{}", m.version, m.name);
            if m.sqlite == m.postgres {
                listed.push(format!("{stem}.sql"));
            } else {
                listed.push(format!("{stem}.postgres.sql"));
                listed.push(format!("{stem}.sqlite.sql"));
            }
        }
        assert_eq!(files, listed);
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }
}
