//! Unit tests: every lifecycle transition, driven through the public API.

use uuid::Uuid;

use super::*;
use crate::events::{CostBreakdown, EndReason, EventPayload, MembershipStatus, TokenCounts};
use crate::money::NanoUsd;
use crate::session::{ScanDuringSession, UnknownMember};

/// 2026-11-21T00:00:00Z.
const WALL0: i64 = 1_795_219_200_000;
const DAY: u64 = 86_400_000;
const HANGUP: u64 = DEFAULT_HANGUP_DELAY_MS;

pub(super) fn counter_ids() -> impl FnMut() -> Uuid + Send {
    let mut n = 0u128;
    move || {
        n += 1;
        Uuid::from_u128(n)
    }
}

struct Kiosk {
    m: SessionMachine,
    mono: u64,
    next_scan: u64,
}

impl Kiosk {
    fn new() -> Self {
        Kiosk::with(|_| {}, NanoUsd::ZERO)
    }

    fn with(adjust: impl FnOnce(&mut Settings), spent: NanoUsd) -> Self {
        let mut s = Settings::default();
        adjust(&mut s);
        Kiosk {
            m: SessionMachine::new(s, spent, now(0), counter_ids()),
            mono: 0,
            next_scan: 0,
        }
    }

    fn send(&mut self, input: Input) -> Vec<Decision> {
        self.m.handle(now(self.mono), input)
    }

    /// Moves the clocks forward by `ms` and ticks.
    fn wait(&mut self, ms: u64) -> Vec<Decision> {
        self.mono += ms;
        self.send(Input::Tick)
    }

    fn scan(&mut self, badge: &str) -> Vec<Decision> {
        self.next_scan += 1;
        let scan = ScanId(self.next_scan);
        self.send(Input::BadgeScanned {
            scan,
            badge: BadgeKey::new(badge),
        })
    }

    fn resolve(&mut self, lookup: BadgeLookup) -> Vec<Decision> {
        let scan = self.m.pending_scan().expect("a lookup is pending");
        self.send(Input::MemberResolved { scan, lookup })
    }

    fn session(&self) -> Uuid {
        self.m.current_session().expect("a session is current")
    }

    fn signal(&mut self, signal: Signal) -> Vec<Decision> {
        let session_id = self.session();
        self.send(Input::Realtime { session_id, signal })
    }

    fn fail(&mut self, kind: FailureKind) -> Vec<Decision> {
        let session_id = self.session();
        self.send(Input::RealtimeFailed {
            session_id,
            kind,
            reason: "ice timeout".into(),
        })
    }

    /// Scan, resolve as an active member, connect: returns the live session id.
    fn live(&mut self, badge: &str) -> Uuid {
        self.scan(badge);
        self.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
        let session_id = self.session();
        self.send(Input::RealtimeConnected { session_id });
        assert_eq!(self.m.lifecycle(), Lifecycle::Live);
        session_id
    }

    fn usage(&mut self, nusd: u64) -> Vec<Decision> {
        self.signal(usage_signal(nusd))
    }
}

fn now(mono: u64) -> Now {
    Now {
        mono_ms: mono,
        wall_ms: WALL0 + mono as i64,
    }
}

fn member(membership: MembershipStatus) -> Member {
    Member {
        id: "m-42".into(),
        first_name: "Camille".into(),
        language: "fr".into(),
        membership,
    }
}

pub(super) fn usage_signal(nusd: u64) -> Signal {
    Signal::ResponseUsage {
        response_id: format!("resp_{nusd}"),
        tokens: TokenCounts {
            input_audio: 10,
            output_audio: 20,
            ..Default::default()
        },
        cost: CostBreakdown {
            output_audio_nusd: NanoUsd(nusd),
            ..Default::default()
        },
        raw_usage: serde_json::json!({"total_tokens": 30}),
    }
}

fn payloads(ds: &[Decision]) -> Vec<&EventPayload> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Record(e) => Some(&e.payload),
            _ => None,
        })
        .collect()
}

fn ended(ds: &[Decision]) -> Option<EndReason> {
    payloads(ds).into_iter().find_map(|p| match p {
        EventPayload::SessionEnded { reason, .. } => Some(*reason),
        _ => None,
    })
}

