//! The lifecycle driver: feeds the pure [`SessionMachine`] everything that happens and carries
//! out its decisions (look up, connect, send, play, hang up, record) through the adapters.
//!
//! All policy lives in the machine; this loop only translates. It is the one place that holds
//! the raw badge of a pending scan, and only until its lookup is answered.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::conversation::{Conversation, ConversationEvent, RealtimeDeps};
use super::faults::TestFaults;
use super::watchdog::Heartbeat;
use jarvis_audio::{Capture, OpusFrame, Playback, PromptSound};
use jarvis_badge::Scan;
use jarvis_core::badge::Badge;
use jarvis_core::breaker::{Admission, Breaker, BreakerState};
use jarvis_core::clock;
use jarvis_core::events::{EndReason, EventPayload, KioskEvent, Severity};
use jarvis_core::health::{AdapterState, CurrentSession, Health};
use jarvis_core::session::{
    BadgeLookup, Decision, FailureKind, Input, Now, Prompt, ScanId, SessionMachine, Settings,
};
use jarvis_store::StoreHandle;

/// How often the machine gets a `Tick` (its timers' resolution).
pub const TICK: Duration = Duration::from_millis(250);

/// Events kept in memory while the store cannot record them (no session starts meanwhile,
/// so this only holds refusals and the end of the session that was live).
const UNRECORDED_MAX: usize = 10_000;

/// Answers "who is this badge?" for the driver (the badge module's cached lookup).
pub trait Directory: Send + Sync + 'static {
    fn resolve(&self, badge: Badge, now_ms: i64) -> impl Future<Output = BadgeLookup> + Send;
    /// The key the core compares for debounce and rate limits (a keyed hash: never the badge).
    fn key(&self, badge: &Badge) -> String;
}

/// What a reload (SIGHUP) hands the running loop: the session settings and the Realtime side
/// rebuilt from the new file (prices, instructions).
pub struct Reload {
    pub settings: Settings,
    pub realtime: Arc<RealtimeDeps>,
}

/// Where the driver's inputs come from.
pub struct Inputs {
    pub scans: mpsc::Receiver<Scan>,
    /// Encoded microphone frames: forwarded to the live conversation by a task of their own,
    /// never through the lifecycle loop (which waits on the store).
    pub mic: mpsc::Receiver<OpusFrame>,
    pub reloads: mpsc::Receiver<Reload>,
}

/// The adapters the driver talks to.
pub struct Driver<D: Directory> {
    pub machine: SessionMachine,
    pub store: StoreHandle,
    pub health: Health,
    pub directory: Arc<D>,
    pub realtime: Arc<RealtimeDeps>,
    pub playback: Arc<Playback>,
    /// Live only while a session's conversation connects or runs: idle costs no encoding.
    pub capture: Arc<Capture>,
    pub breaker: Breaker,
    /// Bumped on every turn of the loop: the watchdog pings only while it moves.
    pub heartbeat: Heartbeat,
    pub faults: TestFaults,
}

/// What woke the loop.
enum Wake {
    Scan(Scan),
    Report(ConversationEvent),
    Reload(Reload),
    /// The breaker's open period is over.
    Breaker,
    Tick,
}

/// The sender of the live conversation's audio queue, shared with the microphone task.
type LiveAudio = Arc<Mutex<Option<mpsc::Sender<OpusFrame>>>>;

