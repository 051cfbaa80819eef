//! Property tests: random input sequences against the lifecycle invariants.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use proptest::prelude::*;
use uuid::Uuid;

use super::transitions::{counter_ids, usage_signal};
use super::*;
use crate::events::{CostBreakdown, EventPayload, MembershipStatus, TokenCounts};
use crate::money::NanoUsd;
use crate::session::{ScanDuringSession, UnknownMember};

const WALL0: i64 = 1_795_219_200_000 - 3_600_000;
/// Every badge string contains this; no decision may ever show it.
const RAW: &str = "RAWBADGE";

#[derive(Debug, Clone)]
enum Sig {
    Speech,
    Transcript(bool),
    Usage(u64),
    Transcription(u64),
    EndSession,
    AudioStarted,
    AudioStopped,
    ResponseDone,
    LiveCreated,
    LiveModel(bool),
    OutputSpeech,
    LiveUsage(u64),
    LiveClosed(u64, u8),
    Delegation(u64),
}

impl Sig {
    /// Whether the backend's adapter can report this signal at all.
    fn fits(&self, live: bool) -> bool {
        let live_only = matches!(
            self,
            Sig::LiveCreated
                | Sig::LiveModel(_)
                | Sig::OutputSpeech
                | Sig::LiveUsage(_)
                | Sig::LiveClosed(..)
                | Sig::Delegation(_)
        );
        let realtime_only = matches!(
            self,
            Sig::Usage(_)
                | Sig::Transcription(_)
                | Sig::AudioStarted
                | Sig::AudioStopped
                | Sig::ResponseDone
        );
        if live { !realtime_only } else { !live_only }
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// Scan, resolve as an active member and connect, as far as the machine lets it.
    Admit(u8),
    Scan(u8),
    Resolve(u8),
    StaleResolve,
    Connected,
    Signal(Sig),
    StaleSignal(Sig),
    Fail(u8),
    Breaker(bool),
    AudioLost,
    AudioRestored,
    Wait(u64),
    Shutdown,
}

fn sig() -> impl Strategy<Value = Sig> {
    prop_oneof![
        Just(Sig::Speech),
        any::<bool>().prop_map(Sig::Transcript),
        prop_oneof![0u64..50_000_000, 0u64..600_000_000].prop_map(Sig::Usage),
        (0u64..50_000_000).prop_map(Sig::Transcription),
        Just(Sig::EndSession),
        Just(Sig::AudioStarted),
        Just(Sig::AudioStopped),
        Just(Sig::ResponseDone),
        Just(Sig::LiveCreated),
        any::<bool>().prop_map(Sig::LiveModel),
        Just(Sig::OutputSpeech),
        (0u64..3_000).prop_map(Sig::LiveUsage),
        ((0u64..3_000), (0u8..5)).prop_map(|(s, r)| Sig::LiveClosed(s, r)),
        (0u64..50_000_000).prop_map(Sig::Delegation),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..4).prop_map(Step::Admit),
        4 => (0u8..4).prop_map(Step::Scan),
        4 => (0u8..4).prop_map(Step::Resolve),
        1 => Just(Step::StaleResolve),
        5 => Just(Step::Connected),
        12 => sig().prop_map(Step::Signal),
        2 => sig().prop_map(Step::StaleSignal),
        1 => (0u8..3).prop_map(Step::Fail),
        1 => prop_oneof![Just(true), Just(false), Just(false)].prop_map(Step::Breaker),
        1 => Just(Step::AudioLost),
        3 => Just(Step::AudioRestored),
        6 => prop_oneof![
            4 => 0u64..2_000,
            2 => 0u64..90_000,
            1 => Just(3_600_000),
        ]
        .prop_map(Step::Wait),
        1 => Just(Step::Shutdown),
    ]
}

fn to_signal(s: &Sig) -> Signal {
    match s {
        Sig::Speech => Signal::SpeechStarted,
        Sig::Transcript(bye) => Signal::TranscriptCompleted {
            text: if *bye {
                "Merci, AU REVOIR"
            } else {
                "une question"
            }
            .into(),
        },
        Sig::Usage(n) => usage_signal(*n),
        Sig::Transcription(n) => Signal::TranscriptionUsage {
            item_id: "item".into(),
            cost: CostBreakdown {
                transcription_nusd: NanoUsd(*n),
                ..Default::default()
            },
            raw_usage: serde_json::json!({}),
        },
        Sig::EndSession => Signal::EndSessionCalled {
            call_id: "call".into(),
        },
        Sig::AudioStarted => Signal::OutputAudioStarted,
        Sig::AudioStopped => Signal::OutputAudioStopped,
        Sig::ResponseDone => Signal::ResponseDone,
        Sig::LiveCreated => Signal::LiveCreated,
        Sig::LiveModel(other) => Signal::LiveModel {
            model: if *other { "gpt-live-1.1" } else { "gpt-live-1" }.into(),
        },
        Sig::OutputSpeech => Signal::OutputSpeech,
        Sig::LiveUsage(seconds) => Signal::LiveUsage {
            seconds: *seconds,
            raw_usage: serde_json::json!({}),
        },
        Sig::LiveClosed(seconds, r) => Signal::LiveClosed {
            seconds: *seconds,
            reason: [
                "close_requested",
                "expired",
                "content",
                "remote_hangup",
                "connection_lost",
            ][*r as usize % 5]
                .into(),
            raw_usage: serde_json::json!({}),
        },
        Sig::Delegation(n) => Signal::DelegationUsage {
            response_id: "resp".into(),
            model: "gpt-5-mini".into(),
            tokens: TokenCounts::default(),
            cost: NanoUsd(*n),
            raw_usage: serde_json::json!({}),
        },
    }
}

