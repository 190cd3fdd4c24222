//! Security checks: consumers and credentials that are well-formed and unique, JWT
//! providers whose keys cannot be confused, an OAuth server that can sign, and route
//! policies that only name what exists.

use std::collections::HashMap;

use super::Checker;
use crate::certificate::{self, CertificateName};
use crate::de::Parsed;
use crate::lexical;
use crate::model::{AuthMethod, Config, Cors, JwtProvider, OAuth, RouteAuth};

pub(super) fn check(c: &mut Checker<'_>, parsed: &Parsed) {
    let config = &parsed.config;
    let consumers: Vec<(String, &crate::model::Consumer)> = config
        .consumers
        .iter()
        .zip(&parsed.consumer_at)
        .map(|(k, i)| (format!("consumers[{i}]"), k))
        .collect();
    c.unique_names(
        "consumer",
        consumers.iter().map(|(p, k)| (p.as_str(), k.name.as_str())),
    );
    credentials(c, &consumers);
    for (upstream, i) in config.upstreams.iter().zip(&parsed.upstream_at) {
        if let Some(tls) = &upstream.tls {
            upstream_tls(c, &format!("upstreams[{i}]"), tls, upstream);
        }
        if let Some(auth) = &upstream.policies.auth {
            route_auth(c, &format!("upstreams[{i}].policies.auth"), auth, config);
        }
        if let Some(cors) = &upstream.policies.cors {
            self::cors(c, &format!("upstreams[{i}].policies.cors"), cors);
        }
    }
    let has_keys = consumers.iter().any(|(_, k)| !k.keys.is_empty());
    auth(c, config, has_keys);
    if let Some(oauth) = &config.oauth {
        self::oauth(c, oauth, config);
    }
    if let Some(auth) = &config.policies.auth {
        route_auth(c, "policies.auth", auth, config);
    }
    if let Some(cors) = &config.policies.cors {
        self::cors(c, "policies.cors", cors);
    }
    for (route, i) in config.routes.iter().zip(&parsed.route_at) {
        if let Some(auth) = &route.auth {
            route_auth(c, &format!("routes[{i}].auth"), auth, config);
        }
        if let Some(cors) = &route.cors {
            self::cors(c, &format!("routes[{i}].cors"), cors);
        }
    }
}

/// Key ids, usernames and certificate names each identify one consumer.
fn credentials(c: &mut Checker<'_>, consumers: &[(String, &crate::model::Consumer)]) {
    let mut key_ids: HashMap<&str, String> = HashMap::new();
    let mut users: HashMap<&str, String> = HashMap::new();
    let mut cert_names: HashMap<CertificateName, String> = HashMap::new();
    for (at, consumer) in consumers {
        for (i, key) in consumer.keys.iter().enumerate() {
            let kat = format!("{at}.keys[{i}]");
            if let Err(msg) = key_id(&key.id) {
                c.err(format!("{kat}.id"), msg);
            }
            once(c, &mut key_ids, &key.id, format!("{kat}.id"), "key id");
            if !is_key_hash(&key.hash) {
                let msg =
                    "expected `hmac-sha256:` and 64 hex digits, as `turnpike keys create` writes";
                c.err(format!("{kat}.hash"), msg);
            }
            if let Some(at) = &key.expires_at {
                if let Err(msg) = timestamp(at) {
                    c.err(format!("{kat}.expires_at"), msg);
                }
            }
        }
        for (i, cred) in consumer.basic_auth.iter().enumerate() {
            let bat = format!("{at}.basic_auth[{i}]");
            if cred.username.is_empty() || cred.username.contains(':') {
                c.err(
                    format!("{bat}.username"),
                    "a username must be non-empty and must not contain `:`",
                );
            }
            once(
                c,
                &mut users,
                &cred.username,
                format!("{bat}.username"),
                "username",
            );
            argon2_hash(c, format!("{bat}.password_hash"), &cred.password_hash);
        }
        certificates(c, at, consumer, &mut cert_names);
    }
}

