//! The response cache end to end: RFC 9111 rules, request coalescing, the stale
//! extensions, cache keys (no response ever reaches another consumer), purges and the
//! CDN purge webhook, size bounds and `Cache-Status`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod coalesce;
mod keys;
mod purge;
mod rfc;
mod shared;
mod stale;
mod support;
