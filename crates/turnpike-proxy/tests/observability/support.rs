//! Scraping a test gateway's `/metrics` and reading values out of the text.

use std::time::{Duration, Instant};

use turnpike_testkit::{Client, MockUpstream, Reply, TestGateway};

/// How long a poll waits before failing with what it last saw.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A gateway from `yaml` (its `{upstream}` replaced), with `metrics.listen` on port 0.
pub async fn gateway(yaml: &str, up: &MockUpstream) -> TestGateway {
    let yaml = yaml.replace("{upstream}", &up.url());
    let yaml = if yaml.contains("metrics:") {
        yaml
    } else {
        format!("{yaml}metrics:\n  listen: 127.0.0.1:0\n")
    };
    TestGateway::start(&yaml).await
}

/// An upstream answering paths with `missing` with 404 and everything else with 200 `hello`.
pub async fn upstream() -> MockUpstream {
    MockUpstream::start(|seen| {
        if seen.uri.path().contains("missing") {
            Reply::status(404)
        } else {
            Reply::ok("hello")
        }
    })
    .await
}

/// One scrape of the metrics listener.
pub async fn scrape(gw: &TestGateway) -> String {
    let addr = gw.gateway.metrics_addr().expect("metrics.listen is set");
    let resp = Client::http1().get(&format!("http://{addr}/metrics")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = resp.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

/// The value of the sample written exactly as `series` (name and labels), if present.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Scrapes until `series` has `expected` (the body-end metrics land a moment after the
/// client has its response); fails with the last scrape.
pub async fn wait_for(gw: &TestGateway, series: &str, expected: f64) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = scrape(gw).await;
        if value(&text, series) == Some(expected) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never became {expected}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `path` holds at least `lines` lines; returns them.
pub async fn wait_for_lines(path: &std::path::Path, lines: usize) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<String> = text.lines().map(str::to_owned).collect();
        if all.len() >= lines {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, expected {lines}:\n{text}",
            path.display(),
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
