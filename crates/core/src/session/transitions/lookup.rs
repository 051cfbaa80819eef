//! Member lookup: what each answer starts or refuses, its timeout, and answers that come too late.

use super::*;

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
