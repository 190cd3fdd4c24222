//! Shared set-up: consumers with API keys, a gateway whose upstream is an echo server,
//! and a client that sends many requests at once.

use http::Method;
use turnpike_policy::key_auth::{self, NewKey};
use turnpike_testkit::{MockUpstream, TestGateway, TestResponse};

pub const KEY_SECRET: &str = "traffic-test-key-secret-0123456789";

/// A consumer and the API key it calls with.
pub struct Caller {
    pub name: &'static str,
    pub key: NewKey,
}

impl Caller {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            key: key_auth::generate(KEY_SECRET).unwrap(),
        }
    }

    /// Its `consumers:` entry, with `extra` lines (already indented by four spaces).
    pub fn yaml(&self, extra: &str) -> String {
        format!(
            "  - name: {}\n    keys: [{{id: {}, hash: \"{}\"}}]\n{extra}",
            self.name, self.key.id, self.key.hash
        )
    }
}

/// Starts an echo upstream and a gateway from `yaml`, with `{upstream}` replaced.
pub async fn gateway(yaml: &str) -> (TestGateway, MockUpstream) {
    let up = MockUpstream::echo().await;
    let yaml = yaml.replace("{upstream}", &up.url());
    (TestGateway::start(&yaml).await, up)
}

/// The `auth:` section for API keys in `x-api-key`.
pub fn key_auth_section() -> String {
    format!("auth:\n  key_secret: {KEY_SECRET}\n")
}

pub async fn get_as(gw: &TestGateway, path: &str, caller: &Caller) -> TestResponse {
    get_with(gw, path, &[("x-api-key", &caller.key.key)]).await
}

pub async fn get_with(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    gw.client
        .request(Method::GET, &gw.url(path), headers, "")
        .await
}

/// Sends `n` GETs at once and returns their statuses.
pub async fn burst(gw: &TestGateway, path: &str, headers: &[(&str, &str)], n: usize) -> Vec<u16> {
    let calls = (0..n).map(|_| get_with(gw, path, headers));
    futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect()
}

pub fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// `{"error": {"code": ...}}` of a gateway answer.
pub fn code(resp: &TestResponse) -> String {
    resp.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
