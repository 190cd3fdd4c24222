//! The analytics API: usage time series and top-N lists over the store's rollups, and a
//! consumer's own usage (for the developer portal).
//!
//! Every event lives in exactly one table (downsampling moves rows), so a query reads every
//! table at least as fine as its interval for the range and adds them up. Minute and hour
//! rows exist only for their retention; an interval finer than the range allows is a 400.

mod aggregate;
mod params;
pub mod worker;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Query, State};
use serde::Serialize;
use turnpike_analytics::UsageRow;
use turnpike_store::{Resolution, UsageQuery};
use utoipa::ToSchema;

pub use aggregate::Stats;
use aggregate::{Dimension, Series};
pub(crate) use params::rfc3339;
use params::{Filters, SeriesParams, TopParams, UsageParams, Window};

use crate::error::ApiError;
#[allow(unused_imports, reason = "named only by the OpenAPI attributes")]
use crate::error::ErrorBody;
use crate::state::AdminState;

/// Usage per interval, one series per group.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimeSeries {
    /// The first bucket's start (RFC 3339, UTC); `from` rounded down to the interval.
    pub from: String,
    /// The end of the last bucket (exclusive); `to` rounded up to the interval.
    pub to: String,
    /// `minute`, `hour` or `day`.
    pub interval: String,
    /// The dimension series are split by, if any.
    pub group_by: Option<String>,
    pub series: Vec<SeriesBody>,
}

/// One group's points, every bucket of the range present.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesBody {
    /// The group's value (`2xx` for status classes); `null` when not grouped, and for
    /// requests without a consumer when grouped by consumer.
    pub group: Option<String>,
    pub points: Vec<PointBody>,
}

/// One bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointBody {
    /// The bucket's start, RFC 3339, UTC.
    pub time: String,
    #[serde(flatten)]
    pub stats: Stats,
}

/// The highest-ranked routes, services or consumers in a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopList {
    pub from: String,
    pub to: String,
    /// `route`, `service` or `consumer`.
    pub by: String,
    /// `requests`, `errors`, `p99` or `bytes` (request + response).
    pub metric: String,
    pub items: Vec<TopItem>,
}

/// One ranked name.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopItem {
    pub name: String,
    #[serde(flatten)]
    pub stats: Stats,
}

#[utoipa::path(get, path = "/api/v1/analytics/timeseries", tag = "analytics",
    operation_id = "analytics_timeseries", params(SeriesParams), security(("bearer" = [])),
    responses((status = 200, body = TimeSeries), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn timeseries(
    State(state): State<AdminState>,
    q: Result<Query<SeriesParams>, QueryRejection>,
) -> Result<Json<TimeSeries>, ApiError> {
    let p = crate::body::query(q)?;
    let (window, filters, group_by) = p.parse(state.analytics_settings(), params::now())?;
    series_response(&state, window, filters, group_by).await
}

#[utoipa::path(get, path = "/api/v1/analytics/top", tag = "analytics",
    operation_id = "analytics_top", params(TopParams), security(("bearer" = [])),
    responses((status = 200, body = TopList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn top(
    State(state): State<AdminState>,
    q: Result<Query<TopParams>, QueryRejection>,
) -> Result<Json<TopList>, ApiError> {
    let p = crate::body::query(q)?;
    let t = p.parse(params::now())?;
    let rows = read(&state, &Resolution::ALL, (t.from, t.to), &t.filters).await?;
    let items = aggregate::top(&rows, t.by, t.metric, t.limit)
        .into_iter()
        .map(|(name, stats)| TopItem { name, stats })
        .collect();
    Ok(Json(TopList {
        from: params::rfc3339(t.from),
        to: params::rfc3339(t.to),
        by: t.by.as_str().to_owned(),
        metric: t.metric_name,
        items,
    }))
}

#[utoipa::path(get, path = "/api/v1/consumers/{name}/usage", tag = "analytics",
    operation_id = "consumer_usage",
    params(("name" = String, Path, description = "The consumer"), UsageParams),
    security(("bearer" = [])),
    responses((status = 200, description = "The consumer's usage only", body = TimeSeries),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn consumer_usage(
    State(state): State<AdminState>,
    name: Result<axum::extract::Path<String>, PathRejection>,
    q: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Json<TimeSeries>, ApiError> {
    let name = crate::entities::name(name)?;
    let p = crate::body::query(q)?;
    let (window, filters, group_by) = p.parse(name, state.analytics_settings(), params::now())?;
    series_response(&state, window, filters, group_by).await
}

async fn series_response(
    state: &AdminState,
    w: Window,
    filters: Filters,
    group_by: Option<Dimension>,
) -> Result<Json<TimeSeries>, ApiError> {
    let tables: Vec<Resolution> = Resolution::ALL
        .into_iter()
        .filter(|r| *r <= w.interval)
        .collect();
    let rows = read(state, &tables, (w.from, w.to), &filters).await?;
    let series = aggregate::series(&rows, w.interval, (w.from, w.to), group_by);
    Ok(Json(TimeSeries {
        from: params::rfc3339(w.from),
        to: params::rfc3339(w.to),
        interval: w.interval.as_str().to_owned(),
        group_by: group_by.map(|d| d.as_str().to_owned()),
        series: series.into_iter().map(series_body).collect(),
    }))
}

fn series_body(s: Series) -> SeriesBody {
    SeriesBody {
        group: s.group,
        points: s
            .points
            .into_iter()
            .map(|p| PointBody {
                time: params::rfc3339(p.bucket),
                stats: p.stats,
            })
            .collect(),
    }
}

/// Every node's rows of `tables` in `[from, to)` matching `filters`.
async fn read(
    state: &AdminState,
    tables: &[Resolution],
    (from, to): (i64, i64),
    f: &Filters,
) -> Result<Vec<UsageRow>, ApiError> {
    let mut rows = Vec::new();
    for resolution in tables {
        let query = UsageQuery {
            resolution: *resolution,
            from,
            to,
            route: f.route.clone(),
            service: f.service.clone(),
            consumer: f.consumer.clone(),
            status_class: f.status_class,
        };
        let found = state.store().usage(&query).await?;
        rows.extend(found.into_iter().map(|(_, row)| row));
    }
    Ok(rows)
}
