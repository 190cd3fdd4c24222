//! Purge fan-out: every purge is also sent to the configured CDN purge endpoints (generic
//! webhooks whose URL, headers and body are templates, enough for Fastly's and
//! Cloudflare's purge APIs), in the background, retried with back-off on network errors,
//! 5xx and 429. What still failed is kept (the last [`MAX_FAILURES`]) for the admin API.
//!
//! Templates: `{kind}` is `tag`, `url` or `prefix`; `{values}` the values as a JSON array;
//! `{value}` one value (a template using it sends one request per value), percent-encoded
//! in the URL and JSON-escaped (without quotes) in the body.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use turnpike_config::model::{CdnPurge, PurgeKind};

use super::lock;

/// Failures kept for the admin API.
pub const MAX_FAILURES: usize = 100;

/// A purge an endpoint did not accept after all its attempts.
#[derive(Debug, Clone)]
pub struct Failure {
    pub endpoint: String,
    pub kind: &'static str,
    pub values: Vec<String>,
    pub error: String,
    pub attempts: u32,
    /// Unix seconds of the last attempt.
    pub at: u64,
}

#[derive(Debug, Default)]
pub struct PurgeCounts {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
}

/// The configured endpoints and what happened to purges sent to them.
#[derive(Debug)]
pub struct Purger {
    endpoints: Vec<Arc<CdnPurge>>,
    failures: Arc<Mutex<VecDeque<Failure>>>,
    pub counts: Arc<PurgeCounts>,
}

impl Purger {
    pub(crate) fn new(endpoints: &[CdnPurge]) -> Self {
        Self {
            endpoints: endpoints.iter().cloned().map(Arc::new).collect(),
            failures: Arc::default(),
            counts: Arc::default(),
        }
    }

    /// This purger with `prev`'s record of failures and counts (a reload keeps them).
    pub(crate) fn inherit(self: Arc<Self>, prev: &Purger) -> Arc<Self> {
        Arc::new(Self {
            endpoints: self.endpoints.clone(),
            failures: prev.failures.clone(),
            counts: prev.counts.clone(),
        })
    }

    pub(crate) fn failures(&self) -> Vec<Failure> {
        lock(&self.failures).iter().cloned().collect()
    }

