//! The `storage.max_bytes` bound: least important events go first, critical ones never, and
//! the pressure is reported (stats + one rate-limited alert), on real SQLite files.

use crate::support::*;
use jarvis_core::events::{EventKind, EventPayload, Importance, Severity};
use jarvis_store::{Store, StoredEvent};
use rusqlite::Connection;
use uuid::Uuid;

const MAX: u64 = 64 * 1024;

fn open_bounded(dir: &tempfile::TempDir, max_bytes: u64) -> Store {
    let mut opts = options(&dir.path().join("kiosk.db"));
    opts.max_bytes = max_bytes;
    Store::open_with(opts).unwrap().0
}

fn count(events: &[StoredEvent], kind: EventKind) -> usize {
    events.iter().filter(|e| e.event.kind() == kind).count()
}

fn pressure_alerts(events: &[StoredEvent]) -> Vec<Severity> {
    events
        .iter()
        .filter_map(|e| match &e.event.payload {
            EventPayload::Alert { code, severity, .. } if code == "buffer_pressure" => {
                Some(*severity)
            }
            _ => None,
        })
        .collect()
}

/// Appends 10 complete sessions (30 critical events).
fn append_sessions(store: &mut Store) -> Vec<Uuid> {
    (0..10)
        .map(|i| {
            let sid = Uuid::now_v7();
            store.append(&started(sid, i * 10)).unwrap();
            store
                .append(&usage(sid, i * 10 + 1, cost(1_000, 2_000)))
                .unwrap();
            store.append(&ended(sid, i * 10 + 2, 2)).unwrap();
            sid
        })
        .collect()
}

#[test]
fn low_events_go_first_critical_ones_survive_and_one_alert_is_raised() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_bounded(&dir, MAX);
    append_sessions(&mut store);
    for i in 0..10 {
        store.append(&alert(100 + i, 500)).unwrap();
    }
    let first_low = store.append(&heartbeat(200, 1_000)).unwrap();
    for i in 1..80 {
        store.append(&heartbeat(200 + i, 1_000)).unwrap();
    }
    let stats = store.stats().unwrap();
    assert!(stats.dropped_low > 0, "{stats:?}");
    assert_eq!(stats.dropped_normal, 0, "normal ones wait for the lows");
    assert_eq!(stats.dropped, stats.dropped_low);
    assert!(stats.bytes <= MAX, "{stats:?}");
    assert!(!stats.over_bound);
    assert!(stats.last_drop_at_ms.is_some());

    let all = store.pending(10_000).unwrap();
    assert_eq!(count(&all, EventKind::SessionStarted), 10);
    assert_eq!(count(&all, EventKind::ResponseUsage), 10);
    assert_eq!(count(&all, EventKind::SessionEnded), 10);
    assert_eq!(alerts_with_code(&all, "test"), 10, "normal events kept");
    assert!(
        all.iter().all(|e| e.seq != first_low),
        "oldest low event dropped first"
    );
    assert!(
        count(&all, EventKind::Heartbeat) > 0,
        "newest lows kept: drops stop at 90 % of the bound"
    );
    assert_eq!(pressure_alerts(&all), vec![Severity::Warning]);
}

#[test]
fn pressure_alerts_are_rate_limited_not_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_bounded(&dir, MAX);
    for i in 0..500 {
        store.append(&heartbeat(i, 1_000)).unwrap();
        advance(10);
    }
    let dropped_before = store.stats().unwrap().dropped;
    assert!(dropped_before > 200, "several drop episodes happened");
    assert_eq!(pressure_alerts(&store.pending(10_000).unwrap()).len(), 1);

    advance(60_000);
    for i in 0..100 {
        store.append(&heartbeat(1_000 + i, 1_000)).unwrap();
    }
    assert_eq!(
        pressure_alerts(&store.pending(10_000).unwrap()).len(),
        2,
        "a new alert once the interval passed"
    );
}

