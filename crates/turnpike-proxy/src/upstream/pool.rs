//! Upstream connection pool, one per worker thread, on hyper's connection API.
//!
//! Why not hyper-util's pooled client: it hashes, locks and boxes on every request, spawns
//! a task to return each HTTP/1.1 connection, and loses the request when a pooled
//! connection turns out to be closed. Here a worker owns its idle connections outright
//! (no lock), an HTTP/1.1 connection goes back to the pool when its response body ends,
//! and a request that could not be written on a stale connection is sent again on another
//! one, whatever its method, since the upstream never saw it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::client::{UpstreamTls, tls_config};
use crate::body::RequestBody;

/// Which connections can serve a request: same target, same protocol, same TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    pub https: bool,
    pub authority: Authority,
    pub http2: bool,
    /// The upstream's own CA and client certificate; `None` for the system's roots.
    pub tls: Option<Arc<UpstreamTls>>,
}

impl Hash for PoolKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.https.hash(state);
        self.http2.hash(state);
        self.tls.hash(state);
        // `Authority` hashes itself one lower-cased byte at a time (its `==` ignores case),
        // which was most of the cost of the two pool lookups per request. The lower-case
        // text in one write agrees with that `==` just the same.
        let text = self.authority.as_str();
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            state.write(text.to_ascii_lowercase().as_bytes());
        } else {
            state.write(text.as_bytes());
        }
    }
}

/// How connections to one upstream are made and kept.
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle: usize,
}

/// Why a request could not be exchanged with the upstream.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connecting to the upstream failed: {0}")]
    Connect(std::io::Error),
    #[error("connecting to the upstream timed out")]
    ConnectTimeout,
    #[error("TLS with the upstream failed: {0}")]
    Tls(std::io::Error),
    #[error("the upstream did not agree to HTTP/2 in its TLS handshake (ALPN)")]
    NoH2,
    #[error("the upstream host is not a valid TLS server name")]
    ServerName,
    #[error("the upstream closed a new connection before the request was sent")]
    ClosedBeforeSend,
    #[error("no TLS client configuration: {0}")]
    TlsConfig(#[from] rustls::Error),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// A failed exchange; `unsent` is the request when the upstream never received it, so it
/// can go to another target whatever its method or body.
#[derive(Debug)]
pub struct SendFailure {
    pub error: SendError,
    pub unsent: Option<Box<Request<RequestBody>>>,
}

impl SendFailure {
    fn sent(error: impl Into<SendError>) -> Self {
        Self {
            error: error.into(),
            unsent: None,
        }
    }
}

struct Idle {
    sender: http1::SendRequest<RequestBody>,
    expires: Instant,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && self.expires > now
    }
}

#[derive(Default)]
struct Entry {
    idle: Vec<Idle>,
    shared_h2: Option<http2::SendRequest<RequestBody>>,
}

thread_local! {
    static POOL: RefCell<HashMap<PoolKey, Entry, RandomState>> = RefCell::default();
    static SWEEPER: Cell<bool> = const { Cell::new(false) };
}

/// An HTTP/1.1 connection lent to one exchange; back to the pool when the body ends.
#[derive(Debug)]
pub struct Lease {
    key: PoolKey,
    sender: http1::SendRequest<RequestBody>,
    settings: ConnSettings,
}

impl Lease {
    /// Returns the connection for reuse. Dropping a lease instead closes the connection,
    /// which is right when the body did not finish.
    pub fn release(self) {
        if self.sender.is_closed() || self.settings.max_idle == 0 {
            return;
        }
        let expires = Instant::now() + self.settings.idle_timeout;
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            let idle = &mut pool.entry(self.key).or_default().idle;
            if idle.len() >= self.settings.max_idle {
                idle.remove(0);
            }
            idle.push(Idle {
                sender: self.sender,
                expires,
            });
        });
    }
}

