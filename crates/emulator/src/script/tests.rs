use std::path::Path;

use proptest::prelude::*;

use super::*;

const SCENARIO: &str = r#"
[[turns]]
user_transcript = "Bonjour JARVIS"
reply_transcript = "Bonjour Marie !"
reply_audio = { tone_hz = 440.0, ms = 200 }
usage = { input_text = 100, input_audio = 20, cached_text = 64, output_text = 10, output_audio = 50 }
transcription_usage = { input = 20, output = 4 }

[[turns]]
after_ms = 150
user_transcript = "Merci, au revoir"
reply_transcript = "Au revoir !"
reply_audio = { tone_hz = 330.0, ms = 100 }
usage = { input_text = 200, output_audio = 30 }
end_session = "user_said_goodbye"

[greeting]
transcript = "Bienvenue"
audio = { tone_hz = 500.0, ms = 100 }

[goodbye]
transcript = "A bientot"
audio = { tone_hz = 300.0, ms = 100 }
usage = { input_text = 300, output_audio = 20 }
"#;

fn scenario(trigger: &str) -> Arc<Scenario> {
    let text = format!("trigger = \"{trigger}\"\n{SCENARIO}");
    Arc::new(Scenario::from_toml(&text, Path::new("/s")).unwrap())
}

fn script(trigger: &str, faults: ScriptFaults) -> Script {
    Script::new(scenario(trigger), faults, "sess_TEST", 1_000)
}

fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Send(v) => v["type"].as_str().unwrap().to_string(),
            Action::SendRaw(_) => "<raw>".into(),
            Action::Play { .. } => "<play>".into(),
            Action::StopAudio => "<stop>".into(),
            Action::BargeIn => "<barge-in>".into(),
            Action::ArmTimer(d) => format!("<timer {}>", d.as_millis()),
            Action::Drop => "<drop>".into(),
            Action::PauseTraffic(d) => format!("<pause {}>", d.as_millis()),
        })
        .collect()
}

fn sent<'a>(actions: &'a [Action], kind: &str) -> Vec<&'a Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(v) if v["type"] == kind => Some(v),
            _ => None,
        })
        .collect()
}

/// The event kinds of one spoken response whose transcript has `words` words, up to its audio.
fn response_kinds(words: usize) -> Vec<&'static str> {
    let mut k = vec![
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "output_audio_buffer.started",
        "<play>",
    ];
    k.extend(std::iter::repeat_n(
        "response.output_audio_transcript.delta",
        words,
    ));
    k
}

/// The closing events of a spoken response without a function call, sent when its audio ends.
const CLOSING: [&str; 6] = [
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
    "output_audio_buffer.stopped",
];

#[test]
fn open_sends_session_created_once() {
    let mut s = script("vad", ScriptFaults::default());
    let a = s.step(Input::Open);
    assert_eq!(kinds(&a), ["session.created"]);
    let session = &sent(&a, "session.created")[0]["session"];
    assert_eq!(session["id"], "sess_TEST");
    assert_eq!(session["model"], "gpt-realtime");
    assert_eq!(session["expires_at"], 4600);
    assert!(s.step(Input::Open).is_empty());
}

#[test]
fn session_update_merges_and_answers_session_updated() {
    let mut s = script("vad", ScriptFaults::default());
    s.step(Input::Open);
    let a = s.step(Input::Client(
        r#"{"type":"session.update","event_id":"evt_1","session":{"type":"realtime","model":"other","instructions":"Be brief","audio":{"output":{"voice":"cedar"}},"tools":[{"type":"function","name":"end_session"}]}}"#,
    ));
    assert_eq!(kinds(&a), ["session.updated"]);
    let session = &sent(&a, "session.updated")[0]["session"];
    assert_eq!(session["instructions"], "Be brief");
    assert_eq!(session["audio"]["output"]["voice"], "cedar");
    assert_eq!(session["audio"]["output"]["speed"], 1.0);
    assert_eq!(session["model"], "gpt-realtime");
    assert_eq!(session["tools"][0]["name"], "end_session");
}

