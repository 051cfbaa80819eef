//! Every lifecycle state against every kind of input, in one table.

use super::*;

/// The whole transition matrix: every lifecycle state against every kind of input.
#[test]
fn transition_matrix() {
    use Lifecycle::*;
    type Setup = fn(&mut Kiosk);
    type MakeInput = fn(&mut Kiosk, Uuid) -> Input;
    let setups: [(Lifecycle, Setup); 7] = [
        (Idle, |_| {}),
        (Degraded, |k| {
            k.send(Input::BreakerOpen(true));
        }),
        (LookingUp, |k| {
            k.scan("BADGE-A");
        }),
        (Connecting, |k| {
            k.scan("BADGE-A");
            k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
        }),
        (Live, |k| {
            k.live("BADGE-A");
        }),
        (Ending, |k| {
            k.live("BADGE-A");
            k.signal(Signal::OutputAudioStarted);
            k.signal(Signal::EndSessionCalled {
                call_id: "c".into(),
            });
        }),
        (Cooldown, |k| {
            k.live("BADGE-A");
            k.fail(FailureKind::ConnectionLost);
        }),
    ];
    let inputs: [(&str, MakeInput); 15] = [
        ("scan", |k, _| Input::BadgeScanned {
            scan: ScanId(50),
            badge: BadgeKey::new("BADGE-B"),
            read_at_ms: k.mono,
        }),
        ("resolve", |k, _| Input::MemberResolved {
            scan: k.m.pending_scan().unwrap_or(ScanId(1)),
            lookup: BadgeLookup::Found(member(MembershipStatus::Active)),
        }),
        ("connected", |_, id| Input::RealtimeConnected {
            session_id: id,
        }),
        ("speech", |_, id| Input::Realtime {
            session_id: id,
            signal: Signal::SpeechStarted,
        }),
        ("bye", |_, id| Input::Realtime {
            session_id: id,
            signal: Signal::TranscriptCompleted {
                text: "au revoir".into(),
            },
        }),
        ("usage", |_, id| Input::Realtime {
            session_id: id,
            signal: usage_signal(1_000_000_000),
        }),
        ("end_call", |_, id| Input::Realtime {
            session_id: id,
            signal: Signal::EndSessionCalled {
                call_id: "e".into(),
            },
        }),
        ("stopped", |_, id| Input::Realtime {
            session_id: id,
            signal: Signal::OutputAudioStopped,
        }),
        ("done", |_, id| Input::Realtime {
            session_id: id,
            signal: Signal::ResponseDone,
        }),
        ("lost", |_, id| Input::RealtimeFailed {
            session_id: id,
            kind: FailureKind::ConnectionLost,
            reason: "x".into(),
        }),
        ("breaker", |_, _| Input::BreakerOpen(true)),
        ("audio_lost", |_, _| Input::AudioLost),
        ("restored", |_, _| Input::AudioRestored),
        ("tick", |_, _| Input::Tick),
        ("shutdown", |_, _| Input::Shutdown),
    ];
    // One row per setup, one letter per input: I=idle D=degraded L=looking_up C=connecting
    // V=live E=ending K=cooldown.
    let expected = [
        "LIIIIIIIIIDDIII",
        "DDDDDDDDDDDDDDD",
        "LCLLLLLLLLLDLLI",
        "CCVCCKCCCKCKCCI",
        "VVVVEEEVVKVKVVI",
        "EEEEEEEEEKEKEEI",
        "KKKKKKKKKKKKKKI",
    ];
    let letter = |l: Lifecycle| match l {
        Idle => 'I',
        Degraded => 'D',
        LookingUp => 'L',
        Connecting => 'C',
        Live => 'V',
        Ending => 'E',
        Cooldown => 'K',
    };
    for ((state, setup), row) in setups.iter().zip(expected) {
        let mut got = String::new();
        for (_, make) in &inputs {
            let mut k = Kiosk::new();
            setup(&mut k);
            assert_eq!(k.m.lifecycle(), *state);
            let id = k.m.current_session().unwrap_or(Uuid::from_u128(1));
            let input = make(&mut k, id);
            k.send(input);
            got.push(letter(k.m.lifecycle()));
        }
        let names: Vec<_> = inputs.iter().map(|(n, _)| *n).collect();
        assert_eq!(got, row, "from {state:?} with inputs {names:?}");
    }
}
