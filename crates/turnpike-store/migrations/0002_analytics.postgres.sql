-- Turnpike store, schema 2 (PostgreSQL): usage analytics and node heartbeats. Keep in step with
-- 0002_analytics.sqlite.sql: the two differ only in the sketch column's type.

-- Usage rollups at three resolutions, one row per (node, period, route, service, consumer,
-- status class). Each node writes its own rows; queries sum the counts and merge the latency
-- sketches (DDSketch bytes, see turnpike_analytics::sketch). `bucket` is the period's start in
-- Unix seconds; `consumer` is '' for requests without an identified consumer.
CREATE TABLE usage_minute (
    node TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    route TEXT NOT NULL,
    service TEXT NOT NULL,
    consumer TEXT NOT NULL,
    status_class SMALLINT NOT NULL CHECK (status_class BETWEEN 1 AND 5),
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    request_bytes BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    latency BYTEA NOT NULL,
    PRIMARY KEY (node, bucket, route, service, consumer, status_class)
);
CREATE INDEX usage_minute_bucket ON usage_minute (bucket);
CREATE TABLE usage_hour (
    node TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    route TEXT NOT NULL,
    service TEXT NOT NULL,
    consumer TEXT NOT NULL,
    status_class SMALLINT NOT NULL CHECK (status_class BETWEEN 1 AND 5),
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    request_bytes BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    latency BYTEA NOT NULL,
    PRIMARY KEY (node, bucket, route, service, consumer, status_class)
);
CREATE INDEX usage_hour_bucket ON usage_hour (bucket);
CREATE TABLE usage_day (
    node TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    route TEXT NOT NULL,
    service TEXT NOT NULL,
    consumer TEXT NOT NULL,
    status_class SMALLINT NOT NULL CHECK (status_class BETWEEN 1 AND 5),
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    request_bytes BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    latency BYTEA NOT NULL,
    PRIMARY KEY (node, bucket, route, service, consumer, status_class)
);
CREATE INDEX usage_day_bucket ON usage_day (bucket);

-- One row per gateway node, rewritten every few seconds: the cluster peers the status shows.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL,
    config_version BIGINT NOT NULL
);
