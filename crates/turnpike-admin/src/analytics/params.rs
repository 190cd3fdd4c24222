//! The analytics API's query parameters: parsed by hand so every bad one is reported, all
//! at once, as a 400 `invalid_query` whose details name the parameter.

use serde::Deserialize;
use turnpike_config::model::Analytics;
use turnpike_store::Resolution;
use utoipa::IntoParams;

use super::aggregate::{Dimension, Metric};
use crate::error::{ApiError, Detail};

/// Most buckets one series may have: a chart's worth; ask for a coarser interval.
const MAX_POINTS: i64 = 1_500;
/// Most items a top-N list may ask for.
const MAX_TOP: usize = 1_000;
/// Default top-N length.
const DEFAULT_TOP: usize = 10;
/// The default range: the last hour.
const DEFAULT_RANGE: i64 = 3_600;

/// Time series parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SeriesParams {
    /// Range start: RFC 3339 (`2026-01-01T00:00:00Z`) or Unix seconds; default `to` - 1h.
    from: Option<String>,
    /// Range end (exclusive): RFC 3339 or Unix seconds; default now.
    to: Option<String>,
    /// `minute`, `hour` or `day`; default: the finest that the range's length (at most 1500
    /// points) and the retention allow.
    interval: Option<String>,
    /// Only this route.
    route: Option<String>,
    /// Only this service (a route's upstream).
    service: Option<String>,
    /// Only this consumer; empty (`consumer=`) selects requests without a consumer.
    consumer: Option<String>,
    /// Only this status class: `1xx` to `5xx` (or `1` to `5`).
    status_class: Option<String>,
    /// One series per `route`, `service`, `consumer` or `status_class`.
    group_by: Option<String>,
}

/// A consumer's own usage: the time series parameters, the consumer fixed by the path.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UsageParams {
    /// Range start: RFC 3339 or Unix seconds; default `to` - 1h.
    from: Option<String>,
    /// Range end (exclusive); default now.
    to: Option<String>,
    /// `minute`, `hour` or `day`; default chosen from the range.
    interval: Option<String>,
    /// Only this route.
    route: Option<String>,
    /// Only this service.
    service: Option<String>,
    /// Only this status class: `1xx` to `5xx`.
    status_class: Option<String>,
    /// One series per `route`, `service` or `status_class`.
    group_by: Option<String>,
}

/// Top-N parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TopParams {
    /// Range start: RFC 3339 or Unix seconds; default `to` - 1h.
    from: Option<String>,
    /// Range end (exclusive); default now.
    to: Option<String>,
    /// `route` (default), `service` or `consumer` (identified consumers only).
    by: Option<String>,
    /// `requests` (default), `errors`, `p99` or `bytes`.
    metric: Option<String>,
    /// 1 to 1000 (default 10).
    limit: Option<String>,
    route: Option<String>,
    service: Option<String>,
    consumer: Option<String>,
    status_class: Option<String>,
}

/// Row filters.
#[derive(Debug, Default)]
pub(crate) struct Filters {
    pub(crate) route: Option<String>,
    pub(crate) service: Option<String>,
    pub(crate) consumer: Option<String>,
    pub(crate) status_class: Option<u8>,
}

/// A series' aligned range and interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) from: i64,
    pub(crate) to: i64,
    pub(crate) interval: Resolution,
}

/// A parsed top-N request.
#[derive(Debug)]
pub(crate) struct Top {
    pub(crate) from: i64,
    pub(crate) to: i64,
    pub(crate) by: Dimension,
    pub(crate) metric: Metric,
    pub(crate) metric_name: String,
    pub(crate) limit: usize,
    pub(crate) filters: Filters,
}

type Parsed = (Window, Filters, Option<Dimension>);

/// Collects problems so one response names all of them.
#[derive(Default)]
struct Problems(Vec<Detail>);

impl Problems {
    fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(Detail::new(path, message));
    }

    fn finish<T>(self, value: T) -> Result<T, ApiError> {
        if self.0.is_empty() {
            return Ok(value);
        }
        let n = self.0.len();
        let noun = if n == 1 { "problem" } else { "problems" };
        Err(ApiError::bad_request(
            "invalid_query",
            format!("the query parameters are invalid ({n} {noun})"),
        )
        .with_details(self.0))
    }
}

impl SeriesParams {
    pub(crate) fn parse(self, settings: &Analytics, now: i64) -> Result<Parsed, ApiError> {
        let mut p = Problems::default();
        let range = range(&mut p, self.from.as_deref(), self.to.as_deref(), now);
        let window = range.and_then(|r| window(&mut p, r, self.interval.as_deref(), settings, now));
        let status_class = status_class(&mut p, self.status_class.as_deref());
        let group_by = dimension(&mut p, "group_by", self.group_by.as_deref(), true);
        let filters = Filters {
            route: self.route,
            service: self.service,
            consumer: self.consumer,
            status_class,
        };
        p.finish(window.map(|w| (w, filters, group_by)))?
            .ok_or_else(|| ApiError::bad_request("invalid_query", "invalid range"))
    }
}

