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

/// A problem reading YAML text with [`parse_yaml`]: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct YamlProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Reads one YAML (or JSON) document into a JSON value exactly as configuration files are
/// read (YAML 1.2 core schema, so `on` and `yes` stay strings; aliases bounded; duplicate
/// keys and second documents refused), so entity files, imports and exports mean what the
/// configuration means. Nothing is substituted or validated.
pub fn parse_yaml(text: &str) -> Result<Value, YamlProblem> {
    read_yaml(text, false)
}

/// [`parse_yaml`] for documents written for other tools (OpenAPI), where numbers and
/// booleans are common as mapping keys (`200:`): they become their text.
pub fn parse_yaml_text_keys(text: &str) -> Result<Value, YamlProblem> {
    read_yaml(text, true)
}

fn read_yaml(text: &str, text_keys: bool) -> Result<Value, YamlProblem> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let problem = |e: yaml::YamlError| YamlProblem {
        line: e.pos.line,
        column: e.pos.column,
        message: if e.path.is_empty() {
            e.message
        } else {
            format!("{}: {}", e.path, e.message)
        },
    };
    let doc = yaml::parse_with(text, text_keys).map_err(problem)?;
    match doc.errors.into_iter().next() {
        Some(e) => Err(problem(e)),
        None => Ok(doc.value),
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
