//! The JSON shapes of GPT-Live server events (reference §5.2, §7.1): the session resource,
//! the delegation envelopes and the Responses usage nested in them. Builders only; the order
//! and timing belong to [`super::session`].

use serde_json::{Value, json};

use super::request::{Delegation, LiveRequest};
use crate::scenario::Usage;

/// The session resource of `session.started`, `session.updated` and `session.closed`:
/// the request's config with `id`, `status` and `expires_at` added.
pub fn resource(id: &str, request: &LiveRequest, expires_at: u64) -> Value {
    let s = &request.session;
    let delegation = match &request.delegation {
        Delegation::Client => json!({"type": "client"}),
        Delegation::Responses { .. } => s.get("delegation").cloned().unwrap_or(Value::Null),
    };
    json!({
        "id": id,
        "object": "live.session",
        "status": "active",
        "model": request.model,
        "expires_at": expires_at,
        "instructions": s.get("instructions").cloned().unwrap_or(Value::Null),
        "audio": {"output": {"voice": request.voice}},
        "delegation": delegation,
        "input": s.get("input").cloned().unwrap_or_else(|| json!([])),
        "store": s.get("store").cloned().unwrap_or(json!(false)),
        "client": s.get("client").cloned().unwrap_or(Value::Null),
    })
}

/// A delegated response's `usage` in the Responses shape (cached tokens are part of input).
pub fn responses_usage(u: &Usage) -> Value {
    let input = u.input_text + u.input_audio;
    let output = u.output_text + u.output_audio;
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u.cached_text + u.cached_audio},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + output
    })
}

/// A Responses lifecycle snapshot: as the reference says, `output`, `tools` and
/// `instructions` are cleared, so function calls must be read from `output_item.done`.
pub fn response(id: &str, model: &str, status: &str, usage: Value) -> Value {
    json!({
        "id": id,
        "object": "response",
        "status": status,
        "model": model,
        "output": [],
        "tools": [],
        "instructions": null,
        "usage": usage
    })
}

/// `response.event` wrapping one nested Responses streaming event.
pub fn envelope(delegation_id: &str, event: Value) -> Value {
    json!({"type": "response.event", "delegation_id": delegation_id, "event": event})
}

/// An `error` event; `client_event_id` echoes the offending client event's `event_id`.
pub fn error(code: &str, message: &str, param: Option<&str>, client: &Value) -> Value {
    json!({
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": param,
            "client_event_id": client.get("event_id").cloned().unwrap_or(Value::Null)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_in_the_responses_shape() {
        let u = Usage {
            input_text: 1200,
            cached_text: 1000,
            output_text: 30,
            ..Usage::default()
        };
        let j = responses_usage(&u);
        assert_eq!(j["input_tokens"], 1200);
        assert_eq!(j["input_tokens_details"]["cached_tokens"], 1000);
        assert_eq!(j["output_tokens"], 30);
        assert_eq!(j["total_tokens"], 1230);
    }
}
