//! CORS (the Fetch standard's CORS protocol), answered by the gateway so that every
//! route behaves the same whatever its upstream does.
//!
//! Decisions an operator may want to know:
//!
//! - Origins are compared as `scheme://host[:port]`, case-insensitively, with the
//!   scheme's default port dropped (`https://a.com:443` is `https://a.com`).
//! - `https://*.example.com` matches any depth of subdomain (`a.example.com`,
//!   `a.b.example.com`), never `example.com` itself (list it too), never
//!   `evilexample.com` or `example.com.evil.com`. The scheme and port must match exactly.
//! - A preflight that is not allowed (origin, method or a requested header) still gets
//!   a `204`, only without any `Access-Control-Allow-*` header: the browser then blocks
//!   the real request. A 403 would tell the browser nothing more, and a `204` keeps the
//!   preflight cacheable and identical for every refusal.
//! - Requested methods must be listed exactly (methods are case-sensitive); safelisted
//!   methods are not implied.
//! - `Access-Control-*` headers from the upstream are removed: the policy is the only
//!   source of truth.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method};
use turnpike_config::model;

/// What a preflight response varies on: the three request headers it depends on.
const PREFLIGHT_VARY: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// One route's CORS policy, compiled once per config version.
#[derive(Debug, Clone)]
pub struct Cors {
    /// `*` is listed: every origin is allowed and answered with `*`.
    any: bool,
    origins: Vec<OriginRule>,
    methods: Vec<Method>,
    allow_methods: Option<HeaderValue>,
    /// Lower-case configured request headers; empty echoes what the preflight asks for.
    headers: Vec<String>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

/// A configured origin other than `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    Exact(Origin),
    /// `scheme://*.suffix[:port]`; `suffix` starts with a dot.
    Subdomains {
        scheme: String,
        suffix: String,
        port: Option<u16>,
    },
}

/// A parsed, lower-case origin with the default port removed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Parses `scheme://host[:port]`; anything with a path, user info or an odd port is
    /// not an origin a browser sends, so it matches nothing.
    fn parse(text: &str) -> Option<Self> {
        let lower = text.to_ascii_lowercase();
        let (scheme, rest) = lower.split_once("://")?;
        if !matches!(scheme, "http" | "https")
            || rest.is_empty()
            || rest.bytes().any(|b| b"/?#@\\ ".contains(&b))
        {
            return None;
        }
        let (host, port) = split_port(rest)?;
        let default = if scheme == "https" { 443 } else { 80 };
        Some(Self {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port: port.filter(|p| *p != default),
        })
    }
}

/// `host[:port]` or `[v6][:port]`; `None` when the port is not a number.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let host_end = if authority.starts_with('[') {
        authority.find(']')? + 1
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    if host.is_empty() {
        return None;
    }
    match rest.strip_prefix(':') {
        Some(port) => Some((host, Some(port.parse().ok()?))),
        None if rest.is_empty() => Some((host, None)),
        None => None,
    }
}

impl OriginRule {
    /// Compiles a configured origin (already checked by the validator; anything it would
    /// reject compiles to nothing rather than to a rule that matches too much).
    fn compile(text: &str) -> Option<Self> {
        let lower = text.to_ascii_lowercase();
        let Some((scheme, rest)) = lower.split_once("://*.") else {
            return Origin::parse(text).map(Self::Exact);
        };
        let placeholder = Origin::parse(&format!("{scheme}://x.{rest}"))?;
        let suffix = placeholder.host.strip_prefix('x')?.to_owned();
        Some(Self::Subdomains {
            scheme: placeholder.scheme,
            suffix,
            port: placeholder.port,
        })
    }

    fn matches(&self, origin: &Origin) -> bool {
        match self {
            Self::Exact(exact) => exact == origin,
            Self::Subdomains {
                scheme,
                suffix,
                port,
            } => {
                *scheme == origin.scheme
                    && *port == origin.port
                    && origin
                        .host
                        .strip_suffix(suffix.as_str())
                        .is_some_and(is_dns_labels)
            }
        }
    }
}

