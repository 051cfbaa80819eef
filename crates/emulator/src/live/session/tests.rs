use std::path::Path;

use serde_json::json;

use super::*;
use crate::live::request;

const SCENARIO: &str = r#"
trigger = "vad"
[[turns]]
user_transcript = "Bonjour JARVIS"
reply_transcript = "Bonjour Marie"
reply_audio = { tone_hz = 440.0, ms = 600 }
[[turns]]
user_transcript = "Merci, au revoir"
reply_transcript = "Au revoir"
reply_audio = { tone_hz = 660.0, ms = 400 }
usage = { input_text = 1200, cached_text = 1000, output_text = 30 }
end_session = "user_said_goodbye"
[goodbye]
transcript = "À bientôt"
audio = { tone_hz = 330.0, ms = 300 }
usage = { input_text = 1300, output_text = 12 }
"#;

fn request(delegation: serde_json::Value) -> LiveRequest {
    let body = json!({"session": {"model": "gpt-live-1", "delegation": delegation},
                      "transport": {"type": "webrtc", "sdp": "v=0"}});
    request::parse(Some("application/json"), None, body.to_string().as_bytes()).unwrap()
}

fn responses() -> serde_json::Value {
    json!({"type": "responses", "responses": {"model": "gpt-5-mini",
           "tools": [{"type": "function", "name": "end_session"}]}})
}

fn session(scenario: &str, faults: ScriptFaults, delegation: serde_json::Value) -> LiveSession {
    let s = Scenario::from_toml(scenario, Path::new("/x")).unwrap();
    LiveSession::new(
        Arc::new(s),
        faults,
        "live_EMU000001",
        request(delegation),
        1_900_000_000,
    )
}

