//! Member lookup with a local cache, so a known member is still recognised when the
//! network is down.
//!
//! The directory is always asked first (with a timeout), so membership changes show at once
//! when central is reachable; the cache answers only when the directory cannot, and only
//! with entries younger than `badge.member_cache_ttl_s`. Entries are keyed by the badge's
//! HMAC ([`BadgeHash`]) and persisted through [`MemberCacheStore`] (the local SQLite store
//! in the daemon), bounded by `badge.member_cache_max`. Raw badges never reach the cache.

use std::time::Duration;

use crate::hash::BadgeHasher;
use jarvis_config::BadgeConfig;
use jarvis_core::badge::cached::{BadgeHash, CachedMember, MemberCacheStore};
use jarvis_core::badge::id::Badge;
use jarvis_core::badge::member::{DirectoryAnswer, DirectoryError, Member, MemberDirectory};

/// Cache limits, from `[badge]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// How old a cached member may be and still answer during an outage.
    pub ttl: Duration,
    pub max_entries: usize,
    /// How long the directory may take before the cache answers instead.
    pub directory_timeout: Duration,
}

impl CachePolicy {
    pub fn from_config(cfg: &BadgeConfig) -> Self {
        CachePolicy {
            ttl: Duration::from_secs(cfg.member_cache_ttl_s),
            max_entries: cfg.member_cache_max,
            directory_timeout: Duration::from_millis(cfg.lookup_timeout_ms),
        }
    }
}

/// Where an answer came from: support wants to know a greeting relied on the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupSource {
    Directory,
    /// The directory failed; this cached entry was `age_ms` old.
    Cache {
        age_ms: i64,
    },
}

/// A precise lookup result for the lifecycle core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupOutcome {
    /// The badge's keyed hash: what events record for an unknown badge.
    pub hash: BadgeHash,
    pub lookup: DirectoryAnswer,
    pub source: LookupSource,
}

/// The directory failed and the cache had no usable entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot identify badge {hash:?}: {cause}, and no cached member younger than badge.member_cache_ttl_s"
)]
pub struct LookupError {
    pub hash: BadgeHash,
    pub cause: DirectoryError,
}

/// What the cache must do after the directory answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheAction {
    Put(CachedMember),
    /// The directory says this badge has no member (any more): forget it.
    Evict,
}

/// Cache update for a directory answer.
pub fn after_answer(lookup: &DirectoryAnswer, now_ms: i64) -> CacheAction {
    match lookup {
        DirectoryAnswer::Found(member) => CacheAction::Put(CachedMember {
            member: member.clone(),
            fetched_at_ms: now_ms,
        }),
        DirectoryAnswer::NotFound => CacheAction::Evict,
    }
}

/// A cached entry usable at `now_ms`, with its age; `None` when absent or too old.
/// An entry stamped in the future (the wall clock was set back) counts as brand new.
pub fn usable(entry: Option<CachedMember>, now_ms: i64, ttl: Duration) -> Option<(Member, i64)> {
    let entry = entry?;
    let age_ms = now_ms.saturating_sub(entry.fetched_at_ms).max(0);
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    (age_ms <= ttl_ms).then_some((entry.member, age_ms))
}

/// The member lookup the lifecycle core calls: directory first, cache on failure.
#[derive(Debug)]
pub struct MemberLookup<D, S> {
    directory: D,
    store: S,
    hasher: BadgeHasher,
    policy: CachePolicy,
}

impl<D: MemberDirectory, S: MemberCacheStore> MemberLookup<D, S> {
    pub fn new(directory: D, store: S, hasher: BadgeHasher, policy: CachePolicy) -> Self {
        MemberLookup {
            directory,
            store,
            hasher,
            policy,
        }
    }

