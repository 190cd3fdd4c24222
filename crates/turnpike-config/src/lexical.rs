//! Checks on the spelling of single values: header names and values, methods, hostnames,
//! path templates and upstream target URLs.
//!
//! Each returns `Err(message)` with what was expected, so validation only adds a path.

use std::net::Ipv6Addr;

/// `tchar` from RFC 9110 §5.6.2: what header names and methods are made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

pub(crate) fn header_name(name: &str) -> Result<(), String> {
    if is_token(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid header name {name:?}: expected letters, digits and !#$%&'*+-.^_`|~ only (e.g. \"x-request-id\")"
        ))
    }
}

/// Field values per RFC 9110 §5.5: visible characters, spaces and tabs; CR and LF would
/// let a value inject headers.
pub(crate) fn header_value(value: &str) -> Result<(), String> {
    let bad = value
        .bytes()
        .position(|b| !(b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80));
    // The value itself is not repeated: header values are often secrets from `${VAR}`.
    match bad {
        None => Ok(()),
        Some(i) => Err(format!(
            "invalid header value: control character 0x{:02x} at byte {i}; control characters (CR and LF above all) are not allowed",
            value.as_bytes()[i]
        )),
    }
}

pub(crate) fn method(method: &str) -> Result<(), String> {
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        let upper = method.to_ascii_uppercase();
        return Err(format!(
            "method `{method}` must be upper-case: write `{upper}` (methods are case-sensitive)"
        ));
    }
    if is_token(method) {
        Ok(())
    } else {
        Err(format!(
            "invalid method {method:?}: expected a token such as GET, POST or PURGE"
        ))
    }
}

/// A route or certificate host: an exact name or a `*.example.com` wildcard, no port.
pub(crate) fn host_pattern(host: &str) -> Result<(), String> {
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.split_once(']') {
            Some((ip, "")) if ip.parse::<Ipv6Addr>().is_ok() => Ok(()),
            Some((ip, port)) if port.starts_with(':') => {
                Err(port_message(host, &format!("[{ip}]")))
            }
            _ => Err(format!(
                "invalid host {host:?}: expected an IPv6 address in brackets, e.g. [::1]"
            )),
        };
    }
    if let Some((name, port)) = host.rsplit_once(':') {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') {
            return Err(port_message(host, name));
        }
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.contains('*') {
        return Err(format!(
            "invalid host {host:?}: a wildcard must be the whole leftmost label, as in \"*.example.com\""
        ));
    }
    hostname(name).map_err(|why| format!("invalid host {host:?}: {why}"))
}

fn port_message(host: &str, name: &str) -> String {
    format!(
        "host {host:?} must not include a port: hosts match the Host header without its port, so write {name:?} (the listener decides the port)"
    )
}

/// A DNS name (or IPv4 address): dot-separated labels of letters, digits and `-`.
pub(crate) fn hostname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("expected a host name such as api.example.com".to_owned());
    }
    if name.ends_with('.') {
        return Err("remove the trailing dot".to_owned());
    }
    if name.len() > 253 {
        return Err("a host name is at most 253 characters".to_owned());
    }
    for label in name.split('.') {
        let valid_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty() || label.len() > 63 || !valid_chars {
            return Err(format!(
                "label {label:?} must be 1 to 63 letters, digits or `-`"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} must not start or end with `-`"));
        }
    }
    Ok(())
}

fn is_identifier(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a route path and returns its `{param}` names in order.
pub(crate) fn path_template(path: &str) -> Result<Vec<&str>, String> {
    if !path.starts_with('/') {
        return Err(format!("path {path:?} must start with `/`"));
    }
    if path.contains('*') {
        return Err(format!(
            "path {path:?}: `*` is not supported; a prefix path (`path_type: prefix`) already matches everything below it, and `{{name}}` matches one segment"
        ));
    }
    if path.contains(['?', '#']) {
        return Err(format!(
            "path {path:?} must not contain a query (`?`) or fragment (`#`)"
        ));
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "path {path:?} must not contain spaces or control characters; percent-encode them"
        ));
    }
    let mut params = Vec::new();
    for segment in path.split('/') {
        if !segment.contains(['{', '}']) {
            continue;
        }
        let name = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        let Some(name) = name.filter(|n| !n.contains(['{', '}'])) else {
            return Err(format!(
                "path {path:?}: segment {segment:?} must be a whole `{{name}}` parameter, e.g. /users/{{id}}"
            ));
        };
        if !is_identifier(name) {
            return Err(format!(
                "path {path:?}: parameter name {name:?} must start with a letter or `_` and contain only letters, digits and `_`"
            ));
        }
        if params.contains(&name) {
            return Err(format!("path {path:?}: parameter `{name}` appears twice"));
        }
        params.push(name);
    }
    Ok(params)
}

