//! The errors a client can see, each with its status and a stable JSON `code`.
//!
//! Messages are written for the API consumer: they never carry upstream addresses,
//! internal error text or anything else that would leak the inside of the gateway.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use turnpike_policy::Denied;
use turnpike_policy::traffic::Limited;

use crate::body::ResponseBody;

/// Why the gateway answered instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("no route matches this request")]
    NoRoute,
    #[error("the request is malformed: {0}")]
    BadRequest(&'static str),
    /// The route's request validation refused it; the message says where and why.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("this connection was made for another host; open a new one for this host")]
    MisdirectedRequest,
    #[error("the request body is larger than this API accepts")]
    BodyTooLarge,
    #[error("the request URI is longer than this API accepts")]
    UriTooLong,
    #[error("the request has more headers than this API accepts")]
    TooManyHeaders,
    #[error("no healthy upstream target is available")]
    NoHealthyTarget,
    #[error("the upstream is failing and its circuit breaker is open")]
    CircuitOpen,
    #[error("the upstream could not be reached")]
    UpstreamUnreachable,
    #[error("the upstream sent an invalid response")]
    UpstreamProtocol,
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// `Cache-Control: only-if-cached` and nothing usable is stored (RFC 9111 §5.2.1.7).
    #[error("the response is not in the cache, and the request asked for a cached one only")]
    NotCached,
    #[error("the gateway is overloaded; retry later")]
    Overloaded { retry_after: u64 },
    #[error("this client is temporarily banned after too many rejected requests")]
    Banned { retry_after: u64 },
    /// A policy refused the request (auth, IP rules, CORS).
    #[error("{}", .0.message)]
    Denied(Box<Denied>),
    /// A rate limit, quota or concurrency limit refused it (with its headers).
    #[error("{}", .0.message)]
    Limited(Box<Limited>),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::BadRequest(_) | Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::TooManyHeaders => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::NoHealthyTarget | Self::CircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnreachable | Self::UpstreamProtocol => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout | Self::NotCached => StatusCode::GATEWAY_TIMEOUT,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Banned { .. } => StatusCode::FORBIDDEN,
            Self::Denied(d) => d.status,
            Self::Limited(l) => l.status,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::NoRoute => "no_route",
            Self::BadRequest(_) => "bad_request",
            Self::InvalidRequest(_) => "invalid_request",
            Self::MisdirectedRequest => "misdirected_request",
            Self::BodyTooLarge => "body_too_large",
            Self::UriTooLong => "uri_too_long",
            Self::TooManyHeaders => "too_many_headers",
            Self::NoHealthyTarget => "no_healthy_target",
            Self::CircuitOpen => "circuit_open",
            Self::UpstreamUnreachable => "upstream_unreachable",
            Self::UpstreamProtocol => "upstream_protocol_error",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::RequestTimeout => "request_timeout",
            Self::NotCached => "not_cached",
            Self::Overloaded { .. } => "overloaded",
            Self::Banned { .. } => "banned",
            Self::Denied(d) => d.code,
            Self::Limited(l) => l.code,
        }
    }

    /// `{"error": {"code": ..., "message": ..., "request_id": ...}}` with the right status.
    pub fn into_response(self, request_id: Option<&HeaderValue>) -> Response<ResponseBody> {
        let mut error = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        if let Some(id) = request_id.and_then(|v| v.to_str().ok()) {
            error["request_id"] = id.into();
        }
        let body = serde_json::json!({ "error": error }).to_string();
        let mut resp = Response::new(ResponseBody::full(Bytes::from(body)));
        *resp.status_mut() = self.status();
        // Lets the pipeline tell the gateway's own refusals from upstream answers.
        resp.extensions_mut().insert(GatewayMade);
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Self::Overloaded { retry_after } | Self::Banned { retry_after } = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if let Self::Denied(d) = &self {
            if let Some(challenge) = &d.challenge {
                headers.insert(header::WWW_AUTHENTICATE, challenge.clone());
            }
            if d.status == StatusCode::SERVICE_UNAVAILABLE {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
        }
        if let Self::Limited(l) = self {
            headers.extend(l.headers);
        }
        resp
    }
}

impl From<Box<Limited>> for GatewayError {
    fn from(l: Box<Limited>) -> Self {
        Self::Limited(l)
    }
}

/// Marks a response the gateway made itself (an error), as opposed to an upstream's.
#[derive(Debug, Clone, Copy)]
pub struct GatewayMade;

impl From<Denied> for GatewayError {
    fn from(d: Denied) -> Self {
        Self::Denied(Box::new(d))
    }
}
