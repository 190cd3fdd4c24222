//! Audit-log reads and admin-token reads and writes, expanded for each backend like `sql.rs`.
//!
//! Token writes are audited (without the hash) but do not bump `config_version`: tokens guard
//! the admin API and are read from the store on use, they are not part of the gateway's config.

/// Expands inside a module that already expanded `entity_queries!`.
macro_rules! admin_queries {
    () => {
        use $crate::types::{AuditEntry, AuditQuery, NewToken, TOKEN_KIND, TokenRow};

        const TOKEN_COLUMNS: &str = "id, name, role, hash, created_at, revoked";

        fn audit_entry(row: &DbRow) -> std::result::Result<AuditEntry, sqlx::Error> {
            let doc = |column: &str| -> std::result::Result<Option<Value>, sqlx::Error> {
                let text: Option<String> = row.try_get(column)?;
                text.map(|t| parse_doc(&t).map_err(|e| sqlx::Error::Decode(e.to_string().into())))
                    .transpose()
            };
            Ok(AuditEntry {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                kind: row.try_get("kind")?,
                name: row.try_get("name")?,
                before: doc("before_doc")?,
                after: doc("after_doc")?,
            })
        }

        fn token_row(row: &DbRow) -> std::result::Result<TokenRow, sqlx::Error> {
            Ok(TokenRow {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                role: row.try_get("role")?,
                hash: row.try_get("hash")?,
                created_at: row.try_get("created_at")?,
                revoked: row.try_get("revoked")?,
            })
        }

        impl Db {
            pub(crate) async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
                let limit = check_limit(q.limit)?;
                let rows = sqlx::query(
                    "SELECT id, at, actor, action, kind, name, before_doc, after_doc \
                     FROM audit_log WHERE ($1 IS NULL OR id < $1) \
                     AND ($2 IS NULL OR kind = $2) AND ($3 IS NULL OR name = $3) \
                     ORDER BY id DESC LIMIT $4",
                )
                .bind(q.before_id)
                .bind(q.kind.as_deref())
                .bind(q.name.as_deref())
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
                rows.iter()
                    .map(audit_entry)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| self.err(e))
            }

            pub(crate) async fn create_token(&self, t: &NewToken, actor: &str) -> Result<TokenRow> {
                let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
                let row = TokenRow {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    role: t.role.clone(),
                    hash: t.hash.clone(),
                    created_at: now(),
                    revoked: false,
                };
                let sql = format!(
                    "INSERT INTO admin_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
                );
                sqlx::query(&sql)
                    .bind(&row.id)
                    .bind(&row.name)
                    .bind(&row.role)
                    .bind(&row.hash)
                    .bind(&row.created_at)
                    .bind(row.revoked)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::Exists {
                                kind: TOKEN_KIND.to_owned(),
                                name: t.id.clone(),
                            }
                        } else {
                            self.err(e)
                        }
                    })?;
                let after = row.audit_doc();
                let audit = AuditWrite {
                    at: &row.created_at,
                    actor,
                    action: "create",
                    kind: TOKEN_KIND,
                    name: &row.id,
                    before: None,
                    after: Some(&after),
                };
                self.write_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(|e| self.err(e))?;
                Ok(row)
            }

            async fn fetch_token(&self, conn: &mut Conn, id: &str) -> Result<Option<TokenRow>> {
                let sql = format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE id = $1");
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| self.err(e))?;
                row.map(|r| token_row(&r))
                    .transpose()
                    .map_err(|e| self.err(e))
            }

            pub(crate) async fn token(&self, id: &str) -> Result<Option<TokenRow>> {
                let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
                self.fetch_token(&mut conn, id).await
            }

            pub(crate) async fn tokens(&self) -> Result<Vec<TokenRow>> {
                let sql = format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens ORDER BY id");
                let rows = sqlx::query(&sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| self.err(e))?;
                rows.iter()
                    .map(token_row)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| self.err(e))
            }

            /// Revoking a revoked token succeeds and writes nothing.
            pub(crate) async fn revoke_token(&self, id: &str, actor: &str) -> Result<()> {
                let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
                // The UPDATE comes first so it takes the row's write lock before we read `before`.
                let sql = "UPDATE admin_tokens SET revoked = $1 WHERE id = $2 AND revoked = $3";
                let changed = sqlx::query(sql)
                    .bind(true)
                    .bind(id)
                    .bind(false)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?
                    .rows_affected();
                let missing = || StoreError::NotFound {
                    kind: TOKEN_KIND.to_owned(),
                    name: id.to_owned(),
                };
                let after = self.fetch_token(&mut tx, id).await?.ok_or_else(missing)?;
                if changed == 0 {
                    return Ok(());
                }
                let before = TokenRow {
                    revoked: false,
                    ..after.clone()
                }
                .audit_doc();
                let after = after.audit_doc();
                let at = now();
                let audit = AuditWrite {
                    at: &at,
                    actor,
                    action: "revoke",
                    kind: TOKEN_KIND,
                    name: id,
                    before: Some(&before),
                    after: Some(&after),
                };
                self.write_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(|e| self.err(e))
            }

            pub(crate) async fn token_count(&self) -> Result<u64> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_tokens")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| self.err(e))?;
                Ok(u64::try_from(n).unwrap_or(0))
            }
        }
    };
}

pub(crate) use admin_queries;
