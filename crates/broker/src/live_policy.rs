//! The fleet's GPT-Live session policy, without I/O: the kiosk's create request
//! (`{session, transport}`, as it would POST to OpenAI's `/v1/live/sessions`) with the fleet's
//! model, voice, delegation model, output cap and `store` imposed. The kiosk's instructions
//! (member name, language), history and tool declarations stay; its SDP offer is relayed
//! unmodified, as OpenAI asks. Anything that is not a Live create request is refused here,
//! before OpenAI is asked (and billed).

use serde_json::{Map, Value, json};

use crate::config::LivePolicy;
use crate::policy::Refusal;

fn bad(why: impl Into<String>) -> Refusal {
    Refusal::BadRequest(why.into())
}

/// The create request sent upstream, or why the kiosk's is refused.
pub fn apply(request: &[u8], policy: &LivePolicy) -> Result<Value, Refusal> {
    let body: Value = serde_json::from_slice(request).map_err(|e| {
        bad(format!(
            "invalid JSON at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut top) = body else {
        return Err(bad("expected a JSON object {session, transport}"));
    };
    if let Some(k) = top.keys().find(|k| *k != "session" && *k != "transport") {
        return Err(bad(format!(
            "unknown key `{k}`: a Live request has exactly `session` and `transport`"
        )));
    }
    let transport = top.get("transport").and_then(Value::as_object);
    let offer_ok = transport.is_some_and(|t| {
        t.get("type").and_then(Value::as_str) == Some("webrtc")
            && t.get("sdp")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.trim().is_empty())
    });
    if !offer_ok {
        return Err(bad(
            "`transport` must be {\"type\": \"webrtc\", \"sdp\": \"<the SDP offer>\"}",
        ));
    }
    let session = top.entry("session").or_insert_with(|| json!({}));
    let Some(session) = session.as_object_mut() else {
        return Err(bad("`session` must be an object"));
    };
    session.insert("model".into(), json!(policy.model));
    session.insert("store".into(), json!(policy.store));
    set_voice(session, &policy.voice)?;
    impose_delegation(session, policy)?;
    Ok(Value::Object(top))
}

fn set_voice(session: &mut Map<String, Value>, voice: &str) -> Result<(), Refusal> {
    let audio = session.entry("audio").or_insert_with(|| json!({}));
    let Some(audio) = audio.as_object_mut() else {
        return Err(bad("`session.audio` must be an object"));
    };
    let output = audio.entry("output").or_insert_with(|| json!({}));
    let Some(output) = output.as_object_mut() else {
        return Err(bad("`session.audio.output` must be an object"));
    };
    output.insert("voice".into(), json!(voice));
    Ok(())
}

fn impose_delegation(session: &mut Map<String, Value>, policy: &LivePolicy) -> Result<(), Refusal> {
    let Some(delegation) = session.get_mut("delegation").filter(|d| !d.is_null()) else {
        return Ok(());
    };
    match delegation.get("type").and_then(Value::as_str) {
        Some("client") => Ok(()),
        Some("responses") => {
            let Some(responses) = delegation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                return Err(bad(
                    "`session.delegation.responses` must be an object under Responses delegation",
                ));
            };
            responses.insert("model".into(), json!(policy.delegation_model));
            if let Some(cap) = policy.delegation_max_output_tokens {
                let asked = responses.get("max_output_tokens").and_then(Value::as_u64);
                let n = asked.map_or(u64::from(cap), |a| a.min(u64::from(cap)));
                responses.insert("max_output_tokens".into(), json!(n));
            }
            Ok(())
        }
        _ => Err(bad(
            "`session.delegation` must be null, {\"type\": \"client\"} or {\"type\": \"responses\", …}",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LivePolicy {
        LivePolicy {
            model: "gpt-live-1.1".into(),
            voice: "cedar".into(),
            delegation_model: "gpt-5-mini".into(),
            delegation_max_output_tokens: Some(300),
            store: false,
        }
    }

    #[test]
    fn the_fleet_policy_wins_and_the_kiosk_keeps_its_content() {
        let kiosk = json!({
            "session": {"model": "gpt-live-1", "instructions": "Bonjour Alice", "store": true,
                        "audio": {"output": {"voice": "alloy"}},
                        "delegation": {"type": "responses", "responses": {"model": "gpt-5", "max_output_tokens": 2000,
                                       "tools": [{"type": "function", "name": "end_session"}]}}},
            "transport": {"type": "webrtc", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
        });
        let out = apply(kiosk.to_string().as_bytes(), &policy()).unwrap();
        let s = &out["session"];
        assert_eq!(s["model"], "gpt-live-1.1");
        assert_eq!(s["audio"]["output"]["voice"], "cedar");
        assert_eq!(s["store"], false);
        assert_eq!(s["instructions"], "Bonjour Alice");
        assert_eq!(s["delegation"]["responses"]["model"], "gpt-5-mini");
        assert_eq!(s["delegation"]["responses"]["max_output_tokens"], 300);
        assert_eq!(
            s["delegation"]["responses"]["tools"][0]["name"],
            "end_session"
        );
        assert_eq!(
            out["transport"], kiosk["transport"],
            "the offer is relayed unmodified"
        );
        // A smaller request stays; client delegation is left alone.
        let small = json!({"session": {"delegation": {"type": "responses", "responses": {"max_output_tokens": 64}}},
                           "transport": {"type": "webrtc", "sdp": "v=0"}});
        let out = apply(small.to_string().as_bytes(), &policy()).unwrap();
        assert_eq!(
            out["session"]["delegation"]["responses"]["max_output_tokens"],
            64
        );
        let client = json!({"session": {"delegation": {"type": "client"}}, "transport": {"type": "webrtc", "sdp": "v=0"}});
        let out = apply(client.to_string().as_bytes(), &policy()).unwrap();
        assert_eq!(out["session"]["delegation"], json!({"type": "client"}));
        assert_eq!(out["session"]["model"], "gpt-live-1.1");
    }

    #[test]
    fn what_is_not_a_live_request_is_refused_with_the_reason() {
        let sdp = json!({"type": "webrtc", "sdp": "v=0"});
        for (body, needle) in [
            (b"{".to_vec(), "invalid JSON"),
            (b"[1]".to_vec(), "JSON object"),
            (
                json!({"session": {}}).to_string().into_bytes(),
                "`transport`",
            ),
            (
                json!({"session": {}, "transport": {"type": "webrtc", "sdp": ""}})
                    .to_string()
                    .into_bytes(),
                "`transport`",
            ),
            (
                json!({"session": {}, "transport": sdp, "model": "x"})
                    .to_string()
                    .into_bytes(),
                "unknown key `model`",
            ),
            (
                json!({"session": 3, "transport": sdp})
                    .to_string()
                    .into_bytes(),
                "`session`",
            ),
            (
                json!({"session": {"audio": 1}, "transport": sdp})
                    .to_string()
                    .into_bytes(),
                "`session.audio`",
            ),
            (
                json!({"session": {"delegation": {"type": "server"}}, "transport": sdp})
                    .to_string()
                    .into_bytes(),
                "`session.delegation`",
            ),
            (
                json!({"session": {"delegation": {"type": "responses"}}, "transport": sdp})
                    .to_string()
                    .into_bytes(),
                "responses",
            ),
        ] {
            match apply(&body, &policy()) {
                Err(Refusal::BadRequest(why)) => assert!(why.contains(needle), "{needle}: {why}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
