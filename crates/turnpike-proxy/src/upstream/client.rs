//! Upstream HTTP clients, one set per worker thread.
//!
//! Each worker runs its own single-threaded runtime, and a pooled connection belongs to
//! the runtime that opened it; so each worker keeps its own clients, keyed by the settings
//! that shape a client. They outlive config reloads, so a reload keeps warm connections.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::Settings;
use crate::body::RequestBody;

pub type HttpClient = Client<HttpConnector, RequestBody>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    http2: bool,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
}

thread_local! {
    static CLIENTS: RefCell<HashMap<Key, HttpClient>> = RefCell::new(HashMap::new());
}

/// Sends `req` with this worker's client for `settings`.
pub fn send(settings: &Settings, req: http::Request<RequestBody>) -> ResponseFuture {
    let key = Key {
        http2: settings.http2,
        connect_timeout: settings.connect_timeout,
        idle_timeout: settings.pool_idle_timeout,
        max_idle: settings.pool_max_idle,
    };
    CLIENTS.with(|clients| {
        let mut clients = clients.borrow_mut();
        let client = clients.entry(key).or_insert_with(|| build(key));
        client.request(req)
    })
}

fn build(key: Key) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(key.connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(key.idle_timeout)
        .pool_max_idle_per_host(key.max_idle)
        // Without a timer the pool never evicts idle connections.
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(key.http2)
        // We set Host ourselves, per the upstream's host_header setting.
        .set_host(false)
        .build(connector)
}
