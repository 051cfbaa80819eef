//! The session lifecycle state machine: one conversation at a time, from badge scan to
//! hang-up, with every limit enforced and every start matched by exactly one end.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::decisions::{Decision, Lifecycle, Prompt, RealtimeCommand, SessionContext};
use super::goodbye::GoodbyeMatcher;
use super::inputs::{
    BadgeKey, BadgeLookup, BrokerRefusal, FailureKind, Input, Member, Now, ScanId, Signal,
};
use super::limits::{Calendar, DailyBudget};
use super::live::LiveAccount;
use super::rate::BadgeGate;
use crate::events::{
    CostBreakdown, EndReason, EventPayload, KioskEvent, MembershipStatus, Severity, TokenCounts,
};
use crate::metering::LiveRates;
use crate::money::NanoUsd;

/// How long a member lookup may take before the scan is refused (`lookup_timeout`).
pub const DEFAULT_LOOKUP_TIMEOUT_MS: u64 = 5_000;
/// How long the goodbye may take to be spoken before the call is hung up anyway.
pub const DEFAULT_GOODBYE_GRACE_MS: u64 = 10_000;
/// Pause between "goodbye complete" and the hang-up: the speaker plays its last buffered
/// audio, and usage trailing the goodbye (`response.done`, transcription) still reaches the
/// session's totals.
pub const DEFAULT_HANGUP_DELAY_MS: u64 = 300;
/// What `end_session` returns to the model.
pub const END_SESSION_OUTPUT: &str = r#"{"ok":true}"#;
/// How long a GPT-Live session may take to confirm `session.close` with `session.closed`
/// (OpenAI's sample waits as long), after which it ends on the kiosk's estimate.
pub const DEFAULT_CLOSE_TIMEOUT_MS: u64 = 15_000;
/// Ended sessions whose late usage is still recorded (usage can trail a hang-up).
const RECENT_SESSIONS: usize = 8;

/// Which OpenAI voice API the sessions use (`openai.api`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The Realtime API: billed per token, priced by the adapter response by response.
    Realtime,
    /// GPT-Live: billed per second, metered here. `rates` holds every Live model priced (at
    /// least `Settings::model`), so a session the broker's policy runs on another model is
    /// metered at that model's rates.
    Live { rates: BTreeMap<String, LiveRates> },
}

/// Where ids come from: UUIDv7 in production (`Uuid::now_v7`), a counter in tests.
pub trait IdSource: Send {
    fn next_id(&mut self) -> Uuid;
}

impl<F: FnMut() -> Uuid + Send> IdSource for F {
    fn next_id(&mut self) -> Uuid {
        self()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanDuringSession {
    /// Ignore scans while a session is live.
    Ignore,
    /// End the live session and start the new member's.
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownMember {
    /// Talk with them as a guest.
    Guest,
    /// Say "please see the front desk" and start no session.
    FrontDesk,
}

/// Everything the machine needs from the configuration, in milliseconds and nano-dollars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `openai.model`, recorded with starts and usage.
    pub model: String,
    /// `openai.transcription_model`, recorded with transcription usage.
    pub transcription_model: String,
    /// `session.max_duration_s`, counted from the data channel opening.
    pub max_duration_ms: u64,
    /// `session.idle_timeout_s`: member silence while JARVIS is not speaking.
    pub idle_timeout_ms: u64,
    /// `session.max_cost_usd`: one session's model + transcription cost.
    pub max_cost: NanoUsd,
    /// `session.daily_budget_usd`, per day of `calendar`.
    pub daily_budget: NanoUsd,
    /// `kiosk.timezone`: whose midnight resets the daily budget.
    pub calendar: Calendar,
    /// `session.cooldown_s`, after every ended session.
    pub cooldown_ms: u64,
    /// `badge.debounce_s`.
    pub debounce_ms: u64,
    /// `badge.max_sessions_per_hour`; 0 = no limit.
    pub max_sessions_per_hour: u32,
    /// `badge.on_scan_during_session`.
    pub on_scan_during_session: ScanDuringSession,
    /// `badge.unknown_member`; `guest` also serves expired members (never suspended ones).
    pub unknown_member: UnknownMember,
    /// `openai.goodbye_phrases`, first match wins.
    pub goodbye_phrases: Vec<String>,
    /// `openai.connect_timeout_s`, from the session start to the data channel opening.
    pub connect_timeout_ms: u64,
    /// Member lookup bound (no config key: the lookup adapter has its own, shorter timeouts).
    pub lookup_timeout_ms: u64,
    /// How long ending may wait for the goodbye to be spoken.
    pub goodbye_grace_ms: u64,
    /// Pause after the goodbye is complete before hanging up.
    pub hangup_delay_ms: u64,
    /// `openai.api`: how sessions are billed and ended.
    pub backend: Backend,
    /// GPT-Live: how long to wait for `session.closed` after `session.close`.
    pub close_timeout_ms: u64,
}

/// The product's defaults; `config`'s defaults for the same keys are built from these.
impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: "gpt-realtime".into(),
            transcription_model: "gpt-4o-mini-transcribe".into(),
            max_duration_ms: 600_000,
            idle_timeout_ms: 60_000,
            max_cost: NanoUsd(1_000_000_000),
            daily_budget: NanoUsd(20_000_000_000),
            calendar: Calendar::utc(),
            cooldown_ms: 3_000,
            debounce_ms: 3_000,
            max_sessions_per_hour: 6,
            on_scan_during_session: ScanDuringSession::Ignore,
            unknown_member: UnknownMember::FrontDesk,
            goodbye_phrases: vec![
                "au revoir".into(),
                "bonne journée".into(),
                "à bientôt".into(),
            ],
            connect_timeout_ms: 10_000,
            lookup_timeout_ms: DEFAULT_LOOKUP_TIMEOUT_MS,
            goodbye_grace_ms: DEFAULT_GOODBYE_GRACE_MS,
            hangup_delay_ms: DEFAULT_HANGUP_DELAY_MS,
            backend: Backend::Realtime,
            close_timeout_ms: DEFAULT_CLOSE_TIMEOUT_MS,
        }
    }
}

