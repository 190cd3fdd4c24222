//! Registered OAuth clients and their authentication.
//!
//! A client secret is checked with argon2id (`password::verify`), which costs
//! milliseconds and ~19 MiB by design. So it runs on tokio's blocking pool, never on a
//! worker thread, and a semaphore (shared across reloads) caps how many run at once: a
//! flood of bad credentials then queues instead of exhausting memory. An unknown client
//! id is verified against a dummy hash, so the answer takes as long as for a wrong
//! secret and does not reveal which ids exist.

use std::sync::Arc;

use http::HeaderValue;
use turnpike_config::model;

use super::form::Credentials;
use crate::password::{self, Busy};

/// One registered client.
#[derive(Debug)]
pub struct Client {
    pub id: Box<str>,
    secret_hash: Arc<str>,
    /// Scopes it may be granted, in config order.
    pub scopes: Vec<Box<str>>,
    /// The consumer its tokens act as.
    pub consumer: Box<str>,
    /// `client_id` as the credential header value.
    pub credential: Option<HeaderValue>,
}

impl Client {
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| &**s == scope)
    }
}

#[derive(Debug)]
pub struct Clients {
    by_id: foldhash::HashMap<Box<str>, Client>,
}

impl Clients {
    pub fn build(clients: &[model::OAuthClient]) -> Self {
        let by_id = clients
            .iter()
            .map(|c| {
                let client = Client {
                    id: c.client_id.as_str().into(),
                    secret_hash: c.secret_hash.as_str().into(),
                    scopes: c.scopes.iter().map(|s| s.as_str().into()).collect(),
                    consumer: c.consumer.as_deref().unwrap_or(&c.client_id).into(),
                    credential: HeaderValue::from_str(&c.client_id).ok(),
                };
                (client.id.clone(), client)
            })
            .collect();
        Self { by_id }
    }

    pub fn get(&self, id: &str) -> Option<&Client> {
        self.by_id.get(id)
    }

    /// Every scope some client may be granted, sorted (RFC 8414 `scopes_supported`).
    pub fn all_scopes(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .by_id
            .values()
            .flat_map(|c| c.scopes.iter().map(|s| &**s))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The client whose id and secret these are, if they match; `Busy` when too many
    /// secret checks are already waiting.
    pub async fn authenticate(&self, creds: &Credentials) -> Result<Option<&Client>, Busy> {
        let client = self.by_id.get(creds.client_id.as_str());
        let hash = client.map_or_else(
            || Arc::from(password::dummy_hash()),
            |c| c.secret_hash.clone(),
        );
        let ok = password::verify_limited(hash, creds.secret.clone()).await?;
        Ok(client.filter(|_| ok))
    }
}
