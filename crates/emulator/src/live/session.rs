//! One GPT-Live session's conversation, without I/O or clock (every input carries the time,
//! in ms since the SDP answer), so each ordering of the event contract is unit-tested:
//!
//! - `session.started` first; a client event before it is answered with an `error`
//!   (`session_not_started`), since the reference says to wait for it;
//! - member turns (the VAD or a timer, as in Realtime scenarios) give
//!   `session.input_transcript.delta` then `session.output_transcript.delta` with the reply
//!   audio; there are no speech, turn or response events, and barge-in is silent (audio stops);
//! - a turn with `end_session` ends, after its audio, in a delegation: `session.delegation.created`
//!   then `response.event` envelopes (a `reasoning` item first, then the `function_call`, then
//!   `response.completed` with token usage); `function_call_output` + `response.create` get the
//!   goodbye, as a second delegated response and spoken audio;
//! - acknowledgements (`…appended`, `…muted`, `session.updated`) do not echo `client_event_id`
//!   (Azure says they do not; the SDK marks it optional), so a client cannot wait on it;
//!   errors do, in `error.client_event_id`;
//! - `session.instructions.append` is followed: the scenario's `[goodbye]` is spoken;
//! - `session.usage.updated` carries cumulative whole seconds since `session.started`;
//!   `session.close` drains the audio, then `session.closed` with the final seconds (rounded up).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::events;
use super::request::{Delegation, LiveRequest};
use crate::scenario::{AudioSpec, Scenario, Trigger, Usage};
use crate::script::ScriptFaults;
use crate::vad::VadEvent;

/// Something that happened to the session, at `at_ms` since the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveInput<'a> {
    /// The session is running (the start delay after the channel opened has passed).
    Start,
    /// A text message from the client.
    Client(&'a str),
    /// The VAD found a boundary in the member's audio.
    Vad(VadEvent),
    /// The timer armed by [`LiveAction::ArmTimer`] fired (timer-triggered turns).
    Timer,
    /// The oldest queued audio has been fully sent.
    AudioFinished,
    /// Time for a `session.usage.updated`.
    UsageTick,
    /// `expires_at` was reached.
    Expired,
    /// `POST /v1/live/sessions/{id}/hangup`.
    HangUp,
}

/// What the runtime must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveAction {
    /// Send this server event.
    Send(Value),
    /// Speak this audio after any audio already queued; report [`LiveInput::AudioFinished`].
    Play {
        /// A name for the record (the output it belongs to).
        id: String,
        /// What to say.
        audio: AudioSpec,
    },
    /// The member spoke over the audio: stop and forget it (no event: barge-in is native).
    BargeIn,
    /// Deliver [`LiveInput::Timer`] after this delay.
    ArmTimer(Duration),
    /// Go silent at once, without `session.closed` (the dropped-connection fault).
    Drop,
    /// Close the transport (after `session.closed`).
    Close,
}

#[derive(Debug, Clone, PartialEq)]
enum Speech {
    /// A member turn's reply; `end_session` makes it end in a delegation.
    Turn {
        end_session: Option<String>,
        usage: Usage,
    },
    /// The greeting or the goodbye.
    Other,
}

/// A delegated response that asked for function calls.
#[derive(Debug)]
struct Delegated {
    delegation_id: String,
    /// Calls still waiting for their `function_call_output`.
    waiting: Vec<String>,
    answered: Vec<String>,
}

/// The session's state.
#[derive(Debug)]
pub struct LiveSession {
    scenario: Arc<Scenario>,
    faults: ScriptFaults,
    request: LiveRequest,
    resource: Value,
    seq: u64,
    started_ms: Option<u64>,
    closing: bool,
    closed: bool,
    muted: bool,
    next_turn: usize,
    turns_spoken: usize,
    speech_start_ms: Option<u64>,
    playing: VecDeque<Speech>,
    delegated: Option<Delegated>,
    last_seconds: u64,
}

impl LiveSession {
    /// A session created by `request`, answered as `id`, ending at `expires_at` (Unix s).
    pub fn new(
        scenario: Arc<Scenario>,
        faults: ScriptFaults,
        id: &str,
        request: LiveRequest,
        expires_at: u64,
    ) -> Self {
        let resource = events::resource(id, &request, expires_at);
        Self {
            scenario,
            faults,
            request,
            resource,
            seq: 0,
            started_ms: None,
            closing: false,
            closed: false,
            muted: false,
            next_turn: 0,
            turns_spoken: 0,
            speech_start_ms: None,
            playing: VecDeque::new(),
            delegated: None,
            last_seconds: 0,
        }
    }

