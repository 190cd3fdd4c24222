//! Security settings: consumers and credentials, `auth`, `oauth` and route policies are
//! checked with exact positions, like every other setting.

mod common;

use common::{assert_has, load, printed};

const BASE: &str = "listen: 127.0.0.1:8000
upstreams:
  - name: backend
    targets: [{url: \"http://127.0.0.1:9000\"}]
routes:
  - name: api
    paths: [/api]
    upstream: backend
";

const HASH: &str = "hmac-sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const ARGON: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7X9VFA1lGNaQ8Uc8DfXSeDIDOWOJFBa3yNyDRb1JkPc";

#[test]
fn a_complete_security_config_loads() {
    let yaml = format!(
        "{BASE}    auth: {{methods: [key_auth, basic_auth, jwt, oauth], anonymous: guest, scopes: [read]}}
    ip_rules: {{allow: [10.0.0.0/8, \"2001:db8::/32\"], deny: [10.1.0.0/16]}}
    cors: {{origins: [\"https://app.example.com\", \"https://*.example.org\"], credentials: true, max_age: 1h}}
consumers:
  - name: alice
    groups: [partners]
    metadata: {{team: mobile}}
    keys: [{{id: AbCdEfGh1234, hash: \"{HASH}\", expires_at: \"2027-01-01T00:00:00Z\"}}]
    basic_auth: [{{username: alice, password_hash: \"{ARGON}\"}}]
  - name: guest
auth:
  key_secret: 0123456789abcdef0123
  key_auth:
    sources: [{{header: x-api-key}}, {{query: api_key}}, {{cookie: key}}]
  jwt:
    - name: idp
      issuer: https://idp.example.com/
      audiences: [api]
      algorithms: [RS256, ES256]
      jwks_url: https://idp.example.com/.well-known/jwks.json
      leeway: 30s
      forward_claims: {{email: x-user-email}}
oauth:
  issuer: https://gw.example.com
  signing_keys: [{{kid: k1, algorithm: ES256, key_file: k1.pem}}]
  clients: [{{client_id: app, secret_hash: \"{ARGON}\", scopes: [read], consumer: alice}}]
policies:
  ip_rules: {{deny: [192.0.2.0/24]}}
"
    );
    let cfg = load(&yaml);
    assert_eq!(cfg.consumers.len(), 2);
    assert_eq!(cfg.auth.jwt[0].leeway.as_std().as_secs(), 30);
    assert!(cfg.routes[0].cors.as_ref().unwrap().credentials);
}

#[test]
fn credentials_are_well_formed_and_identify_one_consumer() {
    let yaml = format!(
        "{BASE}auth: {{key_secret: 0123456789abcdef0123}}
consumers:
  - name: alice
    keys: [{{id: AbCdEfGh1234, hash: \"sha1:abc\"}}, {{id: bad!, hash: \"{HASH}\", expires_at: tomorrow}}]
    basic_auth: [{{username: \"a:b\", password_hash: plain}}]
  - name: alice
    keys: [{{id: AbCdEfGh1234, hash: \"{HASH}\"}}]
"
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 7, "{}", all.join("\n"));
    assert_has(
        &all,
        "12:37",
        "consumers[0].keys[0].hash",
        "expected `hmac-sha256:`",
    );
    assert_has(
        &all,
        "12:55",
        "consumers[0].keys[1].id",
        "8 to 32 letters and digits",
    );
    assert_has(
        &all,
        "12:159",
        "consumers[0].keys[1].expires_at",
        "invalid time \"tomorrow\"",
    );
    assert_has(
        &all,
        "13:29",
        "consumers[0].basic_auth[0].username",
        "must not contain `:`",
    );
    assert_has(
        &all,
        "13:51",
        "consumers[0].basic_auth[0].password_hash",
        "argon2 hash in PHC format",
    );
    assert_has(
        &all,
        "14:11",
        "consumers[1].name",
        "duplicate consumer name `alice`",
    );
    assert_has(
        &all,
        "15:17",
        "consumers[1].keys[0].id",
        "already used (line 12)",
    );
}

#[test]
fn keys_need_a_key_secret() {
    let yaml = format!(
        "{BASE}consumers:\n  - name: alice\n    keys: [{{id: AbCdEfGh1234, hash: \"{HASH}\"}}]\n"
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 1, "{}", all.join("\n"));
    assert_has(&all, "1:1", "auth", "`auth.key_secret` is not set");
    let short = format!("{BASE}auth: {{key_secret: short, keys_file: keys.json}}\n");
    assert_has(
        &printed(&short),
        "9:20",
        "auth.key_secret",
        "at least 16 characters",
    );
}

#[test]
fn jwt_providers_cannot_mix_hmac_and_public_keys() {
    let yaml = format!(
        "{BASE}auth:
  jwt:
    - name: mixed
      algorithms: [HS256, RS256]
      keys: [{{secret: short}}]
    - name: nokeys
      algorithms: [RS256]
    - name: twokinds
      algorithms: [RS256]
      keys: [{{file: a.pem, secret: \"0123456789abcdef0123456789abcdef\"}}]
      jwks_url: ftp://x
"
    );
    let all = printed(&yaml);
    assert_has(&all, "12:19", "auth.jwt[0].algorithms", "cannot be mixed");
    assert_has(
        &all,
        "13:23",
        "auth.jwt[0].keys[0].secret",
        "at least 32 characters",
    );
    assert_has(&all, "14:7", "auth.jwt[1]", "needs `keys` or `jwks_url`");
    assert_has(
        &all,
        "18:14",
        "auth.jwt[2].keys[0]",
        "exactly one of `file`, `jwk` or `secret`",
    );
    assert_has(
        &all,
        "19:17",
        "auth.jwt[2].jwks_url",
        "expected an https:// URL",
    );
    let none = format!(
        "{BASE}auth:\n  jwt:\n    - name: n\n      algorithms: [none]\n      jwks_url: https://x\n"
    );
    assert_has(
        &printed(&none),
        "12:20",
        "auth.jwt[0].algorithms[0]",
        "unknown variant `none`",
    );
}

#[test]
fn jwks_urls_are_https_except_on_loopback_and_fetches_are_spaced() {
    let provider = |name: &str, url: &str| {
        format!("    - {{name: {name}, algorithms: [RS256], jwks_url: \"{url}\"}}\n")
    };
    let loopback = [
        "http://localhost:8080/jwks",
        "http://127.0.0.1/jwks",
        "http://[::1]:9000/jwks",
        "http://LocalHost:1/jwks",
        "https://idp.example.com/jwks",
    ]
    .iter()
    .enumerate()
    .map(|(i, url)| provider(&format!("ok{i}"), url))
    .collect::<String>();
    load(&format!("{BASE}auth:\n  jwt:\n{loopback}"));

    let yaml = format!(
        "{BASE}auth:
  jwt:
{}{}{}    - name: fast
      algorithms: [RS256]
      jwks_url: https://idp.example.com/jwks
      jwks_min_interval: 500ms
",
        provider("plain", "http://idp.example.com/jwks"),
        provider("sneaky", "http://localhost@evil.example/jwks"),
        provider("lookalike", "http://127.0.0.1.evil.example/jwks"),
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 4, "{}", all.join("\n"));
    assert_has(
        &all,
        "11:52",
        "auth.jwt[0].jwks_url",
        "a machine in the middle could inject its own keys",
    );
    assert_has(&all, "12:53", "auth.jwt[1].jwks_url", "must be https://");
    assert_has(&all, "13:56", "auth.jwt[2].jwks_url", "must be https://");
    assert_has(
        &all,
        "17:26",
        "auth.jwt[3].jwks_min_interval",
        "must be at least 1s",
    );
}

#[test]
fn route_policies_name_what_exists() {
    let yaml = BASE.replace(
        "    upstream: backend\n",
        "    upstream: backend
    auth: {methods: [jwt, oauth, mtls], jwt_providers: [idp], anonymous: nobody}
    cors: {origins: [\"*\", \"https://*.*.example.com\", \"https://app.example.com/\"], credentials: true, methods: [get]}
",
    );
    let all = printed(&yaml);
    assert_has(
        &all,
        "9:22",
        "routes[0].auth.methods[0]",
        "needs at least one provider under `auth.jwt`",
    );
    assert_has(
        &all,
        "9:27",
        "routes[0].auth.methods[1]",
        "needs the `oauth` section",
    );
    assert_has(
        &all,
        "9:34",
        "routes[0].auth.methods[2]",
        "TLS listener with `client_auth`",
    );
    assert_has(
        &all,
        "9:57",
        "routes[0].auth.jwt_providers[0]",
        "unknown JWT provider `idp`",
    );
    assert_has(
        &all,
        "9:74",
        "routes[0].auth.anonymous",
        "unknown consumer `nobody`",
    );
    assert_has(&all, "10:27", "routes[0].cors.origins[1]", "invalid origin");
    assert_has(
        &all,
        "10:54",
        "routes[0].cors.origins[2]",
        "no path, no trailing `/`",
    );
    assert_has(
        &all,
        "10:96",
        "routes[0].cors.credentials",
        "refuse credentials with origin `*`",
    );
    assert_has(&all, "10:112", "routes[0].cors.methods[0]", "write `GET`");
}

#[test]
fn oauth_needs_asymmetric_keys_and_real_consumers() {
    let yaml = format!(
        "{BASE}oauth:
  issuer: gw.example.com
  path_prefix: /oauth/
  signing_keys: [{{kid: k1, algorithm: HS256, key_file: k.pem}}, {{kid: k1, algorithm: ES256, key_file: k.pem}}]
  clients: [{{client_id: app, secret_hash: nope, consumer: ghost}}]
"
    );
    let all = printed(&yaml);
    assert_has(&all, "10:11", "oauth.issuer", "issuer URL");
    assert_has(&all, "11:16", "oauth.path_prefix", "no trailing `/`");
    assert_has(
        &all,
        "12:39",
        "oauth.signing_keys[0].algorithm",
        "signed with a private key",
    );
    assert_has(
        &all,
        "12:70",
        "oauth.signing_keys[1].kid",
        "kid `k1` is already used (line 12)",
    );
    assert_has(&all, "13:43", "oauth.clients[0].secret_hash", "argon2");
    assert_has(
        &all,
        "13:59",
        "oauth.clients[0].consumer",
        "unknown consumer `ghost`",
    );
}

#[test]
fn upstream_tls_needs_https_targets_and_a_whole_client_identity() {
    let yaml = BASE.replace(
        "    targets: [{url: \"http://127.0.0.1:9000\"}]\n",
        "    targets: [{url: \"http://127.0.0.1:9000\"}]\n    tls: {ca: ca.pem, client_cert: c.pem}\n",
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 2, "{}", all.join("\n"));
    assert_has(&all, "5:10", "upstreams[0].tls", "give both or neither");
    assert_has(&all, "5:10", "upstreams[0].tls", "has none");
}

#[test]
fn identity_and_claim_headers_cannot_take_over_reserved_headers() {
    let yaml = format!(
        "{BASE}auth:
  consumer_headers: {{id: x-forwarded-for, groups: content-length}}
  jwt:
    - name: idp
      algorithms: [RS256]
      jwks_url: https://idp.example.com/jwks
      forward_claims: {{tenant: host, sub: x-request-id, email: x-user-email}}
"
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 4, "{}", all.join("\n"));
    assert_has(
        &all,
        "10:26",
        "auth.consumer_headers.id",
        "cannot hold identity or claims",
    );
    assert_has(
        &all,
        "10:51",
        "auth.consumer_headers.groups",
        "frames the message",
    );
    assert_has(
        &all,
        "15:32",
        "auth.jwt[0].forward_claims.tenant",
        "frames the message",
    );
    assert_has(
        &all,
        "15:43",
        "auth.jwt[0].forward_claims.sub",
        "request-id",
    );
}

/// Entries without a prefix are subjects; `dns:`, `email:`, `uri:` and `sha256:` entries
/// are their own kinds, and duplicates are found in normal form (case, `:` pairs).
#[test]
fn certificate_entries_are_typed_and_unique_with_their_kind() {
    let fp = "AB".repeat(32);
    let yaml = format!(
        "{BASE}consumers:
  - name: alice
    certificates: [\"CN=alice,O=Example\", \"dns:Api.Example.test\", \"sha256:{fp}\"]
    certificate_issuer: \"CN=Clients CA,O=Example\"
  - name: bob
    certificates:
      - \"cn=alice,o=Example\"
      - DNS:api.example.test
      - \"sha256:{pairs}\"
      - billing.internal.test
      - ops@example.test
      - \"ftp:x\"
      - \"sha256:abc\"
      - \"CN=bob, O=Example\"
      - \"email:CN=alice,O=Example\"
    certificate_issuer: Clients CA
  - name: carol
    certificate_issuer: \"CN=Clients CA\"
  - {{name: dave, certificates: [\"uri:spiffe://example.test/dave\", \"uri:dave\"]}}
",
        pairs = vec!["ab"; 32].join(":")
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 12, "{}", all.join("\n"));
    assert_has(
        &all,
        "15:9",
        "consumers[1].certificates[0]",
        "`CN=alice,O=Example` is already used (line 11)",
    );
    assert_has(
        &all,
        "16:9",
        "consumers[1].certificates[1]",
        "`dns:api.example.test` is already used (line 11)",
    );
    assert_has(
        &all,
        "17:9",
        "consumers[1].certificates[2]",
        "`sha256:abababab",
    );
    assert_has(
        &all,
        "18:9",
        "consumers[1].certificates[3]",
        "a DNS name is written `dns:billing.internal.test`",
    );
    assert_has(
        &all,
        "19:9",
        "consumers[1].certificates[4]",
        "an email address is written `email:ops@example.test`",
    );
    assert_has(
        &all,
        "20:9",
        "consumers[1].certificates[5]",
        "unknown prefix `ftp:`",
    );
    assert_has(
        &all,
        "21:9",
        "consumers[1].certificates[6]",
        "expected 64 hex digits",
    );
    assert_has(
        &all,
        "22:9",
        "consumers[1].certificates[7]",
        "` O` is not an attribute type",
    );
    assert_has(
        &all,
        "23:9",
        "consumers[1].certificates[8]",
        "expected an email address",
    );
    assert_has(
        &all,
        "24:25",
        "consumers[1].certificate_issuer",
        "invalid issuer DN: `Clients CA` is not `KEY=value`",
    );
    assert_has(
        &all,
        "26:25",
        "consumers[2].certificate_issuer",
        "but there are none",
    );
    assert_has(
        &all,
        "27:67",
        "consumers[3].certificates[1]",
        "a URI with a scheme",
    );
}

#[test]
fn upstream_policies_are_checked_like_route_policies() {
    let yaml = BASE.replace(
        "    targets: [{url: \"http://127.0.0.1:9000\"}]\n",
        "    targets: [{url: \"http://127.0.0.1:9000\"}]\n    policies:\n      auth: {methods: [key_auth], anonymous: ghost}\n      ip_rules: {deny: [10.0.0.0/8]}\n      cors: {origins: [\"ftp://x\"]}\n",
    );
    let all = printed(&yaml);
    assert_eq!(all.len(), 2, "{}", all.join("\n"));
    assert_has(
        &all,
        "6:46",
        "upstreams[0].policies.auth.anonymous",
        "unknown consumer `ghost`",
    );
    assert_has(
        &all,
        "8:24",
        "upstreams[0].policies.cors.origins[0]",
        "invalid origin",
    );
}