impl UsageParams {
    pub(crate) fn parse(
        self,
        consumer: String,
        settings: &Analytics,
        now: i64,
    ) -> Result<Parsed, ApiError> {
        if self.group_by.as_deref() == Some("consumer") {
            let msg = "this is one consumer's usage: group by route, service or status_class";
            return Err(
                ApiError::bad_request("invalid_query", "the query parameters are invalid")
                    .with_details(vec![Detail::new("group_by", msg)]),
            );
        }
        SeriesParams {
            from: self.from,
            to: self.to,
            interval: self.interval,
            route: self.route,
            service: self.service,
            consumer: Some(consumer),
            status_class: self.status_class,
            group_by: self.group_by,
        }
        .parse(settings, now)
    }
}

impl TopParams {
    pub(crate) fn parse(self, now: i64) -> Result<Top, ApiError> {
        let mut p = Problems::default();
        let range = range(&mut p, self.from.as_deref(), self.to.as_deref(), now);
        let by = dimension(
            &mut p,
            "by",
            Some(self.by.as_deref().unwrap_or("route")),
            false,
        );
        let metric_name = self.metric.unwrap_or_else(|| "requests".to_owned());
        let metric = Metric::parse(&metric_name);
        if metric.is_none() {
            p.add(
                "metric",
                format!("expected requests, errors, p99 or bytes, found {metric_name:?}"),
            );
        }
        let limit = match self.limit.as_deref().map(str::parse::<usize>) {
            None => DEFAULT_TOP,
            Some(Ok(n)) if (1..=MAX_TOP).contains(&n) => n,
            Some(_) => {
                let found = self.limit.unwrap_or_default();
                p.add(
                    "limit",
                    format!("must be between 1 and {MAX_TOP}, found {found:?}"),
                );
                DEFAULT_TOP
            }
        };
        let filters = Filters {
            route: self.route,
            service: self.service,
            consumer: self.consumer,
            status_class: status_class(&mut p, self.status_class.as_deref()),
        };
        let parsed = p.finish((range, by, metric))?;
        match parsed {
            (Some((from, to)), Some(by), Some(metric)) => Ok(Top {
                from,
                to,
                by,
                metric,
                metric_name,
                limit,
                filters,
            }),
            _ => Err(ApiError::bad_request("invalid_query", "invalid parameters")),
        }
    }
}

/// `[from, to)` from the parameters, `from < to`.
fn range(p: &mut Problems, from: Option<&str>, to: Option<&str>, now: i64) -> Option<(i64, i64)> {
    let to = match to {
        None => Some(now),
        Some(t) => time(p, "to", t),
    };
    let from = match from {
        None => to.map(|t| t - DEFAULT_RANGE),
        Some(f) => time(p, "from", f),
    };
    let (from, to) = (from?, to?);
    if from >= to {
        p.add("from", "must be before `to`");
        return None;
    }
    Some((from, to))
}

/// RFC 3339 or Unix seconds.
fn time(p: &mut Problems, name: &str, text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<i64>() {
        return Some(secs);
    }
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => Some(t.as_second()),
        Err(_) => {
            let msg = format!(
                "expected an RFC 3339 time (2026-01-01T00:00:00Z) or Unix seconds, found {text:?}"
            );
            p.add(name, msg);
            None
        }
    }
}

/// The interval asked for (or chosen), with the range aligned to it.
fn window(
    p: &mut Problems,
    (from, to): (i64, i64),
    interval: Option<&str>,
    settings: &Analytics,
    now: i64,
) -> Option<Window> {
    let kept = |r: Resolution| match r {
        Resolution::Minute => now - secs(settings.retention.minute),
        Resolution::Hour => now - secs(settings.retention.hour),
        Resolution::Day => i64::MIN,
    };
    let interval = match interval {
        None => auto(from, to, kept),
        Some(text) => match Resolution::ALL.into_iter().find(|r| r.as_str() == text) {
            Some(r) => r,
            None => {
                p.add(
                    "interval",
                    format!("expected minute, hour or day, found {text:?}"),
                );
                return None;
            }
        },
    };
    let coarser = interval.coarser().map_or("", Resolution::as_str);
    if from < kept(interval) {
        let msg = format!(
            "{} rows are kept for {} (analytics.retention.{}); this range starts earlier: use interval={coarser}",
            interval.as_str(),
            retention_text(settings, interval),
            interval.as_str()
        );
        p.add("interval", msg);
        return None;
    }
    let step = interval.seconds();
    let (from, to) = (interval.bucket_of(from), interval.bucket_of(to + step - 1));
    if (to - from) / step > MAX_POINTS {
        let msg = format!(
            "the range has {} {} buckets, more than {MAX_POINTS}: use interval={coarser} or a shorter range",
            (to - from) / step,
            interval.as_str()
        );
        p.add("interval", msg);
        return None;
    }
    Some(Window { from, to, interval })
}

