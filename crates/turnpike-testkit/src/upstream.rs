//! Mock upstreams: real HTTP servers on port 0 whose behaviour a test chooses with a
//! closure, counting the requests they saw.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What a mock upstream saw, handed to the closure that decides the reply.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub uri: http::Uri,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A reply from a mock upstream.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::ok("")
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(Seen) -> Reply + Send + Sync>;
type ReplyFuture = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

/// A running mock upstream; stops (closing its connections) when dropped or `stop`ped.
#[derive(Debug)]
pub struct MockUpstream {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
}

impl MockUpstream {
    /// An upstream that answers every request with `handler`'s reply.
    pub async fn start(handler: impl Fn(Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind mock upstream: {e}"));
        Self::serve(listener, Arc::new(handler))
    }

    /// Restarts an upstream on a specific address (after [`MockUpstream::stop`]).
    pub async fn start_on(
        addr: SocketAddr,
        handler: impl Fn(Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind mock upstream {addr}: {e}"));
        Self::serve(listener, Arc::new(handler))
    }

    /// Answers with JSON describing the request (method, path, query, headers, body size).
    pub async fn echo() -> Self {
        Self::start(|seen| Reply::ok(echo_json(&seen)).header("content-type", "application/json"))
            .await
    }

    /// Answers `200 name` so tests can tell targets apart.
    pub async fn named(name: &'static str) -> Self {
        Self::start(move |_| Reply::ok(name)).await
    }

    fn serve(listener: TcpListener, handler: Handler) -> Self {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("mock upstream addr: {e}"));
        let hits = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(accept(
            listener,
            handler,
            hits.clone(),
            connections.clone(),
            stop_rx,
        ));
        Self {
            addr,
            hits,
            connections,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far (shows whether the gateway reuses them).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Closes the listener and every open connection, like a killed process.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept(
    listener: TcpListener,
    handler: Handler,
    hits: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            res = listener.accept() => match res { Ok(pair) => pair, Err(_) => continue },
            _ = stop.changed() => return,
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let (handler, hits, mut stop) = (handler.clone(), hits.clone(), stop.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(req, handler.clone(), hits.clone()));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

fn respond(req: Request<Incoming>, handler: Handler, hits: Arc<AtomicUsize>) -> ReplyFuture {
    Box::pin(async move {
        hits.fetch_add(1, Ordering::SeqCst);
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let seen = Seen {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
            body,
        };
        let reply = handler(seen);
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let mut resp = Response::new(Full::new(reply.body));
        *resp.status_mut() =
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in reply.headers {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                resp.headers_mut().append(n, v);
            }
        }
        Ok(resp)
    })
}

/// The JSON the echo upstream answers with.
pub fn echo_json(seen: &Seen) -> String {
    let mut headers = serde_json::Map::new();
    for (name, value) in &seen.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.to_string(), value.into());
            }
        }
    }
    serde_json::json!({
        "method": seen.method.as_str(),
        "path": seen.uri.path(),
        "query": seen.uri.query(),
        "version": format!("{:?}", seen.version),
        "headers": headers,
        "body_bytes": seen.body.len(),
    })
    .to_string()
}
