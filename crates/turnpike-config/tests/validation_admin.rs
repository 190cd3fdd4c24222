//! The `admin:` section: defaults, and one test per validation rule with its exact
//! `line:column` and path.

mod common;

use common::{assert_has, load, printed, single_error};
use turnpike_config::model::{Admin, DEFAULT_ADMIN_LISTEN, DEFAULT_STORE, secrets_key_bytes};

const BASE: &str = "listen: 127.0.0.1:8000\n";

#[test]
fn absent_section_means_no_admin_api() {
    assert_eq!(load(BASE).admin, None);
}

#[test]
fn empty_section_takes_the_defaults() {
    for yaml in [
        "listen: 127.0.0.1:8000\nadmin:\n",
        "listen: 127.0.0.1:8000\nadmin: {}\n",
    ] {
        let admin = load(yaml).admin;
        assert_eq!(admin, Some(Admin::default()), "{yaml}");
    }
    let admin = Admin::default();
    assert_eq!(admin.listen, DEFAULT_ADMIN_LISTEN);
    assert_eq!(admin.listen.to_string(), "127.0.0.1:8001");
    assert_eq!(admin.store, DEFAULT_STORE);
    assert!(!admin.insecure_no_auth);
}

#[test]
fn every_key_loads() {
    let yaml = "listen: 127.0.0.1:8000
admin:
  listen: 0.0.0.0:9001
  store: postgres://turnpike@db.internal/turnpike
  insecure_no_auth: false
";
    let admin = load(yaml).admin.unwrap_or_default();
    assert_eq!(admin.listen.to_string(), "0.0.0.0:9001");
    assert_eq!(admin.store, "postgres://turnpike@db.internal/turnpike");
    let loopback = "listen: 127.0.0.1:8000\nadmin:\n  listen: \"[::1]:8001\"\n  store: /var/lib/turnpike/store.db\n  insecure_no_auth: true\n";
    assert!(load(loopback).admin.is_some_and(|a| a.insecure_no_auth));
}

#[test]
fn insecure_no_auth_needs_a_loopback_listener() {
    let yaml = "listen: 127.0.0.1:8000
admin:
  listen: 0.0.0.0:8001
  insecure_no_auth: true
";
    single_error(
        yaml,
        "4:21",
        "admin.insecure_no_auth",
        "allowed only when `admin.listen` is a loopback address (127.0.0.1 or [::1]), not 0.0.0.0",
    );
}

#[test]
fn unknown_keys_and_bad_types_are_located() {
    let yaml = "listen: 127.0.0.1:8000
admin:
  listen: localhost
  stroe: x.db
  insecure_no_auth: maybe
";
    let all = printed(yaml);
    assert_eq!(all.len(), 3, "{}", all.join("\n"));
    assert_has(
        &all,
        "3:11",
        "admin.listen",
        "invalid socket address \"localhost\"",
    );
    assert_has(&all, "4:3", "admin.stroe", "unknown field `stroe`");
    assert_has(&all, "5:21", "admin.insecure_no_auth", "invalid type");
}

#[test]
fn the_store_url_is_checked_without_repeating_it() {
    let yaml = "listen: 127.0.0.1:8000\nadmin:\n  store: mysql://root:hunter2@db/turnpike\n";
    let all = printed(yaml);
    assert_eq!(all.len(), 1, "{}", all.join("\n"));
    assert_has(
        &all,
        "3:10",
        "admin.store",
        "unsupported store scheme `mysql`",
    );
    assert!(!all[0].contains("hunter2"), "{}", all[0]);
    single_error(
        "listen: 127.0.0.1:8000\nadmin:\n  store: \"\"\n",
        "3:10",
        "admin.store",
        "the store must not be empty",
    );
    single_error(
        "listen: 127.0.0.1:8000\nadmin:\n  store: sqlite://\n",
        "3:10",
        "admin.store",
        "the SQLite store needs a file path",
    );
}

#[test]
fn the_admin_listener_cannot_share_the_proxy_address() {
    single_error(
        "listen: 127.0.0.1:8000\nadmin:\n  listen: 127.0.0.1:8000\n",
        "3:11",
        "admin.listen",
        "address 127.0.0.1:8000 is already used by `listen` (line 1)",
    );
    let yaml = "listeners:
  - name: public
    address: 0.0.0.0:8443
admin:
  listen: 127.0.0.1:8443
";
    single_error(
        yaml,
        "5:11",
        "admin.listen",
        "overlaps 0.0.0.0:8443, used by listener `public` (line 3)",
    );
}

