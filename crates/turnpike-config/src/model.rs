//! The configuration model: what a Turnpike YAML file may say, as serde types.
//!
//! Every struct denies unknown fields so a typo is an error with a location, never a
//! silently ignored setting. Defaults live next to the field they belong to, so the file a
//! user writes can stay as short as DESIGN.md's minimal config.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, Duration};

mod admin;
mod analytics;
mod cache;
mod lifecycle;
mod observability;
mod protection;
mod security;
mod traffic;
mod validation;
pub use admin::*;
pub use analytics::*;
pub use cache::*;
pub use lifecycle::*;
pub use observability::*;
pub use protection::*;
pub use security::*;
pub use traffic::*;
pub use validation::*;

/// A whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Shorthand for a single plain-HTTP listener; combined with `listeners`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub server: Server,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<Upstream>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<Consumer>,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuth>,
    /// Policies for every route.
    #[serde(default)]
    pub policies: Policies,
    /// The admin API and its store; absent means neither runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<Admin>,
    /// Where rate-limit and quota counters live.
    #[serde(default)]
    pub traffic: Traffic,
    /// Tiers of service that consumers belong to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<Plan>,
    /// Prometheus metrics: an optional listener of their own, consumer label bounds.
    #[serde(default, skip_serializing_if = "Metrics::is_default")]
    pub metrics: Metrics,
    /// One line per request; off by default.
    #[serde(default, skip_serializing_if = "AccessLog::is_default")]
    pub access_log: AccessLog,
    /// Usage rollups in the store (only with `admin:`).
    #[serde(default, skip_serializing_if = "Analytics::is_default")]
    pub analytics: Analytics,
    /// OpenTelemetry tracing (W3C `traceparent`, OTLP export); off by default.
    #[serde(default, skip_serializing_if = "Tracing::is_default")]
    pub tracing: Tracing,
    /// Response cache storage and CDN purge endpoints; routes opt in with `cache:`.
    #[serde(default, skip_serializing_if = "CacheStore::is_default")]
    pub cache: CacheStore,
}

/// One socket the proxy accepts client connections on.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    /// TLS termination; absent means plain HTTP (HTTP/1.1 and h2c prior knowledge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Accept HTTP/2 (h2c on plain listeners, ALPN `h2` on TLS ones).
    #[serde(default = "yes")]
    pub http2: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// Certificates chosen by SNI; the first one is served when SNI matches none.
    pub certificates: Vec<Certificate>,
    /// Ask clients for certificates (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuth>,
}

/// A certificate and its key: PEM files, or with `pem: true` the PEM text itself (how
/// certificates managed through the admin API reach the listeners; the text then is a secret,
/// which `Debug` leaves out).
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// Names it in errors; the admin API's certificates carry their entity name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// PEM file with the certificate chain, leaf first (with `pem`: the chain itself).
    pub cert: String,
    /// PEM file with the private key, PKCS#8, PKCS#1 or SEC1 (with `pem`: the key itself).
    pub key: String,
    /// SNI names served by this certificate (`*.example.com` allowed); empty means the
    /// names in the certificate itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// `cert` and `key` hold PEM text, not file names.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pem: bool,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = if self.pem { "<inline PEM>" } else { &self.key };
        f.debug_struct("Certificate")
            .field("name", &self.name)
            .field("cert", &if self.pem { "<inline PEM>" } else { &self.cert })
            .field("key", &key)
            .field("hosts", &self.hosts)
            .finish()
    }
}

