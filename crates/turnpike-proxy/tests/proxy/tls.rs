//! TLS termination: HTTPS through the gateway, certificates chosen by SNI (exact names,
//! `*.wildcards`, names inside certificates listed without `hosts`, the first one as
//! default), ALPN for HTTP/2 and HTTP/1.1, TLS 1.2 and 1.3 only, clear start errors for
//! unusable certificate files, and certificates swapped by a reload.
//!
//! Every test makes its own self-signed certificates (rcgen) in a temp dir; the client
//! trusts exactly those, so a handshake that succeeds also proves which certificate the
//! gateway served, and tests compare the served leaf's bytes as well.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode, Version, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use turnpike_proxy::Gateway;
use turnpike_testkit::{Client, MockUpstream, TestGateway};

/// A self-signed certificate and its key, written as PEM files.
struct TestCert {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

/// Generates a certificate for `names` (DNS names or IP addresses) into `dir`.
fn make_cert(dir: &Path, file_stem: &str, names: &[&str]) -> TestCert {
    let generated = rcgen::generate_simple_self_signed(
        names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
    )
    .unwrap();
    let cert = dir.join(format!("{file_stem}.crt"));
    let key = dir.join(format!("{file_stem}.key"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    TestCert {
        cert,
        key,
        der: generated.cert.der().clone(),
    }
}

/// One `certificates:` entry; `hosts` is left out when empty.
fn cert_entry(cert: &Path, key: &Path, hosts: &[&str]) -> String {
    let mut entry = format!(
        "        - cert: \"{}\"\n          key: \"{}\"\n",
        cert.display(),
        key.display()
    );
    if !hosts.is_empty() {
        let list: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
        entry.push_str(&format!("          hosts: [{}]\n", list.join(", ")));
    }
    entry
}

/// A config with one TLS listener `secure` on a free port in front of `upstream`.
fn tls_config(upstream: &str, certificates: &str, http2: bool) -> String {
    format!(
        "listeners:\n  - name: secure\n    address: 127.0.0.1:0\n    http2: {http2}\n    tls:\n      certificates:\n{certificates}\
         upstreams:\n  - name: backend\n    targets:\n      - url: {upstream}\n\
         routes:\n  - name: everything\n    paths: [\"/\"]\n    upstream: backend\n"
    )
}

fn parse(yaml: &str) -> turnpike_config::Config {
    turnpike_config::load_str(yaml, Path::new("test.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("invalid config:\n{e}"))
}

/// The text of the error `Gateway::start` fails with.
fn start_error(yaml: &str) -> String {
    Gateway::start(&parse(yaml))
        .expect_err("the gateway must refuse to start")
        .to_string()
}

const ALL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A client that trusts exactly `roots`, offers `alpn` and only `versions`.
fn client_config(
    roots: &[&TestCert],
    alpn: &[&str],
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.der.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(cfg)
}

/// Connects and completes the handshake; `name` is sent as SNI unless it is an IP
/// address (rustls sends no SNI for those).
async fn try_connect(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(cfg).connect(server_name, tcp).await
}

async fn connect(addr: SocketAddr, cfg: Arc<ClientConfig>, name: &str) -> TlsStream<TcpStream> {
    try_connect(addr, cfg, name)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake for {name} failed: {e}"))
}

/// The leaf certificate the gateway presented.
fn served_leaf(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("server presented a certificate")[0]
        .clone()
        .into_owned()
}

/// An HTTP connection over an established TLS stream, HTTP/2 when ALPN chose `h2`.
enum HttpConn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// What the client sees of one response.
struct Answer {
    status: StatusCode,
    version: Version,
    echo: serde_json::Value,
}

impl HttpConn {
    async fn open(tls: TlsStream<TcpStream>) -> Self {
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            Self::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Self::H1(send)
        }
    }

    async fn get(&mut self, host: &str, path: &str) -> Answer {
        let resp = match self {
            Self::H1(send) => {
                let req = Request::get(path)
                    .header(header::HOST, host)
                    .body(Full::default())
                    .unwrap();
                send.send_request(req).await.unwrap()
            }
            Self::H2(send) => {
                let req = Request::get(format!("https://{host}{path}"))
                    .body(Full::default())
                    .unwrap();
                send.send_request(req).await.unwrap()
            }
        };
        let (status, version) = (resp.status(), resp.version());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let echo =
            serde_json::from_slice(&body).unwrap_or_else(|_| String::from_utf8_lossy(&body).into());
        Answer {
            status,
            version,
            echo,
        }
    }
}

/// Handshake, one GET, and the certificate that was served.
async fn https_get(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    name: &str,
    path: &str,
) -> (Answer, CertificateDer<'static>) {
    let tls = connect(addr, cfg, name).await;
    let leaf = served_leaf(&tls);
    let answer = HttpConn::open(tls).await.get(name, path).await;
    (answer, leaf)
}

#[tokio::test]
async fn https_request_is_proxied() {
    let dir = tempfile::tempdir().unwrap();
    let api = make_cert(dir.path(), "api", &["api.example.test"]);
    let up = MockUpstream::echo().await;
    let gw = TestGateway::start(&tls_config(
        &up.url(),
        &cert_entry(&api.cert, &api.key, &["api.example.test"]),
        true,
    ))
    .await;

    let cfg = client_config(&[&api], &["http/1.1"], ALL_VERSIONS);
    let (answer, leaf) = https_get(gw.addr, cfg, "api.example.test", "/secure/path?x=1").await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(leaf, api.der);
    assert_eq!(answer.echo["path"], "/secure/path");
    assert_eq!(answer.echo["query"], "x=1");
    assert_eq!(
        answer.echo["headers"]["x-forwarded-proto"], "https",
        "upstream learns the client used TLS"
    );
    assert_eq!(answer.echo["headers"]["host"], "api.example.test");
    assert_eq!(
        answer.echo["version"], "HTTP/1.1",
        "TLS ends at the gateway; the upstream hop is plain HTTP"
    );

    // The TLS listener does not answer plaintext HTTP.
    let plain = Client::http1()
        .try_send(Request::get(gw.url("/")).body(Full::default()).unwrap())
        .await;
    assert!(
        plain.is_err(),
        "plaintext request on a TLS listener must fail, got {plain:?}"
    );
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn sni_selects_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    // Listed first: the default for clients without SNI (127.0.0.1 lets them verify it).
    let a = make_cert(dir.path(), "a", &["a.example.test", "127.0.0.1"]);
    let wild = make_cert(dir.path(), "wild", &["*.example.test"]);
    // No `hosts`: serves the names in the certificate itself.
    let other = make_cert(dir.path(), "other", &["c.other.test"]);
    let certificates = [
        cert_entry(&a.cert, &a.key, &["a.example.test"]),
        cert_entry(&wild.cert, &wild.key, &["*.example.test"]),
        cert_entry(&other.cert, &other.key, &[]),
    ]
    .concat();
    let up = MockUpstream::echo().await;
    let gw = TestGateway::start(&tls_config(&up.url(), &certificates, true)).await;
    let cfg = client_config(&[&a, &wild, &other], &["http/1.1"], ALL_VERSIONS);

    let cases = [
        ("a.example.test", &a, "exact name beats the wildcard"),
        ("shop.example.test", &wild, "wildcard"),
        ("api.example.test", &wild, "wildcard"),
        (
            "c.other.test",
            &other,
            "names inside a certificate listed without hosts",
        ),
        ("127.0.0.1", &a, "no SNI gets the first certificate"),
    ];
    for (name, expected, why) in cases {
        let (answer, leaf) = https_get(gw.addr, cfg.clone(), name, "/").await;
        assert!(
            leaf == expected.der,
            "{name}: wrong certificate served ({why})"
        );
        assert_eq!(answer.status, StatusCode::OK, "{name}");
    }

    // A name nothing claims gets the first certificate, which the client rejects because
    // it does not cover that name.
    let err = try_connect(gw.addr, cfg, "unknown.invalid")
        .await
        .expect_err("no certificate covers this name");
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn alpn_negotiates_http2_and_http1_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let api = make_cert(dir.path(), "api", &["api.example.test"]);
    let up = MockUpstream::echo().await;
    let gw = TestGateway::start(&tls_config(
        &up.url(),
        &cert_entry(&api.cert, &api.key, &[]),
        true,
    ))
    .await;

    for (offer, negotiated, version, via) in [
        (
            &["h2", "http/1.1"][..],
            Some(&b"h2"[..]),
            Version::HTTP_2,
            "2 turnpike",
        ),
        (
            &["http/1.1"][..],
            Some(&b"http/1.1"[..]),
            Version::HTTP_11,
            "1.1 turnpike",
        ),
        (&[][..], None, Version::HTTP_11, "1.1 turnpike"),
    ] {
        let tls = connect(
            gw.addr,
            client_config(&[&api], offer, ALL_VERSIONS),
            "api.example.test",
        )
        .await;
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            negotiated,
            "offered {offer:?}"
        );
        let answer = HttpConn::open(tls)
            .await
            .get("api.example.test", "/alpn")
            .await;
        assert_eq!(answer.status, StatusCode::OK, "offered {offer:?}");
        assert_eq!(answer.version, version, "offered {offer:?}");
        assert_eq!(answer.echo["headers"]["via"], via, "offered {offer:?}");
    }

    // `http2: false` on the listener: a client offering h2 gets HTTP/1.1.
    let gw1 = TestGateway::start(&tls_config(
        &up.url(),
        &cert_entry(&api.cert, &api.key, &[]),
        false,
    ))
    .await;
    let tls = connect(
        gw1.addr,
        client_config(&[&api], &["h2", "http/1.1"], ALL_VERSIONS),
        "api.example.test",
    )
    .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let answer = HttpConn::open(tls)
        .await
        .get("api.example.test", "/alpn")
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.version, Version::HTTP_11);
}

/// A TLS ClientHello as a TLS 1.0 / 1.1 client sends it: `client_version` below 1.2 and
/// no `supported_versions` extension. rustls clients cannot offer anything older than
/// TLS 1.2, so the test writes the bytes itself.
fn legacy_client_hello(client_version: [u8; 2]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&client_version);
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // ECDHE-RSA-AES128-SHA, RSA-AES128-SHA
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    // signature_algorithms (ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256):
    // rustls refuses hellos without it before it looks at the version.
    body.extend_from_slice(&[
        0x00, 0x0c, 0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
    ]);
    let mut handshake = vec![0x01, 0, 0, u8::try_from(body.len()).unwrap()];
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, 0, u8::try_from(handshake.len()).unwrap()];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn only_tls12_and_tls13_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let api = make_cert(dir.path(), "api", &["api.example.test"]);
    let up = MockUpstream::echo().await;
    let gw = TestGateway::start(&tls_config(
        &up.url(),
        &cert_entry(&api.cert, &api.key, &[]),
        true,
    ))
    .await;

