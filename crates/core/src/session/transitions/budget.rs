//! The daily budget: refusing scans once spent, resetting at UTC midnight, reached mid-session.

use super::*;

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
