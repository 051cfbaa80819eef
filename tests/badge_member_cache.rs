//! Member lookup cache persisted in the REAL local SQLite store (through `StoreHandle`): a
//! known member is still recognised after a restart while central is down, a badge central
//! no longer knows is forgotten, and no raw badge reaches the file.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jarvis_badge::cache::{CachePolicy, LookupSource};
use jarvis_badge::{BadgeHasher, MemberLookup};
use jarvis_config::secrets::Secret;
use jarvis_config::{Charset, LeadingZeros, LetterCase};
use jarvis_core::badge::frame::{DEFAULT_IDLE_RESET, FrameKind, FrameRules};
use jarvis_core::badge::{
    Badge, DirectoryAnswer, DirectoryError, Member, MemberCacheStore, MemberDirectory,
};
use jarvis_core::events::MembershipStatus;
use jarvis_store::{IntegrityCheck, StoreHandle, StoreOptions};

/// Central as seen from the kiosk: either up with a member table, or unreachable.
struct Central {
    members: Vec<(&'static str, Member)>,
    up: Mutex<bool>,
}

impl MemberDirectory for &Central {
    async fn lookup(&self, badge: &Badge) -> Result<DirectoryAnswer, DirectoryError> {
        if !*self.up.lock().unwrap() {
            return Err(DirectoryError::Unavailable("connection refused".into()));
        }
        Ok(self
            .members
            .iter()
            .find(|(b, _)| *b == badge.expose())
            .map_or(DirectoryAnswer::NotFound, |(_, m)| {
                DirectoryAnswer::Found(m.clone())
            }))
    }
}

fn badge(s: &str) -> Badge {
    FrameRules {
        framing: FrameKind::Line,
        strip_prefix: String::new(),
        strip_suffix: String::new(),
        charset: Charset::Digits,
        case: LetterCase::Keep,
        leading_zeros: LeadingZeros::Keep,
        min_len: 4,
        max_len: 32,
        idle_reset: DEFAULT_IDLE_RESET,
    }
    .normalize(s.as_bytes())
    .unwrap()
}

fn options(path: &std::path::Path) -> StoreOptions {
    StoreOptions {
        path: path.to_path_buf(),
        max_bytes: 16 * 1024 * 1024,
        check: IntegrityCheck::Quick,
        busy_timeout: Duration::from_secs(5),
        pressure_alert_interval_ms: 60_000,
        clock: jarvis_core::clock::wall_ms,
    }
}

fn policy() -> CachePolicy {
    CachePolicy {
        ttl: Duration::from_secs(7 * 24 * 3600),
        max_entries: 2,
        directory_timeout: Duration::from_millis(500),
    }
}

fn hasher() -> BadgeHasher {
    BadgeHasher::new(&Secret::new("fleet-key-0123456789abcdef")).unwrap()
}

/// Waits until the queued cache write for `b` is (or is not) visible in the store.
async fn wait_cached(store: &StoreHandle, b: &Badge, present: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.get(&hasher().hash(b)).unwrap().is_some() != present {
        assert!(Instant::now() < deadline, "cache write never landed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn known_members_are_recognised_from_sqlite_after_a_restart_while_central_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kiosk.db");
    let camille = Member {
        id: "m-1".into(),
        first_name: "Camille".into(),
        language: "fr".into(),
        membership: MembershipStatus::Active,
    };
    let central = Central {
        members: vec![
            ("0012345678", camille.clone()),
            ("5555666677", camille.clone()),
        ],
        up: Mutex::new(true),
    };

    let (store, _) = StoreHandle::open(options(&db)).await.unwrap();
    let lookup = MemberLookup::new(&central, store.clone(), hasher(), policy());
    let known = badge("0012345678");
    let stranger = badge("5555666677");
    let t0 = 1_800_000_000_000;
    let found = lookup.lookup(&known, t0).await.unwrap();
    assert_eq!(found.lookup, DirectoryAnswer::Found(camille.clone()));
    assert_eq!(found.source, LookupSource::Directory);
    wait_cached(&store, &known, true).await;
    lookup.lookup(&stranger, t0).await.unwrap();
    wait_cached(&store, &stranger, true).await;
    drop(lookup);
    drop(store);

    // Restart, with the network down.
    *central.up.lock().unwrap() = false;
    let (store, _) = StoreHandle::open(options(&db)).await.unwrap();
    let lookup = MemberLookup::new(&central, store.clone(), hasher(), policy());
    let offline = lookup.lookup(&known, t0 + 60_000).await.unwrap();
    assert_eq!(offline.lookup, DirectoryAnswer::Found(camille));
    assert_eq!(offline.source, LookupSource::Cache { age_ms: 60_000 });
    let never_seen = lookup.lookup(&badge("4242424242"), t0).await.unwrap_err();
    assert_eq!(never_seen.hash, hasher().hash(&badge("4242424242")));

    // Central is back and no longer knows the second badge: it is forgotten, so the next
    // outage does not greet a former member.
    let central_now = Central {
        members: vec![],
        up: Mutex::new(true),
    };
    let lookup = MemberLookup::new(&central_now, store.clone(), hasher(), policy());
    assert_eq!(
        lookup.lookup(&stranger, t0 + 70_000).await.unwrap().lookup,
        DirectoryAnswer::NotFound
    );
    wait_cached(&store, &stranger, false).await;
    drop(lookup);
    drop(store);

    // Raw badge numbers never reach the disk (database, WAL or shm).
    // The store thread may still be removing its -wal and -shm files: skip vanished ones.
    assert!(db.exists());
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let Ok(bytes) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        for raw in ["0012345678", "5555666677"] {
            assert!(
                !bytes.windows(raw.len()).any(|w| w == raw.as_bytes()),
                "raw badge {raw} found on disk"
            );
        }
    }
}

#[tokio::test]
async fn the_sqlite_cache_is_bounded_by_member_cache_max() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = StoreHandle::open(options(&dir.path().join("kiosk.db")))
        .await
        .unwrap();
    let h = hasher();
    for (i, b) in ["1111", "2222", "3333"].into_iter().enumerate() {
        let entry = jarvis_core::badge::CachedMember {
            member: Member {
                id: format!("m-{i}"),
                first_name: "Sam".into(),
                language: "en".into(),
                membership: MembershipStatus::Expired,
            },
            fetched_at_ms: i as i64,
        };
        store.put(&h.hash(&badge(b)), &entry, 2).unwrap();
    }
    wait_cached(&store, &badge("3333"), true).await;
    assert!(store.get(&h.hash(&badge("1111"))).unwrap().is_none());
    let kept = store.get(&h.hash(&badge("2222"))).unwrap().unwrap();
    assert_eq!(kept.member.membership, MembershipStatus::Expired);
    assert!(store.get(&h.hash(&badge("3333"))).unwrap().is_some());
}