/// Sends `req` on a pooled or new connection. The lease (HTTP/1.1 only) must be released
/// when the response body has been read to the end.
pub async fn send(
    key: &PoolKey,
    settings: ConnSettings,
    mut req: Request<RequestBody>,
) -> Result<(Response<Incoming>, Option<Lease>), SendFailure> {
    start_sweeper();
    if key.http2 {
        return send_h2(key, settings, req).await;
    }
    let lease = |sender| {
        Some(Lease {
            key: key.clone(),
            sender,
            settings,
        })
    };
    while let Some(mut sender) = checkout(key) {
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok((resp, lease(sender))),
            // The connection closed under us before the request was written.
            Err(err) => req = recover(err)?,
        }
    }
    // Boxed, as in `send_h2`: connecting (TCP, TLS, handshake) is rare next to reusing a
    // connection, and its large future inline would make every exchange's future, and
    // every future that awaits one up to the pipeline's, that much larger to move.
    let mut sender = match Box::pin(connect_h1(key, settings)).await {
        Ok(sender) => sender,
        Err(error) => {
            return Err(SendFailure {
                error,
                unsent: Some(Box::new(req)),
            });
        }
    };
    match sender.try_send_request(req).await {
        Ok(resp) => Ok((resp, lease(sender))),
        // Accepted and closed at once: the upstream still never saw the request.
        Err(err) => Err(match recover(err) {
            Ok(unsent) => SendFailure {
                error: SendError::ClosedBeforeSend,
                unsent: Some(Box::new(unsent)),
            },
            Err(failure) => failure,
        }),
    }
}

/// The request back from a connection that failed before writing it, or the failure.
fn recover(
    mut err: hyper::client::conn::TrySendError<Request<RequestBody>>,
) -> Result<Request<RequestBody>, SendFailure> {
    err.take_message()
        .ok_or_else(|| SendFailure::sent(err.into_error()))
}

async fn send_h2(
    key: &PoolKey,
    settings: ConnSettings,
    mut req: Request<RequestBody>,
) -> Result<(Response<Incoming>, Option<Lease>), SendFailure> {
    if let Some(mut sender) = shared_h2(key) {
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok((resp, None)),
            Err(err) => match recover(err) {
                Ok(unsent) => req = unsent,
                Err(failure) => {
                    // A broken connection must not be handed to the next request.
                    if sender.is_closed() {
                        forget_h2(key);
                    }
                    return Err(failure);
                }
            },
        }
    }
    let mut sender = match Box::pin(connect_h2(key, settings)).await {
        Ok(sender) => sender,
        Err(error) => {
            return Err(SendFailure {
                error,
                unsent: Some(Box::new(req)),
            });
        }
    };
    POOL.with(|pool| {
        pool.borrow_mut().entry(key.clone()).or_default().shared_h2 = Some(sender.clone())
    });
    match sender.try_send_request(req).await {
        Ok(resp) => Ok((resp, None)),
        Err(err) => Err(match recover(err) {
            Ok(unsent) => SendFailure {
                error: SendError::ClosedBeforeSend,
                unsent: Some(Box::new(unsent)),
            },
            Err(failure) => failure,
        }),
    }
}

fn forget_h2(key: &PoolKey) {
    POOL.with(|pool| {
        if let Some(entry) = pool.borrow_mut().get_mut(key) {
            entry.shared_h2 = None;
        }
    });
}

/// The most recently used idle connection that is ready; drops closed or expired ones.
/// One that is not ready yet (its task has not caught up, or the upstream answered before
/// the request body was fully sent) stays for later: never wait on it, a new connection is
/// cheaper than an unbounded wait.
fn checkout(key: &PoolKey) -> Option<http1::SendRequest<RequestBody>> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = &mut pool.get_mut(key)?.idle;
        let now = Instant::now();
        idle.retain(|c| c.usable(now));
        let pos = idle.iter().rposition(|c| c.sender.is_ready())?;
        Some(idle.remove(pos).sender)
    })
}

fn shared_h2(key: &PoolKey) -> Option<http2::SendRequest<RequestBody>> {
    POOL.with(|pool| {
        let pool = pool.borrow();
        pool.get(key)?
            .shared_h2
            .as_ref()
            .filter(|s| !s.is_closed())
            .cloned()
    })
}

