//! The names a client certificate can be matched by, as `consumers[].certificates` writes
//! them and as the gateway reads them from a verified certificate.
//!
//! Every name carries its kind. An entry without a prefix is a subject DN (RFC 4514);
//! `dns:`, `email:`, `uri:` and `sha256:` entries match only that kind of name. Keeping the
//! kinds apart is what stops a certificate from passing one kind of name off as another,
//! such as an email SAN whose text is someone else's subject. Config validation and the
//! runtime map both parse entries here, so they cannot disagree on what an entry means.

mod dn;

use std::fmt;

pub use dn::{DnError, attribute_name, canonical_dn, escape_value};

/// The kind of a certificate name. Names of different kinds never match each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// The subject distinguished name, RFC 4514 form.
    Subject,
    /// A DNS subject alternative name.
    Dns,
    /// An email (RFC 822) subject alternative name.
    Email,
    /// A URI subject alternative name.
    Uri,
    /// The SHA-256 fingerprint of the whole DER certificate.
    Sha256,
}

impl NameKind {
    /// The prefix of entries of this kind; subjects have none.
    pub fn prefix(self) -> Option<&'static str> {
        match self {
            NameKind::Subject => None,
            NameKind::Dns => Some("dns"),
            NameKind::Email => Some("email"),
            NameKind::Uri => Some("uri"),
            NameKind::Sha256 => Some("sha256"),
        }
    }
}

/// One name of one kind, in the normal form both sides compare: DNS names and email
/// domains lower-cased, fingerprints lower-case hex, subjects in canonical RFC 4514 form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertificateName {
    kind: NameKind,
    value: Box<str>,
}

/// Why a `certificates` entry cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "unknown prefix `{0}:`: expected `dns:`, `email:`, `uri:` or `sha256:`, or a subject DN without a prefix"
    )]
    UnknownPrefix(String),
    #[error("`{0}:` needs a value after the prefix")]
    Empty(&'static str),
    #[error("a DNS name must not contain whitespace")]
    Dns,
    #[error("expected an email address (`local@domain`)")]
    Email,
    #[error("expected a URI with a scheme (e.g. `uri:spiffe://example.org/service`)")]
    Uri,
    #[error(
        "expected 64 hex digits (the SHA-256 of the DER certificate; pairs may be separated by `:`)"
    )]
    Fingerprint,
    #[error("not a subject DN `KEY=value[,KEY=value...]`: {source}{hint}")]
    Subject {
        source: DnError,
        /// What the entry probably meant, for entries written before names had prefixes.
        hint: String,
    },
}

impl CertificateName {
    /// Reads a configured entry: `dns:`, `email:`, `uri:` or `sha256:` and a value, or a
    /// subject DN. Prefixes are case-insensitive, so names copied from OpenSSL's output
    /// (`DNS:api.example.com`) work.
    pub fn parse(entry: &str) -> Result<Self, NameError> {
        let Some((prefix, value)) = split_prefix(entry) else {
            return Self::parse_subject(entry);
        };
        let kind = [
            NameKind::Dns,
            NameKind::Email,
            NameKind::Uri,
            NameKind::Sha256,
        ]
        .into_iter()
        .find(|k| k.prefix().is_some_and(|p| p.eq_ignore_ascii_case(prefix)))
        .ok_or_else(|| NameError::UnknownPrefix(prefix.to_owned()))?;
        if value.is_empty() {
            return Err(NameError::Empty(kind.prefix().unwrap_or_default()));
        }
        let has_space = value.contains(char::is_whitespace);
        match kind {
            NameKind::Dns if has_space => Err(NameError::Dns),
            NameKind::Dns => Ok(Self::dns(value)),
            NameKind::Email => match value.rsplit_once('@') {
                Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !has_space => {
                    Ok(Self::email(value))
                }
                _ => Err(NameError::Email),
            },
            NameKind::Uri if has_space || !has_scheme(value) => Err(NameError::Uri),
            NameKind::Uri => Ok(Self::uri(value)),
            NameKind::Sha256 => fingerprint(value).map(|hex| Self::sha256(&hex)),
            NameKind::Subject => Self::parse_subject(value),
        }
    }

    fn parse_subject(entry: &str) -> Result<Self, NameError> {
        canonical_dn(entry)
            .map(|dn| Self::new(NameKind::Subject, &dn))
            .map_err(|source| {
                // Entries used to be subjects or bare SANs; say how to write the latter now.
                let hint = match (entry.contains('='), entry.contains('@')) {
                    (true, _) => String::new(),
                    (false, true) => format!("; an email address is written `email:{entry}`"),
                    (false, false) => format!("; a DNS name is written `dns:{entry}`"),
                };
                NameError::Subject { source, hint }
            })
    }

    /// A subject already in canonical RFC 4514 form, as read from a certificate.
    pub fn subject(dn: &str) -> Self {
        Self::new(NameKind::Subject, dn)
    }

