//! One Realtime conversation: mint a key, offer, exchange SDP, then pump audio and events
//! between the peer connection, the sound card and the lifecycle core until hang-up.
//!
//! The task owns no policy: it turns the outside world into [`Input`]s for the core and the
//! core's commands into the wire. Every failure becomes exactly one `RealtimeFailed`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use jarvis_audio::{OpusFrame, Playback};
use jarvis_config::{OpenAiConfig, VoiceApi};
use jarvis_core::breaker::Failure;
use jarvis_core::health::Health;
use jarvis_core::metering::{MeteringError, Pricing};
use jarvis_core::session::{FailureKind, Input, RealtimeCommand, SessionContext, Signal};
use jarvis_realtime::calls;
use jarvis_realtime::credentials::{self, ClientSecretRequest, Credentials};
use jarvis_realtime::http::{self, CallError};
use jarvis_realtime::peer::{Peer, PeerEvent, PeerHandle, PeerOptions};
use jarvis_realtime::protocol::{
    self, ClientEvent, Decoded, RealtimeSignal, Translator, UsageSource,
};
use jarvis_realtime::session_update::{self, InstructionsTemplate, MemberContext};

/// Microphone frames that may wait for the peer (100 ms); older ones are dropped, not delayed.
const AUDIO_QUEUE: usize = 5;
/// How long a hang-up waits for the usage of responses still running.
pub const USAGE_GRACE: Duration = Duration::from_secs(2);

/// Everything a conversation needs that outlives it.
pub struct RealtimeDeps {
    pub cfg: OpenAiConfig,
    pub http: http::HttpClient,
    /// `Err` holds why no credential could be loaded (shown to support on every connect).
    pub credentials: Result<Credentials, String>,
    pub pricing: Arc<Pricing>,
    pub template: InstructionsTemplate,
    /// GPT-Live: the delegation model's prompt (`openai.live.delegation_instructions_file`).
    pub delegation_instructions: String,
    pub playback: Arc<Playback>,
    pub health: Health,
    /// `log.transcripts`: log what members and JARVIS say (off by default: privacy).
    pub log_transcripts: bool,
}

/// What a conversation tells the driver besides core inputs: breaker outcomes.
#[derive(Debug)]
pub enum ConversationEvent {
    Input(Input),
    /// The connection attempt ended: `Ok` once the data channel opened.
    Connect(Result<(), Failure>),
    /// A usage the pricing table could not price: alert, loudly.
    Unpriced {
        session_id: Uuid,
        /// The alert code: `unpriced_model` or `usage_overflow`.
        code: &'static str,
        /// The cause and its fix.
        message: String,
    },
}

/// The alert for a usage that could not be priced: a missing price is fixed in the config; an
/// absurd usage (its cost overflowing) is kept with its raw counts, never capped.
pub(super) fn unpriced(session_id: Uuid, what: &str, error: &MeteringError) -> ConversationEvent {
    let (code, fix) = match error {
        MeteringError::Overflow { .. } => (
            "usage_overflow",
            "the usage is recorded uncosted with its raw counts; report it to OpenAI support",
        ),
        _ => ("unpriced_model", "add pricing.\"<model>\" to the config"),
    };
    ConversationEvent::Unpriced {
        session_id,
        code,
        message: format!("{what}: {error}: {fix}"),
    }
}

/// The driver's side of a running conversation.
pub struct Conversation {
    commands: mpsc::Sender<Command>,
    audio: mpsc::Sender<OpusFrame>,
}

/// What the driver asks of a running conversation.
#[derive(Debug)]
pub(super) enum Command {
    /// A client event the core decided, translated by the backend's task.
    Core(RealtimeCommand),
    HangUp,
}

impl Conversation {
    /// Starts the conversation task for `session_id`.
    pub fn start(
        deps: Arc<RealtimeDeps>,
        session_id: Uuid,
        context: SessionContext,
        reports: mpsc::Sender<ConversationEvent>,
    ) -> Conversation {
        let (commands, command_rx) = mpsc::channel(16);
        let (audio, audio_rx) = mpsc::channel(AUDIO_QUEUE);
        // Called inside the session's span by the driver: the task logs with SESSION_ID.
        match deps.cfg.api {
            VoiceApi::Realtime => tokio::spawn(
                run(deps, session_id, context, reports, command_rx, audio_rx).in_current_span(),
            ),
            VoiceApi::Live => tokio::spawn(
                super::live_call::run(deps, session_id, context, reports, command_rx, audio_rx)
                    .in_current_span(),
            ),
        };
        Conversation { commands, audio }
    }

