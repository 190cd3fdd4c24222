//! Semantic checks on a deserialized config: what serde's types cannot say, such as
//! unique names, routes that name a real upstream, or ranges of numbers.
//!
//! Every check runs and every problem is reported with its path; nothing stops at the
//! first. Routes are checked in [`routes`].

mod admin;
mod analytics;
mod cache;
mod lifecycle;
mod observability;
mod protection;
mod routes;
mod security;
mod traffic;
mod validation;

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::de::Parsed;
use crate::lexical;
use crate::model::{ActiveHealth, Balancer, HashOn, HostHeader, Listener, Server, Upstream};
use crate::problem::Problem;
use crate::units::Duration;
use crate::yaml::PathIndex;

/// Checks everything, returning one problem per mistake.
pub(crate) fn validate(parsed: &Parsed, index: &PathIndex) -> Vec<Problem> {
    let mut c = Checker {
        index,
        problems: Vec::new(),
    };
    c.listeners(parsed);
    c.server(&parsed.config.server);
    let upstreams: Vec<_> = parsed
        .config
        .upstreams
        .iter()
        .zip(&parsed.upstream_at)
        .map(|(u, i)| (format!("upstreams[{i}]"), u))
        .collect();
    c.unique_names(
        "upstream",
        upstreams.iter().map(|(p, u)| (p.as_str(), u.name.as_str())),
    );
    for (at, upstream) in &upstreams {
        c.upstream(at, upstream);
    }
    routes::check(&mut c, parsed);
    security::check(&mut c, parsed);
    admin::check(&mut c, parsed);
    traffic::check(&mut c, parsed);
    lifecycle::check(&mut c, parsed);
    validation::check(&mut c, parsed);
    observability::check(&mut c, parsed);
    analytics::check(&mut c, parsed);
    cache::check(&mut c, parsed);
    c.problems
}