/// Where the started session stands, for `status` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionProgress {
    pub session_id: Uuid,
    /// `None` for a guest.
    pub first_name: Option<String>,
    /// Wall-clock milliseconds when the session started.
    pub started_at_ms: i64,
    /// Cost so far; for GPT-Live, estimated from the elapsed time between usage reports.
    pub cost: NanoUsd,
    /// GPT-Live: voice seconds billed so far (estimated likewise); `None` for Realtime.
    pub billed_seconds: Option<u64>,
}

/// A started session: from `SessionStarted` to its one `SessionEnded`.
#[derive(Debug)]
struct Session {
    id: Uuid,
    badge: BadgeKey,
    scanned_at: u64,
    started_at: u64,
    /// Wall clock at `started_at`, for `status`.
    started_wall_ms: i64,
    /// The member's first name (`None` for a guest), for `status`.
    first_name: Option<String>,
    tokens: TokenCounts,
    cost: CostBreakdown,
    /// JARVIS audio is playing (between output audio started and stopped).
    speaking: bool,
    /// A response finished since the member last started speaking.
    responded_since_speech: bool,
    /// A GPT-Live session's voice meter and delegation costs.
    live: Option<LiveAccount>,
}

impl Session {
    /// What the session has cost by `now_ms` (for GPT-Live, the estimate included).
    fn spend_at(&self, now_ms: u64) -> NanoUsd {
        match &self.live {
            Some(live) => live.spend_at(now_ms),
            None => self.cost.total(),
        }
    }
}

#[derive(Debug)]
enum State {
    Idle,
    LookingUp {
        scan: ScanId,
        badge: BadgeKey,
        scanned_at: u64,
    },
    Connecting {
        session: Session,
        deadline: u64,
    },
    Live {
        session: Session,
        connected_at: u64,
        /// Last member speech or end of JARVIS audio: the idle timer counts from here.
        last_activity: u64,
    },
    Ending {
        session: Session,
        reason: EndReason,
        deadline: u64,
        /// Still waiting for a response (the goodbye) to finish before hanging up.
        need_response: bool,
        /// When the goodbye is complete (no response awaited, JARVIS silent): hang up then.
        hang_up_at: Option<u64>,
    },
    /// GPT-Live: `session.close` sent, waiting for `session.closed` and its final usage.
    Closing {
        session: Session,
        reason: EndReason,
        detail: Option<String>,
        deadline: u64,
    },
    Cooldown {
        until: u64,
    },
}

/// The lifecycle core. Feed it inputs with [`SessionMachine::handle`]; carry out the
/// decisions in order. It holds no I/O, clock or randomness, so every run is reproducible.
pub struct SessionMachine {
    settings: Settings,
    goodbye: GoodbyeMatcher,
    gate: BadgeGate,
    budget: DailyBudget,
    ids: Box<dyn IdSource>,
    state: State,
    audio_lost: bool,
    breaker_open: bool,
    store_failing: bool,
    shutting_down: bool,
    /// The last ended sessions (with a GPT-Live session's account, to price a late report).
    recent: VecDeque<(Uuid, Option<LiveAccount>)>,
    published: Lifecycle,
    now: Now,
    out: Vec<Decision>,
}

impl SessionMachine {
    /// A machine with these settings. `spent_today` is what the store already recorded for
    /// the current day of `settings.calendar` (so a restart does not reset the daily budget).
    pub fn new(
        settings: Settings,
        spent_today: NanoUsd,
        now: Now,
        ids: impl IdSource + 'static,
    ) -> Self {
        SessionMachine {
            goodbye: GoodbyeMatcher::new(&settings.goodbye_phrases),
            gate: BadgeGate::new(settings.debounce_ms, settings.max_sessions_per_hour),
            budget: DailyBudget::new(
                settings.daily_budget,
                spent_today,
                settings.calendar.day(now.wall_ms),
            ),
            settings,
            ids: Box::new(ids),
            state: State::Idle,
            audio_lost: false,
            breaker_open: false,
            store_failing: false,
            shutting_down: false,
            recent: VecDeque::with_capacity(RECENT_SESSIONS),
            published: Lifecycle::Idle,
            now,
            out: Vec::new(),
        }
    }

