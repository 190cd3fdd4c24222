//! What policies may look at: a borrowed view of the request head plus what the
//! connection established (the real client IP, a verified client certificate).

use std::net::IpAddr;

use http::{HeaderMap, Method, Uri};
use turnpike_config::certificate::CertificateName;

/// A verified client certificate, parsed once per connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCert {
    /// Subject distinguished name in RFC 4514 form (`CN=alice,O=Example`).
    pub subject: String,
    /// Issuer distinguished name in the same form: the subject of the CA that signed it.
    pub issuer: String,
    /// Every name the certificate can be matched by, each with its kind, most specific
    /// first: the fingerprint, the subject, then the DNS, email and URI subject
    /// alternative names in the certificate's order.
    pub names: Vec<CertificateName>,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    /// The client address after the trusted-proxy walk.
    pub client_ip: IpAddr,
    pub client_cert: Option<&'a ClientCert>,
}

impl RequestView<'_> {
    /// The value of query parameter `name`, still percent-encoded.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.uri
            .query()?
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The value of cookie `name` from any `Cookie` header.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"'))
    }
}