    /// DNS names compare case-insensitively (RFC 4343).
    pub fn dns(name: &str) -> Self {
        Self::new(NameKind::Dns, &name.to_ascii_lowercase())
    }

    /// The domain of an address compares case-insensitively, the local part exactly
    /// (RFC 5280 §7.5).
    pub fn email(addr: &str) -> Self {
        let value = match addr.rsplit_once('@') {
            Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
            None => addr.to_owned(),
        };
        Self::new(NameKind::Email, &value)
    }

    pub fn uri(uri: &str) -> Self {
        Self::new(NameKind::Uri, uri)
    }

    /// A fingerprint as hex digits, either case.
    pub fn sha256(hex: &str) -> Self {
        Self::new(NameKind::Sha256, &hex.to_ascii_lowercase())
    }

    fn new(kind: NameKind, value: &str) -> Self {
        Self {
            kind,
            value: value.into(),
        }
    }

    pub fn kind(&self) -> NameKind {
        self.kind
    }

    /// The name without its prefix.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// The entry as it would be written in the config, prefix included.
impl fmt::Display for CertificateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind.prefix() {
            Some(prefix) => write!(f, "{prefix}:{}", self.value),
            None => f.write_str(&self.value),
        }
    }
}

/// `prefix:value` when the text before the first `:` is a bare word. A subject DN always
/// has `=` before any `:` (`UID=a:b`), so it is never taken for a prefix.
fn split_prefix(entry: &str) -> Option<(&str, &str)> {
    let (prefix, value) = entry.split_once(':')?;
    let word = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_alphanumeric());
    word.then_some((prefix, value))
}

/// RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`.
fn has_scheme(uri: &str) -> bool {
    let Some((scheme, _)) = uri.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// 64 hex digits, or 32 pairs separated by `:` as OpenSSL prints them.
fn fingerprint(value: &str) -> Result<String, NameError> {
    let hex = if value.contains(':') {
        if !value.split(':').all(|pair| pair.len() == 2) {
            return Err(NameError::Fingerprint);
        }
        value.replace(':', "")
    } else {
        value.to_owned()
    };
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(NameError::Fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(entry: &str) -> (NameKind, String) {
        let name = CertificateName::parse(entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
        (name.kind(), name.to_string())
    }

    #[test]
    fn entries_carry_their_kind_and_normal_form() {
        use NameKind::*;
        let fp = "AB".repeat(32);
        let pairs = vec!["ab"; 32].join(":");
        let cases = [
            ("CN=alice,O=Example", Subject, "CN=alice,O=Example"),
            ("cn=alice,2.5.4.10=Example", Subject, "CN=alice,O=Example"),
            ("dns:Api.Example.COM", Dns, "dns:api.example.com"),
            ("DNS:api.example.com", Dns, "dns:api.example.com"),
            ("email:Ops@Example.COM", Email, "email:Ops@example.com"),
            (
                "uri:spiffe://example.org/a",
                Uri,
                "uri:spiffe://example.org/a",
            ),
            (
                &format!("sha256:{fp}"),
                Sha256,
                &format!("sha256:{}", "ab".repeat(32)),
            ),
            (
                &format!("SHA256:{pairs}"),
                Sha256,
                &format!("sha256:{}", "ab".repeat(32)),
            ),
        ];
        for (entry, kind, shown) in cases {
            assert_eq!(parsed(entry), (kind, shown.to_owned()), "{entry}");
        }
        // The same text as another kind is another name.
        let subject = CertificateName::parse("CN=alice,O=Example").unwrap();
        assert_ne!(subject, CertificateName::email("CN=alice,O=Example"));
        assert_eq!(subject, CertificateName::subject("CN=alice,O=Example"));
    }

    #[test]
    fn bad_entries_say_what_was_expected() {
        let err = |entry: &str| CertificateName::parse(entry).unwrap_err().to_string();
        assert!(err("spiffe://example.org/a").contains("unknown prefix `spiffe:`"));
        assert!(err("dns:").contains("`dns:` needs a value"));
        assert!(err("dns:a b").contains("whitespace"));
        assert!(err("email:nobody").contains("local@domain"));
        assert!(err("uri:/relative").contains("scheme"));
        assert!(err("sha256:abc").contains("64 hex digits"));
        assert!(err(&format!("sha256:{}", "g".repeat(64))).contains("64 hex digits"));
        assert!(err(&format!("sha256:{}", vec!["abc"; 21].join(":"))).contains("64 hex"));
        let bare = err("billing.internal.test");
        assert!(bare.contains("`dns:billing.internal.test`"), "{bare}");
        assert!(err("ops@example.test").contains("`email:ops@example.test`"));
        assert!(err("CN=alice, O=Example").starts_with("not a subject DN"));
    }
}
