//! The lifecycle driver: feeds the pure [`SessionMachine`] everything that happens and carries
//! out its decisions (look up, connect, send, play, hang up, record) through the adapters.
//!
//! All policy lives in the machine; this loop only translates. It is the one place that holds
//! the raw badge of a pending scan, and only until its lookup is answered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::conversation::{Conversation, ConversationEvent, RealtimeDeps};
use jarvis_audio::{OpusFrame, Playback, PromptSound};
use jarvis_badge::Scan;
use jarvis_core::badge::Badge;
use jarvis_core::breaker::{Admission, Breaker, BreakerState};
use jarvis_core::clock;
use jarvis_core::events::{EventPayload, KioskEvent, Severity};
use jarvis_core::health::{AdapterState, CurrentSession, Health};
use jarvis_core::session::{BadgeLookup, Decision, Input, Now, Prompt, ScanId, SessionMachine};
use jarvis_store::StoreHandle;

/// How often the machine gets a `Tick` (its timers' resolution).
const TICK: Duration = Duration::from_millis(250);

/// Answers "who is this badge?" for the driver (the badge module's cached lookup).
pub trait Directory: Send + Sync + 'static {
    fn resolve(&self, badge: Badge, now_ms: i64) -> impl Future<Output = BadgeLookup> + Send;
    /// The key the core compares for debounce and rate limits (a keyed hash: never the badge).
    fn key(&self, badge: &Badge) -> String;
}

/// The adapters the driver talks to.
pub struct Driver<D: Directory> {
    pub machine: SessionMachine,
    pub store: StoreHandle,
    pub health: Health,
    pub directory: Arc<D>,
    pub realtime: Arc<RealtimeDeps>,
    pub playback: Arc<Playback>,
    pub breaker: Breaker,
}

impl<D: Directory> Driver<D> {
    /// Runs until `shutdown`, then ends any live session (reason `shutdown`) and returns once
    /// its events are recorded.
    pub async fn run(
        mut self,
        mut scans: mpsc::Receiver<Scan>,
        mut mic: mpsc::Receiver<OpusFrame>,
        shutdown: CancellationToken,
    ) -> SessionMachine {
        let (reports_tx, mut reports) = mpsc::channel::<ConversationEvent>(256);
        let mut next_scan = 0u64;
        let mut audio_lost = false;
        let mut breaker_refusing = false;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ctx = Ctx {
            store: self.store.clone(),
            health: self.health.clone(),
            playback: self.playback.clone(),
            badges: HashMap::new(),
            conversations: HashMap::new(),
            reports: reports_tx,
        };
        ctx.health.set_lifecycle(self.machine.lifecycle().as_str());

        loop {
            let now = clock::now();
            let input = tokio::select! {
                () = shutdown.cancelled() => break,
                scan = scans.recv() => {
                    let Some(scan) = scan else {
                        // The reader is gone for good (source = none or stopped): keep serving.
                        scans = mpsc::channel(1).1;
                        continue;
                    };
                    next_scan += 1;
                    let id = ScanId(next_scan);
                    tracing::info!(badge = %scan.badge, scan = id.0, "badge scanned");
                    let key = self.directory.key(&scan.badge);
                    ctx.badges.insert(id, scan.badge);
                    Input::BadgeScanned { scan: id, badge: jarvis_core::session::BadgeKey::new(key) }
                }
                report = reports.recv() => match report {
                    Some(ConversationEvent::Input(input)) => input,
                    Some(ConversationEvent::Connect(outcome)) => {
                        match outcome {
                            Ok(()) => self.breaker.record_success(),
                            Err(failure) => self.breaker.record_failure(now.mono_ms, &failure),
                        }
                        self.health.set_gauge("breaker", serde_json::to_value(self.breaker.status(now.mono_ms)).unwrap_or_default());
                        continue;
                    }
                    Some(ConversationEvent::Unpriced { session_id, message }) => {
                        tracing::error!(%session_id, "{message}");
                        ctx.record(KioskEvent::new(Some(session_id), now.wall_ms, EventPayload::Alert {
                            code: "unpriced_model".into(),
                            severity: Severity::Critical,
                            message: format!("{message}: add pricing.\"<model>\" to the config"),
                        })).await;
                        continue;
                    }
                    None => continue,
                },
                frame = mic.recv() => {
                    if let Some(frame) = frame
                        && let Some(live) = self.machine.current_session().and_then(|id| ctx.conversations.get(&id))
                        && !live.push_audio(frame)
                    {
                        self.health.add(jarvis_audio::counters::FRAMES_DROPPED, 1);
                    }
                    continue;
                }
                _ = tick.tick() => {
                    let lost = matches!(self.health.snapshot().adapters.get("audio"), Some(AdapterState::Degraded(_)));
                    let refusing = matches!(self.breaker.state(), BreakerState::Open { until_ms, .. } if now.mono_ms < until_ms);
                    if lost != audio_lost {
                        audio_lost = lost;
                        self.feed(&mut ctx, now, if lost { Input::AudioLost } else { Input::AudioRestored }).await;
                    }
                    if refusing != breaker_refusing {
                        breaker_refusing = refusing;
                        self.feed(&mut ctx, now, Input::BreakerOpen(refusing)).await;
                    }
                    Input::Tick
                }
            };
            self.feed(&mut ctx, now, input).await;
        }

        let now = clock::now();
        self.feed(&mut ctx, now, Input::Shutdown).await;
        self.machine
    }

    /// Hands one input to the machine and carries out its decisions in order.
    async fn feed(&mut self, ctx: &mut Ctx, now: Now, input: Input) {
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
        self.publish_progress(ctx);
    }

    /// Keeps `status`'s view of the session in progress and today's spend current.
    fn publish_progress(&self, ctx: &Ctx) {
        let current = self.machine.session_progress().map(|p| CurrentSession {
            session_id: p.session_id,
            first_name: p.first_name,
            started_at_ms: p.started_at_ms,
            cost: p.cost,
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
            } => match self.breaker.admit(now.mono_ms) {
                Admission::Refuse { retry_in } => {
                    let _ = ctx
                        .reports
                        .try_send(ConversationEvent::Input(Input::RealtimeFailed {
                            session_id,
                            kind: jarvis_core::session::FailureKind::ConnectFailed,
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
            },
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
                if let Some(c) = ctx.conversations.remove(&session_id) {
                    c.hang_up();
                }
            }
            Decision::Record(event) => {
                log_event(&event);
                if let EventPayload::SessionEnded { reason, cost, .. } = &event.payload {
                    ctx.health.session_ended(reason.as_str(), cost.total());
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

/// What decisions act on, split from the driver so `execute` can borrow both.
struct Ctx {
    store: StoreHandle,
    health: Health,
    playback: Arc<Playback>,
    /// Raw badges of scans whose lookup is pending (never kept longer).
    badges: HashMap<ScanId, Badge>,
    conversations: HashMap<Uuid, Conversation>,
    /// Where lookups and conversations send what happens back to the loop.
    reports: mpsc::Sender<ConversationEvent>,
}

impl Ctx {
    /// Commits an event; the session goes on even if the disk fails, but loudly.
    async fn record(&mut self, event: KioskEvent) {
        let kind = event.kind().as_str();
        match self.store.call(move |s| s.append(&event)).await {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(kind, error = %e, "event NOT recorded");
                self.health
                    .record_error(format!("event {kind} not recorded: {e}"));
                self.health
                    .set_adapter("store", AdapterState::Degraded(e.to_string()));
            }
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
        EventPayload::SessionEnded {
            reason,
            duration_ms,
            tokens,
            cost,
        } => tracing::info!(
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