    /// Queues a client event from the core; a closed conversation ignores it.
    pub fn send(&self, command: &RealtimeCommand) {
        let _ = self.commands.try_send(Command::Core(command.clone()));
    }

    pub fn hang_up(&self) {
        let _ = self.commands.try_send(Command::HangUp);
    }

    /// Where microphone frames for this conversation go: the driver's microphone task sends
    /// with `try_send`, dropping a frame when the peer is behind (never blocks).
    pub fn audio_sink(&self) -> mpsc::Sender<OpusFrame> {
        self.audio.clone()
    }
}

/// How a conversation task reports to the driver: core inputs for its session, and the
/// connection's outcome for the breaker.
pub(super) struct Reporter {
    session_id: Uuid,
    reports: mpsc::Sender<ConversationEvent>,
}

impl Reporter {
    pub(super) fn new(session_id: Uuid, reports: &mpsc::Sender<ConversationEvent>) -> Self {
        Reporter {
            session_id,
            reports: reports.clone(),
        }
    }

    pub(super) async fn send(&self, r: ConversationEvent) {
        let _ = self.reports.send(r).await;
    }

    /// The connection is up: the breaker hears success, the core that the session runs.
    pub(super) async fn connected(&self) {
        self.send(ConversationEvent::Connect(Ok(()))).await;
        self.send(ConversationEvent::Input(Input::RealtimeConnected {
            session_id: self.session_id,
        }))
        .await;
    }

    /// The session's one failure.
    pub(super) async fn failed(&self, kind: FailureKind, reason: String) {
        self.send(ConversationEvent::Input(Input::RealtimeFailed {
            session_id: self.session_id,
            kind,
            reason,
        }))
        .await;
    }

    /// A connection that could not be set up. A broker refusal is no outage: the path to
    /// OpenAI works and the fleet said no, so the breaker hears success and the core the
    /// refusal; anything else counts for the breaker.
    pub(super) async fn connect_failed(&self, e: CallError) {
        match e {
            CallError::Refused { refusal, .. } => {
                tracing::warn!(cause = refusal.cause(), "session refused by the broker");
                self.send(ConversationEvent::Connect(Ok(()))).await;
                self.failed(FailureKind::Refused(refusal), refusal.cause().into())
                    .await;
            }
            e => {
                tracing::warn!(error = %e, "the connection could not be set up");
                self.send(ConversationEvent::Connect(Err(e.breaker_failure())))
                    .await;
                self.failed(FailureKind::ConnectFailed, e.cause()).await;
            }
        }
    }

    /// The peer connection closed: before the session ran, a failed connect for the breaker;
    /// after, a lost connection.
    pub(super) async fn closed(&self, reason: String, was_running: bool) {
        tracing::warn!(reason, "connection closed");
        if was_running {
            self.failed(FailureKind::ConnectionLost, reason).await;
        } else {
            self.send(ConversationEvent::Connect(Err(Failure {
                cause: reason.clone(),
                retry_after: None,
            })))
            .await;
            self.failed(FailureKind::ConnectFailed, reason).await;
        }
    }
}

/// Who the session is for, as the instructions template reads it.
pub(super) fn member_context(context: &SessionContext) -> MemberContext<'_> {
    MemberContext {
        first_name: context.first_name.as_deref(),
        language: context.language.as_deref().unwrap_or("fr"),
        membership: context.membership,
    }
}

