//! A corrupt or non-database file is moved aside (with its -wal/-shm) and replaced by a fresh
//! store that carries a `store_recovered` alert; the kiosk never crash-loops on it.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use crate::support::*;
use jarvis_core::events::{EventPayload, Severity};
use jarvis_store::{IntegrityCheck, Store, StoreError};

/// Deterministic noise (xorshift), so a failure can be replayed.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn recovered_alerts(store: &mut Store) -> Vec<(Severity, String)> {
    store
        .pending(1_000_000)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event.payload {
            EventPayload::Alert {
                code,
                severity,
                message,
            } if code == "store_recovered" => Some((severity, message)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_garbage_file_is_moved_aside_with_its_wal_and_an_alert_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    let junk = garbage(8192, 0x9e37_79b9_7f4a_7c15);
    std::fs::write(&path, &junk).unwrap();
    std::fs::write(dir.path().join("kiosk.db-wal"), b"stale wal").unwrap();

    let (mut store, report) = Store::open_with(options(&path)).unwrap();
    let rec = report.recovered.clone().expect("recovered");
    assert!(!report.created);
    assert!(rec.reason.contains("not a database"), "{}", rec.reason);
    let name = rec.moved_to.file_name().unwrap().to_string_lossy();
    assert!(name.starts_with("kiosk.db.corrupt-2026"), "{name}");
    assert_eq!(
        std::fs::read(&rec.moved_to).unwrap(),
        junk,
        "kept for support"
    );
    assert_eq!(rec.moved_files[0], rec.moved_to);
    // SQLite itself discards a WAL without valid frames when the probing connection closes;
    // whatever is left is moved with the database, never reused by the fresh store.
    let wal_now = std::fs::read(dir.path().join("kiosk.db-wal")).unwrap_or_default();
    assert!(!wal_now.starts_with(b"stale wal"));

    let alerts = recovered_alerts(&mut store);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].0, Severity::Critical);
    assert!(
        alerts[0].1.contains(&rec.moved_to.display().to_string()),
        "{}",
        alerts[0].1
    );
    assert_eq!(store.pending(10).unwrap()[0].seq, rec.alert_seq);
    store.append(&heartbeat(1, 1)).unwrap();
    drop(store);

    // The next start is a normal one: no second move, no second alert.
    let (mut store, report) = Store::open_with(options(&path)).unwrap();
    assert!(report.recovered.is_none());
    assert_eq!(recovered_alerts(&mut store).len(), 1);
    assert_eq!(store.pending(10).unwrap().len(), 2);
}

fn damage_pages(path: &Path, first_page: u64, pages: u64) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(first_page * 4096)).unwrap();
    f.write_all(&garbage((pages * 4096) as usize, 42)).unwrap();
    f.sync_all().unwrap();
}

fn populated(path: &Path) {
    let mut store = Store::open_with(options(path)).unwrap().0;
    let batch: Vec<_> = (0..2_000).map(|i| heartbeat(i, 100)).collect();
    store.append_batch(&batch).unwrap();
    // Dropping the last connection checkpoints the WAL into the main file.
}

#[test]
fn damaged_pages_inside_a_valid_file_are_detected_and_recovered() {
    for check in [IntegrityCheck::Quick, IntegrityCheck::Full] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kiosk.db");
        populated(&path);
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len > 40 * 4096, "{len}");
        damage_pages(&path, 10, 20);

        let mut opts = options(&path);
        opts.check = check;
        let (mut store, report) = Store::open_with(opts).unwrap();
        let rec = report.recovered.expect("damage detected");
        assert_eq!(report.check, check);
        assert_eq!(
            std::fs::metadata(&rec.moved_to).unwrap().len(),
            len,
            "{check:?}"
        );
        assert_eq!(recovered_alerts(&mut store).len(), 1, "{check:?}");
        assert!(store.check(IntegrityCheck::Full).unwrap().is_empty());
    }
}

