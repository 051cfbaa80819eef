//! Server events the kiosk acts on (reference §6, §7, §11), read leniently: fields the kiosk does
//! not use are ignored, and missing non-essential fields take defaults.

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::session::Session;
use jarvis_core::events::TokenCounts;
use jarvis_core::metering::TranscriptionUsage;

/// A server event on `oai-events` that the kiosk acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerEvent {
    /// The first event: the session's id, model and hard deadline.
    #[serde(rename = "session.created")]
    SessionCreated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        session: Box<Session>,
    },
    /// The full effective config after a `session.update`.
    #[serde(rename = "session.updated")]
    SessionUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        session: Box<Session>,
    },
    /// VAD heard the member start speaking (barge-in if JARVIS is talking).
    #[serde(rename = "input_audio_buffer.speech_started")]
    SpeechStarted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default)]
        audio_start_ms: u64,
        #[serde(default)]
        item_id: String,
    },
    #[serde(rename = "input_audio_buffer.speech_stopped")]
    SpeechStopped {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default)]
        audio_end_ms: u64,
        #[serde(default)]
        item_id: String,
    },
    /// What the member said, and what transcribing it cost (billed apart from the model).
    #[serde(rename = "conversation.item.input_audio_transcription.completed")]
    InputTranscriptionCompleted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        item_id: String,
        #[serde(default)]
        content_index: u32,
        transcript: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<WithRaw<TranscriptionUsage>>,
    },
    #[serde(rename = "response.created")]
    ResponseCreated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response: Box<Response>,
    },
    #[serde(rename = "response.output_audio_transcript.delta")]
    OutputAudioTranscriptDelta {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default)]
        response_id: String,
        #[serde(default)]
        item_id: String,
        #[serde(default)]
        output_index: u32,
        #[serde(default)]
        content_index: u32,
        delta: String,
    },
    /// What JARVIS said in one audio part.
    #[serde(rename = "response.output_audio_transcript.done")]
    OutputAudioTranscriptDone {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default)]
        response_id: String,
        #[serde(default)]
        item_id: String,
        #[serde(default)]
        output_index: u32,
        #[serde(default)]
        content_index: u32,
        transcript: String,
    },
    /// A complete function call; `arguments` is a JSON *string* (parse it defensively).
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default)]
        response_id: String,
        #[serde(default)]
        item_id: String,
        #[serde(default)]
        output_index: u32,
        call_id: String,
        /// GA sends it; older servers did not (then read it from the output item).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default)]
        arguments: String,
    },
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default)]
        response_id: String,
        #[serde(default)]
        output_index: u32,
        item: Box<Item>,
    },
    /// Always sent once per response, whatever the outcome; carries the billed usage.
    #[serde(rename = "response.done")]
    ResponseDone {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        response: Box<Response>,
    },
    /// JARVIS started speaking (WebRTC).
    #[serde(rename = "output_audio_buffer.started")]
    OutputAudioStarted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default)]
        response_id: String,
    },
    /// JARVIS finished speaking: the buffer drained (comes after `response.done`).
    #[serde(rename = "output_audio_buffer.stopped")]
    OutputAudioStopped {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default)]
        response_id: String,
    },
    /// Playing audio was cut (barge-in or `output_audio_buffer.clear`).
    #[serde(rename = "output_audio_buffer.cleared")]
    OutputAudioCleared {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default)]
        response_id: String,
    },
    #[serde(rename = "rate_limits.updated")]
    RateLimitsUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default)]
        rate_limits: Vec<RateLimit>,
    },
    /// Mostly recoverable; see [`ErrorDetail::is_fatal`].
    #[serde(rename = "error")]
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        error: ErrorDetail,
    },
}

impl ServerEvent {
    /// Every `type` this enum decodes (kept in step with the variants by a test).
    pub const TYPES: [&'static str; 16] = [
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.done",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "rate_limits.updated",
        "error",
    ];

    /// The event's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerEvent::SessionCreated { .. } => "session.created",
            ServerEvent::SessionUpdated { .. } => "session.updated",
            ServerEvent::SpeechStarted { .. } => "input_audio_buffer.speech_started",
            ServerEvent::SpeechStopped { .. } => "input_audio_buffer.speech_stopped",
            ServerEvent::InputTranscriptionCompleted { .. } => {
                "conversation.item.input_audio_transcription.completed"
            }
            ServerEvent::ResponseCreated { .. } => "response.created",
            ServerEvent::OutputAudioTranscriptDelta { .. } => {
                "response.output_audio_transcript.delta"
            }
            ServerEvent::OutputAudioTranscriptDone { .. } => {
                "response.output_audio_transcript.done"
            }
            ServerEvent::FunctionCallArgumentsDone { .. } => {
                "response.function_call_arguments.done"
            }
            ServerEvent::OutputItemDone { .. } => "response.output_item.done",
            ServerEvent::ResponseDone { .. } => "response.done",
            ServerEvent::OutputAudioStarted { .. } => "output_audio_buffer.started",
            ServerEvent::OutputAudioStopped { .. } => "output_audio_buffer.stopped",
            ServerEvent::OutputAudioCleared { .. } => "output_audio_buffer.cleared",
            ServerEvent::RateLimitsUpdated { .. } => "rate_limits.updated",
            ServerEvent::Error { .. } => "error",
        }
    }
}

