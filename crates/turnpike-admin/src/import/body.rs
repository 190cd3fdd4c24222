//! The body of an import: an OpenAPI document as JSON, or as YAML with
//! `Content-Type: application/yaml`. Malformed YAML is reported with its line and column.

use axum::extract::{FromRequest, Request};

use http::StatusCode;
use serde_json::Value;

use crate::body::{media_type, parse_json, read_bytes};
use crate::error::{ApiError, Detail};

/// A document read from JSON or YAML.
#[derive(Debug)]
pub(crate) struct DocumentBody(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for DocumentBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let media = media_type(req.headers());
        let yaml = match media.as_deref() {
            None | Some("application/json") => false,
            Some(t) if t.ends_with("+json") => false,
            Some("application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml") => true,
            Some(t) => {
                let msg =
                    format!("expected Content-Type: application/json or application/yaml, got {t}");
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    msg,
                ));
            }
        };
        let bytes = read_bytes(req, state).await?;
        if yaml {
            parse_yaml(&bytes).map(Self)
        } else {
            parse_json(&bytes).map(Self)
        }
    }
}

/// One YAML document as JSON, read the way config files are; errors say where.
pub(crate) fn parse_yaml(bytes: &[u8]) -> Result<Value, ApiError> {
    let bad = |message: String| {
        ApiError::bad_request("invalid_yaml", message.clone())
            .with_details(vec![Detail::new("", message)])
    };
    let text =
        std::str::from_utf8(bytes).map_err(|e| bad(format!("the document is not UTF-8: {e}")))?;
    turnpike_config::parse_yaml_text_keys(text).map_err(|e| bad(format!("malformed YAML at {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_becomes_json_and_errors_have_lines() {
        let v = parse_yaml(b"openapi: 3.1.0\npaths:\n  /a:\n    get:\n      responses:\n        200: {description: ok}\n").unwrap();
        assert_eq!(
            v["paths"]["/a"]["get"]["responses"]["200"]["description"],
            "ok"
        );
        let e = parse_yaml(b"openapi: 3.0.0\npaths:\n  /a: [unclosed\n").unwrap_err();
        assert_eq!(e.code, "invalid_yaml");
        assert!(
            e.message.contains("line 4") || e.message.contains("line 3"),
            "{}",
            e.message
        );
    }
}
