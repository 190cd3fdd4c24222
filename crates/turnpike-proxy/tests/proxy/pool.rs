//! The upstream connection pool: connections are reused, and a pooled connection the
//! upstream closed does not cost a request, whatever its method.

use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use turnpike_testkit::{MockUpstream, TestGateway, minimal_config};

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let up = MockUpstream::named("up").await;
    let gw = TestGateway::start(
        &minimal_config(&up.url()).replace("listen:", "server: {workers: 1}\nlisten:"),
    )
    .await;
    for _ in 0..20 {
        assert_eq!(gw.get("/").await.status, 200);
    }
    assert_eq!(up.hits(), 20);
    assert_eq!(
        up.connections(),
        1,
        "each request opened its own connection"
    );
}

/// An upstream that answers one request per connection and then closes it, without
/// announcing `Connection: close`, as servers with short keep-alive timeouts do.
async fn one_shot_upstream() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let head = String::from_utf8_lossy(&got).into_owned();
            // Read the small body too, so the close is a clean FIN, not a reset.
            if let Some(len) = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_owned)
            }) {
                let want: usize = len.trim().parse().unwrap();
                let have = got.len() - head.find("\r\n\r\n").unwrap() - 4;
                let mut rest = vec![0u8; want.saturating_sub(have)];
                stream.read_exact(&mut rest).await.unwrap();
            }
            let _ = tx.send(head.lines().next().unwrap_or("").to_owned());
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            drop(stream);
        }
    });
    (url, rx)
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_upstream_does_not_fail_a_post() {
    let (url, mut seen) = one_shot_upstream().await;
    let gw = TestGateway::start(
        &minimal_config(&url).replace("listen:", "server: {workers: 1}\nlisten:"),
    )
    .await;
    for i in 0..10 {
        let resp = gw
            .client
            .request(Method::POST, &gw.url(&format!("/orders/{i}")), &[], "{}")
            .await;
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        assert_eq!(
            seen.recv().await.unwrap(),
            format!("POST /orders/{i} HTTP/1.1")
        );
    }
}

#[tokio::test]
async fn idle_connections_are_not_reused_past_the_idle_timeout() {
    let up = MockUpstream::named("up").await;
    let yaml = format!(
        "listen: 127.0.0.1:0\nserver: {{workers: 1}}\nupstreams:\n  - name: b\n    pool: {{idle_timeout: 100ms}}\n    targets: [{{url: \"{}\"}}]\nroutes:\n  - {{name: r, paths: [\"/\"], upstream: b}}\n",
        up.url()
    );
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(gw.get("/").await.status, 200);
    assert_eq!(gw.get("/").await.status, 200);
    assert_eq!(up.connections(), 1);
    // Waiting is the behaviour under test here: the connection must age out.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(gw.get("/").await.status, 200);
    assert_eq!(up.connections(), 2);
}