/// The path with every `{param}` replaced by `{}`, so `/u/{id}` and `/u/{uid}` compare equal.
pub(crate) fn normalise_template(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                "{}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The `{param}` names a rewrite uses.
pub(crate) fn rewrite_params(rewrite: &str) -> Result<Vec<&str>, String> {
    if !rewrite.starts_with('/') {
        return Err(format!("rewrite {rewrite:?} must start with `/`"));
    }
    let mut params = Vec::new();
    let mut rest = rewrite;
    while let Some(open) = rest.find(['{', '}']) {
        let after = &rest[open + 1..];
        let close = after.find('}').filter(|_| rest[open..].starts_with('{'));
        let Some(name) = close.map(|c| &after[..c]).filter(|n| is_identifier(n)) else {
            return Err(format!(
                "rewrite {rewrite:?}: braces must hold a parameter name, as in /v2/users/{{id}}"
            ));
        };
        params.push(name);
        rest = &after[name.len() + 1..];
    }
    Ok(params)
}

/// An upstream target: `http://host:port` or `https://host:port`, nothing more.
pub(crate) fn target_url(url: &str) -> Result<(), String> {
    let expected = "expected http://host:port or https://host:port";
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(format!("invalid target URL {url:?}: {expected}"));
    };
    if rest.contains(['?', '#']) {
        return Err(format!(
            "target URL {url:?} must not have a query or fragment; {expected}"
        ));
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if !path.is_empty() && path != "/" {
        return Err(format!(
            "target URL {url:?} must not have a path ({path:?}); use the route's `rewrite` to change paths"
        ));
    }
    if authority.contains('@') {
        return Err(format!(
            "target URL {url:?} must not contain credentials (`user@`); {expected}"
        ));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, port)) if ip.parse::<Ipv6Addr>().is_ok() => (None, port.strip_prefix(':')),
            _ => {
                return Err(format!(
                    "target URL {url:?} has an invalid IPv6 address; {expected}"
                ));
            }
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        },
    };
    if let Some(host) = host {
        hostname(host).map_err(|why| format!("target URL {url:?} has an invalid host: {why}"))?;
    }
    match port.map(str::parse::<u16>) {
        Some(Ok(p)) if p != 0 => Ok(()),
        None => Err(format!("target URL {url:?} has no port; {expected}")),
        Some(_) => Err(format!(
            "target URL {url:?} has an invalid port; expected 1 to 65535"
        )),
    }
}

/// A CORS origin: `*`, `scheme://host[:port]`, or that with one leading `*.` label.
pub(crate) fn origin_pattern(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let expected = "expected `*`, an origin like https://app.example.com, or https://*.example.com";
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err(format!("invalid origin {origin:?}: {expected}"));
    };
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') {
        return Err(format!(
            "invalid origin {origin:?}: {expected} (no path, no trailing `/`)"
        ));
    }
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    let host = host
        .rsplit_once(':')
        .map_or(host, |(h, p)| if p.parse::<u16>().is_ok() { h } else { "" });
    if host.contains('*')
        || hostname(host).is_err()
            && host.parse::<std::net::IpAddr>().is_err()
            && !host.starts_with('[')
    {
        return Err(format!("invalid origin {origin:?}: {expected}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "example.com",
            "API.Example.com",
            "*.example.com",
            "localhost",
            "10.0.0.1",
            "[::1]",
        ] {
            assert_eq!(host_pattern(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a.*.com",
            "*",
            "*example.com",
            "exa mple.com",
            "-a.com",
            "a..com",
            "a.com.",
            "[::1",
        ] {
            assert!(host_pattern(bad).is_err(), "{bad}");
        }
        assert!(
            host_pattern("example.com:8080")
                .err()
                .unwrap_or_default()
                .contains("must not include a port")
        );
        assert!(
            host_pattern("[::1]:80")
                .err()
                .unwrap_or_default()
                .contains("must not include a port")
        );
    }

    #[test]
    fn templates() {
        assert_eq!(
            path_template("/users/{id}/posts/{post_id}"),
            Ok(vec!["id", "post_id"])
        );
        assert_eq!(path_template("/"), Ok(vec![]));
        for bad in [
            "users",
            "/a/*",
            "/a/x{id}",
            "/a/{1d}",
            "/a/{id}/{id}",
            "/a/{}",
            "/a/{{id}}",
            "/a b",
        ] {
            assert!(path_template(bad).is_err(), "{bad}");
        }
        assert_eq!(normalise_template("/u/{id}/x"), "/u/{}/x");
        assert_eq!(rewrite_params("/v2/{id}-{name}"), Ok(vec!["id", "name"]));
        assert!(rewrite_params("/v2/{id").is_err());
        assert!(rewrite_params("/v2/}").is_err());
    }

    #[test]
    fn urls() {
        for ok in [
            "http://127.0.0.1:9000",
            "https://api.internal:443/",
            "http://[::1]:80",
        ] {
            assert_eq!(target_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "127.0.0.1:9000",
            "ftp://x:1",
            "http://x",
            "http://x:0",
            "http://x:99999",
            "http://x:80/api",
            "http://x:80?a=1",
            "http://u:p@x:80",
            "http://:80",
            "http://[zz]:80",
        ] {
            assert!(target_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn methods_and_headers() {
        assert_eq!(method("GET"), Ok(()));
        assert!(
            method("get")
                .err()
                .unwrap_or_default()
                .contains("write `GET`")
        );
        assert!(method("G T").is_err());
        assert_eq!(header_name("X-Request-Id"), Ok(()));
        assert!(header_name("x id").is_err());
        assert!(header_name("").is_err());
        assert_eq!(header_value("a b\tc"), Ok(()));
        assert!(header_value("a\r\nb").is_err());
    }
}
