//! An API's lifecycle: draft (not served yet), published, deprecated (still served, with
//! `Deprecation`, `Sunset` and `Link` headers) and retired (410 Gone). Set on a route, or
//! on an upstream's `policies` for every route of that service.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    pub state: LifecycleState,
    /// RFC 3339 instant the API was (or will be) deprecated; required for `deprecated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_at: Option<String>,
    /// RFC 3339 instant after which it may stop working (`Sunset`, RFC 8594).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunset: Option<String>,
    /// Where callers read about the change (`Link: <...>; rel="deprecation"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Lifecycle {
    /// What is wrong with it, as `(field, message)`: dates that do not parse or come out
    /// of order, a deprecation that does not say when, a link unsafe in a header. The
    /// config validation and the admin API's version lifecycle both report these, each
    /// under its own path.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut instant = |field: &'static str, value: Option<&str>| {
            let value = value?;
            let parsed = value.parse::<jiff::Timestamp>().ok();
            if parsed.is_none() {
                let msg = format!(
                    "invalid instant {value:?}: expected RFC 3339, e.g. \"2027-01-01T00:00:00Z\""
                );
                out.push((field, msg));
            }
            parsed
        };
        let deprecated = instant("deprecated_at", self.deprecated_at.as_deref());
        let sunset = instant("sunset", self.sunset.as_deref());
        if self.state == LifecycleState::Deprecated && self.deprecated_at.is_none() {
            let msg = "a deprecated API needs `deprecated_at` (the `Deprecation` header carries the date)";
            out.push(("state", msg.to_owned()));
        }
        if let (Some(d), Some(s)) = (deprecated, sunset) {
            if s < d {
                out.push(("sunset", "must not be before `deprecated_at`".to_owned()));
            }
        }
        if let Some(link) = &self.link {
            let scheme = link.starts_with("https://") || link.starts_with("http://");
            let safe = link
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"'));
            if !scheme || !safe {
                let msg =
                    "expected an absolute http(s) URL without spaces, quotes or angle brackets";
                out.push(("link", msg.to_owned()));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    /// Configured but not served: 404 as if the route did not exist.
    Draft,
    #[default]
    Published,
    Deprecated,
    /// No longer served: 410 Gone.
    Retired,
}
