//! The kiosk's peer against the local Realtime emulator, over real WebRTC on loopback:
//! HTTP SDP exchange, data channel, session.update, VAD-driven turns from real Opus audio,
//! reply audio, usage, the end_session call and the faults.

use std::path::Path;
use std::time::Duration;

use jarvis_config::OpenAiConfig;
use jarvis_core::events::MembershipStatus;
use jarvis_realtime::peer::{
    AudioFrame, CloseReason, Peer, PeerEvent, PeerEvents, PeerHandle, PeerOptions,
};
use jarvis_realtime::protocol::{self, ClientEvent, Decoded};
use jarvis_realtime::session_update::{self, InstructionsTemplate, MemberContext};
use jarvis_realtime_emulator::faults::Faults;
use jarvis_realtime_emulator::scenario::Scenario;
use jarvis_realtime_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};
use tokio::time::timeout;

/// Guard against hangs only; not a performance assertion.
const GUARD: Duration = Duration::from_secs(20);

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scenarios")
        .join(name);
    Scenario::load(&path).unwrap()
}

async fn emulator(name: &str, faults: &[&str]) -> Emulator {
    Emulator::start(EmulatorConfig {
        faults: Faults::parse(faults).unwrap(),
        ..EmulatorConfig::new(scenario(name))
    })
    .await
    .unwrap()
}

async fn post_offer(base_url: &str, offer: String) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base_url}/realtime/calls"))
        .bearer_auth("ek_test")
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .unwrap()
}

/// Offer, POST, accept: returns the running peer and the call id from `Location`.
async fn connect(emu: &Emulator, options: PeerOptions) -> (PeerHandle, PeerEvents, String) {
    let (pending, offer) = Peer::offer(options).unwrap();
    let resp = post_offer(&emu.base_url(), offer).await;
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("/v1/realtime/calls/rtc_"),
        "{location}"
    );
    assert_eq!(resp.headers()["content-type"], "application/sdp");
    let answer = resp.text().await.unwrap();
    let (peer, events) = pending.accept(&answer).unwrap();
    let call_id = location.rsplit('/').next().unwrap().to_string();
    (peer, events, call_id)
}

/// Collects what arrives until a JSON event of type `kind`; returns it, the events seen and
/// the audio frames received on the way.
struct Session {
    events: PeerEvents,
    seen: Vec<String>,
    audio: Vec<AudioFrame>,
    raw: Vec<String>,
    /// JSON events the kiosk's own decoder rejects (must stay empty but for injected faults).
    undecodable: Vec<String>,
}

impl Session {
    fn new(events: PeerEvents) -> Self {
        Self {
            events,
            seen: Vec::new(),
            audio: Vec::new(),
            raw: Vec::new(),
            undecodable: Vec::new(),
        }
    }

