//! Listeners and workers: one thread per core, each with its own single-threaded runtime
//! and its own SO_REUSEPORT socket per listener, so the kernel spreads connections and no
//! request ever crosses threads. Also the live snapshot, reloads and graceful shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use turnpike_config::Config;

use crate::pipeline::{self, ConnCtx};
use crate::protection::{self, Protection, ProtectionCounts};
use crate::snapshot::{BuildError, ServerSettings, Snapshot};
use crate::upstream::health;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot listen on {address} ({listener}): {source}")]
    Bind {
        listener: String,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("the configuration has no listener")]
    NoListener,
    #[error("cannot set up TLS to upstreams: {0}")]
    UpstreamTls(#[from] rustls::Error),
    #[error("cannot start worker threads: {0}")]
    Runtime(std::io::Error),
}

/// State every worker shares: the current snapshot and what reloads need.
#[derive(Debug)]
pub struct Shared {
    snapshot: ArcSwap<Snapshot>,
    version: AtomicU64,
    health_tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    reload_lock: Mutex<()>,
    control: tokio::runtime::Handle,
    /// Per-IP, ban and load state; outlives reloads.
    protection: Arc<Protection>,
}

impl Shared {
    /// The snapshot to serve a request with; called once per request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Builds a snapshot from `cfg` and swaps it in; requests in flight keep theirs.
    /// Listeners cannot change (the reload is refused); the `server` settings that shape
    /// sockets and connections apply at the next restart, with a warning.
    pub fn apply(&self, cfg: &Config) -> Result<u64, BuildError> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot.load_full();
        // Only an applied config takes a version number; the reload lock makes this safe.
        let version = self.version.load(Ordering::Relaxed) + 1;
        let built = Snapshot::build(cfg, version, Some(&old), &self.control)
            .and_then(|new| same_listeners(&old, &new).map(|()| Arc::new(new)));
        let new = built.inspect_err(|_| self.reload_failed())?;
        new.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
        self.version.store(version, Ordering::Relaxed);
        warn_startup_only(&old.server, &new.server);
        self.snapshot.store(new.clone());
        self.restart_health_checks(&new);
        Ok(version)
    }

    fn restart_health_checks(&self, snap: &Snapshot) {
        let mut tasks = self.health_tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.drain(..).for_each(|t| t.abort());
        for up in &snap.upstreams {
            if let Some(cfg) = up.active_health.clone() {
                tasks.push(
                    self.control
                        .spawn(health::run_active_checks(up.clone(), cfg))
                        .abort_handle(),
                );
            }
        }
    }

    /// Counts a reload that was refused (the running config keeps serving).
    pub fn reload_failed(&self) {
        let metrics = &self.snapshot.load().metrics;
        metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// The OpenMetrics text for `/metrics` (see [`crate::metrics::render`]).
    pub fn render_metrics(&self, store_up: Option<bool>) -> String {
        crate::metrics::render(self, store_up)
    }

    pub fn control(&self) -> &tokio::runtime::Handle {
        &self.control
    }

    pub fn protection(&self) -> &Arc<Protection> {
        &self.protection
    }
}

/// Sockets are bound once, so a reload may change certificates but not the listener set:
/// otherwise a renamed listener could silently lose its TLS on a port that stays open.
fn same_listeners(old: &Snapshot, new: &Snapshot) -> Result<(), BuildError> {
    let shape = |s: &Snapshot| {
        let mut v: Vec<_> = s
            .listeners
            .iter()
            .map(|l| (l.name.clone(), l.address, l.tls.is_some(), l.http2))
            .collect();
        v.sort();
        v
    };
    if shape(old) == shape(new) {
        Ok(())
    } else {
        Err(BuildError::ListenersChanged)
    }
}

/// Settings read when connections are set up; a reload cannot change them.
fn warn_startup_only(old: &ServerSettings, new: &ServerSettings) {
    let changed: Vec<&str> = [
        ("server.workers", old.workers != new.workers),
        (
            "server.max_header_bytes",
            old.max_header_bytes != new.max_header_bytes,
        ),
        (
            "server.max_headers (HTTP/1.1 parser limit)",
            old.max_headers != new.max_headers,
        ),
        (
            "server.header_read_timeout",
            old.header_read_timeout != new.header_read_timeout,
        ),
        (
            "server.shutdown_timeout",
            old.shutdown_timeout != new.shutdown_timeout,
        ),
    ]
    .into_iter()
    .filter_map(|(name, differs)| differs.then_some(name))
    .collect();
    if !changed.is_empty() {
        tracing::warn!(settings = ?changed, "these settings keep their start-up values until the next restart");
    }
}

