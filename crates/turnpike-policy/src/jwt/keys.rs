//! Verification keys for JWT providers, read from the config (a PEM file, an inline JWK,
//! an HMAC secret) or from a fetched JWKS document, each tagged with the algorithm family
//! it may verify so a key is never used by an algorithm of another family.

use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use turnpike_config::model;
use x509_parser::pem::Pem;

/// Groups of algorithms that share a key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

impl Family {
    pub fn of(alg: Algorithm) -> Self {
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Self::Hmac,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Self::Rsa,
            Algorithm::ES256 | Algorithm::ES384 => Self::Ec,
            Algorithm::EdDSA => Self::Ed,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Hmac => "HMAC",
            Self::Rsa => "RSA",
            Self::Ec => "EC",
            Self::Ed => "Ed25519",
        }
    }
}

/// The `jsonwebtoken` algorithm of a configured one.
pub fn algorithm(alg: model::JwtAlgorithm) -> Algorithm {
    use model::JwtAlgorithm as M;
    match alg {
        M::HS256 => Algorithm::HS256,
        M::HS384 => Algorithm::HS384,
        M::HS512 => Algorithm::HS512,
        M::RS256 => Algorithm::RS256,
        M::RS384 => Algorithm::RS384,
        M::RS512 => Algorithm::RS512,
        M::PS256 => Algorithm::PS256,
        M::PS384 => Algorithm::PS384,
        M::PS512 => Algorithm::PS512,
        M::ES256 => Algorithm::ES256,
        M::ES384 => Algorithm::ES384,
        M::EdDSA => Algorithm::EdDSA,
    }
}

/// One key a token may be verified with.
#[derive(Clone)]
pub struct VerifyKey {
    pub kid: Option<Box<str>>,
    pub family: Family,
    /// The one algorithm this key is for, when its JWK says so (or its curve implies it).
    pub alg: Option<Algorithm>,
    pub key: DecodingKey,
}

// By hand: `DecodingKey` has no Debug, and key material has no business in logs anyway.
impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// Whether a token signed with `alg` may be checked with this key.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.family == Family::of(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path}: expected a PEM {expected} public key or certificate")]
    Pem { path: String, expected: String },
    #[error("invalid JWK: {0}")]
    Jwk(String),
    #[error("a key needs exactly one of `file`, `jwk` or `secret`")]
    Missing,
}

/// A key from the config; `families` are those of the provider's algorithms and decide
/// how a PEM file is read.
pub fn from_config(key: &model::JwtKey, families: &[Family]) -> Result<VerifyKey, KeyError> {
    let mut out = if let Some(secret) = &key.secret {
        VerifyKey {
            kid: None,
            family: Family::Hmac,
            alg: None,
            key: DecodingKey::from_secret(secret.as_bytes()),
        }
    } else if let Some(jwk) = &key.jwk {
        from_jwk(jwk)?
    } else if let Some(path) = &key.file {
        let pem = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.clone(),
            source,
        })?;
        let (family, key) = from_pem(&pem, families).ok_or_else(|| KeyError::Pem {
            path: path.clone(),
            expected: families
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(" or "),
        })?;
        VerifyKey {
            kid: None,
            family,
            alg: None,
            key,
        }
    } else {
        return Err(KeyError::Missing);
    };
    if let Some(kid) = &key.kid {
        out.kid = Some(kid.as_str().into());
    }
    Ok(out)
}

/// A public key (or the key of a certificate) in PEM form, of one of `families`.
pub fn from_pem(pem: &[u8], families: &[Family]) -> Option<(Family, DecodingKey)> {
    if let Some(found) = from_certificate(pem) {
        return families.contains(&found.0).then_some(found);
    }
    families.iter().find_map(|family| {
        let key = match family {
            Family::Rsa => DecodingKey::from_rsa_pem(pem),
            Family::Ec => DecodingKey::from_ec_pem(pem),
            Family::Ed => DecodingKey::from_ed_pem(pem),
            Family::Hmac => return None,
        };
        key.ok().map(|k| (*family, k))
    })
}