impl<D: Directory> Driver<D> {
    /// Runs until `shutdown`, then ends any live session (reason `shutdown`) and returns once
    /// its events are recorded.
    pub async fn run(mut self, inputs: Inputs, shutdown: CancellationToken) -> SessionMachine {
        let (reports_tx, mut reports) = mpsc::channel::<ConversationEvent>(256);
        let live_audio = LiveAudio::default();
        let mic_task = tokio::spawn(forward_mic(
            inputs.mic,
            live_audio.clone(),
            self.health.clone(),
        ));
        let mut scans = Some(inputs.scans);
        let mut reloads = Some(inputs.reloads);
        let mut next_scan = 0u64;
        let mut audio_lost = false;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stall_at = self
            .faults
            .stall_lifecycle_after
            .map(|d| tokio::time::Instant::now() + d);
        let mut ctx = Ctx {
            store: self.store.clone(),
            health: self.health.clone(),
            playback: self.playback.clone(),
            capture: self.capture.clone(),
            badges: HashMap::new(),
            conversations: HashMap::new(),
            reports: reports_tx,
            live_audio,
            routed: None,
            unrecorded: VecDeque::new(),
            lost: 0,
            store_failing: None,
            store_delay: self.faults.store_delay,
        };
        let mut fed = Fed::default();
        ctx.health.set_lifecycle(self.machine.lifecycle().as_str());

        loop {
            self.heartbeat.beat();
            if stall_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                super::faults::stall_forever().await;
            }
            let breaker_due = breaker_reopens_in(&self.breaker, clock::mono_ms());
            let wake = tokio::select! {
                () = shutdown.cancelled() => break,
                scan = recv_or_never(&mut scans) => match scan {
                    Some(scan) => Wake::Scan(scan),
                    // The reader is gone for good (source = none or stopped): keep serving
                    // without this branch.
                    None => { scans = None; continue }
                },
                Some(report) = reports.recv() => Wake::Report(report),
                reload = recv_or_never(&mut reloads) => match reload {
                    Some(r) => Wake::Reload(r),
                    None => { reloads = None; continue }
                },
                () = tokio::time::sleep(breaker_due.unwrap_or_default()), if breaker_due.is_some() => Wake::Breaker,
                _ = tick.tick() => Wake::Tick,
            };
            // Stamped when it arrived, not before the wait.
            let now = clock::now();
            let input = match wake {
                Wake::Scan(scan) => {
                    next_scan += 1;
                    let id = ScanId(next_scan);
                    tracing::info!(badge = %scan.badge, scan = id.0, "badge scanned");
                    let key = self.directory.key(&scan.badge);
                    ctx.badges.insert(id, scan.badge);
                    Some(Input::BadgeScanned {
                        scan: id,
                        badge: jarvis_core::session::BadgeKey::new(key),
                        read_at_ms: scan.read_at_ms,
                    })
                }
                Wake::Report(ConversationEvent::Input(input)) => Some(input),
                Wake::Report(ConversationEvent::Connect(outcome)) => {
                    match outcome {
                        Ok(()) => self.breaker.record_success(),
                        Err(failure) => self.breaker.record_failure(now.mono_ms, &failure),
                    }
                    self.health.set_gauge(
                        "breaker",
                        serde_json::to_value(self.breaker.status(now.mono_ms)).unwrap_or_default(),
                    );
                    None
                }
                Wake::Report(ConversationEvent::Unpriced {
                    session_id,
                    code,
                    message,
                }) => {
                    tracing::error!(%session_id, "{message}");
                    ctx.record(KioskEvent::new(
                        Some(session_id),
                        now.wall_ms,
                        EventPayload::Alert {
                            code: code.into(),
                            severity: Severity::Critical,
                            message,
                        },
                    ))
                    .await;
                    None
                }
                Wake::Reload(reload) => {
                    self.machine.reload(reload.settings);
                    self.realtime = reload.realtime;
                    tracing::info!("reloaded: session limits, budget, prices and instructions");
                    None
                }
                Wake::Breaker => None,
                Wake::Tick => {
                    ctx.retry_unrecorded(now).await;
                    let lost = matches!(
                        self.health.snapshot().adapters.get("audio"),
                        Some(AdapterState::Degraded(_))
                    );
                    if lost != audio_lost {
                        audio_lost = lost;
                        let input = if lost {
                            Input::AudioLost
                        } else {
                            Input::AudioRestored
                        };
                        self.feed(&mut ctx, &mut fed, now, input).await;
                    }
                    Some(Input::Tick)
                }
            };
            match input {
                Some(input) => self.feed(&mut ctx, &mut fed, now, input).await,
                None => self.settle(&mut ctx, &mut fed, now).await,
            }
        }