/// `certificates` entries parse and are unique across consumers, compared in normal form
/// and with their kind (`dns:a` and `email:a` are different names); `certificate_issuer`
/// is a DN and pins something.
fn certificates(
    c: &mut Checker<'_>,
    at: &str,
    consumer: &crate::model::Consumer,
    seen: &mut HashMap<CertificateName, String>,
) {
    for (i, entry) in consumer.certificates.iter().enumerate() {
        let path = format!("{at}.certificates[{i}]");
        match CertificateName::parse(entry) {
            Err(e) => c.err(path, e.to_string()),
            Ok(name) => {
                if let Some(first) = seen.get(&name) {
                    let line = c.line(first);
                    let msg = format!(
                        "certificate name `{name}` is already used (line {line}); each must be unique"
                    );
                    c.err(path, msg);
                } else {
                    seen.insert(name, path);
                }
            }
        }
    }
    if let Some(issuer) = &consumer.certificate_issuer {
        let path = format!("{at}.certificate_issuer");
        if let Err(e) = certificate::canonical_dn(issuer) {
            c.err(path, format!("invalid issuer DN: {e}"));
        } else if consumer.certificates.is_empty() {
            let msg = "`certificate_issuer` pins the CA of `certificates`, but there are none";
            c.err(path, msg);
        }
    }
}

fn once<'a>(
    c: &mut Checker<'_>,
    seen: &mut HashMap<&'a str, String>,
    value: &'a str,
    path: String,
    what: &str,
) {
    if let Some(first) = seen.get(value) {
        let line = c.line(first);
        c.err(
            path,
            format!("{what} `{value}` is already used (line {line}); each must be unique"),
        );
    } else {
        seen.insert(value, path);
    }
}

/// The identifier part of a generated key: 8 to 32 letters and digits.
pub fn key_id(id: &str) -> Result<(), String> {
    if (8..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(format!(
            "invalid key id {id:?}: expected 8 to 32 letters and digits"
        ))
    }
}

fn is_key_hash(hash: &str) -> bool {
    hash.strip_prefix("hmac-sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn timestamp(value: &str) -> Result<(), String> {
    value.parse::<jiff::Timestamp>().map(|_| ()).map_err(|e| {
        format!("invalid time {value:?}: {e} (expected RFC 3339, e.g. 2027-01-31T00:00:00Z)")
    })
}

fn argon2_hash(c: &mut Checker<'_>, path: String, hash: &str) {
    if !(hash.starts_with("$argon2id$")
        || hash.starts_with("$argon2i$")
        || hash.starts_with("$argon2d$"))
    {
        c.err(
            path,
            "expected an argon2 hash in PHC format (`$argon2id$...`), as `turnpike hash-password` prints",
        );
    }
}

fn auth(c: &mut Checker<'_>, config: &Config, has_keys: bool) {
    let auth = &config.auth;
    match &auth.key_secret {
        Some(secret) if secret.len() < 16 => c.err(
            "auth.key_secret",
            "the key secret must be at least 16 characters (32 random bytes recommended)",
        ),
        None if has_keys || auth.keys_file.is_some() => c.err(
            "auth",
            "API keys are configured but `auth.key_secret` is not set; keys are hashed with it",
        ),
        _ => {}
    }
    let headers = &auth.consumer_headers;
    for (field, name) in [
        ("id", &headers.id),
        ("groups", &headers.groups),
        ("credential", &headers.credential),
        ("anonymous", &headers.anonymous),
        ("scopes", &headers.scopes),
    ] {
        if let Err(msg) = identity_header(name, config) {
            c.err(format!("auth.consumer_headers.{field}"), msg);
        }
    }
    if auth.key_auth.sources.is_empty() {
        c.err(
            "auth.key_auth.sources",
            "list at least one place to read keys from",
        );
    }
    for (i, source) in auth.key_auth.sources.iter().enumerate() {
        if let crate::model::KeySource::Header(name) = source {
            if let Err(msg) = lexical::header_name(name) {
                c.err(format!("auth.key_auth.sources[{i}].header"), msg);
            }
        }
    }
    let paths: Vec<String> = (0..auth.jwt.len())
        .map(|i| format!("auth.jwt[{i}]"))
        .collect();
    c.unique_names(
        "JWT provider",
        paths
            .iter()
            .zip(&auth.jwt)
            .map(|(p, j)| (p.as_str(), j.name.as_str())),
    );
    for (i, provider) in auth.jwt.iter().enumerate() {
        jwt(c, &format!("auth.jwt[{i}]"), provider, config);
    }
}

fn jwt(c: &mut Checker<'_>, at: &str, p: &JwtProvider, config: &Config) {
    if p.algorithms.is_empty() {
        c.err(
            format!("{at}.algorithms"),
            "list the accepted algorithms (e.g. [RS256])",
        );
    }
    let hmac = p.algorithms.iter().filter(|a| a.is_hmac()).count();
    if hmac > 0 && hmac < p.algorithms.len() {
        c.err(
            format!("{at}.algorithms"),
            "HS* and public-key algorithms cannot be mixed in one provider (a public key must never be usable as an HMAC secret); use two providers",
        );
    }
    if p.keys.is_empty() && p.jwks_url.is_none() {
        c.err(at.to_owned(), "a JWT provider needs `keys` or `jwks_url`");
    }
    if let Some(url) = &p.jwks_url {
        if let Err(msg) = jwks_url(url) {
            c.err(format!("{at}.jwks_url"), msg);
        }
        if hmac > 0 {
            c.err(
                format!("{at}.jwks_url"),
                "HS* algorithms use `keys` with a `secret`, not a JWKS URL",
            );
        }
    }
    if p.jwks_min_interval < crate::units::Duration::from_secs(1) {
        c.err(
            format!("{at}.jwks_min_interval"),
            "must be at least 1s: tokens with made-up `kid`s each cause a JWKS fetch once per interval, and a shorter one lets them flood the issuer",
        );
    }
    for (i, key) in p.keys.iter().enumerate() {
        let kat = format!("{at}.keys[{i}]");
        let given = [key.file.is_some(), key.jwk.is_some(), key.secret.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            c.err(kat.clone(), "give exactly one of `file`, `jwk` or `secret`");
        } else if key.secret.is_some() != (hmac > 0) {
            let msg = if hmac > 0 {
                "HS* algorithms verify with a `secret`"
            } else {
                "a `secret` only works with HS* algorithms"
            };
            c.err(kat.clone(), msg);
        }
        if key.secret.as_ref().is_some_and(|s| s.len() < 32) {
            c.err(
                format!("{kat}.secret"),
                "an HMAC secret must be at least 32 characters",
            );
        }
    }
    for (claim, header) in &p.forward_claims {
        if let Err(msg) = identity_header(header, config) {
            c.err(format!("{at}.forward_claims.{claim}"), msg);
        }
    }
}

/// A JWKS URL must be https: over plain http anyone on the network path could replace
/// the keys with their own and forge any token. Loopback (a local sidecar, a test
/// server) is the one exception, since nothing sits between the gateway and itself.
fn jwks_url(url: &str) -> Result<(), &'static str> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("expected an https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Whatever precedes `@` is userinfo: `http://localhost@evil.example` goes to evil.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.split_once(']') {
        Some((v6, _)) => &host_port[..=v6.len()],
        None => host_port.split(':').next().unwrap_or_default(),
    };
    if ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|l| host.eq_ignore_ascii_case(l))
    {
        return Ok(());
    }
    Err(
        "must be https://: over plain http a machine in the middle could inject its own keys and forge tokens (http:// is allowed for localhost, 127.0.0.1 and [::1] only)",
    )
}

