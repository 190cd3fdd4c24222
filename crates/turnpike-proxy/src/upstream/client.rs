//! Upstream HTTP clients, one set per worker thread.
//!
//! Each worker runs its own single-threaded runtime, and a pooled connection belongs to
//! the runtime that opened it; so each worker keeps its own clients, keyed by the settings
//! that shape a client. They outlive config reloads, so a reload keeps warm connections.
//! `https://` targets are verified against the system's trusted roots.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::Settings;
use crate::body::RequestBody;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, RequestBody>;

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

/// Sends `req` with this worker's client for `settings`. Fails only if no TLS client
/// configuration can be built, which no request could fix.
pub fn send(
    settings: &Settings,
    http2: bool,
    req: http::Request<RequestBody>,
) -> Result<ResponseFuture, rustls::Error> {
    let key = Key {
        http2,
        connect_timeout: settings.connect_timeout,
        idle_timeout: settings.pool_idle_timeout,
        max_idle: settings.pool_max_idle,
    };
    CLIENTS.with(|clients| {
        let mut clients = clients.borrow_mut();
        let client = match clients.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(build(key)?),
        };
        Ok(client.request(req))
    })
}

/// TLS settings for upstreams: the system's trusted roots, loaded once per process.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        tracing::warn!(error = %err, "could not load a system root certificate");
    }
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, "system root certificates loaded for upstream TLS");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// A connector for `http://` and `https://` targets; ALPN offers only the protocol the
/// upstream is configured for.
pub fn connector(
    connect_timeout: Duration,
    http2: bool,
) -> Result<HttpsConnector<HttpConnector>, rustls::Error> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.enforce_http(false);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config((*tls_config()?).clone())
        .https_or_http();
    Ok(if http2 {
        https.enable_http2().wrap_connector(http)
    } else {
        https.enable_http1().wrap_connector(http)
    })
}

fn build(key: Key) -> Result<HttpClient, rustls::Error> {
    let connector = connector(key.connect_timeout, key.http2)?;
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(key.idle_timeout)
        .pool_max_idle_per_host(key.max_idle)
        // Without a timer the pool never evicts idle connections.
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(key.http2)
        // We set Host ourselves, per the upstream's host_header setting.
        .set_host(false)
        .build(connector))
}
