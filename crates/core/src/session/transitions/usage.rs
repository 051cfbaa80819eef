//! Usage and cost: what counts toward a session, its totals and progress, usage after the hang-up.

use super::*;

#[test]
fn late_usage_of_an_ended_session_is_still_recorded() {
    let mut k = Kiosk::new();
    let old = k.live("BADGE-A");
    k.send(Input::Shutdown);
    let ds = k.send(Input::Realtime {
        session_id: old,
        signal: usage_signal(7),
    });
    assert_eq!(ds.len(), 1);
    match &ds[0] {
        Decision::Record(e) => assert_eq!(e.session_id, Some(old)),
        other => panic!("{other:?}"),
    }
    assert_eq!(k.m.spent_today(), NanoUsd(7));
    let stranger = k.send(Input::Realtime {
        session_id: Uuid::from_u128(u128::MAX),
        signal: usage_signal(7),
    });
    assert!(stranger.is_empty(), "usage of a session we never had");
    let not_usage = k.send(Input::Realtime {
        session_id: old,
        signal: Signal::EndSessionCalled {
            call_id: "c".into(),
        },
    });
    assert!(not_usage.is_empty());
}

#[test]
fn transcription_usage_counts_toward_the_session_cost() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    let ds = k.signal(Signal::TranscriptionUsage {
        item_id: "item_1".into(),
        cost: CostBreakdown {
            transcription_nusd: NanoUsd(1_000_000_000),
            ..Default::default()
        },
        raw_usage: serde_json::json!({"seconds": 3}),
    });
    assert!(matches!(
        payloads(&ds)[0],
        EventPayload::TranscriptionUsage { model, .. } if model == "gpt-4o-mini-transcribe"
    ));
    assert!(says_goodbye(&ds), "transcription alone reached max cost");
}

#[test]
fn session_ended_totals_add_up_the_usage() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    k.usage(10);
    k.usage(32);
    k.wait(1_000);
    let ds = k.send(Input::Shutdown);
    match payloads(&ds)[0] {
        EventPayload::SessionEnded {
            tokens,
            cost,
            duration_ms,
            ..
        } => {
            assert_eq!(cost.total(), NanoUsd(42));
            assert_eq!(tokens.output_audio, 40);
            assert_eq!(*duration_ms, 1_000);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn progress_shows_the_cost_so_far_until_the_session_ends() {
    let mut k = Kiosk::new();
    assert_eq!(k.m.session_progress(), None);
    k.wait(500);
    let id = k.live("BADGE-A");
    k.usage(10);
    k.wait(2_000);
    k.usage(32);
    let p = k.m.session_progress().expect("live session");
    assert_eq!(
        (p.session_id, p.started_at_ms, p.cost),
        (id, WALL0 + 500, NanoUsd(42))
    );
    assert_eq!(p.first_name.as_deref(), Some("Camille"));
    k.send(Input::Shutdown);
    assert_eq!(k.m.session_progress(), None);
}