    /// Processes one input at `now` and returns what to do, in order. Timers that are due at
    /// `now` fire first, whatever the input.
    pub fn handle(&mut self, now: Now, input: Input) -> Vec<Decision> {
        self.now = Now {
            mono_ms: now.mono_ms.max(self.now.mono_ms),
            wall_ms: now.wall_ms,
        };
        self.budget.roll(self.settings.calendar.day(now.wall_ms));
        self.gate.prune(self.now.mono_ms);
        while self.fire_timer() {}
        match input {
            Input::BadgeScanned {
                scan,
                badge,
                read_at_ms,
            } => self.on_scan(scan, badge, read_at_ms),
            Input::MemberResolved { scan, lookup } => self.on_resolved(scan, lookup),
            Input::RealtimeConnected { session_id } => self.on_connected(session_id),
            Input::Realtime { session_id, signal } => self.on_signal(session_id, signal),
            Input::RealtimeFailed {
                session_id,
                kind,
                reason,
            } => self.on_failed(session_id, kind, reason),
            Input::BreakerOpen(open) => self.breaker_open = open,
            Input::StoreFailing(failing) => self.store_failing = failing,
            Input::AudioLost => self.on_audio_lost(),
            Input::AudioRestored => self.audio_lost = false,
            Input::Tick => {}
            Input::Shutdown => self.on_shutdown(),
        }
        while self.fire_timer() {}
        if self.session().is_some_and(|s| s.live.is_some()) {
            // Live voice time costs by the second: the limits are checked as time passes.
            self.check_spend();
        }
        if self.budget.take_alert() {
            let message = format!(
                "daily OpenAI budget reached: {} spent today ({zone}) of {}; new scans are \
                 refused until midnight {zone} (raise session.daily_budget_usd to allow more)",
                self.budget.spent(),
                self.budget.budget(),
                zone = self.settings.calendar.zone(),
            );
            self.record(
                None,
                EventPayload::Alert {
                    code: "daily_budget_reached".into(),
                    severity: Severity::Warning,
                    message,
                },
            );
        }
        let lifecycle = self.lifecycle();
        if lifecycle != self.published {
            self.published = lifecycle;
            self.out.push(Decision::Lifecycle(lifecycle));
        }
        std::mem::take(&mut self.out)
    }

    /// The current lifecycle state (publish it to health at start-up).
    pub fn lifecycle(&self) -> Lifecycle {
        match &self.state {
            State::Idle if self.audio_lost || self.breaker_open || self.store_failing => {
                Lifecycle::Degraded
            }
            State::Idle => Lifecycle::Idle,
            State::LookingUp { .. } => Lifecycle::LookingUp,
            State::Connecting { .. } => Lifecycle::Connecting,
            State::Live { .. } => Lifecycle::Live,
            State::Ending { .. } | State::Closing { .. } => Lifecycle::Ending,
            State::Cooldown { .. } => Lifecycle::Cooldown,
        }
    }

    /// The started, not yet ended session, if any.
    pub fn current_session(&self) -> Option<Uuid> {
        self.session().map(|s| s.id)
    }

    /// The started session's progress (id, start, cost so far), for `status`.
    pub fn session_progress(&self) -> Option<SessionProgress> {
        let now = self.mono();
        self.session().map(|s| SessionProgress {
            session_id: s.id,
            first_name: s.first_name.clone(),
            started_at_ms: s.started_wall_ms,
            cost: s.spend_at(now),
            billed_seconds: s.live.as_ref().map(|l| l.billed_seconds_at(now)),
        })
    }

    /// The scan whose lookup is awaited, if any.
    pub fn pending_scan(&self) -> Option<ScanId> {
        match &self.state {
            State::LookingUp { scan, .. } => Some(*scan),
            _ => None,
        }
    }

    /// Applies settings reloaded from the config file (SIGHUP). Today's spend, the rate-limit
    /// history and a session in progress are kept; its limits are the new ones from now on.
    pub fn reload(&mut self, settings: Settings) {
        self.goodbye = GoodbyeMatcher::new(&settings.goodbye_phrases);
        self.gate
            .set_limits(settings.debounce_ms, settings.max_sessions_per_hour);
        self.budget.set_budget(settings.daily_budget);
        self.settings = settings;
    }

    /// Spend recorded today (UTC), for health gauges.
    pub fn spent_today(&self) -> NanoUsd {
        self.budget.spent()
    }

    fn session(&self) -> Option<&Session> {
        match &self.state {
            State::Connecting { session, .. }
            | State::Live { session, .. }
            | State::Ending { session, .. }
            | State::Closing { session, .. } => Some(session),
            _ => None,
        }
    }

    fn session_mut(&mut self) -> Option<&mut Session> {
        match &mut self.state {
            State::Connecting { session, .. }
            | State::Live { session, .. }
            | State::Ending { session, .. }
            | State::Closing { session, .. } => Some(session),
            _ => None,
        }
    }

