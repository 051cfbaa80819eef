//! Central failures of set-up, not data: a revoked grant or a failing trigger stalls the sync
//! with the cause and its fix instead of dead-lettering the backlog one event at a time; and a
//! usage recorded twice under two event ids counts once centrally.

use std::time::Duration;

use crate::central_support::{
    TestDb, append, assert_central_matches, open_store, sessions, settings, wait_drained,
};
use jarvis_core::events::{EventKind, EventPayload, KioskEvent};
use jarvis_core::health::{AdapterState, Health};
use jarvis_sync::run_with_target;
use tokio_util::sync::CancellationToken;

async fn degraded_reason(h: &Health, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let state = h.snapshot().adapters.get("central").cloned();
        if let Some(AdapterState::Degraded(r)) = &state
            && r.contains(needle)
        {
            return r.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "central never degraded with `{needle}`: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `central_setup` alerts waiting in the local outbox.
async fn setup_alerts(store: &jarvis_store::StoreHandle) -> Vec<String> {
    store
        .call(|s| s.pending(10_000))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event.payload {
            EventPayload::Alert { code, message, .. } if code == "central_setup" => Some(message),
            _ => None,
        })
        .collect()
}

/// Breaks central with `break_sql`, checks the sync stalls naming `cause` and `fix`, then
/// repairs it with `repair_sql` and checks everything lands, nothing dead-lettered.
async fn stalls_then_resumes(tag: &str, break_sql: &str, cause: &str, fix: &str, repair_sql: &str) {
    let db = TestDb::migrated(tag);
    let k = db.add_kiosk("k", "gym");
    db.psql(break_sql);
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let sent = append(&store, sessions(3, 20)).await;
    let health = Health::new(&k.kiosk_id, 0);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_with_target(
        db.target(&k),
        settings(&k.kiosk_id, dir.path()),
        store.clone(),
        health.clone(),
        stop.clone(),
    ));
    let reason = degraded_reason(&health, cause).await;
    assert!(reason.contains(fix), "{reason}");
    assert!(reason.contains("No event was dead-lettered"), "{reason}");
    let stats = store.call(|s| s.stats()).await.unwrap();
    assert_eq!(stats.dead, 0, "a set-up failure dead-letters nothing");
    assert!(stats.pending > sent.len() as u64 - 1, "{stats:?}");
    let alerts = setup_alerts(&store).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains(cause), "{}", alerts[0]);
    assert_eq!(db.psql("SELECT count(*) FROM kiosk_events"), "0");

    db.psql(repair_sql);
    let stats = wait_drained(&store, 60).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(stats.dead, 0);
    assert_central_matches(&db, &k.kiosk_id, &sent);
    let landed = db.psql("SELECT count(*) FROM kiosk_alerts WHERE code = 'central_setup'");
    assert_eq!(landed, "1", "the stall is on record centrally once fixed");
}

#[tokio::test]
async fn a_revoked_grant_stalls_the_sync_naming_the_grant_and_dead_letters_nothing() {
    stalls_then_resumes(
        "stall_grant",
        "REVOKE INSERT (payload) ON kiosk_events FROM kiosk_service",
        "42501",
        "kiosk_service",
        "GRANT INSERT (payload) ON kiosk_events TO kiosk_service",
    )
    .await;
}

#[tokio::test]
async fn a_failing_trigger_stalls_the_sync_naming_the_function_and_dead_letters_nothing() {
    stalls_then_resumes(
        "stall_trigger",
        "CREATE FUNCTION reject_everything() RETURNS trigger LANGUAGE plpgsql AS \
         $$BEGIN RAISE EXCEPTION 'central regression'; END$$; \
         CREATE TRIGGER zz_reject BEFORE INSERT ON kiosk_events \
         FOR EACH ROW EXECUTE FUNCTION reject_everything()",
        "reject_everything",
        "a trigger or function on kiosk_events fails for every event",
        "DROP TRIGGER zz_reject ON kiosk_events",
    )
    .await;
}

/// The same usage recorded again under a new event id.
fn recorded_again(template: &KioskEvent) -> KioskEvent {
    KioskEvent::new(
        template.session_id,
        template.occurred_at_ms + 5,
        template.payload.clone(),
    )
}

#[tokio::test]
async fn the_same_response_recorded_twice_counts_once_centrally() {
    let db = TestDb::migrated("usage_once");
    let k = db.add_kiosk("k", "gym");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let mut events = sessions(1, 3);
    // The second response recorded again under a new event id (a re-recorded usage).
    let again = recorded_again(&events[2]);
    assert_eq!(again.kind(), EventKind::ResponseUsage);
    assert_ne!(again.event_id, events[2].event_id);
    events.insert(3, again);
    let sid = events[0].session_id.unwrap();
    append(&store, events).await;
    let health = Health::new(&k.kiosk_id, 0);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_with_target(
        db.target(&k),
        settings(&k.kiosk_id, dir.path()),
        store.clone(),
        health.clone(),
        stop.clone(),
    ));
    let stats = wait_drained(&store, 60).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(stats.dead, 0, "a duplicate is skipped, not refused");
    assert_eq!(
        db.psql("SELECT count(*) FROM kiosk_events WHERE kind = 'response_usage'"),
        "3"
    );
    assert_eq!(
        db.psql(&format!(
            "SELECT response_count || ' ' || total_cost_usd FROM openai_realtime_sessions \
             WHERE session_id = '{sid}'"
        )),
        format!("3 {}", "0.048000003"),
    );
}

#[tokio::test]
async fn a_central_without_the_usage_index_is_named_with_its_migration() {
    let db = TestDb::empty("usage_once_missing");
    db.migrate(&["--until", "0006"]);
    let k = db.add_kiosk("k", "gym");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let sent = append(&store, sessions(1, 2)).await;
    let health = Health::new(&k.kiosk_id, 0);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_with_target(
        db.target(&k),
        settings(&k.kiosk_id, dir.path()),
        store.clone(),
        health.clone(),
        stop.clone(),
    ));
    let reason = degraded_reason(&health, "index kiosk_events_usage_once").await;
    assert!(
        reason.contains("sql/central/0007_usage_once.sql"),
        "{reason}"
    );
    db.migrate(&[]);
    wait_drained(&store, 60).await;
    stop.cancel();
    task.await.unwrap();
    assert_central_matches(&db, &k.kiosk_id, &sent);
}
