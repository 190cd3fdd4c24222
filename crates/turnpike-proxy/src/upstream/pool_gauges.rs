//! What the per-worker connection pools hold, for `/metrics`: each worker's sweeper
//! reports its idle HTTP/1.1 connections and open HTTP/2 connections once a second, and a
//! scrape adds the reports up. Requests pay nothing for it; the gauges are at most a
//! second old.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::thread::ThreadId;

/// An upstream `(scheme, authority)`.
pub type Target = (&'static str, String);
/// Idle HTTP/1.1 connections and open HTTP/2 connections.
pub type Counts = (usize, usize);

/// One worker's pool, per upstream authority (`host:port`) and scheme.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolReport {
    /// `(scheme, authority)` → (idle HTTP/1.1 connections, open HTTP/2 connections).
    pub by_target: Vec<(Target, Counts)>,
}

static REPORTS: Mutex<Option<HashMap<ThreadId, PoolReport>>> = Mutex::new(None);

/// Replaces this worker's report.
pub(super) fn report(report: PoolReport) {
    let mut all = REPORTS.lock().unwrap_or_else(PoisonError::into_inner);
    all.get_or_insert_with(HashMap::new)
        .insert(std::thread::current().id(), report);
}

/// Idle HTTP/1.1 and open HTTP/2 connections per `(scheme, authority)`, over all workers,
/// sorted.
pub fn totals() -> Vec<(Target, Counts)> {
    let all = REPORTS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut sum: HashMap<Target, Counts> = HashMap::new();
    for report in all.iter().flat_map(|m| m.values()) {
        for (target, (idle, h2)) in &report.by_target {
            let s = sum.entry(target.clone()).or_default();
            s.0 += idle;
            s.1 += h2;
        }
    }
    let mut out: Vec<_> = sum.into_iter().collect();
    out.sort();
    out
}
