//! `turnpike serve` as a process, for what the control plane does at its edges: the admin
//! listener on TLS with the CLI trusting a private CA, `turnpike services list|delete`, and
//! a node started before its PostgreSQL database exists, which serves its file alone, says
//! so in `/readyz`, and picks up the store's entities once the database answers; and a TLS
//! certificate written through the API, served by the TLS listener while the store holds
//! its private key only encrypted.
//!
//! PostgreSQL comes from `TURNPIKE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`); unreachable, that test says "skipped" and
//! passes, except under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Run, Serve, free_port};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use sqlx::{ConnectOptions, Connection, Executor};
use turnpike_testkit::{Client, MockUpstream};

const TOKEN: &str = "tpa_ctrlPlane001_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
const PATIENCE: Duration = Duration::from_secs(15);

struct Node {
    serve: Serve,
    dir: tempfile::TempDir,
    proxy: u16,
    admin: u16,
}

impl Node {
    /// Starts on a file whose `admin:` section is `admin` (indented lines after `admin:`,
    /// without `listen`), once the admin API listens.
    fn start(upstream: &str, admin_section: &str) -> Self {
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
{admin_section}"
        );
        let file = dir.path().join("gateway.yaml");
        std::fs::write(&file, yaml).unwrap();
        let node = Self {
            serve: Serve::start(&file, &[("TURNPIKE_ADMIN_TOKEN", TOKEN)]),
            dir,
            proxy,
            admin,
        };
        let deadline = Instant::now() + PATIENCE;
        while !node.logged("admin API listening") {
            let log = node.serve.log();
            assert!(Instant::now() < deadline, "the node did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    fn logged(&self, needle: &str) -> bool {
        self.serve.logged(needle)
    }

    /// Runs the CLI with the admin token and `env` in its environment.
    fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = common::turnpike();
        cmd.args(args)
            .env("TURNPIKE_ADMIN_TOKEN", TOKEN)
            .env_remove("TURNPIKE_ADMIN_URL")
            .env_remove("TURNPIKE_ADMIN_CA");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run(cmd.output().unwrap())
    }

    async fn get(&self, port: u16, path: &str) -> (u16, String) {
        let r = Client::http1()
            .get(&format!("http://127.0.0.1:{port}{path}"))
            .await;
        (r.status.as_u16(), r.text())
    }

