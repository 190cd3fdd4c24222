//! Turning stored usage rows (every node's, possibly of several resolutions) into what the
//! analytics API answers: time series per group, and top-N lists. Counts are summed and
//! latency sketches merged, so percentiles of merged periods and nodes stay within 1%.

use std::collections::BTreeMap;

use serde::Serialize;
use turnpike_analytics::{UsageRow, UsageTotals};
use turnpike_store::Resolution;
use utoipa::ToSchema;

/// A dimension to group or rank by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dimension {
    Route,
    Service,
    Consumer,
    StatusClass,
}

impl Dimension {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "route" => Self::Route,
            "service" => Self::Service,
            "consumer" => Self::Consumer,
            "status_class" => Self::StatusClass,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Route => "route",
            Self::Service => "service",
            Self::Consumer => "consumer",
            Self::StatusClass => "status_class",
        }
    }

    /// The row's value of this dimension; `None` for "no consumer".
    fn of(self, row: &UsageRow) -> Option<String> {
        let k = &row.key;
        match self {
            Self::Route => Some(k.route.clone()),
            Self::Service => Some(k.service.clone()),
            Self::Consumer => Some(k.consumer.clone()).filter(|c| !c.is_empty()),
            Self::StatusClass => Some(format!("{}xx", k.status_class)),
        }
    }
}

/// A ranking metric for top-N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metric {
    Requests,
    Errors,
    P99,
    Bytes,
}

impl Metric {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requests" => Self::Requests,
            "errors" => Self::Errors,
            "p99" => Self::P99,
            "bytes" => Self::Bytes,
            _ => return None,
        })
    }

    fn score(self, s: &Stats) -> f64 {
        match self {
            Self::Requests => s.requests as f64,
            Self::Errors => s.errors as f64,
            Self::P99 => s.p99_ms.unwrap_or(-1.0),
            Self::Bytes => (s.request_bytes + s.response_bytes) as f64,
        }
    }
}

/// What one bucket (or one ranked name) adds up to.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Stats {
    pub requests: u64,
    /// Responses with a 5xx status.
    pub errors: u64,
    /// Latency percentiles of the total request time, in milliseconds (within 1%);
    /// `null` without requests.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Request body bytes received.
    pub request_bytes: u64,
    /// Response body bytes sent.
    pub response_bytes: u64,
}

impl From<&UsageTotals> for Stats {
    fn from(t: &UsageTotals) -> Self {
        // Three decimals: microseconds, which is all the sketch resolves below 1 ms anyway.
        let q = |p| {
            t.latency
                .quantile_ms(p)
                .map(|ms| (ms * 1000.0).round() / 1000.0)
        };
        Self {
            requests: t.requests,
            errors: t.errors,
            p50_ms: q(0.5),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            request_bytes: t.request_bytes,
            response_bytes: t.response_bytes,
        }
    }
}

/// One point of a series: the bucket's start (Unix seconds) and its stats.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    pub(crate) bucket: i64,
    pub(crate) stats: Stats,
}

/// A series: the group's value (`None` when not grouped, or for "no consumer").
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub(crate) group: Option<String>,
    pub(crate) points: Vec<Point>,
}

/// Buckets every row into `interval` periods in `[from, to)` (both aligned), one series per
/// group, with every period present (zero when nothing was counted).
pub(crate) fn series(
    rows: &[UsageRow],
    interval: Resolution,
    (from, to): (i64, i64),
    group_by: Option<Dimension>,
) -> Vec<Series> {
    let mut groups: BTreeMap<Option<String>, BTreeMap<i64, UsageTotals>> = BTreeMap::new();
    for row in rows {
        let group = group_by.and_then(|d| d.of(row));
        let bucket = interval.bucket_of(row.key.bucket);
        let slot = groups.entry(group).or_default().entry(bucket).or_default();
        slot.merge(&row.totals);
    }
    if groups.is_empty() && group_by.is_none() {
        groups.insert(None, BTreeMap::new());
    }
    let empty = UsageTotals::default();
    groups
        .into_iter()
        .map(|(group, buckets)| Series {
            group,
            points: (from..to)
                .step_by(usize::try_from(interval.seconds()).unwrap_or(60))
                .map(|bucket| Point {
                    bucket,
                    stats: Stats::from(buckets.get(&bucket).unwrap_or(&empty)),
                })
                .collect(),
        })
        .collect()
}

