//! How a request chooses one version of a service: a path in front of every route's
//! (`/v2/pets`), or a header (`Accept-Version: 2`) on routes with the document's own paths.
//! Checked here so a bad selector is refused at its field before any route is generated.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Detail;

/// Longest version path; a version path is a short label, not a route.
const MAX_PATH: usize = 100;

/// `{"path": "/v2"}` or `{"header": {"name": "accept-version", "value": "2"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Selector {
    /// Put in front of every route's path and removed before forwarding, so the upstream
    /// sees the paths it would see without versions.
    Path(String),
    /// Every route also requires this header with this value.
    Header(HeaderSelector),
}

/// A header and the value that selects the version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderSelector {
    /// Compared case-insensitively; stored lower-case.
    pub name: String,
    pub value: String,
}

impl Selector {
    /// The selector in its stored form (`/v2/` → `/v2`, header names lower-case), or the
    /// problem at `at` (the field the caller wrote it in).
    pub(crate) fn normalised(self, at: &str) -> Result<Self, Detail> {
        match self {
            Self::Path(p) => path(&p).map(Self::Path).map_err(|m| Detail::new(at, m)),
            Self::Header(h) => header(h).map(Self::Header).map_err(|m| Detail::new(at, m)),
        }
    }

    /// `/v2`, or `accept-version: 2`: for messages and tables.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Path(p) => p.clone(),
            Self::Header(h) => format!("{}: {}", h.name, h.value),
        }
    }
}

fn path(p: &str) -> Result<String, String> {
    let trimmed = p.trim().trim_end_matches('/');
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "/._~-".contains(c);
    if !trimmed.starts_with('/') {
        return Err("a version path starts with `/` (e.g. `/v2`) and is not `/` alone".into());
    }
    if trimmed.len() > MAX_PATH || !trimmed.chars().all(ok_char) || trimmed.contains("//") {
        return Err(format!(
            "expected a plain path of at most {MAX_PATH} bytes: letters, digits, `/`, `.`, `_`, `~`, `-`"
        ));
    }
    if trimmed.split('/').any(|s| s == "." || s == "..") {
        return Err("a version path must not have `.` or `..` segments".into());
    }
    Ok(trimmed.to_owned())
}

fn header(h: HeaderSelector) -> Result<HeaderSelector, String> {
    let name = h.name.trim().to_ascii_lowercase();
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{:?} is not a valid header name", h.name));
    }
    let value = h.value.trim().to_owned();
    if value.is_empty() || http::HeaderValue::from_str(&value).is_err() {
        return Err("expected a non-empty header value of visible ASCII".into());
    }
    Ok(HeaderSelector { name, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_normalised_or_refused_at_their_field() {
        let p = Selector::Path("/v2/".into()).normalised("path").unwrap();
        assert_eq!(p, Selector::Path("/v2".into()));
        let e = Selector::Path("/".into()).normalised("path").unwrap_err();
        assert_eq!(e.path, "path");
        assert!(Selector::Path("/a/../b".into()).normalised("p").is_err());
        assert!(Selector::Path("/{v}".into()).normalised("p").is_err());
        let h = HeaderSelector {
            name: "Accept-Version".into(),
            value: "2".into(),
        };
        let h = Selector::Header(h).normalised("header_name").unwrap();
        assert_eq!(h.describe(), "accept-version: 2");
        let bad = HeaderSelector {
            name: "bad name".into(),
            value: "2".into(),
        };
        assert!(Selector::Header(bad).normalised("h").is_err());
    }
}
