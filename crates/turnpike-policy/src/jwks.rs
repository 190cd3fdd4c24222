//! JWKS documents of external token issuers: fetched when first needed, cached, refreshed
//! in the background, and fetched again (rate-limited) when a token names a key we do
//! not know, which is how issuers announce a key rotation.
//!
//! One [`Jwks`] exists per URL and outlives config reloads, so a reload neither loses the
//! keys nor makes every gateway node hit the issuer again. Fetches run in a spawned task:
//! a client that hangs up must not cancel a fetch other requests are waiting for. The
//! gateway runs one current-thread runtime per worker, so the task lands on the runtime
//! of the request that needed it, and everything shared here is runtime-agnostic
//! (atomics, a std mutex never held across `.await`, a watch channel).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use crate::jwt::keys::{self, Family, VerifyKey};

/// Longest a fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted; real ones are a few KiB.
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("invalid JWKS URL {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("request failed: {0}")]
    Request(String),
    #[error("the server answered {0}")]
    Status(http::StatusCode),
    #[error("reading the body failed or it exceeds 1 MiB: {0}")]
    Body(String),
    #[error("not a JWKS document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the document holds no usable signature key")]
    NoKeys,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// How often a provider wants its JWKS refreshed.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Age after which the cached set is refreshed in the background.
    pub refresh: Duration,
    /// Least time between two fetches that are not scheduled refreshes.
    pub min_interval: Duration,
}

/// The keys of one fetched document.
#[derive(Debug)]
pub struct KeySet {
    pub keys: Vec<VerifyKey>,
    fetched: Instant,
}

impl KeySet {
    /// The keys named `kid`.
    pub fn with_kid<'a>(&'a self, kid: &'a str) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.kid.as_deref() == Some(kid))
    }
}

#[derive(Debug, Default)]
struct FetchState {
    /// Completion of the fetch now running, for requests that want to wait for it.
    in_flight: Option<watch::Receiver<bool>>,
    last_attempt: Option<Instant>,
}

/// One issuer's JWKS URL and what was last fetched from it.
#[derive(Debug)]
pub struct Jwks {
    url: Box<str>,
    uri: Uri,
    keys: ArcSwapOption<KeySet>,
    state: Mutex<FetchState>,
}

impl Jwks {
    pub fn new(url: &str) -> Result<Arc<Self>, JwksError> {
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| JwksError::Url {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(JwksError::Url {
                url: url.to_owned(),
                message: "expected an http:// or https:// URL".into(),
            });
        }
        Ok(Arc::new(Self {
            url: url.into(),
            uri,
            keys: ArcSwapOption::empty(),
            state: Mutex::new(FetchState::default()),
        }))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn state(&self) -> MutexGuard<'_, FetchState> {
        // Every update of the state is a single assignment, so a poisoned lock still
        // guards consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached key set, fetched first if there is none yet. A stale set is still
    /// returned while a background refresh replaces it.
    pub async fn current(self: &Arc<Self>, timing: Timing) -> Option<Arc<KeySet>> {
        if let Some(set) = self.keys.load_full() {
            if set.fetched.elapsed() >= timing.refresh {
                // Not awaited: this request goes on with the keys it has.
                drop(self.start_fetch(timing.min_interval));
            }
            return Some(set);
        }
        self.fetch_and_wait(timing.min_interval).await;
        self.keys.load_full()
    }

    /// After a token named a key the set lacks: fetch again, unless a fetch happened
    /// within `min_interval` (a flood of made-up `kid`s must not turn into a flood of
    /// requests to the issuer), then return whatever set is current.
    pub async fn refetch(self: &Arc<Self>, timing: Timing) -> Option<Arc<KeySet>> {
        self.fetch_and_wait(timing.min_interval).await;
        self.keys.load_full()
    }

    async fn fetch_and_wait(self: &Arc<Self>, min_interval: Duration) {
        if let Some(mut done) = self.start_fetch(min_interval) {
            // An error only means the task is gone (its runtime shut down): stop waiting.
            let _ = done.wait_for(|finished| *finished).await;
        }
    }

    /// Joins the running fetch or starts one if the rate limit allows; `None` when no
    /// fetch is running or allowed.
    fn start_fetch(self: &Arc<Self>, min_interval: Duration) -> Option<watch::Receiver<bool>> {
        let mut state = self.state();
        if let Some(running) = &state.in_flight {
            // A closed channel is a fetch whose task died; it no longer counts.
            if running.has_changed().is_ok() {
                return Some(running.clone());
            }
        }
        if state
            .last_attempt
            .is_some_and(|t| t.elapsed() < min_interval)
        {
            return None;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(url = %self.url, "JWKS fetch needs a tokio runtime; none is running");
            return None;
        };
        let (done_tx, done_rx) = watch::channel(false);
        state.in_flight = Some(done_rx.clone());
        state.last_attempt = Some(Instant::now());
        drop(state);
        let jwks = self.clone();
        runtime.spawn(async move {
            jwks.run_fetch().await;
            jwks.state().in_flight = None;
            let _ = done_tx.send(true);
        });
        Some(done_rx)
    }

    async fn run_fetch(&self) {
        let result = match tokio::time::timeout(FETCH_TIMEOUT, Box::pin(fetch(&self.uri))).await {
            Ok(result) => result,
            Err(_) => Err(JwksError::Timeout(FETCH_TIMEOUT)),
        };
        match result {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.len(), "JWKS fetched");
                self.keys.store(Some(Arc::new(KeySet {
                    keys,
                    fetched: Instant::now(),
                })));
            }
            Err(error) => {
                let kept = self.keys.load().is_some();
                tracing::warn!(url = %self.url, %error, kept_previous_keys = kept, "JWKS fetch failed");
            }
        }
    }

    /// Installs a key set directly (tests of the verifier that need no server).
    #[cfg(test)]
    pub(crate) fn preload(&self, keys: Vec<VerifyKey>) {
        self.keys.store(Some(Arc::new(KeySet {
            keys,
            fetched: Instant::now(),
        })));
    }
}

