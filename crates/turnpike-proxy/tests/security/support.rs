//! Shared set-up: an echo upstream behind a gateway with the given security config.

use turnpike_testkit::{MockUpstream, TestGateway};

/// Starts an echo upstream and a gateway whose config is `yaml` with `{upstream}`
/// replaced by the upstream's URL. The config must name the upstream `echo`.
pub async fn gateway(yaml: &str) -> (TestGateway, MockUpstream) {
    let up = MockUpstream::echo().await;
    let yaml = yaml.replace("{upstream}", &up.url());
    (TestGateway::start(&yaml).await, up)
}

/// The key secret the tests' configs use.
pub const KEY_SECRET: &str = "test-key-secret-0123456789abcdef";
