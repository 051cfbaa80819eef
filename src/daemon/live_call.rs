//! One GPT-Live conversation (`openai-live-webrtc.md`): offer, create the session through the
//! broker's relay (or with a key, for development), wait for `session.started`, then pump
//! audio and events until hang-up.
//!
//! Like the Realtime task it owns no policy: the lifecycle core decides, meters and ends; this
//! task turns the wire into [`Input`]s and the core's commands into Live client events. Live
//! differs where the protocol does: nothing is sent before `session.started`, transcripts come
//! in fragments (grouped into utterances here), barge-in is native (the model's audio simply
//! stops, so the speaker is never flushed), and the goodbye tool is called by the delegation
//! model, its result answered with `response.item.create` then `response.create`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use uuid::Uuid;

use jarvis_audio::OpusFrame;
use jarvis_core::metering::{DelegationUsage, Pricing};
use jarvis_core::session::{Input, RealtimeCommand, SessionContext, Signal};
use jarvis_realtime::http::CallError;
use jarvis_realtime::live::{
    self, CreateRequest, DelegationEvent, LiveClientEvent, LiveItem, LiveServerEvent,
    SessionPolicy, sessions,
};
use jarvis_realtime::peer::{Peer, PeerEvent, PeerEvents, PeerHandle, PeerOptions};
use jarvis_realtime::protocol::Decoded;
use jarvis_realtime::session_update::MemberContext;

use super::call::{
    Command, ConversationEvent, PEER_DEADLINE_MARGIN, RealtimeDeps, Reporter, member_context,
    unpriced,
};

/// Runs one Live conversation until hang-up; every failure becomes one `RealtimeFailed`.
pub(super) async fn run(
    deps: Arc<RealtimeDeps>,
    session_id: Uuid,
    context: SessionContext,
    reports: mpsc::Sender<ConversationEvent>,
    mut commands: mpsc::Receiver<Command>,
    mut audio: mpsc::Receiver<OpusFrame>,
) {
    let out = Reporter::new(session_id, &reports);
    let member = member_context(&context);
    let connecting = tokio::select! {
        r = connect(&deps, &member, session_id, &reports) => r,
        cmd = commands.recv() => {
            tracing::info!(command = ?cmd, "hang-up before the Live session was up");
            return;
        }
    };
    let (peer, mut events, live_id) = match connecting {
        Ok(c) => c,
        Err(e) => return out.connect_failed(e).await,
    };

    tracing::info!(live_session_id = live_id, "GPT-Live session created");

    let mut inbox = LiveInbox::new(
        session_id,
        deps.pricing.clone(),
        &deps.cfg.live.delegation_model,
    );
    let mut channel_open = false;
    let mut started = false;
    let mut ids = 0u64;
    let send = |peer: &PeerHandle, event: LiveClientEvent| {
        let _ = peer.send_event(event.to_json());
    };
    let mut next_id = || {
        ids += 1;
        format!("kiosk_{ids}")
    };
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    PeerEvent::Connected => tracing::debug!("DTLS up"),
                    PeerEvent::ChannelOpen => {
                        channel_open = true;
                        tracing::info!("Live data channel open; waiting for session.started");
                    }
                    PeerEvent::Message(text) => {
                        for r in inbox.on_message(&text, &deps) {
                            if !started && is_started(&r, session_id) {
                                started = true;
                                out.connected().await;
                            } else {
                                out.send(r).await;
                            }
                        }
                    }
                    PeerEvent::Audio(frame) => {
                        deps.playback.push_rtp(frame.seq as u16, frame.rtp_time as u32, &frame.payload);
                    }
                    PeerEvent::Closed { reason } => {
                        out.closed(reason.to_string(), started).await;
                        break;
                    }
                }
            }
            // The microphone flows as soon as the channel is open: a session configured to
            // wait for speech starts only when it hears the member.
            Some(frame) = audio.recv() => {
                if channel_open {
                    let _ = peer.send_audio(frame.data, frame.samples);
                }
            }
            cmd = commands.recv() => match cmd {
                Some(Command::Core(command)) if started => {
                    for event in client_events(&command, &mut next_id) {
                        send(&peer, event);
                    }
                }
                Some(Command::Core(command)) => {
                    tracing::warn!(command = ?command, "not sent: the Live session has not started");
                }
                Some(Command::HangUp) | None => {
                    let _ = peer.close();
                    break;
                }
            },
        }
    }
    inbox.finish(deps.log_transcripts);
}