    async fn until(&mut self, kind: &str) -> Value {
        timeout(GUARD, async {
            loop {
                match self.events.recv().await.expect("peer events ended") {
                    PeerEvent::Message(text) => {
                        let Ok(v) = serde_json::from_str::<Value>(&text) else {
                            self.raw.push(text);
                            continue;
                        };
                        let t = v["type"].as_str().unwrap_or_default().to_string();
                        if let d @ (Decoded::Unknown { .. } | Decoded::Malformed { .. }) =
                            protocol::decode(&text)
                        {
                            self.undecodable.push(format!("{t}: {d:?}"));
                        }
                        self.seen.push(t.clone());
                        if t == kind {
                            return v;
                        }
                    }
                    PeerEvent::Audio(a) => self.audio.push(a),
                    PeerEvent::Closed { reason } => {
                        panic!("closed while waiting for {kind}: {reason}")
                    }
                    PeerEvent::Connected | PeerEvent::ChannelOpen => {}
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("guard timeout waiting for {kind}; seen {:?}", self.seen))
    }

    async fn closed(&mut self) -> CloseReason {
        timeout(GUARD, async {
            loop {
                if let PeerEvent::Closed { reason } =
                    self.events.recv().await.expect("events ended")
                {
                    return reason;
                }
            }
        })
        .await
        .expect("guard timeout waiting for Closed")
    }
}

fn encoder() -> opus::Encoder {
    opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap()
}

/// Speaks like a microphone: `tone_ms` of a 300 Hz tone then `silence_ms` of silence, as 20 ms
/// Opus frames paced in real time.
async fn speak(peer: &PeerHandle, enc: &mut opus::Encoder, tone_ms: u32, silence_ms: u32) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let frames = (tone_ms + silence_ms) / 20;
    for i in 0..frames {
        tick.tick().await;
        let voiced = i < tone_ms / 20;
        let pcm: Vec<i16> = (0..960)
            .map(|k| {
                if !voiced {
                    return 0;
                }
                let t = (i as usize * 960 + k) as f32 / 48_000.0;
                ((t * 300.0 * std::f32::consts::TAU).sin() * 9000.0) as i16
            })
            .collect();
        peer.send_audio(enc.encode_vec(&pcm, 1500).unwrap(), 960)
            .unwrap();
    }
}

/// Decodes frames and returns (RMS level in dBFS, dominant frequency by zero crossings).
fn analyse(frames: &[AudioFrame]) -> (f32, f32) {
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut pcm = Vec::new();
    let mut buf = [0i16; 5760];
    for f in frames {
        let n = dec.decode(&f.payload, &mut buf, false).unwrap();
        pcm.extend_from_slice(&buf[..n]);
    }
    // Skip the codec's start-up.
    let pcm = &pcm[pcm.len().min(960 * 3)..];
    let level = jarvis_realtime_emulator::vad::level_dbfs(pcm);
    let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    let hz = crossings as f32 / 2.0 / (pcm.len() as f32 / 48_000.0);
    (level, hz)
}

fn assert_tone(frames: &[AudioFrame], hz: f32) {
    assert!(frames.len() >= 10, "only {} reply frames", frames.len());
    let (level, measured) = analyse(frames);
    assert!(level > -20.0, "reply level {level} dBFS");
    assert!(
        (measured - hz).abs() < hz * 0.05,
        "reply at {measured} Hz, expected {hz}"
    );
}

const SESSION_UPDATE: &str = r#"{"type":"session.update","event_id":"evt_kiosk_0001","session":{"type":"realtime","instructions":"You are JARVIS.","audio":{"output":{"voice":"cedar"}},"tools":[{"type":"function","name":"end_session","description":"End the conversation.","parameters":{"type":"object","properties":{"reason":{"type":"string"}},"required":[]}}],"tool_choice":"auto"}}"#;

#[tokio::test]
async fn vad_driven_conversation_ends_with_end_session_and_goodbye() {
    let emu = emulator("goodbye.toml", &[]).await;
    let (peer, events, call_id) = connect(&emu, PeerOptions::for_base_url(&emu.base_url())).await;
    let mut s = Session::new(events);

    let created = s.until("session.created").await;
    assert_eq!(created["session"]["model"], "gpt-realtime");
    // The daemon's own session.update (French template, end_session tool).
    let cfg = OpenAiConfig::default();
    let template = InstructionsTemplate::load(&cfg).unwrap();
    let member = MemberContext {
        first_name: Some("Marie"),
        language: "fr",
        membership: MembershipStatus::Active,
    };
    let update = session_update::build(&cfg, &template, &member);
    peer.send_event(update.to_json().unwrap()).unwrap();
    let updated = s.until("session.updated").await;
    assert!(
        updated["session"]["instructions"]
            .as_str()
            .unwrap()
            .contains("Marie")
    );
    assert_eq!(
        updated["session"]["audio"]["output"]["voice"],
        cfg.voice.as_str()
    );
    assert_eq!(updated["session"]["tools"][0]["name"], "end_session");

    // Turn 1: real audio; the emulator's VAD must find the turn.
    let mut enc = encoder();
    speak(&peer, &mut enc, 600, 700).await;
    let started = s.until("input_audio_buffer.speech_started").await;
    assert!(started["audio_start_ms"].as_u64().is_some());
    s.until("input_audio_buffer.speech_stopped").await;
    let transcript = s
        .until("conversation.item.input_audio_transcription.completed")
        .await;
    assert_eq!(transcript["transcript"], "Bonjour JARVIS");
    assert_eq!(transcript["usage"]["total_tokens"], 45);
    s.until("response.created").await;
    s.until("output_audio_buffer.started").await;
    s.audio.clear();
    // The response's closing events come with the end of its audio, then `stopped`.
    let said = s.until("response.output_audio_transcript.done").await;
    assert_eq!(
        said["transcript"],
        "Bonjour Marie ! Comment puis-je vous aider ?"
    );
    let done = s.until("response.done").await;
    assert_eq!(
        done["response"]["usage"],
        json!({
            "total_tokens": 2022, "input_tokens": 1670, "output_tokens": 352,
            "input_token_details": {"text_tokens": 1450, "audio_tokens": 220, "image_tokens": 0,
                "cached_tokens": 1344,
                "cached_tokens_details": {"text_tokens": 1280, "audio_tokens": 64, "image_tokens": 0}},
            "output_token_details": {"text_tokens": 42, "audio_tokens": 310}
        })
    );
    s.until("output_audio_buffer.stopped").await;
    assert_tone(&s.audio, 440.0);

    // Turn 2: goodbye; the model calls end_session.
    speak(&peer, &mut enc, 500, 600).await;
    let args = s.until("response.function_call_arguments.done").await;
    assert_eq!(args["name"], "end_session");
    let reason: Value = serde_json::from_str(args["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(reason["reason"], "user_said_goodbye");
    let done = s.until("response.done").await;
    let call = &done["response"]["output"][1];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["call_id"], args["call_id"]);
    assert_eq!(done["response"]["usage"]["input_tokens"], 1900);

    let fc_call_id = args["call_id"].as_str().unwrap();
    let output = ClientEvent::function_call_output(fc_call_id, r#"{"ok":true}"#);
    peer.send_event(output.to_json().unwrap()).unwrap();
    let create = ClientEvent::response_create();
    peer.send_event(create.to_json().unwrap()).unwrap();
    s.until("conversation.item.done").await;
    s.until("output_audio_buffer.started").await;
    s.audio.clear();
    let bye = s.until("response.done").await;
    assert_eq!(
        bye["response"]["output"][0]["content"][0]["transcript"],
        "À bientôt !"
    );
    assert_eq!(
        bye["response"]["usage"]["input_token_details"]["cached_tokens"],
        1500
    );
    s.until("output_audio_buffer.stopped").await; // the goodbye's audio
    assert_tone(&s.audio, 330.0);

    // Hang up as the daemon will.
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/realtime/calls/{call_id}/hangup",
            emu.base_url()
        ))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(s.closed().await, CloseReason::Remote);

    assert!(s.undecodable.is_empty(), "{:?}", s.undecodable);
    let stats = emu.stats();
    assert_eq!(stats.calls_answered, 1);
    assert_eq!(stats.hangups, 1);
    assert_eq!(
        stats.client_events,
        [
            "session.update",
            "conversation.item.create",
            "response.create"
        ]
    );
}

#[tokio::test]
async fn timer_scenario_with_malformed_events_keeps_the_peer_alive() {
    let emu = emulator("timer.toml", &["malformed"]).await;
    let (peer, events, _) = connect(&emu, PeerOptions::loopback_only()).await;
    let mut s = Session::new(events);
    s.until("session.created").await;
    s.until("emulator.unknown_event").await;
    assert_eq!(s.raw.len(), 1, "one non-JSON message");
    peer.send_event(SESSION_UPDATE.into()).unwrap();
    peer.send_event("this is not json".into()).unwrap();
    s.until("session.updated").await;
    let err = s.until("error").await;
    assert_eq!(err["error"]["code"], "invalid_event");
    let done = s.until("response.done").await;
    assert_eq!(done["response"]["usage"]["total_tokens"], 165);
    s.until("output_audio_buffer.stopped").await;
    assert_tone(&s.audio, 440.0);
    assert!(
        s.raw.len() >= 2,
        "malformed message before the response too"
    );
}

#[tokio::test]
async fn drop_mid_call_surfaces_as_closed_idle() {
    let emu = emulator("timer.toml", &["drop-after-turn=1"]).await;
    let options = PeerOptions {
        idle_timeout: Duration::from_secs(2),
        ..PeerOptions::loopback_only()
    };
    let (_peer, events, _) = connect(&emu, options).await;
    let mut s = Session::new(events);
    s.until("response.done").await;
    s.until("output_audio_buffer.stopped").await;
    let reason = s.closed().await;
    assert!(matches!(reason, CloseReason::Idle { .. }), "{reason:?}");
    assert!(
        reason.to_string().contains("connection dropped"),
        "{reason}"
    );
    assert_eq!(emu.stats().drops, 1);
}

#[tokio::test]
async fn slow_answer_still_connects() {
    let emu = emulator("timer.toml", &["answer-delay-ms=300"]).await;
    let (_peer, events, _) = connect(&emu, PeerOptions::loopback_only()).await;
    Session::new(events).until("session.created").await;
}

async fn offer_status(emu: &Emulator) -> reqwest::Response {
    let (_pending, offer) = Peer::offer(PeerOptions::loopback_only()).unwrap();
    post_offer(&emu.base_url(), offer).await
}

async fn error_code(resp: reqwest::Response) -> Value {
    let v: Value = resp.json().await.unwrap();
    v["error"]["code"].clone()
}

#[tokio::test]
async fn http_faults_500_401_429_follow_openai() {
    let emu = emulator("timer.toml", &["http-status=500"]).await;
    let r = offer_status(&emu).await;
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "server_error");

    let emu = emulator("timer.toml", &["http-status=401"]).await;
    let r = offer_status(&emu).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r).await, "invalid_api_key");

    let emu = emulator("timer.toml", &["http-status=429", "retry-after=7"]).await;
    let r = offer_status(&emu).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(error_code(r).await, "rate_limit_exceeded");
    let r = reqwest::Client::new()
        .post(format!("{}/realtime/client_secrets", emu.base_url()))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}

