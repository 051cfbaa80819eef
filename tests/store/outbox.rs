//! Outbox, sync-support API, sessions roll-up, member cache and opening rules of the store,
//! against real SQLite files in temporary directories.

use crate::support::*;
use jarvis_config::StorageConfig;
use jarvis_core::events::{EventKind, EventPayload};
use jarvis_core::money::NanoUsd;
use jarvis_store::{
    SCHEMA_VERSION, Store, StoreError, StoreHandle, StoredEvent, retention_cutoff_ms,
};
use rusqlite::Connection;
use uuid::Uuid;

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open_with(options(&dir.path().join("kiosk.db")))
        .unwrap()
        .0
}

fn seqs(events: &[StoredEvent]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

#[test]
fn appended_events_come_back_pending_in_order_and_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let sid = Uuid::now_v7();
    let evs = vec![
        started(sid, 1_000),
        usage(sid, 2_000, cost(416_000, 1_200)),
        heartbeat(2_500, 10),
        ended(sid, 3_000, 2_000),
    ];
    let mut appended = Vec::new();
    for e in &evs {
        appended.push(store.append(e).unwrap());
    }
    assert!(appended.windows(2).all(|w| w[0] < w[1]), "{appended:?}");
    let pending = store.pending(10).unwrap();
    assert_eq!(seqs(&pending), appended);
    for (p, e) in pending.iter().zip(&evs) {
        assert_eq!(&p.event, e);
        assert_eq!(p.attempts, 0);
    }
    assert_eq!(seqs(&store.pending(2).unwrap()), appended[..2]);
}

#[test]
fn sequence_numbers_are_never_reused_after_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let a = store.append(&heartbeat(1, 1)).unwrap();
    let b = store.append(&heartbeat(2, 1)).unwrap();
    store.mark_synced(&[a, b]).unwrap();
    advance(10);
    assert_eq!(store.prune_synced(test_clock()).unwrap(), 2);
    let c = store.append(&heartbeat(3, 1)).unwrap();
    assert!(c > b, "{c} must be above {b}");
    assert_eq!(store.stats().unwrap().last_seq, Some(c));
}

#[test]
fn re_appending_the_same_event_is_idempotent_and_does_not_double_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let sid = Uuid::now_v7();
    let u = usage(sid, 5, cost(100, 200));
    let first = store.append(&u).unwrap();
    assert_eq!(store.append(&u).unwrap(), first);
    assert_eq!(store.pending(10).unwrap().len(), 1);
    assert_eq!(store.spent_since(0).unwrap(), NanoUsd(100 + 200 + 7 + 11));
    assert_eq!(store.recent_sessions(1).unwrap()[0].responses, 1);

    let mut changed = u.clone();
    changed.payload = EventPayload::SessionConnected { connect_ms: 1 };
    let err = store.append(&changed).unwrap_err();
    assert!(
        matches!(err, StoreError::ConflictingEvent { seq, .. } if seq == first),
        "{err}"
    );
}

#[test]
fn a_failing_batch_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let sid = Uuid::now_v7();
    let s = started(sid, 1);
    store.append(&s).unwrap();
    let mut conflicting = s.clone();
    conflicting.occurred_at_ms = 99;
    conflicting.payload = EventPayload::SessionConnected { connect_ms: 3 };
    let batch = vec![usage(sid, 2, cost(1, 1)), conflicting];
    assert!(store.append_batch(&batch).is_err());
    assert_eq!(store.pending(10).unwrap().len(), 1);
    assert_eq!(store.spent_since(0).unwrap(), NanoUsd::ZERO);

    let ok = store
        .append_batch(&[usage(sid, 3, cost(1, 1)), ended(sid, 4, 3)])
        .unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(store.pending(10).unwrap().len(), 3);
}

#[test]
fn synced_events_leave_the_queue_and_count_in_stats() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let a = store.append(&heartbeat(100, 1)).unwrap();
    let b = store.append(&heartbeat(200, 1)).unwrap();
    let c = store.append(&heartbeat(300, 1)).unwrap();
    assert_eq!(store.mark_synced(&[a, c, 9_999]).unwrap(), 2);
    assert_eq!(store.mark_synced(&[a]).unwrap(), 0, "already synced");
    assert_eq!(seqs(&store.pending(10).unwrap()), vec![b]);
    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.pending, stats.synced, stats.dead),
        (1, 2, 0),
        "{stats:?}"
    );
    assert_eq!(stats.oldest_pending_ms, Some(200));
    assert!(stats.bytes > 0 && stats.file_bytes > 0, "{stats:?}");
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["pending"], 1);
}

