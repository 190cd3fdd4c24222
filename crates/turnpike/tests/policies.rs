//! The global policies through the admin API and the CLI, against a real `turnpike serve`
//! on SQLite: `turnpike policies set` of an IP deny rule turns the gateway's answers into
//! 403 within a second, `config export | diff | push` carry the policies, and a push of a
//! file without them (or `policies delete`) lets requests through again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Run, Serve, free_port, until_status};
use turnpike_testkit::MockUpstream;

const TOKEN: &str = "tpa_policiesT001_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
const PATIENCE: Duration = Duration::from_secs(10);
/// How soon an admin write must show on the gateway.
const PROPAGATION: Duration = Duration::from_secs(1);

/// A `turnpike serve` process with the file-defined route `/file` and no `policies:`.
struct Node {
    _serve: Serve,
    dir: tempfile::TempDir,
    proxy: u16,
    admin: u16,
}

impl Node {
    fn start(upstream: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (proxy, admin) = (free_port(), free_port());
        let yaml = format!(
            "listen: 127.0.0.1:{proxy}
upstreams:
  - name: b
    targets: [{{url: \"{upstream}\"}}]
routes:
  - {{name: file-route, paths: [/file], upstream: b}}
admin:
  listen: 127.0.0.1:{admin}
  store: \"{}\"
",
            dir.path().join("store.db").display()
        );
        let file = dir.path().join("gateway.yaml");
        std::fs::write(&file, yaml).unwrap();
        let node = Self {
            _serve: Serve::start(&file, &[("TURNPIKE_ADMIN_TOKEN", TOKEN)]),
            dir,
            proxy,
            admin,
        };
        let deadline = Instant::now() + PATIENCE;
        while node.cli(&["policies", "get"]).code() != 0 {
            assert!(Instant::now() < deadline, "the node did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn cli(&self, args: &[&str]) -> Run {
        common::cli(&format!("http://127.0.0.1:{}", self.admin), TOKEN, args)
    }

    /// Polls `path` until it answers `want`; returns how long that took.
    async fn until(&self, path: &str, want: u16) -> Duration {
        let url = format!("http://127.0.0.1:{}{path}", self.proxy);
        until_status(&url, &[], want, PATIENCE).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_deny_rule_set_through_the_cli_applies_within_a_second() {
    let up = MockUpstream::named("up").await;
    let node = Node::start(&up.url());
    node.until("/file", 200).await;
    let none = node.cli(&["policies", "get"]);
    assert_eq!(none.expect(0), "{}\n");
    assert!(none.stderr().contains("none"), "{}", none.stderr());

    let deny = node.file("deny.yaml", "ip_rules:\n  deny: [127.0.0.1/32]\n");
    let set = node.cli(&["policies", "set", "-f", deny.to_str().unwrap()]);
    assert_eq!(set.expect(0), "stored the global policies (revision 1)\n");
    let took = node.until("/file", 403).await;
    assert!(took < PROPAGATION, "the deny rule took {took:?}");

    let got = node.cli(&["policies", "get"]);
    assert!(got.expect(0).contains("127.0.0.1/32"), "{}", got.stdout());
    assert!(
        got.stderr().contains("from the store, revision 1"),
        "{}",
        got.stderr()
    );
    // A stale revision is refused with the API's answer, and changes nothing.
    let stale = node.cli(&[
        "policies",
        "set",
        "-f",
        deny.to_str().unwrap(),
        "--if-revision",
        "7",
    ]);
    stale.expect(1);
    assert!(stale.stderr().contains("412"), "{}", stale.stderr());
    // A mistake is named at its field.
    let bad = node.file("bad.yaml", "ip_rules:\n  deny: [nowhere]\n");
    let refused = node.cli(&["policies", "set", "-f", bad.to_str().unwrap()]);
    refused.expect(1);
    assert!(
        refused.stderr().contains("ip_rules.deny[0]"),
        "{}",
        refused.stderr()
    );

    // Export carries them; the export pushed back changes nothing.
    let export = node.cli(&["config", "export"]).expect(0);
    assert!(export.contains("policies:"), "{export}");
    assert!(export.contains("127.0.0.1/32"), "{export}");
    let exported = node.file("exported.yaml", &export);
    node.cli(&["config", "diff", exported.to_str().unwrap()])
        .expect(0);
    assert_eq!(
        node.cli(&["config", "push", exported.to_str().unwrap()])
            .expect(0),
        "no changes\n"
    );

    // A file without `policies` deletes them, like any entity it lacks.
    let empty = node.file("empty.yaml", "upstreams: []\n");
    let diff = node
        .cli(&["config", "diff", empty.to_str().unwrap()])
        .expect(2);
    assert_eq!(diff, "delete global policies\n1 to delete\n");
    let pushed = node
        .cli(&["config", "push", empty.to_str().unwrap()])
        .expect(0);
    assert_eq!(pushed, "deleted global policies\n1 deleted\n");
    let took = node.until("/file", 200).await;
    assert!(took < PROPAGATION, "the delete took {took:?}");

    // And back through a push, then `policies delete`.
    node.cli(&["config", "push", exported.to_str().unwrap()])
        .expect(0);
    node.until("/file", 403).await;
    let deleted = node.cli(&["policies", "delete"]).expect(0);
    assert_eq!(deleted, "deleted the store's global policies\n");
    node.until("/file", 200).await;
}