    /// Polls `path` on `port` until it answers `want`; returns the body.
    async fn until(&self, port: u16, path: &str, want: u16) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, body) = self.get(port, path).await;
            if status == want {
                return body;
            }
            let log = self.serve.log();
            assert!(
                Instant::now() < deadline,
                "{path} never answered {want} (last {status} {body}); log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A private CA (`ca.pem`) and a server certificate it signed for `localhost` and
/// 127.0.0.1 (`admin.crt`, `admin.key`), in `dir`.
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "turnpike test admin CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("admin.crt"),
        dir.join("admin.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_talks_to_an_admin_listener_on_tls_with_a_private_ca() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(certs.path());
    let store = certs.path().join("store.db");
    let section = format!(
        "  store: \"{}\"\n  tls:\n    cert: \"{}\"\n    key: \"{}\"\n",
        store.display(),
        cert.display(),
        key.display()
    );
    let node = Node::start("http://127.0.0.1:9", &section);
    assert!(node.logged("admin API listening (TLS)"));
    let url = format!("https://localhost:{}", node.admin);
    let ca = ca.to_str().unwrap();

    let route = node.dir.path().join("route.yaml");
    std::fs::write(&route, "name: api\npaths: [/api]\nupstream: b\n").unwrap();
    let args = ["routes", "create", "-f", route.to_str().unwrap()];
    let created = node.cli(
        &args,
        &[("TURNPIKE_ADMIN_URL", &url), ("TURNPIKE_ADMIN_CA", ca)],
    );
    assert!(created.expect(0).contains("created route api"));
    let listed = node.cli(
        &[
            "routes",
            "list",
            "--admin-url",
            &url,
            "--admin-ca",
            ca,
            "--output",
            "json",
        ],
        &[],
    );
    let listed: Value = serde_json::from_str(&listed.expect(0)).unwrap();
    assert_eq!(listed[0]["name"], "api");

    // Without the CA the certificate is not trusted, and the error says what to do.
    let untrusted = node.cli(&["routes", "list", "--admin-url", &url], &[]);
    let err = untrusted.stderr();
    assert_eq!(untrusted.0.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--admin-ca") && err.contains("certificate"),
        "{err}"
    );
    // Plain HTTP to the TLS listener gets no answer it can use.
    let plain = format!("http://127.0.0.1:{}", node.admin);
    let refused = node.cli(&["routes", "list", "--admin-url", &plain], &[]);
    assert_eq!(refused.0.status.code(), Some(1), "{}", refused.stderr());
    // A CA file that does not exist is named.
    let missing = node.cli(
        &[
            "routes",
            "list",
            "--admin-url",
            &url,
            "--admin-ca",
            "/nope/ca.pem",
        ],
        &[],
    );
    assert!(
        missing.stderr().contains("/nope/ca.pem"),
        "{}",
        missing.stderr()
    );
}

#[test]
fn validate_loads_the_admin_certificate_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, _) = private_ca(dir.path());
    let yaml = format!(
        "listen: 127.0.0.1:8000\nadmin:\n  tls:\n    cert: \"{}\"\n    key: \"{}/missing.key\"\n",
        cert.display(),
        dir.path().display()
    );
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Run(common::turnpike()
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .unwrap());
    let err = out.stderr();
    assert_eq!(out.0.status.code(), Some(1), "{err}");
    assert!(
        err.contains("admin.tls.key") && err.contains("missing.key"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_list_and_delete_through_the_cli() {
    let upstream = MockUpstream::named("up").await;
    let dir = tempfile::tempdir().unwrap();
    let section = format!("  store: \"{}\"\n", dir.path().join("store.db").display());
    let node = Node::start(&upstream.url(), &section);
    let url = format!("http://127.0.0.1:{}", node.admin);
    let env = [("TURNPIKE_ADMIN_URL", url.as_str())];
    let empty = node.cli(&["services", "list"], &env);
    empty.expect(0);
    assert!(empty.stderr().contains("no services in the store"));

    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/inventory-3.1.json"
    );
    let imported = node.cli(
        &["import", "openapi", fixture, "--upstream", &upstream.url()],
        &env,
    );
    imported.expect(0);
    let table = node.cli(&["services", "list"], &env).expect(0);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("ROUTES"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("inventory") && lines[1].contains(" 3 "),
        "{table}"
    );
    let json = node
        .cli(&["services", "list", "--output", "json"], &env)
        .expect(0);
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json[0]["name"], "inventory");
    assert_eq!(
        json[0]["routes"],
        json!(["listItems", "addItem", "getItem"])
    );
    node.until(node.proxy, "/items", 200).await;

    let deleted = node
        .cli(&["services", "delete", "inventory"], &env)
        .expect(0);
    assert!(deleted.contains("deleted service inventory"), "{deleted}");
    node.until(node.proxy, "/items", 404).await;
    let gone = node.cli(&["services", "delete", "inventory"], &env);
    assert_eq!(gone.0.status.code(), Some(1));
    assert!(gone.stderr().contains("404"), "{}", gone.stderr());
}

/// The base URL of `TURNPIKE_TEST_POSTGRES`, if the server answers (else "skipped").
async fn postgres() -> Option<String> {
    let base = std::env::var("TURNPIKE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let opts: sqlx::postgres::PgConnectOptions = base.parse().unwrap();
    match tokio::time::timeout(Duration::from_secs(5), opts.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Some(base)
        }
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL not reachable and CI=true")
        }
        _ => {
            let line = "skipped: PostgreSQL not reachable\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            None
        }
    }
}

