//! GPT-Live sessions in the local store, on a real file: the roll-up keeps one voice figure
//! (a closed one, else the end's, else the largest report) and sums delegated responses; the
//! daily spend sums what each event charged; a crash ends a Live session with its figures.

use crate::support::*;
use jarvis_config::VoiceApi;
use jarvis_core::events::{
    CostBreakdown, EndReason, EventPayload, KioskEvent, LiveTotals, MembershipStatus, TokenCounts,
};
use jarvis_core::money::NanoUsd;
use jarvis_store::{LiveSummary, Store};
use uuid::Uuid;

fn live_started(sid: Uuid, at: i64) -> KioskEvent {
    KioskEvent::new(
        Some(sid),
        at,
        EventPayload::SessionStarted {
            member_id: Some("m-7".into()),
            badge_hash: None,
            membership: MembershipStatus::Active,
            model: "gpt-live-1".into(),
        },
    )
}

/// A gpt-live-1 figure ($0.05 a minute) and what it charged over the previous one.
fn report(sid: Uuid, at: i64, seconds: u64, voice: u64, charged: u64, closed: bool) -> KioskEvent {
    KioskEvent::new(
        Some(sid),
        at,
        EventPayload::LiveUsage {
            model: "gpt-live-1".into(),
            seconds,
            billed_seconds: seconds.max(15),
            voice_nusd: NanoUsd(voice),
            upper_bound: false,
            closed,
            charged_nusd: NanoUsd(charged),
            raw_usage: serde_json::json!({ "seconds": seconds }),
        },
    )
}

fn delegated(sid: Uuid, at: i64, nusd: u64) -> KioskEvent {
    KioskEvent::new(
        Some(sid),
        at,
        EventPayload::DelegationUsage {
            response_id: format!("resp_d{at}"),
            model: "gpt-5-mini".into(),
            tokens: TokenCounts {
                input_text: 1_200,
                cached_text: 200,
                output_text: 300,
                ..Default::default()
            },
            cost_nusd: NanoUsd(nusd),
            raw_usage: serde_json::json!({}),
        },
    )
}

fn live_ended(sid: Uuid, at: i64, duration_ms: u64, live: LiveTotals) -> KioskEvent {
    KioskEvent::new(
        Some(sid),
        at,
        EventPayload::SessionEnded {
            reason: EndReason::Goodbye,
            duration_ms,
            tokens: TokenCounts::default(),
            cost: CostBreakdown::default(),
            detail: None,
            live: Some(live),
        },
    )
}

/// Reports of 30 s and 60 s, a delegated response ($0.000855), and an end without
/// `session.closed`: the kiosk's 76 s estimate ($0.063333333), charging the $0.013333333 the
/// reports had not.
fn estimated_session(sid: Uuid, t: i64) -> Vec<KioskEvent> {
    vec![
        live_started(sid, t),
        report(sid, t + 31_000, 30, 25_000_000, 25_000_000, false),
        report(sid, t + 61_000, 60, 50_000_000, 25_000_000, false),
        delegated(sid, t + 65_000, 855_000),
        live_ended(
            sid,
            t + 75_500,
            75_500,
            LiveTotals {
                billed_seconds: 76,
                voice_nusd: NanoUsd(63_333_333),
                delegation_nusd: NanoUsd(855_000),
                upper_bound: false,
                estimated: true,
                charged_nusd: NanoUsd(13_333_333),
            },
        ),
    ]
}

#[test]
fn a_live_session_rolls_up_its_estimate_and_the_daily_spend_sums_its_charges() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_with(options(&dir.path().join("kiosk.db")))
        .unwrap()
        .0;
    let sid = Uuid::now_v7();
    for e in estimated_session(sid, 1_000_000) {
        store.append(&e).unwrap();
    }
    let s = &store.recent_sessions(1).unwrap()[0];
    assert_eq!(s.backend, VoiceApi::Live);
    assert_eq!(s.model.as_deref(), Some("gpt-live-1"));
    assert_eq!(s.cost, CostBreakdown::default());
    assert_eq!(
        s.live,
        Some(LiveSummary {
            billed_seconds: 76,
            voice_nusd: NanoUsd(63_333_333),
            delegation_nusd: NanoUsd(855_000),
            delegations: 1,
            upper_bound: false,
            estimated: true,
            closed: false,
        })
    );
    assert_eq!(s.total_nusd, NanoUsd(64_188_333));
    // 25,000,000 + 25,000,000 (reports) + 855,000 (delegation) + 13,333,333 (the end).
    assert_eq!(store.spent_since(0).unwrap(), NanoUsd(64_188_333));
    assert_eq!(
        store.spent_since(1_000_000 + 62_000).unwrap(),
        NanoUsd(14_188_333)
    );
}