        let now = clock::now();
        self.feed(&mut ctx, &mut fed, now, Input::Shutdown).await;
        // The hung-up conversations read on for the usage of responses still running (billed
        // by OpenAI): record it until each has finished (its report sender dropped with it) or
        // their grace has passed.
        ctx.reports = mpsc::channel(1).0;
        let deadline = tokio::time::Instant::now() + super::conversation::USAGE_GRACE + TICK;
        while let Ok(Some(report)) = tokio::time::timeout_at(deadline, reports.recv()).await {
            if let ConversationEvent::Input(input) = report {
                self.feed(&mut ctx, &mut fed, clock::now(), input).await;
            }
        }
        let now = clock::now();
        ctx.retry_unrecorded(now).await;
        mic_task.abort();
        self.machine
    }

    /// Hands one input to the machine, carries out its decisions in order, then feeds what
    /// changed meanwhile (breaker, store) at once.
    async fn feed(&mut self, ctx: &mut Ctx, fed: &mut Fed, now: Now, input: Input) {
        self.handle(ctx, now, input).await;
        self.settle(ctx, fed, now).await;
    }

    /// Feeds the breaker's and the store's state when they differ from what the machine knows.
    async fn settle(&mut self, ctx: &mut Ctx, fed: &mut Fed, now: Now) {
        loop {
            let refusing = breaker_refusing(&self.breaker, now.mono_ms);
            let store_failing = ctx.store_failing.is_some();
            let input = if refusing != fed.breaker_open {
                fed.breaker_open = refusing;
                Input::BreakerOpen(refusing)
            } else if store_failing != fed.store_failing {
                fed.store_failing = store_failing;
                Input::StoreFailing(store_failing)
            } else {
                return;
            };
            self.handle(ctx, now, input).await;
        }
    }

    async fn handle(&mut self, ctx: &mut Ctx, now: Now, input: Input) {
        if let Input::MemberResolved { scan, .. } = &input {
            ctx.badges.remove(scan);
        }
        for decision in self.machine.handle(now, input) {
            let span = match decision.session_id() {
                Some(id) => crate::telemetry::session_span(&id),
                None => tracing::Span::none(),
            };
            self.execute(ctx, now, decision).instrument(span).await;
        }
        // Scans the machine dropped (debounced, refused) leave no badge behind.
        let pending = self.machine.pending_scan();
        ctx.badges.retain(|id, _| Some(*id) == pending);
        ctx.route_audio(self.machine.current_session());
        self.publish_progress(ctx);
    }

    /// Keeps `status`'s view of the session in progress and today's spend current.
    fn publish_progress(&self, ctx: &Ctx) {
        let current = self.machine.session_progress().map(|p| CurrentSession {
            session_id: p.session_id,
            first_name: p.first_name,
            started_at_ms: p.started_at_ms,
            cost: p.cost,
            billed_seconds: p.billed_seconds,
        });
        ctx.health.set_current_session(current);
        ctx.health.set_spent_today(self.machine.spent_today());
    }

    async fn execute(&mut self, ctx: &mut Ctx, now: Now, decision: Decision) {
        match decision {
            Decision::LookUpMember { scan } => {
                let Some(badge) = ctx.badges.get(&scan).cloned() else {
                    return;
                };
                let directory = self.directory.clone();
                let reports = ctx.reports.clone();
                tokio::spawn(
                    async move {
                        let lookup = directory.resolve(badge, now.wall_ms).await;
                        let _ = reports
                            .send(ConversationEvent::Input(Input::MemberResolved {
                                scan,
                                lookup,
                            }))
                            .await;
                    }
                    .in_current_span(),
                );
            }
            Decision::Connect {
                session_id,
                context,
            } => {
                if let Some(why) = &ctx.store_failing {
                    // Its start is not recorded: a call now could cost money nobody sees.
                    let _ = ctx
                        .reports
                        .try_send(ConversationEvent::Input(Input::RealtimeFailed {
                            session_id,
                            kind: FailureKind::ConnectFailed,
                            reason: format!("the local store cannot record events: {why}"),
                        }));
                    return;
                }
                match self.breaker.admit(now.mono_ms) {
                    Admission::Refuse { retry_in } => {
                        let _ =
                            ctx.reports
                                .try_send(ConversationEvent::Input(Input::RealtimeFailed {
                                    session_id,
                                    kind: FailureKind::ConnectFailed,
                                    reason: format!(
                                        "circuit breaker open (retry in {} s)",
                                        retry_in.as_secs()
                                    ),
                                }));
                    }
                    Admission::Allow | Admission::Probe => {
                        tracing::info!(
                            member = context.member_id.as_deref().unwrap_or("guest"),
                            "connecting to Realtime"
                        );
                        let conversation = Conversation::start(
                            self.realtime.clone(),
                            session_id,
                            context,
                            ctx.reports.clone(),
                        );
                        ctx.conversations.insert(session_id, conversation);
                    }
                }
            }
            Decision::SendRealtime {
                session_id,
                command,
            } => {
                if let Some(c) = ctx.conversations.get(&session_id) {
                    c.send(&command);
                }
            }
            Decision::PlayPrompt(prompt) => ctx.playback.play_prompt(prompt_sound(prompt)),
            Decision::HangUp {
                session_id,
                reason,
                detail,
            } => {
                tracing::info!(reason = reason.as_str(), detail, "hanging up");
                let failed = matches!(
                    reason,
                    EndReason::ConnectFailed | EndReason::ConnectionLost | EndReason::RealtimeError
                );
                if let (true, Some(detail)) = (failed, detail.as_deref()) {
                    // `status` shows it: a technician sees why members got the apology.
                    ctx.health.record_error(format!(
                        "session {session_id} ended {}: {detail}",
                        reason.as_str()
                    ));
                }
                if let Some(c) = ctx.conversations.remove(&session_id) {
                    c.hang_up();
                }
            }
            Decision::Record(event) => {
                log_event(&event);
                if let (EventPayload::SessionEnded { reason, .. }, Some(cost)) =
                    (&event.payload, event.payload.ended_cost())
                {
                    ctx.health.session_ended(reason.as_str(), cost);
                }
                ctx.record(event).await;
            }
            Decision::Lifecycle(state) => {
                ctx.health.set_lifecycle(state.as_str());
                super::notify::status(state.as_str());
            }
        }
    }
}

