//! What the member cache keeps, and the port it is kept through: the badge's keyed hash
//! (never the badge itself), the member as last seen, and [`MemberCacheStore`], which the
//! local SQLite store implements.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::badge::member::Member;

/// HMAC-SHA256 of a badge: the member cache key, and the id of an unknown badge in events.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BadgeHash([u8; 32]);

impl BadgeHash {
    /// Wraps a computed HMAC-SHA256 (see the badge hasher).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        BadgeHash(bytes)
    }

    /// Lowercase hex, the form stored locally and sent to central (`badge_hash`).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the stored hex form back (64 hex digits).
    pub fn from_hex(text: &str) -> Result<Self, BadgeHashParseError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| BadgeHashParseError)?;
        Ok(BadgeHash(out))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for BadgeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BadgeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BadgeHash({}…)", &self.to_hex()[..12])
    }
}

/// A stored badge hash that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a badge hash: expected 64 hex digits")]
pub struct BadgeHashParseError;

/// A member as last seen by the directory, with when (Unix ms, wall clock: it survives
/// restarts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedMember {
    pub member: Member,
    pub fetched_at_ms: i64,
}

/// A cache persistence failure. Never fails a lookup: it is logged and the lookup goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("member cache store: {0}")]
pub struct CacheStoreError(pub String);

/// Where cached members live between restarts. The daemon uses the local store
/// (`member_cache_get/put/evict`); tests use an in-memory map. Calls are short and
/// synchronous (a local SQLite row).
pub trait MemberCacheStore: Send + Sync {
    fn get(&self, key: &BadgeHash) -> Result<Option<CachedMember>, CacheStoreError>;
    /// Inserts or replaces, then keeps at most `max_entries`, dropping the oldest
    /// `fetched_at_ms` first.
    fn put(
        &self,
        key: &BadgeHash,
        entry: &CachedMember,
        max_entries: usize,
    ) -> Result<(), CacheStoreError>;
    fn evict(&self, key: &BadgeHash) -> Result<(), CacheStoreError>;
}
