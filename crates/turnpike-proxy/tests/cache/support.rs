//! A gateway with one caching route in front of an upstream that numbers its answers, so
//! a test can tell a cached body (same number) from a fresh one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::Method;
use turnpike_testkit::{MockUpstream, Reply, Seen, TestGateway, TestResponse};

/// The gateway's config: `store` lines go under `cache:`, `policy` is the route's
/// `cache:` value (flow style), `{upstream}` is the mock's URL.
pub fn config(store: &str, policy: &str, upstream: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\ncache:\n  x_cache: true\n{store}upstreams:\n  - name: backend\n    targets: [{{url: {upstream}}}]\nroutes:\n  - name: api\n    paths: [\"/\"]\n    upstream: backend\n    cache: {policy}\n"
    )
}

/// An upstream whose replies come from `reply(n, seen)`, `n` counting from 1.
pub async fn origin(
    reply: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static,
) -> (MockUpstream, Arc<AtomicUsize>) {
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    let up = MockUpstream::start(move |seen| {
        let i = count.fetch_add(1, Ordering::SeqCst) + 1;
        reply(i, &seen)
    })
    .await;
    (up, n)
}

/// `n=<n>` with the given headers.
pub fn numbered(n: usize, headers: &[(&str, &str)]) -> Reply {
    let mut r = Reply::ok(format!("n={n}"));
    for (k, v) in headers {
        r = r.header(k, v);
    }
    r
}

/// A gateway with `policy` in front of an upstream answering with `headers`.
pub async fn cached(
    policy: &str,
    headers: &'static [(&'static str, &'static str)],
) -> (TestGateway, MockUpstream) {
    let (up, _) = origin(move |n, _| numbered(n, headers)).await;
    let gw = TestGateway::start(&config("", policy, &up.url())).await;
    (gw, up)
}

pub async fn get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    send(gw, Method::GET, path, headers).await
}

pub async fn send(
    gw: &TestGateway,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    gw.client.request(method, &gw.url(path), headers, "").await
}

/// `X-Cache` of a response.
pub fn x_cache(r: &TestResponse) -> &str {
    r.header("x-cache").unwrap_or("-")
}

/// Waits (bounded) until `cond` holds; for effects that happen after a response ends.
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// `Reply` with another status.
pub trait WithStatus {
    fn status_code(self, status: u16) -> Self;
}

impl WithStatus for Reply {
    fn status_code(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
}

/// `Reply` with another body.
pub trait WithBody {
    fn body_text(self, body: &str) -> Self;
}

impl WithBody for Reply {
    fn body_text(mut self, body: &str) -> Self {
        self.body = bytes::Bytes::from(body.to_owned());
        self
    }
}
