//! The values the store takes and returns: records, pages, audit entries, admin tokens,
//! usage queries and node heartbeats.
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

/// A usage table: rows per minute, hour or day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Minute,
    Hour,
    Day,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [Self::Minute, Self::Hour, Self::Day];

    /// The period's length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub(crate) fn table(self) -> &'static str {
        match self {
            Self::Minute => "usage_minute",
            Self::Hour => "usage_hour",
            Self::Day => "usage_day",
        }
    }

    /// The resolution this one is rolled into.
    pub fn coarser(self) -> Option<Resolution> {
        match self {
            Self::Minute => Some(Self::Hour),
            Self::Hour => Some(Self::Day),
            Self::Day => None,
        }
    }

    /// The start of the period `t` (Unix seconds, UTC) is in.
    pub fn bucket_of(self, t: i64) -> i64 {
        t - t.rem_euclid(self.seconds())
    }
}

/// Which usage rows to read: one table, `[from, to)` in Unix seconds, optional filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub resolution: Resolution,
    pub from: i64,
    pub to: i64,
    pub route: Option<String>,
    pub service: Option<String>,
    /// `""` selects requests without a consumer.
    pub consumer: Option<String>,
    /// 1 to 5.
    pub status_class: Option<u8>,
}

/// A gateway node's heartbeat. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRow {
    pub id: String,
    /// Turnpike's version on that node.
    pub version: String,
    pub started_at: i64,
    pub seen_at: i64,
    /// The store config version the node had seen.
    pub config_version: i64,
}

/// Counts are `u64` in memory and `BIGINT` in the database.
pub(crate) fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn clamp_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
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

/// Fields of a kind's documents that are secrets the store must keep (a certificate's private
/// key, which the gateway needs to serve TLS) but never copies into the audit log: there
/// they read [`REDACTED`]. The store does not otherwise look inside documents.
pub const AUDIT_REDACTED: &[(&str, &str)] = &[("certificates", "key")];

/// What a redacted field holds in the audit log.
pub const REDACTED: &str = "[redacted]";

/// `doc` as the audit log keeps it: the secret fields of `kind` replaced (see
/// [`AUDIT_REDACTED`]).
pub(crate) fn audit_view(kind: &str, doc: &Value) -> String {
    let mut secret = AUDIT_REDACTED
        .iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, field)| *field)
        .peekable();
    let Some(fields) = doc.as_object().filter(|_| secret.peek().is_some()) else {
        return doc_text(doc);
    };
    let mut shown = fields.clone();
    for field in secret {
        if let Some(value) = shown.get_mut(field) {
            *value = Value::String(REDACTED.to_owned());
        }
    }
    doc_text(&Value::Object(shown))
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
    fn audit_view_hides_secret_fields_only() {
        let doc = serde_json::json!({"name": "c", "cert": "PEM", "key": "SECRET"});
        let shown = audit_view("certificates", &doc);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains(REDACTED) && shown.contains("PEM"), "{shown}");
        assert!(audit_view("routes", &doc).contains("SECRET"));
    }

    #[test]
    fn limits() {
        assert!(check_limit(0).is_err());
        assert!(check_limit(1001).is_err());
        assert_eq!(check_limit(1000).ok(), Some(1000));
    }
}