#[test]
fn failures_are_counted_and_kept_until_dead_lettered_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let a = store.append(&heartbeat(1, 1)).unwrap();
    let b = store.append(&heartbeat(2, 1)).unwrap();
    assert!(store.record_failure(a, "connection refused").unwrap());
    assert!(store.record_failure(a, "timeout").unwrap());
    assert!(!store.record_failure(12_345, "x").unwrap(), "unknown seq");
    assert_eq!(store.pending(10).unwrap()[0].attempts, 2);

    assert!(
        store
            .dead_letter(a, "central rejected: column missing")
            .unwrap()
    );
    assert_eq!(seqs(&store.pending(10).unwrap()), vec![b]);
    let dead = store.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].seq, a);
    assert_eq!(dead[0].kind, "heartbeat");
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].error, "central rejected: column missing");
    assert_eq!(store.stats().unwrap().dead, 1);

    assert_eq!(store.retry_dead_letters().unwrap(), 1);
    assert!(store.dead_letters().unwrap().is_empty());
    let pending = store.pending(10).unwrap();
    assert_eq!(seqs(&pending), vec![a, b]);
    assert_eq!(pending[0].attempts, 0);
}

#[test]
fn an_unreadable_row_is_dead_lettered_without_blocking_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    let mut store = Store::open_with(options(&path)).unwrap().0;
    let a = store.append(&heartbeat(1, 1)).unwrap();
    let b = store.append(&heartbeat(2, 1)).unwrap();
    let c = store.append(&heartbeat(3, 1)).unwrap();
    let raw = Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE outbox SET kind = 'teleport', payload = '{\"kind\":\"teleport\"}' WHERE seq = ?1",
        [a],
    )
    .unwrap();
    raw.execute(
        "UPDATE outbox SET payload = '{not json' WHERE seq = ?1",
        [b],
    )
    .unwrap();
    assert_eq!(seqs(&store.pending(1).unwrap()), vec![c]);
    let dead = store.dead_letters().unwrap();
    assert_eq!(seqs_of_dead(&dead), vec![a, b]);
    assert!(
        dead[0].error.contains("unknown event kind `teleport`"),
        "{}",
        dead[0].error
    );
    assert!(
        dead[1].error.contains("does not decode"),
        "{}",
        dead[1].error
    );
    assert_eq!(dead[0].kind, "teleport", "kept as found");
}

fn seqs_of_dead(d: &[jarvis_store::DeadLetter]) -> Vec<i64> {
    d.iter().map(|x| x.seq).collect()
}

#[test]
fn pruning_removes_only_synced_events_older_than_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    set_now(10 * 86_400_000);
    let old = store.append(&heartbeat(1, 1)).unwrap();
    let unsynced = store.append(&heartbeat(2, 1)).unwrap();
    store.mark_synced(&[old]).unwrap();
    set_now(20 * 86_400_000);
    let recent = store.append(&heartbeat(3, 1)).unwrap();
    store.mark_synced(&[recent]).unwrap();
    let cutoff = retention_cutoff_ms(test_clock(), 5);
    assert_eq!(store.prune_synced(cutoff).unwrap(), 1);
    let stats = store.stats().unwrap();
    assert_eq!((stats.pending, stats.synced), (1, 1));
    assert_eq!(seqs(&store.pending(10).unwrap()), vec![unsynced]);
}