/// Everything observed in the decision stream, checked as it arrives.
#[derive(Default)]
struct Observer {
    open: Option<Uuid>,
    started: BTreeSet<Uuid>,
    ended: BTreeSet<Uuid>,
    connects: BTreeSet<Uuid>,
    /// Sessions whose data channel opened (`SessionConnected`).
    connected: BTreeSet<Uuid>,
    hangups: BTreeSet<Uuid>,
    /// Per session: the usage recorded before its end.
    usage: BTreeMap<Uuid, (CostBreakdown, TokenCounts)>,
    event_ids: HashSet<Uuid>,
    last_lifecycle: Option<Lifecycle>,
    /// The sessions are GPT-Live ones.
    live: bool,
    /// Per GPT-Live session: what its events charged today's spend before its end.
    charged: BTreeMap<Uuid, NanoUsd>,
}

impl Observer {
    fn observe(&mut self, ds: &[Decision]) -> Result<(), TestCaseError> {
        for d in ds {
            let shown = format!("{d:?}");
            prop_assert!(!shown.contains(RAW), "badge leaked: {shown}");
            match d {
                Decision::Record(e) => {
                    let json = serde_json::to_string(e).unwrap();
                    prop_assert!(!json.contains(RAW), "badge leaked: {json}");
                    prop_assert!(self.event_ids.insert(e.event_id), "duplicate event id");
                    self.on_event(e.session_id, &e.payload)?;
                }
                Decision::Connect { session_id, .. } => {
                    prop_assert_eq!(Some(*session_id), self.open);
                    prop_assert!(self.connects.insert(*session_id));
                }
                Decision::HangUp { session_id, .. } => {
                    prop_assert!(self.connects.contains(session_id));
                    prop_assert!(self.hangups.insert(*session_id), "hung up twice");
                }
                Decision::SendRealtime { session_id, .. } => {
                    prop_assert_eq!(Some(*session_id), self.open);
                }
                Decision::Lifecycle(l) => {
                    prop_assert_ne!(Some(*l), self.last_lifecycle, "unchanged state published");
                    self.last_lifecycle = Some(*l);
                }
                Decision::LookUpMember { .. } | Decision::PlayPrompt(_) => {}
            }
        }
        Ok(())
    }

    fn on_event(&mut self, session: Option<Uuid>, p: &EventPayload) -> Result<(), TestCaseError> {
        match p {
            EventPayload::SessionStarted { .. } => {
                let id = session.unwrap();
                prop_assert_eq!(self.open, None, "two sessions at once");
                prop_assert!(self.started.insert(id));
                self.open = Some(id);
            }
            EventPayload::SessionEnded {
                cost, tokens, live, ..
            } => {
                let id = session.unwrap();
                prop_assert_eq!(self.open, Some(id), "end without a start");
                prop_assert!(self.ended.insert(id), "ended twice");
                prop_assert_eq!(
                    live.is_some(),
                    self.live,
                    "Live totals on Live sessions only"
                );
                if let Some(l) = live {
                    let before = self.charged.get(&id).copied().unwrap_or_default();
                    prop_assert_eq!(
                        before + l.charged_nusd,
                        l.total(),
                        "a Live session's charges add up to its bill"
                    );
                }
                let (sum_cost, sum_tokens) = self.usage.get(&id).copied().unwrap_or_default();
                prop_assert_eq!(*cost, sum_cost, "ended cost is the sum of its usage");
                prop_assert_eq!(*tokens, sum_tokens);
                self.open = None;
            }
            EventPayload::ResponseUsage { tokens, cost, .. } => {
                self.add_usage(session, *cost, *tokens)?
            }
            EventPayload::TranscriptionUsage { cost, .. } => {
                self.add_usage(session, *cost, TokenCounts::default())?
            }
            EventPayload::LiveUsage { charged_nusd, .. } => self.charge(session, *charged_nusd)?,
            EventPayload::DelegationUsage { cost_nusd, .. } => self.charge(session, *cost_nusd)?,
            EventPayload::SessionConnected { .. } => {
                prop_assert_eq!(session, self.open);
                prop_assert!(self.connected.insert(session.unwrap()), "connected twice");
            }
            // A session's alert (a GPT-Live model mismatch) names a started session.
            EventPayload::Alert { .. } if session.is_some() => {
                prop_assert!(self.started.contains(&session.unwrap()))
            }
            _ => prop_assert_eq!(session, None),
        }
        Ok(())
    }