fn sent(actions: &[LiveAction]) -> Vec<serde_json::Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            LiveAction::Send(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

fn kinds(actions: &[LiveAction]) -> Vec<String> {
    sent(actions)
        .iter()
        .map(|v| match v["type"].as_str() {
            Some("response.event") => {
                format!("response.event:{}", v["event"]["type"].as_str().unwrap())
            }
            Some(t) => t.to_string(),
            None => "?".into(),
        })
        .collect()
}

const STARTED: VadEvent = VadEvent::SpeechStarted { audio_start_ms: 0 };
const STOPPED: VadEvent = VadEvent::SpeechStopped { audio_end_ms: 0 };

/// Runs a member turn from `at` and its reply audio to the end.
fn turn(s: &mut LiveSession, at: u64) -> Vec<LiveAction> {
    let mut out = s.step(LiveInput::Vad(STARTED), at);
    out.extend(s.step(LiveInput::Vad(STOPPED), at + 700));
    out.extend(s.step(LiveInput::AudioFinished, at + 1500));
    out
}

#[test]
fn the_whole_goodbye_by_tool_call() {
    let mut s = session(SCENARIO, ScriptFaults::default(), responses());
    let early = s.step(
        LiveInput::Client(r#"{"type":"session.close","event_id":"k1"}"#),
        50,
    );
    assert_eq!(kinds(&early), ["error"]);
    assert_eq!(sent(&early)[0]["error"]["code"], "session_not_started");
    assert_eq!(sent(&early)[0]["error"]["client_event_id"], "k1");

    let start = s.step(LiveInput::Start, 100);
    let ev = &sent(&start)[0];
    assert_eq!(ev["type"], "session.started");
    assert_eq!(ev["session"]["id"], "live_EMU000001");
    assert_eq!(ev["session"]["status"], "active");
    assert_eq!(ev["session"]["expires_at"], 1_900_000_000u64);
    assert_eq!(ev["session"]["delegation"]["type"], "responses");

    let first = turn(&mut s, 1100);
    assert_eq!(
        kinds(&first),
        [
            "session.input_transcript.delta",
            "session.output_transcript.delta",
            "session.output_transcript.delta"
        ]
    );
    let input = &sent(&first)[0];
    assert_eq!(
        (
            input["delta"].as_str(),
            input["start_ms"].as_u64(),
            input["end_ms"].as_u64()
        ),
        (Some("Bonjour JARVIS"), Some(1000), Some(1700))
    );
    assert!(first.iter().any(|a| matches!(a, LiveAction::Play { .. })));

    let second = turn(&mut s, 3100);
    assert_eq!(
        kinds(&second)[3..],
        [
            "session.delegation.created",
            "response.event:response.created",
            "response.event:response.output_item.done",
            "response.event:response.output_item.done",
            "response.event:response.completed",
        ]
    );
    let evs = sent(&second);
    let delegation_id = evs[3]["delegation"]["id"].as_str().unwrap().to_string();
    assert_eq!(evs[3]["delegation"]["target"], "responses");
    assert_eq!(evs[3]["offset_ms"], 4500);
    assert_eq!(
        evs[5]["event"]["item"]["type"], "reasoning",
        "not the call first"
    );
    let call = &evs[6]["event"]["item"];
    assert_eq!(
        (call["type"].as_str(), call["name"].as_str()),
        (Some("function_call"), Some("end_session"))
    );
    assert_eq!(call["arguments"], r#"{"reason":"user_said_goodbye"}"#);
    assert!(
        evs[4..]
            .iter()
            .all(|e| e["delegation_id"] == delegation_id.as_str())
    );
    let done = &evs[7]["event"]["response"];
    assert_eq!(
        done["output"],
        json!([]),
        "read the call from output_item.done"
    );
    assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 1000);

    let call_id = call["call_id"].as_str().unwrap();
    let early_create = s.step(LiveInput::Client(r#"{"type":"response.create"}"#), 4600);
    assert_eq!(
        sent(&early_create)[0]["error"]["code"],
        "missing_function_call_output"
    );
    let output = json!({"type": "response.item.create", "item": {"type": "function_call_output", "call_id": call_id, "output": "{\"ok\":true}"}});
    assert!(
        s.step(LiveInput::Client(&output.to_string()), 4700)
            .is_empty(),
        "no acknowledgement"
    );
    let goodbye = s.step(LiveInput::Client(r#"{"type":"response.create"}"#), 4800);
    assert_eq!(
        kinds(&goodbye),
        [
            "response.event:response.created",
            "response.event:response.output_text.delta",
            "response.event:response.output_item.done",
            "response.event:response.completed",
            "session.output_transcript.delta",
            "session.output_transcript.delta",
        ]
    );
    assert_eq!(
        sent(&goodbye)[3]["event"]["response"]["usage"]["output_tokens"],
        12
    );

    // The close drains the goodbye's audio, then reports the final seconds, rounded up.
    let usage = s.step(LiveInput::UsageTick, 4900);
    assert_eq!(sent(&usage)[0]["usage"]["seconds"], 4);
    assert!(
        s.step(LiveInput::Client(r#"{"type":"session.close"}"#), 5000)
            .is_empty()
    );
    let refused = s.step(LiveInput::Client(r#"{"type":"session.close"}"#), 5010);
    assert_eq!(sent(&refused)[0]["error"]["code"], "session_closing");
    let closed = s.step(LiveInput::AudioFinished, 5350);
    assert_eq!(kinds(&closed), ["session.closed"]);
    let c = &sent(&closed)[0];
    assert_eq!(
        (c["reason"].as_str(), c["usage"]["seconds"].as_u64()),
        (Some("close_requested"), Some(6))
    );
    assert_eq!(c["session"]["status"], "active");
    assert_eq!(closed.last(), Some(&LiveAction::Close));
    assert!(s.is_closed());
    assert!(s.step(LiveInput::UsageTick, 6000).is_empty());
}

#[test]
fn barge_in_is_silent_and_cancels_the_delegation() {
    let mut s = session(SCENARIO, ScriptFaults::default(), responses());
    s.step(LiveInput::Start, 0);
    turn(&mut s, 100);
    s.step(LiveInput::Vad(STARTED), 2000);
    s.step(LiveInput::Vad(STOPPED), 2500);
    let cut = s.step(LiveInput::Vad(STARTED), 2700);
    assert_eq!(cut, [LiveAction::BargeIn]);
    let after = s.step(LiveInput::AudioFinished, 3000);
    assert!(
        sent(&after).is_empty(),
        "the interrupted reply makes no end_session call"
    );
}

#[test]
fn expiry_hangup_and_drop() {
    let mut s = session(SCENARIO, ScriptFaults::default(), responses());
    s.step(LiveInput::Start, 1000);
    let expired = s.step(LiveInput::Expired, 3500);
    assert_eq!(sent(&expired)[0]["reason"], "expired");
    assert_eq!(sent(&expired)[0]["usage"]["seconds"], 3);
    let mut s = session(SCENARIO, ScriptFaults::default(), responses());
    s.step(LiveInput::Start, 0);
    assert_eq!(
        sent(&s.step(LiveInput::HangUp, 10))[0]["reason"],
        "close_requested"
    );
    let faults = ScriptFaults {
        drop_after_turn: Some(1),
        ..ScriptFaults::default()
    };
    let mut s = session(SCENARIO, faults, responses());
    s.step(LiveInput::Start, 0);
    assert_eq!(turn(&mut s, 100).last(), Some(&LiveAction::Drop));
}

#[test]
fn wrong_guesses_get_errors_naming_the_fix() {
    let mut s = session(SCENARIO, ScriptFaults::default(), responses());
    s.step(LiveInput::Start, 0);
    for (event, code, param) in [
        (json!({"type": "session.start"}), "invalid_event", "type"),
        (
            json!({"type": "conversation.item.create"}),
            "invalid_event",
            "type",
        ),
        (
            json!({"type": "session.update", "session": {"instructions": "x"}}),
            "immutable_parameter",
            "session.instructions",
        ),
        (
            json!({"type": "session.update", "session": {"delegation": {"type": "client"}}}),
            "immutable_parameter",
            "session.delegation",
        ),
        (
            json!({"type": "session.instructions.append", "content": "x"}),
            "missing_required_parameter",
            "delegation_id",
        ),
        (
            json!({"type": "session.thinking.append", "content": "x", "delegation_id": "d1"}),
            "invalid_value",
            "delegation_id",
        ),
        (
            json!({"type": "response.item.create", "item": {"type": "function_call_output", "call_id": "call_x", "output": "{}"}}),
            "invalid_value",
            "item.call_id",
        ),
        (
            json!({"type": "response.create", "response": {"instructions": "bye"}}),
            "unknown_parameter",
            "response",
        ),
    ] {
        let out = sent(&s.step(LiveInput::Client(&event.to_string()), 10));
        assert_eq!(
            (
                out[0]["error"]["code"].as_str(),
                out[0]["error"]["param"].as_str()
            ),
            (Some(code), Some(param)),
            "{event}"
        );
    }
    let ok = sent(&s.step(LiveInput::Client(r#"{"type":"session.update","session":{"delegation":{"responses":{"max_output_tokens":64}}}}"#), 20));
    assert_eq!(ok[0]["type"], "session.updated");
    assert_eq!(
        ok[0]["session"]["delegation"]["responses"]["max_output_tokens"],
        64
    );
    let ack = sent(&s.step(
        LiveInput::Client(
            r#"{"type":"session.commentary.append","content":"x","delegation_id":null}"#,
        ),
        1500,
    ));
    assert_eq!(
        (ack[0]["type"].as_str(), ack[0]["start_ms"].as_u64()),
        (Some("session.commentary.appended"), Some(1500))
    );
    let muted = sent(&s.step(
        LiveInput::Client(r#"{"type":"session.input_audio.mute"}"#),
        1600,
    ));
    assert_eq!(muted[0]["type"], "session.input_audio.muted");
    assert!(
        s.step(LiveInput::Vad(STARTED), 1700).is_empty()
            && s.step(LiveInput::Vad(STOPPED), 2500).is_empty(),
        "muted: not heard"
    );

    // end_session in the scenario but not declared: the emulator says so.
    let mut s = session(
        SCENARIO,
        ScriptFaults::default(),
        json!({"type": "responses", "responses": {"model": "m"}}),
    );
    s.step(LiveInput::Start, 0);
    turn(&mut s, 100);
    let out = sent(&turn(&mut s, 2000));
    assert_eq!(
        out.last().unwrap()["error"]["code"],
        "emulator_tool_not_declared"
    );
    // Client delegation: metadata only.
    let mut s = session(SCENARIO, ScriptFaults::default(), serde_json::Value::Null);
    s.step(LiveInput::Start, 0);
    turn(&mut s, 100);
    let out = sent(&turn(&mut s, 2000));
    assert_eq!(out.last().unwrap()["delegation"]["target"], "client");
    let refused = sent(&s.step(LiveInput::Client(r#"{"type":"response.create"}"#), 3000));
    assert_eq!(refused[0]["error"]["code"], "invalid_request");
}

mod usage {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Cumulative, never decreasing, whole seconds since the start, the close rounding up.
        #[test]
        fn seconds_are_cumulative_and_the_close_covers_them(start in 0u64..5_000, mut ticks in proptest::collection::vec(0u64..600_000, 0..20), close in 0u64..700_000) {
            ticks.sort_unstable();
            let mut s = session(SCENARIO, ScriptFaults::default(), responses());
            s.step(LiveInput::Start, start);
            let mut last = 0;
            for t in ticks.iter().filter(|t| **t <= close) {
                let ev = sent(&s.step(LiveInput::UsageTick, start + t));
                let secs = ev[0]["usage"]["seconds"].as_u64().unwrap();
                prop_assert_eq!(secs, t / 1000);
                prop_assert!(secs >= last);
                last = secs;
            }
            let closed = sent(&s.step(LiveInput::HangUp, start + close));
            let fin = closed[0]["usage"]["seconds"].as_u64().unwrap();
            prop_assert_eq!(fin, close.div_ceil(1000));
            prop_assert!(fin >= last);
        }
    }
}

#[test]
fn an_appended_instruction_is_followed_by_the_scenarios_goodbye() {
    let mut s = session(SCENARIO, ScriptFaults::default(), responses());
    s.step(LiveInput::Start, 0);
    let out = s.step(
        LiveInput::Client(
            r#"{"type":"session.instructions.append","content":"Say goodbye now.","delegation_id":null}"#,
        ),
        900,
    );
    assert_eq!(
        kinds(&out),
        [
            "session.instructions.appended",
            "session.output_transcript.delta",
            "session.output_transcript.delta"
        ]
    );
    assert!(
        out.iter().any(|a| matches!(a, LiveAction::Play { .. })),
        "the goodbye is spoken: {out:?}"
    );
    // The close drains it: session.closed only once the goodbye's audio has played.
    let close = s.step(LiveInput::Client(r#"{"type":"session.close"}"#), 1000);
    assert!(
        !kinds(&close).contains(&"session.closed".to_owned()),
        "{close:?}"
    );
    let done = s.step(LiveInput::AudioFinished, 1300);
    assert_eq!(kinds(&done), ["session.closed"]);
}
