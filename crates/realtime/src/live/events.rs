//! GPT-Live server events the kiosk acts on (reference §5.2, §7.1, §9.1).

use serde::{Deserialize, Serialize};

/// A server event on a GPT-Live session's `oai-events` channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum LiveServerEvent {
    /// The session runs: nothing may be sent before it (reference §3.3).
    #[serde(rename = "session.started")]
    SessionStarted { session: LiveSession },
    /// What the member said, a fragment at a time (no `done` event exists).
    #[serde(rename = "session.input_transcript.delta")]
    InputTranscriptDelta {
        delta: String,
        #[serde(default)]
        start_ms: u64,
        #[serde(default)]
        end_ms: u64,
    },
    /// What JARVIS said, a fragment at a time.
    #[serde(rename = "session.output_transcript.delta")]
    OutputTranscriptDelta {
        delta: String,
        #[serde(default)]
        start_ms: u64,
        #[serde(default)]
        end_ms: u64,
    },
    /// The voice handed work to the delegation model (metadata only, never the task).
    #[serde(rename = "session.delegation.created")]
    DelegationCreated {
        #[serde(default)]
        offset_ms: u64,
        delegation: Delegation,
    },
    /// One event of the delegation model's Responses stream, wrapped.
    #[serde(rename = "response.event")]
    ResponseEvent {
        #[serde(default)]
        delegation_id: Option<String>,
        event: DelegationEvent,
    },
    /// Cumulative billed seconds so far (about once a minute): replaces, never adds.
    #[serde(rename = "session.usage.updated")]
    UsageUpdated { usage: LiveUsage },
    /// The session is over, with the final billed seconds.
    #[serde(rename = "session.closed")]
    SessionClosed { reason: String, usage: LiveUsage },
    #[serde(rename = "error")]
    Error { error: LiveError },
    #[serde(rename = "info")]
    Info {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    },
}

impl LiveServerEvent {
    /// Every `type` this enum reads.
    pub const TYPES: [&'static str; 9] = [
        "session.started",
        "session.input_transcript.delta",
        "session.output_transcript.delta",
        "session.delegation.created",
        "response.event",
        "session.usage.updated",
        "session.closed",
        "error",
        "info",
    ];
}

/// The session resource of `session.started`: what the kiosk records and enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSession {
    pub id: String,
    pub model: String,
    /// Hard end, Unix seconds.
    pub expires_at: u64,
}

/// Billed voice seconds, cumulative for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveUsage {
    pub seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    pub id: String,
    /// `responses` or `client`.
    pub target: String,
    #[serde(default)]
    pub response_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveError {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub client_event_id: Option<String>,
}

/// The nested Responses events the kiosk acts on; every other nested type is `Other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DelegationEvent {
    /// A finished output item; function calls are read here, never from `response.completed`,
    /// whose output is empty (reference §7.1).
    #[serde(rename = "response.output_item.done")]
    OutputItemDone { item: serde_json::Value },
    /// The delegated response finished, with its token usage (priced as the delegation
    /// model's Responses tokens).
    #[serde(rename = "response.completed")]
    Completed { response: CompletedResponse },
    #[serde(rename = "response.failed")]
    Failed {},
    #[serde(rename = "response.incomplete")]
    Incomplete {},
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletedResponse {
    #[serde(default)]
    pub id: Option<String>,
    pub usage: ResponsesUsage,
}

/// Token usage of one Responses response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResponsesUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub input_tokens_details: InputDetails,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InputDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

/// A function call the delegation model made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall {
    pub call_id: String,
    pub name: String,
    /// JSON text, as the model wrote it.
    pub arguments: String,
}

impl DelegationEvent {
    /// The function call this event finishes, if it is one (reasoning and message items are
    /// not).
    pub fn function_call(&self) -> Option<FunctionCall> {
        let DelegationEvent::OutputItemDone { item } = self else {
            return None;
        };
        if item.get("type")?.as_str()? != "function_call" {
            return None;
        }
        let text = |k: &str| item.get(k)?.as_str().map(str::to_owned);
        Some(FunctionCall {
            call_id: text("call_id")?,
            name: text("name")?,
            arguments: text("arguments").unwrap_or_default(),
        })
    }
}
