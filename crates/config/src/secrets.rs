//! Secrets come from files, never from the config text, and never reach a log line.
//!
//! A `*_file` value that is a bare file name (no `/`) is looked up in `$CREDENTIALS_DIRECTORY`
//! when systemd's `LoadCredential=` provides one, so the same config works on a technician's
//! laptop (absolute paths) and under the hardened unit (credential names).

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The path of a file that holds a secret, as written in the config.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretPath(pub PathBuf);

impl fmt::Debug for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretPath({})", self.0.display())
    }
}

/// Why a secret could not be read. Names the key and the file so the fix is obvious.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "{key}: cannot read secret file {path}: {source} (create it with mode 600, owned by the service user)"
    )]
    Read {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: secret file {path} is empty")]
    Empty { key: String, path: PathBuf },
}

impl SecretPath {
    /// Where the file really is: bare names resolve inside `$CREDENTIALS_DIRECTORY` when set.
    pub fn resolve(&self, credentials_dir: Option<&Path>) -> PathBuf {
        let is_bare = self.0.components().count() == 1 && !self.0.is_absolute();
        match credentials_dir {
            Some(dir) if is_bare => dir.join(&self.0),
            _ => self.0.clone(),
        }
    }

    /// Reads the secret (trimmed), resolving against the process's `$CREDENTIALS_DIRECTORY`.
    pub fn read(&self, key: &str) -> Result<Secret, SecretError> {
        let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        self.read_in(key, creds.as_deref())
    }

    pub fn read_in(
        &self,
        key: &str,
        credentials_dir: Option<&Path>,
    ) -> Result<Secret, SecretError> {
        let path = self.resolve(credentials_dir);
        let text = std::fs::read_to_string(&path).map_err(|source| SecretError::Read {
            key: key.into(),
            path: path.clone(),
            source,
        })?;
        let value = text.trim().to_owned();
        if value.is_empty() {
            return Err(SecretError::Empty {
                key: key.into(),
                path,
            });
        }
        Ok(Secret(value))
    }

    /// True when group or others may read the file: worth a warning in `doctor`.
    pub fn too_open(&self, credentials_dir: Option<&Path>) -> bool {
        std::fs::metadata(self.resolve(credentials_dir))
            .map(|m| m.permissions().mode() & 0o077 != 0)
            .unwrap_or(false)
    }
}

/// A secret value. Debug and Display print `[redacted]`; use [`Secret::expose`] at the one
/// place that needs the value (an HTTP header, a connection config).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_resolve_in_credentials_directory() {
        let p = SecretPath(PathBuf::from("openai-key"));
        assert_eq!(
            p.resolve(Some(Path::new("/run/creds"))),
            PathBuf::from("/run/creds/openai-key")
        );
        assert_eq!(p.resolve(None), PathBuf::from("openai-key"));
        let abs = SecretPath(PathBuf::from("/etc/jarvis-kiosk/key"));
        assert_eq!(
            abs.resolve(Some(Path::new("/run/creds"))),
            PathBuf::from("/etc/jarvis-kiosk/key")
        );
    }

    #[test]
    fn reads_trims_and_redacts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), "sk-test-123\n").unwrap();
        let s = SecretPath(PathBuf::from("k"))
            .read_in("openai.api_key_file", Some(dir.path()))
            .unwrap();
        assert_eq!(s.expose(), "sk-test-123");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
    }

    #[test]
    fn missing_and_empty_files_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = SecretPath(dir.path().join("nope"))
            .read_in("central.password_file", None)
            .unwrap_err();
        assert!(err.to_string().contains("central.password_file"), "{err}");
        std::fs::write(dir.path().join("empty"), "  \n").unwrap();
        let err = SecretPath(dir.path().join("empty"))
            .read_in("central.password_file", None)
            .unwrap_err();
        assert!(matches!(err, SecretError::Empty { .. }));
    }
}
