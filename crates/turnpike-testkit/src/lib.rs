//! Test kit: a mock upstream and a gateway on port 0 in a couple of lines, plus an HTTP
//! client that returns what a user would look at (status, headers, body).
//!
//! ```ignore
//! let up = MockUpstream::echo().await;
//! let gw = TestGateway::start(&minimal_config(&up.url())).await;
//! let resp = gw.get("/hello").await;
//! assert_eq!(resp.status, 200);
//! ```

mod client;
mod upstream;

pub use client::{Client, TestResponse};
pub use upstream::{MockUpstream, Reply, Seen, echo_json};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use turnpike_proxy::Gateway;

/// The DESIGN.md minimal config, listening on a free port, pointing at `upstream_url`.
pub fn minimal_config(upstream_url: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nupstreams:\n  - name: backend\n    targets:\n      - url: {upstream_url}\nroutes:\n  - name: everything\n    paths: [\"/\"]\n    upstream: backend\n"
    )
}

/// A gateway started from YAML, on the ports the config names (use port 0).
#[derive(Debug)]
pub struct TestGateway {
    pub gateway: Gateway,
    pub addr: SocketAddr,
    pub client: Client,
    /// Keeps the config file alive for reload tests.
    dir: Option<tempfile::TempDir>,
    file: Option<PathBuf>,
}

impl TestGateway {
    /// Starts a gateway from YAML text; panics with the config errors if it is invalid.
    pub async fn start(yaml: &str) -> Self {
        let cfg = turnpike_config::load_str(yaml, Path::new("test.yaml"), &|_| None)
            .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        let gateway = Gateway::start(&cfg).unwrap_or_else(|e| panic!("gateway did not start: {e}"));
        let addr = gateway.addrs()[0].1;
        Self {
            gateway,
            addr,
            client: Client::http1(),
            dir: None,
            file: None,
        }
    }

    /// Starts from a config file written to a temp dir, for reload tests.
    pub async fn start_from_file(yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let file = dir.path().join("turnpike.yaml");
        std::fs::write(&file, yaml).unwrap_or_else(|e| panic!("write config: {e}"));
        let mut gw = Self::start(yaml).await;
        gw.dir = Some(dir);
        gw.file = Some(file);
        gw
    }

    /// The config file of [`TestGateway::start_from_file`].
    pub fn config_path(&self) -> &Path {
        self.file
            .as_deref()
            .unwrap_or_else(|| panic!("gateway was not started from a file"))
    }

    /// Rewrites the config file (atomically, as editors do) without reloading.
    pub fn write_config(&self, yaml: &str) {
        let path = self.config_path();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, yaml).unwrap_or_else(|e| panic!("write config: {e}"));
        std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename config: {e}"));
        let _ = &self.dir;
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.client.get(&self.url(path)).await
    }
}

/// Where tests expect the real Redis.
pub const REDIS: &str = "127.0.0.1:6379";

/// True when tests may use the Redis at [`REDIS`]. Without one they say they skipped;
/// under `CI=true` a missing Redis fails the test instead, since CI must run them.
pub fn redis_available() -> bool {
    let addr: SocketAddr = REDIS
        .parse()
        .unwrap_or_else(|e| panic!("REDIS is an address: {e}"));
    let up = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).is_ok();
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Redis is required in CI but nothing answers on {REDIS}"
        );
        eprintln!("skipped: Redis not reachable at {REDIS}");
    }
    up
}
