//! GPT-Live sessions: per-second metering against the limits, the close handshake before the
//! end, the server's own ends, and the model the broker actually runs.

use super::*;
use crate::events::LiveTotals;
use crate::metering::{LiveRates, Pricing};

fn shipped_live_rates() -> std::collections::BTreeMap<String, LiveRates> {
    let p = Pricing::from_config(&Default::default()).unwrap();
    ["gpt-live-1", "gpt-live-1.1"]
        .into_iter()
        .map(|m| (m.to_owned(), p.live_rates(m).unwrap()))
        .collect()
}

fn live_kiosk(model: &str, adjust: impl FnOnce(&mut Settings)) -> Kiosk {
    Kiosk::with(
        |s| {
            s.model = model.into();
            s.backend = Backend::Live {
                rates: shipped_live_rates(),
            };
            adjust(s);
        },
        NanoUsd::ZERO,
    )
}

fn usd(s: &str) -> NanoUsd {
    s.parse().unwrap()
}

/// Scan, resolve, create, start (the server runs `model`): the session is live.
fn start(k: &mut Kiosk, model: &str) -> (Uuid, Vec<Decision>) {
    k.scan("b1");
    k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    let mut out = k.signal(Signal::LiveCreated);
    out.extend(k.signal(Signal::LiveModel {
        model: model.into(),
    }));
    let session_id = k.session();
    out.extend(k.send(Input::RealtimeConnected { session_id }));
    assert_eq!(k.m.lifecycle(), Lifecycle::Live);
    (session_id, out)
}

fn closes(ds: &[Decision]) -> bool {
    ds.iter().any(|d| {
        matches!(
            d,
            Decision::SendRealtime {
                command: RealtimeCommand::CloseSession,
                ..
            }
        )
    })
}

fn live_totals(ds: &[Decision]) -> Option<LiveTotals> {
    payloads(ds).into_iter().find_map(|p| match p {
        EventPayload::SessionEnded { live, .. } => *live,
        _ => None,
    })
}

/// Sum of what the recorded events charge today's spend (what the store will sum).
fn charged(ds: &[Decision]) -> NanoUsd {
    payloads(ds)
        .into_iter()
        .map(|p| match p {
            EventPayload::LiveUsage { charged_nusd, .. } => *charged_nusd,
            EventPayload::DelegationUsage { cost_nusd, .. } => *cost_nusd,
            EventPayload::SessionEnded { live: Some(l), .. } => l.charged_nusd,
            _ => NanoUsd::ZERO,
        })
        .fold(NanoUsd::ZERO, |a, b| a + b)
}

#[test]
fn the_goodbye_tool_closes_the_session_and_the_closed_figure_is_the_bill() {
    let mut k = live_kiosk("gpt-live-1", |s| s.idle_timeout_ms = 120_000);
    let (_, mut all) = start(&mut k, "gpt-live-1");
    k.mono += 60_000;
    all.extend(k.signal(Signal::LiveUsage {
        seconds: 60,
        raw_usage: serde_json::json!({"seconds": 60}),
    }));
    all.extend(k.signal(Signal::DelegationUsage {
        response_id: "resp_1".into(),
        model: "gpt-5-mini".into(),
        tokens: TokenCounts::default(),
        cost: NanoUsd(158_500),
        raw_usage: serde_json::Value::Null,
    }));
    k.mono += 25_000;
    let out = k.signal(Signal::EndSessionCalled {
        call_id: "call_1".into(),
    });
    assert!(out.iter().any(|d| matches!(
        d,
        Decision::SendRealtime {
            command: RealtimeCommand::FunctionCallOutput { .. },
            ..
        }
    )));
    all.extend(out);
    // The goodbye complete, the kiosk asks for the close and waits for it.
    let out = k.wait(HANGUP);
    assert!(closes(&out) && !hung_up(&out), "{out:?}");
    assert_eq!(k.m.lifecycle(), Lifecycle::Ending);
    all.extend(out);
    k.mono += 2_000;
    let out = k.signal(Signal::LiveClosed {
        seconds: 88,
        reason: "close_requested".into(),
        raw_usage: serde_json::json!({"seconds": 88}),
    });
    assert!(hung_up(&out));
    assert_eq!(ended(&out), Some(EndReason::Goodbye));
    let t = live_totals(&out).unwrap();
    // 88 s at $0.05/min, exactly; the delegation on top.
    assert_eq!(t.voice_nusd, usd("0.073333333"));
    assert_eq!(
        (t.billed_seconds, t.estimated, t.upper_bound),
        (88, false, false)
    );
    assert_eq!(t.delegation_nusd, NanoUsd(158_500));
    all.extend(out);
    assert_eq!(charged(&all), t.total());
    assert_eq!(k.m.spent_today(), t.total());
}