#[test]
fn already_synced_events_are_dropped_before_unsynced_ones_whatever_their_importance() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_bounded(&dir, MAX);
    // Synced normal alerts and synced critical costs (days old: not today's budget).
    let synced: Vec<(i64, bool)> = (0..30)
        .map(|i| {
            let critical = i % 2 == 1;
            let ev = if critical {
                usage(Uuid::now_v7(), i, cost(1, 2))
            } else {
                alert(i, 1_000)
            };
            (store.append(&ev).unwrap(), critical)
        })
        .collect();
    let seqs: Vec<i64> = synced.iter().map(|(seq, _)| *seq).collect();
    store.mark_synced(&seqs).unwrap();
    let unsynced: Vec<i64> = (0..35)
        .map(|i| store.append(&heartbeat(100 + i, 1_000)).unwrap())
        .collect();
    let stats = store.stats().unwrap();
    assert_eq!(stats.dropped, 0, "nothing lost: {stats:?}");
    assert!(stats.synced < 30, "synced rows made room: {stats:?}");
    assert!(stats.bytes <= MAX, "{stats:?}");
    let pending: Vec<i64> = store
        .pending(1_000)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    for seq in &unsynced {
        assert!(pending.contains(seq), "unsynced {seq} kept");
    }
    let raw = Connection::open(dir.path().join("kiosk.db")).unwrap();
    let critical_gone = synced.iter().filter(|(seq, critical)| {
        let n: i64 = raw
            .query_row("SELECT count(*) FROM outbox WHERE seq = ?1", [seq], |r| {
                r.get(0)
            })
            .unwrap();
        *critical && n == 0
    });
    assert!(critical_gone.count() > 0, "synced critical rows go too");
}

#[test]
fn synced_costs_of_the_last_day_stay_for_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_bounded(&dir, MAX);
    let now = test_clock();
    let recent: Vec<i64> = (0..20)
        .map(|i| {
            store
                .append(&usage(
                    Uuid::now_v7(),
                    now - 3_600_000 + i,
                    cost(1_000, 2_000),
                ))
                .unwrap()
        })
        .collect();
    store.mark_synced(&recent).unwrap();
    let spent = store.spent_since(now - 86_400_000).unwrap();
    for i in 0..120 {
        store.append(&heartbeat(now + i, 1_000)).unwrap();
    }
    let stats = store.stats().unwrap();
    assert!(stats.dropped_low > 0, "{stats:?}");
    assert_eq!(stats.synced, 20, "today's synced costs are kept: {stats:?}");
    assert_eq!(store.spent_since(now - 86_400_000).unwrap(), spent);
}

#[test]
fn critical_events_alone_over_the_bound_are_kept_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    let mut store = open_bounded(&dir, 8 * 1024);
    for i in 0..5 {
        store.append(&heartbeat(i, 200)).unwrap();
    }
    let sids = append_sessions(&mut store);
    let stats = store.stats().unwrap();
    assert!(stats.over_bound, "{stats:?}");
    assert!(stats.bytes > stats.max_bytes);
    assert_eq!(stats.dropped_low, 5, "every low event went first");
    assert_eq!(stats.dropped_normal, 0, "pressure alerts are never dropped");

    let all = store.pending(10_000).unwrap();
    assert_eq!(count(&all, EventKind::SessionStarted), sids.len());
    assert_eq!(count(&all, EventKind::ResponseUsage), sids.len());
    assert_eq!(count(&all, EventKind::SessionEnded), sids.len());
    assert!(
        all.iter()
            .all(|e| e.event.kind().importance() == Importance::Critical
                || e.event.kind() == EventKind::Alert)
    );
    let alerts = pressure_alerts(&all);
    assert_eq!(
        alerts,
        vec![Severity::Warning, Severity::Critical],
        "the drop alert, then entering the over-bound state (not rate-limited)"
    );

    // Once the sync drains and retention prunes, the store leaves the over-bound state.
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    store.mark_synced(&seqs).unwrap();
    advance(1);
    store.prune_synced(test_clock()).unwrap();
    store.append(&heartbeat(999, 10)).unwrap();
    assert!(!store.stats().unwrap().over_bound);
    drop(store);
    let raw = Connection::open(&path).unwrap();
    let critical: i64 = raw
        .query_row(
            "SELECT count(*) FROM outbox WHERE importance = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(critical, 0, "pruned only after sync");
}

