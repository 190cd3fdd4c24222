//! OpenAPI schemas of the entity bodies: the same objects as in the YAML file.
//!
//! `turnpike_config::model` has no OpenAPI derive (that crate stays free of HTTP concerns),
//! so these types describe it for the document only; no request is ever parsed with them.
//! Top-level fields are spelled out, nested settings blocks are objects documented in
//! `docs/configuration.md`. A test compares every property here with the fields the model
//! accepts, so the two cannot drift apart unnoticed.

#![allow(
    dead_code,
    reason = "describes the model for the OpenAPI document; never built"
)]

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A named group of targets that routes send traffic to (`upstreams:` in the file).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub name: String,
    pub targets: Vec<Target>,
    #[serde(default)]
    pub balancer: Balancer,
    /// Key for `balancer: consistent_hash`: `{"header": NAME}`, `{"cookie": NAME}`,
    /// `client_ip` or `path`.
    #[serde(default)]
    pub hash_on: Value,
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// `preserve` (the client's Host), `target` (the target's authority) or a fixed value.
    #[serde(default)]
    pub host_header: String,
    /// `connect`, `first_byte`, `idle`, `total` durations (`"5s"`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub timeouts: Value,
    /// `idle_timeout`, `max_idle_per_target`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub pool: Value,
    /// `attempts`, `budget_percent`, `min_per_second`, `on_statuses`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub retries: Value,
    /// `active` and `passive` health checks.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub health: Value,
    /// `failure_ratio`, `min_requests`, `window`, `open_for`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub circuit_breaker: Value,
    /// `ca`, `client_cert`, `client_key` for `https://` targets.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tls: Value,
    /// `auth`, `ip_rules`, `cors` for every route to this upstream; a route's own `auth` and
    /// `cors` replace these.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub policies: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `http://host:port` or `https://host:port`; no path, query or credentials.
    pub url: String,
    #[serde(default)]
    #[schema(default = 1, minimum = 0)]
    pub weight: u32,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balancer {
    #[default]
    RoundRobin,
    LeastConnections,
    ConsistentHash,
    LeastLatency,
    Random,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    Http2,
}

/// How a request finds its upstream (`routes:` in the file).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: String,
    /// Exact hosts or `*.example.com` wildcards; empty matches any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Literal paths or templates with `{param}` segments; empty means `/`.
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub path_type: PathType,
    /// Upper-case method names; empty matches every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Header name to one accepted value or a list of them.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub headers: Value,
    /// Name of the upstream; it must exist.
    pub upstream: String,
    #[serde(default)]
    pub strip_prefix: bool,
    /// Replacement path; `{param}` names from the matched template are substituted.
    #[serde(default)]
    pub rewrite: String,
    #[serde(default)]
    pub request_headers: HeaderTransform,
    #[serde(default)]
    pub response_headers: HeaderTransform,
    /// `methods`, `jwt_providers`, `anonymous`, `scopes`, `groups`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub auth: Value,
    #[serde(default)]
    pub ip_rules: IpRules,
    /// `origins`, `methods`, `headers`, `expose_headers`, `credentials`, `max_age`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub cors: Value,
    /// Shed order under overload: `low`, `normal` (default) or `high`.
    #[serde(default)]
    pub priority: Priority,
    /// `limits` (each `limit`, `per`, `burst`, `by`, `name`) and `fail` (`open`, `closed`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub rate_limit: Value,
    /// `limit`, `by` and `queue` (`size`, `timeout`): requests in flight at once.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub concurrency: Value,
    /// `weight` and `header`: what a request costs against its consumer's quota.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub cost: Value,
    /// `state` (`draft`, `published`, `deprecated`, `retired`), `deprecated_at`, `sunset`, `link`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub lifecycle: Value,
    /// `openapi`, `parameters` (each `name`, `in`, `required`, `schema`) and `body`
    /// (`required`, `schema`): request validation against JSON Schemas.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub validate: Value,
    /// `enabled`, `default_ttl`, `heuristic_percent`, `heuristic_max`, `statuses`, `methods`, `key`
    /// (`sort_query`, `ignore_params`, `headers`, `consumer`), `lock_timeout`, `strip_tags`:
    /// response caching (docs/caching.md).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub cache: Value,
}

