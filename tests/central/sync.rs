//! The sync worker against the real server and real faults: exactly once, in order, through
//! a kill -9, a network cut, terminated backends, a poisoned event, a missing migration and
//! PgBouncer in transaction pooling mode.

use std::time::Duration;

use crate::central_support::proxy::Proxy;
use crate::central_support::{
    PgBouncer, TestDb, append, assert_central_matches, open_store, server_addr, sessions, settings,
    wait_drained,
};
use jarvis_core::events::{EventPayload, KioskEvent};
use jarvis_core::health::{AdapterState, Health};
use jarvis_sync::conn::CentralTarget;
use jarvis_sync::run_with_target;
use jarvis_sync::writer::{Writer, encode_batch};
use tokio_util::sync::CancellationToken;

fn central_count(db: &TestDb) -> String {
    db.psql("SELECT count(*) FROM kiosk_events")
}

fn heartbeats(db: &TestDb) -> String {
    db.psql("SELECT count(*) FROM kiosk_heartbeats")
}

/// Starts the worker on its own task; cancel the token to stop it.
fn start(
    target: CentralTarget,
    s: jarvis_sync::SyncSettings,
    store: jarvis_store::StoreHandle,
    health: Health,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_with_target(target, s, store, health, stop.clone()));
    (stop, task)
}

async fn stop(w: (CancellationToken, tokio::task::JoinHandle<()>)) {
    w.0.cancel();
    w.1.await.unwrap();
}

fn central_state(h: &Health) -> AdapterState {
    h.snapshot()
        .adapters
        .get("central")
        .cloned()
        .unwrap_or(AdapterState::Starting)
}

async fn wait_state(h: &Health, pred: impl Fn(&AdapterState) -> bool, secs: u64) -> AdapterState {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let s = central_state(h);
        if pred(&s) {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "central stayed {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn drains_exactly_once_in_order_even_after_an_unacknowledged_commit() {
    let db = TestDb::migrated("sync_once");
    let k = db.add_kiosk("k", "gym");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let sent = append(&store, sessions(20, 48)).await;
    // A previous run committed the first 150 centrally but died before marking them synced.
    let w = Writer::connect(&db.target(&k)).await.unwrap();
    let json = encode_batch(&k.kiosk_id, sent[..150].iter().map(|(s, e)| (*s, e))).unwrap();
    assert_eq!(w.insert(&json).await.unwrap(), 150);

    let health = Health::new(&k.kiosk_id, 0);
    let worker = start(
        db.target(&k),
        settings(&k.kiosk_id, dir.path()),
        store.clone(),
        health.clone(),
    );
    let stats = wait_drained(&store, 60).await;
    wait_state(&health, |s| *s == AdapterState::Up, 10).await;
    stop(worker).await;

    assert_eq!(stats.dead, 0);
    assert_eq!(stats.synced.to_string(), central_count(&db));
    assert_eq!(
        heartbeats(&db),
        "1",
        "one heartbeat, recorded at start, synced too"
    );
    assert_central_matches(&db, &k.kiosk_id, &sent);
    assert_eq!(
        health.snapshot().counters.get("central_events_duplicate"),
        Some(&150)
    );
    // Costs derived centrally equal the local sums: 20 sessions x 48 responses x 16_000_001 n$.
    assert_eq!(
        db.psql("SELECT sum(total_cost_usd) FROM openai_realtime_sessions"),
        "15.360000960"
    );
}

/// Runs as a separate process in `kill_9_in_the_middle_of_a_batch_then_restart` (through the
/// environment variables below); a plain test run skips it.
#[tokio::test]
async fn child_process_syncing_until_killed() {
    let (Ok(dir), Ok(url), Ok(pw), Ok(kiosk)) = (
        std::env::var("SYNC_CHILD_DIR"),
        std::env::var("SYNC_CHILD_URL"),
        std::env::var("SYNC_CHILD_PASSWORD"),
        std::env::var("SYNC_CHILD_KIOSK"),
    ) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let store = open_store(&dir).await;
    let target = CentralTarget::new(&url, Some(&pw), None, &kiosk).unwrap();
    let mut s = settings(&kiosk, &dir);
    s.batch.max_events = 50;
    run_with_target(
        target,
        s,
        store,
        Health::new(&kiosk, 0),
        CancellationToken::new(),
    )
    .await;
}

#[tokio::test]
async fn kill_9_in_the_middle_of_a_batch_then_restart() {
    let db = TestDb::migrated("sync_kill");
    let k = db.add_kiosk("k", "gym");
    let dir = tempfile::tempdir().unwrap();
    // The store handle (and its thread) is gone before the child opens the file.
    let total = append(&open_store(dir.path()).await, sessions(100, 98)).await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sync::child_process_syncing_until_killed",
            "--nocapture",
        ])
        .env("SYNC_CHILD_DIR", dir.path())
        .env("SYNC_CHILD_URL", &k.url)
        .env("SYNC_CHILD_PASSWORD", &k.password)
        .env("SYNC_CHILD_KIOSK", &k.kiosk_id)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while batches are flowing: some events committed, most not.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n: usize = db
            .psql("SELECT count(*) FROM kiosk_events")
            .parse()
            .unwrap();
        if n >= 500 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "child never synced");
        std::thread::sleep(Duration::from_millis(5));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let at_kill: usize = db
        .psql("SELECT count(*) FROM kiosk_events")
        .parse()
        .unwrap();
    assert!(
        at_kill < total.len(),
        "killed too late to prove anything ({at_kill})"
    );

    let store = open_store(dir.path()).await;
    let health = Health::new(&k.kiosk_id, 0);
    let worker = start(
        db.target(&k),
        settings(&k.kiosk_id, dir.path()),
        store.clone(),
        health,
    );
    let stats = wait_drained(&store, 120).await;
    stop(worker).await;
    assert_eq!(stats.synced.to_string(), central_count(&db));
    assert_central_matches(&db, &k.kiosk_id, &total);
}