    /// Whether `session.closed` has been sent.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}_EMU{:06}", self.seq)
    }

    fn send(&mut self, mut body: Value, out: &mut Vec<LiveAction>) {
        let id = self.id("event");
        if let Value::Object(m) = &mut body {
            m.insert("event_id".into(), Value::String(id));
        }
        out.push(LiveAction::Send(body));
    }

    fn error(
        &mut self,
        code: &str,
        message: &str,
        param: Option<&str>,
        client: &Value,
        out: &mut Vec<LiveAction>,
    ) {
        self.send(events::error(code, message, param, client), out);
    }

    /// Session timeline (ms since `session.started`).
    fn timeline(&self, at_ms: u64) -> u64 {
        at_ms.saturating_sub(self.started_ms.unwrap_or(at_ms))
    }

    /// Cumulative billed seconds: whole seconds elapsed, rounded up at the close.
    fn seconds(&mut self, at_ms: u64, last: bool) -> u64 {
        let ms = self.timeline(at_ms);
        let s = if last { ms.div_ceil(1000) } else { ms / 1000 };
        self.last_seconds = self.last_seconds.max(s);
        self.last_seconds
    }

    /// Feeds one input and returns the actions to perform, in order.
    pub fn step(&mut self, input: LiveInput<'_>, at_ms: u64) -> Vec<LiveAction> {
        let mut out = Vec::new();
        if self.closed {
            return out;
        }
        match input {
            LiveInput::Start => self.start(at_ms, &mut out),
            LiveInput::Client(text) => self.on_client(text, at_ms, &mut out),
            LiveInput::Vad(VadEvent::SpeechStarted { .. }) if self.listening() => {
                if !self.playing.is_empty() {
                    // Native barge-in: the audio stops, nothing on the data channel.
                    self.playing.clear();
                    out.push(LiveAction::BargeIn);
                }
                self.speech_start_ms = Some(at_ms);
            }
            LiveInput::Vad(VadEvent::SpeechStopped { .. }) if self.listening() => {
                if let Some(from) = self.speech_start_ms.take() {
                    self.turn(from, at_ms, &mut out);
                }
            }
            LiveInput::Vad(_) => {}
            LiveInput::Timer => {
                if self.scenario.trigger == Trigger::Timer && self.listening() {
                    self.turn(at_ms, at_ms, &mut out);
                }
            }
            LiveInput::AudioFinished => self.audio_finished(at_ms, &mut out),
            LiveInput::UsageTick => {
                if self.started_ms.is_some() {
                    let seconds = self.seconds(at_ms, false);
                    let ratio = 0.05 * self.turns_spoken as f64;
                    self.send(
                        json!({"type": "session.usage.updated", "usage": {"seconds": seconds},
                               "context_window": {"usage_ratio": ratio.min(1.0)}}),
                        &mut out,
                    );
                }
            }
            LiveInput::Expired => self.close("expired", at_ms, &mut out),
            LiveInput::HangUp => self.close("close_requested", at_ms, &mut out),
        }
        out
    }

    fn listening(&self) -> bool {
        self.started_ms.is_some() && !self.muted && !self.closing
    }

    fn start(&mut self, at_ms: u64, out: &mut Vec<LiveAction>) {
        if self.started_ms.is_some() {
            return;
        }
        self.started_ms = Some(at_ms);
        let session = self.resource.clone();
        self.send(json!({"type": "session.started", "session": session}), out);
        if let Some(g) = self.scenario.greeting.clone() {
            let audio = self.scenario.resolve(&g.audio);
            self.speak(&g.transcript, audio, Speech::Other, at_ms, out);
        } else if self.scenario.trigger == Trigger::Timer {
            out.push(LiveAction::ArmTimer(Duration::from_millis(u64::from(
                self.scenario.turns[0].after_ms,
            ))));
        }
    }

    fn close(&mut self, reason: &str, at_ms: u64, out: &mut Vec<LiveAction>) {
        let seconds = self.seconds(at_ms, true);
        let session = self.resource.clone();
        self.send(
            json!({"type": "session.closed", "reason": reason, "usage": {"seconds": seconds}, "session": session}),
            out,
        );
        self.closed = true;
        out.push(LiveAction::Close);
    }

    /// Output transcript and audio of one thing JARVIS says.
    fn speak(
        &mut self,
        transcript: &str,
        audio: AudioSpec,
        what: Speech,
        at_ms: u64,
        out: &mut Vec<LiveAction>,
    ) {
        let id = self.id("out");
        let words: Vec<&str> = transcript.split_inclusive(' ').collect();
        let length = match audio {
            AudioSpec::Tone { ms, .. } => u64::from(ms),
            AudioSpec::Wav { .. } => 0,
        };
        let from = self.timeline(at_ms);
        let n = words.len().max(1) as u64;
        for (i, w) in words.iter().enumerate() {
            let i = i as u64;
            self.send(
                json!({"type": "session.output_transcript.delta", "delta": w,
                       "start_ms": from + length * i / n, "end_ms": from + length * (i + 1) / n}),
                out,
            );
        }
        out.push(LiveAction::Play { id, audio });
        self.playing.push_back(what);
    }

    fn turn(&mut self, from_ms: u64, at_ms: u64, out: &mut Vec<LiveAction>) {
        let Some(turn) = self.scenario.turns.get(self.next_turn).cloned() else {
            return;
        };
        self.next_turn += 1;
        let (start, end) = (self.timeline(from_ms), self.timeline(at_ms));
        self.send(
            json!({"type": "session.input_transcript.delta", "delta": turn.user_transcript,
                   "start_ms": start, "end_ms": end}),
            out,
        );
        let audio = self.scenario.resolve(&turn.reply_audio);
        self.speak(
            &turn.reply_transcript,
            audio,
            Speech::Turn {
                end_session: turn.end_session.clone(),
                usage: turn.usage,
            },
            at_ms,
            out,
        );
    }

    fn audio_finished(&mut self, at_ms: u64, out: &mut Vec<LiveAction>) {
        match self.playing.pop_front() {
            Some(Speech::Turn { end_session, usage }) => {
                self.turns_spoken += 1;
                if let Some(reason) = end_session {
                    self.delegate_end_session(&reason, &usage, at_ms, out);
                }
                if self.faults.drop_after_turn == Some(self.turns_spoken) {
                    out.push(LiveAction::Drop);
                    return;
                }
                if self.scenario.trigger == Trigger::Timer
                    && let Some(next) = self.scenario.turns.get(self.next_turn)
                {
                    out.push(LiveAction::ArmTimer(Duration::from_millis(u64::from(
                        next.after_ms,
                    ))));
                }
            }
            Some(Speech::Other) => {
                if self.scenario.trigger == Trigger::Timer
                    && self.next_turn == 0
                    && let Some(first) = self.scenario.turns.first()
                {
                    out.push(LiveAction::ArmTimer(Duration::from_millis(u64::from(
                        first.after_ms,
                    ))));
                }
            }
            None => {}
        }
        if self.closing && self.playing.is_empty() {
            self.close("close_requested", at_ms, out);
        }
    }

    /// The voice model hands the goodbye to the backend, which calls `end_session`.
    fn delegate_end_session(
        &mut self,
        reason: &str,
        usage: &Usage,
        at_ms: u64,
        out: &mut Vec<LiveAction>,
    ) {
        let delegation_id = self.id("item_delegation");
        let offset_ms = self.timeline(at_ms);
        let Delegation::Responses { model, functions } = self.request.delegation.clone() else {
            // Client delegation: metadata only, no task text and no tool channel.
            self.send(
                json!({"type": "session.delegation.created", "offset_ms": offset_ms,
                       "delegation": {"id": delegation_id, "type": "delegation", "target": "client"}}),
                out,
            );
            return;
        };
        if !functions.iter().any(|f| f == "end_session") {
            self.error(
                "emulator_tool_not_declared",
                "The scenario ends this turn with an end_session call, but \
                 session.delegation.responses.tools declares no function named end_session.",
                Some("session.delegation.responses.tools"),
                &Value::Null,
                out,
            );
            return;
        }
        let response_id = self.id("resp");
        self.send(
            json!({"type": "session.delegation.created", "offset_ms": offset_ms,
                   "delegation": {"id": delegation_id, "type": "delegation", "target": "responses",
                                  "response_id": response_id}}),
            out,
        );
        let call_id = self.id("call");
        let (reasoning_id, fc_id) = (self.id("rs"), self.id("fc"));
        let arguments = json!({"reason": reason}).to_string();
        let nested = [
            json!({"type": "response.created", "response": events::response(&response_id, &model, "in_progress", Value::Null)}),
            json!({"type": "response.output_item.done", "output_index": 0,
                   "item": {"type": "reasoning", "id": reasoning_id, "summary": []}}),
            json!({"type": "response.output_item.done", "output_index": 1,
                   "item": {"type": "function_call", "id": fc_id, "call_id": call_id, "name": "end_session",
                            "arguments": arguments, "status": "completed"}}),
            json!({"type": "response.completed",
                   "response": events::response(&response_id, &model, "completed", events::responses_usage(usage))}),
        ];
        for event in nested {
            self.send(events::envelope(&delegation_id, event), out);
        }
        self.delegated = Some(Delegated {
            delegation_id,
            waiting: vec![call_id],
            answered: Vec::new(),
        });
    }

    fn on_client(&mut self, text: &str, at_ms: u64, out: &mut Vec<LiveAction>) {
        let msg: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                self.error(
                    "invalid_event",
                    "The client event is not a JSON object.",
                    None,
                    &Value::Null,
                    out,
                );
                return;
            }
        };
        let kind = msg
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if self.started_ms.is_none() {
            let message = format!(
                "'{kind}' arrived before session.started: wait for session.started before sending any command."
            );
            self.error("session_not_started", &message, Some("type"), &msg, out);
            return;
        }
        if self.closing {
            self.error(
                "session_closing",
                "The session is closing and accepts no new command.",
                Some("type"),
                &msg,
                out,
            );
            return;
        }
        match kind.as_str() {
            "session.close" => {
                self.closing = true;
                if self.playing.is_empty() {
                    self.close("close_requested", at_ms, out);
                }
            }
            "session.update" => self.update(&msg, out),
            "session.input_audio.mute" | "session.input_audio.unmute" => {
                self.muted = kind.ends_with(".mute");
                self.speech_start_ms = None;
                let ack = if self.muted {
                    "session.input_audio.muted"
                } else {
                    "session.input_audio.unmuted"
                };
                self.send(json!({"type": ack}), out);
            }
            "session.instructions.append"
            | "session.thinking.append"
            | "session.commentary.append" => {
                self.append(&kind, &msg, at_ms, out);
            }
            "response.item.create" => self.item_create(&msg, out),
            "response.create" => self.response_create(&msg, at_ms, out),
            "session.start" | "session.input_audio.append" => {
                let m = format!(
                    "'{kind}' is for the primary WebSocket only; on WebRTC the HTTP request starts the session and audio travels on RTP."
                );
                self.error("invalid_event", &m, Some("type"), &msg, out);
            }
            other => {
                let m = format!(
                    "Invalid value: '{other}'. Unknown GPT-Live client event (Realtime events such as conversation.item.create, response.cancel or input_audio_buffer.* do not exist here)."
                );
                self.error("invalid_event", &m, Some("type"), &msg, out);
            }
        }
    }

    fn update(&mut self, msg: &Value, out: &mut Vec<LiveAction>) {
        let Some(patch) = msg.get("session").and_then(Value::as_object) else {
            self.error(
                "missing_required_parameter",
                "Missing required parameter: 'session'.",
                Some("session"),
                msg,
                out,
            );
            return;
        };
        if let Some(k) = patch.keys().find(|k| *k != "delegation") {
            let m = format!(
                "'session.{k}' cannot change after start: only delegation.responses settings can."
            );
            self.error(
                "immutable_parameter",
                &m,
                Some(&format!("session.{k}")),
                msg,
                out,
            );
            return;
        }
        let current = self.resource["delegation"]["type"].clone();
        let Some(d) = patch.get("delegation").and_then(Value::as_object) else {
            self.error(
                "invalid_value",
                "'session.delegation' must be an object.",
                Some("session.delegation"),
                msg,
                out,
            );
            return;
        };
        if current != "responses"
            || d.get("type").is_some_and(|t| *t != current)
            || d.keys().any(|k| k != "type" && k != "responses")
        {
            self.error(
                "immutable_parameter",
                "The delegation type is fixed at startup; only delegation.responses settings can change.",
                Some("session.delegation"),
                msg,
                out,
            );
            return;
        }
        if let Some(r) = d.get("responses") {
            crate::script::merge(&mut self.resource["delegation"]["responses"], r);
        }
        let session = self.resource.clone();
        self.send(json!({"type": "session.updated", "session": session}), out);
    }

    fn append(&mut self, kind: &str, msg: &Value, at_ms: u64, out: &mut Vec<LiveAction>) {
        if !msg.get("content").is_some_and(Value::is_string) {
            self.error(
                "missing_required_parameter",
                "Missing required parameter: 'content' (a string).",
                Some("content"),
                msg,
                out,
            );
            return;
        }
        let Some(delegation_id) = msg.get("delegation_id") else {
            self.error(
                "missing_required_parameter",
                "Missing required parameter: 'delegation_id' (null for general context).",
                Some("delegation_id"),
                msg,
                out,
            );
            return;
        };
        if !delegation_id.is_null()
            && matches!(self.request.delegation, Delegation::Responses { .. })
        {
            self.error(
                "invalid_value",
                "Non-null delegation ids are not accepted under Responses delegation.",
                Some("delegation_id"),
                msg,
                out,
            );
            return;
        }
        let at = self.timeline(at_ms);
        let ack = kind.replace(".append", ".appended");
        self.send(json!({"type": ack, "start_ms": at, "end_ms": at}), out);
        // An appended instruction (the kiosk's "say goodbye now") is followed: the scenario's
        // goodbye is spoken, as the voice would once the instruction is injected.
        if kind == "session.instructions.append"
            && let Some(g) = self.scenario.goodbye.clone()
        {
            let audio = self.scenario.resolve(&g.audio);
            self.speak(&g.transcript, audio, Speech::Other, at_ms, out);
        }
    }

    fn item_create(&mut self, msg: &Value, out: &mut Vec<LiveAction>) {
        if self.request.delegation == Delegation::Client {
            self.error(
                "invalid_request",
                "response.item.create is for Responses delegation only.",
                Some("type"),
                msg,
                out,
            );
            return;
        }
        let Some(item) = msg.get("item").and_then(Value::as_object) else {
            self.error(
                "missing_required_parameter",
                "Missing required parameter: 'item'.",
                Some("item"),
                msg,
                out,
            );
            return;
        };
        if item.get("type").and_then(Value::as_str) != Some("function_call_output") {
            return;
        }
        let call_id = item
            .get("call_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !item.get("output").is_some_and(Value::is_string) {
            self.error(
                "invalid_type",
                "'item.output' must be a string (JSON text).",
                Some("item.output"),
                msg,
                out,
            );
            return;
        }
        let known = self.delegated.as_mut().and_then(|d| {
            let i = d.waiting.iter().position(|c| c == call_id)?;
            d.answered.push(d.waiting.remove(i));
            Some(())
        });
        if known.is_none() {
            let m = format!("No function call '{call_id}' is waiting for an output.");
            self.error("invalid_value", &m, Some("item.call_id"), msg, out);
        }
    }

    fn response_create(&mut self, msg: &Value, at_ms: u64, out: &mut Vec<LiveAction>) {
        if self.request.delegation == Delegation::Client {
            self.error(
                "invalid_request",
                "response.create is for Responses delegation only.",
                Some("type"),
                msg,
                out,
            );
            return;
        }
        if msg.get("response").is_some() {
            self.error(
                "unknown_parameter",
                "GPT-Live's response.create takes no 'response' object (voice instructions are immutable).",
                Some("response"),
                msg,
                out,
            );
            return;
        }
        let ready = match &self.delegated {
            Some(d) if d.waiting.is_empty() && !d.answered.is_empty() => true,
            Some(d) => {
                let m = format!(
                    "response.create before every function_call_output: still waiting for {:?}.",
                    d.waiting
                );
                self.error("missing_function_call_output", &m, None, msg, out);
                return;
            }
            None => false,
        };
        let Some(delegated) = self.delegated.take().filter(|_| ready) else {
            self.error(
                "emulator_unscripted",
                "The emulator has no delegated response to continue.",
                None,
                msg,
                out,
            );
            return;
        };
        let Delegation::Responses { model, .. } = self.request.delegation.clone() else {
            return;
        };
        let response_id = self.id("resp");
        let goodbye = self.scenario.goodbye.clone();
        let text = goodbye
            .as_ref()
            .map(|g| g.transcript.clone())
            .unwrap_or_default();
        let usage = goodbye.as_ref().map(|g| g.usage).unwrap_or_default();
        let msg_id = self.id("msg");
        let nested = [
            json!({"type": "response.created", "response": events::response(&response_id, &model, "in_progress", Value::Null)}),
            json!({"type": "response.output_text.delta", "item_id": msg_id, "output_index": 0, "content_index": 0, "delta": text}),
            json!({"type": "response.output_item.done", "output_index": 0,
                   "item": {"type": "message", "id": msg_id, "role": "assistant", "status": "completed",
                            "content": [{"type": "output_text", "text": text}]}}),
            json!({"type": "response.completed",
                   "response": events::response(&response_id, &model, "completed", events::responses_usage(&usage))}),
        ];
        for event in nested {
            self.send(events::envelope(&delegated.delegation_id, event), out);
        }
        if let Some(g) = goodbye {
            let audio = self.scenario.resolve(&g.audio);
            self.speak(&g.transcript, audio, Speech::Other, at_ms, out);
        }
    }
}

#[cfg(test)]
mod tests;
