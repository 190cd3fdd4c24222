//! Entity reads and writes, written once and expanded for each backend.
//!
//! The SQL is the same on SQLite and PostgreSQL (`$N` parameters work on both); only the Rust
//! types differ, so a macro stamps out one `Db` per backend instead of fighting sqlx's generic
//! bounds.
//!
//! Entity writes run inside a write transaction ([`crate::WriteTx`]) that takes the store's
//! writer lock before its first statement: a transaction-scoped advisory lock on PostgreSQL
//! (keyed by this schema's `config_version` table, so schemas sharing a database do not wait
//! for each other), `BEGIN IMMEDIATE` on SQLite. Every writer in every process queues there,
//! so what a writer reads inside its transaction (the snapshot it validates against, the
//! `before` document) stays current until it commits, and versions are handed out in commit
//! order.

/// Who writes an entity, and whether this write bumps the config version (the first of its
/// transaction does).
#[derive(Debug, Clone, Copy)]
pub(crate) struct By<'a> {
    pub(crate) actor: &'a str,
    pub(crate) bump: bool,
}

/// Expands to a `Db` type over `$db` with the entity operations. `$postgres` turns on NOTIFY.
macro_rules! entity_queries {
    ($db:ty, $conn:ty, $postgres:expr) => {
        use serde_json::Value;
        use sqlx::Row;

        use $crate::error::{Redactor, Result, StoreError, is_unique_violation};
        use $crate::sql::By;
        use $crate::types::{
            ListQuery, Page, Record, audit_view, check_limit, doc_text, now, parse_doc,
        };

        type Conn = $conn;
        type DbRow = <$db as sqlx::Database>::Row;
        const POSTGRES: bool = $postgres;
        const RECORD_COLUMNS: &str = "kind, name, doc, revision, created_at, updated_at";
        /// First key of the writer lock (PostgreSQL); the second is the `config_version`
        /// table's oid. Any constant works, as long as every Turnpike uses the same.
        const WRITE_LOCK_CLASS: i32 = 0x7470_7772; // "tpwr"

        /// A pool plus what is needed to turn its errors into `StoreError`s.
        #[derive(Debug, Clone)]
        pub(crate) struct Db {
            pub(crate) pool: sqlx::Pool<$db>,
            pub(crate) redactor: Redactor,
        }

        /// One audit row to write.
        pub(crate) struct AuditWrite<'a> {
            pub(crate) at: &'a str,
            pub(crate) actor: &'a str,
            pub(crate) action: &'a str,
            pub(crate) kind: &'a str,
            pub(crate) name: &'a str,
            pub(crate) before: Option<&'a Value>,
            pub(crate) after: Option<&'a Value>,
        }

        fn record(row: &DbRow) -> std::result::Result<Record, sqlx::Error> {
            let doc: String = row.try_get("doc")?;
            Ok(Record {
                kind: row.try_get("kind")?,
                name: row.try_get("name")?,
                doc: parse_doc(&doc).map_err(|e| sqlx::Error::Decode(e.to_string().into()))?,
                revision: row.try_get("revision")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn not_found(kind: &str, name: &str) -> StoreError {
            StoreError::NotFound {
                kind: kind.to_owned(),
                name: name.to_owned(),
            }
        }

        impl Db {
            fn err(&self, e: sqlx::Error) -> StoreError {
                self.redactor.error(e)
            }

            /// Starts a write transaction holding the writer lock (see the module doc).
            pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, $db>> {
                if POSTGRES {
                    let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
                    // Released by commit or rollback, so an error path can never leak it.
                    sqlx::query(
                        "SELECT pg_advisory_xact_lock($1, 'config_version'::regclass::oid::int)",
                    )
                    .bind(WRITE_LOCK_CLASS)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                    Ok(tx)
                } else {
                    // A deferred transaction that read first could not upgrade to a writer
                    // once another connection committed (SQLITE_BUSY_SNAPSHOT, not retried);
                    // IMMEDIATE waits for the write lock (busy timeout) before reading.
                    self.pool
                        .begin_with("BEGIN IMMEDIATE")
                        .await
                        .map_err(|e| self.err(e))
                }
            }

            /// Bumps the config version: the first entity write of a transaction does, so one
            /// transaction is one version however many entities it writes.
            async fn bump(&self, conn: &mut Conn) -> Result<i64> {
                let version: i64 = sqlx::query_scalar(
                    "UPDATE config_version SET version = version + 1 WHERE id = 1 \
                     RETURNING version",
                )
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| self.err(e))?;
                if POSTGRES {
                    // Inside the transaction: PostgreSQL delivers it only if we commit.
                    sqlx::query("SELECT pg_notify('turnpike_config', $1)")
                        .bind(version.to_string())
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| self.err(e))?;
                }
                Ok(version)
            }

            pub(crate) async fn write_audit(
                &self,
                conn: &mut Conn,
                a: AuditWrite<'_>,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO audit_log (at, actor, action, kind, name, before_doc, after_doc) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(a.at)
                .bind(a.actor)
                .bind(a.action)
                .bind(a.kind)
                .bind(a.name)
                .bind(a.before.map(|d| audit_view(a.kind, d)))
                .bind(a.after.map(|d| audit_view(a.kind, d)))
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err(e))?;
                Ok(())
            }

            pub(crate) async fn fetch(
                &self,
                conn: &mut Conn,
                kind: &str,
                name: &str,
            ) -> Result<Option<Record>> {
                let sql =
                    format!("SELECT {RECORD_COLUMNS} FROM entities WHERE kind = $1 AND name = $2");
                let row = sqlx::query(&sql)
                    .bind(kind)
                    .bind(name)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| self.err(e))?;
                row.map(|r| record(&r)).transpose().map_err(|e| self.err(e))
            }

            pub(crate) async fn get(&self, kind: &str, name: &str) -> Result<Option<Record>> {
                let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
                self.fetch(&mut conn, kind, name).await
            }

            pub(crate) async fn list(&self, kind: &str, q: &ListQuery) -> Result<Page> {
                let limit = check_limit(q.limit)?;
                // `substr(name, 1, length(p)) = p` is a prefix test without LIKE's wildcards.
                let sql = format!(
                    "SELECT {RECORD_COLUMNS} FROM entities WHERE kind = $1 \
                     AND ($2 IS NULL OR name > $2) \
                     AND ($3 IS NULL OR (name >= $3 AND substr(name, 1, length($3)) = $3)) \
                     ORDER BY name LIMIT $4"
                );
                // One row more than asked tells whether another page follows.
                let rows = sqlx::query(&sql)
                    .bind(kind)
                    .bind(q.after.as_deref())
                    .bind(q.prefix.as_deref())
                    .bind(limit + 1)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| self.err(e))?;
                let mut items = rows
                    .iter()
                    .map(record)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| self.err(e))?;
                let more = items.len() as i64 > limit;
                items.truncate(limit as usize);
                let next = if more {
                    items.last().map(|r| r.name.clone())
                } else {
                    None
                };
                Ok(Page { items, next })
            }

            pub(crate) async fn create(
                &self,
                tx: &mut Conn,
                kind: &str,
                name: &str,
                doc: Value,
                by: By<'_>,
            ) -> Result<Record> {
                let actor = by.actor;
                if by.bump {
                    self.bump(&mut *tx).await?;
                }
                let at = now();
                let rec = Record {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    doc,
                    revision: 1,
                    created_at: at.clone(),
                    updated_at: at.clone(),
                };
                let sql = format!(
                    "INSERT INTO entities ({RECORD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
                );
                sqlx::query(&sql)
                    .bind(kind)
                    .bind(name)
                    .bind(doc_text(&rec.doc))
                    .bind(rec.revision)
                    .bind(&at)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::Exists {
                                kind: kind.to_owned(),
                                name: name.to_owned(),
                            }
                        } else {
                            self.err(e)
                        }
                    })?;
                let audit = AuditWrite {
                    at: &at,
                    actor,
                    action: "create",
                    kind,
                    name,
                    before: None,
                    after: Some(&rec.doc),
                };
                self.write_audit(&mut *tx, audit).await?;
                Ok(rec)
            }

            pub(crate) async fn update(
                &self,
                tx: &mut Conn,
                kind: &str,
                name: &str,
                doc: Value,
                expect: Option<i64>,
                by: By<'_>,
            ) -> Result<Record> {
                let actor = by.actor;
                if by.bump {
                    self.bump(&mut *tx).await?;
                }
                let before = self.fetch(&mut *tx, kind, name).await?;
                let before = before.ok_or_else(|| not_found(kind, name))?;
                if expect.is_some_and(|e| e != before.revision) {
                    // The caller drops the transaction, which rolls the version bump back.
                    return Err(StoreError::RevisionMismatch {
                        current: before.revision,
                    });
                }
                let at = now();
                let rec = Record {
                    doc,
                    revision: before.revision + 1,
                    updated_at: at.clone(),
                    ..before.clone()
                };
                sqlx::query(
                    "UPDATE entities SET doc = $1, revision = $2, updated_at = $3 \
                     WHERE kind = $4 AND name = $5",
                )
                .bind(doc_text(&rec.doc))
                .bind(rec.revision)
                .bind(&at)
                .bind(kind)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
                let audit = AuditWrite {
                    at: &at,
                    actor,
                    action: "update",
                    kind,
                    name,
                    before: Some(&before.doc),
                    after: Some(&rec.doc),
                };
                self.write_audit(&mut *tx, audit).await?;
                Ok(rec)
            }

            pub(crate) async fn delete(
                &self,
                tx: &mut Conn,
                kind: &str,
                name: &str,
                expect: Option<i64>,
                by: By<'_>,
            ) -> Result<()> {
                let actor = by.actor;
                if by.bump {
                    self.bump(&mut *tx).await?;
                }
                let before = self.fetch(&mut *tx, kind, name).await?;
                let before = before.ok_or_else(|| not_found(kind, name))?;
                if expect.is_some_and(|e| e != before.revision) {
                    return Err(StoreError::RevisionMismatch {
                        current: before.revision,
                    });
                }
                sqlx::query("DELETE FROM entities WHERE kind = $1 AND name = $2")
                    .bind(kind)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                let at = now();
                let audit = AuditWrite {
                    at: &at,
                    actor,
                    action: "delete",
                    kind,
                    name,
                    before: Some(&before.doc),
                    after: None,
                };
                self.write_audit(&mut *tx, audit).await
            }

            pub(crate) async fn version(&self) -> Result<i64> {
                sqlx::query_scalar("SELECT version FROM config_version WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| self.err(e))
            }

            /// One statement, so one snapshot on both backends: the version and every entity.
            pub(crate) async fn snapshot(&self) -> Result<(i64, Vec<Record>)> {
                let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
                let taken = self.snapshot_in(&mut tx).await?;
                tx.commit().await.map_err(|e| self.err(e))?;
                Ok(taken)
            }

            /// [`Db::snapshot`] inside a transaction the caller holds.
            pub(crate) async fn snapshot_in(&self, conn: &mut Conn) -> Result<(i64, Vec<Record>)> {
                let rows = sqlx::query(
                    "SELECT v.version AS version, e.kind AS kind, e.name AS name, e.doc AS doc, \
                     e.revision AS revision, e.created_at AS created_at, \
                     e.updated_at AS updated_at \
                     FROM config_version v LEFT JOIN entities e ON 1 = 1 WHERE v.id = 1 \
                     ORDER BY e.kind, e.name",
                )
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.err(e))?;
                let mut version = 0;
                let mut records = Vec::with_capacity(rows.len());
                for row in &rows {
                    version = row.try_get("version").map_err(|e| self.err(e))?;
                    let kind: Option<String> = row.try_get("kind").map_err(|e| self.err(e))?;
                    if kind.is_some() {
                        records.push(record(row).map_err(|e| self.err(e))?);
                    }
                }
                Ok((version, records))
            }

            pub(crate) async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}

pub(crate) use entity_queries;
