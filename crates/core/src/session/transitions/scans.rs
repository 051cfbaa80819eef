//! Scans: accepted, debounced, ignored or replacing a session, rate-limited per badge, held off
//! by the cooldown.

use super::*;

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
