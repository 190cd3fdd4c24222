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
//!
//! Every stored set carries a generation, bumped whenever a fetch brings a different
//! document, so the verified-token cache can tell that the keys it relied on may be gone.
//! A set whose refreshes keep failing is used for a while (an issuer outage must not lock
//! every client out at once) but not forever: past [`Timing::max_stale`] it counts as no
//! keys, since a key the issuer revoked in the meantime would otherwise stay trusted.

use std::sync::atomic::{AtomicBool, Ordering};
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
use ring::digest::{SHA256, digest};
use tokio::sync::watch;

use crate::jwt::keys::{self, Family, VerifyKey};

/// Longest a fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted; real ones are a few KiB.
const MAX_BODY: usize = 1024 * 1024;
/// Shortest time a set whose refreshes fail stays in use (see [`Timing::max_stale`]).
const MIN_STALE_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// A failing set stays in use for at least this many refresh periods.
const STALE_REFRESHES: u32 = 24;

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
    /// Age after which a set is no longer used, however its refreshes fail.
    pub max_stale: Duration,
}

impl Timing {
    /// `max_stale` is 24 h or 24 refresh periods, whichever is longer: long enough to
    /// ride out an issuer outage, short enough that a revoked key does not live on.
    pub fn new(refresh: Duration, min_interval: Duration) -> Self {
        Self {
            refresh,
            min_interval,
            max_stale: MIN_STALE_LIMIT.max(refresh.saturating_mul(STALE_REFRESHES)),
        }
    }
}

/// The keys of one fetched document.
#[derive(Debug)]
pub struct KeySet {
    pub keys: Vec<VerifyKey>,
    /// Bumped whenever a fetch brings a different document than the set it replaces.
    pub generation: u64,
    /// SHA-256 of the document, to tell a changed document from a refetched one.
    digest: [u8; 32],
    fetched: Instant,
    /// Set once the too-old warning was logged, so it is logged once per set.
    stale_warned: AtomicBool,
}

impl KeySet {
    /// The keys named `kid`.
    pub fn with_kid<'a>(&'a self, kid: &'a str) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.kid.as_deref() == Some(kid))
    }

    fn new(keys: Vec<VerifyKey>, generation: u64, digest: [u8; 32]) -> Self {
        Self {
            keys,
            generation,
            digest,
            fetched: Instant::now(),
            stale_warned: AtomicBool::new(false),
        }
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

    /// The cached key set, fetched first if there is none yet (or only one past
    /// `max_stale`). A stale set is still returned while a background refresh replaces it.
    pub async fn current(self: &Arc<Self>, timing: Timing) -> Option<Arc<KeySet>> {
        if let Some(set) = self.refreshed(timing) {
            return Some(set);
        }
        self.fetch_and_wait(timing.min_interval).await;
        self.usable(timing)
    }

    /// After a token named a key the set lacks: fetch again, unless a fetch happened
    /// within `min_interval` (a flood of made-up `kid`s must not turn into a flood of
    /// requests to the issuer), then return whatever set is current.
    pub async fn refetch(self: &Arc<Self>, timing: Timing) -> Option<Arc<KeySet>> {
        self.fetch_and_wait(timing.min_interval).await;
        self.usable(timing)
    }

    /// The generation of the set [`Jwks::current`] would use, without waiting for any
    /// fetch: for cache hits, which must not wait but must notice a key set change.
    pub fn generation(self: &Arc<Self>, timing: Timing) -> Option<u64> {
        // A guard rather than an `Arc` clone: this runs on every cache hit.
        let guard = self.keys.load();
        let set = guard.as_ref()?;
        self.refresh_if_due(set, timing);
        self.trusted(set, timing).then_some(set.generation)
    }

    /// The usable set, with a background refresh started when it is due.
    fn refreshed(self: &Arc<Self>, timing: Timing) -> Option<Arc<KeySet>> {
        let set = self.keys.load_full()?;
        self.refresh_if_due(&set, timing);
        self.trusted(&set, timing).then_some(set)
    }

    /// The stored set unless it is older than `max_stale`.
    fn usable(&self, timing: Timing) -> Option<Arc<KeySet>> {
        let set = self.keys.load_full()?;
        self.trusted(&set, timing).then_some(set)
    }

    /// Starts a background refresh of a set older than `refresh`. Not awaited: the
    /// request goes on with the keys it has.
    fn refresh_if_due(self: &Arc<Self>, set: &KeySet, timing: Timing) {
        if set.fetched.elapsed() >= timing.refresh {
            drop(self.start_fetch(timing.min_interval));
        }
    }

    /// Whether `set` is young enough to verify with; warns once when it no longer is.
    fn trusted(&self, set: &KeySet, timing: Timing) -> bool {
        let age = set.fetched.elapsed();
        if age < timing.max_stale {
            return true;
        }
        if !set.stale_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                url = %self.url,
                age_secs = age.as_secs(),
                "JWKS refreshes keep failing and the last good keys are too old to trust; \
                 this issuer's tokens are refused until a fetch succeeds"
            );
        }
        false
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
            Ok((keys, digest)) => {
                let generation = next_generation(self.keys.load().as_deref(), &digest);
                tracing::debug!(url = %self.url, keys = keys.len(), generation, "JWKS fetched");
                // One fetch runs at a time (`in_flight`), so this load-then-store is no race.
                let set = KeySet::new(keys, generation, digest);
                self.keys.store(Some(Arc::new(set)));
            }
            Err(error) => {
                let kept = self.keys.load().is_some();
                tracing::warn!(url = %self.url, %error, kept_previous_keys = kept, "JWKS fetch failed");
            }
        }
    }

    /// Installs a key set directly (tests of the verifier that need no server), as a
    /// changed document: the generation goes up.
    #[cfg(test)]
    pub(crate) fn preload(&self, keys: Vec<VerifyKey>) {
        let generation = self.keys.load().as_ref().map_or(1, |s| s.generation + 1);
        let set = KeySet::new(keys, generation, [0; 32]);
        self.keys.store(Some(Arc::new(set)));
    }
}

