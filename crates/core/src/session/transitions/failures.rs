//! Failures: the Realtime connection, the circuit breaker and the audio devices.

use super::*;

#[test]
fn realtime_failures_table() {
    // (connected first?, failure, end reason)
    let cases = [
        (false, FailureKind::ConnectFailed, EndReason::ConnectFailed),
        (false, FailureKind::ConnectionLost, EndReason::ConnectFailed),
        (false, FailureKind::Error, EndReason::ConnectFailed),
        (true, FailureKind::ConnectionLost, EndReason::ConnectionLost),
        (true, FailureKind::ConnectFailed, EndReason::ConnectFailed),
        (true, FailureKind::Error, EndReason::RealtimeError),
    ];
    for (connected, kind, want) in cases {
        let mut k = Kiosk::new();
        if connected {
            k.live("BADGE-A");
        } else {
            k.scan("BADGE-A");
            k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
        }
        let ds = k.fail(kind);
        assert_eq!(ended(&ds), Some(want), "{connected} {kind:?}");
        assert_eq!(prompts(&ds), vec![Prompt::Apology]);
        assert!(ds.iter().any(|d| matches!(
            d,
            Decision::HangUp { detail: Some(d), .. } if d == "ice timeout"
        )));
    }
}

#[test]
fn a_broker_refusal_ends_the_session_with_its_own_prompt_and_cause() {
    for (refusal, cause, prompt) in [
        (
            BrokerRefusal::KioskBudget,
            "broker_kiosk_budget",
            Prompt::BudgetReached,
        ),
        (
            BrokerRefusal::GymBudget,
            "broker_gym_budget",
            Prompt::BudgetReached,
        ),
        (
            BrokerRefusal::RateLimited,
            "broker_rate_limited",
            Prompt::Unavailable,
        ),
        (
            BrokerRefusal::Disabled,
            "broker_kiosk_disabled",
            Prompt::Unavailable,
        ),
    ] {
        let mut k = Kiosk::new();
        k.scan("BADGE-A");
        k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
        let ds = k.fail(FailureKind::Refused(refusal));
        assert_eq!(ended(&ds), Some(EndReason::ConnectFailed), "{refusal:?}");
        assert_eq!(refused(&ds), Some(cause));
        assert_eq!(prompts(&ds), vec![prompt], "no apology: nothing failed");
        assert_eq!(
            BrokerRefusal::from_code(match refusal {
                BrokerRefusal::KioskBudget => "kiosk_budget_exhausted",
                BrokerRefusal::GymBudget => "gym_budget_exhausted",
                BrokerRefusal::RateLimited => "kiosk_rate_limited",
                BrokerRefusal::Disabled => "kiosk_disabled",
            }),
            Some(refusal)
        );
    }
    assert_eq!(BrokerRefusal::from_code("kiosk_token_invalid"), None);
    // Once live, a refusal cannot happen; were one reported, it is a failure like any other.
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    let ds = k.fail(FailureKind::Refused(BrokerRefusal::Disabled));
    assert_eq!(ended(&ds), Some(EndReason::RealtimeError));
}

#[test]
fn connection_lost_while_ending_keeps_the_reason_without_apology() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    k.signal(Signal::OutputAudioStarted);
    k.signal(Signal::EndSessionCalled {
        call_id: "c".into(),
    });
    let ds = k.fail(FailureKind::ConnectionLost);
    assert_eq!(ended(&ds), Some(EndReason::Goodbye));
    assert!(prompts(&ds).is_empty());
}

#[test]
fn open_breaker_degrades_and_refuses_with_unavailable() {
    let mut k = Kiosk::new();
    let ds = k.send(Input::BreakerOpen(true));
    assert_eq!(ds, vec![Decision::Lifecycle(Lifecycle::Degraded)]);
    let ds = k.scan("BADGE-A");
    assert_eq!(refused(&ds), Some("breaker_open"));
    assert_eq!(prompts(&ds), vec![Prompt::Unavailable]);
    let ds = k.send(Input::BreakerOpen(false));
    assert_eq!(ds, vec![Decision::Lifecycle(Lifecycle::Idle)]);
}

#[test]
fn breaker_opening_during_lookup_refuses_at_resolve() {
    let mut k = Kiosk::new();
    k.scan("BADGE-A");
    k.send(Input::BreakerOpen(true));
    let ds = k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    assert_eq!(refused(&ds), Some("breaker_open"));
    assert_eq!(k.m.lifecycle(), Lifecycle::Degraded);
}

#[test]
fn audio_lost_ends_the_session_and_degrades_until_restored() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    let ds = k.send(Input::AudioLost);
    assert_eq!(ended(&ds), Some(EndReason::AudioLost));
    assert!(prompts(&ds).is_empty());
    let ds = k.wait(3_000);
    assert_eq!(ds, vec![Decision::Lifecycle(Lifecycle::Degraded)]);
    let ds = k.scan("BADGE-B");
    assert_eq!(refused(&ds), Some("audio_unavailable"));
    assert_eq!(prompts(&ds), vec![Prompt::Unavailable]);
    assert_eq!(
        k.send(Input::AudioRestored),
        vec![Decision::Lifecycle(Lifecycle::Idle)]
    );
}

#[test]
fn audio_lost_during_lookup_drops_it() {
    let mut k = Kiosk::new();
    k.scan("BADGE-A");
    let ds = k.send(Input::AudioLost);
    assert_eq!(ds, vec![Decision::Lifecycle(Lifecycle::Degraded)]);
    assert_eq!(k.m.pending_scan(), None);
}

#[test]
fn a_failing_store_degrades_and_refuses_new_sessions_until_it_records_again() {
    let mut k = Kiosk::new();
    let ds = k.send(Input::StoreFailing(true));
    assert_eq!(ds, vec![Decision::Lifecycle(Lifecycle::Degraded)]);
    let ds = k.scan("BADGE-A");
    assert_eq!(refused(&ds), Some("store_unavailable"));
    assert_eq!(prompts(&ds), vec![Prompt::Unavailable]);
    let ds = k.send(Input::StoreFailing(false));
    assert_eq!(ds, vec![Decision::Lifecycle(Lifecycle::Idle)]);
    let ds = k.wait(3_000);
    assert!(refused(&ds).is_none());
    let ds = k.scan("BADGE-B");
    assert!(
        ds.iter()
            .any(|d| matches!(d, Decision::LookUpMember { .. })),
        "{ds:?}"
    );
}

#[test]
fn the_store_failing_during_lookup_refuses_at_resolve() {
    let mut k = Kiosk::new();
    k.scan("BADGE-A");
    k.send(Input::StoreFailing(true));
    let ds = k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    assert_eq!(refused(&ds), Some("store_unavailable"));
}