    for (version, expected) in [
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
    ] {
        let tls = connect(
            gw.addr,
            client_config(&[&api], &["http/1.1"], &[version]),
            "api.example.test",
        )
        .await;
        assert_eq!(tls.get_ref().1.protocol_version(), Some(expected));
        let answer = HttpConn::open(tls)
            .await
            .get("api.example.test", "/v")
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{expected:?}");
    }

    // TLS 1.0 and 1.1 hellos are answered with a fatal `protocol_version` alert.
    for (label, client_version) in [("TLS 1.1", [0x03, 0x02]), ("TLS 1.0", [0x03, 0x01])] {
        let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
        tcp.write_all(&legacy_client_hello(client_version))
            .await
            .unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tcp.read_to_end(&mut reply),
        )
        .await
        .expect("the gateway must answer and close")
        .unwrap();
        assert!(
            reply.len() >= 7,
            "{label}: expected an alert record, got {reply:02x?}"
        );
        assert_eq!(
            reply[0], 0x15,
            "{label}: expected an alert record, not a handshake: {reply:02x?}"
        );
        assert_eq!(
            &reply[5..7],
            &[2, 70],
            "{label}: expected fatal protocol_version: {reply:02x?}"
        );
    }
    assert_eq!(up.hits(), 2);
}