/// What the machine was last told about the breaker and the store.
#[derive(Default)]
struct Fed {
    breaker_open: bool,
    store_failing: bool,
}

/// The breaker refuses calls now (open, and its open period not over).
fn breaker_refusing(breaker: &Breaker, mono_ms: u64) -> bool {
    matches!(breaker.state(), BreakerState::Open { until_ms, .. } if mono_ms < until_ms)
}

/// How long until an open breaker lets a probe through (the loop wakes then, not on a tick).
fn breaker_reopens_in(breaker: &Breaker, mono_ms: u64) -> Option<Duration> {
    match breaker.state() {
        BreakerState::Open { until_ms, .. } if mono_ms < until_ms => {
            Some(Duration::from_millis(until_ms - mono_ms))
        }
        _ => None,
    }
}

/// `rx.recv()`, or never once the source is gone (so a closed source does not spin).
async fn recv_or_never<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Hands each microphone frame to the live conversation, if any, without waiting on the
/// lifecycle loop; a frame the peer cannot take now is dropped and counted.
async fn forward_mic(mut mic: mpsc::Receiver<OpusFrame>, live: LiveAudio, health: Health) {
    while let Some(frame) = mic.recv().await {
        let sink = live.lock().ok().and_then(|l| l.clone());
        if let Some(sink) = sink
            && let Err(mpsc::error::TrySendError::Full(_)) = sink.try_send(frame)
        {
            health.add(jarvis_audio::counters::FRAMES_DROPPED, 1);
        }
    }
}

/// What decisions act on, split from the driver so `execute` can borrow both.
struct Ctx {
    store: StoreHandle,
    health: Health,
    playback: Arc<Playback>,
    capture: Arc<Capture>,
    /// Raw badges of scans whose lookup is pending (never kept longer).
    badges: HashMap<ScanId, Badge>,
    conversations: HashMap<Uuid, Conversation>,
    /// Where lookups and conversations send what happens back to the loop.
    reports: mpsc::Sender<ConversationEvent>,
    live_audio: LiveAudio,
    /// The session whose conversation `live_audio` feeds.
    routed: Option<Uuid>,
    /// Events the store refused, oldest first, retried on every tick.
    unrecorded: VecDeque<KioskEvent>,
    /// Events dropped because `unrecorded` was full.
    lost: u64,
    /// Why the store cannot record, while it cannot.
    store_failing: Option<String>,
    /// Test fault: each append waits this long on the store thread (a slow SD card).
    store_delay: Option<Duration>,
}

