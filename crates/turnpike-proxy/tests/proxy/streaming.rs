//! Streaming bodies both ways: large uploads and downloads pass through intact without
//! being collected (memory under load is measured by the benchmark, not here).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, StreamBody};
use turnpike_testkit::{MockUpstream, Reply, TestGateway};

const SIZE: usize = 64 * 1024 * 1024;

fn config(url: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nserver: {{max_body_bytes: 1GiB}}\nupstreams:\n  - name: backend\n    targets: [{{url: \"{url}\"}}]\nroutes:\n  - {{name: r, paths: [\"/\"], upstream: backend}}\n"
    )
}

#[tokio::test]
async fn large_download_arrives_intact() {
    let payload = Bytes::from((0..SIZE).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let served = payload.clone();
    let up = MockUpstream::start(move |_| Reply {
        body: served.clone(),
        ..Reply::ok("")
    })
    .await;
    let gw = TestGateway::start(&config(&up.url())).await;
    let resp = gw.get("/big").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), SIZE);
    assert!(resp.body == payload, "content changed in transit");
}

#[tokio::test]
async fn large_chunked_upload_streams_through() {
    let received = Arc::new(AtomicU64::new(0));
    let seen = received.clone();
    let up = MockUpstream::start(move |req| {
        seen.store(req.body.len() as u64, Ordering::SeqCst);
        Reply::ok(format!(
            "{}",
            req.body.iter().map(|b| u64::from(*b)).sum::<u64>()
        ))
    })
    .await;
    let gw = TestGateway::start(&config(&up.url())).await;
    // A stream of 1 MiB chunks without Content-Length: sent chunked, never as one buffer.
    let chunks = (0..64).map(|i| {
        Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(vec![
            (i % 7) as u8;
            1 << 20
        ])))
    });
    let body = StreamBody::new(futures_util::stream::iter(chunks));
    let req = Request::builder()
        .method(Method::POST)
        .uri(gw.url("/upload"))
        .body(body)
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let sum: u64 = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
    .parse()
    .unwrap();
    let expected: u64 = (0..64u64).map(|i| (i % 7) << 20).sum();
    assert_eq!(received.load(Ordering::SeqCst), SIZE as u64);
    assert_eq!(sum, expected);
}