async fn run(
    deps: Arc<RealtimeDeps>,
    session_id: Uuid,
    context: SessionContext,
    reports: mpsc::Sender<ConversationEvent>,
    mut commands: mpsc::Receiver<Command>,
    mut audio: mpsc::Receiver<OpusFrame>,
) {
    let started = Instant::now();
    let out = Reporter::new(session_id, &reports);
    let member = member_context(&context);
    let update = session_update::build(&deps.cfg, &deps.template, &member);
    let connecting = tokio::select! {
        r = connect(&deps, &member, session_id) => r,
        cmd = commands.recv() => {
            // Hung up (or the driver went away) while connecting: stop quietly.
            tracing::info!(command = ?cmd, "hang-up before the connection was up");
            return;
        }
    };
    let (peer, mut events, call_id) = match connecting {
        Ok(c) => c,
        Err(e) => return out.connect_failed(e).await,
    };

    let translator = match Translator::new(
        deps.pricing.clone(),
        &deps.cfg.model,
        &deps.cfg.transcription_model,
    ) {
        Ok(t) => t,
        Err(e) => {
            out.send(unpriced(session_id, "the session cannot be priced", &e))
                .await;
            out.failed(FailureKind::ConnectFailed, e.to_string()).await;
            return;
        }
    };
    let mut open = false;
    let mut inbox = Inbox {
        deps: &deps,
        session_id,
        reports: &reports,
        translator,
        malformed: 0,
        unknown: 0,
    };
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    PeerEvent::Connected => tracing::debug!("DTLS up"),
                    PeerEvent::ChannelOpen => {
                        open = true;
                        let connect_ms = started.elapsed().as_millis() as u64;
                        tracing::info!(connect_ms, "Realtime data channel open");
                        // Configure the session, then ask JARVIS to speak first: the
                        // instructions tell it to greet the member by first name.
                        for event in [&update, &ClientEvent::response_create()] {
                            if let Ok(json) = event.to_json() {
                                let _ = peer.send_event(json);
                            }
                        }
                        out.connected().await;
                    }
                    PeerEvent::Message(text) => inbox.on_message(&text).await,
                    PeerEvent::Audio(frame) => {
                        deps.playback.push_rtp(frame.seq as u16, frame.rtp_time as u32, &frame.payload);
                    }
                    PeerEvent::Closed { reason } => {
                        out.closed(reason.to_string(), open).await;
                        break;
                    }
                }
            }
            // Frames from before the channel opened are stale: taken and discarded, so the
            // queue never fills with them and drops count only live audio.
            Some(frame) = audio.recv() => {
                if open {
                    let _ = peer.send_audio(frame.data, frame.samples);
                }
            }
            cmd = commands.recv() => match cmd {
                Some(Command::Core(command)) => match realtime_event(&command).map(|e| e.to_json()) {
                    Some(Ok(json)) => { let _ = peer.send_event(json); }
                    Some(Err(e)) => tracing::error!(error = %e, "cannot encode a client event"),
                    None => {}
                },
                Some(Command::HangUp) | None => {
                    inbox.await_usage_in_flight(&peer, &mut events).await;
                    hang_up(&deps, &peer, call_id.as_deref()).await;
                    break;
                }
            },
        }
    }
    if inbox.malformed > 0 || inbox.unknown > 0 {
        tracing::info!(
            malformed = inbox.malformed,
            unknown = inbox.unknown,
            "Realtime events ignored this session"
        );
    }
}

/// The data channel's messages, decoded, metered and reported to the driver.
struct Inbox<'a> {
    deps: &'a RealtimeDeps,
    session_id: Uuid,
    reports: &'a mpsc::Sender<ConversationEvent>,
    translator: Translator,
    malformed: u64,
    unknown: u64,
}

impl Inbox<'_> {
    async fn on_message(&mut self, text: &str) {
        match protocol::decode(text) {
            Decoded::Event(event) => {
                for signal in self.translator.translate(&event) {
                    if let Some((speaker, text)) =
                        transcript_to_log(&signal, self.deps.log_transcripts)
                    {
                        tracing::info!(speaker, text, "transcript");
                    }
                    for r in to_reports(self.session_id, signal, &self.deps.playback) {
                        let _ = self.reports.send(r).await;
                    }
                }
            }
            Decoded::Ignored { .. } => {}
            Decoded::Unknown { kind } => {
                self.unknown += 1;
                self.deps.health.add("realtime_unknown_events", 1);
                tracing::debug!(kind, "unknown Realtime event ignored");
            }
            Decoded::Malformed { error } => {
                self.malformed += 1;
                self.deps.health.add("realtime_malformed_events", 1);
                if self.malformed == 1 {
                    tracing::warn!(error = %error, "malformed Realtime event ignored (further ones are counted)");
                }
            }
        }
    }

    /// OpenAI bills a response as generated, even when nobody hears it: before closing, cancel
    /// what is still running (so the server ends it now, `cancelled`, with its usage so far,
    /// rather than when its audio would have finished playing), then read on until every
    /// started response has its `response.done` (its usage goes to the ended session) or
    /// [`USAGE_GRACE`] passes. Audio arriving meanwhile is not played.
    async fn await_usage_in_flight(
        &mut self,
        peer: &PeerHandle,
        events: &mut mpsc::Receiver<PeerEvent>,
    ) {
        let deadline = tokio::time::Instant::now() + USAGE_GRACE;
        if self.translator.responses_in_flight() > 0 {
            for event in [
                ClientEvent::response_cancel(),
                ClientEvent::OutputAudioBufferClear { event_id: None },
            ] {
                if let Ok(json) = event.to_json() {
                    let _ = peer.send_event(json);
                }
            }
        }
        while self.translator.responses_in_flight() > 0 {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(PeerEvent::Message(text))) => self.on_message(&text).await,
                Ok(Some(PeerEvent::Closed { .. }) | None) => break,
                Ok(Some(_)) => {}
                Err(_) => {
                    tracing::warn!(
                        responses = self.translator.responses_in_flight(),
                        "hung up before the usage of running responses arrived: their cost is not recorded"
                    );
                    self.deps.health.record_error(format!(
                        "Realtime: a response's usage did not arrive within {} s of hang-up; its cost is missing",
                        USAGE_GRACE.as_secs()
                    ));
                    break;
                }
            }
        }
    }
}