    fn charge(&mut self, session: Option<Uuid>, n: NanoUsd) -> Result<(), TestCaseError> {
        let id = session.unwrap();
        prop_assert!(self.live, "Live usage recorded for a Realtime session");
        prop_assert!(self.started.contains(&id));
        if self.open == Some(id) {
            *self.charged.entry(id).or_default() += n;
        } else {
            prop_assert!(self.ended.contains(&id), "usage of a session never ended");
        }
        Ok(())
    }

    fn add_usage(
        &mut self,
        session: Option<Uuid>,
        cost: CostBreakdown,
        tokens: TokenCounts,
    ) -> Result<(), TestCaseError> {
        let id = session.unwrap();
        prop_assert!(self.started.contains(&id));
        if self.open == Some(id) {
            let entry = self.usage.entry(id).or_default();
            let before = entry.0.total();
            entry.0 += cost;
            entry.1 += tokens;
            prop_assert!(entry.0.total() >= before, "session cost decreased");
        } else {
            prop_assert!(self.ended.contains(&id), "usage of a session never ended");
        }
        Ok(())
    }
}

struct Run {
    m: SessionMachine,
    mono: u64,
    /// (UTC day, spend) after the last input: spend never decreases within a day.
    spend: (i64, NanoUsd),
    scans: u64,
    seen: Vec<Uuid>,
    obs: Observer,
}

impl Run {
    fn new(replace: bool, guests: bool, spent: u64, live: bool) -> Self {
        let backend = if live {
            let p = crate::metering::Pricing::from_config(&BTreeMap::new()).unwrap();
            Backend::Live {
                rates: ["gpt-live-1", "gpt-live-1.1"]
                    .into_iter()
                    .map(|m| (m.to_owned(), p.live_rates(m).unwrap()))
                    .collect(),
            }
        } else {
            Backend::Realtime
        };
        let s = Settings {
            on_scan_during_session: if replace {
                ScanDuringSession::Replace
            } else {
                ScanDuringSession::Ignore
            },
            unknown_member: if guests {
                UnknownMember::Guest
            } else {
                UnknownMember::FrontDesk
            },
            max_cost: NanoUsd(500_000_000),
            daily_budget: NanoUsd(3_000_000_000),
            max_sessions_per_hour: 3,
            model: if live { "gpt-live-1" } else { "gpt-realtime" }.into(),
            backend,
            ..Settings::default()
        };
        let now = Now {
            mono_ms: 0,
            wall_ms: WALL0,
        };
        Run {
            m: SessionMachine::new(s, NanoUsd(spent), now, counter_ids()),
            mono: 0,
            spend: (limits::utc_day(WALL0), NanoUsd(spent)),
            scans: 0,
            seen: Vec::new(),
            obs: Observer {
                live,
                ..Observer::default()
            },
        }
    }

