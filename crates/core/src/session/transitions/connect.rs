//! Connecting to the Realtime API: the connect time, its timeout, and events for another session.

use super::*;

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
fn a_failed_connect_keeps_its_cause_in_the_session_ended_event() {
    let mut k = Kiosk::new();
    k.scan("BADGE-A");
    k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    let ds = k.fail(FailureKind::ConnectFailed);
    let detail = payloads(&ds).into_iter().find_map(|p| match p {
        EventPayload::SessionEnded { reason, detail, .. } => Some((*reason, detail.clone())),
        _ => None,
    });
    assert_eq!(
        detail,
        Some((EndReason::ConnectFailed, Some("ice timeout".into())))
    );
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
fn connect_ms_counts_from_when_the_badge_was_read_not_when_it_was_fed() {
    let mut k = Kiosk::new();
    k.mono = 1_000;
    k.send(Input::Tick);
    // The daemon was busy: the scan read at 1 000 ms reaches the core at 1 500 ms.
    k.mono = 1_500;
    k.next_scan += 1;
    k.send(Input::BadgeScanned {
        scan: ScanId(k.next_scan),
        badge: BadgeKey::new("BADGE-A"),
        read_at_ms: 1_000,
    });
    k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    k.mono = 1_700;
    let session_id = k.session();
    let ds = k.send(Input::RealtimeConnected { session_id });
    assert_eq!(
        payloads(&ds),
        vec![&EventPayload::SessionConnected { connect_ms: 700 }]
    );
}

#[test]
fn a_scan_stamped_in_the_future_counts_from_now() {
    let mut k = Kiosk::new();
    k.mono = 1_000;
    k.next_scan += 1;
    k.send(Input::BadgeScanned {
        scan: ScanId(k.next_scan),
        badge: BadgeKey::new("BADGE-A"),
        read_at_ms: 5_000,
    });
    k.resolve(BadgeLookup::Found(member(MembershipStatus::Active)));
    k.mono = 1_100;
    let session_id = k.session();
    let ds = k.send(Input::RealtimeConnected { session_id });
    assert_eq!(
        payloads(&ds),
        vec![&EventPayload::SessionConnected { connect_ms: 100 }]
    );
}