    /// The GPT-Live account of this session, current or recently ended.
    fn live_account(&mut self, session_id: Uuid) -> Option<&mut LiveAccount> {
        if self.current_session() == Some(session_id) {
            return self.session_mut().and_then(|s| s.live.as_mut());
        }
        self.recent
            .iter_mut()
            .find(|(id, _)| *id == session_id)
            .and_then(|(_, live)| live.as_mut())
    }

    fn mono(&self) -> u64 {
        self.now.mono_ms
    }

    /// Fires the first due timer; true if one fired (then call again).
    fn fire_timer(&mut self) -> bool {
        let now = self.mono();
        let s = &self.settings;
        match &self.state {
            State::LookingUp { scanned_at, .. }
                if now >= scanned_at.saturating_add(s.lookup_timeout_ms) =>
            {
                self.state = State::Idle;
                self.refuse("lookup_timeout", Some(Prompt::Unavailable));
            }
            State::Connecting { deadline, .. } if now >= *deadline => {
                let detail = "no data channel within openai.connect_timeout_s".to_owned();
                self.finish(EndReason::ConnectFailed, Some(detail));
            }
            State::Live {
                connected_at,
                last_activity,
                session,
            } => {
                if now >= connected_at.saturating_add(s.max_duration_ms) {
                    self.begin_goodbye(EndReason::MaxDuration);
                } else if !session.speaking
                    && now >= last_activity.saturating_add(s.idle_timeout_ms)
                {
                    self.end(EndReason::IdleTimeout, None);
                } else {
                    return false;
                }
            }
            State::Ending {
                deadline,
                reason,
                hang_up_at,
                ..
            } if now >= *deadline || hang_up_at.is_some_and(|at| now >= at) => {
                let reason = *reason;
                let detail = hang_up_at
                    .is_none_or(|at| now < at)
                    .then(|| "goodbye grace timeout".to_owned());
                self.end(reason, detail);
            }
            State::Closing {
                deadline,
                reason,
                detail,
                ..
            } if now >= *deadline => {
                let reason = *reason;
                let waited = format!(
                    "no session.closed within {} s of session.close: the voice cost is the \
                     kiosk's estimate",
                    s.close_timeout_ms / 1000
                );
                let detail = match detail {
                    Some(d) => format!("{d}; {waited}"),
                    None => waited,
                };
                self.finish(reason, Some(detail));
            }
            State::Cooldown { until } if now >= *until => self.state = State::Idle,
            _ => return false,
        }
        true
    }

    fn on_scan(&mut self, scan: ScanId, badge: BadgeKey, read_at_ms: u64) {
        let read_at = read_at_ms.min(self.mono());
        if !self.gate.read(&badge, self.mono()) || self.shutting_down {
            return;
        }
        let replace = self.settings.on_scan_during_session == ScanDuringSession::Replace;
        match &self.state {
            State::Idle => match self.refusal(&badge) {
                Some((cause, prompt)) => self.refuse(cause, Some(prompt)),
                None => self.accept(scan, badge, read_at),
            },
            State::LookingUp { badge: current, .. } if replace && *current != badge => {
                match self.refusal(&badge) {
                    Some((cause, _)) => self.refuse(cause, None),
                    None => self.accept(scan, badge, read_at),
                }
            }
            State::Connecting { session, .. } | State::Live { session, .. }
                if replace && session.badge != badge =>
            {
                match self.refusal(&badge) {
                    Some((cause, _)) => self.refuse(cause, None),
                    None => {
                        self.finish(EndReason::Replaced, None);
                        self.accept(scan, badge, read_at);
                    }
                }
            }
            _ => {}
        }
    }

    /// Why a scan cannot start a session now, with the prompt that says so.
    fn refusal(&self, badge: &BadgeKey) -> Option<(&'static str, Prompt)> {
        if let Some(r) = self.service_refusal() {
            return Some(r);
        }
        if !self.gate.may_start(badge, self.mono()) {
            return Some(("rate_limited", Prompt::RateLimited));
        }
        None
    }

    /// Refusals that do not depend on the badge (checked again when the lookup answers).
    fn service_refusal(&self) -> Option<(&'static str, Prompt)> {
        if self.audio_lost {
            Some(("audio_unavailable", Prompt::Unavailable))
        } else if self.breaker_open {
            Some(("breaker_open", Prompt::Unavailable))
        } else if self.store_failing {
            Some(("store_unavailable", Prompt::Unavailable))
        } else if self.budget.exhausted() {
            Some(("daily_budget", Prompt::BudgetReached))
        } else {
            None
        }
    }

    fn refuse(&mut self, cause: &str, prompt: Option<Prompt>) {
        if let Some(p) = prompt {
            self.out.push(Decision::PlayPrompt(p));
        }
        self.record(
            None,
            EventPayload::ScanRefused {
                cause: cause.into(),
            },
        );
    }

