//! GPT-Live client events the kiosk sends on `oai-events` (reference §5.1). Never
//! `session.start` or `session.input_audio.append`: those are for WebSockets only.

use serde::Serialize;

/// A client event for a GPT-Live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum LiveClientEvent {
    /// Hands a function's result to the delegation model (no acknowledgement comes back).
    #[serde(rename = "response.item.create")]
    ItemCreate { event_id: String, item: LiveItem },
    /// Continues the delegated response once every call's result is in.
    #[serde(rename = "response.create")]
    ResponseCreate { event_id: String },
    /// Ends the session gracefully: the server drains, then sends `session.closed` with the
    /// final usage.
    #[serde(rename = "session.close")]
    Close { event_id: String },
    /// Adds to the voice's instructions (they are immutable otherwise), such as "say goodbye
    /// now". `delegation_id` is required and must be null under Responses delegation.
    #[serde(rename = "session.instructions.append")]
    InstructionsAppend {
        event_id: String,
        content: String,
        delegation_id: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum LiveItem {
    #[serde(rename = "function_call_output")]
    FunctionCallOutput { call_id: String, output: String },
}

impl LiveClientEvent {
    /// The event as the JSON text message to send.
    pub fn to_json(&self) -> String {
        // Plain strings and tags only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
