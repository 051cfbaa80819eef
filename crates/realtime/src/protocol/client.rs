//! Client events the kiosk sends on `oai-events` (reference §5). Each is one JSON text message.

use serde::{Deserialize, Serialize};

use super::session::{Modality, Session};

/// An event the kiosk sends. `event_id` is optional and echoed back in `error.event_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientEvent {
    /// Changes only the fields present in `session` (`session.type` must be `realtime`).
    #[serde(rename = "session.update")]
    SessionUpdate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        session: Box<Session>,
    },
    /// Adds an item, for the kiosk a tool result (`function_call_output`).
    #[serde(rename = "conversation.item.create")]
    ConversationItemCreate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_item_id: Option<String>,
        item: ClientItem,
    },
    /// Starts a response (the greeting, or the turn after a tool result).
    #[serde(rename = "response.create")]
    ResponseCreate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response: Option<ResponseParams>,
    },
    /// Cancels the active (or the named) response; answered by `response.done` `cancelled`.
    #[serde(rename = "response.cancel")]
    ResponseCancel {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response_id: Option<String>,
    },
    /// Cuts off audio already playing (WebRTC only); send `response.cancel` first.
    #[serde(rename = "output_audio_buffer.clear")]
    OutputAudioBufferClear {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
}

impl ClientEvent {
    /// `session.update` with the given session.
    pub fn session_update(session: Session) -> ClientEvent {
        ClientEvent::SessionUpdate {
            event_id: None,
            session: Box::new(session),
        }
    }

    /// The result of a function call, e.g. `{"ok":true}` for `end_session`.
    pub fn function_call_output(call_id: &str, output: &str) -> ClientEvent {
        ClientEvent::ConversationItemCreate {
            event_id: None,
            previous_item_id: None,
            item: ClientItem::FunctionCallOutput {
                call_id: call_id.to_owned(),
                output: output.to_owned(),
            },
        }
    }

    /// `response.create` with one-off instructions for this response only (e.g. the greeting).
    pub fn response_with_instructions(instructions: &str) -> ClientEvent {
        ClientEvent::ResponseCreate {
            event_id: None,
            response: Some(ResponseParams {
                instructions: Some(instructions.to_owned()),
                ..ResponseParams::default()
            }),
        }
    }

    /// `response.create` with the session's settings.
    pub fn response_create() -> ClientEvent {
        ClientEvent::ResponseCreate {
            event_id: None,
            response: None,
        }
    }

    /// `response.cancel` of whatever response is active.
    pub fn response_cancel() -> ClientEvent {
        ClientEvent::ResponseCancel {
            event_id: None,
            response_id: None,
        }
    }

    /// `output_audio_buffer.clear`.
    pub fn output_audio_clear() -> ClientEvent {
        ClientEvent::OutputAudioBufferClear { event_id: None }
    }

    /// The event's `type`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientEvent::SessionUpdate { .. } => "session.update",
            ClientEvent::ConversationItemCreate { .. } => "conversation.item.create",
            ClientEvent::ResponseCreate { .. } => "response.create",
            ClientEvent::ResponseCancel { .. } => "response.cancel",
            ClientEvent::OutputAudioBufferClear { .. } => "output_audio_buffer.clear",
        }
    }

    /// The JSON text to send on the data channel.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// An item the kiosk adds to the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientItem {
    FunctionCallOutput {
        call_id: String,
        /// A string, usually JSON.
        output: String,
    },
}

/// Overrides for one response only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    /// `auto` (default) or `none` for an out-of-band response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}
