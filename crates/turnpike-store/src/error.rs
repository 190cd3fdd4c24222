//! The store's errors, and how database errors map onto them.
//!
//! Messages never carry the connection URL: the caller may log them or show them to an admin
//! API client, and a PostgreSQL URL can hold a password.

/// What can go wrong in a store operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No entity (or token) with this key.
    #[error("{kind} {name:?} not found")]
    NotFound { kind: String, name: String },
    /// An entity (or token) with this key exists already.
    #[error("{kind} {name:?} already exists")]
    Exists { kind: String, name: String },
    /// The caller's `If-Match` revision is not the current one.
    #[error("revision mismatch: the current revision is {current}")]
    RevisionMismatch { current: i64 },
    /// The request itself is unusable (a limit out of range, an empty name, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The database cannot be reached or failed; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A migration failed; the database is left at the last version that applied.
    #[error("store migration failed: {0}")]
    Migration(String),
    /// The database was migrated by a newer Turnpike; refusing beats corrupting it.
    #[error(
        "the store's schema is version {found}, newer than this binary knows ({known}); \
         run a Turnpike at least as new as the one that migrated it"
    )]
    SchemaTooNew { found: i64, known: i64 },
}

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

/// Strips a secret (the URL password) from a message, however the driver formatted it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    secret: Option<String>,
}

impl Redactor {
    pub(crate) fn new(secret: Option<String>) -> Self {
        Self {
            secret: secret.filter(|s| !s.is_empty()),
        }
    }

    pub(crate) fn clean(&self, message: String) -> String {
        match &self.secret {
            Some(secret) => message.replace(secret.as_str(), "***"),
            None => message,
        }
    }

    /// Maps a driver error that is not one of the expected constraint cases.
    pub(crate) fn error(&self, err: sqlx::Error) -> StoreError {
        if let Some(db) = err.as_database_error() {
            use sqlx::error::ErrorKind;
            // Constraint failures come from the request's data, not from the database's health.
            if matches!(
                db.kind(),
                ErrorKind::CheckViolation
                    | ErrorKind::NotNullViolation
                    | ErrorKind::ForeignKeyViolation
            ) {
                return StoreError::Invalid(self.clean(db.message().to_owned()));
            }
        }
        StoreError::Unavailable(self.clean(err.to_string()))
    }
}

/// True when the error is a primary-key or unique conflict.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_hides_the_password() {
        let r = Redactor::new(Some("hunter2".into()));
        assert_eq!(
            r.clean("connect postgres://u:hunter2@h failed".into()),
            "connect postgres://u:***@h failed"
        );
        assert_eq!(Redactor::new(Some(String::new())).clean("x".into()), "x");
    }
}
