//! Session limits: max cost, max duration and the idle timer, and the clock they run on.

use super::*;

#[test]
fn max_cost_asks_for_a_goodbye_then_hangs_up_when_it_is_said() {
    let mut k = Kiosk::new();
    let id = k.live("BADGE-A");
    assert!(!says_goodbye(&k.usage(600_000_000)));
    let ds = k.usage(400_000_000);
    assert!(says_goodbye(&ds));
    assert!(!hung_up(&ds));
    assert_eq!(k.m.lifecycle(), Lifecycle::Ending);
    k.signal(Signal::OutputAudioStarted);
    let goodbye_cost = k.usage(5_000_000);
    assert_eq!(
        payloads(&goodbye_cost).len(),
        1,
        "goodbye usage is recorded"
    );
    assert!(
        k.signal(Signal::ResponseDone).is_empty(),
        "audio still playing"
    );
    assert!(
        k.signal(Signal::OutputAudioStopped).is_empty(),
        "speaker tail plays"
    );
    assert!(k.wait(HANGUP - 1).is_empty());
    let ds = k.wait(1);
    assert!(ds.contains(&Decision::HangUp {
        session_id: id,
        reason: EndReason::MaxCost,
        detail: None
    }));
    match payloads(&ds)[0] {
        EventPayload::SessionEnded { reason, cost, .. } => {
            assert_eq!(*reason, EndReason::MaxCost);
            assert_eq!(cost.total(), NanoUsd(1_005_000_000));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(k.m.lifecycle(), Lifecycle::Cooldown);
}

#[test]
fn max_duration_goodbye_is_bounded_by_the_grace_timeout() {
    let mut k = Kiosk::with(|s| s.idle_timeout_ms = u64::MAX / 4, NanoUsd::ZERO);
    k.live("BADGE-A");
    let ds = k.wait(600_000);
    assert!(says_goodbye(&ds));
    assert!(ds.iter().any(|d| matches!(
        d,
        Decision::SendRealtime { command: RealtimeCommand::SayGoodbye { instructions }, .. }
            if instructions.contains("time")
    )));
    assert!(k.wait(DEFAULT_GOODBYE_GRACE_MS - 1).is_empty());
    let ds = k.wait(1);
    assert_eq!(ended(&ds), Some(EndReason::MaxDuration));
    assert!(ds.iter().any(|d| matches!(
        d,
        Decision::HangUp { detail: Some(detail), .. } if detail.contains("grace")
    )));
}

#[test]
fn idle_timeout_counts_member_silence_not_jarvis_speech() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    k.wait(50_000);
    k.signal(Signal::SpeechStarted);
    assert!(!hung_up(&k.wait(59_000)), "speech restarted the timer");
    k.signal(Signal::OutputAudioStarted);
    assert!(!hung_up(&k.wait(120_000)), "never idle while JARVIS speaks");
    k.signal(Signal::OutputAudioStopped);
    assert!(!hung_up(&k.wait(59_999)));
    let ds = k.wait(1);
    assert_eq!(ended(&ds), Some(EndReason::IdleTimeout));
    assert!(prompts(&ds).is_empty());
}

#[test]
fn transcript_also_resets_the_idle_timer() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    k.wait(59_000);
    k.signal(Signal::TranscriptCompleted {
        text: "quels sont les horaires ?".into(),
    });
    assert!(!hung_up(&k.wait(59_000)));
    assert_eq!(ended(&k.wait(1_000)), Some(EndReason::IdleTimeout));
}

#[test]
fn monotonic_time_going_backwards_does_not_rewind_timers() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    k.wait(59_000);
    k.mono = 0;
    k.signal(Signal::SpeechStarted);
    k.mono = 118_999;
    assert!(
        !hung_up(&k.send(Input::Tick)),
        "speech counted at 59 s, not at 0"
    );
    assert_eq!(ended(&k.wait(1)), Some(EndReason::IdleTimeout));
}

#[test]
fn a_reload_applies_new_limits_to_the_live_session_and_keeps_todays_spend() {
    let mut k = Kiosk::with(|_| {}, NanoUsd(5_000_000_000));
    k.live("BADGE-A");
    k.wait(10_000);
    k.m.reload(Settings {
        idle_timeout_ms: 15_000,
        daily_budget: NanoUsd(4_000_000_000),
        ..Settings::default()
    });
    assert!(!hung_up(&k.wait(4_999)));
    let ds = k.wait(1);
    assert_eq!(ended(&ds), Some(EndReason::IdleTimeout));
    assert_eq!(k.m.spent_today(), NanoUsd(5_000_000_000));
    k.wait(10_000);
    assert_eq!(refused(&k.scan("BADGE-B")), Some("daily_budget"));
}
