//! The binary as an operator uses it: `validate`, `serve` with SIGHUP reload and SIGTERM
//! drain, `demo`, `--version`, `--help` and JSON logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use turnpike_testkit::{Client, MockUpstream};

fn turnpike() -> Command {
    Command::new(env!("CARGO_BIN_EXE_turnpike"))
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn validate_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "ok.yaml",
        &turnpike_testkit::minimal_config("http://127.0.0.1:9000"),
    );
    let out = turnpike()
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (1 routes, 1 upstreams)"));
}

#[test]
fn validate_reports_every_error_with_its_location_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "listen: 127.0.0.1:8000\nupstreams:\n  - name: a\n    targets: [{url: \"http://127.0.0.1:9000\"}]\nroutes:\n  - name: one\n    paths: [\"/\"]\n    upstream: missing\n  - name: two\n    paths: [\"/x\"]\n    upstream: a\n    timeout: 5s\n";
    let file = write(dir.path(), "bad.yaml", yaml);
    let out = turnpike()
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:8:15:") && err.contains("missing"),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:12:5:") && err.contains("timeout"),
        "{err}"
    );
}

#[test]
fn validate_names_an_unreadable_file() {
    let out = turnpike()
        .args(["validate", "--config", "/nonexistent/turnpike.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/turnpike.yaml"));
}

#[test]
fn version_and_help_read_well() {
    let out = turnpike().arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("turnpike {}", env!("CARGO_PKG_VERSION"))
    );
    let help =
        String::from_utf8_lossy(&turnpike().arg("--help").output().unwrap().stdout).into_owned();
    for word in ["serve", "validate", "demo", "--log-format"] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    let bad = turnpike().arg("serve").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--config"));
}

/// A `turnpike serve` child whose stderr lines arrive on a channel.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Served {
    fn start(config: &Path, extra: &[&str]) -> Self {
        let mut child = turnpike()
            .args(extra)
            .args(["serve", "--no-watch", "--config"])
            .arg(config)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self { child, lines }
    }

    /// Waits for a log line containing `needle` and returns it.
    fn wait_for(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(port: u16, upstream: &str, path: &str) -> String {
    format!(
        "listen: 127.0.0.1:{port}\nupstreams:\n  - name: b\n    targets: [{{url: \"{upstream}\"}}]\nroutes:\n  - {{name: r, paths: [\"{path}\"], upstream: b}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reloads_on_sighup_and_drains_on_sigterm() {
    let up = MockUpstream::named("up").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = write(
        dir.path(),
        "turnpike.yaml",
        &config(port, &up.url(), "/old"),
    );
    let mut served = Served::start(&file, &[]);
    served.wait_for("listening");
    let client = Client::http1();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(client.get(&format!("{base}/old")).await.status, 200);

    write(
        dir.path(),
        "turnpike.yaml",
        &config(port, &up.url(), "/new"),
    );
    served.signal("-HUP");
    served.wait_for("configuration reloaded");
    assert_eq!(client.get(&format!("{base}/new")).await.status, 200);
    assert_eq!(client.get(&format!("{base}/old")).await.status, 404);

    write(dir.path(), "turnpike.yaml", "listen: [not, an, address]\n");
    served.signal("-HUP");
    let rejected = served.wait_for("configuration rejected");
    assert!(rejected.contains("still serving"), "{rejected}");
    assert_eq!(client.get(&format!("{base}/new")).await.status, 200);

    served.signal("-TERM");
    served.wait_for("stopped");
    let status = served.child.wait().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let up = MockUpstream::named("up").await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "turnpike.yaml",
        &config(free_port(), &up.url(), "/"),
    );
    let served = Served::start(&file, &["--log-format", "json"]);
    let line = served.wait_for("listening");
    let parsed: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(parsed["level"], "INFO");
    assert!(
        parsed["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_through_the_builtin_echo_upstream() {
    let port = free_port();
    let mut child = turnpike()
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.contains(&format!("http://127.0.0.1:{port}")),
        "{first}"
    );
    let resp = Client::http1()
        .get(&format!("http://127.0.0.1:{port}/users/42"))
        .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["path"], "/echo/user/42");
}

#[test]
fn validate_checks_certificate_files_too() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "listeners:\n  - name: tls\n    address: 127.0.0.1:8443\n    tls:\n      certificates:\n        - {cert: /nonexistent/cert.pem, key: /nonexistent/key.pem}\nupstreams:\n  - name: a\n    targets: [{url: \"http://127.0.0.1:9000\"}]\nroutes:\n  - {name: r, paths: [\"/\"], upstream: a}\n";
    let file = write(dir.path(), "tls.yaml", yaml);
    let out = turnpike()
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}