#[tokio::test]
async fn fail_times_recovers_after_n_errors() {
    let emu = emulator("timer.toml", &["http-status=503", "fail-times=1"]).await;
    assert_eq!(offer_status(&emu).await.status(), 503);
    assert_eq!(offer_status(&emu).await.status(), 201);
}

#[tokio::test]
async fn bad_requests_get_openai_error_envelopes() {
    let emu = emulator("timer.toml", &[]).await;
    let client = reqwest::Client::new();
    let base = emu.base_url();
    // No key.
    let r = client
        .post(format!("{base}/realtime/calls"))
        .header("content-type", "application/sdp")
        .body("v=0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Wrong content type.
    let r = client
        .post(format!("{base}/realtime/calls"))
        .bearer_auth("ek_x")
        .json(&json!({"sdp": "v=0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Garbage SDP.
    let r = post_offer(&base, "v=0\r\ngarbage".into()).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid SDP offer"),
        "{v}"
    );
    // Unknown call, unknown path.
    let r = client
        .post(format!("{base}/realtime/calls/rtc_nope/hangup"))
        .bearer_auth("sk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client
        .get(format!("{base}/realtime/calls"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(emu.stats().calls_answered, 0);
}

#[tokio::test]
async fn client_secret_has_the_ga_shape() {
    let emu = emulator("timer.toml", &[]).await;
    let r = reqwest::Client::new()
        .post(format!("{}/realtime/client_secrets", emu.base_url()))
        .bearer_auth("sk-test")
        .json(&json!({"expires_after": {"anchor": "created_at", "seconds": 60},
                      "session": {"type": "realtime", "model": "gpt-realtime", "audio": {"output": {"voice": "marin"}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["value"].as_str().unwrap().starts_with("ek_"));
    assert!(v["expires_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(v["session"]["type"], "realtime");
    assert_eq!(v["session"]["audio"]["output"]["voice"], "marin");
    let r = reqwest::Client::new()
        .post(format!("{}/realtime/client_secrets", emu.base_url()))
        .bearer_auth("sk-test")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