    fn send(&mut self, input: Input) -> Result<(), TestCaseError> {
        let now = Now {
            mono_ms: self.mono,
            wall_ms: WALL0 + self.mono as i64,
        };
        let ds = self.m.handle(now, input);
        self.obs.observe(&ds)?;
        if let Some(id) = self.m.current_session()
            && !self.seen.contains(&id)
        {
            self.seen.push(id);
        }
        prop_assert_eq!(self.m.current_session(), self.obs.open);
        let day = limits::utc_day(now.wall_ms);
        if day == self.spend.0 {
            prop_assert!(
                self.m.spent_today() >= self.spend.1,
                "today's spend decreased"
            );
        }
        self.spend = (day, self.m.spent_today());
        if matches!(self.m.lifecycle(), Lifecycle::Live | Lifecycle::Ending) {
            let open = self.obs.open.unwrap();
            prop_assert!(
                self.obs.connected.contains(&open),
                "live without a data channel"
            );
        }
        let published = self.obs.last_lifecycle.unwrap_or(Lifecycle::Idle);
        prop_assert_eq!(
            published,
            self.m.lifecycle(),
            "published state is the state"
        );
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        self.mono += 50;
        let current = self.m.current_session();
        let input = match step {
            Step::Admit(b) => {
                self.step(&Step::Scan(*b))?;
                self.step(&Step::Resolve(0))?;
                return self.step(&Step::Connected);
            }
            Step::Scan(b) => {
                self.scans += 1;
                Input::BadgeScanned {
                    scan: ScanId(self.scans),
                    badge: BadgeKey::new(format!("{RAW}-{b:04}")),
                    read_at_ms: self.mono,
                }
            }
            Step::Resolve(kind) => {
                let Some(scan) = self.m.pending_scan() else {
                    return Ok(());
                };
                let member = |membership| {
                    BadgeLookup::Found(Member {
                        id: "m".into(),
                        first_name: "Ana".into(),
                        language: "fr".into(),
                        membership,
                    })
                };
                let lookup = match kind {
                    0 => member(MembershipStatus::Active),
                    1 => member(MembershipStatus::Expired),
                    2 => BadgeLookup::Unknown {
                        badge_hash: "hash".into(),
                    },
                    _ => BadgeLookup::Failed {
                        reason: "down".into(),
                    },
                };
                Input::MemberResolved { scan, lookup }
            }
            Step::StaleResolve => Input::MemberResolved {
                scan: ScanId(0),
                lookup: BadgeLookup::Unknown {
                    badge_hash: "h".into(),
                },
            },
            Step::Connected => match current {
                Some(session_id) => Input::RealtimeConnected { session_id },
                None => return Ok(()),
            },
            Step::Signal(s) | Step::StaleSignal(s) if !s.fits(self.obs.live) => return Ok(()),
            Step::Signal(s) => match current {
                Some(session_id) => Input::Realtime {
                    session_id,
                    signal: to_signal(s),
                },
                None => return Ok(()),
            },
            Step::StaleSignal(s) => match self.seen.iter().find(|&&id| Some(id) != current) {
                Some(&session_id) => Input::Realtime {
                    session_id,
                    signal: to_signal(s),
                },
                None => return Ok(()),
            },
            Step::Fail(k) => match current {
                Some(session_id) => Input::RealtimeFailed {
                    session_id,
                    kind: [
                        FailureKind::ConnectFailed,
                        FailureKind::ConnectionLost,
                        FailureKind::Error,
                        FailureKind::Refused(BrokerRefusal::GymBudget),
                    ][*k as usize % 4],
                    reason: "gone".into(),
                },
                None => return Ok(()),
            },
            Step::Breaker(open) => Input::BreakerOpen(*open),
            Step::AudioLost => Input::AudioLost,
            Step::AudioRestored => Input::AudioRestored,
            Step::Wait(ms) => {
                self.mono += ms;
                Input::Tick
            }
            Step::Shutdown => Input::Shutdown,
        };
        self.send(input)
    }

    /// Ticks for `ms`, one second at a time.
    fn quiet(&mut self, ms: u64) -> Result<(), TestCaseError> {
        for _ in 0..ms / 1_000 {
            self.mono += 1_000;
            self.send(Input::Tick)?;
        }
        Ok(())
    }

    fn assert_settled(&self) -> Result<(), TestCaseError> {
        prop_assert!(
            matches!(self.m.lifecycle(), Lifecycle::Idle | Lifecycle::Degraded),
            "not settled: {:?}",
            self.m.lifecycle()
        );
        prop_assert_eq!(self.m.current_session(), None);
        prop_assert_eq!(&self.obs.started, &self.obs.ended, "every start ended once");
        prop_assert_eq!(
            &self.obs.connects,
            &self.obs.hangups,
            "every connect hung up"
        );
        Ok(())
    }
}

fn runs() -> impl Strategy<Value = (bool, bool, u64, bool, Vec<Step>)> {
    (
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            3 => Just(0u64),
            1 => Just(2_900_000_000),
            1 => Just(3_000_000_000),
        ],
        any::<bool>(),
        proptest::collection::vec(step(), 0..120),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn shutdown_settles_every_sequence((replace, guests, spent, live, steps) in runs()) {
        let mut run = Run::new(replace, guests, spent, live);
        for s in &steps {
            run.step(s)?;
        }
        run.send(Input::Shutdown)?;
        run.quiet(5_000)?;
        run.assert_settled()?;
        let scans = run.scans;
        run.send(Input::BadgeScanned {
            scan: ScanId(scans + 1),
            badge: BadgeKey::new(format!("{RAW}-late")),
            read_at_ms: run.mono,
        })?;
        run.assert_settled()?;
    }

    #[test]
    fn enough_ticks_settle_every_sequence((replace, guests, spent, live, steps) in runs()) {
        let mut run = Run::new(replace, guests, spent, live);
        for s in &steps {
            run.step(s)?;
        }
        // Longest chain: lookup timeout, connect timeout, max duration, goodbye grace, cooldown.
        run.quiet(15 * 60_000)?;
        run.assert_settled()?;
    }
}