#[tokio::test]
async fn network_cut_then_restored_loses_and_duplicates_nothing() {
    let db = TestDb::migrated("sync_cut");
    let k = db.add_kiosk("k", "gym");
    let proxy = Proxy::start(server_addr()).await;
    let url = format!("{}&connect_timeout=1", proxy.url_for(&k.url));
    let target = CentralTarget::new(&url, Some(&k.password), None, &k.kiosk_id).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let health = Health::new(&k.kiosk_id, 0);
    let mut s = settings(&k.kiosk_id, dir.path());
    s.statement_timeout = Duration::from_secs(1);
    let worker = start(target, s, store.clone(), health.clone());

    let mut sent = append(&store, sessions(10, 48)).await;
    wait_drained(&store, 60).await;
    proxy.cut();
    // Recorded while the link is down, and sent into the black hole at least once.
    sent.extend(append(&store, sessions(10, 48)).await);
    let down = wait_state(&health, |s| matches!(s, AdapterState::Degraded(_)), 30).await;
    let AdapterState::Degraded(reason) = down else {
        unreachable!()
    };
    assert!(
        reason.contains("timed out") || reason.contains("connect"),
        "{reason}"
    );
    assert!(store.call(|s| s.stats()).await.unwrap().pending > 0);
    proxy.restore();
    wait_drained(&store, 60).await;
    wait_state(&health, |s| *s == AdapterState::Up, 30).await;
    let reconnects = health
        .snapshot()
        .counters
        .get(jarvis_sync::COUNTER_RECONNECTS)
        .copied();
    assert!(
        reconnects >= Some(1),
        "reconnects counted for /metrics: {reconnects:?}"
    );
    stop(worker).await;
    assert_central_matches(&db, &k.kiosk_id, &sent);
}

#[tokio::test]
async fn terminated_backends_are_survived() {
    // pg_terminate_backend of the worker's connection stands in for a Postgres restart: the
    // client sees the same "terminating connection due to administrator command" (57P01).
    let db = TestDb::migrated("sync_term");
    let k = db.add_kiosk("k", "gym");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let health = Health::new(&k.kiosk_id, 0);
    let mut s = settings(&k.kiosk_id, dir.path());
    s.batch.max_events = 20;
    let worker = start(db.target(&k), s, store.clone(), health.clone());
    let mut sent = Vec::new();
    let mut terminated = 0;
    for _ in 0..8 {
        sent.extend(append(&store, sessions(5, 48)).await);
        // Terminate only once the worker holds a connection: it reconnects to ship what was
        // just appended, so every round cuts a live backend.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let n = db
                .psql(&format!(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{}') t",
                    k.role
                ))
                .parse::<usize>()
                .unwrap();
            if n > 0 {
                terminated += n;
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the worker did not reconnect within 30 s"
            );
            // Only the poll interval of the wait above: the condition is the backend itself.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    wait_drained(&store, 60).await;
    stop(worker).await;
    assert!(terminated >= 8, "only {terminated} backends terminated");
    let reconnects = health
        .snapshot()
        .counters
        .get(jarvis_sync::COUNTER_RECONNECTS)
        .copied();
    assert!(reconnects >= Some(1), "reconnects: {reconnects:?}");
    assert_central_matches(&db, &k.kiosk_id, &sent);
}

#[tokio::test]
async fn a_poisoned_event_is_dead_lettered_and_the_rest_lands() {
    let db = TestDb::migrated("sync_poison");
    let k = db.add_kiosk("k", "gym");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let mut events = sessions(2, 48);
    // A NUL character is valid JSON and fine locally, but Postgres text (so jsonb) cannot
    // hold it: refused as 22P05, whatever the retries.
    if let EventPayload::ResponseUsage { response_id, .. } = &mut events[37].payload {
        response_id.push('\0');
    }
    let poisoned_id = events[37].event_id;
    let all = append(&store, events).await;
    let health = Health::new(&k.kiosk_id, 0);
    let worker = start(
        db.target(&k),
        settings(&k.kiosk_id, dir.path()),
        store.clone(),
        health.clone(),
    );
    let stats = wait_drained(&store, 60).await;
    // The dead-letter alert itself is an event: wait for it to land too.
    wait_drained(&store, 10).await;
    stop(worker).await;

    assert_eq!(stats.dead, 1);
    let dead = store.call(|s| s.dead_letters()).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event_id, poisoned_id.to_string());
    assert!(dead[0].error.contains("22P05"), "{}", dead[0].error);
    let rest: Vec<(i64, KioskEvent)> = all
        .into_iter()
        .filter(|(_, e)| e.event_id != poisoned_id)
        .collect();
    assert_central_matches(&db, &k.kiosk_id, &rest);
    let alert = db.psql("SELECT code || ' ' || message FROM dashboard_open_alerts");
    assert!(alert.starts_with("sync_dead_letter "), "{alert}");
    assert!(alert.contains(&poisoned_id.to_string()), "{alert}");
    assert_eq!(
        health.snapshot().counters.get("central_dead_letters"),
        Some(&1)
    );
}