/// One or more non-empty DNS labels separated by dots (what `*.` stands for).
fn is_dns_labels(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `a, b, c` as one header value, or `None` for an empty list.
fn joined<'a>(items: impl IntoIterator<Item = &'a str>) -> Option<HeaderValue> {
    let text = items.into_iter().collect::<Vec<_>>().join(", ");
    (!text.is_empty())
        .then(|| HeaderValue::from_str(&text).ok())
        .flatten()
}

/// Whether `name` is an RFC 9110 token (a header name a browser may ask for).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Cors {
    pub fn build(c: &model::Cors) -> Self {
        let any = c.origins.iter().any(|o| o == "*");
        let origins = c
            .origins
            .iter()
            .filter(|o| *o != "*")
            .filter_map(|o| OriginRule::compile(o))
            .collect();
        let methods = c
            .methods
            .iter()
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect();
        let headers: Vec<String> = c.headers.iter().map(|h| h.to_ascii_lowercase()).collect();
        let max_age = c.max_age.as_std().as_secs();
        Self {
            any,
            origins,
            methods,
            allow_methods: joined(c.methods.iter().map(String::as_str)),
            allow_headers: joined(headers.iter().map(String::as_str)),
            headers,
            expose_headers: joined(c.expose_headers.iter().map(String::as_str)),
            credentials: c.credentials,
            max_age: HeaderValue::from(max_age),
        }
    }

    /// Every origin gets the same answer, `*`.
    fn star(&self) -> bool {
        self.any && !self.credentials
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, if it is allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        // `*` and credentials never meet (the validator refuses it), but if they did the
        // echoed origin is what a browser would accept.
        if self.star() {
            return Some(HeaderValue::from_static("*"));
        }
        let parsed = Origin::parse(origin.to_str().ok()?)?;
        (self.any || self.origins.iter().any(|r| r.matches(&parsed))).then(|| origin.clone())
    }

    /// The `Access-Control-Allow-Headers` answer to `requested`, or `None` when a
    /// requested header is not allowed.
    fn allow_headers(&self, requested: Option<&HeaderValue>) -> Option<Option<HeaderValue>> {
        let requested = match requested {
            Some(v) => v.to_str().ok()?,
            None => "",
        };
        let names: Vec<String> = requested
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if !names.iter().all(|h| is_token(h)) {
            return None;
        }
        if self.headers.is_empty() {
            return Some(joined(names.iter().map(String::as_str)));
        }
        names
            .iter()
            .all(|h| self.headers.contains(h))
            .then(|| self.allow_headers.clone())
    }

    /// `Some` when the request is a CORS preflight: the headers of the gateway's 204
    /// answer (only `Vary` when the origin, method or headers are not allowed, so the
    /// browser blocks the request).
    pub fn preflight(&self, req: &crate::RequestView<'_>) -> Option<HeaderMap> {
        if req.method != Method::OPTIONS {
            return None;
        }
        let origin = req.headers.get(ORIGIN)?;
        let method = req.headers.get(ACCESS_CONTROL_REQUEST_METHOD)?;
        let mut out = HeaderMap::new();
        out.insert(VARY, HeaderValue::from_static(PREFLIGHT_VARY));
        let Some(allow_origin) = self.allow_origin(origin) else {
            return Some(out);
        };
        let method_ok =
            Method::from_bytes(method.as_bytes()).is_ok_and(|m| self.methods.contains(&m));
        let requested = req.headers.get(ACCESS_CONTROL_REQUEST_HEADERS);
        let Some(allow_headers) = self.allow_headers(requested).filter(|_| method_ok) else {
            return Some(out);
        };
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if let Some(methods) = &self.allow_methods {
            out.insert(ACCESS_CONTROL_ALLOW_METHODS, methods.clone());
        }
        if let Some(headers) = allow_headers {
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, headers);
        }
        if self.credentials {
            out.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        out.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        Some(out)
    }

    /// Adds the CORS headers for an actual (non-preflight) response, replacing any the
    /// upstream set.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        strip_access_control(headers);
        // The answer depends on `Origin` unless it is `*` for everyone; without this a
        // shared cache could hand one origin's answer to another (or to no-CORS callers).
        if !self.star() {
            add_vary_origin(headers);
        }
        let Some(allow_origin) = origin.and_then(|o| self.allow_origin(o)) else {
            return;
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if self.credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose_headers {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

fn strip_access_control(headers: &mut HeaderMap) {
    let names: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Merges `Origin` into `Vary` as one header line, keeping what the upstream listed.
fn add_vary_origin(headers: &mut HeaderMap) {
    let existing: Vec<&str> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    // `Vary: *` already varies on everything.
    if existing
        .iter()
        .any(|v| *v == "*" || v.eq_ignore_ascii_case("origin"))
    {
        return;
    }
    let merged = joined(existing.into_iter().chain(["Origin"]))
        .unwrap_or(HeaderValue::from_static("Origin"));
    headers.insert(VARY, merged);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::{IpAddr, Ipv4Addr};

    use http::Uri;
    use turnpike_config::units::Duration;

    use super::*;
    use crate::RequestView;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        Cors::build(&model::Cors {
            origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            credentials,
            expose_headers: vec!["X-Request-Id".into()],
            max_age: Duration::from_secs(3600),
            ..model::Cors::default()
        })
    }

    fn allowed(c: &Cors, origin: &str) -> bool {
        c.allow_origin(&HeaderValue::from_str(origin).unwrap())
            .is_some()
    }

    #[test]
    fn exact_origins_ignore_case_and_default_ports() {
        let c = cors(&["https://App.Example.com", "http://localhost:3000"], false);
        for ok in [
            "https://app.example.com",
            "HTTPS://APP.EXAMPLE.COM",
            "https://app.example.com:443",
            "http://localhost:3000",
        ] {
            assert!(allowed(&c, ok), "{ok}");
        }
        for bad in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com/",
            "https://app.example.com.evil.com",
            "http://localhost",
            "http://localhost:3001",
            "null",
            "",
        ] {
            assert!(!allowed(&c, bad), "{bad}");
        }
    }

    #[test]
    fn subdomain_patterns_match_any_depth_but_not_lookalikes() {
        let c = cors(&["https://*.example.com", "http://*.dev.test:8080"], false);
        for ok in [
            "https://a.example.com",
            "https://a.b.example.com",
            "https://A-1.Example.COM",
            "http://web.dev.test:8080",
        ] {
            assert!(allowed(&c, ok), "{ok}");
        }
        for bad in [
            "https://example.com",
            "https://evilexample.com",
            "https://example.com.evil.com",
            "https://a.example.com.evil.com",
            "https://.example.com",
            "https://a..example.com",
            "http://a.example.com",
            "https://a.example.com:8443",
            "http://web.dev.test",
            "https://a_b.example.com",
            "https://user@a.example.com",
        ] {
            assert!(!allowed(&c, bad), "{bad}");
        }
    }

    #[test]
    fn ipv6_origins_compare_with_their_port() {
        let c = cors(&["http://[::1]:8080"], false);
        assert!(allowed(&c, "http://[::1]:8080"));
        assert!(!allowed(&c, "http://[::1]:8081"));
        assert!(!allowed(&c, "http://[::1]"));
    }

    fn preflight(c: &Cors, origin: &str, method: &str, headers: Option<&str>) -> Option<HeaderMap> {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
        h.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_str(method).unwrap(),
        );
        if let Some(requested) = headers {
            h.insert(
                ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_str(requested).unwrap(),
            );
        }
        ask(c, Method::OPTIONS, &h)
    }

    fn ask(c: &Cors, method: Method, headers: &HeaderMap) -> Option<HeaderMap> {
        let uri = Uri::from_static("/x");
        c.preflight(&RequestView {
            method: &method,
            uri: &uri,
            headers,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            client_cert: None,
        })
    }

    fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn an_allowed_preflight_gets_every_allow_header() {
        let c = cors(&["https://app.example.com"], true);
        let h = preflight(
            &c,
            "https://app.example.com",
            "PUT",
            Some("X-Trace, content-type"),
        )
        .unwrap();
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(
            get(&h, "access-control-allow-methods"),
            Some("GET, HEAD, POST, PUT, PATCH, DELETE")
        );
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some("x-trace, content-type")
        );
        assert_eq!(get(&h, "access-control-allow-credentials"), Some("true"));
        assert_eq!(get(&h, "access-control-max-age"), Some("3600"));
        assert_eq!(get(&h, "vary"), Some(PREFLIGHT_VARY));
    }

    #[test]
    fn a_refused_preflight_carries_only_vary() {
        let c = Cors::build(&model::Cors {
            origins: vec!["https://app.example.com".into()],
            methods: vec!["GET".into()],
            headers: vec!["X-Trace".into()],
            ..model::Cors::default()
        });
        let ok = preflight(&c, "https://app.example.com", "GET", Some("x-trace")).unwrap();
        assert_eq!(get(&ok, "access-control-allow-headers"), Some("x-trace"));
        for (origin, method, headers) in [
            ("https://evil.example", "GET", None),
            ("https://app.example.com", "DELETE", None),
            ("https://app.example.com", "get", None),
            ("https://app.example.com", "GET", Some("x-trace, x-other")),
        ] {
            let h = preflight(&c, origin, method, headers).unwrap();
            assert_eq!(h.len(), 1, "{origin} {method} {headers:?}: {h:?}");
            assert!(h.contains_key(VARY));
        }
    }

    #[test]
    fn only_options_with_origin_and_request_method_is_a_preflight() {
        let c = cors(&["*"], false);
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_static("https://a.example"));
        assert!(ask(&c, Method::OPTIONS, &h).is_none());
        h.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("GET"),
        );
        assert!(ask(&c, Method::GET, &h).is_none());
        let any = ask(&c, Method::OPTIONS, &h).unwrap();
        assert_eq!(get(&any, "access-control-allow-origin"), Some("*"));
        assert!(any.get("access-control-allow-credentials").is_none());
    }

    #[test]
    fn actual_responses_replace_upstream_cors_and_merge_vary() {
        let c = cors(&["https://app.example.com"], true);
        let mut h = HeaderMap::new();
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        h.append(VARY, HeaderValue::from_static("Accept-Language"));
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("99"));
        c.decorate(
            Some(&HeaderValue::from_static("https://app.example.com")),
            &mut h,
        );
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(get(&h, "access-control-allow-credentials"), Some("true"));
        assert_eq!(
            get(&h, "access-control-expose-headers"),
            Some("X-Request-Id")
        );
        assert!(h.get(ACCESS_CONTROL_MAX_AGE).is_none());
        let vary: Vec<_> = h.get_all(VARY).iter().collect();
        assert_eq!(vary, ["Accept-Encoding, Accept-Language, Origin"]);

        // Already there (any case), or `*`: left alone.
        for upstream in ["origin", "*"] {
            let mut h = HeaderMap::new();
            h.insert(VARY, HeaderValue::from_str(upstream).unwrap());
            c.decorate(None, &mut h);
            assert_eq!(get(&h, "vary"), Some(upstream));
        }
    }

    #[test]
    fn refused_or_absent_origins_get_vary_only_and_star_gets_no_vary() {
        let c = cors(&["https://app.example.com"], false);
        for origin in [None, Some(HeaderValue::from_static("https://evil.example"))] {
            let mut h = HeaderMap::new();
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            c.decorate(origin.as_ref(), &mut h);
            assert_eq!(get(&h, "vary"), Some("Origin"));
            assert!(h.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        }
        let star = cors(&["*"], false);
        let mut h = HeaderMap::new();
        star.decorate(Some(&HeaderValue::from_static("https://x.example")), &mut h);
        assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
        assert!(h.get(VARY).is_none());
    }
}
