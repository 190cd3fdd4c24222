//! A small client of the admin API for the CLI: HTTP/1.1 over the hyper-util client already
//! in the dependency tree, the token from `TURNPIKE_ADMIN_TOKEN` (never an argument, so it
//! does not show in `ps`), and API errors turned into messages a person can act on.
//!
//! `https://` admin URLs (an admin listener with `admin.tls`) are verified against the
//! system's roots plus the CA given with `--admin-ca` / `TURNPIKE_ADMIN_CA`, for a listener
//! whose certificate comes from a private CA. There is no switch to skip verification: the
//! token travels in every request.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Where the token comes from; also the bootstrap variable of `turnpike serve`.
pub const TOKEN_ENV: &str = "TURNPIKE_ADMIN_TOKEN";
/// Longest wait for one admin API call.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Items per page when listing everything.
const PAGE: u32 = 1000;

/// A refusal from the admin API, shown with everything it said.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// `(path, message)` per problem.
    pub details: Vec<(String, String)>,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the admin API answered {} ({}): {}",
            self.status, self.code, self.message
        )?;
        for (path, message) in &self.details {
            let path = if path.is_empty() { "(body)" } else { path };
            write!(f, "\n  {path}: {message}")?;
        }
        if self.status == StatusCode::UNAUTHORIZED {
            write!(f, "\n  (set {TOKEN_ENV} to an admin token)")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiFailure {}

/// A successful answer: its body (null when empty) and headers (`ETag`, and where the
/// global policies come from).
#[derive(Debug)]
pub struct Reply {
    pub body: Value,
    pub headers: http::HeaderMap,
}

/// One admin API, at one base URL, with one token.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl AdminClient {
    /// A client for `url` with the token from the environment; `ca` is a PEM file of CA
    /// certificates trusted besides the system's, for `https://` URLs.
    pub fn new(url: &str, ca: Option<&Path>) -> anyhow::Result<Self> {
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty());
        Self::with_token(url, token, ca)
    }

    pub fn with_token(url: &str, token: Option<String>, ca: Option<&Path>) -> anyhow::Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        let tls = if base.starts_with("https://") {
            crate::admin_tls::client_config(ca)?
        } else if base.starts_with("http://") {
            // Never used for http://, but the connector wants one: trust nothing.
            crate::admin_tls::client_config_plain()?
        } else {
            bail!("{url} is not an admin API URL; expected http://HOST:PORT or https://HOST:PORT");
        };
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { base, token, http })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Calls `path` (under the base URL); any status but 2xx is an [`ApiFailure`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(method.clone()).uri(&url);
        if let Some(token) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(tag) = if_match {
            req = req.header(header::IF_MATCH, tag);
        }
        let bytes = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(v)?)
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(bytes))
            .with_context(|| {
                format!("cannot build a request to {url}: check the admin URL, and that {TOKEN_ENV} holds a token (tpa_...)")
            })?;
        let sent = tokio::time::timeout(TIMEOUT, self.http.request(req)).await;
        let response = match sent {
            Err(_) => bail!("the admin API at {} did not answer within 30 s", self.base),
            Ok(Err(e)) => return Err(unreachable(&self.base, &e)),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let headers = response.headers().clone();
        let collected = response.into_body().collect().await;
        let bytes = collected
            .with_context(|| format!("reading the answer of {method} {url}"))?
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if !status.is_success() {
            return Err(failure(status, &body).into());
        }
        Ok(Reply { body, headers })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.call(Method::GET, path, None, None).await
    }

    /// Every entity of `kind`, following `next` across pages.
    pub async fn list_all(&self, kind: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/{kind}?limit={PAGE}");
            if let Some(a) = &after {
                path.push_str(&format!("&after={}", segment(a)));
            }
            let page = self.get(&path).await?.body;
            if let Some(batch) = page.get("items").and_then(Value::as_array) {
                items.extend(batch.iter().cloned());
            }
            match page.get("next").and_then(Value::as_str) {
                Some(next) => after = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }
}

/// Says which URL could not be reached, with the cause at the bottom of the chain.
fn unreachable(base: &str, e: &hyper_util::client::legacy::Error) -> anyhow::Error {
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let hint = if cause.contains("certificate") {
        "(does the admin listener's certificate name this host, and is its CA trusted? give a private CA with --admin-ca FILE or TURNPIKE_ADMIN_CA)"
    } else {
        "(is `turnpike serve` running with an `admin:` section? point the CLI at it with --admin-url or TURNPIKE_ADMIN_URL)"
    };
    anyhow!("cannot reach the admin API at {base}: {cause}\n{hint}")
}

fn failure(status: StatusCode, body: &Value) -> ApiFailure {
    let error = body.get("error");
    let text = |k: &str| {
        error
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let details = error
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|d| {
                    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                    (s("path"), s("message"))
                })
                .collect()
        })
        .unwrap_or_default();
    ApiFailure {
        status,
        code: text("code").unwrap_or_else(|| "unknown".to_owned()),
        message: text("message").unwrap_or_else(|| match body {
            Value::String(s) => s.clone(),
            _ => "no error message".to_owned(),
        }),
        details,
    }
}

/// Percent-encodes one path segment or query value.
pub fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A single-threaded runtime for one CLI command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_show_status_code_message_and_paths() {
        let body = serde_json::json!({"error": {"code": "invalid_entity", "message": "bad",
            "details": [{"path": "upstream", "message": "unknown upstream `x`"}]}});
        let text = failure(StatusCode::BAD_REQUEST, &body).to_string();
        assert!(
            text.contains("400 Bad Request (invalid_entity): bad"),
            "{text}"
        );
        assert!(
            text.contains("\n  upstream: unknown upstream `x`"),
            "{text}"
        );
    }

    #[test]
    fn http_and_https_urls_only() {
        assert!(AdminClient::with_token("http://x:8001", None, None).is_ok());
        assert!(AdminClient::with_token("x:8001", None, None).is_err());
        let missing = Path::new("/nonexistent/ca.pem");
        let err = AdminClient::with_token("https://x:8001", None, Some(missing))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