    fn accept(&mut self, scan: ScanId, badge: BadgeKey, read_at: u64) {
        self.out.push(Decision::LookUpMember { scan });
        self.out.push(Decision::PlayPrompt(Prompt::Chime));
        self.state = State::LookingUp {
            scan,
            badge,
            scanned_at: read_at,
        };
    }

    fn on_resolved(&mut self, scan: ScanId, lookup: BadgeLookup) {
        if self.pending_scan() != Some(scan) {
            return;
        }
        let State::LookingUp {
            badge, scanned_at, ..
        } = std::mem::replace(&mut self.state, State::Idle)
        else {
            return;
        };
        if let Some((cause, prompt)) = self.service_refusal() {
            return self.refuse(cause, Some(prompt));
        }
        let guests = self.settings.unknown_member == UnknownMember::Guest;
        match lookup {
            BadgeLookup::Found(member) => match member.membership {
                MembershipStatus::Active | MembershipStatus::Guest => {
                    self.start(badge, scanned_at, Some(member), None)
                }
                MembershipStatus::Expired if guests => {
                    self.start(badge, scanned_at, Some(member), None)
                }
                MembershipStatus::Expired => {
                    self.refuse("membership_expired", Some(Prompt::FrontDesk))
                }
                MembershipStatus::Suspended => {
                    self.refuse("membership_suspended", Some(Prompt::FrontDesk))
                }
            },
            BadgeLookup::Unknown { badge_hash } if guests => {
                self.start(badge, scanned_at, None, Some(badge_hash))
            }
            BadgeLookup::Unknown { .. } => self.refuse("unknown_badge", Some(Prompt::FrontDesk)),
            BadgeLookup::Failed { .. } => self.refuse("lookup_failed", Some(Prompt::Unavailable)),
        }
    }

    fn start(
        &mut self,
        badge: BadgeKey,
        scanned_at: u64,
        member: Option<Member>,
        badge_hash: Option<String>,
    ) {
        let now = self.mono();
        let id = self.ids.next_id();
        self.gate.started(&badge, now);
        let context = match member {
            Some(m) => SessionContext {
                member_id: Some(m.id),
                first_name: Some(m.first_name),
                language: Some(m.language),
                membership: m.membership,
            },
            None => SessionContext {
                member_id: None,
                first_name: None,
                language: None,
                membership: MembershipStatus::Guest,
            },
        };
        self.record(
            Some(id),
            EventPayload::SessionStarted {
                member_id: context.member_id.clone(),
                badge_hash,
                membership: context.membership,
                model: self.settings.model.clone(),
            },
        );
        let first_name = context.first_name.clone();
        self.out.push(Decision::Connect {
            session_id: id,
            context,
        });
        self.state = State::Connecting {
            session: Session {
                id,
                badge,
                scanned_at,
                started_at: now,
                started_wall_ms: self.now.wall_ms,
                first_name,
                tokens: TokenCounts::default(),
                cost: CostBreakdown::default(),
                speaking: false,
                responded_since_speech: false,
                live: match &self.settings.backend {
                    Backend::Live { rates } => rates
                        .get(&self.settings.model)
                        .map(|r| LiveAccount::new(&self.settings.model, *r)),
                    Backend::Realtime => None,
                },
            },
            deadline: now.saturating_add(self.settings.connect_timeout_ms),
        };
    }

