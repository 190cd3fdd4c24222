//! The OAuth server's signing keys: private keys read from PEM files, the public JWK each
//! one publishes, and the jsonwebtoken keys that sign and verify with them.
//!
//! Private keys are PKCS#8 PEM (`BEGIN PRIVATE KEY`; RSA may also be PKCS#1 `BEGIN RSA
//! PRIVATE KEY`). ring parses them: that proves the key fits its algorithm (an RSA key
//! cannot be configured as ES256) and yields the public part for the JWKS. Each key then
//! signs and verifies a probe token at load time, so a key jsonwebtoken cannot use fails
//! the config reload rather than the first token request.

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair as _, RsaPublicKeyComponents};
use serde_json::{Value, json};
use turnpike_config::model::{self, JwtAlgorithm};

/// Why a signing key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key `{kid}`: cannot read {path}: {source}")]
    Read {
        kid: String,
        path: String,
        source: std::io::Error,
    },
    #[error("signing key `{kid}`: {path} ({source})")]
    Invalid {
        kid: String,
        path: String,
        source: PemError,
    },
}

/// Why a key file's contents cannot sign tokens.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("issued tokens are signed with a private key, not an HMAC secret")]
    Hmac,
    #[error("not a PEM file")]
    NotPem,
    #[error("the {tag} block is not valid base64")]
    Base64 { tag: String },
    #[error("no `-----END {tag}-----` line")]
    Unterminated { tag: String },
    #[error(
        "encrypted private keys are not supported; store it unencrypted with restrictive file permissions"
    )]
    Encrypted,
    #[error(
        "expected PKCS#8 (`BEGIN PRIVATE KEY`); convert with `openssl pkcs8 -topk8 -nocrypt -in KEY`"
    )]
    Sec1,
    #[error("no `BEGIN PRIVATE KEY` block found")]
    NoPrivateKey,
    #[error("not a usable RSA private key (2048 to 4096 bits): {0}")]
    Rsa(ring::error::KeyRejected),
    /// jsonwebtoken could not read an RSA key that ring accepted.
    #[error("{0}")]
    RsaEncoding(jsonwebtoken::errors::Error),
    #[error("not a PKCS#8 {crv} private key: {source}")]
    Ec {
        crv: &'static str,
        source: ring::error::KeyRejected,
    },
    #[error("not a PKCS#8 Ed25519 private key: {0}")]
    Ed25519(ring::error::KeyRejected),
    #[error("cannot sign with this key: {0}")]
    ProbeSign(jsonwebtoken::errors::Error),
    #[error("a token signed with this key does not verify")]
    ProbeVerify,
}

/// One signing key with everything derived from it.
pub struct SigningKey {
    pub kid: Box<str>,
    pub alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Signature and `alg` only; the claims are checked by the caller against its clock.
    validation: Validation,
    /// The public key as a JWK (RFC 7517), for the JWKS document.
    pub jwk: Value,
}

/// Key material must never reach a log line.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The public half, as JWK members and as a verification key.
enum Public {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// `point` is the uncompressed SEC1 point `04 || x || y`.
    Ec {
        crv: &'static str,
        point: Vec<u8>,
    },
    Ed {
        x: Vec<u8>,
    },
}

impl SigningKey {
    /// Reads the key file named in the config.
    pub fn load(key: &model::SigningKey) -> Result<Self, KeyError> {
        let pem = std::fs::read(&key.key_file).map_err(|source| KeyError::Read {
            kid: key.kid.clone(),
            path: key.key_file.clone(),
            source,
        })?;
        Self::from_pem(&key.kid, key.algorithm, &pem).map_err(|source| KeyError::Invalid {
            kid: key.kid.clone(),
            path: key.key_file.clone(),
            source,
        })
    }

