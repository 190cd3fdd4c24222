//! The JWT verifier on arbitrary bearer tokens, against HS256 and RS256 providers. No
//! input may panic, and since the fuzzer cannot sign, none may be accepted.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue, Method, Uri, header::AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use turnpike_config::model::JwtProvider;
use turnpike_policy::RequestView;
use turnpike_policy::auth::Attempt;
use turnpike_policy::consumer::Consumers;
use turnpike_policy::jwt::JwtSet;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    jwt: JwtSet,
    consumers: Consumers,
}

fn provider(name: &str, algorithm: &str, key: serde_json::Value) -> JwtProvider {
    let value = serde_json::json!({"name": name, "algorithms": [algorithm], "keys": [key]});
    serde_json::from_value(value).expect("provider")
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let pem = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../crates/turnpike-proxy/tests/security/fixtures/jwt/rsa.pub.pem"
        );
        let providers = [
            provider(
                "hs",
                "HS256",
                serde_json::json!({"secret": "fuzzing-secret-0123456789abcdef-0123"}),
            ),
            provider("rs", "RS256", serde_json::json!({"file": pem})),
        ];
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
            jwt: JwtSet::build(&providers, None, None).expect("providers"),
            consumers: Consumers::default(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(data);
    let Ok(value) = HeaderValue::from_bytes(&value) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    let uri = Uri::from_static("/");
    let view = RequestView {
        method: &Method::GET,
        uri: &uri,
        headers: &headers,
        client_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        client_cert: None,
    };
    let attempt = f
        .runtime
        .block_on(f.jwt.attempt(&view, &[], &f.consumers, 1_700_000_000));
    assert!(
        !matches!(attempt, Attempt::Valid(_)),
        "an unsigned input was accepted"
    );
});
