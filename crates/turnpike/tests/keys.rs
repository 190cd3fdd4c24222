//! `turnpike keys ...`, `hash-password` and `secret generate` as an operator uses them:
//! keys made by the CLI authenticate through a running `turnpike serve`, which follows
//! revocations and rotations in the keys file without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use http::Method;
use turnpike_testkit::{Client, MockUpstream};

const SECRET: &str = "keys-test-secret-0123456789abcdef";

fn turnpike() -> Command {
    Command::new(env!("CARGO_BIN_EXE_turnpike"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temp dir holding `turnpike.yaml` (consumers alice and bob, `/api` behind key auth)
/// and, when `keys_file` is set, naming `keys.json` beside it.
struct Setup {
    dir: tempfile::TempDir,
    port: u16,
}

impl Setup {
    fn new(upstream: &str, keys_file: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let keys = if keys_file {
            format!("  keys_file: {}\n", dir.path().join("keys.json").display())
        } else {
            String::new()
        };
        let yaml = format!(
            "listen: 127.0.0.1:{port}
auth:
  key_secret: {SECRET}
{keys}consumers:
  - name: alice
  - name: bob
    keys:
      - {{id: inlinekey01, hash: \"hmac-sha256:{zeros}\"}}
upstreams:
  - name: echo
    targets: [{{url: \"{upstream}\"}}]
routes:
  - name: api
    paths: [/api]
    upstream: echo
    auth: {{methods: [key_auth]}}
",
            zeros = "0".repeat(64)
        );
        std::fs::write(dir.path().join("turnpike.yaml"), yaml).unwrap();
        Self { dir, port }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("turnpike.yaml")
    }

    fn keys_json(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.path().join("keys.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Runs `turnpike keys <args> --config turnpike.yaml`.
    fn keys(&self, args: &[&str]) -> Output {
        turnpike()
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(self.config())
            .output()
            .unwrap()
    }

    /// `keys create` (or `rotate`) that must succeed; returns the printed key.
    fn new_key(&self, args: &[&str]) -> String {
        let out = self.keys(args);
        assert!(out.status.success(), "{}", stderr(&out));
        let key = stdout(&out).trim().to_owned();
        assert!(key.starts_with("tp_") && !key.contains('\n'), "{key}");
        assert!(stderr(&out).contains("only time"), "{}", stderr(&out));
        key
    }

    async fn status(&self, key: &str) -> u16 {
        let url = format!("http://127.0.0.1:{}/api", self.port);
        let resp = Client::http1()
            .request(Method::GET, &url, &[("x-api-key", key)], "")
            .await;
        resp.status.as_u16()
    }

    /// Waits until `key` gets `want`: the watcher polls once a second.
    async fn wait_status(&self, key: &str, want: u16) {
        let start = Instant::now();
        loop {
            let got = self.status(key).await;
            if got == want {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{key}: still {got}, expected {want}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `turnpike serve` (watching its files) until dropped.
struct Served(Child);

impl Served {
    fn start(config: &Path) -> Self {
        // Owned by `Self` at once, so a failed start still kills and reaps it.
        let mut served = Self(
            turnpike()
                .args(["serve", "--config"])
                .arg(config)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let (tx, rx) = mpsc::channel();
        let lines = BufReader::new(served.0.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("gateway did not start");
            if line.contains("listening") {
                return served;
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_key_works_and_stops_working_when_revoked() {
    let up = MockUpstream::echo().await;
    let setup = Setup::new(&up.url(), true);
    let before = setup.new_key(&["create", "--consumer", "alice"]);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(setup.dir.path().join("keys.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o600,
        "the keys file is readable by its owner only"
    );
    let _gw = Served::start(&setup.config());
    assert_eq!(setup.status(&before).await, 200);
    assert_eq!(setup.status("tp_wrongwrong1_x").await, 401);

    // Created while the gateway runs: picked up from the keys file.
    let during = setup.new_key(&["create", "--consumer", "alice", "--expires-in", "90d"]);
    setup.wait_status(&during, 200).await;

    let id = setup.keys_json()["keys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = setup.keys(&["revoke", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("Revoked key {id}")));
    setup.wait_status(&before, 401).await;
    assert_eq!(setup.status(&during).await, 200);

    let again = setup.keys(&["revoke", &id]);
    assert!(again.status.success());
    assert!(
        stdout(&again).contains("already revoked"),
        "{}",
        stdout(&again)
    );
    // The whole key names its id too (handy when a key has leaked).
    let out = setup.keys(&["revoke", &during]);
    assert!(out.status.success(), "{}", stderr(&out));
    setup.wait_status(&during, 401).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_overlaps_with_its_replacement() {
    let up = MockUpstream::echo().await;
    let setup = Setup::new(&up.url(), true);
    let old = setup.new_key(&["create", "--consumer", "bob"]);
    let _gw = Served::start(&setup.config());
    let old_id = old[3..15].to_owned();
    let new = setup.new_key(&["rotate", &old_id, "--overlap", "1h"]);
    setup.wait_status(&new, 200).await;
    assert_eq!(
        setup.status(&old).await,
        200,
        "the old key works during the overlap"
    );

    let keys = setup.keys_json();
    let entries = keys["keys"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["consumer"], "bob");
    assert!(entries[1].get("expires_at").is_none());
    let expires: jiff::Timestamp = entries[0]["expires_at"].as_str().unwrap().parse().unwrap();
    let in_an_hour = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    assert!(
        in_an_hour.duration_since(expires).abs() < jiff::SignedDuration::from_secs(60),
        "{expires}"
    );

    // An overlap never extends a key that expires sooner.
    let short = setup.new_key(&["create", "--consumer", "bob", "--expires-in", "2h"]);
    let short_id = short[3..15].to_owned();
    let before = setup.keys_json()["keys"][2]["expires_at"].clone();
    let out = setup.keys(&["rotate", &short_id, "--overlap", "7d", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(printed["replaces"], short_id.as_str());
    assert_eq!(printed["old_expires_at"], before);
    assert_eq!(setup.keys_json()["keys"][2]["expires_at"], before);
    assert!(stderr(&out).contains("not extended"), "{}", stderr(&out));
    setup
        .wait_status(printed["key"].as_str().unwrap(), 200)
        .await;

    // A revoked key cannot be rotated back to life.
    setup.keys(&["revoke", &short_id]);
    let out = setup.keys(&["rotate", &short_id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is revoked"), "{}", stderr(&out));
}

#[test]
fn list_shows_ids_and_status_but_never_hashes_or_keys() {
    let setup = Setup::new("http://127.0.0.1:9", true);
    let out = setup.keys(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("No keys"), "{}", stderr(&out));

    let a = setup.new_key(&["create", "--consumer", "alice", "--expires-in", "1d"]);
    let b = setup.new_key(&["create", "--consumer", "bob", "--output", "text"]);
    setup.keys(&["revoke", &b[3..15]]);
    let text = stdout(&setup.keys(&["list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATUS"),
        "{text}"
    );
    assert!(
        lines[1].contains(&a[3..15]) && lines[1].ends_with("active"),
        "{text}"
    );
    assert!(
        lines[2].contains("bob") && lines[2].ends_with("revoked"),
        "{text}"
    );
    let hash = setup.keys_json()["keys"][0]["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    for secret in [a.as_str(), b.as_str(), "hmac-sha256", &hash[12..]] {
        assert!(!text.contains(secret), "list printed {secret}");
    }

    let json = stdout(&setup.keys(&["list", "--consumer", "alice", "--output", "json"]));
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 1);
    assert_eq!(parsed[0]["consumer"], "alice");
    assert_eq!(parsed[0]["status"], "active");
    assert!(
        parsed[0].get("hash").is_none() && !json.contains("hmac"),
        "{json}"
    );

    let out = setup.keys(&["create", "--consumer", "carol", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let created: serde_json::Value = serde_json::from_str(&stdout(&setup.keys(&[
        "create",
        "--consumer",
        "alice",
        "--output",
        "json",
    ])))
    .unwrap();
    assert!(created["key"].as_str().unwrap().starts_with("tp_"));
    assert_eq!(created["consumer"], "alice");
}

#[test]
fn mistakes_get_specific_errors_and_exit_1() {
    let setup = Setup::new("http://127.0.0.1:9", true);
    let fails = |args: &[&str], needles: &[&str]| {
        let out = setup.keys(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
        }
        assert!(stdout(&out).is_empty(), "{args:?}");
    };
    fails(
        &["create", "--consumer", "carol"],
        &["unknown consumer `carol`", "alice, bob"],
    );
    fails(&["list", "--consumer", "carol"], &["unknown consumer"]);
    fails(
        &["revoke", "nosuchkey123"],
        &["unknown key id `nosuchkey123`", "keys list"],
    );
    fails(&["rotate", "nosuchkey123"], &["unknown key id"]);
    fails(
        &["revoke", "inlinekey01"],
        &["consumer `bob`", "consumers[].keys"],
    );
    // A value clap cannot parse is a usage error (exit 2, like every other one).
    let out = setup.keys(&["create", "--consumer", "alice", "--expires-in", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid duration"),
        "{}",
        stderr(&out)
    );

    let without = Setup::new("http://127.0.0.1:9", false);
    let out = without.keys(&["create", "--consumer", "alice"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has no `auth.keys_file`"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("keys_file: "), "{}", stderr(&out));

    let empty = tempfile::tempdir().unwrap();
    let out = turnpike()
        .args(["keys", "list"])
        .current_dir(empty.path())
        .env_remove("TURNPIKE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("turnpike.yaml"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--config"), "{}", stderr(&out));
}

fn with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = turnpike()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn hash_password_and_secret_generate_print_usable_hashes() {
    let out = with_stdin(&["hash-password"], "correct horse\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let hash = stdout(&out).trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(turnpike_policy::password::verify(&hash, "correct horse"));
    assert!(!stdout(&out).contains("correct horse"));

    let out = with_stdin(&["hash-password"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no password"), "{}", stderr(&out));

    let out = turnpike().args(["secret", "generate"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let (secret, hash) = (field("secret:"), field("hash:"));
    assert_eq!(secret.len(), 43, "32 bytes in base64url: {secret}");
    assert!(turnpike_policy::password::verify(&hash, &secret));

    let out = turnpike()
        .args(["secret", "generate", "--output", "json"])
        .output()
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (secret2, hash2) = (
        parsed["secret"].as_str().unwrap(),
        parsed["hash"].as_str().unwrap(),
    );
    assert_ne!(secret2, secret);
    assert!(turnpike_policy::password::verify(hash2, secret2));
}

#[test]
fn secret_store_key_prints_a_key_the_config_accepts() {
    let out = turnpike().args(["secret", "store-key"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out).trim().to_owned();
    assert_eq!(key.len(), 44, "32 bytes in padded base64: {key}");
    assert!(turnpike_config::model::secrets_key_bytes(&key).is_ok());
    assert!(
        stderr(&out).contains("admin.secrets_key"),
        "{}",
        stderr(&out)
    );

    let out = turnpike()
        .args(["secret", "store-key", "--output", "json"])
        .output()
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let other = parsed["key"].as_str().unwrap();
    assert_ne!(other, key);
    assert!(turnpike_config::model::secrets_key_bytes(other).is_ok());
}