#[test]
fn sessions_roll_up_tokens_costs_and_end_in_the_same_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let older = Uuid::now_v7();
    store.append(&started(older, 500)).unwrap();
    let sid = Uuid::now_v7();
    store.append(&started(sid, 1_000)).unwrap();
    store
        .append(&usage(sid, 2_000, cost(416_000, 1_000_000)))
        .unwrap();
    store
        .append(&usage(sid, 3_000, cost(1_000, 2_000)))
        .unwrap();
    store.append(&transcription(sid, 3_500, 60_000)).unwrap();
    store.append(&ended(sid, 4_000, 3_000)).unwrap();

    let recent = store.recent_sessions(10).unwrap();
    assert_eq!(recent.len(), 2);
    let s = &recent[0];
    assert_eq!(s.session_id, sid);
    assert_eq!(recent[1].session_id, older);
    assert_eq!(s.started_at_ms, Some(1_000));
    assert_eq!(s.ended_at_ms, Some(4_000));
    assert_eq!(s.end_reason.as_deref(), Some("goodbye"));
    assert_eq!(s.duration_ms, Some(3_000));
    assert_eq!(s.member_id.as_deref(), Some("m-42"));
    assert_eq!(s.membership.as_deref(), Some("active"));
    assert_eq!(s.model.as_deref(), Some("gpt-realtime"));
    assert_eq!(s.responses, 2);
    assert_eq!(s.tokens.input_audio, 200);
    assert_eq!(s.tokens.cached_audio, 80);
    assert_eq!(s.tokens.output_audio, 400);
    assert_eq!(s.cost.input_audio_nusd, NanoUsd(417_000));
    assert_eq!(s.cost.output_audio_nusd, NanoUsd(1_002_000));
    assert_eq!(s.cost.input_text_nusd, NanoUsd(14));
    assert_eq!(s.cost.transcription_nusd, NanoUsd(60_000));
    assert_eq!(
        s.total_nusd,
        NanoUsd(417_000 + 1_002_000 + 14 + 22 + 60_000)
    );
    assert!(recent[1].ended_at_ms.is_none(), "still live");

    assert_eq!(store.spent_since(0).unwrap(), s.total_nusd);
    assert_eq!(
        store.spent_since(3_000).unwrap(),
        NanoUsd(1_000 + 2_000 + 18 + 60_000)
    );
    assert_eq!(store.recent_sessions(1).unwrap().len(), 1);
}

#[test]
fn usage_without_a_start_still_gets_a_session_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let sid = Uuid::now_v7();
    store.append(&usage(sid, 10, cost(5, 5))).unwrap();
    let s = &store.recent_sessions(5).unwrap()[0];
    assert_eq!(s.session_id, sid);
    assert_eq!(s.started_at_ms, None);
    assert_eq!(s.total_nusd, NanoUsd(5 + 5 + 7 + 11));
}

#[test]
fn member_cache_keeps_hmac_keys_and_evicts_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let key = |i: u8| format!("{:02x}", i).repeat(32);
    for i in 0..5u8 {
        store
            .member_cache_put(
                &key(i),
                &format!(r#"{{"id":"m{i}"}}"#),
                1_000 + i64::from(i),
            )
            .unwrap();
    }
    assert_eq!(
        store.member_cache_get(&key(3)).unwrap(),
        Some((r#"{"id":"m3"}"#.to_owned(), 1_003))
    );
    store
        .member_cache_put(&key(0), r#"{"id":"m0b"}"#, 2_000)
        .unwrap();
    assert_eq!(store.member_cache_evict(3).unwrap(), 2);
    assert!(
        store.member_cache_get(&key(1)).unwrap().is_none(),
        "oldest goes"
    );
    assert!(store.member_cache_get(&key(2)).unwrap().is_none());
    assert_eq!(
        store.member_cache_get(&key(0)).unwrap().unwrap().1,
        2_000,
        "refreshed entry stays"
    );
    assert_eq!(store.member_cache_evict(3).unwrap(), 0);
    assert!(store.member_cache_remove(&key(3)).unwrap());
    assert!(!store.member_cache_remove(&key(3)).unwrap());
    assert!(store.member_cache_get(&key(3)).unwrap().is_none());
    assert!(
        store
            .member_cache_get("nope")
            .unwrap_err()
            .to_string()
            .contains("HMAC")
    );

    let raw_badge = store.member_cache_put("0004829173", "{}", 1).unwrap_err();
    assert!(matches!(raw_badge, StoreError::InvalidCacheKey { len: 10 }));
    let not_json = store.member_cache_put(&key(9), "{oops", 1).unwrap_err();
    assert!(matches!(not_json, StoreError::InvalidMemberJson(_)));
}

#[test]
fn a_newer_schema_is_refused_with_both_versions_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    drop(open(&dir));
    let raw = Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(raw);
    let err = Store::open_with(options(&path)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{msg}");
    assert!(
        msg.contains(&format!("version {}", SCHEMA_VERSION + 1)),
        "{msg}"
    );
    assert!(msg.contains(&format!("version {SCHEMA_VERSION}")), "{msg}");
    assert!(path.exists(), "never moved aside");
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(entries <= 3, "no corrupt-* copy");
    assert!(matches!(
        Store::open_existing(&path).unwrap_err(),
        StoreError::SchemaTooNew { .. }
    ));
}

#[test]
fn an_unusable_directory_names_storage_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let cfg = StorageConfig {
        path: file.join("kiosk.db"),
        ..Default::default()
    };
    let err = Store::open(&cfg).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Unusable { .. }), "{msg}");
    assert!(msg.contains("storage.path"), "{msg}");
    assert!(msg.contains(&cfg.path.display().to_string()), "{msg}");
}

