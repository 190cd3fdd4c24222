//! TLS certificates as store entities (`/api/v1/certificates`): a name, a PEM chain, its PEM
//! private key and optional SNI `hosts`, served by every TLS listener of the file after the
//! file's own certificates (`kinds.rs` merges them as inline PEM).
//!
//! The private key is a secret the gateway needs back in clear to serve TLS, so the store
//! keeps it encrypted under `admin.secrets_key` (`secrets.rs`; without that key writes are
//! refused, 409 `no_secrets_key`), no response returns it (`kinds::public_view`) and the
//! audit log records it as `[redacted]` (`turnpike_store::AUDIT_REDACTED`). Before a
//! certificate is stored its PEM must parse and its key must match the leaf certificate,
//! checked with the same rustls code the listeners use, so a write the API accepts cannot
//! make the next rebuild fail. A `PUT` without `key` keeps the stored one (decrypted, checked
//! against the new chain and encrypted again, which also encrypts a plaintext key an earlier
//! version stored): renewing a certificate for the same key does not need the key again.

use serde::Deserialize;
use serde_json::Value;
use turnpike_store::Record;

use rustls::InconsistentKeys;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::CertificateDer;
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;

use crate::entities::invalid;
use crate::error::{ApiError, Detail};
use crate::kinds::CERTIFICATES;
use crate::secrets::{self, SecretsKey};

/// The body of a certificate write, checked for unknown fields with their paths.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[allow(
        dead_code,
        reason = "checked by the entity code; here it only may be present"
    )]
    name: String,
    cert: String,
    key: String,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "checked by the configuration's validation when merged"
    )]
    hosts: Vec<String>,
}

/// Under the writer lock, before validation: keeps the stored key when a `PUT` leaves it out,
/// checks the PEM and that the key matches (every problem names its field), then encrypts
/// the key for the store: `doc` leaves as the store keeps it.
pub(crate) fn complete(
    doc: &mut Value,
    name: &str,
    existing: Option<&Record>,
    secrets: Option<&SecretsKey>,
) -> Result<(), ApiError> {
    // Refused before anything else: without the key nothing of this write can be stored.
    let secrets = secrets.ok_or_else(no_secrets_key)?;
    let Some(fields) = doc.as_object_mut() else {
        return Ok(());
    };
    let stored = existing
        .and_then(|r| r.doc.get("key"))
        .and_then(Value::as_str);
    if let (false, Some(stored)) = (fields.contains_key("key"), stored) {
        let clear = secrets::reveal(Some(secrets), CERTIFICATES, name, stored)
            .map_err(|_| undecryptable(name))?;
        fields.insert("key".to_owned(), Value::String(clear));
    }
    let body: Body = serde_path_to_error::deserialize(&*doc).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        // serde's messages name fields and types, never the values: safe for the key.
        invalid(vec![Detail::new(path, e.inner().to_string())])
    })?;
    check_pem(&body.cert, &body.key).map_err(|d| invalid(vec![d]))?;
    let sealed = secrets
        .seal(&secrets::aad(CERTIFICATES, name), &body.key)
        .map_err(|e| ApiError::internal("encrypting a certificate's key", &e))?;
    if let Some(fields) = doc.as_object_mut() {
        fields.insert("key".to_owned(), Value::String(sealed));
    }
    Ok(())
}

fn no_secrets_key() -> ApiError {
    ApiError::conflict(
        "no_secrets_key",
        "certificates need `admin.secrets_key`, which encrypts their private keys in the store, \
         and this gateway has none: make one with `turnpike secret store-key`, set \
         `admin.secrets_key: ${TURNPIKE_SECRETS_KEY}` with the same key on every node, and restart",
    )
}

/// A `PUT` without `key` whose stored key the current `admin.secrets_key` cannot decrypt.
fn undecryptable(name: &str) -> ApiError {
    ApiError::conflict(
        "secrets_key_mismatch",
        format!(
            "the stored private key of certificate {name:?} cannot be decrypted with \
             `admin.secrets_key` (another key encrypted it, or the stored value was altered); \
             send `key` again to store it under the current key"
        ),
    )
}

/// The chain parses (leaf first), the key parses and is one rustls can sign with, and it is
/// the leaf's key. Messages never quote the key.
fn check_pem(cert: &str, key: &str) -> Result<(), Detail> {
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| Detail::new("cert", format!("not valid PEM: {e}")))?;
    if chain.is_empty() {
        let msg = "no PEM certificate found (`-----BEGIN CERTIFICATE-----`, leaf first)";
        return Err(Detail::new("cert", msg));
    }
    for (i, der) in chain.iter().enumerate() {
        ParsedCertificate::try_from(der).map_err(|e| {
            Detail::new(
                "cert",
                format!("certificate {} cannot be parsed: {e}", i + 1),
            )
        })?;
    }
    let private = rustls_pemfile::private_key(&mut key.as_bytes())
        .map_err(|_| Detail::new("key", "not valid PEM"))?
        .ok_or_else(|| {
            Detail::new(
                "key",
                "no PEM private key found (PKCS#8, PKCS#1 or SEC1 expected)",
            )
        })?;
    let signing = any_supported_type(&private)
        .map_err(|e| Detail::new("key", format!("unsupported private key: {e}")))?;
    match CertifiedKey::new(chain, signing).keys_match() {
        // Key types whose public key rustls cannot derive are checked at handshake time,
        // as on the listeners.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(Detail::new(
            "key",
            "does not match the certificate (the first one in `cert`)",
        )),
        Err(e) => Err(Detail::new("cert", format!("cannot be used: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_passes() {
        let (cert, key) = pair("a.example");
        check_pem(&cert, &key).unwrap();
    }

    #[test]
    fn problems_name_the_field_and_never_quote_the_key() {
        let (cert, key) = pair("a.example");
        let (_, other) = pair("b.example");
        let mismatch = check_pem(&cert, &other).unwrap_err();
        assert_eq!(mismatch.path, "key");
        assert!(
            !mismatch.message.contains("PRIVATE"),
            "{}",
            mismatch.message
        );
        assert_eq!(check_pem("nope", &key).unwrap_err().path, "cert");
        assert_eq!(check_pem(&cert, "nope").unwrap_err().path, "key");
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(check_pem(garbage, &key).unwrap_err().path, "cert");
    }
}
