//! An API's lifecycle on the wire: a draft is not served (404, as if it did not exist), a
//! retired API answers 410 Gone, and a deprecated one (or one with a planned sunset) tells
//! every caller so in `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and `Link` headers,
//! computed once per config version.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use turnpike_config::model::{Lifecycle, LifecycleState};

use crate::Denied;

static DEPRECATION: HeaderName = HeaderName::from_static("deprecation");
static SUNSET: HeaderName = HeaderName::from_static("sunset");

#[derive(Debug, Clone)]
pub struct LifecycleRt {
    state: LifecycleState,
    headers: HeaderMap,
}

impl LifecycleRt {
    /// Compiles a validated lifecycle (unparsable dates, which validation rejects, are
    /// left out rather than sent malformed).
    pub fn build(l: &Lifecycle) -> Self {
        let mut headers = HeaderMap::new();
        let at = |s: &Option<String>| s.as_deref().and_then(|v| v.parse::<jiff::Timestamp>().ok());
        if let Some(t) = at(&l.deprecated_at) {
            // A structured-field Date: `@` and Unix seconds.
            headers.insert(
                DEPRECATION.clone(),
                HeaderValue::from_str(&format!("@{}", t.as_second()))
                    .unwrap_or(HeaderValue::from_static("@0")),
            );
        }
        if let Some(t) = at(&l.sunset) {
            let date = t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
            if let Ok(v) = HeaderValue::from_str(&date) {
                headers.insert(SUNSET.clone(), v);
            }
        }
        if let Some(link) = &l.link {
            let rel = if l.deprecated_at.is_some() {
                "deprecation"
            } else {
                "sunset"
            };
            if let Ok(v) = HeaderValue::from_str(&format!("<{link}>; rel=\"{rel}\"")) {
                headers.insert(http::header::LINK, v);
            }
        }
        Self {
            state: l.state,
            headers,
        }
    }

    /// Refuses what is not served: a draft as if the route did not exist, a retired API
    /// with 410.
    pub fn check(&self) -> Result<(), Denied> {
        match self.state {
            LifecycleState::Draft => Err(Denied {
                status: StatusCode::NOT_FOUND,
                code: "no_route",
                message: "no route matches this request",
                challenge: None,
            }),
            LifecycleState::Retired => Err(Denied {
                status: StatusCode::GONE,
                code: "retired",
                message: "this API has been retired and is no longer served",
                challenge: None,
            }),
            LifecycleState::Published | LifecycleState::Deprecated => Ok(()),
        }
    }

    /// Adds the lifecycle headers to a response (also to the gateway's own refusals).
    pub fn decorate(&self, headers: &mut HeaderMap) {
        if self.state != LifecycleState::Draft {
            for (name, value) in &self.headers {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifecycle(state: LifecycleState, dep: Option<&str>, sunset: Option<&str>) -> LifecycleRt {
        LifecycleRt::build(&Lifecycle {
            state,
            deprecated_at: dep.map(str::to_owned),
            sunset: sunset.map(str::to_owned),
            link: Some("https://docs.example.com/v2".to_owned()),
        })
    }

    #[test]
    fn deprecated_apis_say_when_in_rfc_formats() {
        let l = lifecycle(
            LifecycleState::Deprecated,
            Some("2026-06-01T00:00:00Z"),
            Some("2027-01-01T00:00:00Z"),
        );
        assert!(l.check().is_ok());
        let mut h = HeaderMap::new();
        l.decorate(&mut h);
        assert_eq!(h["deprecation"], "@1780272000");
        assert_eq!(h["sunset"], "Fri, 01 Jan 2027 00:00:00 GMT");
        assert_eq!(
            h["link"],
            "<https://docs.example.com/v2>; rel=\"deprecation\""
        );
    }

    #[test]
    fn drafts_are_not_found_and_retired_apis_are_gone() {
        let draft = lifecycle(LifecycleState::Draft, None, None);
        assert_eq!(
            draft.check().map_err(|d| d.status),
            Err(StatusCode::NOT_FOUND)
        );
        let mut h = HeaderMap::new();
        draft.decorate(&mut h);
        assert!(h.is_empty(), "a draft reveals nothing");
        let retired = lifecycle(LifecycleState::Retired, None, Some("2026-01-01T00:00:00Z"));
        assert_eq!(retired.check().map_err(|d| d.code), Err("retired"));
        retired.decorate(&mut h);
        assert_eq!(h["link"], "<https://docs.example.com/v2>; rel=\"sunset\"");
    }
}
