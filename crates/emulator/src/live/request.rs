//! `POST /v1/live/sessions` as the reference (§3) documents it, checked strictly: a JSON body
//! `{session, transport}` with no other key, `transport = {type:"webrtc", sdp}`, and a
//! `MediaSessionConfig` that rejects unknown fields. Where the reference is silent the emulator
//! takes the documented-most-likely form and refuses anything else with a 400 naming the
//! parameter, so a kiosk built on a wrong guess fails here, loudly, rather than at OpenAI.

use serde_json::{Map, Value, json};

/// Live models the service knows (reference §1).
pub const MODELS: [&str; 2] = ["gpt-live-1", "gpt-live-1.1"];

/// The built-in voices of the SDK's enum (reference §3.2).
pub const VOICES: [&str; 32] = [
    "alloy", "ash", "aube", "ballad", "beacon", "bossa", "brise", "cedar", "cinder", "coral",
    "delta", "echo", "flitz", "gleam", "harema", "juni", "marin", "meridian", "nira", "noeul",
    "nuri", "quartz", "ripple", "sage", "shimmer", "shitan", "sillage", "stone", "tempo", "verse",
    "vesper", "willow",
];

/// Voices third parties saw refused with `forbidden` (Realtime-only voices).
const FORBIDDEN_VOICES: [&str; 3] = ["fable", "nova", "onyx"];

/// The fields of `MediaSessionConfig` (reference §3.2); no `type`, unlike Realtime.
const SESSION_FIELDS: [&str; 9] = [
    "model",
    "instructions",
    "audio",
    "delegation",
    "input",
    "store",
    "client",
    "wake_policy",
    "idle_timeout_s",
];

/// The fields of `delegation.responses` (reference §3.2).
const RESPONSES_FIELDS: [&str; 9] = [
    "model",
    "instructions",
    "max_output_tokens",
    "reasoning",
    "text",
    "service_tier",
    "parallel_tool_calls",
    "tool_choice",
    "tools",
];

/// A refused request: the HTTP status and OpenAI's error fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 400 for a malformed request, 403 for a forbidden voice, 404 for an unknown model.
    pub status: u16,
    /// `error.code`.
    pub code: &'static str,
    /// `error.param`, the dotted path of the offending field.
    pub param: Option<String>,
    /// `error.message`.
    pub message: String,
}

impl Refused {
    fn bad(code: &'static str, param: &str, message: impl Into<String>) -> Refused {
        Refused {
            status: 400,
            code,
            param: (!param.is_empty()).then(|| param.to_string()),
            message: message.into(),
        }
    }