// Not a tokio test: `Gateway::start` failing inside async code panics while dropping its
// control runtime, which would hide the error under test.
#[test]
fn unusable_certificate_files_stop_the_start_and_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a", &["a.example.test"]);
    let b = make_cert(dir.path(), "b", &["b.example.test"]);
    let not_pem = dir.path().join("notes.txt");
    std::fs::write(&not_pem, "this is not a PEM file\n").unwrap();
    let garbage_cert = dir.path().join("garbage.crt");
    std::fs::write(
        &garbage_cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.crt");
    let up = "http://127.0.0.1:9";

    let msg = start_error(&tls_config(up, &cert_entry(&a.cert, &b.key, &[]), true));
    assert!(msg.contains("listener secure"), "{msg}");
    assert!(
        msg.contains(&*a.cert.to_string_lossy()) && msg.contains(&*b.key.to_string_lossy()),
        "key mismatch: {msg}"
    );
    assert!(msg.contains("does not match"), "{msg}");

    let msg = start_error(&tls_config(up, &cert_entry(&missing, &a.key, &[]), true));
    assert!(
        msg.contains(&*missing.to_string_lossy()),
        "missing file: {msg}"
    );

    let msg = start_error(&tls_config(up, &cert_entry(&not_pem, &a.key, &[]), true));
    assert!(
        msg.contains(&*not_pem.to_string_lossy()) && msg.contains("no PEM certificate"),
        "no PEM cert: {msg}"
    );

    let msg = start_error(&tls_config(up, &cert_entry(&a.cert, &not_pem, &[]), true));
    assert!(
        msg.contains(&*not_pem.to_string_lossy()) && msg.contains("no PEM private key"),
        "no PEM key: {msg}"
    );

    let msg = start_error(&tls_config(
        up,
        &cert_entry(&garbage_cert, &a.key, &[]),
        true,
    ));
    assert!(
        msg.contains(&*garbage_cert.to_string_lossy()),
        "unparseable certificate: {msg}"
    );

    // A bad second certificate stops the start as well.
    let two = [
        cert_entry(&a.cert, &a.key, &[]),
        cert_entry(&b.cert, &a.key, &[]),
    ]
    .concat();
    let msg = start_error(&tls_config(up, &two, true));
    assert!(
        msg.contains(&*b.cert.to_string_lossy()),
        "second certificate: {msg}"
    );
}