#[test]
fn the_estimate_reaches_max_cost_mid_session_without_any_usage_report() {
    // $0.015 at $0.05/min: 18 s.
    let mut k = live_kiosk("gpt-live-1", |s| s.max_cost = usd("0.015"));
    start(&mut k, "gpt-live-1");
    for _ in 0..17 {
        let out = k.wait(1_000);
        assert!(!says_goodbye(&out), "too early at {} ms", k.mono);
    }
    let out = k.wait(1_000);
    assert!(says_goodbye(&out), "the limit is reached at 18 s: {out:?}");
    assert_eq!(
        k.m.session_progress().unwrap().billed_seconds,
        Some(18),
        "status shows the seconds billed so far"
    );
    // JARVIS says goodbye; the kiosk closes; OpenAI never answers the close.
    k.mono += 500;
    k.signal(Signal::OutputSpeech);
    let out = k.wait(HANGUP);
    assert!(closes(&out));
    let out = k.wait(DEFAULT_CLOSE_TIMEOUT_MS);
    assert_eq!(ended(&out), Some(EndReason::MaxCost));
    let t = live_totals(&out).unwrap();
    assert!(
        t.estimated,
        "no session.closed: the figure is the kiosk's estimate"
    );
    let detail = payloads(&out).into_iter().find_map(|p| match p {
        EventPayload::SessionEnded { detail, .. } => detail.clone(),
        _ => None,
    });
    assert!(detail.unwrap().contains("no session.closed"));
}

#[test]
fn the_daily_budget_counts_the_running_estimate() {
    // $0.02 left today; the session's own limit is far.
    let mut k = Kiosk::with(
        |s| {
            s.model = "gpt-live-1".into();
            s.backend = Backend::Live {
                rates: shipped_live_rates(),
            };
            s.daily_budget = usd("1.00");
        },
        usd("0.98"),
    );
    start(&mut k, "gpt-live-1");
    let mut goodbye_at = None;
    for _ in 0..30 {
        if says_goodbye(&k.wait(1_000)) {
            goodbye_at = Some(k.mono);
            break;
        }
    }
    // $0.02 = 24 s at $0.05/min.
    assert_eq!(goodbye_at, Some(24_000));
}

#[test]
fn the_goodbye_phrase_waits_for_jarvis_to_answer_then_closes() {
    let mut k = live_kiosk("gpt-live-1", |_| {});
    start(&mut k, "gpt-live-1");
    k.signal(Signal::SpeechStarted);
    let out = k.signal(Signal::TranscriptCompleted {
        text: "Merci, au revoir".into(),
    });
    assert!(!closes(&out));
    // Nothing until JARVIS answers (or the grace runs out).
    assert!(!closes(&k.wait(2_000)));
    k.signal(Signal::OutputSpeech);
    let out = k.wait(HANGUP);
    assert!(closes(&out));
    let out = k.signal(Signal::LiveClosed {
        seconds: 3,
        reason: "close_requested".into(),
        raw_usage: serde_json::Value::Null,
    });
    assert_eq!(ended(&out), Some(EndReason::GoodbyePhrase));
    // Shorter than 15 s: the initialisation charge.
    assert_eq!(live_totals(&out).unwrap().billed_seconds, 15);
}

#[test]
fn idle_closes_without_a_goodbye_and_jarvis_speaking_is_activity() {
    let mut k = live_kiosk("gpt-live-1.1", |s| s.idle_timeout_ms = 10_000);
    start(&mut k, "gpt-live-1.1");
    k.mono += 9_000;
    k.signal(Signal::OutputSpeech);
    assert!(!closes(&k.wait(9_000)), "JARVIS spoke 9 s ago");
    let out = k.wait(1_000);
    assert!(closes(&out) && !says_goodbye(&out));
    let out = k.signal(Signal::LiveClosed {
        seconds: 20,
        reason: "close_requested".into(),
        raw_usage: serde_json::Value::Null,
    });
    assert_eq!(ended(&out), Some(EndReason::IdleTimeout));
    // 1.1 has standby: with no split reported, the figure is an upper bound.
    let t = live_totals(&out).unwrap();
    assert!(t.upper_bound && !t.estimated);
}

