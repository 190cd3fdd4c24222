//! The keys file that `turnpike keys ...` manages: API key hashes with their consumers,
//! kept apart from the hand-written config so the CLI never rewrites a user's comments.
//!
//! Writes go to a temporary file in the same directory, then rename over the old one,
//! so a crash or a concurrent reader never sees half a file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use turnpike_config::model::ApiKey;

use crate::key_auth::StoredKey;

#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    #[error("keys file {file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("keys file {file}: {message}")]
    Invalid { file: PathBuf, message: String },
}

/// One key and the consumer it belongs to.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileKey {
    pub consumer: String,
    #[serde(flatten)]
    pub key: ApiKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    #[serde(default)]
    pub keys: Vec<FileKey>,
}

impl KeysFile {
    pub fn stored(&self) -> impl Iterator<Item = StoredKey<'_>> {
        self.keys.iter().map(|k| StoredKey {
            consumer: &k.consumer,
            key: &k.key,
        })
    }
}

/// Reads the keys file; a file that does not exist yet holds no keys.
pub fn read_or_empty(path: &Path) -> Result<KeysFile, KeysFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeysFile::default()),
        Err(source) => {
            return Err(KeysFileError::Io {
                file: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_str(&text).map_err(|e| KeysFileError::Invalid {
        file: path.to_owned(),
        message: format!("line {}, column {}: {e}", e.line(), e.column()),
    })
}

/// Replaces the keys file atomically.
pub fn write(path: &Path, file: &KeysFile) -> Result<(), KeysFileError> {
    let io = |source| KeysFileError::Io {
        file: path.to_owned(),
        source,
    };
    let mut text = serde_json::to_string_pretty(file).map_err(|e| KeysFileError::Invalid {
        file: path.to_owned(),
        message: e.to_string(),
    })?;
    text.push('\n');
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A fresh, unguessable name opened with `create_new`: in a shared directory nobody
    // can plant a symlink where the temporary file will be.
    let tmp = dir.join(format!(".{name}.tmp-{:016x}", random_u64()));
    if let Err(source) = write_private(&tmp, text.as_bytes()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(source));
    }
    std::fs::rename(&tmp, path).map_err(io)
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // Without the system RNG the process id still keeps two writers apart.
    match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => u64::from(std::process::id()),
    }
}

/// Creates the file readable by its owner only: the hashes are keyed by a secret, but
/// there is no reason for other local users to read them.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
