//! The `metrics:`, `access_log:` and `tracing:` sections: a metrics listener that collides
//! with no other listener, sane bounds, filters that can match something, and an OTLP
//! endpoint and headers an HTTP client can use.

use super::{Checker, clash};
use crate::de::Parsed;
use crate::lexical;
use crate::model::{AccessLog, Metrics, StatusMatch, Tracing};

/// Most consumers that may get a label of their own; more would defeat the bound.
const MAX_CONSUMER_LABELS: usize = 10_000;

pub(super) fn check(c: &mut Checker<'_>, parsed: &Parsed) {
    metrics(c, parsed, &parsed.config.metrics);
    access_log(c, &parsed.config.access_log);
    tracing(c, &parsed.config.tracing);
}

fn metrics(c: &mut Checker<'_>, parsed: &Parsed, m: &Metrics) {
    if !(1..=MAX_CONSUMER_LABELS).contains(&m.max_consumers) {
        let msg = format!(
            "must be between 1 and {MAX_CONSUMER_LABELS}, found {} (turn the label off with `consumer_labels: false`)",
            m.max_consumers
        );
        c.err("metrics.max_consumers", msg);
    }
    let Some(addr) = m.listen else {
        return;
    };
    let config = &parsed.config;
    let mut others: Vec<(std::net::SocketAddr, String, String)> = Vec::new();
    if let Some(a) = config.listen {
        others.push((a, "listen".to_owned(), "`listen`".to_owned()));
    }
    for (l, i) in config.listeners.iter().zip(&parsed.listener_at) {
        let label = format!("listener `{}`", l.name);
        others.push((l.address, format!("listeners[{i}].address"), label));
    }
    if let Some(admin) = &config.admin {
        others.push((
            admin.listen,
            "admin.listen".to_owned(),
            "`admin.listen`".to_owned(),
        ));
    }
    if let Some((other, path, label)) = others.iter().find(|(b, ..)| clash(*b, addr)) {
        let line = c.line(path);
        let msg = if *other == addr {
            format!("address {addr} is already used by {label} (line {line})")
        } else {
            format!("address {addr} overlaps {other}, used by {label} (line {line})")
        };
        c.err("metrics.listen", msg);
    }
}

fn access_log(c: &mut Checker<'_>, a: &AccessLog) {
    if a.output.trim().is_empty() {
        c.err(
            "access_log.output",
            "the output must not be empty: use `stdout` or a file path",
        );
    }
    if !(0.0..=1.0).contains(&a.sample) {
        let msg = format!(
            "must be between 0.0 and 1.0 (the fraction of requests logged), found {}",
            a.sample
        );
        c.err("access_log.sample", msg);
    }
    if a.buffer == 0 {
        c.err("access_log.buffer", "must be at least 1");
    }
    for (i, s) in a.only_status.iter().enumerate() {
        if s.parse().is_none() {
            let shown = match s {
                StatusMatch::Code(c) => c.to_string(),
                StatusMatch::Class(s) => format!("{s:?}"),
            };
            let msg = format!(
                "invalid status {shown}: expected a class such as \"4xx\" or a code from 100 to 599"
            );
            c.err(format!("access_log.only_status[{i}]"), msg);
        }
    }
    if let Some(r) = &a.rotate {
        if a.output == "stdout" {
            c.err(
                "access_log.rotate",
                "rotation needs a file output, and `output` is stdout",
            );
        }
        if r.max_size.bytes() < 1024 {
            let msg = format!("must be at least 1KiB, found {}", r.max_size);
            c.err("access_log.rotate.max_size", msg);
        }
        if r.keep > 1000 {
            let msg = format!("must be at most 1000, found {}", r.keep);
            c.err("access_log.rotate.keep", msg);
        }
    }
}

/// Most spans one export may carry or the queue may hold; more is memory, not tracing.
const MAX_TRACE_QUEUE: usize = 1_000_000;

fn tracing(c: &mut Checker<'_>, t: &Tracing) {
    if !(0.0..=1.0).contains(&t.sample) {
        let msg = format!(
            "must be between 0.0 and 1.0 (the fraction of new traces sampled), found {}",
            t.sample
        );
        c.err("tracing.sample", msg);
    }
    if let Err(msg) = otlp_endpoint(&t.endpoint) {
        c.err("tracing.endpoint", msg);
    }
    for (name, value) in &t.headers {
        let path = crate::path::key("tracing.headers", name);
        if let Err(msg) = lexical::header_name(name) {
            c.err_key(path, msg);
        } else if let Err(msg) = lexical::header_value(value) {
            c.err(path, msg);
        }
    }
    if t.service_name.trim().is_empty() {
        c.err(
            "tracing.service_name",
            "must not be empty (e.g. \"turnpike\")",
        );
    }
    if !(1..=MAX_TRACE_QUEUE).contains(&t.max_queue) {
        let msg = format!(
            "must be between 1 and {MAX_TRACE_QUEUE}, found {}",
            t.max_queue
        );
        c.err("tracing.max_queue", msg);
    }
    if t.batch_size == 0 || t.batch_size > t.max_queue.max(1) {
        let msg = format!(
            "must be between 1 and `max_queue` ({}), found {}",
            t.max_queue, t.batch_size
        );
        c.err("tracing.batch_size", msg);
    }
    c.positive("tracing.flush_interval".to_owned(), t.flush_interval);
    c.positive("tracing.timeout".to_owned(), t.timeout);
}

/// The collector's base URL: `http(s)://host[:port][/path]`, no query, fragment or
/// credentials (those go in `headers`, which are not written to logs).
fn otlp_endpoint(url: &str) -> Result<(), String> {
    let expected =
        "expected http://host:port or https://host[:port][/path], such as http://127.0.0.1:4318";
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(format!("invalid endpoint {url:?}: {expected}"));
    };
    if rest.contains(['?', '#']) {
        return Err(format!(
            "endpoint {url:?} must not have a query or fragment"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "endpoint {url:?} must not contain credentials (`user@`): put them in `tracing.headers`"
        ));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, port)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => {
                (None, port.strip_prefix(':'))
            }
            _ => return Err(format!("endpoint {url:?} has an invalid IPv6 address")),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        },
    };
    if let Some(host) = host {
        lexical::hostname(host)
            .map_err(|why| format!("endpoint {url:?} has an invalid host: {why}"))?;
    }
    match port.map(str::parse::<u16>) {
        None | Some(Ok(1..)) => Ok(()),
        Some(_) => Err(format!(
            "endpoint {url:?} has an invalid port; expected 1 to 65535"
        )),
    }
}
