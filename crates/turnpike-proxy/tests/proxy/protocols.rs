//! Protocols through the gateway: HTTP/2 from clients (h2c prior knowledge) and to
//! upstreams (`protocol: http2`), WebSocket upgrades spliced end to end, Server-Sent
//! Events streamed without buffering, and gRPC-style trailers (with `te: trailers`)
//! carried over HTTP/2 on both hops.
//!
//! The upstreams that need more than the testkit's whole-body mock (upgrades, streams
//! that wait, trailers) are small hyper servers written here.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use turnpike_testkit::{Client, MockUpstream, TestGateway, minimal_config};

/// How long a test waits for something that should take milliseconds before it fails
/// with a message instead of hanging; never used to wait for something to happen.
const PATIENCE: Duration = Duration::from_secs(10);

type UpBody = UnsyncBoxBody<Bytes, Infallible>;

/// Serves `handler` on a free port, HTTP/1.1 and h2c (prior knowledge) with upgrades, as
/// a real upstream would; returns its URL. Stops with the test's runtime.
async fn custom_upstream<F, Fut>(handler: F) -> String
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<UpBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let reply = handler(req);
                    async move { Ok::<_, Infallible>(reply.await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// The minimal config with `protocol: http2` on the upstream.
fn http2_upstream_config(upstream_url: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nupstreams:\n  - name: backend\n    protocol: http2\n    targets:\n      - url: {upstream_url}\nroutes:\n  - name: everything\n    paths: [\"/\"]\n    upstream: backend\n"
    )
}

/// An HTTP/2 (h2c prior knowledge) connection to the gateway, driven in the background.
async fn h2c_connection(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

/// An HTTP/1.1 connection to the gateway, driven in the background.
async fn http1_connection(
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

#[tokio::test]
async fn h2c_prior_knowledge_client_is_served_and_upstream_gets_http1() {
    let up = MockUpstream::echo().await;
    let gw = TestGateway::start(&minimal_config(&up.url())).await;

    // `Client::h2c` speaks HTTP/2 only: if the gateway did not, the request would fail.
    let resp = Client::h2c().get(&gw.url("/over/h2c?q=1")).await;

    assert_eq!(resp.status, 200);
    let echo = resp.json();
    assert_eq!(
        echo["version"], "HTTP/1.1",
        "the default upstream protocol is HTTP/1.1"
    );
    assert_eq!(echo["path"], "/over/h2c");
    assert_eq!(echo["query"], "q=1");
    assert_eq!(
        echo["headers"]["via"], "2 turnpike",
        "the client's hop was HTTP/2"
    );
    assert!(
        echo["headers"]["host"]
            .as_str()
            .is_some_and(|h| h == gw.addr.to_string()),
        "{echo}"
    );
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn h2c_client_sends_many_concurrent_streams_on_one_connection() {
    let up = MockUpstream::echo().await;
    let gw = TestGateway::start(&minimal_config(&up.url())).await;
    let send = h2c_connection(gw.addr).await;

    let requests = (0..20).map(|i| {
        let mut send = send.clone();
        let uri = format!("http://{}/stream/{i}", gw.addr);
        async move {
            let resp = send
                .send_request(Request::get(uri).body(Full::default()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.version(), Version::HTTP_2);
            assert_eq!(resp.status(), StatusCode::OK);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    });
    let paths = futures_util::future::join_all(requests).await;

    for (i, path) in paths.iter().enumerate() {
        assert_eq!(path, &format!("/stream/{i}"));
    }
    assert_eq!(up.hits(), 20);
}

#[tokio::test]
async fn http2_to_the_upstream_when_configured() {
    let up = MockUpstream::echo().await;
    let gw = TestGateway::start(&http2_upstream_config(&up.url())).await;

    let resp = gw.get("/to/h2").await;
    assert_eq!(resp.status, 200);
    let echo = resp.json();
    assert_eq!(
        echo["version"], "HTTP/2.0",
        "upstream must see HTTP/2: {echo}"
    );
    assert_eq!(echo["path"], "/to/h2");

    // A body travels over the HTTP/2 upstream hop as well.
    let resp = gw
        .client
        .request(
            Method::POST,
            &gw.url("/upload"),
            &[("content-type", "text/plain")],
            "hello h2",
        )
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["body_bytes"], 8);

    // And HTTP/2 on both hops.
    let resp = Client::h2c().get(&gw.url("/both")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["version"], "HTTP/2.0");
    assert_eq!(up.hits(), 3);
}

/// `Sec-WebSocket-Accept` for a client key (RFC 6455 §4.2.2).
fn websocket_accept(key: &[u8]) -> String {
    let mut sha1 = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(sha1.finish().as_ref())
}

/// Standard base64 with padding.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A WebSocket upstream: answers the handshake with 101 and the right accept key, then
/// echoes raw bytes until the gateway closes its side. Reports the handshake headers.
async fn websocket_echo_upstream() -> (String, mpsc::UnboundedReceiver<HeaderMap>) {
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    let url = custom_upstream(move |mut req: Request<Incoming>| {
        let seen_tx = seen_tx.clone();
        async move {
            let _ = seen_tx.send(req.headers().clone());
            let is_websocket = req
                .headers()
                .get(header::UPGRADE)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
            let Some(key) = req
                .headers()
                .get("sec-websocket-key")
                .filter(|_| is_websocket)
                .cloned()
            else {
                let mut resp = Response::new(
                    Full::new(Bytes::from_static(b"not a websocket handshake")).boxed_unsync(),
                );
                *resp.status_mut() = StatusCode::BAD_REQUEST;
                return resp;
            };
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let mut io = TokioIo::new(upgrade.await.unwrap());
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = io.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    io.write_all(&buf[..n]).await.unwrap();
                }
                // Dropping `io` closes the upstream connection.
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::UPGRADE, "websocket")
                .header(header::CONNECTION, "Upgrade")
                .header("sec-websocket-accept", websocket_accept(key.as_bytes()))
                .body(Empty::new().boxed_unsync())
                .unwrap()
        }
    })
    .await;
    (url, seen_rx)
}

/// Reads an HTTP/1.1 response head from a raw stream; returns the status line, the
/// headers (names lower-cased) and any bytes that came after the head.
async fn read_head(stream: &mut TcpStream) -> (String, Vec<(String, String)>, Vec<u8>) {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .expect("response head in time")
            .unwrap();
        assert!(
            n > 0,
            "connection closed before the response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let rest = buf[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, rest)
}

fn head_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Sends the sample handshake of RFC 6455 §1.3 (whose accept key is known) with the
/// given `Connection` value; returns the stream once the 101 is read and checked.
async fn websocket_handshake(addr: SocketAddr, connection: &str) -> TcpStream {
    let mut ws = TcpStream::connect(addr).await.unwrap();
    let handshake = format!(
        "GET /chat HTTP/1.1\r\nHost: chat.example.test\r\nUpgrade: websocket\r\nConnection: {connection}\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    ws.write_all(handshake.as_bytes()).await.unwrap();
    let (status, headers, early) = read_head(&mut ws).await;
    assert!(
        status.starts_with("HTTP/1.1 101"),
        "expected 101, got {status:?} {headers:?}"
    );
    assert_eq!(
        head_value(&headers, "sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert!(
        head_value(&headers, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{headers:?}"
    );
    assert!(
        head_value(&headers, "connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")),
        "{headers:?}"
    );
    assert!(
        early.is_empty(),
        "nothing may follow the 101 before we send: {early:?}"
    );
    ws
}

/// One message through the tunnel and back.
async fn websocket_round_trip(ws: &mut TcpStream, message: &[u8]) {
    ws.write_all(message).await.unwrap();
    let mut echoed = vec![0u8; message.len()];
    tokio::time::timeout(PATIENCE, ws.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(echoed, message);
}

#[tokio::test]
async fn websocket_upgrade_is_spliced_both_ways() {
    let (url, mut seen) = websocket_echo_upstream().await;
    let gw = TestGateway::start(&minimal_config(&url)).await;

    let mut ws = websocket_handshake(gw.addr, "Upgrade").await;

    let upstream_saw = seen.recv().await.unwrap();
    assert_eq!(upstream_saw.get(header::UPGRADE).unwrap(), "websocket");
    assert!(
        upstream_saw
            .get(header::CONNECTION)
            .unwrap()
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("upgrade")
    );
    assert_eq!(
        upstream_saw.get("sec-websocket-key").unwrap(),
        "dGhlIHNhbXBsZSBub25jZQ=="
    );
    assert_eq!(upstream_saw.get("sec-websocket-version").unwrap(), "13");

    websocket_round_trip(&mut ws, b"ping through the gateway").await;

    // A small message, then a large one written while the echo is read concurrently, so
    // both directions stream at once.
    let big: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut rd, mut wr) = ws.into_split();
    let sent = big.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&sent).await.unwrap();
        // Half-close: the upstream sees the end, closes, and the gateway passes that on.
        wr.shutdown().await.unwrap();
        wr
    });
    let mut back = Vec::new();
    tokio::time::timeout(PATIENCE, rd.read_to_end(&mut back))
        .await
        .expect("echo and close in time")
        .unwrap();
    let _wr = writer.await.unwrap();
    assert_eq!(back.len(), big.len());
    assert!(back == big, "echoed bytes differ");
}

#[tokio::test]
async fn websocket_handshake_with_a_connection_list_as_browsers_send_it() {
    let (url, mut seen) = websocket_echo_upstream().await;
    let gw = TestGateway::start(&minimal_config(&url)).await;

    // Firefox sends `Connection: keep-alive, Upgrade`.
    let mut ws = websocket_handshake(gw.addr, "keep-alive, Upgrade").await;
    let upstream_saw = seen.recv().await.unwrap();
    assert_eq!(upstream_saw.get(header::UPGRADE).unwrap(), "websocket");
    assert!(upstream_saw.get("keep-alive").is_none());
    websocket_round_trip(&mut ws, b"hello").await;
    websocket_round_trip(&mut ws, b"and again").await;
}

#[tokio::test]
async fn upgrade_refused_by_upstream_is_an_ordinary_response() {
    let (url, _seen) = websocket_echo_upstream().await;
    let gw = TestGateway::start(&minimal_config(&url)).await;

    // Missing Sec-WebSocket-Key: the upstream answers 400 and the connection stays HTTP.
    let resp = gw
        .client
        .request(
            Method::GET,
            &gw.url("/chat"),
            &[("upgrade", "websocket"), ("connection", "upgrade")],
            "",
        )
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.text(), "not a websocket handshake");
    assert_eq!(
        resp.header("upgrade"),
        None,
        "hop-by-hop headers of a non-101 answer are dropped"
    );
    assert_eq!(
        gw.get("/after").await.status,
        400,
        "the connection still serves requests"
    );
}

#[tokio::test]
async fn server_sent_events_stream_without_buffering() {
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release = Arc::new(Mutex::new(Some(release_rx)));
    let url = custom_upstream(move |_req| {
        let release = release.lock().unwrap().take();
        async move {
            let first = futures_util::stream::once(async {
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(
                    b"event: tick\ndata: first\n\n",
                )))
            });
            // The second event exists only once the test has seen the first one.
            let second = futures_util::stream::once(async move {
                if let Some(release) = release {
                    let _ = release.await;
                }
                Ok(Frame::data(Bytes::from_static(
                    b"event: tick\ndata: second\n\n",
                )))
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(StreamBody::new(first.chain(second)).boxed_unsync())
                .unwrap()
        }
    })
    .await;
    let gw = TestGateway::start(&minimal_config(&url)).await;

    let mut send = http1_connection(gw.addr).await;
    let req = Request::get("/events")
        .header(header::HOST, "sse.example.test")
        .header(header::ACCEPT, "text/event-stream");
    let resp = send
        .send_request(req.body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get(header::CONTENT_TYPE).unwrap(),
        "text/event-stream"
    );
    let mut body = resp.into_body();

    let mut received = Vec::new();
    while !received.ends_with(b"\n\n") {
        let frame = tokio::time::timeout(PATIENCE, body.frame())
            .await
            .expect("the first event must arrive while the upstream holds the stream open: the gateway is buffering")
            .expect("stream ended before the first event")
            .unwrap();
        received.extend_from_slice(frame.data_ref().map_or(&b""[..], |d| &d[..]));
    }
    assert_eq!(received, b"event: tick\ndata: first\n\n");

    release_tx.send(()).unwrap();
    let rest = tokio::time::timeout(PATIENCE, body.collect())
        .await
        .expect("rest of the stream")
        .unwrap()
        .to_bytes();
    assert_eq!(&rest[..], b"event: tick\ndata: second\n\n");
}

#[tokio::test]
async fn grpc_trailers_pass_through_http2_end_to_end() {
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(Version, HeaderMap, Bytes)>();
    let url = custom_upstream(move |req: Request<Incoming>| {
        let seen_tx = seen_tx.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let _ = seen_tx.send((parts.version, parts.headers, body));
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            trailers.insert("grpc-message", HeaderValue::from_static("ok"));
            let frames: Vec<Result<_, Infallible>> = vec![
                Ok(Frame::data(Bytes::from_static(
                    b"\x00\x00\x00\x00\x05hello",
                ))),
                Ok(Frame::trailers(trailers)),
            ];
            Response::builder()
                .header(header::CONTENT_TYPE, "application/grpc")
                .body(StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync())
                .unwrap()
        }
    })
    .await;
    let gw = TestGateway::start(&http2_upstream_config(&url)).await;

    let mut send = h2c_connection(gw.addr).await;
    let req = Request::post(format!("http://{}/helloworld.Greeter/SayHello", gw.addr))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .body(Full::new(Bytes::from_static(b"\x00\x00\x00\x00\x03hey")))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(
        resp.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/grpc"
    );

    let mut body = resp.into_body();
    let (mut data, mut trailers) = (Vec::new(), None);
    while let Some(frame) = tokio::time::timeout(PATIENCE, body.frame())
        .await
        .expect("frames in time")
    {
        let frame = frame.unwrap();
        match frame.into_data() {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(frame) => trailers = Some(frame.into_trailers().unwrap()),
        }
    }
    assert_eq!(data, b"\x00\x00\x00\x00\x05hello");
    let trailers = trailers.expect("the client must receive the upstream's trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(trailers.get("grpc-message").unwrap(), "ok");

    let (version, headers, body) = seen_rx.recv().await.unwrap();
    assert_eq!(version, Version::HTTP_2, "the upstream hop is HTTP/2");
    assert_eq!(
        headers.get(header::TE).unwrap(),
        "trailers",
        "te: trailers must reach the upstream"
    );
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/grpc"
    );
    assert_eq!(&body[..], b"\x00\x00\x00\x00\x03hey");
}

#[tokio::test]
async fn websocket_to_an_http2_upstream_is_sent_as_http1() {
    // HTTP/2 has no Upgrade; the handshake must still reach the upstream as HTTP/1.1.
    let (url, mut seen) = websocket_echo_upstream().await;
    let gw = TestGateway::start(&http2_upstream_config(&url)).await;
    let mut ws = websocket_handshake(gw.addr, "Upgrade").await;
    assert_eq!(
        seen.recv().await.unwrap().get(header::UPGRADE).unwrap(),
        "websocket"
    );
    websocket_round_trip(&mut ws, b"over http/1.1").await;
}

#[tokio::test]
async fn a_stalled_response_body_is_cut_after_the_idle_timeout() {
    // The upstream sends a first chunk and then nothing, without ending the body.
    let url = custom_upstream(|_req| async {
        let first = futures_util::stream::once(async {
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"partial")))
        });
        let stall = futures_util::stream::pending();
        Response::builder()
            .body(StreamBody::new(first.chain(stall)).boxed_unsync())
            .unwrap()
    })
    .await;
    let yaml =
        minimal_config(&url).replace("    targets:", "    timeouts: {idle: 300ms}\n    targets:");
    let gw = TestGateway::start(&yaml).await;
    let mut send = http1_connection(gw.addr).await;
    let req = Request::get("/slow")
        .header(header::HOST, "x")
        .body(Full::default())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let started = std::time::Instant::now();
    // PATIENCE only guards a hang; the gateway must end the body by itself.
    let outcome = tokio::time::timeout(PATIENCE, resp.into_body().collect())
        .await
        .expect("body never ended");
    assert!(
        outcome.is_err(),
        "a stalled body must end with an error, not look complete"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
}

