//! What the daemon relies on besides transitions: session ids on decisions, `Send`, redacted
//! badges, stable names.

use super::*;

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
        read_at_ms: 0,
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
