//! Request limits and malformed requests: every rejection is JSON with the right status,
//! and nothing bad reaches the upstream.

use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use turnpike_testkit::{MockUpstream, TestGateway};

async fn limited_gateway() -> (TestGateway, MockUpstream) {
    gateway_with_server(
        "header_read_timeout: 1s\n  max_body_bytes: 1KiB\n  max_uri_length: 64\n  max_headers: 20",
    )
    .await
}

/// An echo upstream behind a gateway with these `server:` settings.
async fn gateway_with_server(server: &str) -> (TestGateway, MockUpstream) {
    let up = MockUpstream::echo().await;
    let yaml = format!(
        "listen: 127.0.0.1:0\nserver:\n  {server}\nupstreams:\n  - name: echo\n    targets: [{{url: \"{}\"}}]\nroutes:\n  - {{name: all, paths: [\"/\"], upstream: echo}}\n",
        up.url()
    );
    (TestGateway::start(&yaml).await, up)
}

/// Reads until the gateway closes the connection by itself; the 10 s bound only guards
/// a hang.
async fn read_until_closed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await
    .expect("the gateway never closed the connection")?;
    Ok(out)
}

/// Sends raw bytes and returns the raw response head and body.
async fn raw(gw: &TestGateway, request: &str) -> String {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn body_over_the_limit_is_413_by_content_length() {
    let (gw, up) = limited_gateway().await;
    let resp = gw
        .client
        .request(Method::POST, &gw.url("/upload"), &[], &"x".repeat(2048))
        .await;
    assert_eq!(resp.status, 413);
    assert_eq!(resp.json()["error"]["code"], "body_too_large");
    assert_eq!(up.hits(), 0, "rejected before the upstream");
    let ok = gw
        .client
        .request(Method::POST, &gw.url("/upload"), &[], &"x".repeat(1024))
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["body_bytes"], 1024);
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    let (gw, _up) = limited_gateway().await;
    let chunk = "a".repeat(600);
    let req = format!(
        "POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let resp = raw(&gw, &req).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(resp.contains("body_too_large"), "{resp}");
}

#[tokio::test]
async fn long_uri_is_414_and_many_headers_431() {
    let (gw, _up) = limited_gateway().await;
    let resp = gw.get(&format!("/{}", "a".repeat(100))).await;
    assert_eq!(resp.status, 414);
    assert_eq!(resp.json()["error"]["code"], "uri_too_long");
    let names: Vec<String> = (0..30).map(|i| format!("x-h{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let resp = gw
        .client
        .request(Method::GET, &gw.url("/"), &headers, "")
        .await;
    assert_eq!(resp.status, 431);
}

/// RFC 9112 §6.3: with both framings, Transfer-Encoding wins, Content-Length is dropped and
/// the connection is closed after the response, so nothing can be smuggled behind it.
#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle() {
    let (gw, up) = limited_gateway().await;
    let req = "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n";
    let resp = raw(&gw, req).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        !resp.contains("/smuggled"),
        "second request was served: {resp}"
    );
    assert_eq!(
        resp.matches("HTTP/1.1 ").count(),
        1,
        "connection closed after one response"
    );
    assert_eq!(up.hits(), 1);
    let echo = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(
        !echo.contains("content-length"),
        "upstream saw a Content-Length: {echo}"
    );
    let req = "POST / HTTP/1.0\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    assert!(
        raw(&gw, req).await.starts_with("HTTP/1.1 400"),
        "HTTP/1.0 with Transfer-Encoding is refused"
    );
}

#[tokio::test]
async fn conflicting_content_lengths_are_rejected() {
    let (gw, up) = limited_gateway().await;
    let req = "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\nconnection: close\r\n\r\nhello!";
    let resp = raw(&gw, req).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn garbage_requests_get_an_error_not_a_crash() {
    let (gw, _up) = limited_gateway().await;
    for junk in [
        "GARBAGE\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET /\u{1}\u{2} HTTP/1.1\r\nhost: x\r\n\r\n",
        "\r\n\r\n\r\n",
    ] {
        let resp = raw(&gw, junk).await;
        assert!(
            resp.is_empty() || resp.starts_with("HTTP/1.1 4"),
            "{junk:?} -> {resp}"
        );
    }
    assert_eq!(gw.get("/still-alive").await.status, 200);
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_header_read_timeout() {
    let (gw, _up) = gateway_with_server("header_read_timeout: 300ms").await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let out = read_until_closed(&mut stream).await.unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
}

#[tokio::test]
async fn slowloris_header_dribble_is_cut_off() {
    let (gw, up) = limited_gateway().await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let out = read_until_closed(&mut stream).await.unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&out).contains("200 OK"),
        "an unfinished head must not be served"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn dot_segments_are_refused_so_routes_cannot_be_bypassed() {
    let (gw, up) = limited_gateway().await;
    for path in [
        "/public/../admin",
        "/public/%2e%2E/admin",
        "/a/./b",
        "/a/.%2e",
    ] {
        let resp = raw(
            &gw,
            &format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{path}: {resp}");
        assert!(resp.contains("segment"), "{path}: {resp}");
    }
    assert_eq!(up.hits(), 0);
    // Dots inside a segment are ordinary characters.
    assert_eq!(gw.get("/files/v1.2/report..txt").await.status, 200);
}

#[tokio::test]
async fn ambiguous_or_missing_host_is_refused() {
    let (gw, up) = limited_gateway().await;
    let two = raw(
        &gw,
        "GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(
        two.starts_with("HTTP/1.1 400") && two.contains("more than one Host"),
        "{two}"
    );
    let none = raw(&gw, "GET / HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(
        none.starts_with("HTTP/1.1 400") && none.contains("Host header is missing"),
        "{none}"
    );
    let userinfo = raw(
        &gw,
        "GET http://user:pw@x/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(userinfo.starts_with("HTTP/1.1 400"), "{userinfo}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn only_websocket_upgrades_are_tunnelled() {
    let (gw, _up) = limited_gateway().await;
    let headers = [
        ("connection", "Upgrade, HTTP2-Settings"),
        ("upgrade", "h2c"),
        ("http2-settings", "AAMAAABkAAQAAP__"),
    ];
    let resp = gw
        .client
        .request(Method::GET, &gw.url("/"), &headers, "")
        .await;
    assert_eq!(resp.status, 200, "served as a plain request");
    let seen = &resp.json()["headers"];
    assert!(
        seen.get("upgrade").is_none() && seen.get("http2-settings").is_none(),
        "{seen}"
    );
}
