//! Encryption at rest for secrets the gateway needs back in clear (a certificate's private
//! key), under `admin.secrets_key`: AES-256-GCM (ring), stored as
//! `enc:v1:<base64(nonce || ciphertext || tag)>` with a fresh random 96-bit nonce per value.
//!
//! The associated data is the entity's kind and name (`certificates/api`), so a ciphertext
//! copied into another entity's row does not decrypt: whoever can write the store but not
//! read the key cannot swap one certificate's key for another's. Values without the prefix
//! are plaintext written by earlier versions; they are read as they are and encrypted on
//! their next write. Errors name the entity, never the key nor the value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;
use turnpike_config::model::{SecretsKeyError, secrets_key_bytes};
use turnpike_store::Record;

use crate::kinds::CERTIFICATES;

/// What an encrypted value starts with; the version names the algorithm and layout.
pub(crate) const SEALED_PREFIX: &str = "enc:v1:";

/// The key from `admin.secrets_key`, ready to encrypt and decrypt.
pub struct SecretsKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(***)")
    }
}

/// Why a secret could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("admin.secrets_key {0}")]
    BadKey(#[from] SecretsKeyError),
    #[error("the system random number generator failed")]
    Random,
    #[error(
        "cannot be decrypted with `admin.secrets_key`: another key encrypted it (was the key changed?), or the stored value was altered"
    )]
    Undecryptable,
    #[error("is encrypted, but `admin.secrets_key` is not set")]
    NoKey,
}

impl SecretsKey {
    /// The key an `admin.secrets_key` value names (its format as the config checks it).
    pub fn from_config(text: &str) -> Result<Self, SecretError> {
        let bytes = secrets_key_bytes(text)?;
        // 32 bytes is always a valid AES-256 key; the error cannot happen.
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| SecretError::BadKey(SecretsKeyError::Length(bytes.len())))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    /// `plaintext` encrypted for the entity `aad` names, as the store keeps it.
    pub(crate) fn seal(&self, aad: &str, plaintext: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SecretError::Random)?;
        let mut data = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut data,
            )
            .map_err(|_| SecretError::Random)?;
        let mut out = nonce.to_vec();
        out.append(&mut data);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }

    /// The plaintext of a value [`SecretsKey::seal`] made for the same `aad`.
    pub(crate) fn open(&self, aad: &str, stored: &str) -> Result<String, SecretError> {
        let encoded = stored
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SecretError::Undecryptable)?;
        let mut data = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Undecryptable)?;
        if data.len() < NONCE_LEN {
            return Err(SecretError::Undecryptable);
        }
        let mut sealed = data.split_off(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(&data).map_err(|_| SecretError::Undecryptable)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut sealed)
            .map_err(|_| SecretError::Undecryptable)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretError::Undecryptable)
    }
}

/// Whether a stored value is encrypted (else it is plaintext from an earlier version).
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// The associated data binding a value to its entity.
pub(crate) fn aad(kind: &str, name: &str) -> String {
    format!("{kind}/{name}")
}

/// A stored secret in clear: decrypted when encrypted, as it is when it is plaintext.
pub(crate) fn reveal(
    key: Option<&SecretsKey>,
    kind: &str,
    name: &str,
    stored: &str,
) -> Result<String, SecretError> {
    if !is_sealed(stored) {
        return Ok(stored.to_owned());
    }
    key.ok_or(SecretError::NoKey)?
        .open(&aad(kind, name), stored)
}

/// Certificates whose private key could not be decrypted, when merging the store.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct Undecryptable(pub Vec<(String, SecretError)>);

fn describe(failures: &[(String, SecretError)]) -> String {
    let mut lines: Vec<String> = failures
        .iter()
        .map(|(name, err)| format!("certificates[{name:?}].key: the private key {err}"))
        .collect();
    lines.push(
        "PUT each certificate again with its `key` to store it under the current key".to_owned(),
    );
    lines.join("\n")
}

/// Replaces every certificate's stored private key by its plaintext, for merging into the
/// served configuration. Every certificate that fails is named. Returns how many keys are
/// plaintext from an earlier version (they are encrypted at their next write).
pub(crate) fn reveal_all(
    key: Option<&SecretsKey>,
    records: &mut [Record],
) -> Result<usize, Undecryptable> {
    let mut failures = Vec::new();
    let mut plaintext = 0;
    for r in records.iter_mut().filter(|r| r.kind == CERTIFICATES) {
        let Some(Value::String(stored)) = r.doc.get_mut("key") else {
            continue;
        };
        if !is_sealed(stored) {
            plaintext += 1;
            continue;
        }
        match reveal(key, CERTIFICATES, &r.name, stored) {
            Ok(clear) => *stored = clear,
            Err(err) => failures.push((r.name.clone(), err)),
        }
    }
    if failures.is_empty() {
        Ok(plaintext)
    } else {
        Err(Undecryptable(failures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const OTHER: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_entity() {
        let key = SecretsKey::from_config(KEY).unwrap();
        let sealed = key.seal("certificates/a", "secret PEM").unwrap();
        assert!(sealed.starts_with("enc:v1:"), "{sealed}");
        assert!(!sealed.contains("secret"));
        assert_eq!(key.open("certificates/a", &sealed).unwrap(), "secret PEM");
        // A fresh nonce each time.
        assert_ne!(key.seal("certificates/a", "secret PEM").unwrap(), sealed);
        // Another entity, another key, a flipped byte: all refused.
        assert!(key.open("certificates/b", &sealed).is_err());
        let other = SecretsKey::from_config(OTHER).unwrap();
        assert!(other.open("certificates/a", &sealed).is_err());
        let mut bytes = STANDARD.decode(&sealed[SEALED_PREFIX.len()..]).unwrap();
        bytes[NONCE_LEN] ^= 1;
        let tampered = format!("{SEALED_PREFIX}{}", STANDARD.encode(bytes));
        assert!(key.open("certificates/a", &tampered).is_err());
        assert!(key.open("certificates/a", "enc:v1:AAAA").is_err());
        assert!(key.open("certificates/a", "enc:v1:!!").is_err());
    }

    #[test]
    fn plaintext_passes_and_failures_name_the_certificate() {
        let key = SecretsKey::from_config(KEY).unwrap();
        let record = |name: &str, stored: &str| Record {
            kind: CERTIFICATES.to_owned(),
            name: name.to_owned(),
            doc: serde_json::json!({"name": name, "key": stored}),
            revision: 1,
            created_at: String::new(),
            updated_at: String::new(),
        };
        let sealed = key.seal("certificates/a", "PEM A").unwrap();
        let mut records = vec![record("a", &sealed), record("old", "PEM OLD")];
        assert_eq!(reveal_all(Some(&key), &mut records).unwrap(), 1);
        assert_eq!(records[0].doc["key"], "PEM A");
        assert_eq!(records[1].doc["key"], "PEM OLD");

        let mut records = vec![record("a", &sealed)];
        let err = reveal_all(None, &mut records).unwrap_err().to_string();
        assert!(err.contains(r#"certificates["a"].key"#), "{err}");
        assert!(err.contains("not set"), "{err}");
        let other = SecretsKey::from_config(OTHER).unwrap();
        let err = reveal_all(Some(&other), &mut records)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be decrypted"), "{err}");
        assert!(!err.contains(&sealed[SEALED_PREFIX.len()..]), "{err}");
        assert!(!format!("{key:?}").contains(KEY));
    }
}