fn oauth(c: &mut Checker<'_>, oauth: &OAuth, config: &Config) {
    if !(oauth.issuer.starts_with("https://") || oauth.issuer.starts_with("http://")) {
        c.err("oauth.issuer", "expected the issuer URL (https://...)");
    }
    if !oauth.path_prefix.starts_with('/') || oauth.path_prefix.ends_with('/') {
        c.err(
            "oauth.path_prefix",
            "expected a path like `/oauth` (leading `/`, no trailing `/`)",
        );
    }
    c.positive("oauth.token_ttl".to_owned(), oauth.token_ttl);
    if oauth.signing_keys.is_empty() {
        c.err("oauth.signing_keys", "list at least one signing key");
    }
    let mut kids: HashMap<&str, String> = HashMap::new();
    for (i, key) in oauth.signing_keys.iter().enumerate() {
        let at = format!("oauth.signing_keys[{i}]");
        if key.algorithm.is_hmac() {
            c.err(format!("{at}.algorithm"), "issued tokens are signed with a private key: use RS256, PS256, ES256, ES384 or EdDSA");
        }
        once(c, &mut kids, &key.kid, format!("{at}.kid"), "kid");
    }
    let mut ids: HashMap<&str, String> = HashMap::new();
    for (i, client) in oauth.clients.iter().enumerate() {
        let at = format!("oauth.clients[{i}]");
        once(
            c,
            &mut ids,
            &client.client_id,
            format!("{at}.client_id"),
            "client id",
        );
        argon2_hash(c, format!("{at}.secret_hash"), &client.secret_hash);
        if let Some(name) = &client.consumer {
            consumer_exists(c, format!("{at}.consumer"), name, config);
        }
    }
}