#[test]
fn vad_turn_replays_the_ga_sequence_with_usage() {
    let mut s = script("vad", ScriptFaults::default());
    s.step(Input::Open);
    let a = s.step(Input::Vad(VadEvent::SpeechStarted {
        audio_start_ms: 120,
    }));
    assert_eq!(kinds(&a), ["input_audio_buffer.speech_started"]);
    assert_eq!(
        sent(&a, "input_audio_buffer.speech_started")[0]["audio_start_ms"],
        120
    );
    let a = s.step(Input::Vad(VadEvent::SpeechStopped { audio_end_ms: 900 }));
    let mut expected = vec![
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ];
    expected.extend(response_kinds(3));
    assert_eq!(kinds(&a), expected);
    let completed = sent(&a, "conversation.item.input_audio_transcription.completed")[0];
    assert_eq!(completed["transcript"], "Bonjour JARVIS");
    assert_eq!(completed["usage"]["type"], "tokens");
    assert_eq!(completed["usage"]["total_tokens"], 24);
    // The response closes when its audio has been sent, response.done before stopped.
    let stopped = s.step(Input::AudioFinished);
    assert_eq!(kinds(&stopped), CLOSING);
    let done = sent(&stopped, "response.done")[0];
    assert_eq!(done["response"]["status"], "completed");
    assert_eq!(done["response"]["usage"]["input_tokens"], 120);
    assert_eq!(
        done["response"]["usage"]["input_token_details"]["cached_tokens"],
        64
    );
    assert_eq!(
        done["response"]["usage"]["output_token_details"]["audio_tokens"],
        50
    );
    assert_eq!(
        done["response"]["output"][0]["content"][0]["transcript"],
        "Bonjour Marie !"
    );
    let created = sent(&a, "response.created")[0];
    assert_eq!(created["response"]["status"], "in_progress");
    assert_eq!(created["response"]["id"], done["response"]["id"]);
    assert!(a.contains(&Action::Play {
        response_id: done["response"]["id"].as_str().unwrap().into(),
        audio: AudioSpec::Tone {
            tone_hz: 440.0,
            ms: 200
        }
    }));
    assert_eq!(
        stopped[5],
        Action::Send(json!({
            "type": "output_audio_buffer.stopped",
            "response_id": done["response"]["id"],
            "event_id": sent(&stopped, "output_audio_buffer.stopped")[0]["event_id"],
        }))
    );
    assert_eq!(s.turns_spoken(), 1);
}

#[test]
fn a_pause_after_a_turn_stops_traffic_and_the_next_turn_waits_it_out() {
    let faults = ScriptFaults {
        pause_after_turn: Some((1, Duration::from_millis(2_500))),
        ..ScriptFaults::default()
    };
    let mut s = script("timer", faults);
    s.step(Input::Open);
    s.step(Input::Timer);
    let mut first = CLOSING.to_vec();
    first.push("<pause 2500>");
    first.push("<timer 2650>");
    assert_eq!(kinds(&s.step(Input::AudioFinished)), first);
    s.step(Input::Timer);
    let second = kinds(&s.step(Input::AudioFinished));
    assert!(
        !second.iter().any(|k| k.starts_with("<pause")),
        "{second:?}"
    );
}