/// GA server events the kiosk receives but does not act on: decoded as
/// [`super::Decoded::Ignored`], not counted as unknown.
pub const IGNORED_TYPES: [&str; 22] = [
    "conversation.created",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.created",
    "conversation.item.truncated",
    "conversation.item.deleted",
    "conversation.item.retrieved",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.failed",
    "conversation.item.input_audio_transcription.segment",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "input_audio_buffer.timeout_triggered",
    "response.output_item.added",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.function_call_arguments.delta",
    "transcription_session.updated",
];

/// A decoded value together with the JSON it came from, so usage can be stored as received
/// and re-priced later. Serialises back to exactly the received JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct WithRaw<T> {
    pub parsed: T,
    pub raw: serde_json::Value,
}

impl<T: Serialize> WithRaw<T> {
    /// Wraps a value built locally (tests, the emulator): `raw` is its own JSON.
    pub fn new(parsed: T) -> Result<Self, serde_json::Error> {
        let raw = serde_json::to_value(&parsed)?;
        Ok(WithRaw { parsed, raw })
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for WithRaw<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        let parsed = T::deserialize(&raw).map_err(serde::de::Error::custom)?;
        Ok(WithRaw { parsed, raw })
    }
}

impl<T> Serialize for WithRaw<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

/// The `response` object of `response.created` / `response.done` (reference §6.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub status: ResponseStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    #[serde(default)]
    pub output: Vec<Item>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// `null` in `response.created`; the billed usage in `response.done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<WithRaw<Usage>>,
}

/// `response.status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    InProgress,
    Completed,
    /// Barge-in (`turn_detected`) or `response.cancel` (`client_cancelled`).
    Cancelled,
    Failed,
    /// `max_output_tokens` or `content_filter`.
    Incomplete,
    /// A status this build does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

/// `response.status_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusDetails {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

/// A conversation item as the server reports it (`message`, `function_call`, ...). One loose
/// struct, so new item kinds still decode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Function name, for `function_call` items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Function arguments as a JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ContentPart>,
}

/// A content part: `output_audio` (with `transcript`), `output_text` (with `text`), or the
/// beta spellings `audio` / `text`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `response.usage` (reference §6.1): cached tokens are a subset of input tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub input_token_details: InputTokenDetails,
    #[serde(default)]
    pub output_token_details: OutputTokenDetails,
}

/// `usage.input_token_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokenDetails {
    #[serde(default)]
    pub text_tokens: u64,
    #[serde(default)]
    pub audio_tokens: u64,
    /// Absent in beta usage: 0.
    #[serde(default)]
    pub image_tokens: u64,
    #[serde(default)]
    pub cached_tokens: u64,
    #[serde(default)]
    pub cached_tokens_details: CachedTokenDetails,
}

/// `usage.input_token_details.cached_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedTokenDetails {
    #[serde(default)]
    pub text_tokens: u64,
    #[serde(default)]
    pub audio_tokens: u64,
    #[serde(default)]
    pub image_tokens: u64,
}

/// `usage.output_token_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokenDetails {
    #[serde(default)]
    pub text_tokens: u64,
    #[serde(default)]
    pub audio_tokens: u64,
}

impl Usage {
    /// The counts metering prices.
    ///
    /// Input or output tokens the details do not attribute (a usage without details) are
    /// counted as audio, the dearest kind, so a usage is never priced as $0 by omission.
    /// Cached tokens without a per-kind split are priced at the full input rate.
    pub fn token_counts(&self) -> TokenCounts {
        let i = &self.input_token_details;
        let o = &self.output_token_details;
        let input_detailed = i.text_tokens + i.audio_tokens + i.image_tokens;
        let output_detailed = o.text_tokens + o.audio_tokens;
        TokenCounts {
            input_text: i.text_tokens,
            input_audio: i.audio_tokens + self.input_tokens.saturating_sub(input_detailed),
            input_image: i.image_tokens,
            cached_text: i.cached_tokens_details.text_tokens,
            cached_audio: i.cached_tokens_details.audio_tokens,
            cached_image: i.cached_tokens_details.image_tokens,
            output_text: o.text_tokens,
            output_audio: o.audio_tokens + self.output_tokens.saturating_sub(output_detailed),
        }
    }
}

/// One entry of `rate_limits.updated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// `requests` or `tokens`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub limit: u64,
    #[serde(default)]
    pub remaining: u64,
    #[serde(default)]
    pub reset_seconds: f64,
}

/// The `error` of an `error` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// The client `event_id` that caused it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

impl ErrorDetail {
    /// True for errors after which the session cannot continue: the 60-minute cap
    /// (`session_expired`) and a kiosk speaking the switched-off beta shape
    /// (`beta_api_shape_disabled`: firmware must migrate). Everything else is recoverable.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("session_expired" | "beta_api_shape_disabled")
        )
    }
}
