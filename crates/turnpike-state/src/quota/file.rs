//! The quota file: JSON counters, read at start and replaced atomically (temp file + rename).
//!
//! ```json
//! {"version": 1, "counters": {"alice|2026-11": {"period": "month", "start": 1793487600, "end": 1796079600, "used": 42}}}
//! ```
//! The key is the quota key, `|`, and the period label, so each period is its own entry.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::StateError;

/// File format version; bump on incompatible changes.
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuotaFile {
    pub(crate) version: u32,
    pub(crate) counters: BTreeMap<String, StoredCounter>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredCounter {
    pub(crate) period: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) used: u64,
}

impl QuotaFile {
    pub(crate) fn new(counters: BTreeMap<String, StoredCounter>) -> Self {
        Self {
            version: VERSION,
            counters,
        }
    }
}

fn file_err(path: &Path, reason: impl ToString) -> StateError {
    StateError::QuotaFile {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads `path`; a missing file is an empty one, anything unreadable an error naming it.
pub(crate) fn load(path: &Path) -> Result<Option<QuotaFile>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_err(path, e)),
    };
    let file: QuotaFile = serde_json::from_slice(&bytes).map_err(|e| file_err(path, e))?;
    if file.version != VERSION {
        return Err(file_err(
            path,
            format!("unsupported version {} (expected {VERSION})", file.version),
        ));
    }
    Ok(Some(file))
}

/// Writes `bytes` to `path` atomically: a crash leaves the old file or the new one, whole.
pub(crate) fn store(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = temp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        // Data must be on disk before the rename makes it the file.
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        file_err(path, e)
    })
}

/// `<file>.tmp.<pid>` beside the file, so the rename stays on one file system.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}
