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

    fn names(&self) -> impl Iterator<Item = &HeaderName> {
        [
            &self.id,
            &self.groups,
            &self.credential,
            &self.anonymous,
            &self.scopes,
        ]
        .into_iter()
        .chain(&self.claims)
    }

    /// Removes whatever the client sent in these headers; only the gateway sets them.
    ///
    /// Spellings with `_` for `-` go too: CGI-style upstreams (WSGI, Rack, PHP) read
    /// `X_Consumer_Id` and `X-Consumer-Id` as the same variable.
    pub fn strip(&self, headers: &mut HeaderMap) {
        for name in self.names() {
            headers.remove(name);
        }
        if !headers.keys().any(|k| k.as_str().contains('_')) {
            return;
        }
        let forged: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().contains('_'))
            .filter(|k| {
                let dashed = k.as_str().replace('_', "-");
                self.names().any(|n| n.as_str() == dashed)
            })
            .cloned()
            .collect();
        for name in forged {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_are_stripped_in_every_spelling() {
        let names = IdentityHeaders::build(&model::ConsumerHeaders::default())
            .unwrap()
            .with_claims(vec![HeaderName::from_static("x-user-email")]);
        let mut h = HeaderMap::new();
        for forged in [
            "x-consumer-id",
            "x_consumer_id",
            "x_consumer-groups",
            "x_user_email",
        ] {
            h.insert(
                HeaderName::from_static(forged),
                HeaderValue::from_static("admin"),
            );
        }
        h.insert("x_other_thing", HeaderValue::from_static("kept"));
        names.strip(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x_other_thing"));
    }
}