#[tokio::test]
async fn least_connections_counts_a_response_still_streaming() {
    // Target "stream" answers at once but keeps its body open until released.
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release = Arc::new(Mutex::new(Some(release_rx)));
    let streaming = custom_upstream(move |_req| {
        let release = release.lock().unwrap().take();
        async move {
            let first = futures_util::stream::once(async {
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"stream")))
            });
            let rest = futures_util::stream::once(async move {
                if let Some(release) = release {
                    let _ = release.await;
                }
                Ok(Frame::data(Bytes::from_static(b"-end")))
            });
            Response::builder()
                .body(StreamBody::new(first.chain(rest)).boxed_unsync())
                .unwrap()
        }
    })
    .await;
    let idle = turnpike_testkit::MockUpstream::named("idle").await;
    let yaml = format!(
        "listen: 127.0.0.1:0\nserver: {{workers: 1}}\nupstreams:\n  - name: b\n    balancer: least_connections\n    targets: [{{url: \"{streaming}\"}}, {{url: \"{}\"}}]\nroutes:\n  - {{name: r, paths: [\"/\"], upstream: b}}\n",
        idle.url()
    );
    let gw = TestGateway::start(&yaml).await;
    // Open requests until one lands on the streaming target and keep its body open.
    let mut send = http1_connection(gw.addr).await;
    let mut open_body = None;
    for _ in 0..10 {
        let resp = send
            .send_request(
                Request::get("/")
                    .header(header::HOST, "x")
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        let mut body = resp.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        if &first[..] == b"stream" {
            open_body = Some(body);
            break;
        }
        body.collect().await.unwrap();
    }
    let open_body = open_body.expect("one request reached the streaming target");
    for _ in 0..10 {
        assert_eq!(
            gw.get("/").await.text(),
            "idle",
            "the target with an open stream is busier"
        );
    }
    release_tx.send(()).unwrap();
    assert_eq!(&open_body.collect().await.unwrap().to_bytes()[..], b"-end");
}