/// The finest interval whose rows are still kept for `from` and that fits in
/// [`MAX_POINTS`].
fn auto(from: i64, to: i64, kept: impl Fn(Resolution) -> i64) -> Resolution {
    Resolution::ALL
        .into_iter()
        .find(|r| from >= kept(*r) && (to - from) / r.seconds() < MAX_POINTS)
        .unwrap_or(Resolution::Day)
}

fn retention_text(settings: &Analytics, r: Resolution) -> String {
    match r {
        Resolution::Minute => settings.retention.minute.to_string(),
        Resolution::Hour => settings.retention.hour.to_string(),
        Resolution::Day => settings.retention.day.to_string(),
    }
}

fn secs(d: turnpike_config::units::Duration) -> i64 {
    i64::try_from(d.as_std().as_secs()).unwrap_or(i64::MAX)
}

fn status_class(p: &mut Problems, text: Option<&str>) -> Option<u8> {
    let text = text?;
    let digits = text.strip_suffix("xx").unwrap_or(text);
    match digits.parse::<u8>() {
        Ok(n @ 1..=5) => Some(n),
        _ => {
            p.add(
                "status_class",
                format!("expected 1xx to 5xx, found {text:?}"),
            );
            None
        }
    }
}

fn dimension(p: &mut Problems, name: &str, text: Option<&str>, status: bool) -> Option<Dimension> {
    let text = text?;
    match Dimension::parse(text) {
        Some(Dimension::StatusClass) if !status => {}
        Some(d) => return Some(d),
        None => {}
    }
    let expected = if status {
        "route, service, consumer or status_class"
    } else {
        "route, service or consumer"
    };
    p.add(name, format!("expected {expected}, found {text:?}"));
    None
}

/// Now, in Unix seconds.
pub(crate) fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Unix seconds as RFC 3339 UTC (`2026-01-01T00:00:00Z`).
pub(crate) fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600 + 12 * 3600 + 30;

    fn series(query: &str) -> Result<Parsed, ApiError> {
        let p: SeriesParams = serde_urlencoded_like(query);
        p.parse(&Analytics::default(), NOW)
    }

    /// Splits `a=b&c=d` the way axum's `Query` would (no escapes in these tests).
    fn serde_urlencoded_like(query: &str) -> SeriesParams {
        let map: serde_json::Map<String, serde_json::Value> = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        serde_json::from_value(serde_json::Value::Object(map)).unwrap()
    }

    fn paths(e: ApiError) -> Vec<String> {
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_query"));
        e.details.into_iter().map(|d| d.path).collect()
    }

    #[test]
    fn defaults_and_alignment() {
        let (w, f, g) = series("").unwrap();
        assert_eq!(w.interval, Resolution::Minute);
        assert_eq!((w.from, w.to), (NOW - 30 - 3600, NOW - 30 + 60));
        assert!(f.route.is_none() && g.is_none());
        let (w, _, _) = series("from=2026-01-01T00:00:00Z&to=2026-01-01T10:00:00Z").unwrap();
        assert_eq!(
            w.interval,
            Resolution::Minute,
            "within minute retention: 600 points"
        );
        let (w, _, _) = series(&format!("from={}", NOW - 5 * 86_400)).unwrap();
        assert_eq!(w.interval, Resolution::Hour, "older than two days");
        let (w, _, _) = series(&format!("from={}", NOW - 200 * 86_400)).unwrap();
        assert_eq!(w.interval, Resolution::Day);
        let (_, f, g) = series("status_class=5xx&group_by=consumer&consumer=").unwrap();
        assert_eq!((f.status_class, f.consumer.as_deref()), (Some(5), Some("")));
        assert_eq!(g, Some(Dimension::Consumer));
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let e =
            series("from=yesterday&interval=week&status_class=6xx&group_by=method").unwrap_err();
        assert_eq!(paths(e), ["from", "status_class", "group_by"]);
        let e = series("interval=week").unwrap_err();
        assert_eq!(paths(e), ["interval"]);
        let e = series(&format!("from={NOW}&to={}", NOW - 1)).unwrap_err();
        assert_eq!(paths(e), ["from"]);
        let old = format!("from={}&interval=minute", NOW - 3 * 86_400);
        assert!(
            series(&old).unwrap_err().details[0]
                .message
                .contains("use interval=hour")
        );
        let many = format!("from={}&interval=minute", NOW - 36 * 3600);
        assert!(
            series(&many).unwrap_err().details[0]
                .message
                .contains("more than 1500")
        );
    }

    #[test]
    fn top_parameters() {
        let top = |by: &str, metric: &str, limit: &str| TopParams {
            from: None,
            to: None,
            by: Some(by.to_owned()),
            metric: Some(metric.to_owned()),
            limit: Some(limit.to_owned()),
            route: None,
            service: None,
            consumer: None,
            status_class: None,
        };
        let t = top("consumer", "p99", "5").parse(NOW).unwrap();
        assert_eq!(
            (t.by, t.metric, t.limit),
            (Dimension::Consumer, Metric::P99, 5)
        );
        let e = top("status_class", "latency", "0").parse(NOW).unwrap_err();
        assert_eq!(paths(e), ["by", "metric", "limit"]);
    }
}