fn refused(ds: &[Decision]) -> Option<&str> {
    payloads(ds).into_iter().find_map(|p| match p {
        EventPayload::ScanRefused { cause } => Some(cause.as_str()),
        _ => None,
    })
}

fn prompts(ds: &[Decision]) -> Vec<Prompt> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::PlayPrompt(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn hung_up(ds: &[Decision]) -> bool {
    ds.iter().any(|d| matches!(d, Decision::HangUp { .. }))
}

fn alerts(ds: &[Decision]) -> Vec<&str> {
    payloads(ds)
        .into_iter()
        .filter_map(|p| match p {
            EventPayload::Alert { code, .. } => Some(code.as_str()),
            _ => None,
        })
        .collect()
}

fn says_goodbye(ds: &[Decision]) -> bool {
    ds.iter().any(|d| {
        matches!(
            d,
            Decision::SendRealtime {
                command: RealtimeCommand::SayGoodbye { .. },
                ..
            }
        )
    })
}

#[test]
fn accepted_scan_looks_up_then_chimes() {
    let mut k = Kiosk::new();
    let ds = k.scan("BADGE-A");
    assert_eq!(
        ds,
        vec![
            Decision::LookUpMember { scan: ScanId(1) },
            Decision::PlayPrompt(Prompt::Chime),
            Decision::Lifecycle(Lifecycle::LookingUp),
        ]
    );
}

#[test]
fn active_member_starts_a_session_and_connects() {
    let mut k = Kiosk::new();
    k.scan("BADGE-A");
    let ds = k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    let id = k.session();
    match &ds[0] {
        Decision::Record(e) => {
            assert_eq!(e.session_id, Some(id));
            assert_eq!(e.occurred_at_ms, WALL0);
            assert_eq!(
                e.payload,
                EventPayload::SessionStarted {
                    member_id: Some("m-42".into()),
                    badge_hash: None,
                    membership: MembershipStatus::Active,
                    model: "gpt-realtime".into(),
                }
            );
        }
        other => panic!("expected SessionStarted first, got {other:?}"),
    }
    assert_eq!(
        ds[1],
        Decision::Connect {
            session_id: id,
            context: SessionContext {
                member_id: Some("m-42".into()),
                first_name: Some("Camille".into()),
                language: Some("fr".into()),
                membership: MembershipStatus::Active,
            },
        }
    );
    assert_eq!(ds[2], Decision::Lifecycle(Lifecycle::Connecting));
}

#[test]
fn connected_records_connect_ms_from_the_scan() {
    let mut k = Kiosk::new();
    k.scan("BADGE-A");
    k.mono += 120;
    k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    k.mono += 80;
    let session_id = k.session();
    let ds = k.send(Input::RealtimeConnected { session_id });
    assert_eq!(
        payloads(&ds),
        vec![&EventPayload::SessionConnected { connect_ms: 200 }]
    );
    assert_eq!(ds.last(), Some(&Decision::Lifecycle(Lifecycle::Live)));
}

#[test]
fn lookup_outcomes_table() {
    use MembershipStatus::*;
    // (unknown_member policy, lookup, expected refusal cause + prompt, or a started session)
    let unknown = || BadgeLookup::Unknown {
        badge_hash: "h1".into(),
    };
    type Refusal = Option<(&'static str, Prompt)>;
    let cases: Vec<(UnknownMember, BadgeLookup, Refusal)> = vec![
        (
            UnknownMember::FrontDesk,
            BadgeLookup::Found(member(Active)),
            None,
        ),
        (
            UnknownMember::FrontDesk,
            BadgeLookup::Found(member(Guest)),
            None,
        ),
        (
            UnknownMember::FrontDesk,
            BadgeLookup::Found(member(Expired)),
            Some(("membership_expired", Prompt::FrontDesk)),
        ),
        (
            UnknownMember::FrontDesk,
            BadgeLookup::Found(member(Suspended)),
            Some(("membership_suspended", Prompt::FrontDesk)),
        ),
        (
            UnknownMember::FrontDesk,
            unknown(),
            Some(("unknown_badge", Prompt::FrontDesk)),
        ),
        (UnknownMember::Guest, unknown(), None),
        (
            UnknownMember::Guest,
            BadgeLookup::Found(member(Expired)),
            None,
        ),
        (
            UnknownMember::Guest,
            BadgeLookup::Found(member(Suspended)),
            Some(("membership_suspended", Prompt::FrontDesk)),
        ),
        (
            UnknownMember::Guest,
            BadgeLookup::Failed {
                reason: "central down, cache miss".into(),
            },
            Some(("lookup_failed", Prompt::Unavailable)),
        ),
    ];
    for (policy, lookup, want) in cases {
        let mut k = Kiosk::with(|s| s.unknown_member = policy, NanoUsd::ZERO);
        k.scan("BADGE-A");
        let ds = k.resolve(lookup.clone());
        match want {
            Some((cause, prompt)) => {
                assert_eq!(refused(&ds), Some(cause), "{policy:?} {lookup:?}");
                assert_eq!(prompts(&ds), vec![prompt]);
                assert_eq!(k.m.lifecycle(), Lifecycle::Idle);
            }
            None => {
                assert_eq!(refused(&ds), None, "{policy:?} {lookup:?}");
                assert_eq!(k.m.lifecycle(), Lifecycle::Connecting);
            }
        }
    }
}

#[test]
fn unknown_guest_session_carries_the_badge_hash_only() {
    let mut k = Kiosk::with(|s| s.unknown_member = UnknownMember::Guest, NanoUsd::ZERO);
    k.scan("BADGE-A");
    let ds = k.resolve(BadgeLookup::Unknown {
        badge_hash: "hmac-abc".into(),
    });
    assert_eq!(
        payloads(&ds)[0],
        &EventPayload::SessionStarted {
            member_id: None,
            badge_hash: Some("hmac-abc".into()),
            membership: MembershipStatus::Guest,
            model: "gpt-realtime".into(),
        }
    );
    assert!(ds.iter().any(|d| matches!(
        d,
        Decision::Connect { context, .. } if context.first_name.is_none() && context.language.is_none()
    )));
}

#[test]
fn lookup_timeout_refuses_with_unavailable() {
    let mut k = Kiosk::new();
    k.scan("BADGE-A");
    assert!(k.wait(DEFAULT_LOOKUP_TIMEOUT_MS - 1).is_empty());
    let ds = k.wait(1);
    assert_eq!(refused(&ds), Some("lookup_timeout"));
    assert_eq!(prompts(&ds), vec![Prompt::Unavailable]);
    assert_eq!(k.m.lifecycle(), Lifecycle::Idle);
}

#[test]
fn stale_lookup_answer_is_ignored() {
    let mut k = Kiosk::new();
    k.scan("BADGE-A");
    let ds = k.send(Input::MemberResolved {
        scan: ScanId(99),
        lookup: BadgeLookup::Found(member(MembershipStatus::Active)),
    });
    assert!(ds.is_empty());
    assert_eq!(k.m.pending_scan(), Some(ScanId(1)));
}

#[test]
fn same_badge_within_debounce_is_one_scan() {
    let mut k = Kiosk::new();
    k.scan("BADGE-A");
    k.resolve(BadgeLookup::Unknown {
        badge_hash: "h".into(),
    });
    k.mono += 2_000;
    assert!(k.scan("BADGE-A").is_empty(), "debounced");
    k.mono += 3_000;
    assert_eq!(
        k.scan("BADGE-A")[0],
        Decision::LookUpMember { scan: ScanId(3) }
    );
}

#[test]
fn scans_during_a_session_are_ignored_by_default() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    k.mono += 5_000;
    assert!(k.scan("BADGE-B").is_empty());
    k.mono += 5_000;
    assert!(k.scan("BADGE-A").is_empty());
    assert_eq!(k.m.lifecycle(), Lifecycle::Live);
}

#[test]
fn replace_ends_the_live_session_and_looks_up_the_new_badge() {
    let mut k = Kiosk::with(
        |s| s.on_scan_during_session = ScanDuringSession::Replace,
        NanoUsd::ZERO,
    );
    let first = k.live("BADGE-A");
    k.mono += 5_000;
    assert!(k.scan("BADGE-A").is_empty(), "own badge never replaces");
    k.mono += 5_000;
    let ds = k.scan("BADGE-B");
    assert!(ds.contains(&Decision::HangUp {
        session_id: first,
        reason: EndReason::Replaced,
        detail: None,
    }));
    assert_eq!(ended(&ds), Some(EndReason::Replaced));
    assert!(ds.contains(&Decision::LookUpMember { scan: ScanId(3) }));
    assert_eq!(k.m.lifecycle(), Lifecycle::LookingUp);
    assert_eq!(k.m.current_session(), None);
}

#[test]
fn replace_supersedes_a_pending_lookup() {
    let mut k = Kiosk::with(
        |s| s.on_scan_during_session = ScanDuringSession::Replace,
        NanoUsd::ZERO,
    );
    k.scan("BADGE-A");
    let ds = k.scan("BADGE-B");
    assert_eq!(ds[0], Decision::LookUpMember { scan: ScanId(2) });
    let late = k.send(Input::MemberResolved {
        scan: ScanId(1),
        lookup: BadgeLookup::Found(member(MembershipStatus::Active)),
    });
    assert!(late.is_empty(), "answer for the superseded scan");
}

#[test]
fn refused_replacement_keeps_the_live_session() {
    let mut k = Kiosk::with(
        |s| s.on_scan_during_session = ScanDuringSession::Replace,
        NanoUsd::ZERO,
    );
    k.live("BADGE-A");
    k.send(Input::BreakerOpen(true));
    let ds = k.scan("BADGE-B");
    assert_eq!(refused(&ds), Some("breaker_open"));
    assert!(prompts(&ds).is_empty(), "no prompt over a conversation");
    assert!(!hung_up(&ds));
    assert_eq!(k.m.lifecycle(), Lifecycle::Live);
}

#[test]
fn rate_limit_per_badge_per_rolling_hour() {
    let mut k = Kiosk::with(|s| s.max_sessions_per_hour = 2, NanoUsd::ZERO);
    for _ in 0..2 {
        k.live("BADGE-A");
        k.fail(FailureKind::ConnectionLost);
        k.wait(10_000);
    }
    let ds = k.scan("BADGE-A");
    assert_eq!(refused(&ds), Some("rate_limited"));
    assert_eq!(prompts(&ds), vec![Prompt::RateLimited]);
    k.mono += 5_000;
    assert_eq!(
        k.scan("BADGE-B")[0],
        Decision::LookUpMember { scan: ScanId(4) }
    );
    k.resolve(BadgeLookup::Failed { reason: "x".into() });
    k.wait(3_600_000);
    assert_eq!(
        k.scan("BADGE-A")[0],
        Decision::LookUpMember { scan: ScanId(5) }
    );
}

#[test]
fn exhausted_budget_refuses_scans_and_alerts_once_a_day() {
    let mut k = Kiosk::with(|_| {}, NanoUsd(20_000_000_000));
    let ds = k.scan("BADGE-A");
    assert_eq!(refused(&ds), Some("daily_budget"));
    assert_eq!(prompts(&ds), vec![Prompt::BudgetReached]);
    assert_eq!(alerts(&ds), vec!["daily_budget_reached"]);
    k.mono += 10_000;
    let again = k.scan("BADGE-B");
    assert_eq!(refused(&again), Some("daily_budget"));
    assert!(alerts(&again).is_empty(), "one alert per day");
}

#[test]
fn budget_resets_at_utc_midnight() {
    let mut k = Kiosk::with(|_| {}, NanoUsd(20_000_000_000));
    k.scan("BADGE-A");
    k.wait(DAY);
    assert_eq!(k.m.spent_today(), NanoUsd::ZERO);
    assert_eq!(
        k.scan("BADGE-A")[0],
        Decision::LookUpMember { scan: ScanId(2) }
    );
}

#[test]
fn budget_reached_mid_session_says_goodbye_and_alerts() {
    let mut k = Kiosk::with(|_| {}, NanoUsd(19_900_000_000));
    k.live("BADGE-A");
    let ds = k.usage(100_000_000);
    assert!(says_goodbye(&ds));
    assert_eq!(alerts(&ds), vec!["daily_budget_reached"]);
    assert_eq!(k.m.lifecycle(), Lifecycle::Ending);
    assert!(!hung_up(&k.signal(Signal::ResponseDone)));
    assert_eq!(ended(&k.wait(HANGUP)), Some(EndReason::DailyBudget));
}

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

#[test]
fn connect_timeout_ends_with_connect_failed_and_apologises() {
    let mut k = Kiosk::new();
    k.scan("BADGE-A");
    k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    assert!(k.wait(9_999).is_empty());
    let ds = k.wait(1);
    assert_eq!(ended(&ds), Some(EndReason::ConnectFailed));
    assert_eq!(prompts(&ds), vec![Prompt::Apology]);
    assert_eq!(k.m.lifecycle(), Lifecycle::Cooldown);
}

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
fn cooldown_ignores_scans_then_accepts() {
    let mut k = Kiosk::new();
    k.live("BADGE-A");
    k.signal(Signal::EndSessionCalled {
        call_id: "c".into(),
    });
    k.wait(HANGUP);
    k.mono += 2_999;
    assert!(k.scan("BADGE-B").is_empty());
    k.mono += 1;
    let ds = k.scan("BADGE-C");
    assert_eq!(ds[0], Decision::LookUpMember { scan: ScanId(3) });
}

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
fn stale_connected_and_failures_are_ignored() {
    let mut k = Kiosk::new();
    k.scan("BADGE-A");
    k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    let other = Uuid::from_u128(u128::MAX);
    assert!(
        k.send(Input::RealtimeConnected { session_id: other })
            .is_empty()
    );
    assert!(
        k.send(Input::RealtimeFailed {
            session_id: other,
            kind: FailureKind::ConnectionLost,
            reason: "x".into()
        })
        .is_empty()
    );
    assert_eq!(k.m.lifecycle(), Lifecycle::Connecting);
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

#[test]
fn decisions_name_their_session() {
    let mut k = Kiosk::new();
    let ds = k.scan("BADGE-A");
    assert!(ds.iter().all(|d| d.session_id().is_none()));
    let ds = k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    let id = k.session();
    assert_eq!(ds[0].session_id(), Some(id), "SessionStarted");
    assert_eq!(ds[1].session_id(), Some(id), "Connect");
    let ds = k.send(Input::Shutdown);
    assert_eq!(ds[0].session_id(), Some(id), "HangUp");
}

#[test]
fn machine_can_move_into_a_task() {
    fn assert_send<T: Send>() {}
    assert_send::<SessionMachine>();
    assert_send::<Decision>();
    assert_send::<Input>();
}

#[test]
fn badge_key_debug_is_redacted() {
    let k = BadgeKey::new("0004521337");
    assert_eq!(format!("{k:?}"), "BadgeKey(<redacted>)");
    let input = Input::BadgeScanned {
        scan: ScanId(1),
        badge: k,
    };
    assert!(!format!("{input:?}").contains("4521337"));
}

#[test]
fn prompt_and_lifecycle_names_are_stable() {
    let prompts = [
        (Prompt::Chime, "chime"),
        (Prompt::Unavailable, "unavailable"),
        (Prompt::FrontDesk, "front_desk"),
        (Prompt::BudgetReached, "budget_reached"),
        (Prompt::RateLimited, "rate_limited"),
        (Prompt::Apology, "apology"),
    ];
    for (p, s) in prompts {
        assert_eq!(p.as_str(), s);
    }
    let states = [
        (Lifecycle::Idle, "idle"),
        (Lifecycle::LookingUp, "looking_up"),
        (Lifecycle::Connecting, "connecting"),
        (Lifecycle::Live, "live"),
        (Lifecycle::Ending, "ending"),
        (Lifecycle::Cooldown, "cooldown"),
        (Lifecycle::Degraded, "degraded"),
    ];
    for (l, s) in states {
        assert_eq!(l.as_str(), s);
    }
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
        ("scan", |_, _| Input::BadgeScanned {
            scan: ScanId(50),
            badge: BadgeKey::new("BADGE-B"),
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
