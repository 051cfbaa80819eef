//! A session a crash left open is ended `crashed` at the next start, and central derives its
//! row from that end like from any other: reason, end time, duration and cost.

use crate::central_support::{TestDb, append, open_store, sessions, settings, wait_drained};
use jarvis_core::health::Health;
use jarvis_sync::run_with_target;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_session_ended_crashed_at_start_up_is_derived_centrally() {
    let db = TestDb::migrated("crashed");
    let k = db.add_kiosk("k", "gym");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let mut events = sessions(1, 4);
    let end = events.pop().unwrap();
    let sid = end.session_id.unwrap();
    let started_at = events[0].occurred_at_ms;
    let last_at = events.last().unwrap().occurred_at_ms;
    append(&store, events).await;
    // The next start-up.
    let ended = store.call(|s| s.end_crashed_sessions()).await.unwrap();
    assert_eq!(ended.len(), 1);

    let stop = CancellationToken::new();
    let task = tokio::spawn(run_with_target(
        db.target(&k),
        settings(&k.kiosk_id, dir.path()),
        store.clone(),
        Health::new(&k.kiosk_id, 0),
        stop.clone(),
    ));
    wait_drained(&store, 60).await;
    stop.cancel();
    task.await.unwrap();
    let row = db.psql(&format!(
        "SELECT end_reason || ' ' || duration_ms || ' ' || \
                (extract(epoch FROM ended_at) * 1000)::bigint || ' ' || response_count || ' ' || \
                total_cost_usd || ' ' || reported_total_cost_usd \
         FROM openai_realtime_sessions WHERE session_id = '{sid}'"
    ));
    assert_eq!(
        row,
        format!(
            "crashed {} {last_at} 4 0.064000004 0.064000004",
            last_at - started_at
        )
    );
}