#[tokio::test]
async fn reload_serves_the_new_certificate_to_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let old = make_cert(dir.path(), "old", &["api.example.test"]);
    let new = make_cert(dir.path(), "new", &["api.example.test"]);
    let up = MockUpstream::echo().await;
    let yaml_for = |c: &TestCert| {
        tls_config(
            &up.url(),
            &cert_entry(&c.cert, &c.key, &["api.example.test"]),
            true,
        )
    };
    let gw = TestGateway::start(&yaml_for(&old)).await;
    let cfg = client_config(&[&old, &new], &["http/1.1"], ALL_VERSIONS);

    let before = connect(gw.addr, cfg.clone(), "api.example.test").await;
    assert!(
        served_leaf(&before) == old.der,
        "starts with the old certificate"
    );
    let mut kept = HttpConn::open(before).await;
    assert_eq!(
        kept.get("api.example.test", "/").await.status,
        StatusCode::OK
    );

    gw.gateway.reload(&parse(&yaml_for(&new))).unwrap();

    let (answer, leaf) = https_get(gw.addr, cfg.clone(), "api.example.test", "/").await;
    assert!(
        leaf == new.der,
        "a new connection after the reload gets the new certificate"
    );
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        kept.get("api.example.test", "/").await.status,
        StatusCode::OK,
        "open connections keep working"
    );

    // A reload whose certificate cannot be read is refused and the current one keeps serving.
    let broken = tls_config(
        &up.url(),
        &cert_entry(&new.cert, &dir.path().join("gone.key"), &[]),
        true,
    );
    let err = gw
        .gateway
        .reload(&parse(&broken))
        .expect_err("reload with a missing key must fail");
    assert!(err.to_string().contains("gone.key"), "{err}");
    let (_, leaf) = https_get(gw.addr, cfg, "api.example.test", "/").await;
    assert!(leaf == new.der, "a refused reload changes nothing");
}