    fn on_connected(&mut self, session_id: Uuid) {
        let now = self.mono();
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Connecting { mut session, .. } if session.id == session_id => {
                if let Some(live) = &mut session.live {
                    live.started(now);
                }
                let connect_ms = now.saturating_sub(session.scanned_at);
                self.record(
                    Some(session_id),
                    EventPayload::SessionConnected { connect_ms },
                );
                self.state = State::Live {
                    session,
                    connected_at: now,
                    last_activity: now,
                };
            }
            other => self.state = other,
        }
    }

    fn on_signal(&mut self, session_id: Uuid, signal: Signal) {
        if self.current_session() != Some(session_id) {
            if self.recent.iter().any(|(id, _)| *id == session_id) {
                self.record_late(session_id, signal);
            }
            return;
        }
        let now = self.mono();
        match signal {
            Signal::LiveCreated => {
                if let Some(live) = self.live_account(session_id) {
                    live.created();
                }
            }
            Signal::LiveModel { model } => self.on_live_model(session_id, model),
            Signal::LiveUsage { seconds, raw_usage } => {
                self.record_live(session_id, seconds, false, raw_usage);
                self.check_spend();
            }
            Signal::DelegationUsage { .. } => {
                self.record_delegation(session_id, signal);
                self.check_spend();
            }
            Signal::LiveClosed {
                seconds,
                reason,
                raw_usage,
            } => {
                self.record_live(session_id, seconds, true, raw_usage);
                self.on_live_closed(&reason);
                return;
            }
            Signal::OutputSpeech => match &mut self.state {
                State::Live {
                    session,
                    last_activity,
                    ..
                } => {
                    session.responded_since_speech = true;
                    *last_activity = now;
                }
                State::Ending {
                    need_response,
                    hang_up_at,
                    ..
                } => {
                    // Hang up once JARVIS has been quiet for the delay (`session.close` then
                    // drains what is still being said).
                    *need_response = false;
                    *hang_up_at = Some(now.saturating_add(self.settings.hangup_delay_ms));
                }
                _ => {}
            },
            Signal::ResponseUsage { .. } | Signal::TranscriptionUsage { .. } => {
                let (tokens, cost) = self.record_usage(session_id, signal);
                if let Some(s) = self.session_mut() {
                    s.tokens += tokens;
                    s.cost += cost;
                }
                self.check_spend();
            }
            Signal::SpeechStarted => {
                if let State::Live {
                    last_activity,
                    session,
                    ..
                } = &mut self.state
                {
                    *last_activity = now;
                    session.responded_since_speech = false;
                }
            }
            Signal::TranscriptCompleted { text } => {
                if let State::Live {
                    last_activity,
                    session,
                    ..
                } = &mut self.state
                {
                    *last_activity = now;
                    let need_response = !session.responded_since_speech;
                    if self.goodbye.find(&text).is_some() {
                        self.enter_ending(EndReason::GoodbyePhrase, need_response);
                    }
                }
            }
            Signal::EndSessionCalled { call_id } => {
                if matches!(self.state, State::Live { .. } | State::Ending { .. }) {
                    self.out.push(Decision::SendRealtime {
                        session_id,
                        command: RealtimeCommand::FunctionCallOutput {
                            call_id,
                            output: END_SESSION_OUTPUT.into(),
                        },
                    });
                }
                match &mut self.state {
                    State::Live { .. } => self.enter_ending(EndReason::Goodbye, false),
                    // The phrase matcher is the fallback: when the model confirms, its call
                    // is the reason on record.
                    State::Ending { reason, .. } | State::Closing { reason, .. }
                        if *reason == EndReason::GoodbyePhrase =>
                    {
                        *reason = EndReason::Goodbye
                    }
                    _ => {}
                }
            }
            Signal::OutputAudioStarted => {
                if let Some(s) = self.session_mut() {
                    s.speaking = true;
                }
            }
            Signal::OutputAudioStopped => match &mut self.state {
                State::Live {
                    session,
                    last_activity,
                    ..
                } => {
                    session.speaking = false;
                    *last_activity = now;
                }
                State::Ending { session, .. } | State::Connecting { session, .. } => {
                    session.speaking = false
                }
                _ => {}
            },
            Signal::ResponseDone => match &mut self.state {
                State::Live { session, .. } => session.responded_since_speech = true,
                State::Ending { need_response, .. } => *need_response = false,
                _ => {}
            },
        }
        self.schedule_hang_up();
    }

    /// In ending: hang up after the delay once the goodbye is complete; wait again if JARVIS
    /// starts speaking once more.
    fn schedule_hang_up(&mut self) {
        let at = self.mono().saturating_add(self.settings.hangup_delay_ms);
        if let State::Ending {
            session,
            need_response,
            hang_up_at,
            ..
        } = &mut self.state
        {
            let complete = !*need_response && !session.speaking;
            match (complete, *hang_up_at) {
                (true, None) => *hang_up_at = Some(at),
                (false, Some(_)) => *hang_up_at = None,
                _ => {}
            }
        }
    }

    /// Usage of a session that already ended (it can trail the hang-up): recorded and
    /// counted in today's spend, though after the session's `SessionEnded` totals.
    fn record_late(&mut self, session_id: Uuid, signal: Signal) {
        match signal {
            Signal::LiveUsage { seconds, raw_usage } => {
                self.record_live(session_id, seconds, false, raw_usage)
            }
            Signal::LiveClosed {
                seconds, raw_usage, ..
            } => self.record_live(session_id, seconds, true, raw_usage),
            Signal::DelegationUsage { .. } => self.record_delegation(session_id, signal),
            other => {
                self.record_usage(session_id, other);
            }
        }
    }

    /// `session.started` named the model that runs: meter at its rates, and say so loudly
    /// when it is not the configured one (the broker's policy decides the fleet's model).
    fn on_live_model(&mut self, session_id: Uuid, model: String) {
        let configured = self.settings.model.clone();
        if model == configured {
            return;
        }
        let rates = match &self.settings.backend {
            Backend::Live { rates } => rates.get(&model).copied(),
            Backend::Realtime => return,
        };
        let (severity, message) = match rates {
            Some(rates) => {
                if let Some(live) = self.live_account(session_id) {
                    live.switch_model(&model, rates);
                }
                (
                    Severity::Warning,
                    format!(
                        "the GPT-Live session runs {model} (the broker's policy) while \
                         openai.live.model says {configured}: metered at {model}'s rates; set \
                         openai.live.model = \"{model}\" to match the fleet"
                    ),
                )
            }
            None => (
                Severity::Critical,
                format!(
                    "the GPT-Live session runs {model}, which has no voice price: metered at \
                     {configured}'s rates; add pricing.\"{model}\".active_per_minute"
                ),
            ),
        };
        self.record(
            Some(session_id),
            EventPayload::Alert {
                code: "live_model_mismatch".into(),
                severity,
                message,
            },
        );
    }

    /// Records a GPT-Live voice figure and charges today's spend with its increment.
    fn record_live(
        &mut self,
        session_id: Uuid,
        seconds: u64,
        closed: bool,
        raw_usage: serde_json::Value,
    ) {
        let Some(report) = self
            .live_account(session_id)
            .map(|live| live.report(seconds, closed, raw_usage))
        else {
            return;
        };
        match report {
            Ok((payload, charged)) => {
                self.budget.add(charged);
                self.record(Some(session_id), payload);
            }
            Err(e) => self.record(
                Some(session_id),
                EventPayload::Alert {
                    code: "usage_overflow".into(),
                    severity: Severity::Critical,
                    message: format!(
                        "GPT-Live usage of {seconds} s could not be priced: {e}; report it to \
                         OpenAI support"
                    ),
                },
            ),
        }
    }

    /// Records a delegated response's usage; it adds to the session's and today's spend.
    fn record_delegation(&mut self, session_id: Uuid, signal: Signal) {
        let Signal::DelegationUsage {
            response_id,
            model,
            tokens,
            cost,
            raw_usage,
        } = signal
        else {
            return;
        };
        if let Some(live) = self.live_account(session_id) {
            live.delegated(cost);
        }
        self.budget.add(cost);
        self.record(
            Some(session_id),
            EventPayload::DelegationUsage {
                response_id,
                model,
                tokens,
                cost_nusd: cost,
                raw_usage,
            },
        );
    }

    /// `session.closed` arrived: the end we asked for, or the server's own (expiry, a lost
    /// connection, content policy), which ends the session with the matching reason.
    fn on_live_closed(&mut self, server_reason: &str) {
        let detail = format!("session.closed: {server_reason}");
        match &self.state {
            State::Closing { reason, detail, .. } => {
                let (reason, detail) = (*reason, detail.clone());
                self.finish(reason, detail);
            }
            State::Ending { reason, .. } => {
                let reason = *reason;
                self.finish(reason, Some(detail));
            }
            State::Connecting { .. } | State::Live { .. } => {
                let reason = match server_reason {
                    "expired" => EndReason::MaxDuration,
                    "content" => EndReason::RealtimeError,
                    _ => EndReason::ConnectionLost,
                };
                self.finish(reason, Some(detail));
            }
            _ => {}
        }
    }

    /// Records a usage signal (other signals are ignored) and adds it to today's spend.
    fn record_usage(&mut self, session_id: Uuid, signal: Signal) -> (TokenCounts, CostBreakdown) {
        let (payload, tokens, cost) = match signal {
            Signal::ResponseUsage {
                response_id,
                tokens,
                cost,
                raw_usage,
            } => (
                EventPayload::ResponseUsage {
                    response_id,
                    model: self.settings.model.clone(),
                    tokens,
                    cost,
                    raw_usage,
                },
                tokens,
                cost,
            ),
            Signal::TranscriptionUsage {
                item_id,
                cost,
                raw_usage,
            } => (
                EventPayload::TranscriptionUsage {
                    item_id,
                    model: self.settings.transcription_model.clone(),
                    cost,
                    raw_usage,
                },
                TokenCounts::default(),
                cost,
            ),
            _ => return Default::default(),
        };
        self.budget.add(cost.total());
        self.record(Some(session_id), payload);
        (tokens, cost)
    }

    /// After a cost: end the session if it reached its own limit or today's budget.
    fn check_spend(&mut self) {
        let now = self.mono();
        let Some(s) = self.session() else { return };
        let pending = s.live.as_ref().map_or(NanoUsd::ZERO, |l| l.pending_at(now));
        let reason = if s.spend_at(now) >= self.settings.max_cost {
            EndReason::MaxCost
        } else if self.budget.exhausted_with(pending) {
            EndReason::DailyBudget
        } else {
            return;
        };
        match self.state {
            State::Live { .. } => self.begin_goodbye(reason),
            State::Connecting { .. } => self.finish(reason, None),
            _ => {}
        }
    }

    /// Asks JARVIS to say a short goodbye, then hangs up once it has been said.
    fn begin_goodbye(&mut self, reason: EndReason) {
        let Some(id) = self.current_session() else {
            return;
        };
        let why = match reason {
            EndReason::MaxDuration => "the time for this conversation is up",
            _ => "the spending limit for this conversation is reached",
        };
        let instructions = format!(
            "The session is ending now because {why}. Say a short, warm goodbye to the member \
             in one sentence, in the language of the conversation, and ask no question."
        );
        self.out.push(Decision::SendRealtime {
            session_id: id,
            command: RealtimeCommand::SayGoodbye { instructions },
        });
        self.enter_ending(reason, true);
    }

    /// Ends the session: a GPT-Live session that still has its connection is closed first
    /// (`session.close`, then its final usage); any other ends at once.
    fn end(&mut self, reason: EndReason, detail: Option<String>) {
        let deadline = self.mono().saturating_add(self.settings.close_timeout_ms);
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Live { session, .. } | State::Ending { session, .. }
                if session.live.as_ref().is_some_and(|l| !l.is_closed()) =>
            {
                self.out.push(Decision::SendRealtime {
                    session_id: session.id,
                    command: RealtimeCommand::CloseSession,
                });
                self.state = State::Closing {
                    session,
                    reason,
                    detail,
                    deadline,
                };
            }
            other => {
                self.state = other;
                self.finish(reason, detail);
            }
        }
    }

    /// Moves a live session to ending; it hangs up once the goodbye is complete.
    fn enter_ending(&mut self, reason: EndReason, need_response: bool) {
        let deadline = self.mono().saturating_add(self.settings.goodbye_grace_ms);
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Live { session, .. } => {
                self.state = State::Ending {
                    session,
                    reason,
                    deadline,
                    need_response,
                    hang_up_at: None,
                };
                self.schedule_hang_up();
            }
            other => self.state = other,
        }
    }

    fn on_failed(&mut self, session_id: Uuid, kind: FailureKind, detail: String) {
        if self.current_session() != Some(session_id) {
            return;
        }
        let reason = match (&self.state, kind) {
            (State::Connecting { .. }, FailureKind::Refused(refusal)) => {
                return self.finish_refused(refusal, detail);
            }
            (State::Ending { reason, .. } | State::Closing { reason, .. }, _) => *reason,
            (State::Connecting { .. }, _) | (_, FailureKind::ConnectFailed) => {
                EndReason::ConnectFailed
            }
            (_, FailureKind::ConnectionLost) => EndReason::ConnectionLost,
            (_, FailureKind::Error | FailureKind::Refused(_)) => EndReason::RealtimeError,
        };
        self.finish(reason, Some(detail));
    }

    /// The broker refused the session while it connected: it ends `connect_failed` (its one
    /// `SessionEnded`), the refusal is recorded as a `ScanRefused` cause and said with its own
    /// prompt instead of the apology for a failure.
    fn finish_refused(&mut self, refusal: BrokerRefusal, detail: String) {
        let before = self.out.len();
        self.finish(EndReason::ConnectFailed, Some(detail));
        let finished = self.out.split_off(before);
        self.out.extend(
            finished
                .into_iter()
                .filter(|d| *d != Decision::PlayPrompt(Prompt::Apology)),
        );
        self.refuse(refusal.cause(), Some(refusal.prompt()));
    }

    fn on_audio_lost(&mut self) {
        self.audio_lost = true;
        match &self.state {
            State::LookingUp { .. } => self.state = State::Idle,
            State::Connecting { .. } | State::Live { .. } => {
                self.finish(EndReason::AudioLost, None)
            }
            State::Ending { reason, .. } | State::Closing { reason, .. } => {
                let reason = *reason;
                self.finish(reason, None);
            }
            _ => {}
        }
    }

    fn on_shutdown(&mut self) {
        self.shutting_down = true;
        match &self.state {
            State::LookingUp { .. } | State::Cooldown { .. } => self.state = State::Idle,
            State::Connecting { .. } | State::Live { .. } => self.finish(EndReason::Shutdown, None),
            State::Ending { reason, .. } | State::Closing { reason, .. } => {
                let reason = *reason;
                self.finish(reason, None);
            }
            State::Idle => {}
        }
    }

    /// Ends the current session: hang up, record its one `SessionEnded`, apologise if it
    /// failed, then cool down (or go idle when shutting down).
    fn finish(&mut self, reason: EndReason, detail: Option<String>) {
        let (State::Connecting { mut session, .. }
        | State::Live { mut session, .. }
        | State::Ending { mut session, .. }
        | State::Closing { mut session, .. }) = std::mem::replace(&mut self.state, State::Idle)
        else {
            return;
        };
        let now = self.mono();
        let live = session.live.as_mut().map(|l| l.finish(now));
        if let Some(totals) = &live {
            self.budget.add(totals.charged_nusd);
        }
        self.out.push(Decision::HangUp {
            session_id: session.id,
            reason,
            detail: detail.clone(),
        });
        self.record(
            Some(session.id),
            EventPayload::SessionEnded {
                reason,
                duration_ms: now.saturating_sub(session.started_at),
                tokens: session.tokens,
                cost: session.cost,
                detail,
                live,
            },
        );
        let failed = matches!(
            reason,
            EndReason::ConnectFailed | EndReason::ConnectionLost | EndReason::RealtimeError
        );
        if failed && !self.audio_lost && !self.shutting_down {
            self.out.push(Decision::PlayPrompt(Prompt::Apology));
        }
        if self.recent.len() == RECENT_SESSIONS {
            self.recent.pop_front();
        }
        self.recent.push_back((session.id, session.live));
        if !self.shutting_down {
            self.state = State::Cooldown {
                until: now.saturating_add(self.settings.cooldown_ms),
            };
        }
    }

    fn record(&mut self, session_id: Option<Uuid>, payload: EventPayload) {
        self.out.push(Decision::Record(KioskEvent {
            event_id: self.ids.next_id(),
            session_id,
            occurred_at_ms: self.now.wall_ms,
            payload,
        }));
    }
}
