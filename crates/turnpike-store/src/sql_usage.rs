//! Usage rollups and node heartbeats, expanded for each backend like `sql.rs`.
//!
//! A row is written by "insert, or else merge": `INSERT ... ON CONFLICT DO NOTHING`, and when
//! the key exists, read it (`FOR UPDATE` on PostgreSQL; SQLite's first write already holds the
//! database lock), add the counts, merge the sketches in Rust and update. So a minute written
//! twice (a late request, a restart) adds up instead of overwriting.
//!
//! Downsampling moves rows with `DELETE ... RETURNING`: concurrent nodes rolling up the same
//! period each get disjoint rows, so nothing is counted twice, and a failed transaction puts
//! the rows back.

/// Expands inside a module that already expanded `entity_queries!`.
macro_rules! usage_queries {
    () => {
        use turnpike_analytics::{Sketch, UsageKey, UsageRow, UsageTotals};

        use $crate::types::{NodeRow, Resolution, UsageQuery, clamp_i64, clamp_u64};

        const USAGE_COLUMNS: &str = "node, bucket, route, service, consumer, status_class, \
             requests, errors, request_bytes, response_bytes, latency";
        const USAGE_KEY: &str = "node = $1 AND bucket = $2 AND route = $3 AND service = $4 \
             AND consumer = $5 AND status_class = $6";
        /// Most target periods one `rollup` call moves; the next call continues.
        const ROLLUP_CHUNKS: usize = 10_000;

        fn usage_row(row: &DbRow) -> std::result::Result<(String, UsageRow), sqlx::Error> {
            let sketch: Vec<u8> = row.try_get("latency")?;
            let class: i16 = row.try_get("status_class")?;
            let count = |c: &str| row.try_get::<i64, _>(c).map(clamp_u64);
            let key = UsageKey {
                bucket: row.try_get("bucket")?,
                route: row.try_get("route")?,
                service: row.try_get("service")?,
                consumer: row.try_get("consumer")?,
                status_class: u8::try_from(class).unwrap_or(5),
            };
            let totals = UsageTotals {
                requests: count("requests")?,
                errors: count("errors")?,
                request_bytes: count("request_bytes")?,
                response_bytes: count("response_bytes")?,
                latency: Sketch::from_bytes(&sketch)
                    .map_err(|e| sqlx::Error::Decode(e.to_string().into()))?,
            };
            Ok((row.try_get("node")?, UsageRow { key, totals }))
        }

        impl Db {
            /// Adds `rows` (all of node `node`) into `table`, in one transaction.
            pub(crate) async fn write_usage(
                &self,
                table: Resolution,
                node: &str,
                rows: &[UsageRow],
            ) -> Result<()> {
                let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
                for row in rows {
                    self.add_usage(&mut tx, table, node, row).await?;
                }
                tx.commit().await.map_err(|e| self.err(e))
            }

            async fn add_usage(
                &self,
                conn: &mut Conn,
                table: Resolution,
                node: &str,
                row: &UsageRow,
            ) -> Result<()> {
                let (k, t) = (&row.key, &row.totals);
                let insert = format!(
                    "INSERT INTO {} ({USAGE_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
                    table.table()
                );
                let inserted = sqlx::query(&insert)
                    .bind(node)
                    .bind(k.bucket)
                    .bind(&k.route)
                    .bind(&k.service)
                    .bind(&k.consumer)
                    .bind(i16::from(k.status_class))
                    .bind(clamp_i64(t.requests))
                    .bind(clamp_i64(t.errors))
                    .bind(clamp_i64(t.request_bytes))
                    .bind(clamp_i64(t.response_bytes))
                    .bind(t.latency.to_bytes())
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| self.err(e))?
                    .rows_affected();
                if inserted == 1 {
                    return Ok(());
                }
                self.merge_usage(conn, table, node, row).await
            }

            /// The key exists: read it locked, add `row` to it, write it back.
            async fn merge_usage(
                &self,
                conn: &mut Conn,
                table: Resolution,
                node: &str,
                row: &UsageRow,
            ) -> Result<()> {
                let k = &row.key;
                let lock = if POSTGRES { " FOR UPDATE" } else { "" };
                let select = format!(
                    "SELECT {USAGE_COLUMNS} FROM {} WHERE {USAGE_KEY}{lock}",
                    table.table()
                );
                let found = sqlx::query(&select)
                    .bind(node)
                    .bind(k.bucket)
                    .bind(&k.route)
                    .bind(&k.service)
                    .bind(&k.consumer)
                    .bind(i16::from(k.status_class))
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(|e| self.err(e))?;
                let (_, mut stored) = usage_row(&found).map_err(|e| self.err(e))?;
                stored.totals.merge(&row.totals);
                let t = &stored.totals;
                let update = format!(
                    "UPDATE {} SET requests = $7, errors = $8, request_bytes = $9, \
                     response_bytes = $10, latency = $11 WHERE {USAGE_KEY}",
                    table.table()
                );
                sqlx::query(&update)
                    .bind(node)
                    .bind(k.bucket)
                    .bind(&k.route)
                    .bind(&k.service)
                    .bind(&k.consumer)
                    .bind(i16::from(k.status_class))
                    .bind(clamp_i64(t.requests))
                    .bind(clamp_i64(t.errors))
                    .bind(clamp_i64(t.request_bytes))
                    .bind(clamp_i64(t.response_bytes))
                    .bind(t.latency.to_bytes())
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| self.err(e))?;
                Ok(())
            }

            /// Every node's rows of `q.resolution` in `[q.from, q.to)` that match the
            /// filters, unmerged, with the node that wrote each.
            pub(crate) async fn usage(&self, q: &UsageQuery) -> Result<Vec<(String, UsageRow)>> {
                let sql = format!(
                    "SELECT {USAGE_COLUMNS} FROM {} WHERE bucket >= $1 AND bucket < $2 \
                     AND ($3 IS NULL OR route = $3) AND ($4 IS NULL OR service = $4) \
                     AND ($5 IS NULL OR consumer = $5) AND ($6 IS NULL OR status_class = $6) \
                     ORDER BY bucket",
                    q.resolution.table()
                );
                let rows = sqlx::query(&sql)
                    .bind(q.from)
                    .bind(q.to)
                    .bind(q.route.as_deref())
                    .bind(q.service.as_deref())
                    .bind(q.consumer.as_deref())
                    .bind(q.status_class.map(i16::from))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| self.err(e))?;
                rows.iter()
                    .map(usage_row)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| self.err(e))
            }

            /// Moves `from` rows older than `cutoff` (Unix seconds, rounded down to the next
            /// resolution's period) into the next resolution; returns how many rows moved.
            pub(crate) async fn rollup(&self, from: Resolution, cutoff: i64) -> Result<u64> {
                let Some(to) = from.coarser() else {
                    return Ok(0);
                };
                let cutoff = to.bucket_of(cutoff);
                let oldest = format!("SELECT MIN(bucket) FROM {} WHERE bucket < $1", from.table());
                let mut moved = 0;
                for _ in 0..ROLLUP_CHUNKS {
                    let min: Option<i64> = sqlx::query_scalar(&oldest)
                        .bind(cutoff)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(|e| self.err(e))?;
                    let Some(min) = min else { break };
                    let start = to.bucket_of(min);
                    moved += self.rollup_period(from, to, start).await?;
                }
                Ok(moved)
            }

            /// One period of the coarser resolution: delete its finer rows, add them up per
            /// node and key, write them to the coarser table; all or nothing.
            async fn rollup_period(&self, from: Resolution, to: Resolution, start: i64) -> Result<u64> {
                let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
                let delete = format!(
                    "DELETE FROM {} WHERE bucket >= $1 AND bucket < $2 RETURNING {USAGE_COLUMNS}",
                    from.table()
                );
                let rows = sqlx::query(&delete)
                    .bind(start)
                    .bind(start + to.seconds())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                let mut merged: std::collections::BTreeMap<(String, UsageKey), UsageTotals> =
                    std::collections::BTreeMap::new();
                for row in &rows {
                    let (node, mut r) = usage_row(row).map_err(|e| self.err(e))?;
                    r.key.bucket = start;
                    merged.entry((node, r.key)).or_default().merge(&r.totals);
                }
                for ((node, key), totals) in merged {
                    let row = UsageRow { key, totals };
                    self.add_usage(&mut tx, to, &node, &row).await?;
                }
                tx.commit().await.map_err(|e| self.err(e))?;
                Ok(rows.len() as u64)
            }

            /// Deletes rows of `table` older than `cutoff`; returns how many.
            pub(crate) async fn expire_usage(&self, table: Resolution, cutoff: i64) -> Result<u64> {
                let sql = format!("DELETE FROM {} WHERE bucket < $1", table.table());
                let done = sqlx::query(&sql)
                    .bind(cutoff)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err(e))?;
                Ok(done.rows_affected())
            }

            /// Writes (or refreshes) this node's heartbeat row.
            pub(crate) async fn heartbeat(&self, node: &NodeRow) -> Result<()> {
                sqlx::query(
                    "INSERT INTO nodes (id, version, started_at, seen_at, config_version) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
                     version = excluded.version, started_at = excluded.started_at, \
                     seen_at = excluded.seen_at, config_version = excluded.config_version",
                )
                .bind(&node.id)
                .bind(&node.version)
                .bind(node.started_at)
                .bind(node.seen_at)
                .bind(node.config_version)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
                Ok(())
            }

            /// Nodes whose last heartbeat is at or after `since` (Unix seconds), by id.
            pub(crate) async fn nodes(&self, since: i64) -> Result<Vec<NodeRow>> {
                let rows = sqlx::query(
                    "SELECT id, version, started_at, seen_at, config_version FROM nodes \
                     WHERE seen_at >= $1 ORDER BY id",
                )
                .bind(since)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
                let node = |r: &DbRow| -> std::result::Result<NodeRow, sqlx::Error> {
                    Ok(NodeRow {
                        id: r.try_get("id")?,
                        version: r.try_get("version")?,
                        started_at: r.try_get("started_at")?,
                        seen_at: r.try_get("seen_at")?,
                        config_version: r.try_get("config_version")?,
                    })
                };
                rows.iter()
                    .map(node)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| self.err(e))
            }

            /// Forgets nodes not seen since `before`.
            pub(crate) async fn forget_nodes(&self, before: i64) -> Result<u64> {
                let done = sqlx::query("DELETE FROM nodes WHERE seen_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err(e))?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use usage_queries;
