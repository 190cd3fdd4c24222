//! mTLS: client certificates verified on a listener (required, or optional and then
//! required by routes with the `mtls` method) and mapped to consumers; upstreams reached
//! over TLS verified against their own CA, presenting a client certificate (for proxied
//! requests and active health checks); start errors that name unusable files.
//!
//! Every test makes its own CAs and certificates (rcgen) in a temp dir.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::SanType;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use turnpike_proxy::Gateway;
use turnpike_testkit::{MockUpstream, TestGateway};

use crate::certs::{Ca, Leaf, TlsUpstream, new_ca};

/// The gateway's server certificate and the CAs every listener test uses.
struct Pki {
    dir: tempfile::TempDir,
    server_ca: Ca,
    server: Leaf,
    clients_ca: Ca,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = new_ca(dir.path(), "server-ca");
    let server = server_ca.issue(
        dir.path(),
        "gateway",
        ("Gateway", "gateway.test"),
        &["gateway.test"],
        false,
    );
    let clients_ca = new_ca(dir.path(), "clients-ca");
    Pki {
        dir,
        server_ca,
        server,
        clients_ca,
    }
}

/// A TLS listener with `client_auth`, consumers mapped by subject and by DNS name, a
/// route that needs `mtls` and one that does not.
fn listener_config(pki: &Pki, required: bool) -> String {
    format!(
        "listeners:
  - name: secure
    address: 127.0.0.1:0
    http2: false
    tls:
      certificates:
        - {{cert: \"{}\", key: \"{}\"}}
      client_auth: {{ca: \"{}\", required: {required}}}
consumers:
  - name: alice
    groups: [staff]
    certificates: [\"CN=alice,O=Example\"]
  - name: billing
    certificates: [\"dns:billing.internal.test\"]
upstreams:
  - name: echo
    targets: [{{url: \"{{upstream}}\"}}]
routes:
  - name: api
    paths: [/api]
    upstream: echo
    auth: {{methods: [mtls]}}
  - name: open
    paths: [/open]
    upstream: echo
",
        pki.server.cert.display(),
        pki.server.key.display(),
        pki.clients_ca.pem.display()
    )
}

/// A client that trusts `root` and presents `cert`, if any.
fn client(root: &Ca, cert: Option<&Leaf>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(root.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match cert {
        Some(leaf) => builder
            .with_client_auth_cert(vec![leaf.der.clone()], leaf.private_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// What one request over TLS got back.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: serde_json::Value,
}

/// Handshake and one GET. A refused client certificate may surface in the handshake or,
/// with TLS 1.3 (where the client finishes first), on the first read: both are `Err`.
async fn try_get(addr: SocketAddr, cfg: Arc<ClientConfig>, path: &str) -> Result<Answer, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("gateway.test").unwrap();
    let tls = TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header(header::HOST, "gateway.test")
        .body(Full::<Bytes>::default())
        .unwrap();
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let body =
        serde_json::from_slice(&body).unwrap_or_else(|_| String::from_utf8_lossy(&body).into());
    Ok(Answer { status, body })
}

async fn get(addr: SocketAddr, cfg: Arc<ClientConfig>, path: &str) -> Answer {
    try_get(addr, cfg, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
}

async fn start(yaml: &str) -> (TestGateway, MockUpstream) {
    let up = MockUpstream::echo().await;
    let gw = TestGateway::start(&yaml.replace("{upstream}", &up.url())).await;
    (gw, up)
}

#[tokio::test]
async fn a_required_client_certificate_is_verified_and_names_the_consumer() {
    let pki = pki();
    let dir = pki.dir.path();
    let alice = pki
        .clients_ca
        .issue(dir, "alice", ("Example", "alice"), &[], true);
    let billing = pki.clients_ca.issue(
        dir,
        "billing",
        ("Example", "billing-7"),
        &["Billing.Internal.test"],
        true,
    );
    let rogue_ca = new_ca(dir, "rogue-ca");
    let forged = rogue_ca.issue(dir, "forged", ("Example", "alice"), &[], true);
    let (gw, up) = start(&listener_config(&pki, true)).await;

    let err = try_get(gw.addr, client(&pki.server_ca, None), "/open").await;
    assert!(err.is_err(), "no certificate must be refused: {err:?}");
    let err = try_get(gw.addr, client(&pki.server_ca, Some(&forged)), "/open").await;
    assert!(
        err.is_err(),
        "a certificate from another CA must be refused: {err:?}"
    );
    assert_eq!(up.hits(), 0);

    let answer = get(gw.addr, client(&pki.server_ca, Some(&alice)), "/api/me").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = &answer.body["headers"];
    assert_eq!(seen["x-consumer-id"], "alice", "{answer:?}");
    assert_eq!(seen["x-consumer-groups"], "staff");
    assert_eq!(seen["x-credential-id"], "CN=alice,O=Example");

    let answer = get(gw.addr, client(&pki.server_ca, Some(&billing)), "/api/me").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.body["headers"]["x-consumer-id"], "billing",
        "matched by DNS name"
    );
    assert_eq!(
        answer.body["headers"]["x-credential-id"],
        "CN=billing-7,O=Example"
    );
}

#[tokio::test]
async fn an_optional_client_certificate_is_required_by_mtls_routes() {
    let pki = pki();
    let dir = pki.dir.path();
    let alice = pki
        .clients_ca
        .issue(dir, "alice", ("Example", "alice"), &[], true);
    let stranger = pki.clients_ca.issue(
        dir,
        "stranger",
        ("Example", "mallory"),
        &["mallory.test"],
        true,
    );
    let forged = new_ca(dir, "rogue-ca").issue(dir, "forged", ("Example", "alice"), &[], true);
    let (gw, up) = start(&listener_config(&pki, false)).await;
    let anonymous = client(&pki.server_ca, None);

    let open = get(gw.addr, anonymous.clone(), "/open").await;
    assert_eq!(
        open.status, 200,
        "no certificate is fine where no route asks for one"
    );
    assert!(open.body["headers"].get("x-consumer-id").is_none());
    let api = get(gw.addr, anonymous, "/api").await;
    assert_eq!(api.status, 401, "{api:?}");
    assert_eq!(api.body["error"]["code"], "unauthorized");

    let api = get(gw.addr, client(&pki.server_ca, Some(&alice)), "/api").await;
    assert_eq!(api.status, 200, "{api:?}");
    assert_eq!(api.body["headers"]["x-consumer-id"], "alice");

    let api = get(gw.addr, client(&pki.server_ca, Some(&stranger)), "/api").await;
    assert_eq!(
        api.status, 401,
        "a valid certificate of no consumer: {api:?}"
    );

    // Optional means "may be absent", not "may be invalid".
    let err = try_get(gw.addr, client(&pki.server_ca, Some(&forged)), "/open").await;
    assert!(
        err.is_err(),
        "a certificate from another CA must be refused: {err:?}"
    );
    assert_eq!(up.hits(), 2);
}

/// A listener that requires a certificate from the CAs in `ca`, the given `consumers:`
/// entries and a route that needs `mtls`.
fn consumers_config(pki: &Pki, ca: &Path, consumers: &str) -> String {
    format!(
        "listeners:
  - name: secure
    address: 127.0.0.1:0
    http2: false
    tls:
      certificates:
        - {{cert: \"{}\", key: \"{}\"}}
      client_auth: {{ca: \"{}\"}}
consumers:
{consumers}upstreams:
  - name: echo
    targets: [{{url: \"{{upstream}}\"}}]
routes:
  - {{name: api, paths: [/api], upstream: echo, auth: {{methods: [mtls]}}}}
",
        pki.server.cert.display(),
        pki.server.key.display(),
        ca.display()
    )
}

/// The consumer a certificate gets on an `mtls` route, or the status when it gets none.
async fn consumer_of(gw: &TestGateway, pki: &Pki, leaf: &Leaf) -> Result<String, u16> {
    let answer = get(gw.addr, client(&pki.server_ca, Some(leaf)), "/api").await;
    match answer.status {
        200 => Ok(answer.body["headers"]["x-consumer-id"]
            .as_str()
            .unwrap()
            .to_owned()),
        status => Err(status),
    }
}

#[tokio::test]
async fn typed_entries_match_only_their_kind_of_name() {
    let pki = pki();
    let dir = pki.dir.path();
    let ca = &pki.clients_ca;
    // The impersonation the typed entries stop: an email SAN whose text is alice's subject.
    let email = SanType::Rfc822Name("CN=alice,O=Example".try_into().unwrap());
    let mallory = ca.issue_with(dir, "mallory", ("Example", "mallory"), vec![email], true);
    let parsed = turnpike_policy::mtls::client_cert(&mallory.der).unwrap();
    assert_eq!(parsed.subject, "CN=mallory,O=Example");
    let svc = ca.issue(
        dir,
        "svc",
        ("Example", "svc-7"),
        &["Svc.Internal.test"],
        true,
    );
    // A subject CN that reads like the DNS entry is not a DNS name.
    let cn_only = ca.issue(dir, "cn-only", ("Example", "svc.internal.test"), &[], true);
    let robot = ca.issue(dir, "robot", ("Example", "robot"), &[], true);
    let robot_again = ca.issue(dir, "robot-again", ("Example", "robot"), &[], true);
    let fingerprint = ring::digest::digest(&ring::digest::SHA256, &robot.der);
    let fingerprint: String = fingerprint
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let consumers = format!(
        "  - {{name: alice, certificates: [\"CN=alice,O=Example\"]}}
  - {{name: svc, certificates: [\"dns:svc.internal.test\"]}}
  - {{name: robot, certificates: [\"sha256:{fingerprint}\"]}}
"
    );
    let (gw, up) = start(&consumers_config(&pki, &ca.pem, &consumers)).await;

    assert_eq!(consumer_of(&gw, &pki, &mallory).await, Err(401));
    assert_eq!(consumer_of(&gw, &pki, &svc).await.as_deref(), Ok("svc"));
    assert_eq!(consumer_of(&gw, &pki, &cn_only).await, Err(401));
    assert_eq!(consumer_of(&gw, &pki, &robot).await.as_deref(), Ok("robot"));
    assert_eq!(
        consumer_of(&gw, &pki, &robot_again).await,
        Err(401),
        "the same subject with another key is another certificate"
    );
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn certificate_issuer_pins_the_consumer_to_one_of_the_trusted_cas() {
    let pki = pki();
    let dir = pki.dir.path();
    let partner_ca = new_ca(dir, "partner-ca");
    // One bundle, two CAs: both can sign any subject.
    let bundle = dir.join("bundle.pem");
    let pems = [&pki.clients_ca.pem, &partner_ca.pem].map(|p| std::fs::read_to_string(p).unwrap());
    std::fs::write(&bundle, pems.concat()).unwrap();
    let consumers = "  - name: alice
    certificates: [\"CN=alice,O=Example\"]
    certificate_issuer: \"CN=clients-ca test CA\"
  - {name: bob, certificates: [\"CN=bob,O=Example\"]}
";
    let (gw, _up) = start(&consumers_config(&pki, &bundle, consumers)).await;
    let alice = pki
        .clients_ca
        .issue(dir, "alice", ("Example", "alice"), &[], true);
    let forged = partner_ca.issue(dir, "forged", ("Example", "alice"), &[], true);
    let bob = partner_ca.issue(dir, "bob", ("Example", "bob"), &[], true);

    assert_eq!(consumer_of(&gw, &pki, &alice).await.as_deref(), Ok("alice"));
    assert_eq!(
        consumer_of(&gw, &pki, &forged).await,
        Err(401),
        "alice's subject from the other trusted CA"
    );
    // Without a pin, every CA of the bundle is trusted for the consumer.
    assert_eq!(consumer_of(&gw, &pki, &bob).await.as_deref(), Ok("bob"));
}

/// A plain listener in front of `upstream` (an https URL) with the given `tls:` lines.
fn upstream_config(url: &str, tls: &str, health: &str) -> String {
    format!(
        "listen: 127.0.0.1:0
server: {{workers: 1}}
upstreams:
  - name: secure
    retries: {{attempts: 0}}
    targets: [{{url: \"{url}\"}}]
{tls}{health}routes:
  - {{name: all, paths: [\"/\"], upstream: secure}}
"
    )
}

/// The gateway's side of upstream TLS: the CA that signed the upstream's certificate,
/// the CA the upstream trusts for clients, and the gateway's client certificate.
struct UpstreamPki {
    /// Holds the files until the test ends.
    _dir: tempfile::TempDir,
    upstream_ca: Ca,
    gateway_client: Leaf,
    upstream: TlsUpstream,
}

async fn upstream_pki() -> UpstreamPki {
    let dir = tempfile::tempdir().unwrap();
    let upstream_ca = new_ca(dir.path(), "upstream-ca");
    let server = upstream_ca.issue(
        dir.path(),
        "upstream",
        ("Backend", "backend"),
        &["127.0.0.1"],
        false,
    );
    let clients_ca = new_ca(dir.path(), "backend-clients-ca");
    let gateway_client =
        clients_ca.issue(dir.path(), "gw-client", ("Turnpike", "gateway"), &[], true);
    let upstream = TlsUpstream::start(&server, &clients_ca).await;
    UpstreamPki {
        _dir: dir,
        upstream_ca,
        gateway_client,
        upstream,
    }
}

impl UpstreamPki {
    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.upstream.addr.port())
    }

    fn tls(&self, client_cert: bool) -> String {
        let mut tls = format!(
            "    tls:\n      ca: \"{}\"\n",
            self.upstream_ca.pem.display()
        );
        if client_cert {
            tls.push_str(&format!(
                "      client_cert: \"{}\"\n      client_key: \"{}\"\n",
                self.gateway_client.cert.display(),
                self.gateway_client.key.display()
            ));
        }
        tls
    }
}

#[tokio::test]
async fn an_https_upstream_is_verified_against_its_ca_and_sees_the_client_certificate() {
    let p = upstream_pki().await;
    let yaml = upstream_config(&p.url(), &p.tls(true), "");
    let gw = TestGateway::start(&yaml).await;
    let resp = gw.get("/hello").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), "ok");
    assert_eq!(
        p.upstream.seen(),
        [("/hello".to_owned(), "CN=gateway,O=Turnpike".to_owned())]
    );

    // A reload with the same files keeps the TLS settings and so the pooled connection.
    gw.gateway.reload(&parse(&yaml)).unwrap();
    assert_eq!(gw.get("/again").await.status, 200);
    assert_eq!(
        p.upstream.connections.load(Ordering::SeqCst),
        1,
        "the pooled connection is reused"
    );

    // The system's roots do not trust the test CA.
    let without = TestGateway::start(&upstream_config(&p.url(), "", "")).await;
    let resp = without.get("/hello").await;
    assert_eq!(resp.status, 502, "{}", resp.text());
    // The CA alone is not enough: the upstream wants a client certificate.
    let no_cert = TestGateway::start(&upstream_config(&p.url(), &p.tls(false), "")).await;
    let resp = no_cert.get("/hello").await;
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert_eq!(
        p.upstream.seen().len(),
        2,
        "only the requests with a client certificate arrived"
    );
}

#[tokio::test]
async fn active_health_checks_use_the_upstream_tls_settings() {
    let p = upstream_pki().await;
    let health = "    health:\n      active: {path: /healthz, interval: 50ms, timeout: 1s}\n";
    let _gw = TestGateway::start(&upstream_config(&p.url(), &p.tls(true), health)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !p.upstream.seen().iter().any(|(path, _)| path == "/healthz") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no health probe arrived over TLS"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, subject) = p
        .upstream
        .seen()
        .into_iter()
        .find(|(path, _)| path == "/healthz")
        .unwrap();
    assert_eq!(subject, "CN=gateway,O=Turnpike");
}

fn parse(yaml: &str) -> turnpike_config::Config {
    turnpike_config::load_str(yaml, Path::new("test.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("invalid config:\n{e}"))
}

// Not a tokio test: `Gateway::start` failing inside async code panics while dropping its
// control runtime, which would hide the error under test.
#[test]
fn unusable_ca_and_client_certificate_files_stop_the_start_and_name_the_file() {
    let pki = pki();
    let dir = pki.dir.path();
    let not_pem = dir.join("notes.txt");
    std::fs::write(&not_pem, "this is not a PEM file\n").unwrap();
    let missing = dir.join("missing.pem");
    let start_error = |yaml: String| {
        Gateway::start(&parse(&yaml.replace("{upstream}", "http://127.0.0.1:9")))
            .expect_err("the gateway must refuse to start")
            .to_string()
    };
    let with_ca = |ca: &Path| {
        listener_config(&pki, true).replace(
            &*pki.clients_ca.pem.to_string_lossy(),
            &ca.to_string_lossy(),
        )
    };

    for bad in [&missing, &not_pem] {
        let msg = start_error(with_ca(bad));
        assert!(
            msg.contains("listener secure") && msg.contains(&*bad.to_string_lossy()),
            "{msg}"
        );
    }

    let leaf = pki
        .clients_ca
        .issue(dir, "gw", ("Turnpike", "gateway"), &[], true);
    let upstream = |tls: String| upstream_config("https://127.0.0.1:9", &tls, "");
    let msg = start_error(upstream(format!(
        "    tls: {{ca: \"{}\"}}\n",
        not_pem.display()
    )));
    assert!(
        msg.contains("upstream secure") && msg.contains(&*not_pem.to_string_lossy()),
        "{msg}"
    );
    let msg = start_error(upstream(format!(
        "    tls: {{client_cert: \"{}\", client_key: \"{}\"}}\n",
        leaf.cert.display(),
        missing.display()
    )));
    assert!(
        msg.contains("upstream secure") && msg.contains(&*missing.to_string_lossy()),
        "{msg}"
    );
    // A key that is not the certificate's.
    let msg = start_error(upstream(format!(
        "    tls: {{client_cert: \"{}\", client_key: \"{}\"}}\n",
        leaf.cert.display(),
        pki.server.key.display()
    )));
    assert!(msg.contains(&*leaf.cert.to_string_lossy()), "{msg}");
}