/// `base` with its database replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (scheme, rest) = base.split_once("://").unwrap();
    let authority = rest.split(['/', '?']).next().unwrap();
    format!("{scheme}://{authority}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_before_its_database_serves_its_file_then_the_store() {
    let Some(base) = postgres().await else {
        return;
    };
    let upstream = MockUpstream::named("up").await;
    let name = format!("turnpike_late_{:08x}", fastrand::u32(..));
    let store_url = with_database(&base, &name);
    let node = Node::start(&upstream.url(), &format!("  store: \"{store_url}\"\n"));
    assert!(node.logged("serving the configuration file alone"));
    node.until(node.proxy, "/file", 200).await;
    let ready = node.until(node.admin, "/readyz", 503).await;
    assert!(
        ready.contains("serving the configuration file alone") && ready.contains(&name),
        "{ready}"
    );

    let admin: sqlx::postgres::PgConnectOptions = base.parse().unwrap();
    let mut conn = admin.connect().await.unwrap();
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    // Another node (here: the store itself) writes a route before this one reconnects.
    let store = turnpike_store::Store::open(&store_url).await.unwrap();
    let route = json!({"name": "late", "paths": ["/late"], "upstream": "b"});
    store.create("routes", "late", route, "test").await.unwrap();
    store.close().await;

    node.until(node.proxy, "/late", 200).await;
    let ready = node.until(node.admin, "/readyz", 200).await;
    assert!(ready.contains("\"ok\""), "{ready}");
    // The bootstrap token is created once the database answers (retried every second).
    let url = format!("http://127.0.0.1:{}/api/v1/routes", node.admin);
    let auth = format!("Bearer {TOKEN}");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = Client::http1()
            .request(http::Method::GET, &url, &[("authorization", &auth)], "")
            .await;
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{} {}", r.status, r.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(node);
    conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
}

/// Completes a TLS handshake with `127.0.0.1:port` sending `name` as SNI, trusting only
/// `root`: it succeeds only if the gateway serves that certificate for the name.
fn handshake(port: u16, name: &str, root: &str) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(root.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), server).unwrap();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_written_through_the_api_is_served_and_stored_encrypted() {
    let files = tempfile::tempdir().unwrap();
    let file_cert = rcgen::generate_simple_self_signed(vec!["file.example.test".into()]).unwrap();
    let (cert_path, key_path) = (files.path().join("file.pem"), files.path().join("file.key"));
    std::fs::write(&cert_path, file_cert.cert.pem()).unwrap();
    std::fs::write(&key_path, file_cert.signing_key.serialize_pem()).unwrap();
    let (store, tls) = (files.path().join("store.db"), free_port());
    // Lines after `admin:`: its keys, then a TLS listener at the top level.
    let section = format!(
        "  store: \"{}\"\n  secrets_key: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\
         listeners:\n  - name: tls\n    address: 127.0.0.1:{tls}\n    tls:\n      \
         certificates: [{{cert: \"{}\", key: \"{}\"}}]\n",
        store.display(),
        cert_path.display(),
        key_path.display()
    );
    let node = Node::start("http://127.0.0.1:9", &section);
    let api = rcgen::generate_simple_self_signed(vec!["api.example.test".into()]).unwrap();
    let (cert, key) = (api.cert.pem(), api.signing_key.serialize_pem());
    let body = json!({"name": "api", "cert": cert, "key": key, "hosts": ["api.example.test"]});
    let r = Client::http1()
        .request(
            http::Method::POST,
            &format!("http://127.0.0.1:{}/api/v1/certificates", node.admin),
            &[
                ("authorization", &format!("Bearer {TOKEN}")),
                ("content-type", "application/json"),
            ],
            &body.to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // Served within a second or so, decrypted from the store.
    let deadline = Instant::now() + PATIENCE;
    while let Err(e) = handshake(tls, "api.example.test", &cert) {
        let log = node.serve.log();
        assert!(Instant::now() < deadline, "not served: {e}; log:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handshake(tls, "file.example.test", &file_cert.cert.pem()).unwrap();
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(files.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("store.db") {
            raw.extend(std::fs::read(path).unwrap());
        }
    }
    let raw = String::from_utf8_lossy(&raw);
    assert!(
        raw.contains(cert.lines().nth(1).unwrap()),
        "not the store's files"
    );
    assert!(!raw.contains("PRIVATE KEY") && !raw.contains(key.lines().nth(1).unwrap()));
    assert!(!node.serve.log().contains("AAECAwQFBgcICQoLDA0O"));
}