impl Ctx {
    /// Commits an event. If the store fails, the event is kept in memory and retried, the
    /// store adapter is degraded and no new session starts until it records again.
    async fn record(&mut self, event: KioskEvent) {
        if self.store_failing.is_some() {
            self.keep(event);
            return;
        }
        if let Err((event, e)) = self.append(event).await {
            let kind = event.kind().as_str();
            tracing::error!(kind, error = %e, "event NOT recorded: no new session until the local store records again (storage.path: disk full or failing?)");
            self.health
                .record_error(format!("event {kind} not recorded: {e}"));
            self.health.set_adapter(
                "store",
                AdapterState::Degraded(format!("cannot record events: {e}")),
            );
            self.store_failing = Some(e);
            self.keep(event);
        }
    }

    async fn append(&self, event: KioskEvent) -> Result<(), (KioskEvent, String)> {
        let delay = self.store_delay;
        let copy = event.clone();
        let result = self
            .store
            .call(move |s| {
                if let Some(d) = delay {
                    std::thread::sleep(d);
                }
                s.append(&copy)
            })
            .await;
        result.map(|_| ()).map_err(|e| (event, e.to_string()))
    }

    fn keep(&mut self, event: KioskEvent) {
        if self.unrecorded.len() >= UNRECORDED_MAX {
            self.unrecorded.pop_front();
            self.lost += 1;
        }
        self.unrecorded.push_back(event);
    }

    /// Retries the events the store refused, in order; once all are in, the store is back and
    /// the outage itself is recorded as a critical alert.
    async fn retry_unrecorded(&mut self, now: Now) {
        let Some(why) = self.store_failing.clone() else {
            return;
        };
        let delayed = self.unrecorded.len();
        while let Some(event) = self.unrecorded.pop_front() {
            if let Err((event, _)) = self.append(event).await {
                self.unrecorded.push_front(event);
                return;
            }
        }
        self.store_failing = None;
        self.health.set_adapter("store", AdapterState::Up);
        tracing::warn!(
            delayed,
            lost = self.lost,
            "the local store records again; sessions resume"
        );
        let alert = KioskEvent::new(
            None,
            now.wall_ms,
            EventPayload::Alert {
                code: "store_write_failed".into(),
                severity: Severity::Critical,
                message: format!(
                    "the local store could not record events ({why}); {delayed} were kept in \
                     memory and recorded late, {} lost; no session started meanwhile",
                    self.lost
                ),
            },
        );
        self.lost = 0;
        self.record(alert).await;
    }

    /// Points the microphone at the current session's conversation (or nowhere), and keeps
    /// capture live only while there is one: with no conversation the capture thread only
    /// drains the device (no resampling, echo cancellation or encoding).
    fn route_audio(&mut self, current: Option<Uuid>) {
        let sink = current.and_then(|id| self.conversations.get(&id).map(|c| (id, c)));
        let target = sink.as_ref().map(|(id, _)| *id);
        if target == self.routed {
            return;
        }
        self.routed = target;
        self.capture.set_live(target.is_some());
        if let Ok(mut live) = self.live_audio.lock() {
            *live = sink.map(|(_, c)| c.audio_sink());
        }
    }
}

