//! Integration tests of the data plane: real gateways on port 0 in front of real mock
//! upstreams. One test binary, one module per area, so the suite links once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod balancing;
mod headers;
mod health;
mod lifecycle;
mod limits;
mod pool;
mod protection;
mod protocols;
mod reload;
mod routing;
mod streaming;
mod tls;
mod validate;
