//! The access log: which requests get a line, what a line holds, and how it looks.
//!
//! The request path only fills a [`Record`] (reference-counted handles, no formatting)
//! and offers it to a bounded queue; the writer thread formats and writes it. A full
//! queue drops the line and counts it, so a slow disk never slows a request.
//!
//! A line never carries secrets: no request headers at all (so no `Authorization`,
//! cookies or API-key headers), and the path without its query string, which can hold keys.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use http::uri::PathAndQuery;
use http::{HeaderValue, Method};
use turnpike_config::model::{self, AccessLogFormat};

use crate::metrics::{Metrics, RouteMetrics};
use crate::{AnalyticsError, writer};

/// One request, as the access log sees it.
#[derive(Debug)]
pub struct Record {
    pub time: SystemTime,
    pub request_id: HeaderValue,
    pub client_ip: IpAddr,
    pub method: Method,
    /// Only the path is written, never the query.
    pub target: Option<PathAndQuery>,
    /// The route and service; `route=""` when none matched.
    pub route: Arc<RouteMetrics>,
    pub upstream_target: Option<Arc<str>>,
    pub consumer: Option<Box<str>>,
    pub status: u16,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub total: Duration,
    pub upstream: Option<Duration>,
    /// The gateway's error code when it answered itself.
    pub error: Option<&'static str>,
    /// The trace the request's spans were exported under (sampled requests only).
    pub trace_id: Option<crate::trace::context::TraceId>,
}

/// An open access log: its filters and the queue to its writer thread.
#[derive(Debug)]
pub struct AccessLog {
    cfg: model::AccessLog,
    statuses: Vec<StatusFilter>,
    tx: SyncSender<Record>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Clone, Copy)]
enum StatusFilter {
    Class(u16),
    Code(u16),
}

impl AccessLog {
    /// Opens the log `cfg` describes; `None` when it is off. A `previous` log with the same
    /// settings is kept (same writer, same file); otherwise a new writer starts and the old
    /// one finishes once the requests still holding it are done.
    pub fn open(
        cfg: &model::AccessLog,
        previous: Option<&Arc<AccessLog>>,
        metrics: &Arc<Metrics>,
    ) -> Result<Option<Arc<Self>>, AnalyticsError> {
        if !cfg.enabled {
            return Ok(None);
        }
        if let Some(p) = previous.filter(|p| p.cfg == *cfg) {
            return Ok(Some(p.clone()));
        }
        let tx = writer::start(cfg)?;
        let statuses = cfg
            .only_status
            .iter()
            .filter_map(|s| match s.parse()? {
                (Some(class), _) => Some(StatusFilter::Class(class)),
                (None, code) => code.map(StatusFilter::Code),
            })
            .collect();
        Ok(Some(Arc::new(Self {
            cfg: cfg.clone(),
            statuses,
            tx,
            metrics: metrics.clone(),
        })))
    }

    /// Whether this request is sampled in; decided before the response is known, so a
    /// request that is not logged costs nothing more.
    pub fn sampled(&self) -> bool {
        self.cfg.sample >= 1.0 || fastrand::f64() < self.cfg.sample
    }

    /// Whether a response with `status` on `route` is logged.
    pub fn wants(&self, status: u16, route: &str) -> bool {
        let status_ok = self.statuses.is_empty()
            || self.statuses.iter().any(|f| match *f {
                StatusFilter::Class(c) => status / 100 == c,
                StatusFilter::Code(c) => status == c,
            });
        status_ok && !self.cfg.exclude_routes.iter().any(|r| r == route)
    }

    /// Queues a line; drops (and counts) it when the writer is behind.
    pub fn send(&self, record: Record) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics
                    .access_log_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Appends the line for `r` (with its newline) to `out`.
pub fn format(r: &Record, format: AccessLogFormat, out: &mut String) {
    match format {
        AccessLogFormat::Json => json(r, out),
        AccessLogFormat::Text => text(r, out),
    }
    out.push('\n');
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn json(r: &Record, out: &mut String) {
    use std::fmt::Write;
    out.push_str("{\"time\":\"");
    crate::time::rfc3339(r.time, out);
    out.push('"');
    let id = r.request_id.to_str().unwrap_or("");
    let path = r.target.as_ref().map_or("", PathAndQuery::path);
    let strings: [(&str, Option<&str>); 8] = [
        ("request_id", Some(id)),
        ("client_ip", None),
        ("method", Some(r.method.as_str())),
        ("path", Some(path)),
        ("route", Some(&r.route.route)),
        ("service", Some(&r.route.service)),
        ("upstream_target", r.upstream_target.as_deref()),
        ("consumer", r.consumer.as_deref()),
    ];
    for (k, v) in strings {
        let _ = write!(out, ",\"{k}\":");
        match (k, v) {
            ("client_ip", _) => {
                let _ = write!(out, "\"{}\"", r.client_ip);
            }
            (_, Some(v)) => json_str(v, out),
            (_, None) => out.push_str("null"),
        }
    }
    let _ = write!(
        out,
        ",\"status\":{},\"request_bytes\":{},\"response_bytes\":{},\"total_ms\":{}",
        r.status,
        r.request_bytes,
        r.response_bytes,
        ms(r.total)
    );
    out.push_str(",\"upstream_ms\":");
    out.push_str(&r.upstream.map_or_else(|| "null".to_owned(), ms));
    out.push_str(",\"error\":");
    match r.error {
        Some(e) => json_str(e, out),
        None => out.push_str("null"),
    }
    if let Some(id) = &r.trace_id {
        let _ = write!(out, ",\"trace_id\":\"{}\"", crate::trace::context::hex(id));
    }
    out.push('}');
}

fn json_str(v: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `TIME CLIENT "METHOD PATH" STATUS REQ_BYTES RESP_BYTES TOTAL_MS UPSTREAM_MS key=value...`
fn text(r: &Record, out: &mut String) {
    use std::fmt::Write;
    crate::time::rfc3339(r.time, out);
    let path = r.target.as_ref().map_or("", PathAndQuery::path);
    let dash = |v: Option<&str>| v.filter(|s| !s.is_empty()).unwrap_or("-").to_owned();
    let _ = write!(
        out,
        " {} \"{} {}\" {} {} {} {} {} route={} service={} target={} consumer={} id={} error={}",
        r.client_ip,
        r.method,
        path.replace('"', "%22"),
        r.status,
        r.request_bytes,
        r.response_bytes,
        ms(r.total),
        r.upstream.map_or_else(|| "-".to_owned(), ms),
        dash(Some(&r.route.route)),
        dash(Some(&r.route.service)),
        dash(r.upstream_target.as_deref()),
        dash(r.consumer.as_deref()).replace(' ', "%20"),
        dash(r.request_id.to_str().ok()),
        dash(r.error),
    );
    if let Some(id) = &r.trace_id {
        let _ = write!(out, " trace={}", crate::trace::context::hex(id));
    }
}
