//! The admin API's error responses: `{"error": {"code", "message", "details"}}` with the
//! right status, built from typed causes so no handler formats its own.
//!
//! Store failures that are not the client's fault become 503 (the database is unreachable)
//! or 500 with a generic message; their text goes to the log, never to the client.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use turnpike_store::StoreError;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorInfo {
    /// Stable, machine-readable: `unauthorized`, `forbidden`, `not_found`, `already_exists`,
    /// `conflict`, `read_only`, `revision_mismatch`, `invalid_json`, `invalid_entity`,
    /// `invalid_query`, `invalid_request`, `payload_too_large`, `unsupported_media_type`,
    /// `method_not_allowed`, `unavailable`, `internal`.
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
    /// One entry per problem, with the field it concerns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Detail>,
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Detail {
    /// Where, in the config file's spelling: `upstream`, `targets[0].url`; fields of another
    /// entity are prefixed with it: `routes["everything"].upstream`. Empty for the whole body.
    pub path: String,
    pub message: String,
}

impl Detail {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A request the admin API refuses or could not carry out.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Detail>,
    /// `WWW-Authenticate` value for 401s.
    challenge: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            challenge: None,
        }
    }

    pub fn with_details(mut self, details: Vec<Detail>) -> Self {
        self.details = details;
        self
    }

    /// The same error with every detail's path under `prefix` (`routes[2].`), for a problem
    /// of one item of a request that holds several.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        for d in &mut self.details {
            let joined = if d.path.is_empty() {
                prefix.trim_end_matches('.').to_owned()
            } else {
                format!("{prefix}{}", d.path)
            };
            d.path = joined;
        }
        self
    }

    /// 401: no usable credentials, so say which scheme to use.
    pub fn unauthorized(message: impl Into<String>, bad_token: bool) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        e.challenge = Some(if bad_token {
            r#"Bearer realm="turnpike-admin", error="invalid_token""#
        } else {
            r#"Bearer realm="turnpike-admin""#
        });
        e
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// The problem is on our side: the details are logged, the client gets a generic text.
    pub fn internal(what: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "admin API: {what}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the gateway log",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, name } => {
                Self::not_found(format!("{} {name:?} not found", singular(&kind)))
            }
            StoreError::Exists { kind, name } => Self::conflict(
                "already_exists",
                format!("{} {name:?} already exists", singular(&kind)),
            ),
            StoreError::RevisionMismatch { current } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "revision_mismatch",
                format!("If-Match does not match the current revision ({current})"),
            ),
            StoreError::Invalid(message) => Self::bad_request("invalid_request", message),
            StoreError::Unavailable(message) => {
                tracing::warn!(error = %message, "admin API: store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the config store is unavailable; retry later",
                )
            }
            other => Self::internal("store failure", &other),
        }
    }
}

/// `routes` → `route`, for messages about one entity.
pub(crate) fn singular(kind: &str) -> &str {
    kind.strip_suffix('s').unwrap_or(kind)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorInfo {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// The JSON 404 for paths no route matches.
pub(crate) async fn no_route() -> ApiError {
    ApiError::not_found("no such endpoint; see /api/v1/openapi.json")
}

/// The JSON 405 for a known path with a method it does not have.
pub(crate) async fn no_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not support the method; see /api/v1/openapi.json",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses() {
        let exists = StoreError::Exists {
            kind: "routes".into(),
            name: "r".into(),
        };
        let missing = StoreError::NotFound {
            kind: "routes".into(),
            name: "r".into(),
        };
        let cases = [
            (missing, 404, "not_found"),
            (exists, 409, "already_exists"),
            (
                StoreError::RevisionMismatch { current: 3 },
                412,
                "revision_mismatch",
            ),
            (StoreError::Invalid("x".into()), 400, "invalid_request"),
            (
                StoreError::Unavailable("secret detail".into()),
                503,
                "unavailable",
            ),
            (StoreError::Migration("m".into()), 500, "internal"),
        ];
        for (e, status, code) in cases {
            let api = ApiError::from(e);
            assert_eq!((api.status.as_u16(), api.code), (status, code));
            // Database details go to the log, not to the client.
            assert!(!api.message.contains("secret detail"));
        }
        assert_eq!(singular("routes"), "route");
    }

    #[test]
    fn unauthorized_carries_the_challenge() {
        let r = ApiError::unauthorized("no", true).into_response();
        let challenge = r.headers().get(header::WWW_AUTHENTICATE).unwrap();
        assert!(challenge.to_str().unwrap().contains("invalid_token"));
    }
}