/// The core's command as a Realtime client event (`None`: not a Realtime event).
fn realtime_event(command: &RealtimeCommand) -> Option<ClientEvent> {
    match command {
        RealtimeCommand::FunctionCallOutput { call_id, output } => {
            Some(ClientEvent::function_call_output(call_id, output))
        }
        RealtimeCommand::SayGoodbye { instructions } => {
            Some(ClientEvent::response_with_instructions(instructions))
        }
        // A Realtime call ends with its hang-up; the core asks this of GPT-Live only.
        RealtimeCommand::CloseSession => None,
    }
}

type Connected = (PeerHandle, mpsc::Receiver<PeerEvent>, Option<String>);

/// How much earlier than the session's connect deadline the peer gives up, so its account of
/// the transports tried reaches the core before the core's own timer ends the session.
pub(super) const PEER_DEADLINE_MARGIN: Duration = Duration::from_millis(300);

async fn connect(
    deps: &RealtimeDeps,
    member: &MemberContext<'_>,
    session_id: Uuid,
) -> Result<Connected, CallError> {
    let began = Instant::now();
    let creds = deps
        .credentials
        .as_ref()
        .map_err(|e| CallError::Client(e.clone()))?;
    let session = session_update::session(&deps.cfg, &deps.template, member);
    let key = credentials::mint(
        &deps.http,
        &deps.cfg,
        creds,
        &ClientSecretRequest::new(&deps.cfg, session).for_session(session_id.to_string()),
    )
    .await?;
    let options = PeerOptions {
        connect_timeout: Duration::from_secs(deps.cfg.connect_timeout_s),
        ice_disconnect_grace: Duration::from_secs(deps.cfg.ice_disconnect_grace_s),
        ..PeerOptions::for_base_url(&deps.cfg.base_url)
    };
    let (pending, offer) = Peer::offer(options).map_err(|e| CallError::Client(e.to_string()))?;
    let answer = calls::exchange(&deps.http, &deps.cfg, &key, &offer).await?;
    let left = Duration::from_secs(deps.cfg.connect_timeout_s)
        .saturating_sub(began.elapsed() + PEER_DEADLINE_MARGIN)
        .max(PEER_DEADLINE_MARGIN);
    let (peer, events) = pending
        .with_connect_timeout(left)
        .accept(&answer.sdp)
        .map_err(|e| CallError::Client(format!("the SDP answer was refused: {e}")))?;
    Ok((peer, events, answer.call_id))
}

async fn hang_up(deps: &RealtimeDeps, peer: &PeerHandle, call_id: Option<&str>) {
    let _ = peer.close();
    let via = deps
        .credentials
        .as_ref()
        .ok()
        .and_then(|c| c.hangup_via(&deps.cfg));
    if let (Some(call_id), Some((base, key, origin))) = (call_id, via)
        && let Err(e) = calls::hangup_at(&deps.http, &deps.cfg, &base, key, origin, call_id).await
    {
        tracing::info!(error = %e.cause(), "hangup call failed (the peer connection is closed anyway)");
    }
}

/// Who said what, when `log.transcripts` asks for it; `None` otherwise or for other signals.
fn transcript_to_log(signal: &RealtimeSignal, enabled: bool) -> Option<(&'static str, &str)> {
    match signal {
        RealtimeSignal::UserTranscript { transcript, .. } if enabled => {
            Some(("member", transcript))
        }
        RealtimeSignal::AssistantTranscript { transcript, .. } if enabled => {
            Some(("jarvis", transcript))
        }
        _ => None,
    }
}

/// Maps one protocol signal to what the core and the speaker need. Barge-in flushes the
/// speaker here, at once, without a round trip through the core.
fn to_reports(
    session_id: Uuid,
    signal: RealtimeSignal,
    playback: &Playback,
) -> Vec<ConversationEvent> {
    let core = |signal: Signal| ConversationEvent::Input(Input::Realtime { session_id, signal });
    match signal {
        RealtimeSignal::SpeechStarted { .. } => {
            playback.flush();
            vec![core(Signal::SpeechStarted)]
        }
        RealtimeSignal::OutputAudioCleared { .. } => {
            playback.flush();
            vec![core(Signal::OutputAudioStopped)]
        }
        other => map_signal(session_id, other),
    }
}

