//! What the server publishes about itself: the JWKS with every signing key's public
//! part (RFC 7517) and the authorization server metadata (RFC 8414). Both are built
//! once per config version and served as they are.

use bytes::Bytes;
use serde_json::json;

use super::keys::SigningKey;

pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// How long clients and resource servers may cache the documents. Short, so a newly
/// added key is fetched well within a rotation window (verifiers also refetch on an
/// unknown `kid`).
pub const CACHE: &str = "public, max-age=300";

/// Where the endpoints are, as request paths on this gateway.
#[derive(Debug)]
pub struct Paths {
    pub token: String,
    pub introspect: String,
    pub revoke: String,
    /// RFC 8414 §3: `/.well-known/oauth-authorization-server` followed by the issuer's
    /// path, if it has one; the plain well-known path is served as well.
    pub metadata: Vec<String>,
}

impl Paths {
    pub fn new(prefix: &str, issuer: &str) -> Self {
        let mut metadata = vec![METADATA_PATH.to_owned()];
        let issuer_path = issuer
            .parse::<http::Uri>()
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        if !issuer_path.is_empty() {
            metadata.push(format!("{METADATA_PATH}{issuer_path}"));
        }
        Self {
            token: format!("{prefix}/token"),
            introspect: format!("{prefix}/introspect"),
            revoke: format!("{prefix}/revoke"),
            metadata,
        }
    }
}

/// `{"keys": [...]}` with every configured key, the signing one first.
pub fn jwks(keys: &[SigningKey]) -> Bytes {
    let keys: Vec<&serde_json::Value> = keys.iter().map(|k| &k.jwk).collect();
    Bytes::from(json!({ "keys": keys }).to_string())
}

/// The RFC 8414 metadata document. Endpoint URLs are the issuer's origin followed by
/// the paths this gateway serves, not the issuer followed by them: with an issuer such
/// as `https://gw.example.com/auth` the token endpoint is served at `/oauth/token`, and
/// `https://gw.example.com/auth/oauth/token` would send clients to a 404.
pub fn metadata(issuer: &str, paths: &Paths, scopes: &[&str]) -> Bytes {
    let base = origin(issuer);
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    let doc = json!({
        "issuer": issuer,
        "token_endpoint": format!("{base}{}", paths.token),
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        "scopes_supported": scopes,
        // RFC 8414 §2 requires this member, and its values are the `response_type`s of
        // the authorization endpoint. A client-credentials-only server has no
        // authorization endpoint, so it supports none: `["token"]` would advertise the
        // implicit grant, which does not exist here.
        "response_types_supported": [],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint": format!("{base}{}", paths.introspect),
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint": format!("{base}{}", paths.revoke),
        "revocation_endpoint_auth_methods_supported": auth_methods,
    });
    Bytes::from(doc.to_string())
}

/// `scheme://authority` of a URL: everything before the path, query or fragment.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_also_served_under_the_issuer_path() {
        let plain = Paths::new("/oauth", "https://gw.example.com");
        assert_eq!(plain.metadata, [METADATA_PATH]);
        let slash = Paths::new("/oauth", "https://gw.example.com/");
        assert_eq!(slash.metadata, [METADATA_PATH]);
        let tenant = Paths::new("/auth", "https://gw.example.com/t1/");
        assert_eq!(tenant.metadata[1], format!("{METADATA_PATH}/t1"));
        assert_eq!(tenant.token, "/auth/token");
    }

    #[test]
    fn endpoint_urls_are_the_paths_served_whatever_the_issuer_path() {
        let tenant = Paths::new("/auth", "https://gw.example.com/t1/");
        let doc: serde_json::Value =
            serde_json::from_slice(&metadata("https://gw.example.com/t1/", &tenant, &["a"]))
                .unwrap();
        assert_eq!(doc["issuer"], "https://gw.example.com/t1/");
        let served = [
            ("token_endpoint", &tenant.token),
            ("introspection_endpoint", &tenant.introspect),
            ("revocation_endpoint", &tenant.revoke),
        ];
        for (field, path) in served {
            assert_eq!(
                doc[field],
                format!("https://gw.example.com{path}"),
                "{field}"
            );
        }
        assert_eq!(doc["token_endpoint"], "https://gw.example.com/auth/token");
        assert_eq!(
            doc["jwks_uri"],
            format!("https://gw.example.com{JWKS_PATH}")
        );
    }

    #[test]
    fn origins_keep_scheme_host_and_port_only() {
        assert_eq!(origin("https://gw.example.com"), "https://gw.example.com");
        assert_eq!(origin("https://gw.example.com/"), "https://gw.example.com");
        assert_eq!(origin("http://10.0.0.1:8443/a/b"), "http://10.0.0.1:8443");
        assert_eq!(origin("https://[::1]:8443?x#y"), "https://[::1]:8443");
    }
}
