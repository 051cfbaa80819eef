//! A session the process never ended (kill -9, power cut) is ended `crashed` at the next open,
//! with its cost so far and its duration up to its last recorded event, on a real file.

use crate::support::*;
use jarvis_core::events::{EndReason, EventKind, EventPayload};
use jarvis_core::money::NanoUsd;
use jarvis_store::Store;
use uuid::Uuid;

#[test]
fn an_open_session_is_ended_crashed_with_its_cost_and_last_event_time_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    let (open_sid, done_sid) = (Uuid::now_v7(), Uuid::now_v7());
    {
        let mut store = Store::open_with(options(&path)).unwrap().0;
        store.append(&started(done_sid, 1_000)).unwrap();
        store.append(&ended(done_sid, 2_000, 1_000)).unwrap();
        store.append(&started(open_sid, 10_000)).unwrap();
        store
            .append(&usage(open_sid, 12_000, cost(1_000, 2_000)))
            .unwrap();
        store.append(&transcription(open_sid, 14_500, 300)).unwrap();
        // The process dies here: no session_ended is ever written.
    }
    let mut store = Store::open_with(options(&path)).unwrap().0;
    let ended = store.end_crashed_sessions().unwrap();
    assert_eq!(ended.len(), 1, "only the open session: {ended:?}");
    let end = &ended[0];
    assert_eq!(end.session_id, Some(open_sid));
    assert_eq!(
        end.occurred_at_ms, 14_500,
        "stamped at its last recorded event"
    );
    let EventPayload::SessionEnded {
        reason,
        duration_ms,
        tokens,
        cost: charged,
        ..
    } = &end.payload
    else {
        panic!("{end:?}")
    };
    assert_eq!(*reason, EndReason::Crashed);
    assert_eq!(*duration_ms, 4_500);
    assert_eq!(charged.total(), NanoUsd(1_000 + 2_000 + 7 + 11 + 300));
    assert_eq!(tokens.output_audio, 200);

    // Recorded: in the outbox for central, and in the roll-up `status` reads.
    let pending = store.pending(100).unwrap();
    assert_eq!(
        pending
            .iter()
            .filter(|e| e.event.kind() == EventKind::SessionEnded)
            .count(),
        2
    );
    let recent = store.recent_sessions(10).unwrap();
    let row = recent.iter().find(|s| s.session_id == open_sid).unwrap();
    assert_eq!(row.end_reason.as_deref(), Some("crashed"));
    assert_eq!(row.ended_at_ms, Some(14_500));
    assert_eq!(row.duration_ms, Some(4_500));
    assert_eq!(row.total_nusd, NanoUsd(3_318));
    let done = recent.iter().find(|s| s.session_id == done_sid).unwrap();
    assert_eq!(
        done.end_reason.as_deref(),
        Some("goodbye"),
        "an ended session is untouched"
    );

    // Once ended, never again.
    drop(store);
    let mut store = Store::open_with(options(&path)).unwrap().0;
    assert!(store.end_crashed_sessions().unwrap().is_empty());
}
