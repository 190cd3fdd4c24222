//! Client certificates to consumers.
//!
//! The TLS listener has already verified the certificate chain against its `client_auth`
//! CA bundle before any of this runs; here the verified leaf is only read (once per
//! connection, [`client_cert`]) and mapped to a consumer (per request,
//! [`CertificateMap::attempt`]). A consumer's `certificates` entries each name one kind of
//! certificate name: the subject (RFC 4514, no prefix), a `dns:`, `email:` or `uri:`
//! subject alternative name, or a `sha256:` fingerprint. The map is keyed by kind and
//! name, so a SAN whose text reads like a subject never matches a subject entry.
//!
//! Trust model: routes are not tied to listeners, so every CA in any listener's bundle
//! may vouch for every consumer unless the consumer's `certificate_issuer` pins the one
//! CA its certificates must come from. Revocation (CRL, OCSP) is not checked: a revoked
//! certificate works until it expires, or until its CA leaves the bundle or its entry
//! leaves the consumer.

use std::fmt::Write as _;
use std::sync::Arc;

use http::HeaderValue;
use turnpike_config::certificate::{CertificateName, attribute_name, canonical_dn, escape_value};
use turnpike_config::model;
use x509_parser::asn1_rs::ToDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::auth::{Attempt, Identity};
use crate::consumer::{Consumer, Consumers};
use crate::request::{ClientCert, RequestView};

/// Certificate names, each with its kind, to the consumers they identify.
#[derive(Debug, Default)]
pub struct CertificateMap {
    by_name: foldhash::HashMap<CertificateName, Entry>,
}

#[derive(Debug)]
struct Entry {
    consumer: Arc<Consumer>,
    /// The issuer DN (canonical RFC 4514) the certificate must have, when pinned.
    issuer: Option<Arc<str>>,
}

impl CertificateMap {
    pub fn build(consumers: &[model::Consumer], rt: &Consumers) -> Self {
        let mut by_name = foldhash::HashMap::default();
        for c in consumers {
            let Some(consumer) = rt.get(&c.name) else {
                continue;
            };
            // The validator rejects a pin that is not a DN. Should one get here, the
            // consumer gets no certificates at all: dropping just the pin would let every
            // trusted CA name the consumer, the opposite of what was asked for.
            let issuer = match c.certificate_issuer.as_deref().map(canonical_dn) {
                None => None,
                Some(Ok(dn)) => Some(Arc::<str>::from(dn)),
                Some(Err(_)) => continue,
            };
            // Entries the validator rejected are skipped for the same reason; they match
            // nothing rather than something they were not meant to.
            for name in c
                .certificates
                .iter()
                .filter_map(|e| CertificateName::parse(e).ok())
            {
                // The validator rejects duplicates; should one slip through, the first
                // consumer keeps it rather than the last one silently taking it over.
                by_name.entry(name).or_insert_with(|| Entry {
                    consumer: consumer.clone(),
                    issuer: issuer.clone(),
                });
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
        // The most specific name that is configured decides. When its consumer is pinned
        // to another CA the certificate is refused, rather than tried against its less
        // specific names: it claims to be that consumer, from a CA not trusted to say so.
        let Some(entry) = cert.names.iter().find_map(|name| self.by_name.get(name)) else {
            return Attempt::Invalid;
        };
        if entry
            .issuer
            .as_deref()
            .is_some_and(|pin| pin != cert.issuer)
        {
            return Attempt::Invalid;
        }
        Attempt::Valid(Identity {
            consumer: entry.consumer.clone(),
            // Header values are ASCII in practice (other bytes are obsolete text that
            // upstreams decode differently); the fingerprint of a certificate whose
            // subject has other text still identifies it exactly.
            credential: Some(&cert.subject)
                .filter(|s| s.is_ascii())
                .and_then(|s| HeaderValue::from_str(s).ok())
                .or_else(|| HeaderValue::from_str(&cert.fingerprint).ok()),
            scopes: None,
            claims: Arc::default(),
            anonymous: false,
            hide: None,
        })
    }
}

/// Reads a verified client certificate (DER): its subject and issuer in RFC 4514 form,
/// its SHA-256 fingerprint, and every name it can be matched by. `None` when the
/// certificate cannot be parsed, which the listener's verifier makes unlikely.
pub fn client_cert(der: &[u8]) -> Option<ClientCert> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = rfc4514(cert.subject());
    let fingerprint = hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
    let mut names = vec![
        CertificateName::sha256(&fingerprint),
        CertificateName::subject(&subject),
    ];
    // A malformed or duplicated SAN extension leaves the subject and fingerprint.
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push(CertificateName::dns(dns)),
                GeneralName::RFC822Name(email) => names.push(CertificateName::email(email)),
                GeneralName::URI(uri) => names.push(CertificateName::uri(uri)),
                _ => {}
            }
        }
    }
    Some(ClientCert {
        subject,
        issuer: rfc4514(cert.issuer()),
        names,
        fingerprint,
    })
}