/// Process-wide limits and behaviour; every field has a safe default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Worker threads, each with its own runtime and SO_REUSEPORT socket; 0 = one per core.
    pub workers: usize,
    /// Largest request head (request line plus headers) accepted.
    pub max_header_bytes: ByteSize,
    /// Most request headers accepted.
    pub max_headers: usize,
    /// Longest request target (path and query) accepted; longer gets 414.
    pub max_uri_length: usize,
    /// Largest request body accepted; larger gets 413. Streamed, never buffered.
    pub max_body_bytes: ByteSize,
    /// Time a client has to send the whole request head (defeats slowloris). An HTTP/1.1
    /// keep-alive connection that sends no new request for this long is closed too.
    pub header_read_timeout: Duration,
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish.
    pub shutdown_timeout: Duration,
    /// Peers whose `X-Forwarded-*`/`Forwarded` headers are believed; others are overwritten.
    pub trusted_proxies: Vec<IpNet>,
    /// Add a `Via` header to requests and responses.
    pub via: bool,
    /// Header carrying the request id; generated when the client sent none.
    pub request_id_header: String,
    /// Longest wait for the next piece of a request body (defeats slow POST); 408 after.
    pub body_read_timeout: Duration,
    /// Slowest request body accepted once its grace period is over; absent means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_body_rate: Option<MinBodyRate>,
    /// Per-IP connection limits, load shedding and temporary bans.
    #[serde(skip_serializing_if = "Protection::is_empty")]
    pub protection: Protection,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            workers: 0,
            max_header_bytes: ByteSize(64 * 1024),
            max_headers: 100,
            max_uri_length: 8 * 1024,
            max_body_bytes: ByteSize(10 * 1024 * 1024),
            header_read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            via: true,
            request_id_header: "x-request-id".to_owned(),
            body_read_timeout: Duration::from_secs(30),
            min_body_rate: None,
            protection: Protection::default(),
        }
    }
}

