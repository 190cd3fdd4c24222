//! An ended span as the exporter sends it: ids, name, kind, times, attributes, status.
//!
//! Attribute keys are `&'static str` (the OTel semantic-convention names are fixed) and
//! values borrow shared strings where they can, so recording a span copies little.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::context::{SpanId, TraceId};

/// OTLP's `SpanKind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// An attribute value: a string or an integer (all the HTTP conventions need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    Str(Cow<'static, str>),
    Shared(Arc<str>),
    Int(i64),
}

impl AttrValue {
    /// The value as a string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            Self::Shared(s) => Some(s),
            Self::Int(_) => None,
        }
    }
}

impl From<&'static str> for AttrValue {
    fn from(s: &'static str) -> Self {
        Self::Str(Cow::Borrowed(s))
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        Self::Str(Cow::Owned(s))
    }
}

impl From<Arc<str>> for AttrValue {
    fn from(s: Arc<str>) -> Self {
        Self::Shared(s)
    }
}

impl From<i64> for AttrValue {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}

/// Attributes of one span, in the order they were set.
pub type Attributes = Vec<(&'static str, AttrValue)>;

/// A finished span.
#[derive(Debug, Clone)]
pub struct SpanData {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    /// The caller's `tracestate`, on the server span only.
    pub trace_state: Option<Box<str>>,
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Attributes,
    /// Status `ERROR` with this message when set; `UNSET` otherwise (the HTTP conventions
    /// leave successful spans unset).
    pub error: Option<Cow<'static, str>>,
}

/// Nanoseconds since the Unix epoch of `t`; 0 before it.
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A wall-clock base taken once per request, so the other timestamps of the request's
/// spans come from the cheaper monotonic clock and never run backwards.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    unix_nanos: u64,
    at: std::time::Instant,
}

impl Clock {
    pub fn now() -> Self {
        Self {
            unix_nanos: unix_nanos(SystemTime::now()),
            at: std::time::Instant::now(),
        }
    }

    /// A clock whose base is `at`, which happened `ago` before now.
    pub fn since(at: std::time::Instant) -> Self {
        let ago = at.elapsed();
        Self {
            unix_nanos: unix_nanos(SystemTime::now()).saturating_sub(nanos(ago)),
            at,
        }
    }

    /// Unix nanoseconds of `t` (an instant of this request).
    pub fn at(&self, t: std::time::Instant) -> u64 {
        match t.checked_duration_since(self.at) {
            Some(after) => self.unix_nanos.saturating_add(nanos(after)),
            None => self
                .unix_nanos
                .saturating_sub(nanos(self.at.duration_since(t))),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