/// The support-facing line for each recorded fact (the session span adds `SESSION_ID`).
fn log_event(event: &KioskEvent) {
    match &event.payload {
        EventPayload::SessionStarted {
            member_id,
            membership,
            model,
            ..
        } => tracing::info!(
            member_id = member_id.as_deref().unwrap_or("guest"),
            membership = ?membership,
            model,
            "session started"
        ),
        EventPayload::SessionConnected { connect_ms } => {
            tracing::info!(connect_ms, "session connected")
        }
        EventPayload::ResponseUsage {
            response_id, cost, ..
        } => tracing::info!(
            response_id,
            cost_usd = %cost.total(),
            "response metered"
        ),
        EventPayload::TranscriptionUsage { cost, .. } => {
            tracing::info!(cost_usd = %cost.total(), "transcription metered")
        }
        EventPayload::LiveUsage {
            seconds,
            billed_seconds,
            voice_nusd,
            upper_bound,
            closed,
            ..
        } => tracing::info!(
            backend = "live",
            seconds,
            billed_seconds,
            voice_usd = %voice_nusd,
            upper_bound,
            closed,
            "live usage metered"
        ),
        EventPayload::DelegationUsage {
            response_id,
            model,
            cost_nusd,
            ..
        } => tracing::info!(
            response_id,
            model,
            cost_usd = %cost_nusd,
            "delegated response metered"
        ),
        EventPayload::SessionEnded {
            reason,
            duration_ms,
            live: Some(live),
            ..
        } => tracing::info!(
            backend = "live",
            reason = reason.as_str(),
            duration_s = *duration_ms as f64 / 1000.0,
            billed_seconds = live.billed_seconds,
            cost_usd = %live.total(),
            voice_usd = %live.voice_nusd,
            delegation_usd = %live.delegation_nusd,
            upper_bound = live.upper_bound,
            estimated = live.estimated,
            "session ended"
        ),
        EventPayload::SessionEnded {
            reason,
            duration_ms,
            tokens,
            cost,
            ..
        } => tracing::info!(
            backend = "realtime",
            reason = reason.as_str(),
            duration_s = *duration_ms as f64 / 1000.0,
            input_tokens = tokens.input_text + tokens.input_audio + tokens.input_image,
            output_tokens = tokens.output_text + tokens.output_audio,
            cost_usd = %cost.total(),
            input_audio_usd = %cost.input_audio_nusd,
            output_audio_usd = %cost.output_audio_nusd,
            input_text_usd = %cost.input_text_nusd,
            output_text_usd = %cost.output_text_nusd,
            transcription_usd = %cost.transcription_nusd,
            "session ended"
        ),
        EventPayload::ScanRefused { cause } => tracing::info!(cause, "scan refused"),
        EventPayload::Alert {
            code,
            severity,
            message,
        } => tracing::warn!(code, severity = ?severity, "{message}"),
        EventPayload::Heartbeat { .. } => {}
    }
}

fn prompt_sound(p: Prompt) -> PromptSound {
    match p {
        Prompt::Chime => PromptSound::BadgeAccepted,
        Prompt::Unavailable => PromptSound::Unavailable,
        Prompt::FrontDesk => PromptSound::FrontDesk,
        Prompt::BudgetReached => PromptSound::BudgetReached,
        Prompt::RateLimited => PromptSound::Error,
        Prompt::Apology => PromptSound::ConnectionLost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_core::breaker::{BreakerSettings, Failure};

    #[test]
    fn the_breaker_refuses_from_the_failure_that_opens_it_and_wakes_the_loop_when_it_ends() {
        let mut b = Breaker::new(BreakerSettings {
            failures: 1,
            open_for: Duration::from_secs(60),
        });
        assert!(!breaker_refusing(&b, 1_000));
        assert_eq!(breaker_reopens_in(&b, 1_000), None);
        let failure = Failure {
            cause: "http 503".into(),
            retry_after: None,
        };
        b.record_failure(1_000, &failure);
        // At once, not on the next tick.
        assert!(breaker_refusing(&b, 1_000));
        assert_eq!(breaker_reopens_in(&b, 1_000), Some(Duration::from_secs(60)));
        assert_eq!(
            breaker_reopens_in(&b, 60_999),
            Some(Duration::from_millis(1))
        );
        assert!(!breaker_refusing(&b, 61_000));
        assert_eq!(breaker_reopens_in(&b, 61_000), None);
    }

    #[tokio::test]
    async fn a_closed_source_is_never_ready_again() {
        let (tx, rx) = mpsc::channel::<u8>(1);
        drop(tx);
        let mut source = Some(rx);
        assert_eq!(recv_or_never(&mut source).await, None);
        source = None;
        let never = tokio::time::timeout(Duration::from_millis(50), recv_or_never(&mut source));
        assert!(
            never.await.is_err(),
            "a closed source must not wake the loop"
        );
    }
}