/// The subject key of the first certificate in a PEM bundle, read with a real X.509
/// parser rather than by guessing at the first bit string.
fn from_certificate(pem: &[u8]) -> Option<(Family, DecodingKey)> {
    let block = Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")?;
    let cert = block.parse_x509().ok()?;
    let spki = cert.public_key();
    let data = &spki.subject_public_key.data;
    match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => Some((Family::Rsa, DecodingKey::from_rsa_der(data))),
        "1.2.840.10045.2.1" => Some((Family::Ec, DecodingKey::from_ec_der(data))),
        "1.3.101.112" => Some((Family::Ed, DecodingKey::from_ed_der(data))),
        _ => None,
    }
}

/// A key from a JWK object. Encryption keys and curves `jsonwebtoken` cannot verify are
/// refused rather than kept, so a JWKS never lends a key to the wrong use.
pub fn from_jwk(value: &serde_json::Value) -> Result<VerifyKey, KeyError> {
    let jwk: Jwk =
        serde_json::from_value(value.clone()).map_err(|e| KeyError::Jwk(e.to_string()))?;
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err(KeyError::Jwk("an encryption key (`use: enc`)".into()));
    }
    let named = match &jwk.common.key_algorithm {
        Some(a) => Some(
            a.to_string()
                .parse::<Algorithm>()
                .map_err(|_| KeyError::Jwk(format!("`alg` {a} is not a signature algorithm")))?,
        ),
        None => None,
    };
    let (family, implied) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Family::Rsa, None),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => (Family::Ec, Some(Algorithm::ES256)),
            EllipticCurve::P384 => (Family::Ec, Some(Algorithm::ES384)),
            ref c => return Err(KeyError::Jwk(format!("unsupported EC curve {c:?}"))),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            (Family::Ed, None)
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            return Err(KeyError::Jwk(format!(
                "unsupported OKP curve {:?}",
                p.curve
            )));
        }
        AlgorithmParameters::OctetKey(_) => (Family::Hmac, None),
    };
    let alg = match (named, implied) {
        (Some(n), Some(i)) if n != i => {
            return Err(KeyError::Jwk(format!(
                "`alg` {n:?} does not match the curve"
            )));
        }
        (Some(n), _) => Some(n),
        (None, i) => i,
    };
    if alg.is_some_and(|a| Family::of(a) != family) {
        return Err(KeyError::Jwk("`alg` does not match `kty`".into()));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| KeyError::Jwk(e.to_string()))?;
    Ok(VerifyKey {
        kid: jwk.common.key_id.as_deref().map(Into::into),
        family,
        alg,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jwk_families_and_algorithms() {
        let rsa = from_jwk(&json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "r"})).unwrap();
        assert_eq!(rsa.family, Family::Rsa);
        assert!(rsa.fits(Algorithm::RS256) && rsa.fits(Algorithm::PS512));
        assert!(!rsa.fits(Algorithm::HS256) && !rsa.fits(Algorithm::ES256));
        assert_eq!(rsa.kid.as_deref(), Some("r"));

        let only = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "RS256"});
        let only = from_jwk(&only).unwrap();
        assert!(only.fits(Algorithm::RS256) && !only.fits(Algorithm::PS256));

        let ec = json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"});
        let ec = from_jwk(&ec).unwrap();
        assert!(ec.fits(Algorithm::ES384) && !ec.fits(Algorithm::ES256));
    }

    #[test]
    fn unusable_jwks_are_refused() {
        for bad in [
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "enc"}),
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "RSA-OAEP"}),
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "ES256"}),
            json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "alg": "ES384"}),
            json!({"kty": "OKP", "crv": "X25519", "x": "AA"}),
            json!({"kty": "nope"}),
        ] {
            assert!(from_jwk(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pem_is_read_as_one_of_the_allowed_families_only() {
        let pem = b"-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEwZUgLbC92hrt0ae/O/gcH9QO0XZo
SEy5pY69VsFa1guAEDGj46a/BsQySdNIe3A+Zdj3FeO4o8+wWb1TcifTgw==
-----END PUBLIC KEY-----
";
        assert_eq!(
            from_pem(pem, &[Family::Rsa, Family::Ec]).unwrap().0,
            Family::Ec
        );
        assert!(from_pem(pem, &[Family::Rsa]).is_none());
        assert!(from_pem(pem, &[Family::Hmac]).is_none());
    }
}