    pub fn from_pem(kid: &str, algorithm: JwtAlgorithm, pem: &[u8]) -> Result<Self, PemError> {
        let alg = jwt_algorithm(algorithm)?;
        let (tag, der) = private_key_der(pem)?;
        let (public, encoding) = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => rsa(&tag, &der, pem)?,
            Algorithm::ES256 => ec(&der, &signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256")?,
            Algorithm::ES384 => ec(&der, &signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384")?,
            Algorithm::EdDSA => ed25519(&der)?,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => return Err(PemError::Hmac),
        };
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let key = Self {
            kid: kid.into(),
            alg,
            encoding,
            decoding: public.decoding_key(),
            validation,
            jwk: public.jwk(kid, algorithm),
        };
        key.probe()?;
        Ok(key)
    }

    /// Signs `claims` as a JWT with this key's `kid` and `typ: at+jwt` (RFC 9068 §2.1).
    pub fn sign<T: serde::Serialize>(
        &self,
        claims: &T,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(self.alg);
        header.typ = Some(AT_JWT.to_owned());
        header.kid = Some(self.kid.to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Checks the signature (and that `alg` is this key's) and returns the claims.
    pub fn verify<T: serde::de::DeserializeOwned>(&self, token: &str) -> Option<T> {
        jsonwebtoken::decode::<T>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }

    fn probe(&self) -> Result<(), PemError> {
        let token = self
            .sign(&json!({ "probe": true }))
            .map_err(PemError::ProbeSign)?;
        self.verify::<Value>(&token)
            .map(|_| ())
            .ok_or(PemError::ProbeVerify)
    }
}

/// The JWT `typ` of access tokens (RFC 9068 §2.1).
pub const AT_JWT: &str = "at+jwt";

fn jwt_algorithm(alg: JwtAlgorithm) -> Result<Algorithm, PemError> {
    Ok(match alg {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
        JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => {
            return Err(PemError::Hmac);
        }
    })
}

/// The first private-key block of a PEM file: its tag and DER bytes.
fn private_key_der(pem: &[u8]) -> Result<(String, Vec<u8>), PemError> {
    let text = std::str::from_utf8(pem).map_err(|_| PemError::NotPem)?;
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(tag) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {tag}-----");
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            body.push_str(line);
        }
        match tag {
            "PRIVATE KEY" | "RSA PRIVATE KEY" if closed => {
                let der = STANDARD.decode(body).map_err(|_| PemError::Base64 {
                    tag: tag.to_owned(),
                })?;
                return Ok((tag.to_owned(), der));
            }
            "PRIVATE KEY" | "RSA PRIVATE KEY" => {
                return Err(PemError::Unterminated {
                    tag: tag.to_owned(),
                });
            }
            "ENCRYPTED PRIVATE KEY" => return Err(PemError::Encrypted),
            "EC PRIVATE KEY" => return Err(PemError::Sec1),
            _ => {}
        }
    }
    Err(PemError::NoPrivateKey)
}

fn rsa(tag: &str, der: &[u8], pem: &[u8]) -> Result<(Public, EncodingKey), PemError> {
    let pair = if tag == "RSA PRIVATE KEY" {
        signature::RsaKeyPair::from_der(der)
    } else {
        signature::RsaKeyPair::from_pkcs8(der)
    }
    .map_err(PemError::Rsa)?;
    let parts = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    // jsonwebtoken wants PKCS#1 DER; its PEM reader unwraps PKCS#8 for us.
    let encoding = EncodingKey::from_rsa_pem(pem).map_err(PemError::RsaEncoding)?;
    Ok((
        Public::Rsa {
            n: parts.n,
            e: parts.e,
        },
        encoding,
    ))
}

fn ec(
    der: &[u8],
    alg: &'static signature::EcdsaSigningAlgorithm,
    crv: &'static str,
) -> Result<(Public, EncodingKey), PemError> {
    let pair = signature::EcdsaKeyPair::from_pkcs8(alg, der, &SystemRandom::new())
        .map_err(|source| PemError::Ec { crv, source })?;
    let point = pair.public_key().as_ref().to_vec();
    Ok((Public::Ec { crv, point }, EncodingKey::from_ec_der(der)))
}

fn ed25519(der: &[u8]) -> Result<(Public, EncodingKey), PemError> {
    // OpenSSL writes PKCS#8 v1 (no public key inside); ring derives it.
    let pair =
        signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(PemError::Ed25519)?;
    let x = pair.public_key().as_ref().to_vec();
    Ok((Public::Ed { x }, EncodingKey::from_ed_der(der)))
}

impl Public {
    fn decoding_key(&self) -> DecodingKey {
        match self {
            Self::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
            // ring verifies ECDSA against the uncompressed point, EdDSA the raw 32 bytes.
            Self::Ec { point, .. } => DecodingKey::from_ec_der(point),
            Self::Ed { x } => DecodingKey::from_ed_der(x),
        }
    }

    fn jwk(&self, kid: &str, alg: JwtAlgorithm) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let mut jwk = match self {
            Self::Rsa { n, e } => json!({ "kty": "RSA", "n": b64(n), "e": b64(e) }),
            Self::Ec { crv, point } => {
                // Uncompressed point: 0x04, then x and y of equal length.
                let coords = point.get(1..).unwrap_or_default();
                let (x, y) = coords.split_at(coords.len() / 2);
                json!({ "kty": "EC", "crv": crv, "x": b64(x), "y": b64(y) })
            }
            Self::Ed { x } => json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(x) }),
        };
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg);
        jwk["use"] = json!("sig");
        jwk
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PKCS#8 PEM key made by ring, for tests.
    pub(crate) fn pem(alg: JwtAlgorithm) -> Vec<u8> {
        let rng = SystemRandom::new();
        let der = match alg {
            JwtAlgorithm::ES256 => signature::EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            )
            .unwrap(),
            JwtAlgorithm::EdDSA => signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap(),
            other => panic!("no generator for {other:?}"),
        };
        let body = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
        .into_bytes()
    }

    #[test]
    fn ec_and_ed_keys_publish_their_public_part() {
        let ec =
            SigningKey::from_pem("k1", JwtAlgorithm::ES256, &pem(JwtAlgorithm::ES256)).unwrap();
        assert_eq!(ec.jwk["kty"], "EC");
        assert_eq!(ec.jwk["crv"], "P-256");
        assert_eq!(ec.jwk["x"].as_str().unwrap().len(), 43);
        assert_eq!(ec.jwk["alg"], "ES256");
        assert_eq!(ec.jwk["use"], "sig");
        let ed =
            SigningKey::from_pem("k2", JwtAlgorithm::EdDSA, &pem(JwtAlgorithm::EdDSA)).unwrap();
        assert_eq!(ed.jwk["kty"], "OKP");
        assert_eq!(ed.jwk["kid"], "k2");
        let token = ed.sign(&json!({ "a": 1 })).unwrap();
        assert_eq!(ed.verify::<Value>(&token).unwrap()["a"], 1);
        assert!(ec.verify::<Value>(&token).is_none());
    }

    #[test]
    fn keys_must_fit_their_algorithm() {
        let ed = pem(JwtAlgorithm::EdDSA);
        let err = |alg, pem: &[u8]| SigningKey::from_pem("k", alg, pem).unwrap_err();
        let es = err(JwtAlgorithm::ES256, &ed);
        assert!(matches!(es, PemError::Ec { crv: "P-256", .. }), "{es}");
        assert!(es.to_string().contains("P-256"), "{es}");
        let rsa = err(JwtAlgorithm::RS256, &ed);
        assert!(rsa.to_string().contains("RSA"), "{rsa}");
        let hs = err(JwtAlgorithm::HS256, &ed);
        assert!(matches!(hs, PemError::Hmac), "{hs}");
        assert!(hs.to_string().contains("HMAC"), "{hs}");
        let sec1 = b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        let sec1 = err(JwtAlgorithm::ES256, sec1);
        assert!(sec1.to_string().contains("openssl pkcs8"), "{sec1}");
        let junk = err(JwtAlgorithm::ES256, b"hello");
        assert!(matches!(junk, PemError::NoPrivateKey), "{junk}");
        let open = err(JwtAlgorithm::ES256, b"-----BEGIN PRIVATE KEY-----\nAAAA\n");
        assert_eq!(open.to_string(), "no `-----END PRIVATE KEY-----` line");
    }
}
