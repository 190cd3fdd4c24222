//! Client certificates to consumers.
//!
//! The TLS listener has already verified the certificate chain against its `client_auth`
//! CA bundle before any of this runs; here the verified leaf is only read (once per
//! connection, [`client_cert`]) and mapped to a consumer (per request,
//! [`CertificateMap::attempt`]). A consumer's `certificates` entries name either the
//! subject, as an RFC 4514 string (`CN=alice,O=Example`), or one of the certificate's
//! subject alternative names (DNS name, email address or URI).

use std::fmt::Write as _;
use std::sync::Arc;

use http::HeaderValue;
use turnpike_config::model;
use x509_parser::asn1_rs::ToDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::auth::{Attempt, Identity};
use crate::consumer::{Consumer, Consumers};
use crate::request::{ClientCert, RequestView};

/// Certificate subjects and alternative names to the consumers they identify.
#[derive(Debug, Default)]
pub struct CertificateMap {
    by_name: foldhash::HashMap<Box<str>, Arc<Consumer>>,
}

impl CertificateMap {
    pub fn build(consumers: &[model::Consumer], rt: &Consumers) -> Self {
        let mut by_name = foldhash::HashMap::default();
        for c in consumers {
            let Some(consumer) = rt.get(&c.name) else {
                continue;
            };
            for name in &c.certificates {
                // The validator rejects duplicates; should one slip through, the first
                // consumer keeps it rather than the last one silently taking it over.
                by_name
                    .entry(normalise_entry(name))
                    .or_insert_with(|| consumer.clone());
            }
        }
        Self { by_name }
    }

    /// The consumer of the connection's verified client certificate. A certificate the
    /// CA vouched for but that maps to no consumer is refused, not treated as absent: the
    /// caller did present a credential, just not one this gateway knows.
    pub fn attempt(&self, req: &RequestView<'_>) -> Attempt {
        let Some(cert) = req.client_cert else {
            return Attempt::Absent;
        };
        let consumer = std::iter::once(&cert.subject)
            .chain(&cert.names)
            .find_map(|name| self.by_name.get(name.as_str()));
        match consumer {
            Some(consumer) => Attempt::Valid(Identity {
                consumer: consumer.clone(),
                // Header values are ASCII in practice (other bytes are obsolete text
                // that upstreams decode differently); the fingerprint of a certificate
                // whose subject has other text still identifies it exactly.
                credential: Some(&cert.subject)
                    .filter(|s| s.is_ascii())
                    .and_then(|s| HeaderValue::from_str(s).ok())
                    .or_else(|| HeaderValue::from_str(&cert.fingerprint).ok()),
                scopes: None,
                claims: Vec::new(),
                anonymous: false,
                hide: None,
            }),
            None => Attempt::Invalid,
        }
    }
}

/// DNS names compare case-insensitively; certificates' DNS names are lower-cased when
/// read, so a configured name that looks like one is lower-cased too. Subjects (they
/// contain `=`), emails (`@`) and URIs (`:`) are kept exactly as written.
fn normalise_entry(name: &str) -> Box<str> {
    if name.contains(['=', '@', ':']) {
        name.into()
    } else {
        name.to_ascii_lowercase().into()
    }
}

/// Reads a verified client certificate (DER): its subject in RFC 4514 form, its DNS,
/// email and URI alternative names, and its SHA-256 fingerprint. `None` when the
/// certificate cannot be parsed, which the listener's verifier makes unlikely.
pub fn client_cert(der: &[u8]) -> Option<ClientCert> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = rfc4514(cert.subject());
    let mut names = Vec::new();
    // A malformed or duplicated SAN extension leaves only the subject to match on.
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push(dns.to_ascii_lowercase()),
                GeneralName::RFC822Name(email) => names.push((*email).to_owned()),
                GeneralName::URI(uri) => names.push((*uri).to_owned()),
                _ => {}
            }
        }
    }
    Some(ClientCert {
        subject,
        names,
        fingerprint: hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref()),
    })
}

/// RFC 4514 string form of a distinguished name: the RDNs in reverse order of their
/// encoding (most specific first), separated by `,` without spaces, multi-valued RDNs
/// joined by `+`. x509-parser's own `Display` keeps the encoded order and separates with
/// `, `, which would make `O=Example, CN=alice` of what operators write as
/// `CN=alice,O=Example`.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// One `type=value` pair. Types RFC 4514 §3 names use their short names; any other type
/// is written as its dotted OID with the value as `#` and the hex of its DER encoding
/// (§2.4), as OpenSSL's RFC 2253 mode and Go's `pkix.Name.String` do.
fn attribute(attr: &AttributeTypeAndValue<'_>) -> String {
    let oid = attr.attr_type().to_id_string();
    let short = match oid.as_str() {
        "2.5.4.3" => Some("CN"),
        "2.5.4.7" => Some("L"),
        "2.5.4.8" => Some("ST"),
        "2.5.4.10" => Some("O"),
        "2.5.4.11" => Some("OU"),
        "2.5.4.6" => Some("C"),
        "2.5.4.9" => Some("STREET"),
        "0.9.2342.19200300.100.1.25" => Some("DC"),
        "0.9.2342.19200300.100.1.1" => Some("UID"),
        _ => None,
    };
    match (short, attr.as_str()) {
        (Some(short), Ok(value)) => format!("{short}={}", escape(value)),
        (short, _) => {
            let der = attr.attr_value().to_der_vec().unwrap_or_default();
            format!("{}=#{}", short.unwrap_or(&oid), hex(&der))
        }
    }
}

