//! Whether the gateway serves what the file and the store together say, for `/readyz` and
//! `/metrics`.
//!
//! The change feed's health says whether the store answers; this says whether its entities
//! made it into the running configuration. They differ when the store answers but the merged
//! configuration was refused (a store route to an upstream the file no longer defines), and
//! when the node started while the store was down and serves its file alone. Both leave a
//! node that serves correctly but not what operators wrote, so both make it not ready.

use std::sync::{Mutex, PoisonError};

use turnpike_analytics::Encoder;
use turnpike_analytics::encode::Kind;

/// How the running configuration relates to the file and the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConfigStatus {
    /// The last rebuild applied the file plus the store (or none was needed).
    #[default]
    Applied,
    /// The store's entities have not been applied since start-up, because the store could
    /// not be read; the gateway serves the configuration file alone. Why, in words.
    FileOnly(String),
    /// The last rebuild was refused and the previous configuration keeps serving. Why, in
    /// words (the first problem and how many there are).
    Rejected(String),
}

impl ConfigStatus {
    /// The `/readyz` reason, when there is one.
    pub fn reason(&self) -> Option<String> {
        match self {
            Self::Applied => None,
            Self::FileOnly(why) => Some(format!(
                "serving the configuration file alone, the store's entities are not applied: {why}"
            )),
            Self::Rejected(why) => Some(format!(
                "store configuration rejected, still serving the previous one: {why}"
            )),
        }
    }
}

/// The status, shared by the follower (which sets it) and the health endpoints.
#[derive(Debug, Default)]
pub(crate) struct Applied(Mutex<ConfigStatus>);

impl Applied {
    pub(crate) fn get(&self) -> ConfigStatus {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the status; returns the previous one.
    pub(crate) fn set(&self, status: ConfigStatus) -> ConfigStatus {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *slot, status)
    }
}

/// `reason (N problems)` from a multi-line rejection: the first line names the first
/// problem with its place; a readiness reason should stay one line.
pub(crate) fn summary(problems: &str) -> String {
    let lines: Vec<&str> = problems
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // The config errors end with a count line ("2 errors"); keep the problems only.
    let problems: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !is_count_line(l))
        .collect();
    match problems.as_slice() {
        [] => "no details".to_owned(),
        [one] => (*one).to_owned(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

fn is_count_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    matches!(
        (
            words.next().map(|n| n.parse::<u64>().is_ok()),
            words.next(),
            words.next()
        ),
        (
            Some(true),
            Some("error" | "errors" | "problem" | "problems"),
            None
        )
    )
}

/// Adds `turnpike_store_config_rejected` to a rendered exposition, before its `# EOF`.
pub(crate) fn add_metrics(rendered: String, status: &ConfigStatus) -> String {
    let mut e = Encoder::new();
    let name = "turnpike_store_config_rejected";
    e.family(
        name,
        Kind::Gauge,
        "1 while the file plus the store's entities are refused and the previous configuration keeps serving.",
    );
    e.sample(
        name,
        &[],
        u8::from(matches!(status, ConfigStatus::Rejected(_))),
    );
    let ours = e.finish();
    let ours = ours.strip_suffix("# EOF\n").unwrap_or(&ours);
    match rendered.strip_suffix("# EOF\n") {
        Some(body) => format!("{body}{ours}# EOF\n"),
        None => format!("{rendered}{ours}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_keep_the_first_problem_and_count_the_rest() {
        let text = "routes[1].upstream: unknown upstream `gone`\nroutes[2].upstream: unknown upstream `gone`\n2 errors\n";
        assert_eq!(
            summary(text),
            "routes[1].upstream: unknown upstream `gone` (and 1 more)"
        );
        assert_eq!(summary("one thing\n1 error\n"), "one thing");
    }

    #[test]
    fn the_gauge_goes_before_eof() {
        let out = add_metrics(
            "# TYPE a gauge\na 1\n# EOF\n".to_owned(),
            &ConfigStatus::Rejected("x".into()),
        );
        assert!(
            out.ends_with("turnpike_store_config_rejected 1\n# EOF\n"),
            "{out}"
        );
        assert_eq!(out.matches("# EOF").count(), 1);
    }
}