    /// The hasher, for callers that need a badge's hash without a lookup.
    pub fn hasher(&self) -> &BadgeHasher {
        &self.hasher
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Who `badge` belongs to at `now_ms` (Unix ms). `Err` only when the directory failed
    /// and no cached entry is young enough; the error carries the hash for the record.
    pub async fn lookup(&self, badge: &Badge, now_ms: i64) -> Result<LookupOutcome, LookupError> {
        let hash = self.hasher.hash(badge);
        let answer =
            match tokio::time::timeout(self.policy.directory_timeout, self.directory.lookup(badge))
                .await
            {
                Ok(answer) => answer,
                Err(_) => Err(DirectoryError::Unavailable(format!(
                    "no answer within {} ms (badge.lookup_timeout_ms)",
                    self.policy.directory_timeout.as_millis()
                ))),
            };
        match answer {
            Ok(lookup) => {
                let stored = match after_answer(&lookup, now_ms) {
                    CacheAction::Put(entry) => {
                        self.store.put(&hash, &entry, self.policy.max_entries)
                    }
                    CacheAction::Evict => self.store.evict(&hash),
                };
                if let Err(e) = stored {
                    tracing::warn!(badge_hash = ?hash, error = %e, "member cache not updated");
                }
                Ok(LookupOutcome {
                    hash,
                    lookup,
                    source: LookupSource::Directory,
                })
            }
            Err(cause) => {
                let cached = self.store.get(&hash).unwrap_or_else(|e| {
                    tracing::warn!(badge_hash = ?hash, error = %e, "member cache unreadable");
                    None
                });
                match usable(cached, now_ms, self.policy.ttl) {
                    Some((member, age_ms)) => {
                        tracing::info!(
                            badge_hash = ?hash, age_ms, error = %cause,
                            "member directory failed; answered from the member cache"
                        );
                        Ok(LookupOutcome {
                            hash,
                            lookup: DirectoryAnswer::Found(member),
                            source: LookupSource::Cache { age_ms },
                        })
                    }
                    None => Err(LookupError { hash, cause }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A bounded in-process cache store, standing in for the SQLite one.
    #[derive(Debug, Default)]
    pub struct InMemoryCacheStore {
        entries: Mutex<HashMap<BadgeHash, CachedMember>>,
    }

    impl InMemoryCacheStore {
        fn new() -> Self {
            Self::default()
        }

        pub fn len(&self) -> usize {
            self.lock().len()
        }

        pub fn is_empty(&self) -> bool {
            self.lock().is_empty()
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BadgeHash, CachedMember>> {
            // Every update is a single map operation: a poisoned lock holds a consistent map.
            self.entries.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    impl MemberCacheStore for InMemoryCacheStore {
        fn get(&self, key: &BadgeHash) -> Result<Option<CachedMember>, CacheStoreError> {
            Ok(self.lock().get(key).cloned())
        }

        fn put(
            &self,
            key: &BadgeHash,
            entry: &CachedMember,
            max_entries: usize,
        ) -> Result<(), CacheStoreError> {
            let mut map = self.lock();
            map.insert(*key, entry.clone());
            while map.len() > max_entries.max(1) {
                let oldest = map
                    .iter()
                    .min_by_key(|(k, e)| (e.fetched_at_ms, **k))
                    .map(|(k, _)| *k);
                match oldest {
                    Some(k) => map.remove(&k),
                    None => break,
                };
            }
            Ok(())
        }

        fn evict(&self, key: &BadgeHash) -> Result<(), CacheStoreError> {
            self.lock().remove(key);
            Ok(())
        }
    }

    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use jarvis_config::secrets::Secret;
    use jarvis_config::{Charset, LeadingZeros, LetterCase};
    use jarvis_core::badge::cached::CacheStoreError;
    use jarvis_core::badge::frame::{FrameKind, FrameRules};
    use jarvis_core::events::MembershipStatus;

    const TTL: Duration = Duration::from_secs(3600);

    fn badge(s: &str) -> Badge {
        FrameRules {
            framing: FrameKind::Line,
            strip_prefix: String::new(),
            strip_suffix: String::new(),
            charset: Charset::Alphanumeric,
            case: LetterCase::Keep,
            leading_zeros: LeadingZeros::Keep,
            min_len: 1,
            max_len: 32,
            idle_reset: Duration::from_secs(1),
        }
        .normalize(s.as_bytes())
        .unwrap()
    }

    fn member(id: &str) -> Member {
        Member {
            id: id.into(),
            first_name: "Camille".into(),
            language: "fr".into(),
            membership: MembershipStatus::Active,
        }
    }

    fn hasher() -> BadgeHasher {
        BadgeHasher::new(&Secret::new("test-key-0123456789")).unwrap()
    }

    /// A directory scripted per call: what a real one would answer, or an outage.
    struct Scripted {
        answers: Mutex<Vec<Result<DirectoryAnswer, DirectoryError>>>,
        delay: Duration,
        calls: AtomicUsize,
    }

    impl Scripted {
        fn new(answers: Vec<Result<DirectoryAnswer, DirectoryError>>) -> Self {
            Scripted {
                answers: Mutex::new(answers),
                delay: Duration::ZERO,
                calls: AtomicUsize::new(0),
            }
        }
    }

    impl MemberDirectory for Scripted {
        async fn lookup(&self, _badge: &Badge) -> Result<DirectoryAnswer, DirectoryError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.answers.lock().unwrap().remove(0)
        }
    }

    fn lookup_with(directory: Scripted) -> MemberLookup<Scripted, InMemoryCacheStore> {
        MemberLookup::new(
            directory,
            InMemoryCacheStore::new(),
            hasher(),
            CachePolicy {
                ttl: TTL,
                max_entries: 100,
                directory_timeout: Duration::from_millis(200),
            },
        )
    }

    fn down() -> Result<DirectoryAnswer, DirectoryError> {
        Err(DirectoryError::Unavailable("connection refused".into()))
    }

    #[tokio::test]
    async fn known_member_is_recognised_during_an_outage() {
        let l = lookup_with(Scripted::new(vec![
            Ok(DirectoryAnswer::Found(member("m1"))),
            down(),
        ]));
        let b = badge("0012345678");
        let first = l.lookup(&b, 1_000).await.unwrap();
        assert_eq!(first.source, LookupSource::Directory);
        assert_eq!(first.lookup, DirectoryAnswer::Found(member("m1")));
        let second = l.lookup(&b, 61_000).await.unwrap();
        assert_eq!(second.source, LookupSource::Cache { age_ms: 60_000 });
        assert_eq!(second.lookup, DirectoryAnswer::Found(member("m1")));
        assert_eq!(second.hash, first.hash);
        assert_eq!(first.hash, hasher().hash(&b));
    }

    #[tokio::test]
    async fn unknown_badge_during_an_outage_is_an_error_with_the_hash() {
        let l = lookup_with(Scripted::new(vec![down()]));
        let b = badge("99999999");
        let err = l.lookup(&b, 0).await.unwrap_err();
        assert_eq!(err.hash, hasher().hash(&b));
        assert!(matches!(err.cause, DirectoryError::Unavailable(_)));
        let text = err.to_string();
        assert!(!text.contains("99999999"), "{text}");
        assert!(text.contains("badge.member_cache_ttl_s"), "{text}");
    }

    #[tokio::test]
    async fn entries_older_than_the_ttl_are_not_used() {
        let l = lookup_with(Scripted::new(vec![
            Ok(DirectoryAnswer::Found(member("m1"))),
            down(),
        ]));
        let b = badge("0012345678");
        l.lookup(&b, 0).await.unwrap();
        let too_late = i64::try_from(TTL.as_millis()).unwrap() + 1;
        assert!(l.lookup(&b, too_late).await.is_err());
    }

    #[tokio::test]
    async fn not_found_evicts_the_cached_member() {
        let l = lookup_with(Scripted::new(vec![
            Ok(DirectoryAnswer::Found(member("m1"))),
            Ok(DirectoryAnswer::NotFound),
            down(),
        ]));
        let b = badge("0012345678");
        l.lookup(&b, 0).await.unwrap();
        assert_eq!(l.store().len(), 1);
        let gone = l.lookup(&b, 10).await.unwrap();
        assert_eq!(gone.lookup, DirectoryAnswer::NotFound);
        assert!(l.store().is_empty());
        assert!(l.lookup(&b, 20).await.is_err());
    }

    #[tokio::test]
    async fn directory_answer_wins_over_the_cache() {
        let expired = Member {
            membership: MembershipStatus::Expired,
            ..member("m1")
        };
        let l = lookup_with(Scripted::new(vec![
            Ok(DirectoryAnswer::Found(member("m1"))),
            Ok(DirectoryAnswer::Found(expired.clone())),
            down(),
        ]));
        let b = badge("0012345678");
        l.lookup(&b, 0).await.unwrap();
        assert_eq!(
            l.lookup(&b, 10).await.unwrap().lookup,
            DirectoryAnswer::Found(expired.clone())
        );
        assert_eq!(
            l.lookup(&b, 20).await.unwrap().lookup,
            DirectoryAnswer::Found(expired)
        );
    }

    #[tokio::test]
    async fn a_slow_directory_times_out_to_the_cache() {
        let store = InMemoryCacheStore::new();
        let b = badge("0012345678");
        let entry = CachedMember {
            member: member("m1"),
            fetched_at_ms: 0,
        };
        store.put(&hasher().hash(&b), &entry, 10).unwrap();
        let slow = Scripted {
            delay: Duration::from_secs(5),
            ..Scripted::new(vec![
                Ok(DirectoryAnswer::NotFound),
                Ok(DirectoryAnswer::NotFound),
            ])
        };
        let l = MemberLookup {
            store,
            ..lookup_with(slow)
        };
        let out = l.lookup(&b, 5).await.unwrap();
        assert_eq!(out.source, LookupSource::Cache { age_ms: 5 });
        assert_eq!(out.lookup, DirectoryAnswer::Found(member("m1")));
        let err = l.lookup(&badge("other"), 5).await.unwrap_err();
        assert!(err.cause.to_string().contains("badge.lookup_timeout_ms"));
    }

    #[test]
    fn usable_applies_the_ttl_and_clamps_future_entries() {
        let e = |at| {
            Some(CachedMember {
                member: member("m"),
                fetched_at_ms: at,
            })
        };
        assert_eq!(usable(e(0), 3_600_000, TTL).map(|x| x.1), Some(3_600_000));
        assert_eq!(usable(e(0), 3_600_001, TTL), None);
        assert_eq!(usable(e(500), 100, TTL).map(|x| x.1), Some(0));
        assert_eq!(usable(None, 0, TTL), None);
    }

    #[test]
    fn in_memory_store_is_bounded_oldest_first() {
        let s = InMemoryCacheStore::new();
        let h = hasher();
        for i in 0..5i64 {
            let entry = CachedMember {
                member: member(&format!("m{i}")),
                fetched_at_ms: i,
            };
            s.put(&h.hash(&badge(&format!("b{i}"))), &entry, 3).unwrap();
        }
        assert_eq!(s.len(), 3);
        assert!(s.get(&h.hash(&badge("b0"))).unwrap().is_none());
        assert!(s.get(&h.hash(&badge("b1"))).unwrap().is_none());
        assert_eq!(
            s.get(&h.hash(&badge("b4"))).unwrap().unwrap().member.id,
            "m4"
        );
        s.evict(&h.hash(&badge("b4"))).unwrap();
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn policy_comes_from_config() {
        let p = CachePolicy::from_config(&BadgeConfig::default());
        assert_eq!(p.ttl, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(p.max_entries, 10_000);
        assert_eq!(p.directory_timeout, Duration::from_millis(800));
    }
}
