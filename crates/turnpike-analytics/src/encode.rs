//! A small OpenMetrics text writer: families with `# HELP`/`# TYPE`, samples with
//! escaped labels, and the closing `# EOF`.

use std::fmt::{Display, Write};

use crate::histogram::{BOUNDS_LABEL, Totals};

/// The content type of what [`Encoder::finish`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Metric kinds, as written in `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Info,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Info => "info",
        }
    }
}

/// Builds one exposition.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

impl Encoder {
    pub fn new() -> Self {
        Self {
            out: String::with_capacity(16 * 1024),
        }
    }

    /// Starts a family. `name` has no `_total` suffix: counters' samples add it.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        let _ = writeln!(self.out, "# HELP {name} {help}");
    }

    /// One sample line: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A counter sample (`name_total`).
    pub fn counter(&mut self, family: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(family);
        self.out.push_str("_total");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A histogram's `_bucket` lines (cumulative, with `+Inf`), `_sum` and `_count`.
    pub fn histogram(&mut self, family: &str, labels: &[(&str, &str)], h: &Totals) {
        let mut cumulative = 0;
        let les = BOUNDS_LABEL.iter().copied().chain(std::iter::once("+Inf"));
        for (le, n) in les.zip(h.buckets) {
            cumulative += n;
            let _ = write!(self.out, "{family}_bucket");
            self.labels(labels, Some(le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{family}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", h.sum_us as f64 / 1e6);
        let _ = write!(self.out, "{family}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {cumulative}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let all = labels.iter().copied().chain(le.map(|v| ("le", v)));
        for (i, (k, v)) in all.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape(v, &mut self.out);
            self.out.push('"');
        }
        self.out.push('}');
    }

    /// The exposition, closed with `# EOF`.
    pub fn finish(mut self) -> String {
        self.out.push_str("# EOF\n");
        self.out
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_histograms_cumulative() {
        let mut e = Encoder::new();
        e.family("t", Kind::Counter, "help");
        e.counter("t", &[("a", "x\"y\\z\nw")], 3);
        let mut h = Totals::default();
        h.buckets[0] = 1;
        h.buckets[2] = 2;
        h.sum_us = 1_500_000;
        e.histogram("h", &[], &h);
        let s = e.finish();
        assert!(s.contains("t_total{a=\"x\\\"y\\\\z\\nw\"} 3\n"), "{s}");
        assert!(s.contains("h_bucket{le=\"0.0005\"} 1\n"), "{s}");
        assert!(s.contains("h_bucket{le=\"0.001\"} 1\n"), "{s}");
        assert!(s.contains("h_bucket{le=\"0.0025\"} 3\n"), "{s}");
        assert!(
            s.contains("h_bucket{le=\"+Inf\"} 3\nh_sum 1.5\nh_count 3\n"),
            "{s}"
        );
        assert!(s.ends_with("# EOF\n"));
    }
}