#[test]
fn the_section_itself_must_be_a_mapping() {
    let all = printed("listen: 127.0.0.1:8000\nadmin: yes\n");
    assert_eq!(all.len(), 1, "{}", all.join("\n"));
    assert_has(
        &all,
        "2:8",
        "admin",
        "invalid type: string \"yes\", expected struct Admin",
    );
}

#[test]
fn tls_takes_a_certificate_and_a_key() {
    let yaml = "listen: 127.0.0.1:8000
admin:
  tls:
    cert: /etc/turnpike/admin.pem
    key: /etc/turnpike/admin-key.pem
";
    let tls = load(yaml).admin.and_then(|a| a.tls);
    let tls = tls.unwrap_or_else(|| panic!("admin.tls did not load"));
    assert_eq!(tls.cert, "/etc/turnpike/admin.pem");
    assert_eq!(tls.key, "/etc/turnpike/admin-key.pem");
    assert_eq!(Admin::default().tls, None);
}

#[test]
fn tls_problems_are_located() {
    single_error(
        "listen: 127.0.0.1:8000\nadmin:\n  tls:\n    cert: \"\"\n    key: k.pem\n",
        "4:11",
        "admin.tls.cert",
        "must name a PEM file",
    );
    let all = printed("listen: 127.0.0.1:8000\nadmin:\n  tls:\n    certificate: c.pem\n");
    assert_has(
        &all,
        "4:5",
        "admin.tls.certificate",
        "unknown field `certificate`",
    );
    assert_has(&all, "4:5", "admin.tls", "missing field `cert`");
}

#[test]
fn a_secrets_key_is_32_bytes_in_base64_or_hex() {
    let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    let base64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    for (key, first) in [(hex, 0x00), (base64, 0x00)] {
        let yaml = format!("listen: 127.0.0.1:8000\nadmin:\n  secrets_key: \"{key}\"\n");
        let admin = load(&yaml).admin.unwrap_or_default();
        let bytes = secrets_key_bytes(admin.secrets_key.as_deref().unwrap_or_default());
        assert_eq!(bytes.map(|b| b[0]), Ok(first), "{key}");
    }
    assert_eq!(secrets_key_bytes(hex).map(|b| b[31]), Ok(0xff));
    assert_eq!(secrets_key_bytes(base64).map(|b| b[31]), Ok(31));
    // URL-safe and unpadded, as `turnpike secret generate` prints secrets.
    let url_safe = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    assert!(secrets_key_bytes(url_safe).is_ok());
    assert_eq!(Admin::default().secrets_key, None);
}

#[test]
fn a_bad_secrets_key_is_located_and_never_quoted() {
    let cases = [
        ("hunter2hunter2", "must be 32 random bytes as base64"),
        ("\"\"", "found 0 characters"),
        // 16 bytes: too short for AES-256.
        ("AAECAwQFBgcICQoLDA0ODw==", "decodes to 16 bytes"),
        // 63 hex digits: neither hex nor base64.
        (
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeef",
            "found 63 characters",
        ),
    ];
    for (key, fragment) in cases {
        let yaml = format!("listen: 127.0.0.1:8000\nadmin:\n  secrets_key: {key}\n");
        let all = printed(&yaml);
        assert_eq!(all.len(), 1, "{}", all.join("\n"));
        assert_has(&all, "3:16", "admin.secrets_key", fragment);
        if key.len() > 2 {
            assert!(!all[0].contains(key), "{}", all[0]);
        }
    }
    let admin = Admin {
        secrets_key: Some("secret-material".to_owned()),
        ..Admin::default()
    };
    assert!(!format!("{admin:?}").contains("secret-material"));
}

#[test]
fn a_secrets_key_comes_from_the_environment() {
    let yaml = "listen: 127.0.0.1:8000\nadmin:\n  secrets_key: ${TURNPIKE_SECRETS_KEY}\n";
    let all = printed(yaml);
    assert_has(
        &all,
        "3:16",
        "admin.secrets_key",
        "environment variable `TURNPIKE_SECRETS_KEY` is not set",
    );
}