/// A named group of targets that routes send traffic to.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub name: String,
    pub targets: Vec<Target>,
    #[serde(default)]
    pub balancer: Balancer,
    /// Key for `balancer: consistent_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
    /// Protocol spoken to the targets.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// `preserve` forwards the client's Host; `target` uses the target's authority;
    /// any other value is sent as the Host header.
    #[serde(default)]
    pub host_header: HostHeader,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub pool: Pool,
    #[serde(default)]
    pub retries: Retries,
    #[serde(default)]
    pub health: Health,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// CA and client certificate for `https://` targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
    /// Policies for every route to this upstream (the service): a route's own `auth` and
    /// `cors` replace these; IP rules of every level apply.
    #[serde(default, skip_serializing_if = "Policies::is_empty")]
    pub policies: Policies,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `http://host:port` or `https://host:port`; no path, query or credentials.
    pub url: String,
    #[serde(default = "one")]
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Balancer {
    /// Weighted round robin (smooth, nginx-style); equal weights give plain round robin.
    #[default]
    RoundRobin,
    LeastConnections,
    /// Ketama-style ring; needs `hash_on`.
    ConsistentHash,
    /// Power of two choices over an EWMA of response latency.
    LeastLatency,
    Random,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HashOn {
    Header(String),
    Cookie(String),
    ClientIp,
    Path,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// HTTP/2: prior knowledge for `http://` targets, ALPN for `https://`.
    Http2,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HostHeader {
    #[default]
    Preserve,
    Target,
    Fixed(String),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// TCP connect to one target (a TLS handshake counts against `first_byte`).
    pub connect: Duration,
    /// From request sent to response head received; 504 when exceeded.
    pub first_byte: Duration,
    /// Longest pause between two body chunks in either direction.
    pub idle: Duration,
    /// Whole exchange including retries; 504 when exceeded before the response head.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Pool {
    /// Idle upstream connections are closed after this; keep it below the upstream's own
    /// keep-alive timeout so we never send on a connection it is closing.
    pub idle_timeout: Duration,
    /// Idle connections kept per target and per worker thread (each worker has its own pool).
    pub max_idle_per_target: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            max_idle_per_target: 256,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Retries {
    /// Extra attempts after the first, each on another target when there is one.
    pub attempts: u32,
    /// Retries allowed as a share of recent requests (a budget, so retries cannot
    /// multiply an outage).
    pub budget_percent: u32,
    /// Retries always allowed per second, so low traffic can still retry.
    pub min_per_second: u32,
    /// Response statuses that count as retryable failures for idempotent requests.
    pub on_statuses: Vec<u16>,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            attempts: 2,
            budget_percent: 20,
            min_per_second: 10,
            on_statuses: vec![502, 503, 504],
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<ActiveHealth>,
    pub passive: PassiveHealth,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ActiveHealth {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub expected_statuses: Vec<u16>,
}

impl Default for ActiveHealth {
    fn default() -> Self {
        Self {
            path: "/".to_owned(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            expected_statuses: vec![200],
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveHealth {
    /// Consecutive failures (connect errors, broken connections or invalid responses,
    /// statuses listed in `retries.on_statuses`, timeouts) that eject a target; 0 disables
    /// passive checks.
    pub consecutive_failures: u32,
    /// How long an ejected target rests before it gets traffic again.
    pub cooldown: Duration,
}

impl Default for PassiveHealth {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            cooldown: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreaker {
    /// Share of failed requests (0.0–1.0) in `window` that opens the breaker.
    pub failure_ratio: f64,
    /// Fewer requests than this in the window never open it.
    pub min_requests: u32,
    pub window: Duration,
    /// How long it stays open before letting a trial request through.
    pub open_for: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            failure_ratio: 0.5,
            min_requests: 20,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(30),
        }
    }
}

/// How a request finds its upstream.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: String,
    /// Exact hosts or `*.example.com` wildcards; empty matches any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Literal paths or templates with `{param}` segments; empty means `/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default)]
    pub path_type: PathType,
    /// Upper-case method names; empty matches every method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Header name to accepted values; all listed headers must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, OneOrMany>,
    pub upstream: String,
    /// Remove the matched path prefix before forwarding (prefix routes).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Replace the path; `{param}` names from the matched template are substituted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
    #[serde(default)]
    pub request_headers: HeaderTransform,
    #[serde(default)]
    pub response_headers: HeaderTransform,
    /// Who may call; replaces `policies.auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<RouteAuth>,
    /// Applied together with `policies.ip_rules`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_rules: Option<IpRules>,
    /// Replaces `policies.cors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Under overload, `low` is shed first and `high` last.
    #[serde(default, skip_serializing_if = "Priority::is_normal")]
    pub priority: Priority,
    /// Replaces `policies.rate_limit`; plan limits apply as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitPolicy>,
    /// Replaces `policies.concurrency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyLimit>,
    /// What a request costs against its consumer's quota (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// Draft, published, deprecated or retired; replaces the upstream's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Check parameters and the JSON body before forwarding (see `RequestValidation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<RequestValidation>,
    /// Response caching; replaces `policies.cache`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicy>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PathType {
    /// The path or anything below it at a `/` boundary (`/api` matches `/api/x`, not `/apix`).
    #[default]
    Prefix,
    Exact,
}

/// One accepted header value or a list of them. Deserialized by hand so a mistake says
/// what is expected, which `#[serde(untagged)]` cannot.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn values(&self) -> &[String] {
        match self {
            Self::One(v) => std::slice::from_ref(v),
            Self::Many(v) => v,
        }
    }
}

/// Header edits applied in order: remove, then set (replace), then add (append).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderTransform {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
}

impl HeaderTransform {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

impl Serialize for HostHeader {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Preserve => s.serialize_str("preserve"),
            Self::Target => s.serialize_str("target"),
            Self::Fixed(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for HostHeader {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = String::deserialize(d)?;
        Ok(match v.as_str() {
            "preserve" => Self::Preserve,
            "target" => Self::Target,
            _ => Self::Fixed(v),
        })
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut values = Vec::new();
                while let Some(v) = seq.next_element()? {
                    values.push(v);
                }
                Ok(OneOrMany::Many(values))
            }
        }
        d.deserialize_any(V)
    }
}
