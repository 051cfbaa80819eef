//! Member lookups cached for when central is unreachable. Keys are HMAC-SHA256 digests of the
//! badge (64 hex digits), checked here so a raw badge number can never reach the disk.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::error::{StoreError, to_i64};
use super::{Store, StoreHandle};
use jarvis_core::badge::cached::{BadgeHash, CacheStoreError, CachedMember, MemberCacheStore};

/// How long a member lookup waits for a cache read before going on without it.
const CACHE_READ_TIMEOUT: Duration = Duration::from_millis(250);

/// True for exactly 64 hex digits: the hex form of an HMAC-SHA256.
fn is_hmac_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if is_hmac_key(key) {
        Ok(())
    } else {
        Err(StoreError::InvalidCacheKey {
            len: key.chars().count(),
        })
    }
}

impl Store {
    /// The cached member JSON for this badge HMAC and when it was fetched.
    pub fn member_cache_get(&self, key: &str) -> Result<Option<(String, i64)>, StoreError> {
        check_key(key)?;
        Ok(self
            .conn
            .prepare_cached("SELECT member, fetched_at_ms FROM member_cache WHERE key = ?1")?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Stores (or refreshes) a lookup result. `member_json` must be valid JSON.
    pub fn member_cache_put(
        &mut self,
        key: &str,
        member_json: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        check_key(key)?;
        serde_json::from_str::<serde::de::IgnoredAny>(member_json)
            .map_err(|e| StoreError::InvalidMemberJson(e.to_string()))?;
        self.conn
            .prepare_cached(
                "INSERT INTO member_cache (key, member, fetched_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE
                 SET member = excluded.member, fetched_at_ms = excluded.fetched_at_ms",
            )?
            .execute(params![key, member_json, now_ms])?;
        Ok(())
    }

    /// Forgets one badge (the directory said it is no longer a member); true if it was cached.
    pub fn member_cache_remove(&mut self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        Ok(self
            .conn
            .execute("DELETE FROM member_cache WHERE key = ?1", [key])?
            > 0)
    }

    /// Keeps the `max_entries` most recently fetched entries (`badge.member_cache_max`),
    /// deleting the oldest; returns how many were deleted.
    pub fn member_cache_evict(&mut self, max_entries: usize) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM member_cache WHERE key IN (
                 SELECT key FROM member_cache
                 ORDER BY fetched_at_ms DESC, key DESC LIMIT -1 OFFSET ?1)",
            [to_i64("badge.member_cache_max", max_entries as u64)?],
        )?)
    }
}

/// The daemon's member cache: the badge module's sync trait over the store thread. Reads wait
/// at most `CACHE_READ_TIMEOUT`; writes are queued and never wait (a cache write must not
/// delay a greeting).
impl MemberCacheStore for StoreHandle {
    fn get(&self, key: &BadgeHash) -> Result<Option<CachedMember>, CacheStoreError> {
        let key = key.to_hex();
        let row = self
            .call_blocking(CACHE_READ_TIMEOUT, move |s| s.member_cache_get(&key))
            .map_err(|e| CacheStoreError(e.to_string()))?;
        row.map(|(json, fetched_at_ms)| {
            serde_json::from_str(&json)
                .map(|member| CachedMember {
                    member,
                    fetched_at_ms,
                })
                .map_err(|e| CacheStoreError(format!("cached member does not decode: {e}")))
        })
        .transpose()
    }

    fn put(
        &self,
        key: &BadgeHash,
        entry: &CachedMember,
        max_entries: usize,
    ) -> Result<(), CacheStoreError> {
        let key = key.to_hex();
        let json = serde_json::to_string(&entry.member)
            .map_err(|e| CacheStoreError(format!("member does not encode: {e}")))?;
        let at = entry.fetched_at_ms;
        self.submit("member cache write", move |s| {
            s.member_cache_put(&key, &json, at)?;
            s.member_cache_evict(max_entries.max(1))?;
            Ok(())
        })
        .map_err(|e| CacheStoreError(e.to_string()))
    }

    fn evict(&self, key: &BadgeHash) -> Result<(), CacheStoreError> {
        let key = key.to_hex();
        self.submit("member cache eviction", move |s| {
            s.member_cache_remove(&key).map(|_| ())
        })
        .map_err(|e| CacheStoreError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hmac_hex_digests_are_keys() {
        assert!(is_hmac_key(&"a1".repeat(32)));
        assert!(is_hmac_key(&"AB".repeat(32)));
        assert!(!is_hmac_key("0123456789"), "a raw badge");
        assert!(!is_hmac_key(&"g".repeat(64)));
        assert!(!is_hmac_key(&"a".repeat(63)));
    }
}
