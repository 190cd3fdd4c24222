//! Turnpike's data plane: accepts client connections, matches routes, and forwards to
//! upstream targets with load balancing, health checks, timeouts and retries.
//!
//! Start with [`Gateway::start`]; the order of the request path lives in [`pipeline`].

mod access;
pub mod body;
pub mod cache;
pub mod error;
pub mod forward;
pub mod headers;
pub mod metrics;
mod observe;
pub mod pipeline;
pub mod protection;
pub mod reload;
pub mod router;
pub mod server;
pub mod snapshot;
pub mod tls;
mod trace;
pub mod upgrade;
pub mod upstream;
mod validate;

pub use server::{Gateway, Shared, StartError};
pub use snapshot::{BuildError, Snapshot};