/// The generation of a set fetched as `digest`: unchanged for the same document, so a
/// scheduled refresh does not send every cached token back to verification.
fn next_generation(old: Option<&KeySet>, digest: &[u8; 32]) -> u64 {
    match old {
        Some(old) if old.digest == *digest => old.generation,
        Some(old) => old.generation.wrapping_add(1),
        None => 1,
    }
}

/// The keys of the document at `uri`, and the document's SHA-256.
async fn fetch(uri: &Uri) -> Result<(Vec<VerifyKey>, [u8; 32]), JwksError> {
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
    let mut sha = [0u8; 32];
    sha.copy_from_slice(digest(&SHA256, &body).as_ref());
    Ok((parse(&body)?, sha))
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

/// TLS for outgoing calls of the gateway's own (JWKS fetches, CDN purges): the system's
/// trusted roots, loaded once per process.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
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
        let timing = Timing::new(Duration::from_secs(3600), Duration::from_secs(60));
        assert!(jwks.current(timing).await.is_none());
        let first = jwks.state().last_attempt;
        assert!(first.is_some());
        // Within the interval, no new attempt is made.
        assert!(jwks.refetch(timing).await.is_none());
        assert_eq!(jwks.state().last_attempt, first);
        assert!(jwks.state().in_flight.is_none());
    }

    #[test]
    fn only_a_changed_document_bumps_the_generation() {
        assert_eq!(next_generation(None, &[1; 32]), 1);
        let set = KeySet::new(Vec::new(), 7, [1; 32]);
        assert_eq!(next_generation(Some(&set), &[1; 32]), 7);
        assert_eq!(next_generation(Some(&set), &[2; 32]), 8);
    }

    #[test]
    fn the_stale_limit_is_a_day_or_24_refreshes() {
        let minute = Duration::from_secs(60);
        assert_eq!(Timing::new(minute, minute).max_stale, MIN_STALE_LIMIT);
        let long = Timing::new(Duration::from_secs(7200), minute);
        assert_eq!(long.max_stale, Duration::from_secs(48 * 3600));
    }

    #[tokio::test]
    async fn a_set_too_old_to_trust_counts_as_no_keys() {
        let jwks = Jwks::new("http://127.0.0.1:9/jwks").unwrap();
        let timing = Timing {
            refresh: Duration::from_secs(3600),
            min_interval: Duration::from_secs(3600),
            max_stale: Duration::from_millis(50),
        };
        jwks.preload(Vec::new());
        let generation = jwks.generation(timing);
        assert_eq!(generation, Some(1));
        assert!(jwks.current(timing).await.is_some());
        tokio::time::sleep(Duration::from_millis(80)).await;
        // The fetch that would replace it fails (nothing listens on port 9).
        assert!(jwks.current(timing).await.is_none());
        assert!(jwks.refetch(timing).await.is_none());
        assert_eq!(jwks.generation(timing), None);
        jwks.preload(Vec::new());
        assert_eq!(jwks.generation(timing), Some(2), "a new set is used again");
    }
}
