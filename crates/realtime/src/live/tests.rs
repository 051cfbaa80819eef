//! The Live wire shapes against the reference's examples (§3, §5.2, §7.1).

use proptest::prelude::*;

use super::*;
use crate::protocol::Decoded;

fn event(text: &str) -> LiveServerEvent {
    match decode(text) {
        Decoded::Event(e) => e,
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn the_reference_examples_decode() {
    assert_eq!(
        event(
            r#"{"type":"session.input_transcript.delta","event_id":"evt_1","delta":"What is the","start_ms":600,"end_ms":800}"#
        ),
        LiveServerEvent::InputTranscriptDelta {
            delta: "What is the".into(),
            start_ms: 600,
            end_ms: 800
        }
    );
    assert_eq!(
        event(
            r#"{"type":"session.delegation.created","event_id":"evt_2","offset_ms":1000,"delegation":{"id":"item_delegation_456","type":"delegation","target":"responses","response_id":"resp_123"}}"#
        ),
        LiveServerEvent::DelegationCreated {
            offset_ms: 1000,
            delegation: Delegation {
                id: "item_delegation_456".into(),
                target: "responses".into(),
                response_id: Some("resp_123".into())
            }
        }
    );
    assert_eq!(
        event(
            r#"{"type":"session.usage.updated","event_id":"evt_3","usage":{"seconds":12},"context_window":{"usage_ratio":0.42}}"#
        ),
        LiveServerEvent::UsageUpdated {
            usage: LiveUsage { seconds: 12 }
        }
    );
    assert_eq!(
        event(
            r#"{"type":"session.closed","event_id":"evt_4","reason":"close_requested","usage":{"seconds":128},"session":{"id":"live_123","status":"active","expires_at":1782518400,"model":"gpt-live-1.1"}}"#
        ),
        LiveServerEvent::SessionClosed {
            reason: "close_requested".into(),
            usage: LiveUsage { seconds: 128 }
        }
    );
    let LiveServerEvent::Error { error } = event(
        r#"{"type":"error","event_id":"evt_5","error":{"type":"invalid_request_error","code":"unknown_parameter","message":"…","param":"session.voice","client_event_id":"kiosk_7"}}"#,
    ) else {
        panic!("not an error")
    };
    assert_eq!(error.code.as_deref(), Some("unknown_parameter"));
    assert_eq!(error.client_event_id.as_deref(), Some("kiosk_7"));
    assert_eq!(
        event(
            r#"{"type":"session.started","event_id":"e","session":{"id":"live_123","expires_at":1782518400,"model":"gpt-live-1.1","status":"active","instructions":"x","audio":{},"delegation":null,"input":[],"store":false,"client":null}}"#
        ),
        LiveServerEvent::SessionStarted {
            session: LiveSession {
                id: "live_123".into(),
                model: "gpt-live-1.1".into(),
                expires_at: 1_782_518_400
            }
        }
    );
}

#[test]
fn the_end_session_call_is_read_from_the_nested_output_item_not_from_completed() {
    let reasoning = event(
        r#"{"type":"response.event","delegation_id":"d1","event":{"type":"response.output_item.done","item":{"type":"reasoning","id":"rs_1"}}}"#,
    );
    let call = event(
        r#"{"type":"response.event","delegation_id":"d1","event":{"type":"response.output_item.done","item":{"type":"function_call","call_id":"call_123","name":"end_session","arguments":"{}"}}}"#,
    );
    let completed = event(
        r#"{"type":"response.event","delegation_id":"d1","event":{"type":"response.completed","response":{"id":"resp_1","output":[],"usage":{"input_tokens":120,"output_tokens":8,"total_tokens":128,"input_tokens_details":{"cached_tokens":64}}}}}"#,
    );
    let delegation_event = |e: LiveServerEvent| match e {
        LiveServerEvent::ResponseEvent { event, .. } => event,
        other => panic!("{other:?}"),
    };
    assert_eq!(delegation_event(reasoning).function_call(), None);
    assert_eq!(
        delegation_event(call).function_call(),
        Some(FunctionCall {
            call_id: "call_123".into(),
            name: "end_session".into(),
            arguments: "{}".into()
        })
    );
    let DelegationEvent::Completed { response } = delegation_event(completed) else {
        panic!("not completed")
    };
    assert_eq!(
        (
            response.usage.input_tokens,
            response.usage.input_tokens_details.cached_tokens,
            response.usage.output_tokens
        ),
        (120, 64, 8)
    );
    // Nested types the kiosk does not act on are read, not refused.
    let delta = event(
        r#"{"type":"response.event","delegation_id":null,"event":{"type":"response.output_text.delta","delta":"hi"}}"#,
    );
    assert_eq!(delegation_event(delta), DelegationEvent::Other);
}

#[test]
fn usage_without_seconds_is_malformed_never_zero_cost() {
    for text in [
        r#"{"type":"session.usage.updated","usage":{}}"#,
        r#"{"type":"session.usage.updated","usage":{"seconds":"12"}}"#,
        r#"{"type":"session.closed","reason":"expired"}"#,
        r#"{"type":"session.started","session":{"id":"live_1"}}"#,
    ] {
        assert!(
            matches!(decode(text), Decoded::Malformed { .. }),
            "{text}: {:?}",
            decode(text)
        );
    }
}

#[test]
fn acknowledgements_are_ignored_and_realtime_events_are_unknown() {
    assert!(matches!(
        decode(r#"{"type":"session.thinking.appended","start_ms":1,"end_ms":2}"#),
        Decoded::Ignored { .. }
    ));
    assert!(matches!(
        decode(r#"{"type":"session.created","session":{}}"#),
        Decoded::Unknown { .. }
    ));
}

#[test]
fn client_events_have_the_documented_shapes() {
    assert_eq!(
        LiveClientEvent::ItemCreate {
            event_id: "k1".into(),
            item: LiveItem::FunctionCallOutput {
                call_id: "call_123".into(),
                output: r#"{"ok":true}"#.into()
            }
        }
        .to_json(),
        r#"{"type":"response.item.create","event_id":"k1","item":{"type":"function_call_output","call_id":"call_123","output":"{\"ok\":true}"}}"#
    );
    assert_eq!(
        LiveClientEvent::ResponseCreate {
            event_id: "k2".into()
        }
        .to_json(),
        r#"{"type":"response.create","event_id":"k2"}"#
    );
    assert_eq!(
        LiveClientEvent::Close {
            event_id: "k3".into()
        }
        .to_json(),
        r#"{"type":"session.close","event_id":"k3"}"#
    );
    // `delegation_id` is required: null (general context) is written out, never omitted.
    assert_eq!(
        LiveClientEvent::InstructionsAppend {
            event_id: "k4".into(),
            content: "Say goodbye.".into(),
            delegation_id: None,
        }
        .to_json(),
        r#"{"type":"session.instructions.append","event_id":"k4","content":"Say goodbye.","delegation_id":null}"#
    );
}

fn policy() -> SessionPolicy {
    SessionPolicy {
        model: "gpt-live-1.1".into(),
        voice: "marin".into(),
        instructions: "Bonjour Léa".into(),
        delegation_model: "gpt-5-mini".into(),
        delegation_instructions: "Call end_session on goodbye.".into(),
    }
}

#[test]
fn the_create_body_has_exactly_the_two_documented_keys_and_declares_end_session() {
    let body = serde_json::to_value(CreateRequest::new(&policy(), "v=0\r\n...")).unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["session", "transport"]);
    assert_eq!(body["transport"]["type"], "webrtc");
    assert_eq!(body["session"]["model"], "gpt-live-1.1");
    assert_eq!(body["session"]["audio"]["output"]["voice"], "marin");
    assert!(body["session"]["audio"].get("format").is_none());
    assert_eq!(body["session"]["delegation"]["type"], "responses");
    assert_eq!(
        body["session"]["delegation"]["responses"]["tools"][0]["name"],
        "end_session"
    );
}

#[test]
fn the_answer_must_carry_an_id_and_an_sdp_answer() {
    let ok = r#"{"session":{"id":"live_123"},"transport":{"type":"webrtc","sdp":"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"}}"#;
    assert_eq!(Created::parse(ok).unwrap().session.id, "live_123");
    for bad in [
        "v=0\r\n",
        r#"{"session":{"id":""},"transport":{"type":"webrtc","sdp":"v=0"}}"#,
        r#"{"session":{"id":"live_1"},"transport":{"type":"webrtc","sdp":""}}"#,
        r#"{"session":{"id":"live_1"}}"#,
    ] {
        let err = Created::parse(bad).unwrap_err();
        assert!(err.contains("Live session answer"), "{bad}: {err}");
    }
}

proptest! {
    /// Whatever arrives on the channel, decoding never panics.
    #[test]
    fn decoding_never_panics(text in ".{0,200}") {
        let _ = decode(&text);
    }

    /// Usage is cumulative: what decodes is exactly what was sent.
    #[test]
    fn usage_seconds_round_trip(seconds in 0u64..10_000_000) {
        let text = format!(r#"{{"type":"session.usage.updated","usage":{{"seconds":{seconds}}}}}"#);
        prop_assert_eq!(event(&text), LiveServerEvent::UsageUpdated { usage: LiveUsage { seconds } });
    }
}