/// A running gateway. Dropping it stops the workers without waiting.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
    addrs: Vec<(Arc<str>, SocketAddr)>,
    metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    finished: Vec<tokio::sync::oneshot::Receiver<()>>,
    _control: ControlRuntime,
}

/// The control thread's runtime. Dropping a runtime inside async code panics, and a
/// gateway may be started or dropped there (tests, embedders), so it winds down in the
/// background instead.
#[derive(Debug)]
struct ControlRuntime(Option<tokio::runtime::Runtime>);

impl Drop for ControlRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Gateway {
    /// Binds every listener, starts the workers and serves `cfg`.
    pub fn start(cfg: &Config) -> Result<Self, StartError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("turnpike-control")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let control_handle = rt.handle().clone();
        let control = ControlRuntime(Some(rt));
        let snap = Arc::new(Snapshot::build(cfg, 1, None, &control_handle)?);
        wait_for_shared_counters(&snap, &control_handle);
        // Fail at start, not on the first https request, if upstream TLS cannot work.
        crate::upstream::client::tls_config()?;
        if snap.listeners.is_empty() {
            return Err(StartError::NoListener);
        }
        let (sockets, addrs) = bind_listeners(&snap)?;
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::new(snap.clone()),
            version: AtomicU64::new(1),
            health_tasks: Mutex::new(Vec::new()),
            reload_lock: Mutex::new(()),
            control: control_handle,
            protection: Arc::new(Protection::new()),
        });
        shared.restart_health_checks(&snap);
        let metrics_addr = crate::metrics::start_listener(cfg, &shared)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut finished = Vec::new();
        for (i, listeners) in sockets.into_iter().enumerate() {
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            finished.push(done_rx);
            let (shared, rx, settings) = (shared.clone(), shutdown_rx.clone(), snap.server.clone());
            std::thread::Builder::new()
                .name(format!("turnpike-worker-{i}"))
                .spawn(move || {
                    run_worker(shared, listeners, rx, settings);
                    let _ = done_tx.send(());
                })
                .map_err(StartError::Runtime)?;
        }
        Ok(Self {
            shared,
            addrs,
            metrics_addr,
            shutdown,
            finished,
            _control: control,
        })
    }

    /// The bound address of a listener (`default` for the `listen:` shorthand).
    pub fn addr(&self, listener: &str) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(n, _)| &**n == listener)
            .map(|(_, a)| *a)
    }

    pub fn addrs(&self) -> &[(Arc<str>, SocketAddr)] {
        &self.addrs
    }

    /// The bound address of the `metrics.listen` listener, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// DDoS and abuse protection counters (`docs/protection.md`).
    pub fn protection_stats(&self) -> ProtectionCounts {
        self.shared.protection.counts()
    }

    /// Swaps in a new config (see [`Shared::apply`]).
    pub fn reload(&self, cfg: &Config) -> Result<u64, BuildError> {
        self.shared.apply(cfg)
    }

    /// Stops accepting, lets in-flight requests finish (up to `shutdown_timeout`), then
    /// returns.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for done in self.finished.drain(..) {
            let _ = done.await;
        }
        // Quotas counted since the last periodic write must survive the restart.
        let quotas = self.shared.snapshot().traffic.state.quotas.clone();
        if let Err(err) = quotas.flush().await {
            tracing::error!(error = %err, "could not save the quota counters");
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Gives Redis a moment to connect before the first request, so a gateway started next to
/// it does not answer its first requests with the fail mode.
fn wait_for_shared_counters(snap: &Snapshot, control: &tokio::runtime::Handle) {
    let limiter = snap.traffic.state.limiter.clone();
    if !limiter.is_redis() {
        return;
    }
    let control = control.clone();
    // A thread of its own: the caller may itself be running on a runtime.
    let waited = std::thread::spawn(move || {
        control.block_on(limiter.wait_ready(std::time::Duration::from_secs(2)))
    })
    .join();
    if !matches!(waited, Ok(true)) {
        tracing::warn!(
            "Redis is not reachable yet: rate limits and quotas follow their fail mode until it is"
        );
    }
}

/// One worker's sockets, each with the name of its listener.
type WorkerSockets = Vec<(Arc<str>, std::net::TcpListener)>;
/// A listener's name and the address it is bound to.
type BoundAddr = (Arc<str>, SocketAddr);

/// Per worker, one socket per listener (SO_REUSEPORT, all on the port the first one got,
/// so port 0 works); and the bound address of each listener.
fn bind_listeners(snap: &Snapshot) -> Result<(Vec<WorkerSockets>, Vec<BoundAddr>), StartError> {
    let workers = snap.server.workers.max(1);
    let mut sockets: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
    let mut addrs = Vec::new();
    for l in &snap.listeners {
        let bind_err = |source| StartError::Bind {
            listener: l.name.to_string(),
            address: l.address,
            source,
        };
        let first = bind_reuseport(l.address).map_err(bind_err)?;
        let actual = first.local_addr().map_err(bind_err)?;
        addrs.push((l.name.clone(), actual));
        sockets[0].push((l.name.clone(), first));
        for per_worker in sockets.iter_mut().skip(1) {
            per_worker.push((l.name.clone(), bind_reuseport(actual).map_err(bind_err)?));
        }
    }
    Ok((sockets, addrs))
}

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn run_worker(
    shared: Arc<Shared>,
    listeners: Vec<(Arc<str>, std::net::TcpListener)>,
    shutdown: watch::Receiver<bool>,
    settings: ServerSettings,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(error = %err, "worker runtime failed to start");
            return;
        }
    };
    rt.block_on(async move {
        let mut loops = Vec::new();
        for (name, std_listener) in listeners {
            match TcpListener::from_std(std_listener) {
                Ok(l) => loops.push(tokio::spawn(accept_loop(
                    shared.clone(),
                    name,
                    l,
                    shutdown.clone(),
                    settings.clone(),
                ))),
                Err(err) => tracing::error!(error = %err, "listener could not join the runtime"),
            }
        }
        for l in loops {
            let _ = l.await;
        }
    });
}