/// True for the input that says the session runs (`session.started` arrived).
fn is_started(r: &ConversationEvent, session_id: Uuid) -> bool {
    matches!(r, ConversationEvent::Input(Input::RealtimeConnected { session_id: s }) if *s == session_id)
}

/// The core's commands as Live client events.
fn client_events(
    command: &RealtimeCommand,
    next_id: &mut impl FnMut() -> String,
) -> Vec<LiveClientEvent> {
    match command {
        // One result per call, then one `response.create` to continue (reference §7.1).
        RealtimeCommand::FunctionCallOutput { call_id, output } => vec![
            LiveClientEvent::ItemCreate {
                event_id: next_id(),
                item: LiveItem::FunctionCallOutput {
                    call_id: call_id.clone(),
                    output: output.clone(),
                },
            },
            LiveClientEvent::ResponseCreate {
                event_id: next_id(),
            },
        ],
        // Instructions are immutable; appending is how the voice is told to wrap up.
        RealtimeCommand::SayGoodbye { instructions } => vec![LiveClientEvent::InstructionsAppend {
            event_id: next_id(),
            content: instructions.clone(),
            delegation_id: None,
        }],
        RealtimeCommand::CloseSession => vec![LiveClientEvent::Close {
            event_id: next_id(),
        }],
    }
}

async fn connect(
    deps: &RealtimeDeps,
    member: &MemberContext<'_>,
    session_id: Uuid,
    reports: &mpsc::Sender<ConversationEvent>,
) -> Result<(PeerHandle, PeerEvents, String), CallError> {
    let began = Instant::now();
    let creds = deps
        .credentials
        .as_ref()
        .map_err(|e| CallError::Client(e.clone()))?;
    let live_cfg = &deps.cfg.live;
    let policy = SessionPolicy {
        model: live_cfg.model.clone(),
        voice: live_cfg.voice.clone(),
        instructions: deps.template.render(member),
        delegation_model: live_cfg.delegation_model.clone(),
        delegation_instructions: deps.delegation_instructions.clone(),
    };
    let options = PeerOptions {
        connect_timeout: Duration::from_secs(deps.cfg.connect_timeout_s),
        ice_disconnect_grace: Duration::from_secs(deps.cfg.ice_disconnect_grace_s),
        ..PeerOptions::for_base_url(&deps.cfg.base_url)
    };
    let (pending, offer) = Peer::offer(options).map_err(|e| CallError::Client(e.to_string()))?;
    let request = CreateRequest::new(&policy, &offer);
    let created = sessions::create(
        &deps.http,
        &deps.cfg,
        creds,
        &session_id.to_string(),
        &request,
    )
    .await?;
    // From here the session bills (at least its 15 s initialisation), whatever follows.
    let _ = reports
        .send(ConversationEvent::Input(Input::Realtime {
            session_id,
            signal: Signal::LiveCreated,
        }))
        .await;
    let left = Duration::from_secs(deps.cfg.connect_timeout_s)
        .saturating_sub(began.elapsed() + PEER_DEADLINE_MARGIN)
        .max(PEER_DEADLINE_MARGIN);
    let (peer, events) = pending
        .with_connect_timeout(left)
        .accept(&created.transport.sdp)
        .map_err(|e| CallError::Client(format!("the SDP answer was refused: {e}")))?;
    Ok((peer, events, created.session.id))
}

/// Who is talking, for grouping transcript fragments into utterances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaker {
    Nobody,
    Member,
    Jarvis,
}

