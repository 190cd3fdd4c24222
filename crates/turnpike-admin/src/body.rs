//! Reading requests: JSON bodies with errors that say where the JSON breaks, query strings,
//! and `If-Match` revisions; every refusal is a JSON [`ApiError`], never axum's plain text.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Query, Request};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, Detail};

/// Largest request body accepted: entities are small, and this bounds the memory a
/// client can make the admin API hold.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// A request body that is well-formed JSON (any value; handlers check its shape).
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = media_type(req.headers());
        // A missing Content-Type is tolerated (curl -d sends a form type, though, and that
        // is refused so a mistaken form post does not look like JSON garbage).
        if let Some(t) = json_type.filter(|t| t != "application/json" && !t.ends_with("+json")) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("expected Content-Type: application/json, got {t}"),
            ));
        }
        parse_json(&read_bytes(req, state).await?).map(Self)
    }
}

/// The request's media type (`Content-Type` without parameters), lower-case.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// The whole body (bounded by the router's body limit), refusals as JSON errors.
pub(crate) async fn read_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "invalid_request"
        };
        ApiError::new(e.status(), code, e.body_text())
    })
}

/// Parses a body, reporting where malformed JSON breaks.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let message = format!(
            "malformed JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        );
        ApiError::bad_request("invalid_json", message.clone())
            .with_details(vec![Detail::new("", message)])
    })
}

/// A query string, or a JSON 400 naming what is wrong with it.
pub(crate) fn query<T: DeserializeOwned>(
    q: Result<Query<T>, QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

/// The revision an `If-Match` header demands: `None` without the header or with `*`.
///
/// A tag that is not one of our revisions can never match the current one, so it fails
/// the precondition (412) rather than being a malformed request.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text);
    let revision = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag)
        .parse::<i64>();
    revision.map(Some).map_err(|_| {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "revision_mismatch",
            format!("If-Match {text:?} is not a revision of this entity (ETag: \"<revision>\")"),
        )
    })
}

/// The ETag of a revision.
pub(crate) fn etag(revision: i64) -> String {
    format!("\"{revision}\"")
}

/// Percent-encodes a name for use as one path segment.
pub(crate) fn segment(name: &str) -> String {
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

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn if_match_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(if_match(&h).unwrap(), None);
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"7\""));
        assert_eq!(if_match(&h).unwrap(), Some(7));
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"8\""));
        assert_eq!(if_match(&h).unwrap(), Some(8));
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(if_match(&h).unwrap(), None);
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert_eq!(
            if_match(&h).unwrap_err().status,
            StatusCode::PRECONDITION_FAILED
        );
    }

    #[test]
    fn malformed_json_says_where() {
        let e = parse_json(b"{\n  \"a\": }").unwrap_err();
        assert_eq!(e.code, "invalid_json");
        assert!(e.message.contains("line 2, column"), "{}", e.message);
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("plain-name_1.x"), "plain-name_1.x");
    }
}
