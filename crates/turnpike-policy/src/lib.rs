//! Request policies: who is calling (consumers and their credentials), whether they may
//! (scopes, groups, IP rules), how much (rate limits, quotas, concurrency), and what the
//! browser may do with the answer (CORS).
//!
//! Everything is compiled once per config version: [`Security`] holds what all routes
//! share (consumers, key store, JWT verifiers, the OAuth server), [`RoutePolicies`] what
//! one route asks for. The pipeline calls them in the order `docs/request-path.md` draws;
//! each check either lets the request go on or returns a [`Denied`] the client sees.

pub mod auth;
pub mod basic_auth;
pub mod cache;
pub mod consumer;
pub mod cors;
pub mod denied;
pub mod ip_rules;
pub mod jwks;
pub mod jwt;
pub mod key_auth;
pub mod keys_file;
pub mod lifecycle;
pub mod mtls;
pub mod oauth;
pub mod password;
pub mod request;
pub mod route;
pub mod security;
pub mod traffic;
pub mod validation;

pub use auth::Identity;
pub use consumer::Consumer;
pub use denied::Denied;
pub use request::RequestView;
pub use route::RoutePolicies;
pub use security::{BuildError, Security};