    /// OpenAI's error envelope.
    pub fn body(&self) -> Value {
        let kind = if self.status >= 500 {
            "server_error"
        } else {
            "invalid_request_error"
        };
        json!({"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}})
    }
}

/// Who runs delegated work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delegation {
    /// Omitted, null or `{"type":"client"}`: the application gets `session.delegation.created`
    /// with `target:"client"` and no tool channel.
    Client,
    /// A Responses model OpenAI runs for the session; `tools` are its function names.
    Responses {
        /// `delegation.responses.model`.
        model: String,
        /// The names of the declared `function` tools.
        functions: Vec<String>,
    },
}

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRequest {
    /// The session config as sent (the session resource is built from it).
    pub session: Map<String, Value>,
    /// `session.model`.
    pub model: String,
    /// `session.audio.output.voice` (a name, or the custom voice's id), default `marin`.
    pub voice: Value,
    /// `session.delegation`.
    pub delegation: Delegation,
    /// `transport.sdp`, the offer.
    pub sdp: String,
}

/// Checks a create request: `content_type` is the request's header, `query` its query string.
pub fn parse(
    content_type: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> Result<LiveRequest, Refused> {
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        let keys: Vec<&str> = q
            .split('&')
            .map(|kv| kv.split('=').next().unwrap_or(kv))
            .collect();
        return Err(Refused::bad(
            "unknown_parameter",
            keys.first().copied().unwrap_or_default(),
            format!(
                "Unknown query parameter(s) {keys:?}: /v1/live/sessions takes none; the model goes \
                 in session.model."
            ),
        ));
    }
    let json_type = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or(c)
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    if !json_type {
        return Err(Refused::bad(
            "invalid_content_type",
            "",
            format!(
                "Expected 'Content-Type: application/json' with {{\"session\": {{…}}, \"transport\": \
                 {{\"type\": \"webrtc\", \"sdp\": …}}}}, got {:?}; GPT-Live takes no raw SDP or \
                 multipart body (that is the Realtime /calls endpoint).",
                content_type.unwrap_or("none")
            ),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Refused::bad(
            "invalid_json",
            "",
            format!("The body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(mut top) = value else {
        return Err(Refused::bad(
            "invalid_type",
            "",
            "The body must be a JSON object.",
        ));
    };
    if let Some(k) = top.keys().find(|k| *k != "session" && *k != "transport") {
        return Err(Refused::bad(
            "unknown_parameter",
            k,
            format!("Unknown parameter: '{k}'. The body has exactly `session` and `transport`."),
        ));
    }
    let transport = top.remove("transport").ok_or_else(|| {
        Refused::bad(
            "missing_required_parameter",
            "transport",
            "Missing required parameter: 'transport'.",
        )
    })?;
    let session = top.remove("session").ok_or_else(|| {
        Refused::bad(
            "missing_required_parameter",
            "session",
            "Missing required parameter: 'session'.",
        )
    })?;
    let sdp = transport_sdp(transport)?;
    let Value::Object(session) = session else {
        return Err(Refused::bad(
            "invalid_type",
            "session",
            "'session' must be an object.",
        ));
    };
    check_session(session, sdp)
}

fn transport_sdp(transport: Value) -> Result<String, Refused> {
    let Value::Object(t) = transport else {
        return Err(Refused::bad(
            "invalid_type",
            "transport",
            "'transport' must be an object.",
        ));
    };
    if let Some(k) = t.keys().find(|k| *k != "type" && *k != "sdp") {
        return Err(Refused::bad(
            "unknown_parameter",
            &format!("transport.{k}"),
            format!("Unknown parameter: 'transport.{k}'."),
        ));
    }
    if t.get("type").and_then(Value::as_str) != Some("webrtc") {
        return Err(Refused::bad(
            "invalid_value",
            "transport.type",
            "'transport.type' must be \"webrtc\" on this endpoint.",
        ));
    }
    match t.get("sdp").and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
        _ => Err(Refused::bad(
            "invalid_value",
            "transport.sdp",
            "'transport.sdp' must be the SDP offer, a non-empty string.",
        )),
    }
}

fn check_session(session: Map<String, Value>, sdp: String) -> Result<LiveRequest, Refused> {
    if let Some(k) = session
        .keys()
        .find(|k| !SESSION_FIELDS.contains(&k.as_str()))
    {
        let hint = match k.as_str() {
            "voice" => " The voice is session.audio.output.voice.",
            "tools" => " Tools are declared in session.delegation.responses.tools.",
            "turn_detection" | "output_modalities" | "type" => " GPT-Live has no such setting.",
            _ => "",
        };
        return Err(Refused::bad(
            "unknown_parameter",
            &format!("session.{k}"),
            format!("Unknown parameter: 'session.{k}'.{hint}"),
        ));
    }
    let model = match session.get("model").and_then(Value::as_str) {
        Some(m) if MODELS.contains(&m) => m.to_string(),
        Some(m) => {
            return Err(Refused {
                status: 404,
                code: "model_not_found",
                param: Some("session.model".into()),
                message: format!(
                    "The model '{m}' does not exist or is not a GPT-Live model ({MODELS:?})."
                ),
            });
        }
        None => {
            return Err(Refused::bad(
                "missing_required_parameter",
                "session.model",
                "Missing required parameter: 'session.model'.",
            ));
        }
    };
    if let Some(i) = session.get("instructions")
        && !(i.is_string() || i.is_null())
    {
        return Err(Refused::bad(
            "invalid_type",
            "session.instructions",
            "'session.instructions' must be a string or null.",
        ));
    }
    let voice = check_audio(session.get("audio"))?;
    let delegation = check_delegation(session.get("delegation"))?;
    if let Some(input) = session.get("input") {
        match input.as_array() {
            Some(items) if items.len() <= 128 => {}
            Some(_) => {
                return Err(Refused::bad(
                    "invalid_value",
                    "session.input",
                    "'session.input' holds at most 128 messages.",
                ));
            }
            None => {
                return Err(Refused::bad(
                    "invalid_type",
                    "session.input",
                    "'session.input' must be an array.",
                ));
            }
        }
    }
    if let Some(s) = session.get("store")
        && !s.is_boolean()
    {
        return Err(Refused::bad(
            "invalid_type",
            "session.store",
            "'session.store' must be a boolean.",
        ));
    }
    Ok(LiveRequest {
        session,
        model,
        voice,
        delegation,
        sdp,
    })
}

fn check_audio(audio: Option<&Value>) -> Result<Value, Refused> {
    let Some(audio) = audio.filter(|a| !a.is_null()) else {
        return Ok(json!("marin"));
    };
    let Some(a) = audio.as_object() else {
        return Err(Refused::bad(
            "invalid_type",
            "session.audio",
            "'session.audio' must be an object.",
        ));
    };
    if a.contains_key("format") {
        return Err(Refused::bad(
            "unknown_parameter",
            "session.audio.format",
            "'session.audio.format' is for the WebSocket transport; on WebRTC the format is \
             negotiated on the media transport: omit it.",
        ));
    }
    if let Some(k) = a.keys().find(|k| *k != "output") {
        return Err(Refused::bad(
            "unknown_parameter",
            &format!("session.audio.{k}"),
            format!("Unknown parameter: 'session.audio.{k}'."),
        ));
    }
    let Some(output) = a.get("output").and_then(Value::as_object) else {
        return Ok(json!("marin"));
    };
    if let Some(k) = output.keys().find(|k| *k != "voice") {
        return Err(Refused::bad(
            "unknown_parameter",
            &format!("session.audio.output.{k}"),
            format!("Unknown parameter: 'session.audio.output.{k}'."),
        ));
    }
    match output.get("voice") {
        None | Some(Value::Null) => Ok(json!("marin")),
        Some(Value::String(v)) if VOICES.contains(&v.as_str()) => Ok(json!(v)),
        Some(Value::String(v)) if FORBIDDEN_VOICES.contains(&v.as_str()) => Err(Refused {
            status: 403,
            code: "forbidden",
            param: Some("session.audio.output.voice".into()),
            message: format!("The voice '{v}' is not available for GPT-Live."),
        }),
        Some(Value::Object(custom))
            if custom.len() == 1
                && custom
                    .get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| (1..=128).contains(&id.len())) =>
        {
            Ok(Value::Object(custom.clone()))
        }
        Some(other) => Err(Refused::bad(
            "invalid_value",
            "session.audio.output.voice",
            format!(
                "Invalid voice {other}: a built-in name ({}) or {{\"id\": \"…\"}}.",
                VOICES.join(", ")
            ),
        )),
    }
}

fn check_delegation(delegation: Option<&Value>) -> Result<Delegation, Refused> {
    let Some(d) = delegation.filter(|d| !d.is_null()) else {
        return Ok(Delegation::Client);
    };
    let kind = d.get("type").and_then(Value::as_str);
    match kind {
        Some("client") if d.as_object().is_some_and(|o| o.len() == 1) => Ok(Delegation::Client),
        Some("responses") => {
            let Some(r) = d.get("responses").and_then(Value::as_object) else {
                return Err(Refused::bad(
                    "missing_required_parameter",
                    "session.delegation.responses",
                    "Responses delegation needs 'session.delegation.responses' with at least `model`.",
                ));
            };
            if let Some(k) = d
                .as_object()
                .and_then(|o| o.keys().find(|k| *k != "type" && *k != "responses"))
            {
                return Err(Refused::bad(
                    "unknown_parameter",
                    &format!("session.delegation.{k}"),
                    format!("Unknown parameter: 'session.delegation.{k}'."),
                ));
            }
            if let Some(k) = r.keys().find(|k| !RESPONSES_FIELDS.contains(&k.as_str())) {
                return Err(Refused::bad(
                    "unknown_parameter",
                    &format!("session.delegation.responses.{k}"),
                    format!("Unknown parameter: 'session.delegation.responses.{k}'."),
                ));
            }
            let model = match r.get("model").and_then(Value::as_str) {
                Some(m) if !m.trim().is_empty() => m.to_string(),
                _ => {
                    return Err(Refused::bad(
                        "missing_required_parameter",
                        "session.delegation.responses.model",
                        "Missing required parameter: 'session.delegation.responses.model'.",
                    ));
                }
            };
            if let Some(n) = r.get("max_output_tokens")
                && n.as_u64().is_none_or(|n| n < 16)
            {
                return Err(Refused::bad(
                    "invalid_value",
                    "session.delegation.responses.max_output_tokens",
                    "'max_output_tokens' must be an integer >= 16.",
                ));
            }
            let functions = check_tools(r.get("tools"))?;
            Ok(Delegation::Responses { model, functions })
        }
        _ => Err(Refused::bad(
            "invalid_value",
            "session.delegation",
            "'session.delegation' is null, {\"type\":\"client\"} or {\"type\":\"responses\",\"responses\":{…}}.",
        )),
    }
}

fn check_tools(tools: Option<&Value>) -> Result<Vec<String>, Refused> {
    let Some(tools) = tools.filter(|t| !t.is_null()) else {
        return Ok(Vec::new());
    };
    let param = "session.delegation.responses.tools";
    let Some(list) = tools.as_array() else {
        return Err(Refused::bad(
            "invalid_type",
            param,
            "'tools' must be an array.",
        ));
    };
    let mut functions = Vec::new();
    for (i, tool) in list.iter().enumerate() {
        let at = format!("{param}[{i}]");
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
                let valid = (1..=64).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    return Err(Refused::bad(
                        "invalid_value",
                        &format!("{at}.name"),
                        "A function name is 1-64 characters of [a-zA-Z0-9_-].",
                    ));
                }
                if let Some(k) = tool.as_object().and_then(|o| {
                    o.keys().find(|k| {
                        !["type", "name", "description", "parameters", "strict"]
                            .contains(&k.as_str())
                    })
                }) {
                    return Err(Refused::bad(
                        "unknown_parameter",
                        &format!("{at}.{k}"),
                        format!("Unknown parameter: '{at}.{k}'."),
                    ));
                }
                functions.push(name.to_string());
            }
            Some(_) => {}
            None => {
                return Err(Refused::bad(
                    "missing_required_parameter",
                    &format!("{at}.type"),
                    "Every tool has a `type`.",
                ));
            }
        }
    }
    Ok(functions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(session: Value) -> Vec<u8> {
        json!({"session": session, "transport": {"type": "webrtc", "sdp": "v=0\r\n"}})
            .to_string()
            .into_bytes()
    }

    fn ok(session: Value) -> LiveRequest {
        parse(Some("application/json"), None, &body(session)).unwrap()
    }

    fn refused(content_type: Option<&str>, query: Option<&str>, body: &[u8]) -> Refused {
        parse(content_type, query, body).unwrap_err()
    }

    #[test]
    fn a_documented_request_passes() {
        let r = ok(json!({
            "model": "gpt-live-1.1",
            "instructions": "Bonjour Marie",
            "audio": {"output": {"voice": "cedar"}},
            "delegation": {"type": "responses", "responses": {
                "model": "gpt-5-mini", "instructions": "Rules", "max_output_tokens": 400,
                "tools": [{"type": "function", "name": "end_session", "parameters": {"type": "object"}, "strict": true},
                          {"type": "web_search"}]}},
            "store": false
        }));
        assert_eq!(r.model, "gpt-live-1.1");
        assert_eq!(r.voice, "cedar");
        assert_eq!(
            r.delegation,
            Delegation::Responses {
                model: "gpt-5-mini".into(),
                functions: vec!["end_session".into()]
            }
        );
        assert_eq!(r.sdp, "v=0\r\n");
        let minimal = ok(json!({"model": "gpt-live-1"}));
        assert_eq!(
            (minimal.voice, minimal.delegation),
            (json!("marin"), Delegation::Client)
        );
        assert_eq!(
            ok(json!({"model": "gpt-live-1", "audio": {"output": {"voice": {"id": "voice_123"}}}}))
                .voice,
            json!({"id": "voice_123"})
        );
    }

    #[test]
    fn realtime_habits_are_refused_with_the_parameter() {
        let cases: Vec<(Refused, u16, &str)> = vec![
            (refused(Some("application/sdp"), None, b"v=0"), 400, ""),
            (refused(None, None, b"{}"), 400, ""),
            (refused(Some("application/json"), Some("model=gpt-live-1"), &body(json!({"model": "gpt-live-1"}))), 400, "model"),
            (refused(Some("application/json"), None, br#"{"sdp": "v=0"}"#), 400, "sdp"),
            (refused(Some("application/json"), None, br#"{"session": {"model": "gpt-live-1"}}"#), 400, "transport"),
            (
                refused(Some("application/json"), None, br#"{"session": {"model": "gpt-live-1"}, "transport": {"type": "websocket", "sdp": "v=0"}}"#),
                400,
                "transport.type",
            ),
            (
                refused(Some("application/json"), None, br#"{"session": {"model": "gpt-live-1"}, "transport": {"type": "webrtc", "sdp": ""}}"#),
                400,
                "transport.sdp",
            ),
        ];
        for (r, status, param) in cases {
            assert_eq!(r.status, status, "{r:?}");
            assert_eq!(r.param.as_deref().unwrap_or_default(), param, "{r:?}");
        }
        let session_cases = [
            (json!({}), 400, "session.model"),
            (json!({"model": "gpt-realtime"}), 404, "session.model"),
            (
                json!({"model": "gpt-live-1", "voice": "marin"}),
                400,
                "session.voice",
            ),
            (
                json!({"model": "gpt-live-1", "type": "realtime"}),
                400,
                "session.type",
            ),
            (
                json!({"model": "gpt-live-1", "tools": []}),
                400,
                "session.tools",
            ),
            (
                json!({"model": "gpt-live-1", "audio": {"output": {"voice": "nova"}}}),
                403,
                "session.audio.output.voice",
            ),
            (
                json!({"model": "gpt-live-1", "audio": {"output": {"voice": "robot"}}}),
                400,
                "session.audio.output.voice",
            ),
            (
                json!({"model": "gpt-live-1", "audio": {"format": {"type": "audio/pcm"}}}),
                400,
                "session.audio.format",
            ),
            (
                json!({"model": "gpt-live-1", "audio": {"input": {}}}),
                400,
                "session.audio.input",
            ),
            (
                json!({"model": "gpt-live-1", "delegation": {"type": "responses"}}),
                400,
                "session.delegation.responses",
            ),
            (
                json!({"model": "gpt-live-1", "delegation": {"type": "responses", "responses": {}}}),
                400,
                "session.delegation.responses.model",
            ),
            (
                json!({"model": "gpt-live-1", "delegation": {"type": "responses", "responses": {"model": "m", "max_output_tokens": 8}}}),
                400,
                "session.delegation.responses.max_output_tokens",
            ),
            (
                json!({"model": "gpt-live-1", "delegation": {"type": "responses", "responses": {"model": "m", "tools": [{"type": "function", "name": "end session"}]}}}),
                400,
                "session.delegation.responses.tools[0].name",
            ),
            (
                json!({"model": "gpt-live-1", "delegation": {"type": "server"}}),
                400,
                "session.delegation",
            ),
            (
                json!({"model": "gpt-live-1", "input": "hi"}),
                400,
                "session.input",
            ),
        ];
        for (session, status, param) in session_cases {
            let r = refused(Some("application/json"), None, &body(session.clone()));
            assert_eq!(
                (r.status, r.param.as_deref()),
                (status, Some(param)),
                "{session}: {r:?}"
            );
            assert!(
                r.body()["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }
}
