//! Security policies through a real gateway: every credential kind, its failures, IP
//! rules, CORS and mTLS. One module per policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod basic;
mod certs;
mod cors;
mod ip_rules;
mod jwt;
mod keys;
mod mtls;
mod oauth;
mod service;
mod support;
