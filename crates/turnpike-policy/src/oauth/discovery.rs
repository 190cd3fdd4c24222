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

/// The RFC 8414 metadata document. Endpoint URLs are the issuer followed by the
/// endpoint's path: the issuer is the gateway's public base URL, so if it has a path
/// (a proxy in front mounts the gateway there) the endpoints live under it too.
pub fn metadata(issuer: &str, paths: &Paths, scopes: &[&str]) -> Bytes {
    let base = issuer.trim_end_matches('/');
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
        let doc: serde_json::Value =
            serde_json::from_slice(&metadata("https://gw.example.com/t1/", &tenant, &["a"]))
                .unwrap();
        assert_eq!(doc["issuer"], "https://gw.example.com/t1/");
        assert_eq!(
            doc["token_endpoint"],
            "https://gw.example.com/t1/auth/token"
        );
        assert_eq!(
            doc["jwks_uri"],
            "https://gw.example.com/t1/.well-known/jwks.json"
        );
    }
}