/// How a listener speaks HTTP. hyper-util's detecting builder ignores `http1_only` for
/// connections that may upgrade, so an HTTP/1.1-only listener uses hyper's own builder.
#[derive(Debug)]
enum ConnBuilder {
    /// HTTP/1.1 and HTTP/2 (prior knowledge or ALPN), detected per connection.
    Auto(auto::Builder<TokioExecutor>),
    Http1(hyper::server::conn::http1::Builder),
}

fn connection_builder(settings: &ServerSettings, http2: bool) -> ConnBuilder {
    if !http2 {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            .max_buf_size(settings.max_header_bytes.max(8192))
            .max_headers(settings.max_headers.max(1));
        return ConnBuilder::Http1(builder);
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(8192))
        .max_headers(settings.max_headers.max(1));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        // Pings find dead HTTP/2 clients, whose connections would otherwise stay open and
        // hold up every shutdown for the whole drain deadline.
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
        .keep_alive_timeout(std::time::Duration::from_secs(10));
    ConnBuilder::Auto(builder)
}

impl ConnBuilder {
    /// Serves `io` until it closes, or gracefully once shutdown starts.
    async fn serve<I>(&self, io: I, conn: Arc<ConnCtx>, shutdown: watch::Receiver<bool>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let watched = conn.clone();
        let service = service_fn(move |req| {
            conn.guard.request_seen();
            pipeline::handle(conn.clone(), req)
        });
        let end = match self {
            Self::Auto(b) => {
                let inner = b.serve_connection_with_upgrades(io, service);
                drive(GracefulAuto { inner }, shutdown).await
            }
            Self::Http1(b) => {
                drive(b.serve_connection(io, service).with_upgrades(), shutdown).await
            }
        };
        protection::connection_ended(&watched, end);
    }
}

/// A connection that can finish its current request and then close.
trait Graceful: std::future::Future<Output = Result<(), Self::Err>> {
    type Err: std::fmt::Display;
    fn start_graceful_shutdown(self: std::pin::Pin<&mut Self>);
    /// hyper's own error inside `err`, which says why the connection ended.
    fn hyper_error(err: &Self::Err) -> Option<&hyper::Error>;
}

impl<C: GracefulConnection> Graceful for GracefulAuto<C>
where
    C::Error: std::fmt::Display + AsRef<dyn std::error::Error + Send + Sync>,
{
    type Err = C::Error;
    fn start_graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        self.project().inner.graceful_shutdown();
    }
    fn hyper_error(err: &C::Error) -> Option<&hyper::Error> {
        err.as_ref().downcast_ref::<hyper::Error>()
    }
}