#[test]
fn the_closed_figure_is_kept_in_any_order_and_a_replay_counts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_with(options(&dir.path().join("kiosk.db")))
        .unwrap()
        .0;
    let sid = Uuid::now_v7();
    let t = 2_000_000;
    let events = vec![
        live_started(sid, t),
        report(sid, t + 31_000, 30, 25_000_000, 25_000_000, false),
        delegated(sid, t + 40_000, 855_000),
        report(sid, t + 61_000, 60, 50_000_000, 25_000_000, false),
        delegated(sid, t + 70_000, 1_500_000),
        // The close says 88 s ($0.073333333), below a 90 s end figure and a late 100 s report.
        report(sid, t + 89_000, 88, 73_333_333, 23_333_333, true),
        report(sid, t + 89_500, 100, 83_333_333, 0, false),
        live_ended(
            sid,
            t + 90_000,
            90_000,
            LiveTotals {
                billed_seconds: 90,
                voice_nusd: NanoUsd(75_000_000),
                delegation_nusd: NanoUsd(2_355_000),
                upper_bound: false,
                estimated: false,
                charged_nusd: NanoUsd::ZERO,
            },
        ),
    ];
    // Recorded backwards (a salvaged store replays in any order), then all again.
    for e in events.iter().rev() {
        store.append(e).unwrap();
    }
    store.append_batch(&events).unwrap();
    let s = &store.recent_sessions(1).unwrap()[0];
    assert_eq!(
        s.live,
        Some(LiveSummary {
            billed_seconds: 88,
            voice_nusd: NanoUsd(73_333_333),
            delegation_nusd: NanoUsd(2_355_000),
            delegations: 2,
            upper_bound: false,
            estimated: false,
            closed: true,
        })
    );
    assert_eq!(s.total_nusd, NanoUsd(75_688_333));
    assert_eq!(s.started_at_ms, Some(t));
    assert_eq!(s.end_reason.as_deref(), Some("goodbye"));
    assert_eq!(store.spent_since(0).unwrap(), NanoUsd(75_688_333));
}

#[test]
fn a_crash_ends_a_live_session_with_its_figures_so_far_and_charges_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiosk.db");
    let (live, rt) = (Uuid::now_v7(), Uuid::now_v7());
    let t = 3_000_000;
    {
        let mut store = Store::open_with(options(&path)).unwrap().0;
        let mut events = estimated_session(live, t);
        events.pop();
        for e in &events {
            store.append(e).unwrap();
        }
        store.append(&started(rt, t + 100_000)).unwrap();
        store
            .append(&usage(rt, t + 101_000, cost(1_000, 2_000)))
            .unwrap();
        // The process dies: neither session ends.
    }
    let mut store = Store::open_with(options(&path)).unwrap().0;
    let spent = store.spent_since(0).unwrap();
    assert_eq!(spent, NanoUsd(50_855_000 + 3_018));
    let ends = store.end_crashed_sessions().unwrap();
    assert_eq!(ends.len(), 2, "{ends:?}");
    let live_of = |sid: Uuid| {
        let e = ends.iter().find(|e| e.session_id == Some(sid)).unwrap();
        let EventPayload::SessionEnded { reason, live, .. } = &e.payload else {
            panic!("{e:?}")
        };
        assert_eq!(*reason, EndReason::Crashed);
        *live
    };
    assert_eq!(
        live_of(live),
        Some(LiveTotals {
            billed_seconds: 60,
            voice_nusd: NanoUsd(50_000_000),
            delegation_nusd: NanoUsd(855_000),
            upper_bound: false,
            estimated: true,
            charged_nusd: NanoUsd::ZERO,
        })
    );
    assert_eq!(live_of(rt), None);
    assert_eq!(
        store.spent_since(0).unwrap(),
        spent,
        "each figure was charged once"
    );
    let recent = store.recent_sessions(5).unwrap();
    let s = recent.iter().find(|s| s.session_id == live).unwrap();
    assert_eq!(s.end_reason.as_deref(), Some("crashed"));
    assert_eq!(s.total_nusd, NanoUsd(50_855_000));
    let r = recent.iter().find(|s| s.session_id == rt).unwrap();
    assert_eq!((r.backend, r.live), (VoiceApi::Realtime, None));
    assert_eq!(r.total_nusd, r.cost.total());
}
