use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use jarvis_core::metering::{MeteringError, Pricing};
use jarvis_core::money::NanoUsd;

fn translator(model: &str, asr: &str) -> Translator {
    let pricing = Arc::new(Pricing::from_config(&BTreeMap::new()).unwrap());
    Translator::new(pricing, model, asr).unwrap()
}

fn event(v: serde_json::Value) -> ServerEvent {
    match decode(&v.to_string()) {
        Decoded::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Reference §11.2.
fn goodbye_response_done() -> serde_json::Value {
    json!({
      "type": "response.done",
      "event_id": "event_D1kq7Yx2mN3pQ4rS5tU6v",
      "response": {
        "object": "realtime.response",
        "id": "resp_D1kq6aB2cD3eF4gH5iJ6k",
        "status": "completed",
        "status_details": null,
        "output": [
          { "id": "item_D1kq6lM7nO8pQ9rS0tU1v", "type": "message", "status": "completed", "role": "assistant",
            "content": [ { "type": "output_audio", "transcript": "Great workout today. Ending our session now, see you next time!" } ] },
          { "id": "item_D1kq6wX2yZ3aB4cD5eF6g", "type": "function_call", "status": "completed",
            "name": "end_session", "call_id": "call_Hq8xZk2Lm4Np6Rt8",
            "arguments": "{\"reason\":\"user_said_goodbye\"}" }
        ],
        "conversation_id": "conv_D1kpZ9aA1bB2cC3dD4eE5",
        "output_modalities": ["audio"],
        "max_output_tokens": 1024,
        "audio": { "output": { "format": { "type": "audio/pcm", "rate": 24000 }, "voice": "marin" } },
        "usage": {
          "total_tokens": 2022,
          "input_tokens": 1670,
          "output_tokens": 352,
          "input_token_details": {
            "text_tokens": 1450, "audio_tokens": 220, "image_tokens": 0, "cached_tokens": 1344,
            "cached_tokens_details": { "text_tokens": 1280, "audio_tokens": 64, "image_tokens": 0 }
          },
          "output_token_details": { "text_tokens": 42, "audio_tokens": 310 }
        },
        "metadata": null
      }
    })
}

/// The S1 `response.done` usage of the reference's worked check (§8).
fn s1_usage() -> serde_json::Value {
    json!({
        "total_tokens": 253, "input_tokens": 132, "output_tokens": 121,
        "input_token_details": {
            "text_tokens": 119, "audio_tokens": 13, "image_tokens": 0, "cached_tokens": 64,
            "cached_tokens_details": { "text_tokens": 64, "audio_tokens": 0, "image_tokens": 0 }
        },
        "output_token_details": { "text_tokens": 30, "audio_tokens": 91 }
    })
}

#[test]
fn goodbye_response_done_gives_priced_usage_then_end_session() {
    let mut t = translator("gpt-realtime", "gpt-4o-mini-transcribe");
    let signals = t.translate(&event(goodbye_response_done()));
    assert_eq!(signals.len(), 2, "{signals:?}");
    let RealtimeSignal::ResponseUsage {
        response_id,
        status,
        model,
        cost,
        raw_usage,
    } = &signals[0]
    else {
        panic!("usage first: {signals:?}");
    };
    assert_eq!(response_id, "resp_D1kq6aB2cD3eF4gH5iJ6k");
    assert_eq!(*status, ResponseStatus::Completed);
    assert_eq!(model, "gpt-realtime");
    assert_eq!(cost.cost.total(), NanoUsd(26_721_600));
    assert_eq!(cost.tokens.cached_audio, 64);
    assert_eq!(raw_usage, &goodbye_response_done()["response"]["usage"]);
    assert_eq!(
        signals[1],
        RealtimeSignal::EndSession {
            call_id: "call_Hq8xZk2Lm4Np6Rt8".into(),
            reason: Some("user_said_goodbye".into()),
        }
    );
}

#[test]
fn s1_worked_check_through_the_decoder() {
    let mut t = translator("gpt-realtime", "whisper-1");
    let e = event(
        json!({"type":"response.done","response":{"id":"resp_1","status":"completed","usage":s1_usage()}}),
    );
    let signals = t.translate(&e);
    let [RealtimeSignal::ResponseUsage { cost, .. }] = signals.as_slice() else {
        panic!("one usage signal");
    };
    assert_eq!(cost.cost.model_total().to_string(), "$0.0069656");
}

#[test]
fn end_session_is_signalled_once_whichever_event_carries_it() {
    let mut t = translator("gpt-realtime", "whisper-1");
    let args = event(json!({
        "type": "response.function_call_arguments.done", "event_id": "event_1",
        "response_id": "resp_D1kq6aB2cD3eF4gH5iJ6k", "item_id": "item_D1kq6wX2yZ3aB4cD5eF6g",
        "output_index": 1, "call_id": "call_Hq8xZk2Lm4Np6Rt8", "name": "end_session",
        "arguments": "{\"reason\":\"user_said_goodbye\"}"
    }));
    assert_eq!(
        t.translate(&args),
        vec![RealtimeSignal::EndSession {
            call_id: "call_Hq8xZk2Lm4Np6Rt8".into(),
            reason: Some("user_said_goodbye".into())
        }]
    );
    let item_done = event(json!({
        "type": "response.output_item.done", "response_id": "resp_D1kq6aB2cD3eF4gH5iJ6k",
        "output_index": 1, "item": goodbye_response_done()["response"]["output"][1].clone()
    }));
    assert_eq!(t.translate(&item_done), vec![]);
    let done = t.translate(&event(goodbye_response_done()));
    assert!(matches!(
        done.as_slice(),
        [RealtimeSignal::ResponseUsage { .. }]
    ));
}

#[test]
fn end_session_arguments_are_parsed_defensively() {
    for (arguments, reason) in [
        ("{\"reason\":\"bye\"}", Some("bye")),
        ("{}", None),
        ("", None),
        ("not json", None),
        ("[\"reason\"]", None),
        ("{\"reason\":42}", None),
        ("{\"reason\":\"  \"}", None),
    ] {
        let mut t = translator("gpt-realtime", "whisper-1");
        let e = event(json!({
            "type": "response.function_call_arguments.done", "call_id": "call_1",
            "name": "end_session", "arguments": arguments
        }));
        assert_eq!(
            t.translate(&e),
            vec![RealtimeSignal::EndSession {
                call_id: "call_1".into(),
                reason: reason.map(str::to_owned)
            }],
            "{arguments}"
        );
    }
}

#[test]
fn nameless_arguments_done_waits_for_the_output_item_and_other_tools_are_ignored() {
    let mut t = translator("gpt-realtime", "whisper-1");
    let nameless = event(json!({
        "type": "response.function_call_arguments.done", "call_id": "call_2", "arguments": "{}"
    }));
    assert_eq!(t.translate(&nameless), vec![]);
    let other = event(json!({
        "type": "response.function_call_arguments.done", "call_id": "call_3",
        "name": "book_class", "arguments": "{}"
    }));
    assert_eq!(t.translate(&other), vec![]);
    let item = event(json!({
        "type": "response.output_item.done",
        "item": {"type":"function_call","name":"end_session","call_id":"call_2","arguments":"{}"}
    }));
    assert_eq!(
        t.translate(&item),
        vec![RealtimeSignal::EndSession {
            call_id: "call_2".into(),
            reason: None
        }]
    );
}

#[test]
fn transcription_usage_token_and_duration_billed() {
    // Reference §11.3.
    let completed = json!({
      "type": "conversation.item.input_audio_transcription.completed",
      "event_id": "event_D1kq5Tr4nScR1pT2kQ3wE",
      "item_id": "item_D1kq5Us3eRm4Sg5Ok6yB7",
      "content_index": 0,
      "transcript": "Thanks JARVIS, that's all for today. Bye!",
      "usage": {
        "type": "tokens", "total_tokens": 45, "input_tokens": 33,
        "input_token_details": { "text_tokens": 0, "audio_tokens": 33 }, "output_tokens": 12
      }
    });
    let mut t = translator("gpt-realtime", "gpt-4o-mini-transcribe");
    let s = t.translate(&event(completed.clone()));
    assert_eq!(
        s[0],
        RealtimeSignal::UserTranscript {
            item_id: "item_D1kq5Us3eRm4Sg5Ok6yB7".into(),
            transcript: "Thanks JARVIS, that's all for today. Bye!".into()
        }
    );
    let RealtimeSignal::TranscriptionUsage {
        cost, raw_usage, ..
    } = &s[1]
    else {
        panic!("{s:?}");
    };
    assert_eq!(cost.transcription_nusd, NanoUsd(33 * 3_000 + 12 * 5_000));
    assert_eq!(raw_usage, &completed["usage"]);

    let mut duration = completed.clone();
    duration["usage"] = json!({"type":"duration","seconds":3.4});
    let mut t = translator("gpt-realtime", "whisper-1");
    let s = t.translate(&event(duration));
    let RealtimeSignal::TranscriptionUsage { cost, .. } = &s[1] else {
        panic!("{s:?}");
    };
    assert_eq!(cost.transcription_nusd, NanoUsd(340_000));
}

#[test]
fn usage_billed_the_wrong_way_is_surfaced_not_dropped() {
    let mut t = translator("gpt-realtime", "whisper-1");
    let e = event(json!({
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": "item_1", "transcript": "salut",
        "usage": {"type":"tokens","input_tokens":5,"output_tokens":1,"total_tokens":6}
    }));
    let s = t.translate(&e);
    let RealtimeSignal::UnpricedUsage {
        id,
        error,
        raw_usage,
        ..
    } = &s[1]
    else {
        panic!("{s:?}");
    };
    assert_eq!(id, "item_1");
    assert!(matches!(error, MeteringError::NotBilledThisWay { .. }));
    assert_eq!(raw_usage["input_tokens"], 5);
}

#[test]
fn translator_refuses_unpriced_models_up_front() {
    let pricing = Arc::new(Pricing::from_config(&BTreeMap::new()).unwrap());
    let err = Translator::new(pricing.clone(), "gpt-realtime-9", "whisper-1").unwrap_err();
    assert!(
        err.to_string().contains("pricing.\"gpt-realtime-9\""),
        "{err}"
    );
    assert!(Translator::new(pricing, "gpt-realtime", "my-asr").is_err());
}

#[test]
fn cancelled_and_usage_less_responses() {
    let mut t = translator("gpt-realtime-mini", "whisper-1");
    let cancelled = event(json!({"type":"response.done","response":{
        "id":"resp_2","status":"cancelled",
        "status_details":{"type":"cancelled","reason":"turn_detected"},
        "output":[],"usage":s1_usage()}}));
    let signals = t.translate(&cancelled);
    let [RealtimeSignal::ResponseUsage { status, .. }] = signals.as_slice() else {
        panic!("interrupted output is still billed");
    };
    assert_eq!(*status, ResponseStatus::Cancelled);
    let created = event(json!({"type":"response.created","response":{
        "id":"resp_3","object":"realtime.response","status":"in_progress","output":[],"usage":null}}));
    assert_eq!(t.translate(&created), vec![]);
    let odd = event(json!({"type":"response.done","response":{"id":"r","status":"paused"}}));
    assert_eq!(
        t.translate(&odd),
        vec![RealtimeSignal::UnpricedUsage {
            source: UsageSource::Response,
            id: "r".into(),
            model: "gpt-realtime-mini".into(),
            error: MeteringError::NoUsage,
            raw_usage: serde_json::Value::Null,
        }]
    );
    let ServerEvent::ResponseDone { response, .. } = &odd else {
        panic!()
    };
    assert_eq!(response.status, ResponseStatus::Unknown);
}

#[test]
fn usage_without_details_is_never_free() {
    let u: Usage =
        serde_json::from_value(json!({"total_tokens":30,"input_tokens":10,"output_tokens":20}))
            .unwrap();
    let c = u.token_counts();
    assert_eq!((c.input_audio, c.output_audio), (10, 20));
    let beta: Usage = serde_json::from_value(json!({
        "input_tokens": 5, "output_tokens": 0,
        "input_token_details": {"text_tokens": 5, "audio_tokens": 0, "cached_tokens": 0,
                                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0}}
    }))
    .unwrap();
    assert_eq!(beta.token_counts().input_text, 5);
    assert_eq!(beta.token_counts().input_image, 0);
}

#[test]
fn session_created_from_the_reference_decodes() {
    let e = event(json!({
        "type": "session.created", "event_id": "event_C9G5RJeJ2gF77mV7f2B1j",
        "session": { "type": "realtime", "object": "realtime.session", "id": "sess_C9CiUVUzUzYIssh3ELY1d",
            "model": "gpt-realtime", "output_modalities": ["audio"], "instructions": "…",
            "tools": [], "tool_choice": "auto", "max_output_tokens": "inf", "tracing": null,
            "truncation": "auto", "prompt": null, "expires_at": 1756310470,
            "audio": { "input": { "format": {"type":"audio/pcm","rate":24000}, "transcription": null,
                                  "noise_reduction": null, "turn_detection": {"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,"silence_duration_ms":200,"idle_timeout_ms":null,"create_response":true,"interrupt_response":true} },
                       "output": { "format": {"type":"audio/pcm","rate":24000}, "voice": "alloy", "speed": 1.0 } },
            "include": null }
    }));
    let mut t = translator("gpt-realtime", "whisper-1");
    assert_eq!(
        t.translate(&e),
        vec![RealtimeSignal::SessionCreated {
            session_id: Some("sess_C9CiUVUzUzYIssh3ELY1d".into()),
            model: Some("gpt-realtime".into()),
            expires_at: Some(1756310470),
        }]
    );
    let ServerEvent::SessionCreated { session, .. } = e else {
        panic!()
    };
    assert_eq!(
        session.max_output_tokens,
        Some(MaxOutputTokens::Unlimited(Inf::Inf))
    );
    assert_eq!(
        session.audio.unwrap().output.unwrap().voice,
        Some(Voice::Named("alloy".into()))
    );
}

#[test]
fn small_events_map_to_their_signals() {
    let mut t = translator("gpt-realtime", "whisper-1");
    let cases = [
        (
            json!({"type":"input_audio_buffer.speech_started","event_id":"e","audio_start_ms":1000,"item_id":"item_a"}),
            Some(RealtimeSignal::SpeechStarted {
                item_id: "item_a".into(),
            }),
        ),
        (
            json!({"type":"input_audio_buffer.speech_stopped","audio_end_ms":2000,"item_id":"item_a"}),
            Some(RealtimeSignal::SpeechStopped {
                item_id: "item_a".into(),
            }),
        ),
        (
            json!({"type":"session.updated","session":{"type":"realtime","voice":"x"}}),
            Some(RealtimeSignal::SessionUpdated),
        ),
        (
            json!({"type":"response.output_audio_transcript.delta","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"Bon"}),
            None,
        ),
        (
            json!({"type":"response.output_audio_transcript.done","response_id":"r","item_id":"i","output_index":0,"content_index":0,"transcript":"Bonjour Marie"}),
            Some(RealtimeSignal::AssistantTranscript {
                response_id: "r".into(),
                transcript: "Bonjour Marie".into(),
            }),
        ),
        (
            json!({"type":"output_audio_buffer.started","response_id":"r"}),
            Some(RealtimeSignal::OutputAudioStarted {
                response_id: "r".into(),
            }),
        ),
        (
            json!({"type":"output_audio_buffer.stopped","response_id":"r"}),
            Some(RealtimeSignal::OutputAudioStopped {
                response_id: "r".into(),
            }),
        ),
        (
            json!({"type":"output_audio_buffer.cleared","response_id":"r"}),
            Some(RealtimeSignal::OutputAudioCleared {
                response_id: "r".into(),
            }),
        ),
        (
            json!({"type":"rate_limits.updated","rate_limits":[
                {"name":"requests","limit":1000,"remaining":999,"reset_seconds":60},
                {"name":"tokens","limit":50000,"remaining":49950,"reset_seconds":0.12}]}),
            None,
        ),
    ];
    for (json, expected) in cases {
        assert_eq!(
            t.translate(&event(json.clone())),
            Vec::from_iter(expected),
            "{json}"
        );
    }
}

#[test]
fn errors_are_classified() {
    let mut t = translator("gpt-realtime", "whisper-1");
    let beta = event(
        json!({"type":"error","error":{"type":"invalid_request_error","code":"beta_api_shape_disabled",
        "message":"The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.","param":null}}),
    );
    assert!(matches!(
        t.translate(&beta).as_slice(),
        [RealtimeSignal::Error { fatal: true, .. }]
    ));
    let race = event(
        json!({"type":"error","event_id":"event_9","error":{"type":"invalid_request_error",
        "code":"conversation_already_has_active_response","message":"busy","param":null,"event_id":"evt_kiosk_2"}}),
    );
    assert_eq!(
        t.translate(&race),
        vec![RealtimeSignal::Error {
            code: Some("conversation_already_has_active_response".into()),
            message: "busy".into(),
            fatal: false
        }]
    );
    let expired = event(json!({"type":"error","error":{"code":"session_expired",
        "message":"Your session hit the maximum duration of 60 minutes."}}));
    assert!(matches!(
        t.translate(&expired).as_slice(),
        [RealtimeSignal::Error { fatal: true, .. }]
    ));
}

#[test]
fn unknown_ignored_and_malformed_messages() {
    assert_eq!(
        decode(r#"{"type":"response.brand_new","x":1}"#),
        Decoded::Unknown {
            kind: "response.brand_new".into()
        }
    );
    assert_eq!(
        decode(r#"{"type":"conversation.item.added","item":{}}"#),
        Decoded::Ignored {
            kind: "conversation.item.added".into()
        }
    );
    // Beta names are unknown in the GA protocol.
    assert!(matches!(
        decode(r#"{"type":"response.audio_transcript.done","transcript":"x"}"#),
        Decoded::Unknown { .. }
    ));
    for bad in [
        "",
        "not json",
        "{\"type\":",
        "[1,2]",
        "{}",
        "{\"type\":7}",
        "{\"type\":\"response.done\",\"response\":5}",
        "{\"type\":\"error\"}",
        "{\"type\":\"conversation.item.input_audio_transcription.completed\",\"item_id\":\"i\",\"transcript\":\"t\",\"usage\":{\"type\":\"duration\",\"seconds\":-1}}",
    ] {
        assert!(
            matches!(decode(bad), Decoded::Malformed { .. }),
            "{bad}: {:?}",
            decode(bad)
        );
    }
    let Decoded::Malformed { error } =
        decode(r#"{"type":"response.output_audio_transcript.done"}"#)
    else {
        panic!()
    };
    assert!(
        error.contains("response.output_audio_transcript.done"),
        "{error}"
    );
}

#[test]
fn type_lists_match_the_enum_and_do_not_overlap() {
    for t in IGNORED_TYPES {
        assert!(!ServerEvent::TYPES.contains(&t), "{t}");
    }
    let samples = [
        json!({"type":"session.created","session":{}}),
        json!({"type":"session.updated","session":{}}),
        json!({"type":"input_audio_buffer.speech_started"}),
        json!({"type":"input_audio_buffer.speech_stopped"}),
        json!({"type":"conversation.item.input_audio_transcription.completed","item_id":"i","transcript":""}),
        json!({"type":"response.created","response":{}}),
        json!({"type":"response.output_audio_transcript.delta","delta":""}),
        json!({"type":"response.output_audio_transcript.done","transcript":""}),
        json!({"type":"response.function_call_arguments.done","call_id":"c"}),
        json!({"type":"response.output_item.done","item":{}}),
        json!({"type":"response.done","response":{}}),
        json!({"type":"output_audio_buffer.started"}),
        json!({"type":"output_audio_buffer.stopped"}),
        json!({"type":"output_audio_buffer.cleared"}),
        json!({"type":"rate_limits.updated"}),
        json!({"type":"error","error":{}}),
    ];
    assert_eq!(samples.len(), ServerEvent::TYPES.len());
    for (sample, name) in samples.iter().zip(ServerEvent::TYPES) {
        let e = event(sample.clone());
        assert_eq!(e.kind(), name);
        // Serialising gives back an event that decodes to the same value.
        let again = serde_json::to_string(&e).unwrap();
        assert_eq!(decode(&again), Decoded::Event(e));
    }
}

#[test]
fn full_events_round_trip_through_serde() {
    let e = event(goodbye_response_done());
    let text = serde_json::to_string(&e).unwrap();
    assert_eq!(decode(&text), Decoded::Event(e));
}

#[test]
fn client_events_have_the_reference_shapes() {
    let shapes = [
        (
            ClientEvent::function_call_output("call_Hq8xZk2Lm4Np6Rt8", "{\"ok\":true}"),
            json!({"type":"conversation.item.create","item":{
                "type":"function_call_output","call_id":"call_Hq8xZk2Lm4Np6Rt8","output":"{\"ok\":true}"}}),
        ),
        (
            ClientEvent::response_with_instructions("Dis au revoir."),
            json!({"type":"response.create","response":{"instructions":"Dis au revoir."}}),
        ),
        (
            ClientEvent::response_create(),
            json!({"type":"response.create"}),
        ),
        (
            ClientEvent::response_cancel(),
            json!({"type":"response.cancel"}),
        ),
        (
            ClientEvent::ResponseCancel {
                event_id: Some("evt_kiosk_7".into()),
                response_id: Some("resp_1".into()),
            },
            json!({"type":"response.cancel","event_id":"evt_kiosk_7","response_id":"resp_1"}),
        ),
        (
            ClientEvent::output_audio_clear(),
            json!({"type":"output_audio_buffer.clear"}),
        ),
    ];
    for (event, expected) in shapes {
        let text = event.to_json().unwrap();
        let got: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(got, expected, "{}", event.kind());
        assert_eq!(got["type"], event.kind());
        let back: ClientEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn long_malformed_errors_are_truncated() {
    let long_type = format!(
        "{{\"type\":\"response.done\",\"response\":\"{}\"}}",
        "é".repeat(5000)
    );
    let Decoded::Malformed { error } = decode(&long_type) else {
        panic!()
    };
    assert!(error.chars().count() <= 201, "{}", error.len());
}

proptest! {
    #[test]
    fn decode_never_panics_on_arbitrary_text(s in ".{0,200}") {
        let _ = decode(&s);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_fields(
        kind in prop::sample::select(ServerEvent::TYPES.to_vec()),
        field in "[a-z_]{1,12}",
        value in prop_oneof![
            Just(json!(null)), Just(json!(-1)), Just(json!(1.5)), Just(json!("x")),
            Just(json!([])), Just(json!({})), Just(json!(true)),
        ],
    ) {
        let mut v = json!({"type": kind});
        v[field] = value;
        let decoded = decode(&v.to_string());
        let acceptable = matches!(decoded, Decoded::Event(_) | Decoded::Malformed { .. });
        prop_assert!(acceptable);
    }

    #[test]
    fn translating_any_usage_prices_it_exactly(
        text in 0u64..100_000, audio in 0u64..100_000, cached_pct in 0u64..=100,
        out_text in 0u64..10_000, out_audio in 0u64..10_000,
    ) {
        let cached = text * cached_pct / 100;
        let usage = json!({
            "input_tokens": text + audio, "output_tokens": out_text + out_audio,
            "input_token_details": {"text_tokens": text, "audio_tokens": audio, "cached_tokens": cached,
                                    "cached_tokens_details": {"text_tokens": cached}},
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio}
        });
        let mut t = translator("gpt-realtime", "whisper-1");
        let s = t.translate(&event(json!({"type":"response.done","response":{"id":"r","usage":usage}})));
        let [RealtimeSignal::ResponseUsage { cost, .. }] = s.as_slice() else {
            return Err(TestCaseError::fail("one usage signal"));
        };
        let expected = (text - cached) * 4_000 + cached * 400 + audio * 32_000
            + out_text * 16_000 + out_audio * 64_000;
        prop_assert_eq!(cost.cost.model_total(), NanoUsd(expected));
    }
}

#[test]
fn responses_are_in_flight_from_created_to_done() {
    let mut t = translator("gpt-realtime", "gpt-4o-mini-transcribe");
    let created = |id: &str| {
        event(json!({"type": "response.created", "response": {
            "object": "realtime.response", "id": id, "status": "in_progress", "output": [], "usage": null}}))
    };
    assert_eq!(t.responses_in_flight(), 0);
    t.translate(&created("resp_D1kq6aB2cD3eF4gH5iJ6k"));
    t.translate(&created("resp_other"));
    t.translate(&created("resp_other"));
    assert_eq!(t.responses_in_flight(), 2, "a repeated created counts once");
    let signals = t.translate(&event(goodbye_response_done()));
    assert!(matches!(
        signals.first(),
        Some(RealtimeSignal::ResponseUsage { .. })
    ));
    assert_eq!(t.responses_in_flight(), 1);
    let mut done = goodbye_response_done();
    done["response"]["id"] = json!("resp_other");
    t.translate(&event(done));
    assert_eq!(t.responses_in_flight(), 0);
}
