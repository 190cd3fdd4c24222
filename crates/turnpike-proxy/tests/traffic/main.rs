//! Traffic control end to end: rate limits and their headers, plans and quotas,
//! concurrency limits with queueing, and cluster-wide counting through the real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod concurrency;
mod limits;
mod plans;
mod redis;
mod support;
