//! Keyed hash of a badge: what the kiosk stores and logs instead of the badge.
//!
//! HMAC-SHA256 with a per-fleet key (`badge.hash_key_file`) rather than a bare SHA-256,
//! because badge numbers are short and sequential: an unkeyed hash could be reversed by
//! trying every number. The same key on every kiosk of a fleet lets central correlate an
//! unknown badge across kiosks. The hash is `HMAC-SHA256(key, normalised badge as ASCII)`.

use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use jarvis_config::BadgeConfig;
use jarvis_config::secrets::{Secret, SecretError};
use jarvis_core::badge::cached::BadgeHash;
use jarvis_core::badge::id::Badge;

/// Shortest key accepted: below this the hash is guessable.
pub const MIN_KEY_LEN: usize = 16;

/// Why the badge hash key cannot be used. Each names `badge.hash_key_file` and the fix.
#[derive(Debug, thiserror::Error)]
pub enum BadgeKeyError {
    #[error(
        "badge.hash_key_file is not set: the member cache and unknown-badge records need a per-fleet key \
         (create a file with `openssl rand -hex 32`, mode 600, and set badge.hash_key_file to it)"
    )]
    Missing,
    #[error(transparent)]
    Read(#[from] SecretError),
    #[error(
        "badge.hash_key_file: the key is {len} bytes, at least {MIN_KEY_LEN} are needed \
         (generate one with `openssl rand -hex 32`)"
    )]
    TooShort { len: usize },
}

/// Computes [`BadgeHash`]es. Holds the key; its `Debug` never shows it.
#[derive(Clone)]
pub struct BadgeHasher {
    mac: Hmac<Sha256>,
}

impl BadgeHasher {
    /// A hasher keyed with the secret's bytes (the trimmed file content).
    pub fn new(key: &Secret) -> Result<Self, BadgeKeyError> {
        let bytes = key.expose().as_bytes();
        if bytes.len() < MIN_KEY_LEN {
            return Err(BadgeKeyError::TooShort { len: bytes.len() });
        }
        let mac = Hmac::<Sha256>::new_from_slice(bytes)
            .map_err(|_| BadgeKeyError::TooShort { len: bytes.len() })?;
        Ok(BadgeHasher { mac })
    }

    /// Reads the key named by `badge.hash_key_file` (bare names resolve in
    /// `$CREDENTIALS_DIRECTORY`).
    pub fn from_config(cfg: &BadgeConfig) -> Result<Self, BadgeKeyError> {
        let path = cfg.hash_key_file.as_ref().ok_or(BadgeKeyError::Missing)?;
        let secret = path.read("badge.hash_key_file")?;
        Self::new(&secret)
    }

    pub fn hash(&self, badge: &Badge) -> BadgeHash {
        let digest = self
            .mac
            .clone()
            .chain_update(badge.expose().as_bytes())
            .finalize()
            .into_bytes();
        let mut out = [0u8; 32];
        out.copy_from_slice(&digest);
        BadgeHash::from_bytes(out)
    }
}

/// Where the daemon keeps the key it generates when `badge.hash_key_file` is not set: beside
/// the store, so it lives exactly as long as the hashes made with it.
pub fn per_kiosk_key_path(storage_path: &Path) -> PathBuf {
    storage_path.with_file_name("badge-hash.key")
}

impl fmt::Debug for BadgeHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BadgeHasher([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use jarvis_config::secrets::SecretPath;

    fn badge(s: &str) -> Badge {
        jarvis_config::BadgeConfig::default()
            .frame_rules()
            .normalize(s.as_bytes())
            .unwrap()
    }

    #[test]
    fn matches_an_independent_reference() {
        // Reference computed independently: python3 -c "import hmac,hashlib;
        // print(hmac.new(b'0123456789abcdef0123456789abcdef', b'0012345678', hashlib.sha256).hexdigest())"
        let h = BadgeHasher::new(&Secret::new("0123456789abcdef0123456789abcdef")).unwrap();
        assert_eq!(
            h.hash(&badge("0012345678")).to_hex(),
            "fc4cc20575a20d59962a5d2b70afaab24ba20b69d4ec1678536975a333305cef"
        );
    }

    #[test]
    fn different_keys_and_badges_give_different_hashes() {
        let a = BadgeHasher::new(&Secret::new("key-one-is-long-enough")).unwrap();
        let b = BadgeHasher::new(&Secret::new("key-two-is-long-enough")).unwrap();
        assert_ne!(a.hash(&badge("1234")), b.hash(&badge("1234")));
        assert_ne!(a.hash(&badge("1234")), a.hash(&badge("1235")));
        assert_eq!(a.hash(&badge("1234")), a.hash(&badge("1234")));
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let h = BadgeHasher::new(&Secret::new("0123456789abcdef"))
            .unwrap()
            .hash(&badge("42424242"));
        assert_eq!(BadgeHash::from_hex(&h.to_hex()), Ok(h));
        assert!(BadgeHash::from_hex("zz").is_err());
        assert!(BadgeHash::from_hex(&"0".repeat(63)).is_err());
        assert!(format!("{h:?}").ends_with("…)"));
    }

    #[test]
    fn short_missing_and_unreadable_keys_name_the_config_key() {
        let err = BadgeHasher::new(&Secret::new("short")).unwrap_err();
        assert!(err.to_string().contains("badge.hash_key_file"), "{err}");
        let cfg = BadgeConfig::default();
        let err = BadgeHasher::from_config(&cfg).unwrap_err();
        assert!(matches!(err, BadgeKeyError::Missing));
        assert!(err.to_string().contains("badge.hash_key_file"));
        let dir = tempfile::tempdir().unwrap();
        let cfg = BadgeConfig {
            hash_key_file: Some(SecretPath(dir.path().join("absent"))),
            ..BadgeConfig::default()
        };
        let err = BadgeHasher::from_config(&cfg).unwrap_err();
        assert!(err.to_string().contains("badge.hash_key_file"), "{err}");
    }

    #[test]
    fn reads_the_key_file_and_redacts_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("badge-key");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
        let cfg = BadgeConfig {
            hash_key_file: Some(SecretPath(PathBuf::from(&path))),
            ..BadgeConfig::default()
        };
        let h = BadgeHasher::from_config(&cfg).unwrap();
        assert_eq!(format!("{h:?}"), "BadgeHasher([redacted])");
        let direct = BadgeHasher::new(&Secret::new("0123456789abcdef0123456789abcdef")).unwrap();
        assert_eq!(
            h.hash(&badge("0012345678")),
            direct.hash(&badge("0012345678"))
        );
    }
}