#[tokio::test]
async fn a_missing_migration_is_named_and_syncing_resumes_once_applied() {
    let db = TestDb::empty("sync_schema");
    db.migrate(&["--until", "0003"]);
    let k = db.add_kiosk("k", "gym");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let sent = append(&store, sessions(3, 10)).await;
    let health = Health::new(&k.kiosk_id, 0);
    let worker = start(
        db.target(&k),
        settings(&k.kiosk_id, dir.path()),
        store.clone(),
        health.clone(),
    );
    let AdapterState::Degraded(reason) =
        wait_state(&health, |s| matches!(s, AdapterState::Degraded(_)), 30).await
    else {
        unreachable!()
    };
    assert!(reason.contains("trigger kiosk_events_derive"), "{reason}");
    assert!(
        reason.contains("sql/central/0004_derived_tables.sql"),
        "{reason}"
    );
    assert!(
        reason.contains("function kiosk_lookup_member(text)"),
        "{reason}"
    );
    assert!(reason.contains("sql/central/0005_security.sql"), "{reason}");
    let pending = store.call(|s| s.stats()).await.unwrap().pending;
    assert!(pending >= 36, "still buffered: {pending}");
    db.migrate(&[]);
    wait_drained(&store, 60).await;
    wait_state(&health, |s| *s == AdapterState::Up, 10).await;
    stop(worker).await;
    assert_central_matches(&db, &k.kiosk_id, &sent);
}

#[tokio::test]
async fn an_unregistered_role_is_reported_with_the_fix() {
    let db = TestDb::migrated("sync_ident");
    let k = db.add_kiosk("k", "gym");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    append(&store, sessions(1, 1)).await;
    let health = Health::new("some-other-kiosk", 0);
    let worker = start(
        db.target(&k),
        settings("some-other-kiosk", dir.path()),
        store.clone(),
        health.clone(),
    );
    let AdapterState::Degraded(reason) =
        wait_state(&health, |s| matches!(s, AdapterState::Degraded(_)), 30).await
    else {
        unreachable!()
    };
    stop(worker).await;
    assert!(
        reason.contains("kiosk.id is `some-other-kiosk`"),
        "{reason}"
    );
    assert_eq!(db.psql("SELECT count(*) FROM kiosk_events"), "0");
    assert_eq!(
        store.call(|s| s.stats()).await.unwrap().dead,
        0,
        "nothing dead-lettered"
    );
}

#[tokio::test]
async fn syncs_through_pgbouncer_in_transaction_pooling_mode() {
    let db = TestDb::migrated("sync_pgb");
    let k = db.add_kiosk("k", "gym");
    let bouncer = PgBouncer::start(&[(&k.role, &k.password)]);
    let target = CentralTarget::new(
        &bouncer.url_for(&k.url),
        Some(&k.password),
        None,
        &k.kiosk_id,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let sent = append(&store, sessions(10, 48)).await;
    let health = Health::new(&k.kiosk_id, 0);
    let worker = start(
        target,
        settings(&k.kiosk_id, dir.path()),
        store.clone(),
        health,
    );
    wait_drained(&store, 60).await;
    stop(worker).await;
    assert_central_matches(&db, &k.kiosk_id, &sent);
}