/// The data channel's messages, decoded and turned into core inputs. Pure but for logging, so
/// every mapping is unit-tested.
struct LiveInbox {
    session_id: Uuid,
    pricing: Arc<Pricing>,
    delegation_model: String,
    speaker: Speaker,
    /// The member's current utterance, fragment by fragment (Live has no transcript `done`).
    member_text: String,
    jarvis_text: String,
    malformed: u64,
    unknown: u64,
}

impl LiveInbox {
    fn new(session_id: Uuid, pricing: Arc<Pricing>, delegation_model: &str) -> Self {
        LiveInbox {
            session_id,
            pricing,
            delegation_model: delegation_model.to_owned(),
            speaker: Speaker::Nobody,
            member_text: String::new(),
            jarvis_text: String::new(),
            malformed: 0,
            unknown: 0,
        }
    }

    fn on_message(&mut self, text: &str, deps: &RealtimeDeps) -> Vec<ConversationEvent> {
        match live::decode(text) {
            Decoded::Event(event) => self.map(event, deps.log_transcripts),
            Decoded::Ignored { .. } => Vec::new(),
            Decoded::Unknown { kind } => {
                self.unknown += 1;
                deps.health.add("realtime_unknown_events", 1);
                tracing::debug!(kind, "unknown Live event ignored");
                Vec::new()
            }
            Decoded::Malformed { error } => {
                self.malformed += 1;
                deps.health.add("realtime_malformed_events", 1);
                if self.malformed == 1 {
                    tracing::warn!(error = %error, "malformed Live event ignored (further ones are counted)");
                }
                Vec::new()
            }
        }
    }

    fn core(&self, signal: Signal) -> ConversationEvent {
        ConversationEvent::Input(Input::Realtime {
            session_id: self.session_id,
            signal,
        })
    }

    /// Logs the utterance that just ended when `log.transcripts` asks for it.
    fn switch_to(&mut self, speaker: Speaker, log: bool) {
        if self.speaker == speaker {
            return;
        }
        let (who, text) = match self.speaker {
            Speaker::Member => ("member", std::mem::take(&mut self.member_text)),
            Speaker::Jarvis => ("jarvis", std::mem::take(&mut self.jarvis_text)),
            Speaker::Nobody => ("", String::new()),
        };
        if log && !text.trim().is_empty() {
            tracing::info!(speaker = who, text = text.trim(), "transcript");
        }
        self.speaker = speaker;
    }

    fn map(&mut self, event: LiveServerEvent, log: bool) -> Vec<ConversationEvent> {
        match event {
            LiveServerEvent::SessionStarted { session } => {
                tracing::info!(
                    model = session.model,
                    expires_at = session.expires_at,
                    "Live session started"
                );
                vec![
                    self.core(Signal::LiveModel {
                        model: session.model,
                    }),
                    ConversationEvent::Input(Input::RealtimeConnected {
                        session_id: self.session_id,
                    }),
                ]
            }
            LiveServerEvent::InputTranscriptDelta { delta, .. } => {
                let new_utterance = self.speaker != Speaker::Member;
                self.switch_to(Speaker::Member, log);
                self.member_text.push_str(&delta);
                let mut out = Vec::new();
                if new_utterance {
                    out.push(self.core(Signal::SpeechStarted));
                }
                out.push(self.core(Signal::TranscriptCompleted {
                    text: self.member_text.clone(),
                }));
                out
            }
            LiveServerEvent::OutputTranscriptDelta { delta, .. } => {
                self.switch_to(Speaker::Jarvis, log);
                self.jarvis_text.push_str(&delta);
                vec![self.core(Signal::OutputSpeech)]
            }
            LiveServerEvent::DelegationCreated { delegation, .. } => {
                tracing::debug!(
                    delegation_id = delegation.id,
                    target = delegation.target,
                    "delegation created"
                );
                Vec::new()
            }
            LiveServerEvent::ResponseEvent {
                delegation_id,
                event,
            } => self.delegation(delegation_id.as_deref(), event),
            LiveServerEvent::UsageUpdated { usage } => vec![self.core(Signal::LiveUsage {
                seconds: usage.seconds,
                raw_usage: serde_json::json!({ "seconds": usage.seconds }),
            })],
            LiveServerEvent::SessionClosed { reason, usage } => {
                tracing::info!(reason, seconds = usage.seconds, "Live session closed");
                vec![self.core(Signal::LiveClosed {
                    seconds: usage.seconds,
                    reason,
                    raw_usage: serde_json::json!({ "seconds": usage.seconds }),
                })]
            }
            LiveServerEvent::Error { error } => {
                // Live errors answer a client event (or report a problem); the session goes on.
                // A dead session shows as `session.closed` or a closed transport.
                tracing::warn!(
                    code = error.code.as_deref().unwrap_or(&error.kind),
                    client_event_id = error.client_event_id.as_deref().unwrap_or(""),
                    message = error.message,
                    "Live error event"
                );
                Vec::new()
            }
            LiveServerEvent::Info { code, message } => {
                tracing::debug!(code, message, "Live info");
                Vec::new()
            }
        }
    }

