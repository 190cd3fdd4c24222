//! Security policies through a real gateway: every credential kind, its failures, IP
//! rules, CORS and mTLS. One module per policy.

mod keys;
mod support;
