//! Member lookup for the driver: the central directory when configured, the local member
//! cache (the store's `member_cache`, through its handle) when it cannot answer, and the
//! per-fleet HMAC as the badge's only identity outside this process.

use std::os::unix::fs::OpenOptionsExt;

use anyhow::Context;

use super::driver::Directory;
use jarvis_badge::{BadgeHasher, MemberLookup};
use jarvis_config::secrets::Secret;
use jarvis_core::badge::{
    Badge, DirectoryAnswer, DirectoryError, MemberCacheStore, MemberDirectory,
};
use jarvis_core::session;
use jarvis_sync::conn::CentralTarget;
use jarvis_sync::members::CentralDirectory;

/// Where members come from: central's lookup function, or nobody on a standalone kiosk
/// (no `central.url`), where every badge is unknown and `badge.unknown_member` decides
/// (guest conversation or the front desk).
pub enum Members {
    Central(Box<CentralDirectory>),
    Standalone,
    /// Central is configured but unusable (e.g. an unreadable password file): only cached
    /// members are recognised, and every lookup says why.
    Misconfigured(String),
}

impl Members {
    pub fn from_config(cfg: &jarvis_config::Config) -> Members {
        match CentralTarget::from_config(&cfg.central, &cfg.kiosk.id) {
            Ok(Some(target)) => Members::Central(Box::new(CentralDirectory::new(target))),
            Ok(None) => Members::Standalone,
            Err(e) => {
                tracing::error!(error = %e, "central member lookup unavailable");
                Members::Misconfigured(e.to_string())
            }
        }
    }
}

impl MemberDirectory for Members {
    async fn lookup(&self, badge: &Badge) -> Result<DirectoryAnswer, DirectoryError> {
        match self {
            Members::Central(c) => c.lookup(badge).await,
            Members::Standalone => Ok(DirectoryAnswer::NotFound),
            Members::Misconfigured(why) => Err(DirectoryError::Failed(why.clone())),
        }
    }
}

/// The badge module's cached lookup, answering in the core's terms.
pub struct CachedDirectory<D: MemberDirectory, S: MemberCacheStore>(pub MemberLookup<D, S>);

impl<D: MemberDirectory + 'static, S: MemberCacheStore + 'static> Directory
    for CachedDirectory<D, S>
{
    async fn resolve(&self, badge: Badge, now_ms: i64) -> session::BadgeLookup {
        match self.0.lookup(&badge, now_ms).await {
            Ok(outcome) => match outcome.lookup {
                DirectoryAnswer::Found(m) => session::BadgeLookup::Found(m),
                DirectoryAnswer::NotFound => session::BadgeLookup::Unknown {
                    badge_hash: outcome.hash.to_hex(),
                },
            },
            Err(e) => session::BadgeLookup::Failed {
                reason: e.to_string(),
            },
        }
    }

    fn key(&self, badge: &Badge) -> String {
        self.0.hasher().hash(badge).to_hex()
    }
}

/// The per-fleet key from `badge.hash_key_file`, or else a per-kiosk key kept next to the
/// store (created once, mode 600): unknown badges are still never stored raw, but their
/// hashes only match within this kiosk.
pub fn badge_hasher(cfg: &jarvis_config::Config) -> anyhow::Result<BadgeHasher> {
    if cfg.badge.hash_key_file.is_some() {
        return BadgeHasher::from_config(&cfg.badge).context("badge.hash_key_file");
    }
    let path = jarvis_badge::hash::per_kiosk_key_path(&cfg.storage.path);
    if !path.exists() {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| {
            anyhow::anyhow!("no system randomness for a per-kiosk badge hash key: {e}")
        })?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut file, hex::encode(key).as_bytes())?;
        tracing::warn!(
            path = %path.display(),
            "badge.hash_key_file is not set: created a per-kiosk key; set a per-fleet key so \
             unknown-badge hashes match across kiosks"
        );
    }
    let key =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    BadgeHasher::new(&Secret::new(key.trim())).context("the per-kiosk badge hash key")
}
