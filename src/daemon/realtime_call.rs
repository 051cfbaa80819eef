//! One Realtime conversation: mint a key, offer, exchange SDP, then pump audio and events
//! between the peer connection, the sound card and the lifecycle core until hang-up.
//!
//! The task owns no policy: it turns the outside world into [`Input`]s for the core and the
//! core's commands into the wire. Every failure becomes exactly one `RealtimeFailed`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use uuid::Uuid;

use jarvis_audio::{OpusFrame, Playback};
use jarvis_core::session::{FailureKind, Input, RealtimeCommand, SessionContext, Signal};
use jarvis_realtime::calls;
use jarvis_realtime::credentials::{self, ClientSecretRequest};
use jarvis_realtime::http::CallError;
use jarvis_realtime::peer::{Peer, PeerEvent, PeerHandle, PeerOptions};
use jarvis_realtime::protocol::{
    self, ClientEvent, Decoded, RealtimeSignal, Translator, UsageSource,
};
use jarvis_realtime::session_update::{self, MemberContext};

use super::call::{
    Command, ConversationEvent, PEER_DEADLINE_MARGIN, RealtimeDeps, Reporter, member_context,
    unpriced,
};

/// How long a hang-up waits for the usage of responses still running.
pub const USAGE_GRACE: Duration = Duration::from_secs(2);

pub(super) async fn run(
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
}
