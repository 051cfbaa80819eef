//! The conversation state machine of one emulated call: turn boundaries and client events in,
//! GA server events and audio/timer decisions out. No I/O and no clock (the Unix time is given
//! once at creation), so every ordering is unit-tested.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::scenario::{AudioSpec, Scenario, TranscriptionUsage, Trigger, Usage};
use super::vad::VadEvent;

/// Something that happened to the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<'a> {
    /// The `oai-events` channel opened.
    Open,
    /// A text message from the kiosk.
    Client(&'a str),
    /// The VAD found a boundary in the kiosk's audio.
    Vad(VadEvent),
    /// The timer armed by [`Action::ArmTimer`] fired.
    Timer,
    /// The audio started by the oldest pending [`Action::Play`] has been fully sent.
    AudioFinished,
    /// The call is hung up: responses still running end `cancelled`/`client_cancelled` with
    /// their usage (billed as generated), sent before the connection closes.
    HangUp,
}

/// What the call runtime must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this server event.
    Send(Value),
    /// Send this text verbatim (the malformed-events fault).
    SendRaw(String),
    /// Speak this response's audio after any audio already playing; report
    /// [`Input::AudioFinished`].
    Play {
        /// The response the audio belongs to.
        response_id: String,
        /// What to say.
        audio: AudioSpec,
    },
    /// Stop and forget all queued audio (no `AudioFinished` follows for it).
    StopAudio,
    /// The member's speech interrupted the audio: stop and forget it at once, as
    /// [`Action::StopAudio`], and record a barge-in.
    BargeIn,
    /// Deliver [`Input::Timer`] after this delay (replaces an armed timer).
    ArmTimer(Duration),
    /// Stop every packet of this call at once (the drop-mid-call fault).
    Drop,
    /// Drop every packet both ways for this long, then go on (the network-outage fault).
    PauseTraffic(Duration),
}

/// Faults that change the conversation itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScriptFaults {
    /// Send a non-JSON message and an unknown event type after `session.created` and before each
    /// `response.created`.
    pub malformed: bool,
    /// Drop the call after this many member turns have been fully spoken (1-based).
    pub drop_after_turn: Option<usize>,
    /// After this many turns, pause all traffic for this long; the next turn waits it out.
    pub pause_after_turn: Option<(usize, Duration)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Turn,
    Other,
}

/// A response whose audio is queued or playing. Its closing events (`…done`, `response.done`)
/// wait for the audio, as a server pacing generation with playout sends them: so a barge-in
/// can still end it `cancelled`.
#[derive(Debug)]
struct Playing {
    response_id: String,
    kind: Kind,
    /// The closing events, `response.done` last; empty once sent.
    tail: Vec<Value>,
}

/// One call's conversation.
#[derive(Debug)]
pub struct Script {
    scenario: Arc<Scenario>,
    faults: ScriptFaults,
    seq: u64,
    session: Value,
    opened: bool,
    next_turn: usize,
    turns_spoken: usize,
    user_item: Option<String>,
    last_item: Option<String>,
    playing: VecDeque<Playing>,
    pending_call: Option<String>,
    goodbye_due: bool,
    greeted: bool,
}

/// Recursively overlays `patch` onto `base` (objects merge, everything else replaces).
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn error_event(
    event_id: String,
    code: &str,
    message: &str,
    param: Option<&str>,
    client: &Value,
) -> Value {
    json!({
        "type": "error",
        "event_id": event_id,
        "error": {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": param,
            "event_id": client.get("event_id").cloned().unwrap_or(Value::Null),
        }
    })
}

