//! A refusal the client sees: status, stable code, a message that says what to do but
//! never which part of a credential was wrong, and the challenge header for 401s.

use http::{HeaderValue, StatusCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: &'static str,
    /// `WWW-Authenticate` for 401 and scope 403s.
    pub challenge: Option<HeaderValue>,
}

impl Denied {
    /// Missing or invalid credentials: one message for every cause, so a caller cannot
    /// probe which key ids exist or which check a token failed.
    pub fn unauthorized(challenge: Option<HeaderValue>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "valid credentials are required to call this API",
            challenge,
        }
    }

    pub fn forbidden(message: &'static str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message,
            challenge: None,
        }
    }

    /// Too many slow credential checks are in progress; the client should retry shortly
    /// (the gateway adds `Retry-After`).
    pub fn busy() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "temporarily_unavailable",
            message: "too many authentication attempts are in progress; retry shortly",
            challenge: None,
        }
    }

    /// RFC 6750 §3.1: the token is fine but does not grant what the route needs.
    pub fn insufficient_scope(challenge: HeaderValue) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "insufficient_scope",
            message: "the access token does not grant the scope this API requires",
            challenge: Some(challenge),
        }
    }
}