/// Escapes a value as RFC 4514 §2.4 requires: `"+,;<>\` anywhere, `#` or a space at the
/// start, a space at the end, and NUL.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, ch) in value.chars().enumerate() {
        match ch {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(ch),
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method, Uri};

    /// A self-signed certificate with the given subject parts and SANs, as DER.
    fn cert_der(subject: &[(rcgen::DnType, &str)], sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = sans;
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (ty, value) in subject {
            params.distinguished_name.push(ty.clone(), *value);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_is_rfc4514_most_specific_first() {
        use rcgen::{DnType, SanType};
        let der = cert_der(
            &[
                (DnType::CountryName, "DE"),
                (DnType::OrganizationName, "Example, Inc."),
                (DnType::CommonName, "alice"),
            ],
            vec![
                SanType::DnsName("Alice.Example.test".try_into().unwrap()),
                SanType::Rfc822Name("Alice@example.test".try_into().unwrap()),
                SanType::URI("spiffe://example.test/alice".try_into().unwrap()),
            ],
        );
        let cert = client_cert(&der).unwrap();
        assert_eq!(cert.subject, "CN=alice,O=Example\\, Inc.,C=DE");
        assert_eq!(
            cert.names,
            [
                "alice.example.test",
                "Alice@example.test",
                "spiffe://example.test/alice"
            ]
        );
        assert_eq!(
            cert.fingerprint,
            hex(ring::digest::digest(&ring::digest::SHA256, &der).as_ref())
        );
        assert_eq!(cert.fingerprint.len(), 64);
        assert!(client_cert(b"not a certificate").is_none());
    }

    #[test]
    fn other_attribute_types_are_dotted_oids_with_hex_values() {
        let der = cert_der(
            &[
                (rcgen::DnType::CommonName, "bob"),
                (
                    rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
                    "b@x",
                ),
            ],
            Vec::new(),
        );
        // UTF8String (0x0c) of length 3.
        assert_eq!(
            client_cert(&der).unwrap().subject,
            "1.2.840.113549.1.9.1=#0c03624078,CN=bob"
        );
    }

    #[test]
    fn escaping_follows_rfc4514() {
        assert_eq!(escape(" #a+b;c\"d "), "\\ #a\\+b\\;c\\\"d\\ ");
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(escape("plain"), "plain");
    }

    fn view<'a>(
        headers: &'a HeaderMap,
        uri: &'a Uri,
        cert: Option<&'a ClientCert>,
    ) -> RequestView<'a> {
        RequestView {
            method: &Method::GET,
            uri,
            headers,
            client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            client_cert: cert,
        }
    }

    #[test]
    fn certificates_map_by_subject_or_alternative_name() {
        let yaml = |name: &str, certs: &[&str]| model::Consumer {
            name: name.to_owned(),
            groups: Vec::new(),
            metadata: Default::default(),
            keys: Vec::new(),
            basic_auth: Vec::new(),
            certificates: certs.iter().map(|c| (*c).to_owned()).collect(),
        };
        let config = [
            yaml("alice", &["CN=alice,O=Example"]),
            yaml("svc", &["Billing.Internal.test", "ops@example.test"]),
        ];
        let map = CertificateMap::build(&config, &Consumers::build(&config));
        let (headers, uri) = (HeaderMap::new(), Uri::from_static("/"));
        let cert = |subject: &str, names: &[&str]| ClientCert {
            subject: subject.to_owned(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            fingerprint: "ab".repeat(32),
        };
        let consumer = |attempt| match attempt {
            Attempt::Valid(id) => Some(id.consumer.name.to_string()),
            Attempt::Invalid => None,
            Attempt::Absent => Some("<absent>".to_owned()),
        };

        let alice = cert("CN=alice,O=Example", &[]);
        let by_dns = cert("CN=billing", &["billing.internal.test"]);
        let by_email = cert("CN=someone", &["ops@example.test"]);
        let stranger = cert("CN=mallory,O=Example", &["mallory.example.test"]);
        let got = |c: Option<&ClientCert>| consumer(map.attempt(&view(&headers, &uri, c)));
        assert_eq!(got(Some(&alice)).as_deref(), Some("alice"));
        assert_eq!(got(Some(&by_dns)).as_deref(), Some("svc"));
        assert_eq!(got(Some(&by_email)).as_deref(), Some("svc"));
        assert_eq!(got(Some(&stranger)), None);
        assert_eq!(got(None).as_deref(), Some("<absent>"));

        let Attempt::Valid(id) = map.attempt(&view(&headers, &uri, Some(&alice))) else {
            panic!("alice is known");
        };
        assert_eq!(id.credential.unwrap(), "CN=alice,O=Example");
        let utf8 = cert("CN=Jürgen", &["billing.internal.test"]);
        let Attempt::Valid(id) = map.attempt(&view(&headers, &uri, Some(&utf8))) else {
            panic!("known by DNS name");
        };
        assert_eq!(id.credential.unwrap(), "ab".repeat(32).as_str());
    }
}
