//! Ending a session: `end_session`, goodbye phrases and the hang-up delay, and shutdown.

use super::*;

#[test]
fn end_session_while_speaking_waits_for_the_audio_to_stop() {
    let mut k = Kiosk::new();
    let id = k.live("BADGE-A");
    k.signal(Signal::OutputAudioStarted);
    let ds = k.signal(Signal::EndSessionCalled {
        call_id: "call_1".into(),
    });
    assert_eq!(
        ds[0],
        Decision::SendRealtime {
            session_id: id,
            command: RealtimeCommand::FunctionCallOutput {
                call_id: "call_1".into(),
                output: END_SESSION_OUTPUT.into(),
            },
        }
    );
    assert!(!hung_up(&ds));
    assert!(!hung_up(&k.signal(Signal::ResponseDone)));
    assert!(!hung_up(&k.signal(Signal::OutputAudioStopped)));
    assert_eq!(ended(&k.wait(HANGUP)), Some(EndReason::Goodbye));
}

#[test]
fn end_session_in_silence_hangs_up_after_the_delay_with_trailing_usage() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    let ds = k.signal(Signal::EndSessionCalled {
        call_id: "call_1".into(),
    });
    assert!(!hung_up(&ds));
    k.mono += HANGUP - 1;
    k.usage(123);
    let ds = k.wait(1);
    assert_eq!(ended(&ds), Some(EndReason::Goodbye));
    match payloads(&ds)[0] {
        EventPayload::SessionEnded { cost, .. } => assert_eq!(cost.total(), NanoUsd(123)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn jarvis_speaking_again_postpones_the_hang_up() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    k.signal(Signal::EndSessionCalled {
        call_id: "call_1".into(),
    });
    k.mono += 100;
    k.signal(Signal::OutputAudioStarted);
    assert!(!hung_up(&k.wait(HANGUP * 3)));
    k.signal(Signal::OutputAudioStopped);
    assert!(!hung_up(&k.wait(HANGUP - 1)));
    assert_eq!(ended(&k.wait(1)), Some(EndReason::Goodbye));
}

#[test]
fn goodbye_phrase_waits_for_the_reply_when_none_came_yet() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    k.signal(Signal::SpeechStarted);
    let ds = k.signal(Signal::TranscriptCompleted {
        text: "Merci, au revoir !".into(),
    });
    assert!(!hung_up(&ds));
    assert_eq!(k.m.lifecycle(), Lifecycle::Ending);
    k.signal(Signal::OutputAudioStarted);
    assert!(!hung_up(&k.signal(Signal::ResponseDone)));
    assert!(!hung_up(&k.signal(Signal::OutputAudioStopped)));
    assert_eq!(ended(&k.wait(HANGUP)), Some(EndReason::GoodbyePhrase));
}

#[test]
fn goodbye_phrase_after_the_reply_awaits_no_further_response() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    k.signal(Signal::SpeechStarted);
    k.signal(Signal::ResponseDone);
    let ds = k.signal(Signal::TranscriptCompleted {
        text: "À BIENTÔT".into(),
    });
    assert!(!hung_up(&ds));
    assert_eq!(ended(&k.wait(HANGUP)), Some(EndReason::GoodbyePhrase));
}

#[test]
fn end_session_confirming_a_goodbye_phrase_is_answered_and_becomes_the_reason() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    k.signal(Signal::SpeechStarted);
    k.signal(Signal::TranscriptCompleted {
        text: "au revoir".into(),
    });
    let ds = k.signal(Signal::EndSessionCalled {
        call_id: "call_2".into(),
    });
    assert!(matches!(ds[0], Decision::SendRealtime { .. }));
    assert_eq!(ended(&ds), None);
    k.signal(Signal::ResponseDone);
    assert_eq!(ended(&k.wait(HANGUP)), Some(EndReason::Goodbye));
}

#[test]
fn shutdown_ends_a_live_session_and_refuses_nothing_after() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    let ds = k.send(Input::Shutdown);
    assert_eq!(ended(&ds), Some(EndReason::Shutdown));
    assert!(prompts(&ds).is_empty());
    assert_eq!(k.m.lifecycle(), Lifecycle::Idle);
    k.mono += 10_000;
    assert!(
        k.scan("BADGE-B").is_empty(),
        "no scan accepted while stopping"
    );
}

#[test]
fn shutdown_during_ending_keeps_the_ending_reason() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    k.signal(Signal::OutputAudioStarted);
    k.signal(Signal::EndSessionCalled {
        call_id: "c".into(),
    });
    assert_eq!(ended(&k.send(Input::Shutdown)), Some(EndReason::Goodbye));
}

#[test]
fn shutdown_drops_a_pending_lookup_and_cooldown() {
    for setup in [0, 1] {
        let mut k = Kiosk::new();
        k.scan("BADGE-A");
        if setup == 1 {
            k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
            k.fail(FailureKind::ConnectFailed);
            assert_eq!(k.m.lifecycle(), Lifecycle::Cooldown);
        }
        let ds = k.send(Input::Shutdown);
        assert_eq!(ended(&ds), None);
        assert_eq!(k.m.lifecycle(), Lifecycle::Idle);
    }
}