/// A TCP (and, for `https`, TLS) stream to the target.
async fn dial(key: &PoolKey, settings: ConnSettings) -> Result<Stream, SendError> {
    let port = key
        .authority
        .port_u16()
        .unwrap_or(if key.https { 443 } else { 80 });
    let host = key.authority.host();
    let addr = (host.trim_start_matches('[').trim_end_matches(']'), port);
    let tcp = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| SendError::ConnectTimeout)?
        .map_err(SendError::Connect)?;
    let _ = tcp.set_nodelay(true);
    // A pooled connection to a host that vanished is found by keepalive probes, not by
    // the next request waiting for its first-byte timeout.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
    if !key.https {
        return Ok(Stream::Plain(tcp));
    }
    let name = ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
    .map_err(|_| SendError::ServerName)?;
    let config = match &key.tls {
        Some(tls) => tls.alpn(key.http2),
        None => alpn_config(key.http2)?,
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = tokio::time::timeout(settings.connect_timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| SendError::ConnectTimeout)?
        .map_err(SendError::Tls)?;
    // HTTP/2 frames to a server that did not agree to HTTP/2 would be garbage to it.
    if key.http2 && tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(SendError::NoH2);
    }
    Ok(Stream::Tls(Box::new(tls)))
}

async fn connect_h1(
    key: &PoolKey,
    settings: ConnSettings,
) -> Result<http1::SendRequest<RequestBody>, SendError> {
    let io = TokioIo::new(dial(key, settings).await?);
    let (sender, conn) = http1::Builder::new().handshake(io).await?;
    tokio::spawn(async move {
        if let Err(err) = conn.with_upgrades().await {
            tracing::debug!(error = %err, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

async fn connect_h2(
    key: &PoolKey,
    settings: ConnSettings,
) -> Result<http2::SendRequest<RequestBody>, SendError> {
    let io = TokioIo::new(dial(key, settings).await?);
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        // Probe idle connections too, so a silently dead one is found before a request
        // waits on it.
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        .handshake(io)
        .await?;
    tokio::spawn(async move {
        if let Err(err) = conn.await {
            tracing::debug!(error = %err, "upstream HTTP/2 connection ended with an error");
        }
    });
    Ok(sender)
}

/// Client TLS settings with ALPN for the protocol spoken, built once each.
fn alpn_config(http2: bool) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    static H1: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    static H2: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let cell = if http2 { &H2 } else { &H1 };
    if let Some(config) = cell.get() {
        return Ok(config.clone());
    }
    let mut config = (*tls_config()?).clone();
    config.alpn_protocols = vec![if http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    Ok(cell.get_or_init(|| Arc::new(config)).clone())
}

/// Closes idle connections past their idle timeout even when no request comes to reuse
/// them, once per worker.
fn start_sweeper() {
    if SWEEPER.with(|s| s.replace(true)) {
        return;
    }
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = Instant::now();
            POOL.with(|pool| {
                let mut pool = pool.borrow_mut();
                for entry in pool.values_mut() {
                    entry.idle.retain(|c| c.usable(now));
                    if entry
                        .shared_h2
                        .as_ref()
                        .is_some_and(http2::SendRequest::is_closed)
                    {
                        entry.shared_h2 = None;
                    }
                }
                pool.retain(|_, e| !e.idle.is_empty() || e.shared_h2.is_some());
                super::pool_gauges::report(report_of(pool.iter()));
            });
        }
    });
}

/// This worker's pool for `/metrics`, by scheme and authority.
fn report_of<'a>(
    pool: impl Iterator<Item = (&'a PoolKey, &'a Entry)>,
) -> super::pool_gauges::PoolReport {
    let mut by_target: Vec<(super::pool_gauges::Target, super::pool_gauges::Counts)> = Vec::new();
    for (key, entry) in pool {
        let scheme = if key.https { "https" } else { "http" };
        let target = (scheme, key.authority.as_str().to_ascii_lowercase());
        let counts = (entry.idle.len(), usize::from(entry.shared_h2.is_some()));
        match by_target.iter_mut().find(|(t, _)| *t == target) {
            Some((_, c)) => {
                c.0 += counts.0;
                c.1 += counts.1;
            }
            None => by_target.push((target, counts)),
        }
    }
    super::pool_gauges::PoolReport { by_target }
}

/// A plain or TLS stream, so both kinds share one connection type.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn keys_equal_but_for_the_case_of_the_authority_hash_alike() {
        let key = |a: &str| PoolKey {
            https: false,
            authority: a.parse().unwrap(),
            http2: false,
            tls: None,
        };
        let (upper, lower) = (key("Backend.Example:8080"), key("backend.example:8080"));
        assert_eq!(upper, lower);
        let s = RandomState::default();
        assert_eq!(s.hash_one(&upper), s.hash_one(&lower));
        assert_ne!(s.hash_one(&lower), s.hash_one(key("backend.example:8081")));
    }
}