#[test]
fn a_cli_store_reads_and_retries_next_to_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    let missing = Store::open_existing(&path).unwrap_err();
    assert!(matches!(missing, StoreError::Missing { .. }), "{missing}");
    assert!(!path.exists(), "the CLI never creates the store");

    let mut opts = options(&path);
    opts.max_bytes = 5 * 1024 * 1024;
    let mut daemon = Store::open_with(opts).unwrap().0;
    let a = daemon.append(&heartbeat(1, 1)).unwrap();
    daemon.dead_letter(a, "boom").unwrap();

    let mut cli = Store::open_existing(&path).unwrap();
    let stats = cli.stats().unwrap();
    assert_eq!((stats.dead, stats.max_bytes), (1, 5 * 1024 * 1024));
    assert_eq!(cli.retry_dead_letters().unwrap(), 1);
    daemon.append(&heartbeat(2, 1)).unwrap();
    assert_eq!(cli.stats().unwrap().pending, 2);
    assert_eq!(daemon.pending(10).unwrap().len(), 2);
}

#[test]
fn a_reopened_store_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    let (mut store, report) = Store::open_with(options(&path)).unwrap();
    assert!(report.created);
    assert_eq!(
        (report.migrated_from, report.schema_version),
        (0, SCHEMA_VERSION)
    );
    let sid = Uuid::now_v7();
    let ev = started(sid, 9);
    store.append(&ev).unwrap();
    drop(store);
    let (mut store, report) = Store::open_with(options(&path)).unwrap();
    assert!(!report.created && report.recovered.is_none());
    assert_eq!(report.migrated_from, SCHEMA_VERSION);
    assert_eq!(store.pending(5).unwrap()[0].event, ev);
    assert!(
        store
            .check(jarvis_store::IntegrityCheck::Full)
            .unwrap()
            .is_empty()
    );
    let mode: String = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_handle_runs_store_work_off_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&dir.path().join("kiosk.db"));
    opts.clock = jarvis_core::clock::wall_ms;
    let (handle, report) = StoreHandle::open(opts).await.unwrap();
    assert!(report.created);
    let sid = Uuid::now_v7();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let h = handle.clone();
        tasks.push(tokio::spawn(async move {
            h.call(move |s| s.append(&usage(sid, i, cost(1, 1)))).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let pending = handle.call(|s| s.pending(100)).await.unwrap();
    assert_eq!(pending.len(), 20);
    let kinds: Vec<EventKind> = pending.iter().map(|p| p.event.kind()).collect();
    assert!(kinds.iter().all(|k| *k == EventKind::ResponseUsage));

    let panicked = handle
        .call(|_s| -> Result<(), StoreError> { panic!("job bug") })
        .await
        .unwrap_err();
    assert!(matches!(panicked, StoreError::WorkerGone(_)), "{panicked}");
    let n = handle.call(|s| s.stats()).await.unwrap().pending;
    assert_eq!(n, 20, "the thread survives a panicking job");
}

#[tokio::test]
async fn the_async_handle_reports_open_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = StoreHandle::open(options(&file.join("kiosk.db")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("storage.path"), "{err}");
}