#[test]
fn a_lower_bound_at_open_is_enforced_immediately() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_bounded(&dir, 1024 * 1024);
    for i in 0..100 {
        store.append(&heartbeat(i, 1_000)).unwrap();
    }
    assert_eq!(store.stats().unwrap().dropped, 0);
    drop(store);
    let store = open_bounded(&dir, MAX);
    let stats = store.stats().unwrap();
    assert!(stats.dropped_low > 0 && stats.bytes <= MAX, "{stats:?}");
    assert_eq!(stats.max_bytes, MAX);
}

mod properties {
    use super::*;
    use jarvis_core::events::KioskEvent;
    use proptest::prelude::*;

    /// One step: (kind: 0 critical, 1 normal, 2 low; payload padding; mark everything synced after).
    fn steps() -> impl Strategy<Value = Vec<Vec<(u8, usize)>>> {
        prop::collection::vec(prop::collection::vec((0u8..3, 0usize..3_000), 1..8), 1..25)
    }

    fn make(kind: u8, pad: usize, i: i64) -> KioskEvent {
        match kind {
            0 => usage(Uuid::now_v7(), i, cost(pad as u64, 1)),
            1 => alert(i, pad),
            _ => heartbeat(i, pad),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        #[test]
        fn unsynced_critical_events_are_never_dropped_and_the_bound_holds(
            batches in steps(),
            sync_every in 2usize..6,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("kiosk.db");
            let max = 24 * 1024;
            let mut store = open_bounded(&dir, max);
            let mut critical = Vec::new();
            let mut others = Vec::new();
            let mut synced = std::collections::BTreeSet::new();
            let mut i = 0;
            for (n, batch) in batches.iter().enumerate() {
                let evs: Vec<_> = batch.iter().map(|(k, pad)| { i += 1; make(*k, *pad, i) }).collect();
                for (ev, (k, _)) in evs.iter().zip(batch) {
                    let id = ev.event_id.to_string();
                    if *k == 0 { critical.push(id) } else { others.push(id) }
                }
                store.append_batch(&evs).unwrap();
                if n % sync_every == 0 {
                    let pending = store.pending(10_000).unwrap();
                    synced.extend(pending.iter().map(|e| e.event.event_id.to_string()));
                    let seqs: Vec<i64> = pending.iter().map(|e| e.seq).collect();
                    store.mark_synced(&seqs).unwrap();
                }
            }
            let stats = store.stats().unwrap();
            let raw = Connection::open(&path).unwrap();
            let present = |id: &str| -> i64 {
                raw.query_row("SELECT count(*) FROM outbox WHERE event_id = ?1", [id], |r| r.get(0)).unwrap()
            };
            for id in &critical {
                prop_assert!(present(id) == 1 || synced.contains(id), "unsynced critical event {} lost", id);
            }
            // Synced rows here are all old (not today's budget): every one is droppable.
            let (accounted, droppable_left): (i64, i64) = raw.query_row(
                "SELECT coalesce(sum(size_bytes), 0),
                        coalesce(sum(importance < 2 OR synced_at_ms IS NOT NULL), 0) FROM outbox",
                [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            prop_assert_eq!(accounted as u64, stats.bytes, "trigger accounting drifted");
            prop_assert!(stats.bytes <= max || stats.over_bound, "{:?}", stats);
            if stats.over_bound {
                prop_assert_eq!(droppable_left, 0, "over the bound while droppable events remain");
            }
            let lost = others.iter().filter(|id| present(id) == 0 && !synced.contains(*id)).count();
            prop_assert_eq!(stats.dropped, lost as u64, "dropped counts losses only");
        }
    }
}