pin_project_lite::pin_project! {
    /// hyper-util's detecting connection, seen through [`Graceful`].
    struct GracefulAuto<C> { #[pin] inner: C }
}

impl<C: std::future::Future> std::future::Future for GracefulAuto<C> {
    type Output = C::Output;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<C::Output> {
        self.project().inner.poll(cx)
    }
}

impl<I, S, B> Graceful for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Err = hyper::Error;
    fn start_graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self);
    }
    fn hyper_error(err: &hyper::Error) -> Option<&hyper::Error> {
        Some(err)
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    name: Arc<str>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    settings: ServerSettings,
) {
    let http2 = shared
        .snapshot()
        .listeners
        .iter()
        .find(|l| l.name == name)
        .is_some_and(|l| l.http2);
    let builder = Arc::new(connection_builder(&settings, http2));
    // Every connection task holds a sender; when all are gone, draining is over.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let conn = (shared.clone(), shutdown.clone(), alive_tx.clone());
        spawn_connection(
            stream,
            peer,
            &name,
            conn,
            builder.clone(),
            settings.header_read_timeout,
        );
    }
    drop(listener);
    drop(alive_tx);
    if tokio::time::timeout(settings.shutdown_timeout, alive_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = &*name,
            "shutdown deadline passed with connections still open"
        );
    }
}

/// Starts serving one accepted connection with the listener's current TLS settings.
fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener: &str,
    (shared, shutdown, alive): (Arc<Shared>, watch::Receiver<bool>, mpsc::Sender<()>),
    builder: Arc<ConnBuilder>,
    handshake_timeout: std::time::Duration,
) {
    // IPv4 clients of a dual-stack listener arrive as `::ffff:a.b.c.d`; compare and log them
    // as the IPv4 addresses they are.
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    // Per-IP caps, rates and bans: refused connections are closed before TLS or HTTP.
    let Some(guard) = shared
        .protection
        .admit_connection(&shared.snapshot.load().server.protection, peer.ip())
    else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let tls = shared
        .snapshot()
        .listeners
        .iter()
        .find(|l| &*l.name == listener)
        .and_then(|l| l.tls.clone());
    let conn = ConnCtx {
        shared,
        peer,
        tls: tls.is_some(),
        sni: None,
        client_cert: None,
        alive,
        guard,
    };
    tokio::spawn(serve_connection(
        stream,
        conn,
        tls,
        builder,
        shutdown,
        handshake_timeout,
    ));
}

async fn serve_connection(
    stream: TcpStream,
    mut conn: ConnCtx,
    tls: Option<Arc<rustls::ServerConfig>>,
    builder: Arc<ConnBuilder>,
    shutdown: watch::Receiver<bool>,
    handshake_timeout: std::time::Duration,
) {
    let Some(cfg) = tls else {
        let conn = Arc::new(conn);
        let serving = builder.serve(TokioIo::new(stream), conn.clone(), shutdown);
        return protection::first_request_within(&conn, serving, handshake_timeout).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let tls_stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => tls_stream,
        Ok(Err(err)) => return tracing::debug!(error = %err, "TLS handshake failed"),
        Err(_) => return tracing::debug!("TLS handshake timed out"),
    };
    conn.sni = tls_stream
        .get_ref()
        .1
        .server_name()
        .map(|n| n.to_ascii_lowercase().into());
    // Parsed once per connection; every request on it is from the same certificate.
    conn.client_cert = tls_stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| turnpike_policy::mtls::client_cert(leaf.as_ref()));
    let conn = Arc::new(conn);
    let serving = builder.serve(TokioIo::new(tls_stream), conn.clone(), shutdown);
    protection::first_request_within(&conn, serving, handshake_timeout).await;
}

/// Serves one connection; on shutdown, finishes the request in flight and closes. Says
/// whether it ended on a client's fault (for abuse protection).
async fn drive<C: Graceful>(conn: C, mut shutdown: watch::Receiver<bool>) -> protection::ConnEnd {
    tokio::pin!(conn);
    let result = tokio::select! {
        // The connection is polled first: it is what wakes this task almost every time.
        biased;
        res = conn.as_mut() => res,
        () = async { drop(shutdown.wait_for(|stop| *stop).await) } => {
            conn.as_mut().start_graceful_shutdown();
            conn.await
        }
    };
    match result {
        Err(err) => {
            tracing::debug!(error = %err, "connection ended with an error");
            C::hyper_error(&err).map_or(protection::ConnEnd::Normal, protection::ConnEnd::of)
        }
        Ok(()) => protection::ConnEnd::Normal,
    }
}