/// RFC 4514 string form of a distinguished name, in the canonical form configured DNs
/// are brought to ([`canonical_dn`]): the RDNs in reverse order of their encoding (most
/// specific first), separated by `,` without spaces, multi-valued RDNs joined by `+`.
/// x509-parser's own `Display` keeps the encoded order and separates with `, `, which
/// would make `O=Example, CN=alice` of what operators write as `CN=alice,O=Example`.
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
    let short = attribute_name(&oid);
    match (short, attr.as_str()) {
        (Some(short), Ok(value)) => format!("{short}={}", escape_value(value)),
        (short, _) => {
            let der = attr.attr_value().to_der_vec().unwrap_or_default();
            format!("{}=#{}", short.unwrap_or(&oid), hex(&der))
        }
    }
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
                SanType::Rfc822Name("Alice@Example.test".try_into().unwrap()),
                SanType::URI("spiffe://example.test/alice".try_into().unwrap()),
            ],
        );
        let cert = client_cert(&der).unwrap();
        assert_eq!(cert.subject, "CN=alice,O=Example\\, Inc.,C=DE");
        assert_eq!(cert.issuer, cert.subject, "self-signed");
        // What the certificate says is already in the form configured DNs are brought to.
        assert_eq!(canonical_dn(&cert.subject).unwrap(), cert.subject);
        assert_eq!(
            cert.fingerprint,
            hex(ring::digest::digest(&ring::digest::SHA256, &der).as_ref())
        );
        assert_eq!(cert.fingerprint.len(), 64);
        assert_eq!(
            cert.names,
            [
                CertificateName::sha256(&cert.fingerprint),
                CertificateName::subject("CN=alice,O=Example\\, Inc.,C=DE"),
                CertificateName::dns("alice.example.test"),
                CertificateName::email("Alice@example.test"),
                CertificateName::uri("spiffe://example.test/alice"),
            ]
        );
        assert!(client_cert(b"not a certificate").is_none());
    }

    #[test]
    fn the_issuer_is_the_signing_cas_subject() {
        let mut ca = rcgen::CertificateParams::default();
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Clients CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = rcgen::Issuer::new(ca, rcgen::KeyPair::generate().unwrap());
        let mut leaf = rcgen::CertificateParams::default();
        leaf.distinguished_name = rcgen::DistinguishedName::new();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let der = leaf.signed_by(&key, &issuer).unwrap().der().to_vec();
        let cert = client_cert(&der).unwrap();
        assert_eq!(cert.subject, "CN=alice");
        assert_eq!(cert.issuer, "CN=Clients CA,O=Example");
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
        let subject = client_cert(&der).unwrap().subject;
        assert_eq!(subject, "1.2.840.113549.1.9.1=#0c03624078,CN=bob");
        assert_eq!(canonical_dn(&subject).unwrap(), subject);
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

    fn consumer(name: &str, certs: &[&str], issuer: Option<&str>) -> model::Consumer {
        model::Consumer {
            name: name.to_owned(),
            groups: Vec::new(),
            metadata: Default::default(),
            keys: Vec::new(),
            basic_auth: Vec::new(),
            certificates: certs.iter().map(|c| (*c).to_owned()).collect(),
            certificate_issuer: issuer.map(str::to_owned),
            plan: None,
            rate_limits: None,
            quota: None,
        }
    }

    /// A certificate as [`client_cert`] reads it, issued by `CN=Right CA`.
    fn cert(subject: &str, sans: &[CertificateName], fingerprint: &str) -> ClientCert {
        let mut names = vec![
            CertificateName::sha256(fingerprint),
            CertificateName::subject(subject),
        ];
        names.extend_from_slice(sans);
        ClientCert {
            subject: subject.to_owned(),
            issuer: "CN=Right CA".to_owned(),
            names,
            fingerprint: fingerprint.to_owned(),
        }
    }

    /// The consumer `map` gives `cert`, `None` when it refuses it.
    fn matched(map: &CertificateMap, cert: Option<&ClientCert>) -> Option<String> {
        let (headers, uri) = (HeaderMap::new(), Uri::from_static("/"));
        match map.attempt(&view(&headers, &uri, cert)) {
            Attempt::Valid(id) => Some(id.consumer.name.to_string()),
            Attempt::Absent => Some("<absent>".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn each_entry_matches_only_its_own_kind_of_name() {
        let robot_fp = "cd".repeat(32);
        let config = [
            consumer("alice", &["CN=alice,O=Example"], None),
            consumer(
                "svc",
                &["dns:Billing.Internal.test", "email:ops@Example.test"],
                None,
            ),
            consumer(
                "robot",
                &[&format!("sha256:{}", robot_fp.to_uppercase())],
                None,
            ),
        ];
        let map = CertificateMap::build(&config, &Consumers::build(&config));
        let fp = "ab".repeat(32);
        let dns = CertificateName::dns;
        let email = CertificateName::email;

        let got = |c: &ClientCert| matched(&map, Some(c));
        assert_eq!(
            got(&cert("CN=alice,O=Example", &[], &fp)).as_deref(),
            Some("alice")
        );
        let by_dns = cert("CN=billing", &[dns("billing.internal.test")], &fp);
        assert_eq!(got(&by_dns).as_deref(), Some("svc"));
        let by_email = cert("CN=someone", &[email("ops@example.TEST")], &fp);
        assert_eq!(got(&by_email).as_deref(), Some("svc"));
        assert_eq!(
            got(&cert("CN=robot", &[], &robot_fp)).as_deref(),
            Some("robot")
        );
        // Names of another kind whose text equals an entry's.
        let impostors = [
            cert("CN=mallory", &[email("CN=alice,O=Example")], &fp),
            cert("CN=mallory", &[dns("CN=alice,O=Example")], &fp),
            cert(
                "CN=mallory",
                &[CertificateName::uri("CN=alice,O=Example")],
                &fp,
            ),
            cert("CN=mallory", &[dns("ops@example.test")], &fp),
            cert("CN=mallory", &[dns(&robot_fp)], &fp),
            cert("billing.internal.test", &[], &fp),
        ];
        for impostor in &impostors {
            assert_eq!(got(impostor), None, "{impostor:?}");
        }
        assert_eq!(matched(&map, None).as_deref(), Some("<absent>"));
    }

    #[test]
    fn a_pinned_consumer_needs_a_certificate_from_its_issuer() {
        let config = [
            consumer("pinned", &["CN=pinned"], Some("cn=Right CA")),
            consumer("elsewhere", &["CN=pinned"], Some("CN=Other CA")),
            consumer("svc", &["dns:svc.test"], None),
            consumer("broken", &["CN=broken"], Some("not a DN")),
        ];
        let map = CertificateMap::build(&config, &Consumers::build(&config));
        let fp = "ab".repeat(32);
        let got = |c: &ClientCert| matched(&map, Some(c));
        assert_eq!(got(&cert("CN=pinned", &[], &fp)).as_deref(), Some("pinned"));
        let mut other = cert("CN=pinned", &[CertificateName::dns("svc.test")], &fp);
        other.issuer = "CN=Other CA".to_owned();
        assert_eq!(
            got(&other),
            None,
            "the first consumer keeps a duplicate, and a pin that fails does not fall through to other names"
        );
        // A pin that is not a DN (the validator's to reject) disables the consumer.
        assert_eq!(got(&cert("CN=broken", &[], &fp)), None);
    }

    #[test]
    fn the_credential_is_the_subject_or_else_the_fingerprint() {
        let config = [consumer("svc", &["dns:billing.internal.test"], None)];
        let map = CertificateMap::build(&config, &Consumers::build(&config));
        let (headers, uri) = (HeaderMap::new(), Uri::from_static("/"));
        let fp = "ab".repeat(32);
        let credential = |subject: &str| {
            let c = cert(
                subject,
                &[CertificateName::dns("billing.internal.test")],
                &fp,
            );
            match map.attempt(&view(&headers, &uri, Some(&c))) {
                Attempt::Valid(id) => id.credential.unwrap(),
                _ => panic!("known by DNS name"),
            }
        };
        assert_eq!(credential("CN=billing,O=Example"), "CN=billing,O=Example");
        assert_eq!(credential("CN=Jürgen"), fp.as_str());
    }
}
