//! Turnpike's configuration: the YAML model, loading with `${VAR}` substitution, and
//! validation that reports every problem with its file, line and column.
//!
//! The proxy compiles a validated [`Config`] into its runtime snapshot; nothing here knows
//! about sockets or requests.
//!
//! Loading runs in phases that each report all they find: YAML parsing (with positions),
//! `${VAR}` substitution, deserialization section by section and item by item, then
//! semantic validation. Only YAML syntax errors stop early, since nothing after them can
//! be trusted.

pub mod certificate;
mod de;
mod env;
pub mod error;
mod lexical;
pub mod model;
mod path;
mod problem;
pub mod units;
mod validate;
mod yaml;

use std::path::Path;

use serde_json::Value;

pub use error::{ConfigError, ConfigErrors};
pub use model::Config;

/// Reads, substitutes (from the process environment), deserializes and validates the
/// configuration file at `path`.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigErrors::Io {
        file: path.to_owned(),
        source,
    })?;
    load_str(&text, path, &|name| std::env::var(name).ok())
}

/// Loads configuration `text`; `file` is only used in error messages, and `env` supplies
/// the values of `${VAR}` references.
pub fn load_str(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let located = |e: yaml::YamlError| ConfigError {
        file: file.to_owned(),
        line: e.pos.line,
        column: e.pos.column,
        path: e.path,
        message: e.message,
    };
    let doc = yaml::parse(text).map_err(|e| ConfigErrors::Invalid(vec![located(e)]))?;
    let mut value = doc.value;
    let mut problems = env::substitute(&mut value, &doc.index, env);
    // A value whose substitution failed is still the raw `${...}` text; checking it would
    // only repeat the same problem in other words.
    let unsubstituted: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
    let mut later = Vec::new();
    let parsed = de::deserialize(&value, &mut later);
    if let Some(parsed) = &parsed {
        later.extend(validate::validate(parsed, &doc.index));
    }
    later.retain(|p| !unsubstituted.iter().any(|u| path::is_within(&p.path, u)));
    problems.extend(later);
    let mut errors: Vec<ConfigError> = doc.errors.into_iter().map(located).collect();
    errors.extend(problem::locate(problems, &doc.index, file));
    match parsed {
        Some(parsed) if errors.is_empty() => Ok(parsed.config),
        _ => {
            // File order, so the list reads like the file does.
            errors.sort_by_key(|e| (e.line, e.column));
            errors.dedup();
            Err(ConfigErrors::Invalid(errors))
        }
    }
}

/// Deserializes and validates an already-parsed document with the same phases and messages
/// as [`load_str`], for configuration that arrives as JSON (the admin API checks a candidate
/// entity by merging it into the effective document and loading that).
///
/// Strings are taken literally: `${VAR}` references are not substituted, since a document
/// built by a program has no environment of its own. Nothing has a position, so every error
/// has line and column 0 and `origin` as its file; its `path` (`routes[3].upstream`) says
/// where the problem is.
pub fn load_value(value: &Value, origin: &Path) -> Result<Config, ConfigErrors> {
    let index = yaml::PathIndex::default();
    let mut problems = Vec::new();
    let parsed = de::deserialize(value, &mut problems);
    if let Some(parsed) = &parsed {
        problems.extend(validate::validate(parsed, &index));
    }
    match parsed {
        Some(parsed) if problems.is_empty() => Ok(parsed.config),
        _ => {
            let mut errors: Vec<ConfigError> = Vec::with_capacity(problems.len());
            for p in problems {
                let error = ConfigError {
                    file: origin.to_owned(),
                    line: 0,
                    column: 0,
                    path: p.path,
                    message: p.message,
                };
                // Discovery order is document order here; only drop exact repeats.
                if !errors.contains(&error) {
                    errors.push(error);
                }
            }
            Err(ConfigErrors::Invalid(errors))
        }
    }
}
