//! Server events reduced to the signals the session lifecycle core consumes, with usage priced.
//!
//! Pure: the [`Translator`] holds only the price table, the session's models and the
//! `end_session` calls already reported (so the call surfaced by
//! `response.function_call_arguments.done`, `response.output_item.done` and `response.done`
//! is signalled once).

use std::sync::Arc;

use super::server::{ErrorDetail, Item, ResponseStatus, ServerEvent};
use jarvis_core::events::CostBreakdown;
use jarvis_core::metering::{MeteringError, Pricing, ResponseCost};

/// The function tool the model calls when the member says goodbye (reference §7).
pub const END_SESSION_TOOL: &str = "end_session";

/// What the lifecycle core needs to know from the Realtime session.
#[derive(Debug, Clone, PartialEq)]
pub enum RealtimeSignal {
    /// `session.created`: the server's session id, model and hard deadline (Unix seconds).
    SessionCreated {
        session_id: Option<String>,
        model: Option<String>,
        expires_at: Option<i64>,
    },
    /// `session.updated`: the kiosk's `session.update` was applied (greet now).
    SessionUpdated,
    /// The member started speaking (resets idle; barge-in while JARVIS talks).
    SpeechStarted { item_id: String },
    /// The member stopped speaking.
    SpeechStopped { item_id: String },
    /// What the member said (for goodbye-phrase matching; log only if transcripts are on).
    UserTranscript { item_id: String, transcript: String },
    /// What JARVIS said in one audio part.
    AssistantTranscript {
        response_id: String,
        transcript: String,
    },
    /// A response finished (`response.done`, any status) with its priced usage: record a
    /// `response_usage` event with `raw_usage`, add `cost` to the session and budgets.
    ResponseUsage {
        response_id: String,
        status: ResponseStatus,
        model: String,
        cost: ResponseCost,
        raw_usage: serde_json::Value,
    },
    /// Input transcription usage, priced into `transcription_nusd`.
    TranscriptionUsage {
        item_id: String,
        model: String,
        cost: CostBreakdown,
        raw_usage: serde_json::Value,
    },
    /// Usage that could not be priced (e.g. token usage from a per-minute model, or a
    /// `response.done` without `usage`): record the raw usage and raise an alert; `error`
    /// names the config key to fix. For `source: Response` the response is over.
    UnpricedUsage {
        source: UsageSource,
        /// The response id or the transcribed item id.
        id: String,
        model: String,
        error: MeteringError,
        raw_usage: serde_json::Value,
    },
    /// The model called `end_session`. `reason` is read defensively from the arguments
    /// (absent when they are not a JSON object with a string `reason`).
    EndSession {
        call_id: String,
        reason: Option<String>,
    },
    /// JARVIS started speaking.
    OutputAudioStarted { response_id: String },
    /// JARVIS finished speaking (safe to tear down after a goodbye).
    OutputAudioStopped { response_id: String },
    /// JARVIS's audio was cut off.
    OutputAudioCleared { response_id: String },
    /// An `error` event; `fatal` ones end the session (see [`ErrorDetail::is_fatal`]).
    Error {
        code: Option<String>,
        message: String,
        fatal: bool,
    },
}

/// What an [`RealtimeSignal::UnpricedUsage`] was billed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageSource {
    /// A `response.done` (the Realtime model).
    Response,
    /// An input transcription.
    Transcription,
}

/// Turns server events into [`RealtimeSignal`]s for one session.
#[derive(Debug, Clone)]
pub struct Translator {
    pricing: Arc<Pricing>,
    model: String,
    transcription_model: String,
    ended_calls: Vec<String>,
    /// Responses created and not yet done: their usage is still to come (and billed).
    in_flight: Vec<String>,
}

impl Translator {
    /// Fails at session start, loudly, if either model has no price: never a silent $0.
    pub fn new(
        pricing: Arc<Pricing>,
        model: &str,
        transcription_model: &str,
    ) -> Result<Translator, MeteringError> {
        pricing.require_realtime(model)?;
        pricing.require_transcription(transcription_model)?;
        Ok(Translator {
            pricing,
            model: model.to_owned(),
            transcription_model: transcription_model.to_owned(),
            ended_calls: Vec::new(),
            in_flight: Vec::new(),
        })
    }