/// Collects problems; knows the index so messages can name the line of another setting.
struct Checker<'a> {
    index: &'a PathIndex,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::at(path, message));
    }

    fn err_key(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::at_key(path, message));
    }

    fn line(&self, path: &str) -> usize {
        self.index.value_pos(path).line
    }

    /// Names must be non-empty and unique; a duplicate is reported at the second one.
    fn unique_names<'n>(&mut self, kind: &str, items: impl Iterator<Item = (&'n str, &'n str)>) {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (at, name) in items {
            let path = format!("{at}.name");
            if name.trim().is_empty() {
                self.err(path, format!("{kind} name must not be empty"));
            } else if let Some(first) = seen.get(name) {
                let line = self.line(&format!("{first}.name"));
                self.err(
                    path,
                    format!("duplicate {kind} name `{name}` (first defined at line {line})"),
                );
            } else {
                seen.insert(name, at);
            }
        }
    }

    /// A timeout of zero would fail every request, so it is never what was meant.
    fn positive(&mut self, path: String, d: Duration) {
        if d.is_zero() {
            self.err(path, "must be greater than zero (e.g. \"5s\")");
        }
    }

    fn at_least(&mut self, path: String, value: u64, min: u64) {
        if value < min {
            self.err(path, format!("must be at least {min}, found {value}"));
        }
    }

    fn statuses(&mut self, at: &str, statuses: &[u16], range: std::ops::RangeInclusive<u16>) {
        for (i, s) in statuses.iter().enumerate() {
            if !range.contains(s) {
                let (lo, hi) = (range.start(), range.end());
                self.err(
                    format!("{at}[{i}]"),
                    format!("status {s} is out of range: expected {lo} to {hi}"),
                );
            }
        }
    }

    fn listeners(&mut self, parsed: &Parsed) {
        let config = &parsed.config;
        if config.listen.is_none() && config.listeners.is_empty() && !parsed.listeners_broken {
            let msg = "no listener configured: add `listen: 127.0.0.1:8000` or a `listeners:` list";
            self.err("", msg);
        }
        let listeners: Vec<(String, &Listener)> = config
            .listeners
            .iter()
            .zip(&parsed.listener_at)
            .map(|(l, i)| (format!("listeners[{i}]"), l))
            .collect();
        self.unique_names(
            "listener",
            listeners.iter().map(|(p, l)| (p.as_str(), l.name.as_str())),
        );
        if config.listen.is_some() {
            for (at, listener) in &listeners {
                if listener.name == "default" {
                    let msg = "the name `default` belongs to the listener of `listen:`; choose another name";
                    self.err(format!("{at}.name"), msg);
                }
            }
        }
        let mut bound: Vec<(SocketAddr, String, String)> = Vec::new();
        if let Some(addr) = config.listen {
            bound.push((addr, "listen".to_owned(), "`listen`".to_owned()));
        }
        for (at, listener) in &listeners {
            let path = format!("{at}.address");
            let addr = listener.address;
            if let Some((other, other_path, label)) = bound.iter().find(|(b, ..)| clash(*b, addr)) {
                let line = self.line(other_path);
                let msg = if *other == addr {
                    format!("address {addr} is already used by {label} (line {line})")
                } else {
                    format!("address {addr} overlaps {other}, used by {label} (line {line})")
                };
                self.err(path.clone(), msg);
            }
            bound.push((addr, path, format!("listener `{}`", listener.name)));
            if let Some(tls) = &listener.tls {
                self.tls(&format!("{at}.tls"), tls);
            }
        }
    }

    fn tls(&mut self, at: &str, tls: &crate::model::ListenerTls) {
        if tls.certificates.is_empty() {
            let msg =
                "TLS needs at least one certificate (`- cert: chain.pem` with `key: key.pem`)";
            self.err(format!("{at}.certificates"), msg);
        }
        for (i, cert) in tls.certificates.iter().enumerate() {
            let at = format!("{at}.certificates[{i}]");
            for (field, file) in [("cert", &cert.cert), ("key", &cert.key)] {
                if file.trim().is_empty() {
                    let msg = if cert.pem {
                        "must hold PEM text (`pem: true`)"
                    } else {
                        "must name a PEM file"
                    };
                    self.err(format!("{at}.{field}"), msg);
                }
            }
            for (j, host) in cert.hosts.iter().enumerate() {
                if let Err(msg) = lexical::host_pattern(host) {
                    self.err(format!("{at}.hosts[{j}]"), msg);
                }
            }
        }
    }

    fn server(&mut self, server: &Server) {
        // HTTP/1.1 parsing needs a buffer of at least 8 KiB (hyper's minimum).
        if server.max_header_bytes.bytes() < 8192 {
            let msg = format!(
                "must be at least 8KiB, found {} bytes (e.g. 64KiB)",
                server.max_header_bytes.bytes()
            );
            self.err("server.max_header_bytes", msg);
        }
        self.at_least(
            "server.max_headers".to_owned(),
            server.max_headers as u64,
            1,
        );
        self.at_least(
            "server.max_uri_length".to_owned(),
            server.max_uri_length as u64,
            16,
        );
        self.positive(
            "server.header_read_timeout".to_owned(),
            server.header_read_timeout,
        );
        if let Err(msg) = lexical::header_name(&server.request_id_header) {
            self.err("server.request_id_header", msg);
        }
        protection::check(self, server);
    }

    fn upstream(&mut self, at: &str, u: &Upstream) {
        if u.targets.is_empty() {
            let msg = format!(
                "upstream `{}` has no targets: add at least one `- url: http://host:port`",
                u.name
            );
            self.err(format!("{at}.targets"), msg);
        }
        self.targets(at, u);
        self.balancer(at, u);
        if let HostHeader::Fixed(host) = &u.host_header {
            let bad = host.trim().is_empty() || host.contains(char::is_whitespace);
            if let Err(msg) = lexical::header_value(host) {
                self.err(format!("{at}.host_header"), msg);
            } else if bad {
                let msg = format!(
                    "invalid host_header {host:?}: expected `preserve`, `target` or a host name"
                );
                self.err(format!("{at}.host_header"), msg);
            }
        }
        let timeouts = [
            ("connect", u.timeouts.connect),
            ("first_byte", u.timeouts.first_byte),
            ("idle", u.timeouts.idle),
            ("total", u.timeouts.total),
        ];
        for (name, d) in timeouts {
            self.positive(format!("{at}.timeouts.{name}"), d);
        }
        self.resilience(at, u);
    }

    fn targets(&mut self, at: &str, u: &Upstream) {
        let mut urls: HashMap<&str, usize> = HashMap::new();
        for (i, target) in u.targets.iter().enumerate() {
            let t = format!("{at}.targets[{i}]");
            if let Err(msg) = lexical::target_url(&target.url) {
                self.err(format!("{t}.url"), msg);
            } else if let Some(first) = urls.insert(&target.url, i) {
                let line = self.line(&format!("{at}.targets[{first}].url"));
                let msg = format!(
                    "target {} is listed twice (first at line {line}); raise its `weight` instead",
                    target.url
                );
                self.err(format!("{t}.url"), msg);
            }
            if !(1..=10_000).contains(&target.weight) {
                self.err(
                    format!("{t}.weight"),
                    format!("weight must be 1 to 10000, found {}", target.weight),
                );
            }
        }
    }

    /// Retries, health checks and the circuit breaker.
    fn resilience(&mut self, at: &str, u: &Upstream) {
        self.statuses(
            &format!("{at}.retries.on_statuses"),
            &u.retries.on_statuses,
            500..=599,
        );
        // One request tries at most eight targets: the first attempt and seven retries.
        if u.retries.attempts > 7 {
            let msg = format!("must be at most 7, found {}", u.retries.attempts);
            self.err(format!("{at}.retries.attempts"), msg);
        }
        if u.retries.budget_percent > 100 {
            let msg = format!(
                "must be at most 100 (a share of recent requests), found {}",
                u.retries.budget_percent
            );
            self.err(format!("{at}.retries.budget_percent"), msg);
        }
        if let Some(active) = &u.health.active {
            self.active_health(&format!("{at}.health.active"), active);
        }
        if let Some(cb) = &u.circuit_breaker {
            let path = format!("{at}.circuit_breaker");
            if !(cb.failure_ratio > 0.0 && cb.failure_ratio <= 1.0) {
                let msg = format!(
                    "failure_ratio must be above 0 and at most 1 (e.g. 0.5), found {}",
                    cb.failure_ratio
                );
                self.err(format!("{path}.failure_ratio"), msg);
            }
            self.positive(format!("{path}.window"), cb.window);
            self.positive(format!("{path}.open_for"), cb.open_for);
        }
    }

    fn balancer(&mut self, at: &str, u: &Upstream) {
        match (&u.balancer, &u.hash_on) {
            (Balancer::ConsistentHash, None) => {
                let msg = "balancer `consistent_hash` needs `hash_on` (client_ip, path, {header: NAME} or {cookie: NAME})";
                self.err(format!("{at}.balancer"), msg);
            }
            (Balancer::ConsistentHash, Some(HashOn::Header(name))) => {
                if let Err(msg) = lexical::header_name(name) {
                    self.err(format!("{at}.hash_on.header"), msg);
                }
            }
            (Balancer::ConsistentHash, Some(HashOn::Cookie(name))) => {
                if !lexical::is_token(name) {
                    let msg = format!(
                        "invalid cookie name {name:?}: expected letters, digits and !#$%&'*+-.^_`|~ only"
                    );
                    self.err(format!("{at}.hash_on.cookie"), msg);
                }
            }
            (Balancer::ConsistentHash, Some(_)) => {}
            (_, Some(_)) => {
                let msg = "`hash_on` only applies to `balancer: consistent_hash`; set that balancer or remove `hash_on`";
                self.err(format!("{at}.hash_on"), msg);
            }
            (_, None) => {}
        }
    }

    fn active_health(&mut self, at: &str, h: &ActiveHealth) {
        if !h.path.starts_with('/') {
            self.err(
                format!("{at}.path"),
                format!("health check path {:?} must start with `/`", h.path),
            );
        }
        self.positive(format!("{at}.interval"), h.interval);
        self.positive(format!("{at}.timeout"), h.timeout);
        self.at_least(
            format!("{at}.healthy_threshold"),
            u64::from(h.healthy_threshold),
            1,
        );
        self.at_least(
            format!("{at}.unhealthy_threshold"),
            u64::from(h.unhealthy_threshold),
            1,
        );
        if h.expected_statuses.is_empty() {
            self.err(
                format!("{at}.expected_statuses"),
                "must list at least one status (e.g. [200])",
            );
        }
        self.statuses(
            &format!("{at}.expected_statuses"),
            &h.expected_statuses,
            100..=599,
        );
    }
}

/// Two listeners cannot both bind: the same address, or the same port where one is the
/// unspecified address of the same family. Port 0 lets the OS pick, so it never clashes.
fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0 && a == b
        || (a.port() == b.port()
            && a.is_ipv4() == b.is_ipv4()
            && (a.ip().is_unspecified() || b.ip().is_unspecified()))
}
