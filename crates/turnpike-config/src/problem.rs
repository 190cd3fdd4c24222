//! Problems found by the later phases (substitution, deserialization, validation), which
//! know a path but not a position; [`locate`] turns them into located [`ConfigError`]s.

use std::path::Path;

use crate::error::ConfigError;
use crate::yaml::PathIndex;

/// A problem with the setting at `path`, before it has a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) path: String,
    pub(crate) message: String,
    /// Point at the key rather than the value (unknown fields: the key is the mistake).
    pub(crate) at_key: bool,
}

impl Problem {
    pub(crate) fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            at_key: false,
        }
    }

    pub(crate) fn at_key(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            at_key: true,
        }
    }
}

/// Gives each problem its position.
pub(crate) fn locate(problems: Vec<Problem>, index: &PathIndex, file: &Path) -> Vec<ConfigError> {
    problems
        .into_iter()
        .map(|p| {
            let pos = if p.at_key {
                index.key_pos(&p.path)
            } else {
                index.value_pos(&p.path)
            };
            ConfigError {
                file: file.to_owned(),
                line: pos.line,
                column: pos.column,
                path: p.path,
                message: p.message,
            }
        })
        .collect()
}