#[tokio::test]
async fn a_request_for_another_host_than_the_tls_name_is_misdirected() {
    let dir = tempfile::tempdir().unwrap();
    let wild = make_cert(dir.path(), "wild", &["*.example.test"]);
    let up = MockUpstream::echo().await;
    let gw = TestGateway::start(&tls_config(
        &up.url(),
        &cert_entry(&wild.cert, &wild.key, &["*.example.test"]),
        true,
    ))
    .await;
    let cfg = client_config(&[&wild], &["http/1.1"], ALL_VERSIONS);
    let mut conn = HttpConn::open(connect(gw.addr, cfg, "a.example.test").await).await;
    assert_eq!(conn.get("a.example.test", "/").await.status, StatusCode::OK);
    // Same connection, other host (as HTTP/2 connection reuse or a fronting trick would).
    let other = conn.get("b.example.test", "/").await;
    assert_eq!(other.status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(other.echo["error"]["code"], "misdirected_request");
    assert_eq!(up.hits(), 1);
}

/// A certificate given as PEM text (as the admin API's certificates reach the listeners)
/// is served after a reload, without a restart, and its key never shows in `Debug`.
#[tokio::test]
async fn an_inline_pem_certificate_is_served_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a", &["a.example.test", "127.0.0.1"]);
    let b = rcgen::generate_simple_self_signed(vec!["b.example.test".to_owned()]).unwrap();
    let b_key = b.signing_key.serialize_pem();
    let up = MockUpstream::echo().await;
    let file_only = tls_config(&up.url(), &cert_entry(&a.cert, &a.key, &[]), false);
    let gw = TestGateway::start(&file_only).await;
    let inline = format!(
        "        - name: from-the-store\n          pem: true\n          cert: {}\n          key: {}\n",
        serde_json::to_string(&b.cert.pem()).unwrap(),
        serde_json::to_string(&b_key).unwrap()
    );
    let with_inline = tls_config(
        &up.url(),
        &[cert_entry(&a.cert, &a.key, &[]), inline].concat(),
        false,
    );
    let cfg = parse(&with_inline);
    let shown = format!("{:?}", cfg.listeners[0].tls);
    assert!(
        !shown.contains("PRIVATE KEY"),
        "the key leaks in Debug: {shown}"
    );
    gw.gateway.shared().apply(&cfg).unwrap();
    let b_cert = TestCert {
        cert: PathBuf::new(),
        key: PathBuf::new(),
        der: b.cert.der().clone(),
    };
    let client = client_config(&[&a, &b_cert], &["http/1.1"], ALL_VERSIONS);
    let (answer, leaf) = https_get(gw.addr, client, "b.example.test", "/").await;
    assert!(
        leaf == b_cert.der,
        "the inline certificate is served for its name"
    );
    assert_eq!(answer.status, StatusCode::OK);
}
