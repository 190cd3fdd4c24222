//! The immutable runtime form of one config version: router, routes, upstreams,
//! listeners' TLS and server limits. Built once per reload, swapped atomically, and read
//! once per request.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;
use turnpike_analytics::{AccessLog, Metrics, RouteMetrics};
use turnpike_config::Config;
use turnpike_config::model::{self, PathType};

use turnpike_policy::traffic::Traffic;
use turnpike_policy::{RoutePolicies, Security};

use crate::cache::{CacheRt, RouteCache};
use crate::headers::{self, InvalidHeader, Transform};
use crate::router::{self, Conditions, Match, RouteSpec, Router, Segment};
use crate::tls::{self, TlsError};
use crate::upstream::client::UpstreamTls;
use crate::upstream::{InvalidTarget, StateCarry, Upstream};

/// Why a config could not become a snapshot (things only checkable at run time, such as
/// reading certificate files; everything else the config validator already reported).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Target(#[from] InvalidTarget),
    #[error(transparent)]
    Header(#[from] InvalidHeader),
    #[error("listener {listener}: {source}")]
    Tls { listener: String, source: TlsError },
    /// Boxed so that this error stays as small as with `Tls` alone.
    #[error("upstream {upstream}: {source}")]
    UpstreamTls {
        upstream: String,
        source: Box<TlsError>,
    },
    #[error(
        "listeners (names, addresses, TLS on/off, http2) cannot change on reload; restart to apply"
    )]
    ListenersChanged,
    #[error("route {route}: {message}")]
    Route { route: String, message: String },
    #[error(transparent)]
    Security(#[from] turnpike_policy::BuildError),
    #[error(transparent)]
    Traffic(#[from] turnpike_policy::traffic::TrafficError),
    #[error(transparent)]
    AccessLog(#[from] turnpike_analytics::AnalyticsError),
    #[error(transparent)]
    Trace(#[from] turnpike_analytics::trace::TraceError),
}

/// Limits and behaviour for every request.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub max_body_bytes: u64,
    pub max_uri_length: usize,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub via: bool,
    pub request_id_header: HeaderName,
    pub workers: usize,
    /// Slow-client limits for request bodies (`docs/protection.md`).
    pub body_read_timeout: Duration,
    pub min_body_rate: Option<crate::body::MinRate>,
    /// Per-IP limits, load shedding and bans; state lives in `Shared`.
    pub protection: crate::protection::Settings,
}

/// A listener as configured; the socket itself is bound once at start.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    pub name: Arc<str>,
    pub address: SocketAddr,
    pub http2: bool,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

#[derive(Debug, Clone)]
enum RewritePart {
    Literal(String),
    Param(String),
}

/// A route with everything the pipeline needs precompiled.
#[derive(Debug)]
pub struct RouteRt {
    pub name: Arc<str>,
    pub upstream: usize,
    strip_prefix: bool,
    rewrite: Option<Vec<RewritePart>>,
    patterns: Vec<Vec<Segment>>,
    pub request_headers: Transform,
    pub response_headers: Transform,
    pub policies: RoutePolicies,
    /// Shed order under overload.
    pub priority: model::Priority,
    /// This route's counters, resolved here so a request does no label lookup.
    pub metrics: Arc<RouteMetrics>,
    /// Whether the access log writes this route's requests (`exclude_routes`).
    pub logged: bool,
    /// The response cache policy, when the route caches.
    pub cache: Option<Arc<RouteCache>>,
}

/// One config version, ready to serve.
#[derive(Debug)]
pub struct Snapshot {
    pub version: u64,
    pub server: ServerSettings,
    pub listeners: Vec<ListenerSpec>,
    pub router: Router,
    pub routes: Vec<RouteRt>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub security: Arc<Security>,
    /// Counters and plans; the counters outlive reloads.
    pub traffic: Arc<Traffic>,
    /// Request metrics; the same registry across reloads.
    pub metrics: Arc<Metrics>,
    /// The access log, when enabled.
    pub access_log: Option<Arc<AccessLog>>,
    /// OpenTelemetry tracing, when enabled.
    pub tracer: Option<Arc<turnpike_analytics::trace::Tracer>>,
    /// The response cache; its entries outlive reloads that keep its storage settings.
    pub cache: Arc<CacheRt>,
}

impl Snapshot {
    /// Compiles a validated config. `previous` lends its target states and counters to
    /// the new version; `control` runs what traffic control keeps going in the background.
    pub fn build(
        cfg: &Config,
        version: u64,
        previous: Option<&Snapshot>,
        control: &tokio::runtime::Handle,
    ) -> Result<Self, BuildError> {
        let carry: StateCarry = previous
            .into_iter()
            .flat_map(|s| s.upstreams.iter())
            .flat_map(|u| {
                u.targets
                    .iter()
                    .map(move |t| ((u.name.clone(), t.url.clone()), t.state.clone()))
            })
            .collect();
        let upstreams: Vec<Arc<Upstream>> = cfg
            .upstreams
            .iter()
            .map(|u| {
                let same_name =
                    previous.and_then(|s| s.upstreams.iter().find(|p| *p.name == *u.name));
                let mut built = Upstream::build(u, &carry, same_name.map(|p| &**p))?;
                built.tls = upstream_tls(u, same_name.and_then(|p| p.tls.as_ref()))?;
                Ok(Arc::new(built))
            })
            .collect::<Result<_, BuildError>>()?;
        let security = Arc::new(Security::build(cfg, previous.map(|p| &*p.security))?);
        let traffic = Arc::new(Traffic::build(cfg, previous.map(|p| &*p.traffic), control)?);
        let metrics = previous.map_or_else(|| Arc::new(Metrics::new()), |p| p.metrics.clone());
        metrics.configure(cfg.metrics.consumer_labels, cfg.metrics.max_consumers);
        // Usage rollups go to the admin store; without one nothing would read them.
        metrics
            .usage()
            .set_enabled(cfg.admin.is_some() && cfg.analytics.enabled);
        let access_log = AccessLog::open(
            &cfg.access_log,
            previous.and_then(|p| p.access_log.as_ref()),
            &metrics,
        )?;
        let tracer = crate::trace::open(&cfg.tracing, previous, version, control)?;
        let cache = CacheRt::build(&cfg.cache, previous.map(|p| &p.cache), control);
        let mut specs = Vec::with_capacity(cfg.routes.len());
        let mut routes = Vec::with_capacity(cfg.routes.len());
        for r in &cfg.routes {
            let (spec, mut rt) = compile_route(r, &upstreams, &metrics)?;
            rt.policies = RoutePolicies::build(r, cfg, &security);
            rt.logged = !cfg.access_log.exclude_routes.contains(&r.name);
            rt.cache = RouteCache::build(r, cfg, &cache, &rt.name).map(Arc::new);
            specs.push(spec);
            routes.push(rt);
        }
        // A validation run (version 0) must not drop the live gateway's series.
        if version > 0 {
            metrics.retain_routes(&routes.iter().map(|r| r.metrics.clone()).collect::<Vec<_>>());
        }
        Ok(Self {
            version,
            server: server_settings(&cfg.server),
            listeners: listeners(cfg)?,
            router: Router::new(&specs),
            routes,
            upstreams,
            security,
            traffic,
            metrics,
            access_log,
            tracer,
            cache,
        })
    }

    /// Finds the route for a request.
    pub fn route(
        &self,
        host: &str,
        path: &str,
        method: &Method,
        headers: &http::HeaderMap,
    ) -> Option<(Match, &RouteRt)> {
        let m = self.router.find(host, path, method, headers)?;
        Some((m, &self.routes[m.route]))
    }
}

fn server_settings(s: &model::Server) -> ServerSettings {
    let workers = if s.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        s.workers
    };
    ServerSettings {
        max_body_bytes: s.max_body_bytes.bytes(),
        max_uri_length: s.max_uri_length,
        max_headers: s.max_headers,
        max_header_bytes: usize::try_from(s.max_header_bytes.bytes()).unwrap_or(usize::MAX),
        header_read_timeout: s.header_read_timeout.as_std(),
        shutdown_timeout: s.shutdown_timeout.as_std(),
        trusted_proxies: s.trusted_proxies.clone(),
        via: s.via,
        request_id_header: HeaderName::from_bytes(s.request_id_header.as_bytes())
            .unwrap_or(HeaderName::from_static("x-request-id")),
        workers,
        body_read_timeout: s.body_read_timeout.as_std(),
        min_body_rate: s.min_body_rate.as_ref().map(|r| crate::body::MinRate {
            bytes_per_second: r.bytes_per_second.bytes(),
            grace: r.grace.as_std(),
        }),
        protection: crate::protection::Settings::build(&s.protection),
    }
}

/// The upstream's own TLS settings, read now so that unusable files fail the build.
fn upstream_tls(
    u: &model::Upstream,
    previous: Option<&Arc<UpstreamTls>>,
) -> Result<Option<Arc<UpstreamTls>>, BuildError> {
    u.tls
        .as_ref()
        .map(|t| UpstreamTls::build(t, previous))
        .transpose()
        .map_err(|source| BuildError::UpstreamTls {
            upstream: u.name.clone(),
            source: Box::new(source),
        })
}

fn listeners(cfg: &Config) -> Result<Vec<ListenerSpec>, BuildError> {
    let mut out = Vec::new();
    if let Some(address) = cfg.listen {
        out.push(ListenerSpec {
            name: "default".into(),
            address,
            http2: true,
            tls: None,
        });
    }
    for l in &cfg.listeners {
        let tls = match &l.tls {
            Some(t) => Some(
                tls::server_config(t, l.http2).map_err(|source| BuildError::Tls {
                    listener: l.name.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        out.push(ListenerSpec {
            name: l.name.as_str().into(),
            address: l.address,
            http2: l.http2,
            tls,
        });
    }
    Ok(out)
}

fn compile_route(
    r: &model::Route,
    upstreams: &[Arc<Upstream>],
    metrics: &Metrics,
) -> Result<(RouteSpec, RouteRt), BuildError> {
    let err = |message: String| BuildError::Route {
        route: r.name.clone(),
        message,
    };
    let upstream = upstreams
        .iter()
        .position(|u| *u.name == *r.upstream)
        .ok_or_else(|| err(format!("unknown upstream {:?}", r.upstream)))?;
    let paths: Vec<&str> = if r.paths.is_empty() {
        vec!["/"]
    } else {
        r.paths.iter().map(String::as_str).collect()
    };
    let patterns: Vec<Vec<Segment>> = paths.iter().map(|p| router::parse_pattern(p)).collect();
    let methods = r
        .methods
        .iter()
        .map(|m| Method::from_bytes(m.as_bytes()).map_err(|_| err(format!("invalid method {m:?}"))))
        .collect::<Result<_, _>>()?;
    let mut header_matches = Vec::new();
    for (name, values) in &r.headers {
        let values = values
            .values()
            .iter()
            .map(|v| headers::header_value(name, v))
            .collect::<Result<_, _>>()?;
        header_matches.push((headers::header_name(name)?, values));
    }
    let spec = RouteSpec {
        hosts: r.hosts.clone(),
        paths: patterns.clone(),
        prefix: r.path_type == PathType::Prefix,
        conditions: Conditions {
            methods,
            headers: header_matches,
        },
    };
    let rt = RouteRt {
        name: r.name.as_str().into(),
        upstream,
        strip_prefix: r.strip_prefix,
        rewrite: r.rewrite.as_deref().map(compile_rewrite),
        patterns,
        request_headers: Transform::compile(&r.request_headers)?,
        response_headers: Transform::compile(&r.response_headers)?,
        policies: RoutePolicies::default(),
        priority: r.priority,
        metrics: metrics.route(&r.name, &r.upstream),
        logged: true,
        cache: None,
    };
    Ok((spec, rt))
}

fn compile_rewrite(template: &str) -> Vec<RewritePart> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        parts.push(RewritePart::Literal(rest[..open].to_owned()));
        parts.push(RewritePart::Param(rest[open + 1..close].to_owned()));
        rest = &rest[close + 1..];
    }
    parts.push(RewritePart::Literal(rest.to_owned()));
    parts.retain(|p| !matches!(p, RewritePart::Literal(l) if l.is_empty()));
    parts
}

impl RouteRt {
    /// The path template that matched (`/users/{id}`), as traces' `http.route`.
    pub fn template(&self, m: &Match) -> String {
        let Some(pattern) = self.patterns.get(m.pattern) else {
            return "/".to_owned();
        };
        let mut out = String::with_capacity(32);
        for segment in pattern {
            out.push('/');
            match segment {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(p) => {
                    out.push('{');
                    out.push_str(p);
                    out.push('}');
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// The path to send upstream: rewritten, stripped, or unchanged. The part of the
    /// request path beyond a matched prefix is kept after a rewrite.
    /// The value the matched template gave `{name}` in `path`, still percent-encoded.
    pub fn path_param<'a>(&self, m: &Match, path: &'a str, name: &str) -> Option<&'a str> {
        param(self.patterns.get(m.pattern)?, path, name)
    }

    pub fn upstream_path<'a>(&self, m: &Match, path: &'a str) -> Cow<'a, str> {
        let rest = &path[m.matched_len.min(path.len())..];
        if let Some(parts) = &self.rewrite {
            let pattern = &self.patterns[m.pattern];
            let mut out = String::with_capacity(path.len() + 16);
            for part in parts {
                match part {
                    RewritePart::Literal(l) => out.push_str(l),
                    RewritePart::Param(name) => {
                        out.push_str(param(pattern, path, name).unwrap_or(""))
                    }
                }
            }
            if !rest.is_empty() {
                push_joined(&mut out, rest);
            }
            return Cow::Owned(out);
        }
        if self.strip_prefix {
            return if rest.is_empty() {
                Cow::Borrowed("/")
            } else if rest.starts_with('/') {
                Cow::Borrowed(rest)
            } else {
                Cow::Owned(format!("/{rest}"))
            };
        }
        Cow::Borrowed(path)
    }
}

fn push_joined(out: &mut String, rest: &str) {
    match (out.ends_with('/'), rest.starts_with('/')) {
        (true, true) => out.push_str(&rest[1..]),
        (false, false) => {
            out.push('/');
            out.push_str(rest);
        }
        _ => out.push_str(rest),
    }
}

/// The request path's value for `{name}` in `pattern`.
fn param<'a>(pattern: &[Segment], path: &'a str, name: &str) -> Option<&'a str> {
    let index = pattern
        .iter()
        .position(|s| matches!(s, Segment::Param(n) if &**n == name))?;
    path.strip_prefix('/')?.split('/').nth(index)
}
