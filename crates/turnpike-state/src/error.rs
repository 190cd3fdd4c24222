//! The one error type of this crate: what can go wrong building or asking a counter store.

use std::path::PathBuf;

/// Why a state operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The Redis URL could not be parsed; the only construction-time Redis error
    /// (an unreachable server is retried in the background instead).
    #[error("invalid Redis URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (credentials included only if the caller put them there).
        url: String,
        /// What the driver said about it.
        reason: String,
    },
    /// Redis is down, timed out or in its back-off window, and the caller asked to fail closed.
    #[error("shared state unavailable: Redis did not answer")]
    Unavailable,
    /// The quota file could not be read, parsed or written.
    #[error("quota file {path}: {reason}")]
    QuotaFile {
        /// The file involved (the final path, also when the temporary file failed).
        path: PathBuf,
        /// What went wrong, with its location for parse errors.
        reason: String,
    },
    /// A calendar computation left the supported date range (years -9999..=9999).
    #[error("quota period: {0}")]
    Time(String),
    /// A background task (file write) could not run, e.g. its runtime is shutting down.
    #[error("background task failed: {0}")]
    Task(String),
}