    fn delegation(
        &mut self,
        delegation_id: Option<&str>,
        event: DelegationEvent,
    ) -> Vec<ConversationEvent> {
        if let Some(call) = event.function_call() {
            if call.name == "end_session" {
                return vec![self.core(Signal::EndSessionCalled {
                    call_id: call.call_id,
                })];
            }
            tracing::warn!(
                name = call.name,
                "the delegation model called an unknown function"
            );
            return Vec::new();
        }
        match event {
            DelegationEvent::Completed { response } => {
                let usage = DelegationUsage {
                    input_tokens: response.usage.input_tokens,
                    cached_tokens: response.usage.input_tokens_details.cached_tokens,
                    output_tokens: response.usage.output_tokens,
                };
                let response_id = response
                    .id
                    .or_else(|| delegation_id.map(str::to_owned))
                    .unwrap_or_default();
                match self
                    .pricing
                    .price_delegation(&self.delegation_model, &usage)
                {
                    Ok(priced) => vec![self.core(Signal::DelegationUsage {
                        response_id,
                        model: self.delegation_model.clone(),
                        tokens: priced.tokens,
                        cost: priced.cost.total(),
                        raw_usage: serde_json::to_value(response.usage).unwrap_or_default(),
                    })],
                    Err(e) => vec![unpriced(
                        self.session_id,
                        &format!(
                            "delegated response {response_id} on model {}",
                            self.delegation_model
                        ),
                        &e,
                    )],
                }
            }
            DelegationEvent::Failed {} | DelegationEvent::Incomplete {} => {
                tracing::warn!(
                    delegation_id = delegation_id.unwrap_or(""),
                    "a delegated response failed or was incomplete"
                );
                Vec::new()
            }
            DelegationEvent::OutputItemDone { .. } | DelegationEvent::Other => Vec::new(),
        }
    }