    /// Responses the server started and has not finished: after a hang-up, their
    /// `response.done` (billed by OpenAI) is still worth waiting for.
    pub fn responses_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The signals one event produces, in the order to apply them (usage before end_session).
    pub fn translate(&mut self, event: &ServerEvent) -> Vec<RealtimeSignal> {
        let mut out = Vec::new();
        match event {
            ServerEvent::SessionCreated { session, .. } => {
                out.push(RealtimeSignal::SessionCreated {
                    session_id: session.id.clone(),
                    model: session.model.clone(),
                    expires_at: session.expires_at,
                })
            }
            ServerEvent::SessionUpdated { .. } => out.push(RealtimeSignal::SessionUpdated),
            ServerEvent::SpeechStarted { item_id, .. } => out.push(RealtimeSignal::SpeechStarted {
                item_id: item_id.clone(),
            }),
            ServerEvent::SpeechStopped { item_id, .. } => out.push(RealtimeSignal::SpeechStopped {
                item_id: item_id.clone(),
            }),
            ServerEvent::InputTranscriptionCompleted {
                item_id,
                transcript,
                usage,
                ..
            } => {
                out.push(RealtimeSignal::UserTranscript {
                    item_id: item_id.clone(),
                    transcript: transcript.clone(),
                });
                if let Some(usage) = usage {
                    let model = self.transcription_model.clone();
                    let raw_usage = usage.raw.clone();
                    out.push(
                        match self.pricing.price_transcription(&model, &usage.parsed) {
                            Ok(cost) => RealtimeSignal::TranscriptionUsage {
                                item_id: item_id.clone(),
                                model,
                                cost,
                                raw_usage,
                            },
                            Err(error) => RealtimeSignal::UnpricedUsage {
                                source: UsageSource::Transcription,
                                id: item_id.clone(),
                                model,
                                error,
                                raw_usage,
                            },
                        },
                    );
                }
            }
            ServerEvent::OutputAudioTranscriptDone {
                response_id,
                transcript,
                ..
            } => out.push(RealtimeSignal::AssistantTranscript {
                response_id: response_id.clone(),
                transcript: transcript.clone(),
            }),
            ServerEvent::FunctionCallArgumentsDone {
                call_id,
                name: Some(name),
                arguments,
                ..
            } if name == END_SESSION_TOOL => self.end_session(call_id, arguments, &mut out),
            ServerEvent::OutputItemDone { item, .. } => self.end_session_item(item, &mut out),
            ServerEvent::ResponseCreated { response, .. } => {
                if !self.in_flight.contains(&response.id) {
                    self.in_flight.push(response.id.clone());
                }
            }
            ServerEvent::ResponseDone { response, .. } => {
                self.in_flight.retain(|id| *id != response.id);
                if let Some(usage) = &response.usage {
                    let model = self.model.clone();
                    let raw_usage = usage.raw.clone();
                    out.push(
                        match self
                            .pricing
                            .price_response(&model, &usage.parsed.token_counts())
                        {
                            Ok(cost) => RealtimeSignal::ResponseUsage {
                                response_id: response.id.clone(),
                                status: response.status,
                                model,
                                cost,
                                raw_usage,
                            },
                            Err(error) => RealtimeSignal::UnpricedUsage {
                                source: UsageSource::Response,
                                id: response.id.clone(),
                                model,
                                error,
                                raw_usage,
                            },
                        },
                    );
                } else {
                    out.push(RealtimeSignal::UnpricedUsage {
                        source: UsageSource::Response,
                        id: response.id.clone(),
                        model: self.model.clone(),
                        error: MeteringError::NoUsage,
                        raw_usage: serde_json::Value::Null,
                    });
                }
                for item in &response.output {
                    self.end_session_item(item, &mut out);
                }
            }
            ServerEvent::OutputAudioStarted { response_id, .. } => {
                out.push(RealtimeSignal::OutputAudioStarted {
                    response_id: response_id.clone(),
                })
            }
            ServerEvent::OutputAudioStopped { response_id, .. } => {
                out.push(RealtimeSignal::OutputAudioStopped {
                    response_id: response_id.clone(),
                })
            }
            ServerEvent::OutputAudioCleared { response_id, .. } => {
                out.push(RealtimeSignal::OutputAudioCleared {
                    response_id: response_id.clone(),
                })
            }
            ServerEvent::Error { error, .. } => out.push(error_signal(error)),
            ServerEvent::FunctionCallArgumentsDone { .. }
            | ServerEvent::OutputAudioTranscriptDelta { .. }
            | ServerEvent::RateLimitsUpdated { .. } => {}
        }
        out
    }

    fn end_session_item(&mut self, item: &Item, out: &mut Vec<RealtimeSignal>) {
        if item.kind == "function_call"
            && item.name.as_deref() == Some(END_SESSION_TOOL)
            && let Some(call_id) = &item.call_id
        {
            let arguments = item.arguments.as_deref().unwrap_or_default();
            self.end_session(call_id, arguments, out);
        }
    }

    fn end_session(&mut self, call_id: &str, arguments: &str, out: &mut Vec<RealtimeSignal>) {
        if self.ended_calls.iter().any(|c| c == call_id) {
            return;
        }
        self.ended_calls.push(call_id.to_owned());
        out.push(RealtimeSignal::EndSession {
            call_id: call_id.to_owned(),
            reason: parse_reason(arguments),
        });
    }
}

/// `reason` from `end_session` arguments, if they are a JSON object with a string `reason`.
fn parse_reason(arguments: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(arguments).ok()?;
    let reason = value.get("reason")?.as_str()?.trim();
    (!reason.is_empty()).then(|| reason.chars().take(200).collect())
}

fn error_signal(e: &ErrorDetail) -> RealtimeSignal {
    RealtimeSignal::Error {
        code: e.code.clone(),
        message: e.message.clone(),
        fatal: e.is_fatal(),
    }
}
