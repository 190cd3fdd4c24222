//! The values the store takes and returns: records, pages, audit entries, admin tokens.
//!
//! They derive `Serialize` so the admin API can return them as they are.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, StoreError};

/// The most rows one `list` or `audit` call returns.
pub const MAX_LIMIT: u32 = 1000;

/// One entity: a JSON document keyed by `(kind, name)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub kind: String,
    pub name: String,
    pub doc: Value,
    /// Starts at 1 and grows by one on every update: the admin API's ETag.
    pub revision: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

/// Which page of one kind's entities `list` returns, in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// Cursor: names strictly after this one (the previous page's `next`).
    pub after: Option<String>,
    /// Only names starting with this.
    pub prefix: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            limit: 100,
            after: None,
            prefix: None,
        }
    }
}

/// One page of entities; `next` is the cursor for the following page, `None` on the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub items: Vec<Record>,
    pub next: Option<String>,
}

/// Which audit entries to return, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// Cursor: entries with a smaller id than this (the last id of the previous page).
    pub before_id: Option<i64>,
    pub kind: Option<String>,
    pub name: Option<String>,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            limit: 100,
            before_id: None,
            kind: None,
            name: None,
        }
    }
}

/// One audited write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339, UTC.
    pub at: String,
    pub actor: String,
    /// `create`, `update`, `delete`; for admin tokens also `revoke`.
    pub action: String,
    /// The entity kind, or [`TOKEN_KIND`] for admin tokens.
    pub kind: String,
    pub name: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The audit log's kind for admin-token writes (their audit documents leave out the hash).
pub const TOKEN_KIND: &str = "admin_token";

/// An admin token to store; `hash` is derived from the secret by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub role: String,
    pub hash: String,
}

/// A stored admin token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub hash: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub revoked: bool,
}

impl TokenRow {
    /// What the audit log keeps of a token: everything but the hash.
    pub(crate) fn audit_doc(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at,
            "revoked": self.revoked,
        })
    }
}

pub(crate) fn check_limit(limit: u32) -> Result<i64> {
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(i64::from(limit))
    } else {
        Err(StoreError::Invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}, not {limit}"
        )))
    }
}

/// Now, as the RFC 3339 UTC text the store keeps (microseconds: both backends sort it as text).
pub(crate) fn now() -> String {
    let now = jiff::Timestamp::now();
    format!("{now:.6}")
}

pub(crate) fn parse_doc(text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Unavailable(format!("stored document is not JSON: {e}")))
}

pub(crate) fn doc_text(doc: &Value) -> String {
    // A `Value` always serialises; the fallback only keeps this free of `expect`.
    serde_json::to_string(doc).unwrap_or_else(|_| "null".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_rfc3339_utc_with_micros() {
        let t = now();
        assert!(t.ends_with('Z'), "{t}");
        assert_eq!(t.len(), "2026-01-01T00:00:00.000000Z".len(), "{t}");
        assert!(t.parse::<jiff::Timestamp>().is_ok());
    }

    #[test]
    fn limits() {
        assert!(check_limit(0).is_err());
        assert!(check_limit(1001).is_err());
        assert_eq!(check_limit(1000).ok(), Some(1000));
    }
}
