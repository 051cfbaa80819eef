//! The `POST /v1/live/sessions` exchange (reference §3): a JSON body with the session and the
//! kiosk's SDP offer, a JSON answer with the session id and the SDP answer.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// What a fleet (the kiosk's config, or the broker's policy) decides for every session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    pub model: String,
    pub voice: String,
    /// The voice's prompt, already filled with the member's name and membership.
    pub instructions: String,
    pub delegation_model: String,
    pub delegation_instructions: String,
}

/// The `end_session` function, declared to the delegation model: the only way a Live session
/// gets function calls (reference §7.1).
pub fn end_session_tool() -> serde_json::Value {
    json!({
        "type": "function",
        "name": "end_session",
        "description": "End the conversation when the member says goodbye or asks to stop.",
        "parameters": {"type": "object", "properties": {}, "additionalProperties": false},
        "strict": true,
    })
}

/// The body of `POST /v1/live/sessions`. The session object is strict server-side (unknown
/// fields are refused), so only documented fields go in; `audio.format` is omitted on WebRTC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateRequest {
    pub session: serde_json::Value,
    pub transport: Transport,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transport {
    #[serde(rename = "type")]
    pub kind: String,
    pub sdp: String,
}

impl CreateRequest {
    pub fn new(policy: &SessionPolicy, offer_sdp: &str) -> Self {
        CreateRequest {
            session: json!({
                "model": policy.model,
                "instructions": policy.instructions,
                "audio": {"output": {"voice": policy.voice}},
                "delegation": {
                    "type": "responses",
                    "responses": {
                        "model": policy.delegation_model,
                        "instructions": policy.delegation_instructions,
                        "tools": [end_session_tool()],
                    },
                },
            }),
            transport: Transport {
                kind: "webrtc".into(),
                sdp: offer_sdp.to_owned(),
            },
        }
    }
}

/// The `201` answer: keep the id unchanged (prefix included), apply the SDP as the answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Created {
    pub session: CreatedSession,
    pub transport: Transport,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreatedSession {
    pub id: String,
}

impl Created {
    /// Reads the answer body, refusing one without a session id or an SDP answer.
    pub fn parse(body: &str) -> Result<Created, String> {
        let created: Created = serde_json::from_str(body)
            .map_err(|e| format!("the Live session answer is not the documented JSON: {e}"))?;
        if created.session.id.is_empty() {
            return Err("the Live session answer has an empty session.id".into());
        }
        if created.transport.kind != "webrtc" || !created.transport.sdp.starts_with("v=0") {
            return Err("the Live session answer has no WebRTC SDP answer in transport.sdp".into());
        }
        Ok(created)
    }
}