#[test]
fn the_servers_own_close_ends_the_session_with_its_reason() {
    for (server, reason) in [
        ("expired", EndReason::MaxDuration),
        ("connection_lost", EndReason::ConnectionLost),
        ("remote_hangup", EndReason::ConnectionLost),
        ("content", EndReason::RealtimeError),
    ] {
        let mut k = live_kiosk("gpt-live-1", |_| {});
        start(&mut k, "gpt-live-1");
        k.mono += 30_000;
        let out = k.signal(Signal::LiveClosed {
            seconds: 30,
            reason: server.into(),
            raw_usage: serde_json::Value::Null,
        });
        assert_eq!(ended(&out), Some(reason), "{server}");
        assert!(!closes(&out), "{server}: nothing left to close");
        assert!(!live_totals(&out).unwrap().estimated);
    }
}

#[test]
fn a_lost_connection_ends_at_once_on_the_estimate() {
    let mut k = live_kiosk("gpt-live-1", |_| {});
    start(&mut k, "gpt-live-1");
    k.mono += 40_000;
    k.signal(Signal::LiveUsage {
        seconds: 30,
        raw_usage: serde_json::Value::Null,
    });
    let out = k.fail(FailureKind::ConnectionLost);
    assert!(!closes(&out));
    assert_eq!(ended(&out), Some(EndReason::ConnectionLost));
    let t = live_totals(&out).unwrap();
    assert_eq!((t.billed_seconds, t.estimated), (40, true));
    assert_eq!(t.voice_nusd, usd("0.033333333"));
    assert_eq!(t.charged_nusd, usd("0.008333333"));
}

#[test]
fn a_session_that_was_created_but_never_ran_owes_fifteen_seconds_and_one_never_created_nothing() {
    let mut k = live_kiosk("gpt-live-1", |s| s.cooldown_ms = 0);
    k.scan("b1");
    k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    k.signal(Signal::LiveCreated);
    let out = k.fail(FailureKind::ConnectFailed);
    assert_eq!(live_totals(&out).unwrap().voice_nusd, usd("0.0125"));

    k.wait(1);
    k.scan("b2");
    k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    let out = k.fail(FailureKind::ConnectFailed);
    assert_eq!(live_totals(&out).unwrap(), LiveTotals::default());
}

#[test]
fn the_model_the_broker_runs_is_the_one_metered_and_the_mismatch_is_an_alert() {
    let mut k = live_kiosk("gpt-live-1.1", |_| {});
    let (_, out) = start(&mut k, "gpt-live-1");
    assert_eq!(alerts(&out), ["live_model_mismatch"]);
    k.mono += 30_000;
    let out = k.signal(Signal::LiveClosed {
        seconds: 30,
        reason: "expired".into(),
        raw_usage: serde_json::Value::Null,
    });
    let usage_model = payloads(&out).into_iter().find_map(|p| match p {
        EventPayload::LiveUsage { model, .. } => Some(model.clone()),
        _ => None,
    });
    assert_eq!(usage_model.as_deref(), Some("gpt-live-1"));
    // gpt-live-1 has no standby: an exact figure, not an upper bound.
    assert!(!live_totals(&out).unwrap().upper_bound);
}

#[test]
fn usage_after_the_end_is_still_charged_once() {
    let mut k = live_kiosk("gpt-live-1", |_| {});
    let (id, _) = start(&mut k, "gpt-live-1");
    k.mono += 10_000;
    let mut all = k.fail(FailureKind::ConnectionLost);
    let estimate = live_totals(&all).unwrap().voice_nusd;
    all.extend(k.send(Input::Realtime {
        session_id: id,
        signal: Signal::LiveClosed {
            seconds: 60,
            reason: "connection_lost".into(),
            raw_usage: serde_json::Value::Null,
        },
    }));
    assert_eq!(estimate, usd("0.0125"));
    assert_eq!(charged(&all), usd("0.05"), "the late final figure, once");
    assert_eq!(k.m.spent_today(), usd("0.05"));
}