#[test]
fn a_cli_open_never_moves_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    std::fs::write(&path, garbage(4096, 7)).unwrap();
    let err = Store::open_existing(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("storage.path"), "{err}");
    assert!(err.to_string().contains("restart the daemon"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn an_empty_file_is_a_new_store_not_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    std::fs::write(&path, b"").unwrap();
    let (_store, report) = Store::open_with(options(&path)).unwrap();
    assert!(report.recovered.is_none());
    assert_eq!(report.migrated_from, 0);
}

#[test]
fn readable_rows_of_a_damaged_store_are_salvaged_with_their_ids_and_the_loss_is_named() {
    use std::collections::{BTreeMap, BTreeSet};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    let now = test_clock();
    let day_ms = 24 * 3600 * 1000;
    let (mut unsynced, mut old_synced, mut recent_costs) =
        (BTreeMap::new(), BTreeSet::new(), BTreeMap::new());
    {
        let mut store = Store::open_with(options(&path)).unwrap().0;
        let old: Vec<_> = (0..300)
            .map(|i| heartbeat(now - 3 * day_ms + i, 200))
            .collect();
        let seqs = store.append_batch(&old).unwrap();
        store.mark_synced(&seqs).unwrap();
        old_synced.extend(old.iter().map(|e| e.event_id));
        let sid = uuid::Uuid::now_v7();
        let costs: Vec<_> = (0..60)
            .map(|i| usage(sid, now - 3_600_000 + i, cost(1_000, 2_000)))
            .collect();
        let seqs = store.append_batch(&costs).unwrap();
        store.mark_synced(&seqs).unwrap();
        recent_costs.extend(seqs.into_iter().zip(costs));
        let mut fresh = Vec::new();
        for i in 0..400 {
            let sid = uuid::Uuid::now_v7();
            fresh.push(started(sid, now - 1_000_000 + i * 10));
            fresh.push(usage(sid, now - 1_000_000 + i * 10 + 1, cost(3, 4)));
            fresh.push(ended(sid, now - 1_000_000 + i * 10 + 2, 2));
            fresh.push(heartbeat(now - 1_000_000 + i * 10 + 3, 200));
        }
        let seqs = store.append_batch(&fresh).unwrap();
        unsynced.extend(seqs.into_iter().zip(fresh));
    }
    let len = std::fs::metadata(&path).unwrap().len();
    damage_pages(&path, len / 4096 / 2, 12);

    let (mut store, report) = Store::open_with(options(&path)).unwrap();
    let rec = report.recovered.expect("damage detected");
    let s = &rec.salvaged;
    assert_eq!(s.failed, None);
    assert!(s.unreadable_rows > 0, "the damage hit outbox rows: {s:?}");
    let lost = |seq: i64| s.unreadable.iter().any(|(a, b)| (*a..=*b).contains(&seq));

    let pending: BTreeMap<uuid::Uuid, jarvis_core::events::KioskEvent> = store
        .pending(100_000)
        .unwrap()
        .into_iter()
        .map(|e| (e.event.event_id, e.event))
        .collect();
    // Every unsynced event is either back, unchanged and under its own id, or named as lost.
    let mut back = 0;
    for (seq, ev) in &unsynced {
        match pending.get(&ev.event_id) {
            Some(copy) => {
                assert_eq!(copy, ev);
                back += 1;
            }
            None => assert!(lost(*seq), "seq {seq} neither salvaged nor reported lost"),
        }
    }
    assert!(back > 0);
    assert_eq!(s.pending, back);
    // Synced events are central's: old ones stay behind, today's costs return as synced.
    assert!(old_synced.iter().all(|id| !pending.contains_key(id)));
    assert!(
        recent_costs
            .values()
            .all(|e| !pending.contains_key(&e.event_id))
    );
    let costs_back = recent_costs.keys().filter(|seq| !lost(**seq)).count() as u64;
    assert_eq!(s.synced_costs, costs_back);
    let spent_before: u64 = 3 + 4 + 7 + 11;
    let spent = store.spent_since(now - day_ms).unwrap().0;
    let pending_costs = unsynced
        .values()
        .filter(|e| pending.contains_key(&e.event_id))
        .filter(|e| e.kind() == jarvis_core::events::EventKind::ResponseUsage)
        .count() as u64;
    assert_eq!(
        spent,
        costs_back * (1_000 + 2_000 + 7 + 11) + pending_costs * spent_before,
        "today's budget still counts what was salvaged"
    );

    // The loss is reported: the alert names how many rows and which.
    let alerts = recovered_alerts(&mut store);
    assert_eq!(alerts.len(), 1);
    let text = &alerts[0].1;
    assert!(
        text.contains(&format!("{} rows were unreadable", s.unreadable_rows)),
        "{text}"
    );
    assert!(
        text.contains(&format!("salvaged {back} unsynced events")),
        "{text}"
    );
    let (a, _) = s.unreadable[0];
    assert!(text.contains(&format!("outbox seq {a}")), "{text}");
}
