//! The `metrics:` and `access_log:` sections: a metrics listener that collides with no
//! other listener, sane bounds, and filters that can match something.

use super::{Checker, clash};
use crate::de::Parsed;
use crate::model::{AccessLog, Metrics, StatusMatch};

/// Most consumers that may get a label of their own; more would defeat the bound.
const MAX_CONSUMER_LABELS: usize = 10_000;

pub(super) fn check(c: &mut Checker<'_>, parsed: &Parsed) {
    metrics(c, parsed, &parsed.config.metrics);
    access_log(c, &parsed.config.access_log);
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