impl Script {
    /// A new call; `session_id` and `now_unix` fill `session.created`.
    pub fn new(
        scenario: Arc<Scenario>,
        faults: ScriptFaults,
        session_id: &str,
        now_unix: u64,
    ) -> Self {
        let session = json!({
            "type": "realtime",
            "object": "realtime.session",
            "id": session_id,
            "model": scenario.model,
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": null,
            "truncation": "auto",
            "prompt": null,
            "expires_at": now_unix + 3600,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": null,
                    "noise_reduction": null,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": scenario.vad.prefix_padding_ms,
                        "silence_duration_ms": scenario.vad.silence_ms,
                        "create_response": true,
                        "interrupt_response": true,
                        "idle_timeout_ms": null
                    }
                },
                "output": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "voice": scenario.voice,
                    "speed": 1.0
                }
            },
            "include": null
        });
        Self {
            scenario,
            faults,
            seq: 0,
            session,
            opened: false,
            next_turn: 0,
            turns_spoken: 0,
            user_item: None,
            last_item: None,
            playing: VecDeque::new(),
            pending_call: None,
            goodbye_due: false,
            greeted: false,
        }
    }

    /// Member turns whose reply has been fully spoken.
    pub fn turns_spoken(&self) -> usize {
        self.turns_spoken
    }

    fn id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}_EMU{:06}", self.seq)
    }

    fn event(&mut self, mut body: Value) -> Action {
        let id = self.id("event");
        if let Value::Object(m) = &mut body {
            m.insert("event_id".into(), Value::String(id));
        }
        Action::Send(body)
    }

    fn malformed(&mut self, out: &mut Vec<Action>) {
        if self.faults.malformed {
            out.push(Action::SendRaw(
                "{\"type\": \"response.created\", \"respo".into(),
            ));
            let ev =
                self.event(json!({"type": "emulator.unknown_event", "detail": "fault injection"}));
            out.push(ev);
        }
    }

    /// Feeds one input and returns the actions to perform, in order.
    pub fn step(&mut self, input: Input<'_>) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Open => self.on_open(&mut out),
            Input::Client(text) => self.on_client(text, &mut out),
            Input::Vad(VadEvent::SpeechStarted { audio_start_ms }) => {
                if self.scenario.trigger == Trigger::Vad {
                    if self.playing.is_empty() || !self.can_start_turn() {
                        self.speech_started(audio_start_ms, &mut out);
                    } else {
                        self.barge_in(audio_start_ms, &mut out);
                    }
                }
            }
            Input::Vad(VadEvent::SpeechStopped { audio_end_ms }) => {
                if self.scenario.trigger == Trigger::Vad && self.user_item.is_some() {
                    self.speech_stopped(audio_end_ms, &mut out);
                }
            }
            Input::Timer => {
                if self.scenario.trigger == Trigger::Timer {
                    self.speech_started(0, &mut out);
                    self.speech_stopped(0, &mut out);
                }
            }
            Input::AudioFinished => self.on_audio_finished(&mut out),
            Input::HangUp => {
                self.cancel_all("client_cancelled", &mut out);
                self.playing.clear();
            }
        }
        out
    }

    fn on_open(&mut self, out: &mut Vec<Action>) {
        if self.opened {
            return;
        }
        self.opened = true;
        let session = self.session.clone();
        let ev = self.event(json!({"type": "session.created", "session": session}));
        out.push(ev);
        self.malformed(out);
        if self.scenario.trigger == Trigger::Timer {
            out.push(Action::ArmTimer(Duration::from_millis(u64::from(
                self.scenario.turns[0].after_ms,
            ))));
        }
    }

    fn on_client(&mut self, text: &str, out: &mut Vec<Action>) {
        let msg: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                let id = self.id("event");
                out.push(Action::Send(error_event(
                    id,
                    "invalid_event",
                    "The client event is not a JSON object.",
                    None,
                    &Value::Null,
                )));
                return;
            }
        };
        let kind = msg.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "session.update" => self.session_update(&msg, out),
            "conversation.item.create" => self.item_create(&msg, out),
            "response.create" => self.response_create(&msg, out),
            "response.cancel" => {
                if !self.cancel_all("client_cancelled", out) {
                    let id = self.id("event");
                    out.push(Action::Send(error_event(
                        id,
                        "response_cancel_not_active",
                        "Cancellation failed: no active response found",
                        None,
                        &msg,
                    )));
                }
            }
            "output_audio_buffer.clear" => {
                let response_id = self.playing.front().map(|p| p.response_id.clone());
                self.cancel_all("client_cancelled", out);
                self.playing.clear();
                out.push(Action::StopAudio);
                let ev = self.event(
                    json!({"type": "output_audio_buffer.cleared", "response_id": response_id}),
                );
                out.push(ev);
            }
            "input_audio_buffer.clear" => {
                let ev = self.event(json!({"type": "input_audio_buffer.cleared"}));
                out.push(ev);
            }
            "input_audio_buffer.commit"
            | "conversation.item.truncate"
            | "conversation.item.delete"
            | "conversation.item.retrieve" => {}
            other => {
                let id = self.id("event");
                let message = format!("Invalid value: '{other}'. Unknown client event type.");
                out.push(Action::Send(error_event(
                    id,
                    "invalid_event",
                    &message,
                    Some("type"),
                    &msg,
                )));
            }
        }
    }

    fn session_update(&mut self, msg: &Value, out: &mut Vec<Action>) {
        let Some(patch) = msg.get("session").filter(|s| s.is_object()) else {
            let id = self.id("event");
            out.push(Action::Send(error_event(
                id,
                "missing_required_parameter",
                "Missing required parameter: 'session'.",
                Some("session"),
                msg,
            )));
            return;
        };
        if patch.get("type").and_then(Value::as_str) != Some("realtime") {
            let id = self.id("event");
            out.push(Action::Send(error_event(
                id,
                "invalid_value",
                "Invalid value for 'session.type': expected 'realtime'.",
                Some("session.type"),
                msg,
            )));
            return;
        }
        let mut patch = patch.clone();
        if let Value::Object(p) = &mut patch {
            // The model cannot change mid-session.
            p.remove("model");
        }
        merge(&mut self.session, &patch);
        let session = self.session.clone();
        let ev = self.event(json!({"type": "session.updated", "session": session}));
        out.push(ev);
    }

    fn item_create(&mut self, msg: &Value, out: &mut Vec<Action>) {
        let Some(item) = msg.get("item").filter(|i| i.is_object()) else {
            let id = self.id("event");
            out.push(Action::Send(error_event(
                id,
                "missing_required_parameter",
                "Missing required parameter: 'item'.",
                Some("item"),
                msg,
            )));
            return;
        };
        let mut item = item.clone();
        if item.get("type").and_then(Value::as_str) == Some("function_call_output")
            && item.get("call_id").and_then(Value::as_str) == self.pending_call.as_deref()
        {
            self.pending_call = None;
            self.goodbye_due = true;
        }
        let item_id = self.id("item");
        if let Value::Object(m) = &mut item {
            m.entry("id").or_insert(Value::String(item_id.clone()));
            m.insert("object".into(), json!("realtime.item"));
            m.insert("status".into(), json!("completed"));
        }
        let previous = self.last_item.replace(item_id);
        let added = self.event(
            json!({"type": "conversation.item.added", "previous_item_id": previous, "item": item}),
        );
        let done = self.event(
            json!({"type": "conversation.item.done", "previous_item_id": previous, "item": item}),
        );
        out.extend([added, done]);
    }

    fn response_create(&mut self, msg: &Value, out: &mut Vec<Action>) {
        // One-off instructions after the greeting: the kiosk asks for a goodbye itself (time
        // or spending limit reached).
        let asked_goodbye = self.greeted && msg["response"]["instructions"].is_string();
        let reply = if self.goodbye_due || asked_goodbye {
            self.goodbye_due = false;
            self.scenario.goodbye.clone()
        } else if !self.greeted && self.next_turn == 0 {
            self.greeted = true;
            self.scenario.greeting.clone()
        } else {
            None
        };
        match reply {
            Some(r) => {
                let audio = self.scenario.resolve(&r.audio);
                self.respond(&r.transcript, audio, &r.usage, None, Kind::Other, out);
            }
            None => {
                let id = self.id("event");
                out.push(Action::Send(error_event(
                    id,
                    "emulator_unscripted",
                    "The emulator's scenario has no reply for this response.create.",
                    None,
                    msg,
                )));
            }
        }
    }

    /// A member turn can start: none is in progress and the scenario has one left.
    fn can_start_turn(&self) -> bool {
        self.user_item.is_none() && self.next_turn < self.scenario.turns.len()
    }

    fn speech_started(&mut self, audio_start_ms: u64, out: &mut Vec<Action>) {
        if !self.can_start_turn() {
            return;
        }
        let item_id = self.id("item");
        self.user_item = Some(item_id.clone());
        let ev = self.event(json!({
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": audio_start_ms,
            "item_id": item_id
        }));
        out.push(ev);
    }

    fn speech_stopped(&mut self, audio_end_ms: u64, out: &mut Vec<Action>) {
        let Some(item_id) = self.user_item.take() else {
            return;
        };
        let turn = self.scenario.turns[self.next_turn].clone();
        self.next_turn += 1;
        let previous = self.last_item.replace(item_id.clone());
        let user_item = json!({
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": null}]
        });
        let mut evs = vec![
            json!({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end_ms, "item_id": item_id}),
            json!({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id}),
            json!({"type": "conversation.item.added", "previous_item_id": previous, "item": user_item}),
            json!({"type": "conversation.item.done", "previous_item_id": previous, "item": user_item}),
            json!({
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": item_id, "content_index": 0, "delta": turn.user_transcript
            }),
        ];
        let mut completed = json!({
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id, "content_index": 0, "transcript": turn.user_transcript
        });
        if let Some(u) = turn
            .transcription_usage
            .as_ref()
            .map(TranscriptionUsage::to_json)
        {
            completed["usage"] = u;
        }
        evs.push(completed);
        for e in evs {
            let a = self.event(e);
            out.push(a);
        }
        let audio = self.scenario.resolve(&turn.reply_audio);
        self.respond(
            &turn.reply_transcript,
            audio,
            &turn.usage,
            turn.end_session.as_deref(),
            Kind::Turn,
            out,
        );
    }

    fn respond(
        &mut self,
        transcript: &str,
        audio: AudioSpec,
        usage: &Usage,
        end_session: Option<&str>,
        kind: Kind,
        out: &mut Vec<Action>,
    ) {
        self.malformed(out);
        let response_id = self.id("resp");
        let item_id = self.id("item");
        let voice = self.session["audio"]["output"]["voice"].clone();
        let base = json!({
            "object": "realtime.response",
            "id": response_id,
            "conversation_id": "conv_EMU",
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": voice}},
            "metadata": null
        });
        let mut created = base.clone();
        merge(
            &mut created,
            &json!({"status": "in_progress", "status_details": null, "output": [], "usage": null}),
        );
        let message = |status: &str, content: Value| {
            json!({"id": item_id, "object": "realtime.item", "type": "message", "status": status,
                   "role": "assistant", "content": content})
        };
        let done_content = json!([{"type": "output_audio", "transcript": transcript}]);
        let previous = self.last_item.replace(item_id.clone());
        let mut evs = vec![
            json!({"type": "response.created", "response": created}),
            json!({"type": "rate_limits.updated", "rate_limits": [
                {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 60.0},
                {"name": "tokens", "limit": 100000, "remaining": 99000, "reset_seconds": 60.0}
            ]}),
            json!({"type": "response.output_item.added", "response_id": response_id, "output_index": 0,
                   "item": message("in_progress", json!([]))}),
            json!({"type": "conversation.item.added", "previous_item_id": previous,
                   "item": message("in_progress", json!([]))}),
            json!({"type": "response.content_part.added", "response_id": response_id, "item_id": item_id,
                   "output_index": 0, "content_index": 0, "part": {"type": "output_audio", "transcript": ""}}),
            json!({"type": "output_audio_buffer.started", "response_id": response_id}),
        ];
        for e in evs.drain(..) {
            let a = self.event(e);
            out.push(a);
        }
        out.push(Action::Play {
            response_id: response_id.clone(),
            audio,
        });
        for word in transcript.split_inclusive(' ') {
            let delta = json!({"type": "response.output_audio_transcript.delta", "response_id": response_id,
                               "item_id": item_id, "output_index": 0, "content_index": 0, "delta": word});
            let a = self.event(delta);
            out.push(a);
        }
        evs.extend([
            json!({"type": "response.output_audio_transcript.done", "response_id": response_id,
                   "item_id": item_id, "output_index": 0, "content_index": 0, "transcript": transcript}),
            json!({"type": "response.content_part.done", "response_id": response_id, "item_id": item_id,
                   "output_index": 0, "content_index": 0,
                   "part": {"type": "output_audio", "transcript": transcript}}),
            json!({"type": "response.output_item.done", "response_id": response_id, "output_index": 0,
                   "item": message("completed", done_content.clone())}),
            json!({"type": "conversation.item.done", "previous_item_id": previous,
                   "item": message("completed", done_content.clone())}),
        ]);
        let mut output = vec![message("completed", done_content)];
        if let Some(reason) = end_session {
            let call_id = self.id("call");
            let fc_id = self.id("item");
            let arguments = json!({"reason": reason}).to_string();
            let fc = |status: &str, args: &str| {
                json!({"id": fc_id, "object": "realtime.item", "type": "function_call", "status": status,
                       "name": "end_session", "call_id": call_id, "arguments": args})
            };
            let prev_fc = self.last_item.replace(fc_id.clone());
            evs.extend([
                json!({"type": "response.output_item.added", "response_id": response_id, "output_index": 1,
                       "item": fc("in_progress", "")}),
                json!({"type": "conversation.item.added", "previous_item_id": prev_fc, "item": fc("in_progress", "")}),
                json!({"type": "response.function_call_arguments.delta", "response_id": response_id,
                       "item_id": fc_id, "output_index": 1, "call_id": call_id, "delta": arguments}),
                json!({"type": "response.function_call_arguments.done", "response_id": response_id,
                       "item_id": fc_id, "output_index": 1, "call_id": call_id, "name": "end_session",
                       "arguments": arguments}),
                json!({"type": "response.output_item.done", "response_id": response_id, "output_index": 1,
                       "item": fc("completed", &arguments)}),
                json!({"type": "conversation.item.done", "previous_item_id": prev_fc, "item": fc("completed", &arguments)}),
            ]);
            output.push(fc("completed", &arguments));
            self.pending_call = Some(call_id);
        }
        let mut done = base;
        merge(
            &mut done,
            &json!({"status": "completed", "status_details": null, "usage": usage.to_json()}),
        );
        done["output"] = Value::Array(output);
        evs.push(json!({"type": "response.done", "response": done}));
        self.playing.push_back(Playing {
            response_id,
            kind,
            tail: evs,
        });
    }

    /// Ends every response still open as `cancelled` for `reason`, with its usage (output is
    /// billed as generated, reference §8); its audio is left to the caller. False when none was.
    fn cancel_all(&mut self, reason: &str, out: &mut Vec<Action>) -> bool {
        let mut any = false;
        for i in 0..self.playing.len() {
            let tail = std::mem::take(&mut self.playing[i].tail);
            let Some(mut done) = tail.into_iter().last() else {
                continue;
            };
            any = true;
            let response = &mut done["response"];
            response["status"] = json!("cancelled");
            response["status_details"] = json!({"type": "cancelled", "reason": reason});
            if let Some(items) = response["output"].as_array_mut() {
                for item in items {
                    item["status"] = json!("incomplete");
                }
            }
            if self.playing[i].kind == Kind::Turn {
                // An interrupted end_session call is not made.
                self.pending_call = None;
            }
            let a = self.event(done);
            out.push(a);
        }
        any
    }

    /// The member spoke over JARVIS (server_vad with `interrupt_response`): speech_started, the
    /// audio stops at once, open responses end `cancelled`/`turn_detected`, the buffer is
    /// reported cleared; the turn then goes on as usual.
    fn barge_in(&mut self, audio_start_ms: u64, out: &mut Vec<Action>) {
        self.speech_started(audio_start_ms, out);
        out.push(Action::BargeIn);
        self.cancel_all("turn_detected", out);
        for p in std::mem::take(&mut self.playing) {
            let ev = self.event(
                json!({"type": "output_audio_buffer.cleared", "response_id": p.response_id}),
            );
            out.push(ev);
        }
    }

    fn on_audio_finished(&mut self, out: &mut Vec<Action>) {
        let Some(Playing {
            response_id,
            kind,
            tail,
        }) = self.playing.pop_front()
        else {
            return;
        };
        for e in tail {
            let a = self.event(e);
            out.push(a);
        }
        let ev =
            self.event(json!({"type": "output_audio_buffer.stopped", "response_id": response_id}));
        out.push(ev);
        if kind != Kind::Turn {
            return;
        }
        self.turns_spoken += 1;
        if self.faults.drop_after_turn == Some(self.turns_spoken) {
            out.push(Action::Drop);
            return;
        }
        let mut pause = Duration::ZERO;
        if let Some((turn, span)) = self.faults.pause_after_turn
            && turn == self.turns_spoken
        {
            out.push(Action::PauseTraffic(span));
            pause = span;
        }
        if self.scenario.trigger == Trigger::Timer && self.next_turn < self.scenario.turns.len() {
            let ms = self.scenario.turns[self.next_turn].after_ms;
            out.push(Action::ArmTimer(
                pause + Duration::from_millis(u64::from(ms)),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
