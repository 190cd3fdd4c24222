//! Consumers at run time, and the headers that tell the upstream who called.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use turnpike_config::model;

/// A caller: one from the config, or an ad-hoc one named by a token (an external
/// identity provider's user, an OAuth client without a configured consumer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub name: Box<str>,
    pub groups: Vec<Box<str>>,
    /// Precomputed header values, so the request path does not format them.
    pub id_value: Option<HeaderValue>,
    pub groups_value: Option<HeaderValue>,
}

impl Consumer {
    pub fn new(name: &str, groups: &[String]) -> Self {
        let joined = groups.join(",");
        Self {
            name: name.into(),
            groups: groups.iter().map(|g| g.as_str().into()).collect(),
            id_value: HeaderValue::from_str(name).ok(),
            groups_value: (!groups.is_empty())
                .then(|| HeaderValue::from_str(&joined).ok())
                .flatten(),
        }
    }

    pub fn from_config(c: &model::Consumer) -> Self {
        Self::new(&c.name, &c.groups)
    }

    pub fn in_any_group(&self, groups: &[Box<str>]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }
}

/// All configured consumers, by name.
#[derive(Debug, Default)]
pub struct Consumers {
    by_name: foldhash::HashMap<Box<str>, Arc<Consumer>>,
}

impl Consumers {
    pub fn build(consumers: &[model::Consumer]) -> Self {
        Self {
            by_name: consumers
                .iter()
                .map(|c| (c.name.as_str().into(), Arc::new(Consumer::from_config(c))))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Consumer>> {
        self.by_name.get(name)
    }

    /// The configured consumer of that name, else an ad-hoc one.
    pub fn get_or_adhoc(&self, name: &str) -> Arc<Consumer> {
        self.get(name)
            .cloned()
            .unwrap_or_else(|| Arc::new(Consumer::new(name, &[])))
    }
}

/// The names of the identity headers sent upstream.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub id: HeaderName,
    pub groups: HeaderName,
    pub credential: HeaderName,
    pub anonymous: HeaderName,
    pub scopes: HeaderName,
    /// Headers JWT claims are forwarded in; stripped too, as a token may lack the claim.
    pub claims: Vec<HeaderName>,
}

impl IdentityHeaders {
    pub fn build(h: &model::ConsumerHeaders) -> Result<Self, http::header::InvalidHeaderName> {
        Ok(Self {
            id: HeaderName::from_bytes(h.id.as_bytes())?,
            groups: HeaderName::from_bytes(h.groups.as_bytes())?,
            credential: HeaderName::from_bytes(h.credential.as_bytes())?,
            anonymous: HeaderName::from_bytes(h.anonymous.as_bytes())?,
            scopes: HeaderName::from_bytes(h.scopes.as_bytes())?,
            claims: Vec::new(),
        })
    }

    /// Adds the headers JWT claims are forwarded in.
    pub fn with_claims(mut self, claims: Vec<HeaderName>) -> Self {
        self.claims = claims;
        self
    }

    /// Removes whatever the client sent in these headers; only the gateway sets them.
    pub fn strip(&self, headers: &mut HeaderMap) {
        for name in [
            &self.id,
            &self.groups,
            &self.credential,
            &self.anonymous,
            &self.scopes,
        ] {
            headers.remove(name);
        }
        for name in &self.claims {
            headers.remove(name);
        }
    }
}
