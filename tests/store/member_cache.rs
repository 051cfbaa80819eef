//! The member cache port over the store thread (`MemberCacheStore for StoreHandle`),
//! from plain threads and from both tokio runtime flavours.

use std::time::Duration;

use jarvis_core::badge::{BadgeHash, CachedMember, Member, MemberCacheStore};
use jarvis_core::events::MembershipStatus;
use jarvis_store::{Store, StoreHandle};

use crate::support::*;

fn member(id: &str) -> Member {
    Member {
        id: id.into(),
        first_name: "Camille".into(),
        language: "fr".into(),
        membership: MembershipStatus::Active,
    }
}

fn hash(byte: u8) -> BadgeHash {
    BadgeHash::from_hex(&format!("{byte:02x}").repeat(32)).unwrap()
}

fn handle(dir: &tempfile::TempDir) -> StoreHandle {
    let store = Store::open_with(options(&dir.path().join("kiosk.db")))
        .unwrap()
        .0;
    StoreHandle::spawn(store).unwrap()
}

fn exercise(cache: &StoreHandle) {
    for i in 0..4u8 {
        let entry = CachedMember {
            member: member(&format!("m{i}")),
            fetched_at_ms: 1_000 + i64::from(i),
        };
        cache.put(&hash(i), &entry, 3).unwrap();
    }
    assert_eq!(cache.get(&hash(0)).unwrap(), None, "oldest evicted on put");
    let got = cache.get(&hash(3)).unwrap().unwrap();
    assert_eq!(got.member, member("m3"));
    assert_eq!(got.fetched_at_ms, 1_003);
    cache.evict(&hash(3)).unwrap();
    assert_eq!(cache.get(&hash(3)).unwrap(), None);
    assert!(cache.get(&hash(2)).unwrap().is_some());
}

#[test]
fn member_cache_works_from_a_plain_thread() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&handle(&dir));
}

#[tokio::test]
async fn member_cache_works_inside_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&handle(&dir));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_cache_works_inside_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let cache = handle(&dir);
    exercise(&cache);
    let n = cache
        .call_blocking(Duration::from_secs(5), |s| s.member_cache_evict(0))
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn a_corrupt_cached_member_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cache = handle(&dir);
    let key = hash(7).to_hex();
    cache
        .call_blocking(Duration::from_secs(5), move |s| {
            s.member_cache_put(&key, r#"{"unexpected": true}"#, 5)
        })
        .unwrap();
    let err = cache.get(&hash(7)).unwrap_err();
    assert!(err.to_string().contains("does not decode"), "{err}");
}