#[tokio::test]
async fn shutdown_lets_an_open_websocket_finish_within_the_drain_deadline() {
    let (url, _seen) = websocket_echo_upstream().await;
    let gw = TestGateway::start(
        &minimal_config(&url).replace("listen:", "server: {shutdown_timeout: 30s}\nlisten:"),
    )
    .await;
    let mut ws = websocket_handshake(gw.addr, "Upgrade").await;
    websocket_round_trip(&mut ws, b"before").await;
    let draining = tokio::spawn(gw.gateway.shutdown());
    // The tunnel still carries data while the gateway drains.
    websocket_round_trip(&mut ws, b"during the drain").await;
    assert!(
        !draining.is_finished(),
        "the drain must wait for the open tunnel"
    );
    drop(ws);
    // Closing the tunnel ends the drain long before its 30 s deadline.
    tokio::time::timeout(PATIENCE, draining)
        .await
        .expect("drain ended once the tunnel closed")
        .unwrap();
}

#[tokio::test]
async fn an_idle_websocket_tunnel_is_closed_after_the_idle_timeout() {
    let (url, _seen) = websocket_echo_upstream().await;
    let yaml =
        minimal_config(&url).replace("    targets:", "    timeouts: {idle: 400ms}\n    targets:");
    let gw = TestGateway::start(&yaml).await;
    let mut ws = websocket_handshake(gw.addr, "Upgrade").await;
    // Traffic keeps it open well past one idle period.
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        websocket_round_trip(&mut ws, format!("ping {i}").as_bytes()).await;
    }
    // Then silence: the gateway closes the tunnel by itself (PATIENCE only guards a hang).
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(PATIENCE, ws.read(&mut buf))
        .await
        .expect("tunnel never closed");
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "expected the tunnel to close, read {n:?}"
    );
    // Silence started at the last round trip, just before `started`.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "closed after {:?}",
        started.elapsed()
    );
}
