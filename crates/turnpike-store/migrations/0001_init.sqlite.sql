-- Turnpike store, schema 1 (SQLite). Keep in step with 0001_init.postgres.sql: the two differ
-- only where the SQL must (identity columns, collation).

-- One row: the configuration version every write bumps; nodes follow it.
CREATE TABLE config_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

-- Every entity is a JSON document keyed by (kind, name); the admin API validates it.
-- SQLite compares TEXT bytewise, the same order as PostgreSQL's "C" collation.
CREATE TABLE entities (
    kind TEXT NOT NULL CHECK (length(kind) > 0),
    name TEXT NOT NULL CHECK (length(name) > 0),
    doc TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    before_doc TEXT,
    after_doc TEXT
);
CREATE INDEX audit_log_kind_name ON audit_log (kind, name, id);

-- Admin API tokens; `hash` is whatever the caller derived from the secret, never the secret.
CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY CHECK (length(id) > 0),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