    fn finish(&mut self, log: bool) {
        self.switch_to(Speaker::Nobody, log);
        if self.malformed > 0 || self.unknown > 0 {
            tracing::info!(
                malformed = self.malformed,
                unknown = self.unknown,
                "Live events ignored this session"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn inbox() -> LiveInbox {
        let pricing = Pricing::from_config(&BTreeMap::new()).unwrap();
        LiveInbox::new(Uuid::nil(), Arc::new(pricing), "gpt-5-mini")
    }

    fn event(json: serde_json::Value) -> LiveServerEvent {
        match live::decode(&json.to_string()) {
            Decoded::Event(e) => e,
            other => panic!("{other:?}"),
        }
    }

    fn signals(out: Vec<ConversationEvent>) -> Vec<Signal> {
        out.into_iter()
            .filter_map(|r| match r {
                ConversationEvent::Input(Input::Realtime { signal, .. }) => Some(signal),
                _ => None,
            })
            .collect()
    }

    fn delta(kind: &str, text: &str) -> LiveServerEvent {
        event(serde_json::json!({"type": kind, "delta": text, "start_ms": 0, "end_ms": 1}))
    }

    #[test]
    fn member_fragments_make_one_utterance_until_jarvis_speaks() {
        let mut i = inbox();
        let input = "session.input_transcript.delta";
        assert_eq!(
            signals(i.map(delta(input, "Merci, "), false)),
            [
                Signal::SpeechStarted,
                Signal::TranscriptCompleted {
                    text: "Merci, ".into()
                }
            ]
        );
        // The phrase spans two fragments: the matcher sees the utterance so far.
        assert_eq!(
            signals(i.map(delta(input, "au revoir"), false)),
            [Signal::TranscriptCompleted {
                text: "Merci, au revoir".into()
            }]
        );
        assert_eq!(
            signals(i.map(delta("session.output_transcript.delta", "Au revoir"), false)),
            [Signal::OutputSpeech]
        );
        // A new utterance after JARVIS spoke starts afresh.
        assert_eq!(
            signals(i.map(delta(input, "Attends"), false))[1],
            Signal::TranscriptCompleted {
                text: "Attends".into()
            }
        );
    }

    #[test]
    fn the_started_session_names_its_model_before_it_counts_as_connected() {
        let mut i = inbox();
        let out = i.map(
            event(serde_json::json!({"type": "session.started", "session":
                {"id": "live_1", "model": "gpt-live-1", "expires_at": 1_900_000_000u64}})),
            false,
        );
        assert!(matches!(
            &out[0],
            ConversationEvent::Input(Input::Realtime { signal: Signal::LiveModel { model }, .. }) if model == "gpt-live-1"
        ));
        assert!(is_started(&out[1], Uuid::nil()));
    }

    #[test]
    fn end_session_is_read_from_the_delegation_and_its_usage_priced_as_gpt_5_mini() {
        let mut i = inbox();
        let call = i.map(
            event(
                serde_json::json!({"type": "response.event", "delegation_id": "d1", "event":
                {"type": "response.output_item.done", "item": {"type": "function_call",
                 "call_id": "call_9", "name": "end_session", "arguments": "{}"}}}),
            ),
            false,
        );
        assert_eq!(
            signals(call),
            [Signal::EndSessionCalled {
                call_id: "call_9".into()
            }]
        );
        let usage = i.map(
            event(
                serde_json::json!({"type": "response.event", "delegation_id": "d1", "event":
                {"type": "response.completed", "response": {"id": "resp_1", "usage":
                 {"input_tokens": 1450, "output_tokens": 42,
                  "input_tokens_details": {"cached_tokens": 1280}}}}}),
            ),
            false,
        );
        // (1450 - 1280) × $0.25 + 1280 × $0.025 + 42 × $2.00 per 1M tokens.
        match &signals(usage)[..] {
            [Signal::DelegationUsage { cost, model, .. }] => {
                assert_eq!((cost.0, model.as_str()), (158_500, "gpt-5-mini"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usage_and_the_close_carry_the_cumulative_seconds() {
        let mut i = inbox();
        let closed = i.map(
            event(
                serde_json::json!({"type": "session.closed", "reason": "expired",
                "usage": {"seconds": 7200}, "session": {"id": "live_1"}}),
            ),
            false,
        );
        assert_eq!(
            signals(closed),
            [Signal::LiveClosed {
                seconds: 7200,
                reason: "expired".into(),
                raw_usage: serde_json::json!({"seconds": 7200})
            }]
        );
    }

    #[test]
    fn the_cores_commands_become_the_documented_client_events() {
        let mut n = 0;
        let mut ids = || {
            n += 1;
            format!("k{n}")
        };
        let out: Vec<String> = client_events(
            &RealtimeCommand::FunctionCallOutput {
                call_id: "call_9".into(),
                output: "{}".into(),
            },
            &mut ids,
        )
        .iter()
        .chain(&client_events(
            &RealtimeCommand::SayGoodbye {
                instructions: "bye".into(),
            },
            &mut ids,
        ))
        .chain(&client_events(&RealtimeCommand::CloseSession, &mut ids))
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.to_json()).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
        assert_eq!(
            out,
            [
                "response.item.create",
                "response.create",
                "session.instructions.append",
                "session.close"
            ]
        );
    }
}