/// The global policies (`policies:` in the file): every route gets them unless the route
/// or its upstream sets its own (`auth`, `cors`, `rate_limit`, `concurrency`, `lifecycle`
/// and `cache` are replaced by the more specific one; IP rules of every level apply).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    /// `methods`, `jwt_providers`, `anonymous`, `scopes`, `groups`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub auth: Value,
    #[serde(default)]
    pub ip_rules: IpRules,
    /// `origins`, `methods`, `headers`, `expose_headers`, `credentials`, `max_age`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub cors: Value,
    /// `limits` (each `limit`, `per`, `burst`, `by`, `name`) and `fail` (`open`, `closed`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub rate_limit: Value,
    /// `limit`, `by` and `queue` (`size`, `timeout`): requests in flight at once.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub concurrency: Value,
    /// `state` (`draft`, `published`, `deprecated`, `retired`), `deprecated_at`, `sunset`, `link`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub lifecycle: Value,
    /// Response caching (docs/caching.md).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub cache: Value,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PathType {
    #[default]
    Prefix,
    Exact,
}

/// Header edits, in order: remove, set (replace), add (append).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderTransform {
    pub remove: Vec<String>,
    pub set: BTreeMap<String, String>,
    pub add: BTreeMap<String, String>,
}

/// Client networks (CIDR) allowed and denied; deny wins.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IpRules {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

/// A named caller of the APIs (`consumers:` in the file). Credentials are hashes only.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Free-form labels for the operator.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub keys: Vec<ApiKey>,
    #[serde(default)]
    pub basic_auth: Vec<BasicCredential>,
    /// Client certificate names (subject DN, `dns:`, `email:`, `uri:`, `sha256:`).
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Issuer DN the client certificate must have.
    #[serde(default)]
    pub certificate_issuer: String,
    /// The plan (tier) whose limits and quota apply to this consumer.
    #[serde(default)]
    pub plan: String,
    /// Replaces the plan's rate limits: each `limit`, `per`, `burst`, `name`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub rate_limits: Value,
    /// Replaces the plan's quota: `limit` and `per` (`day` or `month`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub quota: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The id part of `tp_<id>_<secret>`.
    pub id: String,
    /// `hmac-sha256:<hex>` of the whole key under `auth.key_secret`.
    pub hash: String,
    /// RFC 3339 instant after which the key no longer works.
    #[serde(default)]
    pub expires_at: String,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    pub username: String,
    /// PHC-format argon2 hash, as `turnpike hash-password` prints.
    pub password_hash: String,
}

/// A named tier of service: the rate limits and quota its consumers get on every route
/// (`plans:` in the file).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    /// Counted per consumer (`by` is not allowed here): each `limit`, `per`, `burst`, `name`.
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
    /// `limit` and `per` (`day` or `month`).
    #[serde(default)]
    pub quota: Option<Quota>,
}

/// `limit` requests per `per`, up to `burst` at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Shown in `RateLimit-Policy`; defaults to e.g. `100-per-1m`.
    #[serde(default)]
    pub name: Option<String>,
    pub limit: u64,
    /// `second`, `minute`, `hour`, `day` or a duration such as `10s`.
    pub per: String,
    /// Requests allowed at once; defaults to `limit`.
    #[serde(default)]
    pub burst: Option<u64>,
    /// What one counter is kept for: `consumer`, `credential`, `ip`, `route`,
    /// `header:<name>`; defaults to `[consumer]`. Not allowed in plans.
    #[serde(default)]
    pub by: Vec<String>,
}

/// A cap per consumer per calendar day or month.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub limit: u64,
    pub per: QuotaPeriod,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    Day,
    Month,
}

/// One page of plans.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlanList {
    pub items: Vec<Plan>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// One page of upstreams.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpstreamList {
    pub items: Vec<Upstream>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// One page of routes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RouteList {
    pub items: Vec<Route>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// One page of consumers.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConsumerList {
    pub items: Vec<Consumer>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// A client of the gateway's OAuth server (`oauth.clients` in the file), as stored and
/// returned: only the hash of its secret.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    pub client_id: String,
    /// argon2 PHC hash of the client secret.
    pub secret_hash: String,
    /// Scopes this client may be granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Consumer the client's tokens act as; defaults to an ad-hoc one named after it.
    #[serde(default)]
    pub consumer: Option<String>,
}

