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
