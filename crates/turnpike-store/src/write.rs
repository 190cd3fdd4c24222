//! Write transactions: read, decide, write, with no other writer in between.
//!
//! The admin API validates a write against every entity (a route must name an upstream that
//! exists, an upstream in use cannot go). Reading the entities in one transaction and writing in
//! another would let a second writer, in this process or another one on the same database,
//! change what was validated in between: one deletes an upstream while the other adds a route
//! to it, both pass, and the store ends up invalid. A [`WriteTx`] holds the store's writer lock
//! from its first statement to its commit (see `sql.rs`), so its reads stay current.
//!
//! ```no_run
//! # async fn demo(store: turnpike_store::Store) -> Result<(), turnpike_store::StoreError> {
//! use serde_json::json;
//! let mut tx = store.begin_write().await?;
//! let (_version, records) = tx.snapshot().await?;
//! if records.iter().any(|r| r.kind == "upstreams" && r.name == "api") {
//!     tx.create("routes", "api", json!({"upstream": "api"}), "alice").await?;
//! }
//! tx.commit().await?; // dropping `tx` instead rolls everything back
//! # Ok(()) }
//! ```

use serde_json::Value;

use crate::db::{postgres, sqlite};
use crate::error::StoreError;
use crate::sql::By;
use crate::types::Record;

/// An open write transaction holding the store's writer lock; see the module doc.
///
/// Every write in it is audited, like [`crate::Store::create`] and friends (which are
/// one-write transactions of this kind); the first one bumps the config version, so a
/// transaction is one version however many entities it writes, and followers rebuild once. Nothing is visible to anyone
/// else until [`WriteTx::commit`]; dropping it rolls back and releases the lock.
pub struct WriteTx {
    inner: Inner,
    /// An entity write happened, so the version is already bumped: one per transaction.
    bumped: bool,
}

enum Inner {
    Sqlite(sqlite::Db, sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(postgres::Db, sqlx::Transaction<'static, sqlx::Postgres>),
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.inner {
            Inner::Sqlite(..) => "sqlite",
            Inner::Postgres(..) => "postgres",
        };
        f.debug_struct("WriteTx")
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}

/// Runs the same call on whichever backend the transaction is on.
macro_rules! on_tx {
    ($self:expr, $db:ident, $conn:ident => $call:expr) => {
        match &mut $self.inner {
            Inner::Sqlite($db, tx) => {
                let $conn = &mut **tx;
                $call
            }
            Inner::Postgres($db, tx) => {
                let $conn = &mut **tx;
                $call
            }
        }
    };
}

impl WriteTx {
    pub(crate) async fn sqlite(db: &sqlite::Db) -> Result<Self, StoreError> {
        let tx = db.begin_write().await?;
        Ok(Self {
            inner: Inner::Sqlite(db.clone(), tx),
            bumped: false,
        })
    }

    pub(crate) async fn postgres(db: &postgres::Db) -> Result<Self, StoreError> {
        let tx = db.begin_write().await?;
        Ok(Self {
            inner: Inner::Postgres(db.clone(), tx),
            bumped: false,
        })
    }

    /// Every entity (ordered by kind, then name) and the config version, as this transaction
    /// sees them: its own writes included, nobody else's until it ends.
    pub async fn snapshot(&mut self) -> Result<(i64, Vec<Record>), StoreError> {
        on_tx!(self, db, conn => db.snapshot_in(conn).await)
    }

    /// One entity, as this transaction sees it.
    pub async fn get(&mut self, kind: &str, name: &str) -> Result<Option<Record>, StoreError> {
        on_tx!(self, db, conn => db.fetch(conn, kind, name).await)
    }

    /// Creates an entity at revision 1; `Exists` if the key is taken.
    pub async fn create(
        &mut self,
        kind: &str,
        name: &str,
        doc: Value,
        actor: &str,
    ) -> Result<Record, StoreError> {
        let bump = self.first_write();
        on_tx!(self, db, conn => db.create(conn, kind, name, doc, By { actor, bump }).await)
    }

    /// Replaces an entity's document; with `expect`, only at that revision.
    pub async fn update(
        &mut self,
        kind: &str,
        name: &str,
        doc: Value,
        expect: Option<i64>,
        actor: &str,
    ) -> Result<Record, StoreError> {
        let bump = self.first_write();
        on_tx!(self, db, conn => db.update(conn, kind, name, doc, expect, By { actor, bump }).await)
    }

    /// Deletes an entity; with `expect`, only at that revision.
    pub async fn delete(
        &mut self,
        kind: &str,
        name: &str,
        expect: Option<i64>,
        actor: &str,
    ) -> Result<(), StoreError> {
        let bump = self.first_write();
        on_tx!(self, db, conn => db.delete(conn, kind, name, expect, By { actor, bump }).await)
    }

    /// True once per transaction: its first write bumps the config version. A failed write
    /// still counts; its error is meant to end the transaction (drop rolls it all back).
    fn first_write(&mut self) -> bool {
        !std::mem::replace(&mut self.bumped, true)
    }

    /// Makes every write visible at once (PostgreSQL sends the `NOTIFY`s now) and releases
    /// the writer lock.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.inner {
            Inner::Sqlite(db, tx) => tx.commit().await.map_err(|e| db.redactor.error(e)),
            Inner::Postgres(db, tx) => tx.commit().await.map_err(|e| db.redactor.error(e)),
        }
    }
}