/// The pure part of [`to_reports`]: protocol signal -> core inputs and alerts.
fn map_signal(session_id: Uuid, signal: RealtimeSignal) -> Vec<ConversationEvent> {
    let core = |signal: Signal| ConversationEvent::Input(Input::Realtime { session_id, signal });
    match signal {
        RealtimeSignal::SpeechStarted { .. } => vec![core(Signal::SpeechStarted)],
        RealtimeSignal::UserTranscript { transcript, .. } => {
            vec![core(Signal::TranscriptCompleted { text: transcript })]
        }
        RealtimeSignal::ResponseUsage {
            response_id,
            cost,
            raw_usage,
            ..
        } => vec![
            core(Signal::ResponseUsage {
                response_id,
                tokens: cost.tokens,
                cost: cost.cost,
                raw_usage,
            }),
            core(Signal::ResponseDone),
        ],
        RealtimeSignal::TranscriptionUsage {
            item_id,
            cost,
            raw_usage,
            ..
        } => vec![core(Signal::TranscriptionUsage {
            item_id,
            cost,
            raw_usage,
        })],
        RealtimeSignal::UnpricedUsage {
            source,
            id,
            model,
            error,
            ..
        } => {
            let mut out = vec![unpriced(
                session_id,
                &format!("usage of {id} on model {model} could not be priced"),
                &error,
            )];
            // A response still finished even though its usage could not be priced.
            if source == UsageSource::Response {
                out.push(core(Signal::ResponseDone));
            }
            out
        }
        RealtimeSignal::EndSession { call_id, .. } => {
            vec![core(Signal::EndSessionCalled { call_id })]
        }
        RealtimeSignal::OutputAudioStarted { .. } => vec![core(Signal::OutputAudioStarted)],
        RealtimeSignal::OutputAudioStopped { .. } | RealtimeSignal::OutputAudioCleared { .. } => {
            vec![core(Signal::OutputAudioStopped)]
        }
        RealtimeSignal::Error {
            code,
            message,
            fatal: true,
        } => vec![ConversationEvent::Input(Input::RealtimeFailed {
            session_id,
            kind: FailureKind::Error,
            reason: format!("{}: {message}", code.as_deref().unwrap_or("error")),
        })],
        RealtimeSignal::Error {
            code,
            message,
            fatal: false,
        } => {
            tracing::info!(code = ?code, message, "Realtime error event (not fatal)");
            Vec::new()
        }
        RealtimeSignal::AssistantTranscript { .. }
        | RealtimeSignal::SessionCreated { .. }
        | RealtimeSignal::SessionUpdated
        | RealtimeSignal::SpeechStopped { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_are_logged_only_when_configured() {
        let member = RealtimeSignal::UserTranscript {
            item_id: "i1".into(),
            transcript: "au revoir".into(),
        };
        assert_eq!(transcript_to_log(&member, false), None);
        assert_eq!(
            transcript_to_log(&member, true),
            Some(("member", "au revoir"))
        );
        let jarvis = RealtimeSignal::AssistantTranscript {
            response_id: "r1".into(),
            transcript: "Bonjour Marie".into(),
        };
        assert_eq!(
            transcript_to_log(&jarvis, true),
            Some(("jarvis", "Bonjour Marie"))
        );
        assert_eq!(transcript_to_log(&jarvis, false), None);
        assert_eq!(
            transcript_to_log(&RealtimeSignal::SessionUpdated, true),
            None
        );
    }

    #[test]
    fn an_overflowing_usage_is_its_own_alert_and_keeps_its_raw_counts() {
        let id = Uuid::nil();
        let overflow = MeteringError::Overflow {
            model: "gpt-realtime".into(),
            what: "output audio",
            counts: "output_audio_tokens=18446744073709551615".into(),
        };
        let ConversationEvent::Unpriced { code, message, .. } =
            unpriced(id, "usage of r1", &overflow)
        else {
            panic!("an alert");
        };
        assert_eq!(code, "usage_overflow");
        assert!(message.contains("18446744073709551615"), "{message}");
        assert!(!message.contains("add pricing"), "{message}");

        let missing = MeteringError::UnknownModel {
            model: "gpt-next".into(),
        };
        let ConversationEvent::Unpriced { code, message, .. } =
            unpriced(id, "usage of r2", &missing)
        else {
            panic!("an alert");
        };
        assert_eq!(code, "unpriced_model");
        assert!(message.contains("add pricing"), "{message}");
    }
}