/// The `limit` values of `by` with the highest `metric`, ties broken by name. Rows without
/// a value (no consumer, for `by=consumer`) are left out.
pub(crate) fn top(
    rows: &[UsageRow],
    by: Dimension,
    metric: Metric,
    limit: usize,
) -> Vec<(String, Stats)> {
    let mut totals: BTreeMap<String, UsageTotals> = BTreeMap::new();
    for row in rows {
        if let Some(name) = by.of(row) {
            totals.entry(name).or_default().merge(&row.totals);
        }
    }
    let mut ranked: Vec<(String, Stats)> = totals
        .iter()
        .map(|(name, t)| (name.clone(), Stats::from(t)))
        .collect();
    ranked.sort_by(|a, b| {
        metric
            .score(&b.1)
            .total_cmp(&metric.score(&a.1))
            .then_with(|| a.0.cmp(&b.0))
    });
    ranked.truncate(limit);
    ranked
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use turnpike_analytics::UsageKey;

    use super::*;

    fn row(bucket: i64, route: &str, consumer: &str, class: u8, n: u64, ms: u64) -> UsageRow {
        let mut totals = UsageTotals {
            requests: n,
            errors: if class == 5 { n } else { 0 },
            request_bytes: n,
            response_bytes: 10 * n,
            ..UsageTotals::default()
        };
        for _ in 0..n {
            totals.latency.add(Duration::from_millis(ms));
        }
        UsageRow {
            key: UsageKey {
                bucket,
                route: route.into(),
                service: "s".into(),
                consumer: consumer.into(),
                status_class: class,
            },
            totals,
        }
    }

    #[test]
    fn series_fill_every_bucket_and_group() {
        let rows = [
            row(0, "a", "x", 2, 2, 10),
            row(60, "a", "", 5, 1, 100),
            row(3_600, "b", "x", 2, 4, 1),
        ];
        let one = series(&rows, Resolution::Hour, (0, 7_200), None);
        assert_eq!(one.len(), 1);
        let counts: Vec<_> = one[0]
            .points
            .iter()
            .map(|p| (p.bucket, p.stats.requests, p.stats.errors))
            .collect();
        assert_eq!(counts, [(0, 3, 1), (3_600, 4, 0)]);
        let by_route = series(&rows, Resolution::Minute, (0, 120), Some(Dimension::Route));
        let groups: Vec<_> = by_route.iter().map(|s| s.group.as_deref()).collect();
        assert_eq!(groups, [Some("a"), Some("b")]);
        assert_eq!(by_route[0].points.len(), 2);
        assert_eq!(by_route[1].points[0].stats.requests, 0, "outside the range");
        assert_eq!(by_route[1].points[0].stats.p99_ms, None);
        let empty = series(&[], Resolution::Minute, (0, 180), None);
        assert_eq!(empty[0].points.len(), 3);
    }

    #[test]
    fn top_ranks_by_metric() {
        let rows = [
            row(0, "a", "x", 2, 5, 1),
            row(0, "b", "y", 2, 2, 500),
            row(0, "b", "", 5, 4, 2),
            row(0, "c", "z", 2, 1, 50),
        ];
        let names = |v: Vec<(String, Stats)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        let requests = top(&rows, Dimension::Route, Metric::Requests, 10);
        assert_eq!(names(requests), ["b", "a", "c"]);
        assert_eq!(names(top(&rows, Dimension::Route, Metric::P99, 1)), ["b"]);
        assert_eq!(
            names(top(&rows, Dimension::Route, Metric::Errors, 1)),
            ["b"]
        );
        assert_eq!(
            names(top(&rows, Dimension::Consumer, Metric::Bytes, 10)),
            ["x", "y", "z"],
            "no consumer is not a consumer"
        );
    }
}