    /// Sends the purge to every endpoint that wants this kind, in the background.
    pub(crate) fn send(&self, kind: PurgeKind, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("CDN purge needs a tokio runtime; none is running");
            return;
        };
        for endpoint in self.endpoints.iter().filter(|e| e.kinds.contains(&kind)) {
            for request in requests(endpoint, kind, values) {
                let (endpoint, failures, counts) =
                    (endpoint.clone(), self.failures.clone(), self.counts.clone());
                runtime.spawn(async move {
                    let (attempts, result) = send_with_retries(&endpoint, &request).await;
                    match result {
                        Ok(()) => counts.sent.fetch_add(1, Ordering::Relaxed),
                        Err(error) => {
                            tracing::warn!(endpoint = %endpoint.name, %error, attempts, "CDN purge failed");
                            let mut f = lock(&failures);
                            if f.len() == MAX_FAILURES {
                                f.pop_front();
                            }
                            f.push_back(Failure {
                                endpoint: endpoint.name.clone(),
                                kind: kind.as_str(),
                                values: request.values,
                                error,
                                attempts,
                                at: unix_now(),
                            });
                            counts.failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                });
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One rendered request.
#[derive(Debug, Clone)]
struct Rendered {
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    /// The values it purges (for the failure record).
    values: Vec<String>,
}

/// One request for all values, or one per value when a template names `{value}`.
fn requests(e: &CdnPurge, kind: PurgeKind, values: &[String]) -> Vec<Rendered> {
    let per_value = e.url.contains("{value}")
        || e.body.as_deref().is_some_and(|b| b.contains("{value}"))
        || e.headers.values().any(|v| v.contains("{value}"));
    let groups: Vec<&[String]> = if per_value {
        values.chunks(1).collect()
    } else {
        vec![values]
    };
    groups
        .into_iter()
        .map(|vals| {
            let one = vals.first().map_or("", String::as_str);
            let array = serde_json::to_string(vals).unwrap_or_else(|_| "[]".to_owned());
            let fill = |t: &str, value: &str| {
                t.replace("{kind}", kind.as_str())
                    .replace("{values}", &array)
                    .replace("{value}", value)
            };
            let json_escaped = serde_json::to_string(one).unwrap_or_default();
            let json_inner = json_escaped.trim_matches('"');
            Rendered {
                url: fill(&e.url, &percent_encode(one)),
                headers: e
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), fill(v, one)))
                    .collect(),
                body: e.body.as_deref().map(|b| fill(b, json_inner)),
                values: vals.to_vec(),
            }
        })
        .collect()
}

/// Everything but RFC 3986's unreserved characters is percent-encoded.
fn percent_encode(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Attempts with back-off (0.2 s, 0.4 s, ...); returns the attempts made and the outcome.
async fn send_with_retries(e: &CdnPurge, r: &Rendered) -> (u32, Result<(), String>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = tokio::time::timeout(e.timeout.as_std(), send_once(e, r))
            .await
            .unwrap_or_else(|_| Err(Retry::Yes("timed out".to_owned())));
        match result {
            Ok(()) => return (attempt, Ok(())),
            Err(Retry::No(err)) => return (attempt, Err(err)),
            Err(Retry::Yes(err)) if attempt > e.retries => return (attempt, Err(err)),
            Err(Retry::Yes(_)) => {
                let backoff = Duration::from_millis(200 << (attempt - 1).min(6));
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

enum Retry {
    Yes(String),
    No(String),
}

async fn send_once(e: &CdnPurge, r: &Rendered) -> Result<(), Retry> {
    let no = |m: String| Retry::No(m);
    let method = Method::from_bytes(e.method.as_bytes()).map_err(|e| no(e.to_string()))?;
    let mut req = Request::builder().method(method).uri(&r.url);
    for (k, v) in &r.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| no(e.to_string()))?;
        let value = HeaderValue::from_str(v).map_err(|e| no(e.to_string()))?;
        req = req.header(name, value);
    }
    if r.body.is_some()
        && !r
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    let body = Full::new(Bytes::from(r.body.clone().unwrap_or_default()));
    let req = req.body(body).map_err(|e| no(e.to_string()))?;
    let resp = client()
        .map_err(no)?
        .request(req)
        .await
        .map_err(|e| Retry::Yes(format!("request failed: {e}")))?;
    let status = resp.status();
    // Read the (small) answer so the connection closes cleanly; its content is not needed.
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
        Err(Retry::Yes(format!("status {status}")))
    } else {
        Err(Retry::No(format!("status {status}")))
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client per request: purges are rare, and a pooled connection would tie one
/// runtime's requests to another's.
fn client() -> Result<HttpsClient, String> {
    let tls = turnpike_policy::jwks::tls_config().map_err(|e| e.to_string())?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let https = HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(https))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str, body: Option<&str>) -> CdnPurge {
        CdnPurge {
            name: "cdn".into(),
            url: url.into(),
            method: "POST".into(),
            headers: [("Fastly-Key".to_owned(), "k-{kind}".to_owned())].into(),
            body: body.map(str::to_owned),
            kinds: vec![PurgeKind::Tag],
            retries: 0,
            timeout: turnpike_config::units::Duration::from_millis(1000),
        }
    }

    #[test]
    fn one_request_for_all_values_or_one_per_value() {
        let values = vec!["a b".to_owned(), "c\"d".to_owned()];
        let all = requests(
            &endpoint("https://cdn/purge", Some(r#"{"tags":{values}}"#)),
            PurgeKind::Tag,
            &values,
        );
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].body.as_deref(), Some(r#"{"tags":["a b","c\"d"]}"#));
        assert_eq!(all[0].headers[0].1, "k-tag");
        let each = requests(
            &endpoint("https://cdn/purge/{value}", Some(r#"{"t":"{value}"}"#)),
            PurgeKind::Tag,
            &values,
        );
        assert_eq!(each.len(), 2);
        assert_eq!(each[0].url, "https://cdn/purge/a%20b");
        assert_eq!(each[1].body.as_deref(), Some(r#"{"t":"c\"d"}"#));
    }
}