#[test]
fn end_session_call_then_function_output_and_response_create_give_the_goodbye() {
    let mut s = script("timer", ScriptFaults::default());
    assert_eq!(
        kinds(&s.step(Input::Open)),
        ["session.created", "<timer 0>"]
    );
    s.step(Input::Timer);
    let mut first = CLOSING.to_vec();
    first.push("<timer 150>");
    assert_eq!(kinds(&s.step(Input::AudioFinished)), first);
    s.step(Input::Timer);
    // Turn 2's audio ends: its closing events carry the end_session call.
    let a = s.step(Input::AudioFinished);
    let k = kinds(&a);
    let tail: Vec<&str> = k.iter().rev().take(8).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "response.output_item.added",
            "conversation.item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
            "output_audio_buffer.stopped",
        ]
    );
    let args_done = sent(&a, "response.function_call_arguments.done")[0];
    assert_eq!(args_done["name"], "end_session");
    assert_eq!(args_done["arguments"], r#"{"reason":"user_said_goodbye"}"#);
    let call_id = args_done["call_id"].as_str().unwrap().to_string();
    let done = sent(&a, "response.done")[0];
    assert_eq!(done["response"]["output"][1]["type"], "function_call");
    assert_eq!(done["response"]["output"][1]["call_id"], call_id.as_str());

    // A response.create without the function output has nothing scripted.
    let err = s.step(Input::Client(
        r#"{"type":"response.create","event_id":"e9"}"#,
    ));
    assert_eq!(
        sent(&err, "error")[0]["error"]["code"],
        "emulator_unscripted"
    );
    assert_eq!(sent(&err, "error")[0]["error"]["event_id"], "e9");

    let out = format!(
        r#"{{"type":"conversation.item.create","item":{{"type":"function_call_output","call_id":"{call_id}","output":"{{\"ok\":true}}"}}}}"#
    );
    assert_eq!(
        kinds(&s.step(Input::Client(&out))),
        ["conversation.item.added", "conversation.item.done"]
    );
    let bye = s.step(Input::Client(r#"{"type":"response.create"}"#));
    assert_eq!(kinds(&bye), response_kinds(2));
    // The goodbye's audio finishes (no next turn, no timer).
    let bye_end = s.step(Input::AudioFinished);
    assert_eq!(kinds(&bye_end), CLOSING);
    assert_eq!(
        sent(&bye_end, "response.done")[0]["response"]["usage"]["input_tokens"],
        300
    );
    assert!(s.step(Input::AudioFinished).is_empty());
    assert!(s.step(Input::Timer).is_empty(), "no turns left");
}

#[test]
fn greeting_answers_the_first_response_create() {
    let mut s = script("vad", ScriptFaults::default());
    s.step(Input::Open);
    let a = s.step(Input::Client(r#"{"type":"response.create"}"#));
    assert_eq!(sent(&a, "response.created").len(), 1);
    assert_eq!(
        sent(&s.step(Input::AudioFinished), "response.done").len(),
        1
    );
    let again = s.step(Input::Client(r#"{"type":"response.create"}"#));
    assert_eq!(kinds(&again), ["error"]);
}

#[test]
fn faults_inject_malformed_events_and_drop_after_the_turn() {
    let mut s = script(
        "vad",
        ScriptFaults {
            malformed: true,
            drop_after_turn: Some(1),
            ..ScriptFaults::default()
        },
    );
    let a = s.step(Input::Open);
    assert_eq!(
        kinds(&a),
        ["session.created", "<raw>", "emulator.unknown_event"]
    );
    let Action::SendRaw(raw) = &a[1] else {
        unreachable!()
    };
    assert!(serde_json::from_str::<Value>(raw).is_err());
    s.step(Input::Vad(VadEvent::SpeechStarted { audio_start_ms: 0 }));
    let a = s.step(Input::Vad(VadEvent::SpeechStopped { audio_end_ms: 10 }));
    let k = kinds(&a);
    let at = k.iter().position(|x| x == "response.created").unwrap();
    assert_eq!(&k[at - 2..at], ["<raw>", "emulator.unknown_event"]);
    let mut closing = CLOSING.to_vec();
    closing.push("<drop>");
    assert_eq!(kinds(&s.step(Input::AudioFinished)), closing);
}

#[test]
fn bad_client_events_get_error_events_and_change_nothing() {
    let mut s = script("vad", ScriptFaults::default());
    s.step(Input::Open);
    let cases = [
        ("not json", "invalid_event"),
        ("[1,2]", "invalid_event"),
        (r#"{"type":"made.up"}"#, "invalid_event"),
        (r#"{"no_type":1}"#, "invalid_event"),
        (r#"{"type":"session.update"}"#, "missing_required_parameter"),
        (
            r#"{"type":"session.update","session":{"instructions":"x"}}"#,
            "invalid_value",
        ),
        (
            r#"{"type":"conversation.item.create"}"#,
            "missing_required_parameter",
        ),
        (
            r#"{"type":"response.cancel"}"#,
            "response_cancel_not_active",
        ),
    ];
    for (input, code) in cases {
        let a = s.step(Input::Client(input));
        assert_eq!(kinds(&a), ["error"], "{input}");
        assert_eq!(sent(&a, "error")[0]["error"]["code"], code, "{input}");
    }
    assert!(
        s.step(Input::Client(r#"{"type":"input_audio_buffer.commit"}"#))
            .is_empty()
    );
    let a = s.step(Input::Client(
        r#"{"type":"session.update","session":{"type":"realtime"}}"#,
    ));
    assert_eq!(
        sent(&a, "session.updated")[0]["session"]["instructions"],
        ""
    );
}

#[test]
fn vad_is_ignored_in_timer_mode_and_timer_in_vad_mode() {
    let mut s = script("timer", ScriptFaults::default());
    s.step(Input::Open);
    assert!(
        s.step(Input::Vad(VadEvent::SpeechStarted { audio_start_ms: 0 }))
            .is_empty()
    );
    let mut v = script("vad", ScriptFaults::default());
    v.step(Input::Open);
    assert!(v.step(Input::Timer).is_empty());
    assert!(
        v.step(Input::Vad(VadEvent::SpeechStopped { audio_end_ms: 5 }))
            .is_empty()
    );
}

#[test]
fn clear_stops_audio_and_reports_cleared() {
    let mut s = script("timer", ScriptFaults::default());
    s.step(Input::Open);
    s.step(Input::Timer);
    let a = s.step(Input::Client(r#"{"type":"output_audio_buffer.clear"}"#));
    assert_eq!(
        kinds(&a),
        ["response.done", "<stop>", "output_audio_buffer.cleared"]
    );
    let done = &sent(&a, "response.done")[0]["response"];
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["status_details"]["reason"], "client_cancelled");
    assert!(s.step(Input::AudioFinished).is_empty());
}

#[test]
fn a_hang_up_mid_reply_sends_its_response_done_cancelled_with_usage() {
    let mut s = script("timer", ScriptFaults::default());
    s.step(Input::Open);
    s.step(Input::Timer);
    let a = s.step(Input::HangUp);
    assert_eq!(kinds(&a), ["response.done"]);
    let response = &sent(&a, "response.done")[0]["response"];
    assert_eq!(response["status"], "cancelled");
    assert_eq!(response["status_details"]["reason"], "client_cancelled");
    assert_eq!(
        response["usage"]["output_token_details"]["audio_tokens"],
        50
    );
    assert!(s.step(Input::HangUp).is_empty(), "only once");
}

#[test]
fn instructions_after_the_greeting_ask_for_the_goodbye() {
    let mut s = script("vad", ScriptFaults::default());
    s.step(Input::Open);
    s.step(Input::Client(r#"{"type":"response.create"}"#));
    s.step(Input::AudioFinished);
    let a = s.step(Input::Client(
        r#"{"type":"response.create","response":{"instructions":"Say goodbye."}}"#,
    ));
    assert_eq!(sent(&a, "response.created").len(), 1, "{:?}", kinds(&a));
    let end = s.step(Input::AudioFinished);
    let done = &sent(&end, "response.done")[0]["response"];
    assert_eq!(done["output"][0]["content"][0]["transcript"], "A bientot");
    assert_eq!(done["usage"]["input_tokens"], 300);
}

#[test]
fn response_cancel_ends_the_open_response_and_leaves_its_audio() {
    let mut s = script("timer", ScriptFaults::default());
    s.step(Input::Open);
    s.step(Input::Timer);
    let a = s.step(Input::Client(r#"{"type":"response.cancel"}"#));
    assert_eq!(kinds(&a), ["response.done"]);
    assert_eq!(
        sent(&a, "response.done")[0]["response"]["status"],
        "cancelled"
    );
    // The audio still plays out; its end is reported without a second response.done.
    assert_eq!(
        kinds(&s.step(Input::AudioFinished)),
        ["output_audio_buffer.stopped", "<timer 150>"]
    );
}

#[test]
fn speech_over_a_reply_interrupts_it_and_the_turn_goes_on() {
    let mut s = script("vad", ScriptFaults::default());
    s.step(Input::Open);
    s.step(Input::Vad(VadEvent::SpeechStarted { audio_start_ms: 0 }));
    let reply = s.step(Input::Vad(VadEvent::SpeechStopped { audio_end_ms: 800 }));
    let rid = sent(&reply, "response.created")[0]["response"]["id"].clone();

    // The member speaks while turn 1's reply plays.
    let a = s.step(Input::Vad(VadEvent::SpeechStarted {
        audio_start_ms: 1500,
    }));
    assert_eq!(
        kinds(&a),
        [
            "input_audio_buffer.speech_started",
            "<barge-in>",
            "response.done",
            "output_audio_buffer.cleared",
        ]
    );
    let done = &sent(&a, "response.done")[0]["response"];
    assert_eq!(done["id"], rid);
    assert_eq!(done["status"], "cancelled");
    assert_eq!(
        done["status_details"],
        json!({"type": "cancelled", "reason": "turn_detected"})
    );
    assert_eq!(done["output"][0]["status"], "incomplete");
    // Billed as generated (reference §8).
    assert_eq!(done["usage"]["output_token_details"]["audio_tokens"], 50);
    assert_eq!(
        sent(&a, "output_audio_buffer.cleared")[0]["response_id"],
        rid
    );
    // The cut audio never reports its end.
    assert!(s.step(Input::AudioFinished).is_empty());
    assert_eq!(s.turns_spoken(), 0);

    // The interrupting speech is turn 2: transcription, then its reply.
    let next = s.step(Input::Vad(VadEvent::SpeechStopped { audio_end_ms: 2600 }));
    assert!(kinds(&next).contains(&"input_audio_buffer.speech_stopped".to_string()));
    assert_eq!(
        sent(
            &next,
            "conversation.item.input_audio_transcription.completed"
        )[0]["transcript"],
        "Merci, au revoir"
    );
    assert_eq!(sent(&next, "response.created").len(), 1);
    let end = s.step(Input::AudioFinished);
    assert_eq!(
        sent(&end, "response.function_call_arguments.done")[0]["name"],
        "end_session"
    );
    assert_eq!(s.turns_spoken(), 1);
}

#[test]
fn speech_with_no_turn_left_does_not_interrupt() {
    let mut s = script("vad", ScriptFaults::default());
    s.step(Input::Open);
    for _ in 0..2 {
        s.step(Input::Vad(VadEvent::SpeechStarted { audio_start_ms: 0 }));
        s.step(Input::Vad(VadEvent::SpeechStopped { audio_end_ms: 1 }));
    }
    let a = s.step(Input::Vad(VadEvent::SpeechStarted { audio_start_ms: 9 }));
    assert!(a.is_empty(), "{a:?}");
}

#[test]
fn merge_overlays_objects_only() {
    let mut base = json!({"a": {"b": 1, "c": 2}, "d": [1]});
    merge(&mut base, &json!({"a": {"c": 3, "e": 4}, "d": [2]}));
    assert_eq!(base, json!({"a": {"b": 1, "c": 3, "e": 4}, "d": [2]}));
}

fn arb_input() -> impl Strategy<Value = u8> {
    0u8..9
}

proptest! {
    #[test]
    fn any_input_sequence_keeps_event_ids_unique(inputs in proptest::collection::vec(arb_input(), 0..60)) {
        let mut s = script("vad", ScriptFaults { malformed: true, ..ScriptFaults::default() });
        let mut ids = std::collections::HashSet::new();
        let mut plays = 0i64;
        for i in inputs {
            let actions = match i {
                0 => s.step(Input::Open),
                1 => s.step(Input::Vad(VadEvent::SpeechStarted { audio_start_ms: 1 })),
                2 => s.step(Input::Vad(VadEvent::SpeechStopped { audio_end_ms: 2 })),
                3 => s.step(Input::AudioFinished),
                4 => s.step(Input::Client(r#"{"type":"response.create"}"#)),
                5 => s.step(Input::Client("garbage")),
                6 => s.step(Input::Client(r#"{"type":"output_audio_buffer.clear"}"#)),
                7 => s.step(Input::Timer),
                _ => s.step(Input::Client(r#"{"type":"session.update","session":{"type":"realtime"}}"#)),
            };
            for a in &actions {
                match a {
                    Action::Send(v) => {
                        let id = v["event_id"].as_str().unwrap().to_string();
                        prop_assert!(ids.insert(id));
                    }
                    Action::Play { .. } => plays += 1,
                    Action::StopAudio | Action::BargeIn => plays = 0,
                    _ => {}
                }
                if i == 3 && matches!(a, Action::Send(v) if v["type"] == "output_audio_buffer.stopped") {
                    plays -= 1;
                }
            }
            prop_assert!(plays >= 0);
        }
    }
}