/// An OAuth client to create or replace. Without `secret_hash`, `POST` generates a secret
/// (returned once, as `client_secret`) and `PUT` keeps the stored one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthClientInput {
    /// Optional in a `PUT` body (the URL names the client).
    pub client_id: String,
    /// argon2 PHC hash of the secret (`turnpike secret generate`).
    #[serde(default)]
    pub secret_hash: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub consumer: Option<String>,
}

/// A created OAuth client; `client_secret` only when the secret was generated, shown only
/// in this response.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreatedOAuthClient {
    pub client_id: String,
    pub secret_hash: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub consumer: Option<String>,
    /// The secret in clear: what the client sends (HTTP Basic or `client_secret_post`).
    #[serde(default)]
    pub client_secret: Option<String>,
}

/// One page of OAuth clients.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OAuthClientList {
    pub items: Vec<OAuthClient>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// A TLS certificate to create or replace: served by every TLS listener, chosen by SNI.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub name: String,
    /// PEM certificate chain, leaf first.
    pub cert: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf. Never returned; a `PUT`
    /// without it keeps the stored key.
    pub key: String,
    /// SNI names it serves (`*.example.com` allowed); empty means the names in the
    /// certificate itself.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// A stored TLS certificate as returned: without its private key.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CertificateInfo {
    pub name: String,
    /// PEM certificate chain, leaf first.
    pub cert: String,
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// One page of certificates.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CertificateList {
    pub items: Vec<CertificateInfo>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use turnpike_config::model;

    /// The fields a model type accepts, read from serde's own "unknown field" message,
    /// which lists every field the type knows.
    fn model_fields<T: DeserializeOwned>() -> Vec<String> {
        let probe = serde_json::json!({"\u{1}probe": 0});
        let Err(e) = serde_json::from_value::<T>(probe) else {
            panic!("the probe field was accepted");
        };
        let text = e.to_string();
        // "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, `c`".
        let list = text
            .split("expected ")
            .nth(1)
            .unwrap_or_else(|| panic!("{text}"));
        let mut fields: Vec<String> = list
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        fields.sort();
        fields
    }

    fn schema_fields(name: &str) -> Vec<String> {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        let props = doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no schema {name}"));
        let mut fields: Vec<String> = props.keys().cloned().collect();
        fields.sort();
        fields
    }

    #[test]
    fn schemas_list_exactly_the_model_fields() {
        let pairs = [
            ("Upstream", model_fields::<model::Upstream>()),
            ("Target", model_fields::<model::Target>()),
            ("Route", model_fields::<model::Route>()),
            ("HeaderTransform", model_fields::<model::HeaderTransform>()),
            ("IpRules", model_fields::<model::IpRules>()),
            ("Consumer", model_fields::<model::Consumer>()),
            ("ApiKey", model_fields::<model::ApiKey>()),
            ("BasicCredential", model_fields::<model::BasicCredential>()),
            ("Plan", model_fields::<model::Plan>()),
            ("RateLimit", model_fields::<model::RateLimit>()),
            ("Quota", model_fields::<model::Quota>()),
            ("OAuthClient", model_fields::<model::OAuthClient>()),
            ("OAuthClientInput", model_fields::<model::OAuthClient>()),
            ("Policies", model_fields::<model::Policies>()),
        ];
        for (name, fields) in pairs {
            assert_eq!(schema_fields(name), fields, "{name}");
        }
    }

    #[test]
    fn required_fields_match_the_model() {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        let required = |n: &str| doc["components"]["schemas"][n]["required"].clone();
        assert_eq!(required("Route"), serde_json::json!(["name", "upstream"]));
        assert_eq!(required("Upstream"), serde_json::json!(["name", "targets"]));
        assert_eq!(required("Consumer"), serde_json::json!(["name"]));
        assert_eq!(required("Plan"), serde_json::json!(["name"]));
        // The model agrees: a body with only these fields deserializes.
        let route = serde_json::json!({"name": "r", "upstream": "u"});
        serde_json::from_value::<model::Route>(route).unwrap();
        let upstream = serde_json::json!({"name": "u", "targets": []});
        serde_json::from_value::<model::Upstream>(upstream).unwrap();
        serde_json::from_value::<model::Consumer>(serde_json::json!({"name": "c"})).unwrap();
    }
}
