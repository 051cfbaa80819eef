//! Unit tests: every lifecycle transition, driven through the public API, one file per topic.
//!
//! This module is the harness they share: [`Kiosk`] drives a machine on a clock the test
//! moves, and the helpers below pick out of the decisions what a test asserts on.

use uuid::Uuid;

use super::*;
use crate::events::{CostBreakdown, EndReason, EventPayload, MembershipStatus, TokenCounts};
use crate::money::NanoUsd;
use crate::session::{ScanDuringSession, UnknownMember};

mod api;
mod budget;
mod connect;
mod ending;
mod failures;
mod limits;
mod live;
mod lookup;
mod matrix;
mod scans;
mod usage;

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
            read_at_ms: self.mono,
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
