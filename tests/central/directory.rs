//! The badge module's member directory and the `doctor` line, against the real server.

use std::time::Duration;

use crate::central_support::proxy::Proxy;
use crate::central_support::{TestDb, free_port, server_addr};
use jarvis_config::secrets::SecretPath;
use jarvis_config::{BadgeConfig, Config};
use jarvis_core::badge::member::{DirectoryAnswer, DirectoryError, MemberDirectory};
use jarvis_core::events::MembershipStatus;
use jarvis_core::health::Level;
use jarvis_sync::conn::CentralTarget;
use jarvis_sync::doctor;
use jarvis_sync::members::CentralDirectory;

fn badge(raw: &str) -> jarvis_core::badge::id::Badge {
    BadgeConfig::default()
        .frame_rules()
        .normalize(raw.as_bytes())
        .unwrap()
}

fn members(db: &TestDb) {
    db.psql(
        "INSERT INTO members (member_id, gym_id, badge, first_name, language, membership_status) VALUES
         ('m_a', 'gym_a', 'BADGE1', 'Alice', 'fr', 'active'),
         ('m_x', 'gym_a', 'BADGE3', 'Xavier', 'fr', 'suspended'),
         ('m_b', 'gym_b', 'BADGE2', 'Bruno', 'en', 'active')",
    );
}

#[tokio::test]
async fn finds_one_member_of_the_own_gym_and_nobody_else() {
    let db = TestDb::migrated("dir");
    members(&db);
    let k = db.add_kiosk("k", "gym_a");
    let dir = CentralDirectory::new(db.target(&k));
    let DirectoryAnswer::Found(alice) = dir.lookup(&badge("badge1")).await.unwrap() else {
        panic!("Alice not found");
    };
    assert_eq!(
        (
            alice.id.as_str(),
            alice.first_name.as_str(),
            alice.language.as_str()
        ),
        ("m_a", "Alice", "fr")
    );
    assert_eq!(alice.membership, MembershipStatus::Active);
    let DirectoryAnswer::Found(x) = dir.lookup(&badge("BADGE3")).await.unwrap() else {
        panic!("Xavier not found");
    };
    assert_eq!(x.membership, MembershipStatus::Suspended);
    assert_eq!(
        dir.lookup(&badge("BADGE2")).await.unwrap(),
        DirectoryAnswer::NotFound
    );
    assert_eq!(
        dir.lookup(&badge("NOSUCH")).await.unwrap(),
        DirectoryAnswer::NotFound
    );
}

#[tokio::test]
async fn unreachable_central_is_unavailable_and_a_missing_function_is_a_failure() {
    let target = CentralTarget::new(
        &format!(
            "postgres://k@127.0.0.1:{}/db?sslmode=disable&connect_timeout=2",
            free_port()
        ),
        None,
        None,
        "k",
    )
    .unwrap();
    let err = CentralDirectory::new(target)
        .lookup(&badge("BADGE1"))
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Unavailable(_)), "{err}");

    let db = TestDb::empty("dir_old");
    db.migrate(&["--until", "0004"]);
    let k = db.add_kiosk("k", "gym_a");
    let err = CentralDirectory::new(db.target(&k))
        .lookup(&badge("BADGE1"))
        .await
        .unwrap_err();
    let DirectoryError::Failed(msg) = err else {
        panic!("expected Failed, got {err}");
    };
    assert!(msg.contains("0005_security.sql"), "{msg}");
}

fn config_for(k: &crate::central_support::KioskLogin) -> Config {
    let mut cfg = Config::default();
    cfg.kiosk.id = k.kiosk_id.clone();
    cfg.central.url = Some(k.url.clone());
    cfg.central.password_file = Some(SecretPath(k.password_file.clone()));
    cfg
}

#[tokio::test]
async fn doctor_says_ok_or_names_the_missing_migration() {
    let db = TestDb::migrated("doc");
    let k = db.add_kiosk("k", "gym_a");
    let c = doctor::check(&config_for(&k), Duration::from_secs(10)).await;
    assert_eq!(c.level, Level::Ok, "{c:?}");
    assert!(c.detail.contains("registered"), "{}", c.detail);

    let old = TestDb::empty("doc_old");
    old.migrate(&["--until", "0003"]);
    let k = old.add_kiosk("k", "gym_a");
    let c = doctor::check(&config_for(&k), Duration::from_secs(10)).await;
    assert_eq!(c.level, Level::Fail);
    assert!(c.detail.contains("0004_derived_tables.sql"), "{}", c.detail);
}

/// A lookup cut short by its caller's timeout in a network black hole must not leave its
/// connection behind: the next lookup, once the network is back, answers at once instead of
/// waiting on a connection nobody will ever answer.
#[tokio::test]
async fn a_timed_out_lookup_drops_its_connection() {
    let db = TestDb::migrated("dir_blackhole");
    members(&db);
    let k = db.add_kiosk("k", "gym_a");
    let proxy = Proxy::start(server_addr()).await;
    let url = format!("{}&connect_timeout=2", proxy.url_for(&k.url));
    let dir =
        CentralDirectory::new(CentralTarget::new(&url, Some(&k.password), None, "k").unwrap());
    let limit = Duration::from_secs(3);
    let found = tokio::time::timeout(limit, dir.lookup(&badge("badge1"))).await;
    assert!(
        matches!(found, Ok(Ok(DirectoryAnswer::Found(_)))),
        "{found:?}"
    );

    proxy.cut();
    let cut = tokio::time::timeout(limit, dir.lookup(&badge("badge1"))).await;
    assert!(cut.is_err(), "a black hole cannot answer: {cut:?}");

    proxy.restore_new_only();
    let again = tokio::time::timeout(limit, dir.lookup(&badge("badge1"))).await;
    assert!(
        matches!(again, Ok(Ok(DirectoryAnswer::Found(_)))),
        "the lookup after the outage reused the dead connection: {again:?}"
    );
}
