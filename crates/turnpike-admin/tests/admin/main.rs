//! Integration tests of the admin API: the real router served over HTTP on 127.0.0.1:0,
//! over a SQLite store in a temporary directory. One test binary, one module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analytics;
mod auth;
mod certificate_keys;
mod certificates;
mod cluster;
mod entities;
mod keys;
mod oauth_clients;
mod openapi;
mod plans;
mod policies;
mod push;
mod services;
mod support;
mod sync;
mod tokens;
mod versions;
