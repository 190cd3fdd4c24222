//! What the process tests share: free ports, a `turnpike serve` process that keeps its
//! log and is killed when dropped, the CLI run against an admin API, and polling a URL
//! until it answers a status. Each test file keeps its own config and `Node` on top.

#![allow(dead_code)] // every test binary uses a different part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use turnpike_testkit::Client;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The `turnpike` binary under test.
pub fn turnpike() -> Command {
    Command::new(env!("CARGO_BIN_EXE_turnpike"))
}

/// A running `turnpike serve --no-watch --config FILE`, its stderr kept line by line.
pub struct Serve {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// How far [`Serve::wait_for`] has read, so each wait looks at new lines only.
    read: Mutex<usize>,
}

impl Serve {
    pub fn start(file: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = turnpike();
        cmd.args(["serve", "--no-watch", "--config"])
            .arg(file)
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stderr, sink) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            log,
            read: Mutex::new(0),
        }
    }

    /// Whether any line so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits for the next line (after those earlier waits read) containing `needle`.
    pub fn wait_for(&self, needle: &str, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            {
                let lines = self.log.lock().unwrap();
                let mut read = self.read.lock().unwrap();
                while *read < lines.len() {
                    *read += 1;
                    if lines[*read - 1].contains(needle) {
                        return lines[*read - 1].clone();
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` (e.g. `-TERM`) to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, the `stopped` line, and a clean exit.
    pub fn stop(mut self, patience: Duration) {
        self.signal("-TERM");
        self.wait_for("stopped", patience);
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished CLI run.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    /// Asserts exit code `code` and returns stdout.
    pub fn expect(&self, code: i32) -> String {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }
}

impl Run {
    /// Asserts exit code `code` and returns what the command said: stdout when it
    /// succeeded, stderr (where it says why) when it failed.
    pub fn outcome(&self, code: i32) -> String {
        let out = self.expect(code);
        if code == 0 { out } else { self.stderr() }
    }
}

/// The CLI against the admin API at `admin_url` with `token`, and no config file.
pub fn cli(admin_url: &str, token: &str, args: &[&str]) -> Run {
    let mut cmd = turnpike();
    cmd.args(args)
        .env("TURNPIKE_ADMIN_URL", admin_url)
        .env("TURNPIKE_ADMIN_TOKEN", token)
        .env_remove("TURNPIKE_CONFIG");
    Run(cmd.output().unwrap())
}

/// Polls `GET url` (with `headers`) until it answers `want`; returns how long that took.
pub async fn until_status(
    url: &str,
    headers: &[(&str, &str)],
    want: u16,
    patience: Duration,
) -> Duration {
    let client = Client::http1();
    let start = Instant::now();
    loop {
        let r = client.request(Method::GET, url, headers, "").await;
        if r.status.as_u16() == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < patience, "{url} never answered {want}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