fn consumer_exists(c: &mut Checker<'_>, path: String, name: &str, config: &Config) {
    if !config.consumers.iter().any(|k| k.name == name) {
        c.err(path, format!("unknown consumer `{name}`"));
    }
}

fn route_auth(c: &mut Checker<'_>, at: &str, auth: &RouteAuth, config: &Config) {
    if auth.methods.is_empty() && auth.anonymous.is_none() {
        c.err(
            format!("{at}.methods"),
            "list the accepted methods (key_auth, basic_auth, jwt, oauth, mtls)",
        );
    }
    for (i, method) in auth.methods.iter().enumerate() {
        let path = format!("{at}.methods[{i}]");
        match method {
            AuthMethod::Jwt if config.auth.jwt.is_empty() => {
                c.err(path, "`jwt` needs at least one provider under `auth.jwt`");
            }
            AuthMethod::Oauth if config.oauth.is_none() => {
                c.err(
                    path,
                    "`oauth` needs the `oauth` section (this gateway's token issuer)",
                );
            }
            AuthMethod::Mtls
                if !config
                    .listeners
                    .iter()
                    .any(|l| l.tls.as_ref().is_some_and(|t| t.client_auth.is_some())) =>
            {
                c.err(path, "`mtls` needs a TLS listener with `client_auth`");
            }
            _ => {}
        }
    }
    for (i, name) in auth.jwt_providers.iter().enumerate() {
        if !config.auth.jwt.iter().any(|p| &p.name == name) {
            c.err(
                format!("{at}.jwt_providers[{i}]"),
                format!("unknown JWT provider `{name}`"),
            );
        }
    }
    if let Some(name) = &auth.anonymous {
        consumer_exists(c, format!("{at}.anonymous"), name, config);
    }
}

fn cors(c: &mut Checker<'_>, at: &str, cors: &Cors) {
    if cors.origins.is_empty() {
        c.err(format!("{at}.origins"), "list the allowed origins (or `*`)");
    }
    for (i, origin) in cors.origins.iter().enumerate() {
        if let Err(msg) = lexical::origin_pattern(origin) {
            c.err(format!("{at}.origins[{i}]"), msg);
        }
    }
    if cors.credentials && cors.origins.iter().any(|o| o == "*") {
        c.err(
            format!("{at}.credentials"),
            "browsers refuse credentials with origin `*`; list the origins instead",
        );
    }
    for (i, m) in cors.methods.iter().enumerate() {
        if let Err(msg) = lexical::method(m) {
            c.err(format!("{at}.methods[{i}]"), msg);
        }
    }
    for (field, list) in [
        ("headers", &cors.headers),
        ("expose_headers", &cors.expose_headers),
    ] {
        for (i, h) in list.iter().enumerate() {
            if let Err(msg) = lexical::header_name(h) {
                c.err(format!("{at}.{field}[{i}]"), msg);
            }
        }
    }
}

fn upstream_tls(
    c: &mut Checker<'_>,
    at: &str,
    tls: &crate::model::UpstreamTls,
    upstream: &crate::model::Upstream,
) {
    if tls.client_cert.is_some() != tls.client_key.is_some() {
        c.err(
            format!("{at}.tls"),
            "`client_cert` and `client_key` go together: give both or neither",
        );
    }
    if !upstream
        .targets
        .iter()
        .any(|t| t.url.starts_with("https://"))
    {
        c.err(
            format!("{at}.tls"),
            "`tls` applies to https:// targets, and this upstream has none",
        );
    }
}

/// Headers the gateway fills from an identity or a token's claims: never one that frames
/// the message, routes it, carries credentials or says where it came from, since a token
/// (whose claims the caller may choose) would then decide those.
fn identity_header(name: &str, config: &Config) -> Result<(), String> {
    lexical::header_name(name)?;
    super::routes::reserved(name)?;
    let lower = name.to_ascii_lowercase();
    let taken = ["authorization", "cookie", "forwarded", "via", "x-real-ip"]
        .contains(&lower.as_str())
        || lower.starts_with("x-forwarded-")
        || lower == config.server.request_id_header.to_ascii_lowercase();
    if taken {
        return Err(format!(
            "header `{name}` carries credentials, forwarding or request-id information and cannot hold identity or claims"
        ));
    }
    Ok(())
}
