//! Helpers shared by the integration tests: finding the real Redis, unique key prefixes,
//! throwaway redis-server instances, and cleanup.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use turnpike_state::RedisOptions;

pub const REDIS_ADDR: &str = "127.0.0.1:6379";

/// The shared Redis URL when it is reachable. Outside CI an unreachable server skips the
/// test (prints why); with `CI=true` it fails it, since CI must run these tests.
pub fn redis_url(test: &str) -> Option<String> {
    let addr: SocketAddr = REDIS_ADDR.parse().unwrap();
    if TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok() {
        return Some(format!("redis://{REDIS_ADDR}/"));
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: Redis not reachable at {REDIS_ADDR} and CI=true");
    }
    eprintln!("{test}: skipped: Redis not reachable at {REDIS_ADDR}");
    None
}

/// A key prefix no other test (or run) uses, so tests can run in parallel.
pub fn unique_prefix() -> String {
    format!("tptest:{:016x}:", fastrand::u64(..))
}

pub fn options(url: &str, prefix: &str) -> RedisOptions {
    RedisOptions {
        url: url.to_owned(),
        timeout: Duration::from_millis(500),
        prefix: prefix.to_owned(),
    }
}

/// Deletes every key under `prefix` (tests leave nothing behind for an hour).
pub async fn cleanup(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}

/// A private redis-server on a free port, killed on drop.
pub struct ThrowawayRedis {
    pub port: u16,
    child: Option<Child>,
}

impl ThrowawayRedis {
    /// Starts one on a free port; `None` when redis-server is not installed.
    pub fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut me = Self { port, child: None };
        me.restart().then_some(me)
    }

    /// (Re)starts the server on the same port; waits until it accepts connections.
    pub fn restart(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