async fn fetch(uri: &Uri) -> Result<Vec<VerifyKey>, JwksError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(FETCH_TIMEOUT));
    let https = HttpsConnectorBuilder::new()
        .with_tls_config((*tls_config()?).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    // A client per fetch: fetches are rare, and a pooled connection would tie this
    // worker's requests to another worker's runtime.
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(https);
    let req = Request::get(uri.clone())
        .header(ACCEPT, "application/jwk-set+json, application/json")
        .header(USER_AGENT, concat!("turnpike/", env!("CARGO_PKG_VERSION")))
        .body(Empty::new())
        .map_err(|e| JwksError::Request(e.to_string()))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| JwksError::Request(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(JwksError::Status(resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| JwksError::Body(e.to_string()))?
        .to_bytes();
    parse(&body)
}

/// The signature keys of a JWKS document. Keys this gateway cannot use (encryption
/// keys, unknown types, symmetric keys, which have no place in a published document)
/// are skipped, not fatal: issuers publish such keys next to the ones that matter.
pub fn parse(body: &[u8]) -> Result<Vec<VerifyKey>, JwksError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let doc: Document = serde_json::from_slice(body)?;
    let keys: Vec<VerifyKey> = doc
        .keys
        .iter()
        .filter_map(|k| match keys::from_jwk(k) {
            Ok(key) if key.family != Family::Hmac => Some(key),
            Ok(_) => None,
            Err(error) => {
                tracing::debug!(%error, "JWKS key skipped");
                None
            }
        })
        .collect();
    if keys.is_empty() {
        return Err(JwksError::NoKeys);
    }
    Ok(keys)
}

/// TLS for JWKS fetches: the system's trusted roots, loaded once per process.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "could not load a system root certificate");
    }
    roots.add_parsable_certificates(found.certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_only_usable_signature_keys() {
        let doc = br#"{"keys": [
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "sig"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "enc", "use": "enc"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "weird", "kid": "w"}
        ]}"#;
        let keys = parse(doc).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("sig"));
        assert!(matches!(parse(br#"{"keys": []}"#), Err(JwksError::NoKeys)));
        assert!(matches!(parse(b"<html>"), Err(JwksError::Json(_))));
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(Jwks::new("https://idp.example/jwks").is_ok());
        assert!(Jwks::new("http://127.0.0.1:1/jwks").is_ok());
        assert!(Jwks::new("ftp://idp.example/jwks").is_err());
        assert!(Jwks::new("/jwks").is_err());
    }

    #[tokio::test]
    async fn failures_are_rate_limited_and_keep_nothing_they_did_not_have() {
        // Port 9 on localhost: nothing listens, the fetch fails fast.
        let jwks = Jwks::new("http://127.0.0.1:9/jwks").unwrap();
        let timing = Timing {
            refresh: Duration::from_secs(3600),
            min_interval: Duration::from_secs(60),
        };
        assert!(jwks.current(timing).await.is_none());
        let first = jwks.state().last_attempt;
        assert!(first.is_some());
        // Within the interval, no new attempt is made.
        assert!(jwks.refetch(timing).await.is_none());
        assert_eq!(jwks.state().last_attempt, first);
        assert!(jwks.state().in_flight.is_none());
    }
}
