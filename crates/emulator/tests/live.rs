//! The emulator's GPT-Live endpoint over real WebRTC on loopback, with the kiosk's own str0m
//! peer as the client: the documented create request and answer, the event contract in order,
//! per-second usage, and the faults (429 on creation, expiry, a dropped connection).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jarvis_realtime::peer::{Peer, PeerEvent, PeerEvents, PeerHandle, PeerOptions};
use jarvis_realtime_emulator::audio::OPUS_SILENCE;
use jarvis_realtime_emulator::faults::Faults;
use jarvis_realtime_emulator::scenario::Scenario;
use jarvis_realtime_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};
use tokio::time::timeout;

#[path = "support/mic.rs"]
mod mic;
use mic::Mic;

/// Guard against hangs only; not a performance assertion.
const GUARD: Duration = Duration::from_secs(20);

fn scenario() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/scenarios/live_goodbye.toml");
    Scenario::load(&path).unwrap()
}

async fn start(scenario: Scenario, faults: &[&str]) -> Emulator {
    let mut config = EmulatorConfig::new(scenario);
    config.faults = Faults::parse(faults).unwrap();
    Emulator::start(config).await.unwrap()
}

/// The session the kiosk asks for: Responses delegation declaring `end_session`.
fn session() -> Value {
    json!({
        "model": "gpt-live-1",
        "instructions": "Tu es JARVIS. Le membre s'appelle Marie.",
        "audio": {"output": {"voice": "marin"}},
        "delegation": {"type": "responses", "responses": {
            "model": "gpt-5-mini",
            "instructions": "Call end_session when the member says goodbye.",
            "tools": [{"type": "function", "name": "end_session", "strict": true,
                       "parameters": {"type": "object", "properties": {"reason": {"type": "string"}},
                                      "required": ["reason"], "additionalProperties": false}}]}}
    })
}

async fn post(emu: &Emulator, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/live/sessions", emu.base_url()))
        .bearer_auth("sk-test")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Offers, posts `{session, transport}` and applies the answer; returns the session id too.
async fn connect(emu: &Emulator, options: PeerOptions) -> (PeerHandle, PeerEvents, String) {
    let (pending, offer) = Peer::offer(options).unwrap();
    let resp = post(
        emu,
        json!({"session": session(), "transport": {"type": "webrtc", "sdp": offer}}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["transport"]["type"], "webrtc");
    let id = body["session"]["id"].as_str().unwrap().to_string();
    let (peer, events) = pending
        .accept(body["transport"]["sdp"].as_str().unwrap())
        .unwrap();
    (peer, events, id)
}

#[derive(Default)]
struct Received {
    events: Vec<(Instant, Value)>,
    voiced_frames: usize,
    closed: Option<String>,
    channel_open: bool,
}

impl Received {
    fn of(&self, kind: &str) -> Vec<&Value> {
        self.events
            .iter()
            .map(|(_, e)| e)
            .filter(|e| e["type"] == kind)
            .collect()
    }

    fn kinds(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|(_, e)| match e["type"].as_str() {
                Some("response.event") => format!(
                    "response.event:{}",
                    e["event"]["type"].as_str().unwrap_or("?")
                ),
                Some(t) => t.to_string(),
                None => "?".into(),
            })
            .collect()
    }
}

async fn until(events: &mut PeerEvents, got: &mut Received, done: impl Fn(&Received) -> bool) {
    timeout(GUARD, async {
        while !done(got) {
            match events.recv().await {
                Some(PeerEvent::Message(t)) => got
                    .events
                    .push((Instant::now(), serde_json::from_str(&t).unwrap())),
                Some(PeerEvent::Audio(a)) => {
                    got.voiced_frames += usize::from(a.payload != OPUS_SILENCE)
                }
                Some(PeerEvent::Closed { reason }) => {
                    got.closed = Some(reason.to_string());
                    return;
                }
                Some(PeerEvent::ChannelOpen) => got.channel_open = true,
                Some(PeerEvent::Connected) => {}
                None => return,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("guard timeout; events {:?}", got.kinds()));
}

#[tokio::test]
async fn a_whole_session_goodbye_by_tool_call_with_per_second_usage() {
    let emu = start(scenario(), &[]).await;
    let (peer, mut events, id) = connect(&emu, PeerOptions::loopback_only()).await;
    assert_eq!(id, "live_EMU000001");
    let peer = Arc::new(peer);
    let mut got = Received::default();
    // Sending before session.started is an error the client sees.
    until(&mut events, &mut got, |g| g.channel_open).await;
    peer.send_event(r#"{"type":"session.input_audio.unmute","event_id":"too_early"}"#.into())
        .unwrap();
    until(&mut events, &mut got, |g| {
        !g.of("session.started").is_empty()
    })
    .await;
    let started_at = Instant::now();
    assert_eq!(got.kinds(), ["error", "session.started"]);
    let err = &got.of("error")[0]["error"];
    assert_eq!(
        (err["code"].as_str(), err["client_event_id"].as_str()),
        (Some("session_not_started"), Some("too_early"))
    );
    let s = &got.of("session.started")[0]["session"];
    assert_eq!(
        (s["id"].as_str(), s["model"].as_str(), s["status"].as_str()),
        (Some(id.as_str()), Some("gpt-live-1"), Some("active"))
    );
    let expires_in = s["expires_at"].as_u64().unwrap() as i64
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
    assert!((7190..=7200).contains(&expires_in), "{expires_in}");

    // Turn 1: hello. Transcripts both ways, then 600 ms of reply audio (30 frames).
    let mic = Mic::start(peer.clone());
    mic.say(600);
    until(&mut events, &mut got, |g| g.voiced_frames >= 30).await;
    assert_eq!(
        got.of("session.input_transcript.delta")[0]["delta"],
        "Bonjour JARVIS"
    );
    let said: String = got
        .of("session.output_transcript.delta")
        .iter()
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(said, "Bonjour Marie, comment puis-je vous aider ?");

    // Turn 2: goodbye; after its reply the backend calls end_session.
    mic.say(600);
    until(&mut events, &mut got, |g| {
        !g.of("session.delegation.created").is_empty()
            && g.kinds()
                .last()
                .is_some_and(|k| k == "response.event:response.completed")
    })
    .await;
    let delegation = got.of("session.delegation.created")[0].clone();
    assert_eq!(delegation["delegation"]["target"], "responses");
    let delegation_id = delegation["delegation"]["id"].as_str().unwrap();
    let nested: Vec<&Value> = got.of("response.event");
    assert!(nested.iter().all(|e| e["delegation_id"] == delegation_id));
    let calls: Vec<&Value> = nested
        .iter()
        .map(|e| &e["event"])
        .filter(|e| {
            e["type"] == "response.output_item.done" && e["item"]["type"] == "function_call"
        })
        .map(|e| &e["item"])
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["name"], "end_session");
    let args: Value = serde_json::from_str(calls[0]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["reason"], "user_said_goodbye");
    let completed = &nested.last().unwrap()["event"]["response"];
    assert_eq!(
        completed["usage"]["input_tokens_details"]["cached_tokens"],
        1280
    );

    // The kiosk answers the call, lets the voice say goodbye, and closes.
    let output = json!({"type": "response.item.create", "event_id": "k_out",
                        "item": {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "{\"ok\":true}"}});
    peer.send_event(output.to_string()).unwrap();
    peer.send_event(r#"{"type":"response.create","event_id":"k_create"}"#.into())
        .unwrap();
    let before = got.voiced_frames;
    until(&mut events, &mut got, |g| g.voiced_frames >= before + 15).await;
    peer.send_event(r#"{"type":"session.close","event_id":"k_close"}"#.into())
        .unwrap();
    until(&mut events, &mut got, |g| g.closed.is_some()).await;
    let ended = started_at.elapsed();

    let kinds = got.kinds();
    let tail: Vec<&str> = kinds
        .iter()
        .map(String::as_str)
        .filter(|k| !k.starts_with("session.usage") && !k.ends_with("transcript.delta"))
        .collect();
    assert_eq!(
        tail[tail.len() - 5..],
        [
            "response.event:response.created",
            "response.event:response.output_text.delta",
            "response.event:response.output_item.done",
            "response.event:response.completed",
            "session.closed",
        ]
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "error").count(),
        1,
        "only the early one: {kinds:?}"
    );
    let closed = got.of("session.closed");
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["reason"], "close_requested");
    assert_eq!(kinds.last().map(String::as_str), Some("session.closed"));

    // Usage: one update a second, cumulative whole seconds; the close rounds the total up.
    let updates: Vec<u64> = got
        .of("session.usage.updated")
        .iter()
        .map(|e| e["usage"]["seconds"].as_u64().unwrap())
        .collect();
    assert!(updates.len() >= 2, "{updates:?}");
    assert_eq!(updates, (1..=updates.len() as u64).collect::<Vec<_>>());
    let final_s = closed[0]["usage"]["seconds"].as_u64().unwrap();
    assert!(
        final_s > *updates.last().unwrap() && final_s <= updates.len() as u64 + 1,
        "{final_s} after {updates:?}"
    );
    let measured = ended.as_secs_f64();
    assert!(
        (final_s as f64 - measured).abs() <= 1.0,
        "billed {final_s} s for {measured:.2} s"
    );
    assert_eq!(emu.stats().live_sessions, 1);
    assert_eq!(
        emu.stats().client_events,
        [
            "session.input_audio.unmute",
            "response.item.create",
            "response.create",
            "session.close"
        ]
    );
}

#[tokio::test]
async fn creation_refusals_follow_the_documented_statuses() {
    let (_pending, offer) = Peer::offer(PeerOptions::loopback_only()).unwrap();
    let good = json!({"session": session(), "transport": {"type": "webrtc", "sdp": offer}});
    let client = reqwest::Client::new();

    // Quota or rate limit: 429 with OpenAI's envelope and Retry-After; no session started.
    let emu = start(scenario(), &["http-status=429", "retry-after=3"]).await;
    let resp = post(&emu, good.clone()).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(emu.stats().live_sessions, 0);

    let emu = start(scenario(), &[]).await;
    let url = format!("{}/live/sessions", emu.base_url());
    let no_key = client.post(&url).json(&good).send().await.unwrap();
    assert_eq!(no_key.status(), 401);
    // Realtime habits: raw SDP, the model in the query, a top-level extra key.
    let raw = client
        .post(&url)
        .bearer_auth("sk")
        .header("content-type", "application/sdp")
        .body(offer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{body}"
    );
    let query = client
        .post(format!("{url}?model=gpt-live-1"))
        .bearer_auth("sk")
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 400);
    let mut extra = good.clone();
    extra["model"] = json!("gpt-live-1");
    let resp = post(&emu, extra).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["param"],
        "model"
    );
    let mut realtime_model = good.clone();
    realtime_model["session"]["model"] = json!("gpt-realtime");
    assert_eq!(post(&emu, realtime_model).await.status(), 404);
    let mut bad_sdp = good;
    bad_sdp["transport"]["sdp"] = json!("not an offer");
    let resp = post(&emu, bad_sdp).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["param"],
        "transport.sdp"
    );
    assert_eq!(emu.stats().live_sessions, 0);
}

#[tokio::test]
async fn the_session_expires_with_its_usage() {
    let emu = start(scenario(), &["expire-after-ms=2500"]).await;
    let (_peer, mut events, _) = connect(&emu, PeerOptions::loopback_only()).await;
    let mut got = Received::default();
    until(&mut events, &mut got, |g| g.closed.is_some()).await;
    let closed = got.of("session.closed");
    assert_eq!(closed.len(), 1, "{:?}", got.kinds());
    assert_eq!(closed[0]["reason"], "expired");
    // 2.5 s from creation, billed from session.started (0.3 s after the channel opened):
    // the updates count whole seconds, the close rounds the part-second up.
    let updates = got.of("session.usage.updated").len() as u64;
    let billed = closed[0]["usage"]["seconds"].as_u64().unwrap();
    assert!((1..=2).contains(&updates), "{updates}");
    assert_eq!(billed, updates + 1);
    assert!(
        got.closed
            .as_deref()
            .unwrap()
            .contains("closed the connection"),
        "{:?}",
        got.closed
    );
}

#[tokio::test]
async fn hangup_ends_the_session_with_session_closed() {
    let emu = start(scenario(), &[]).await;
    let (_peer, mut events, id) = connect(&emu, PeerOptions::loopback_only()).await;
    let mut got = Received::default();
    until(&mut events, &mut got, |g| {
        !g.of("session.started").is_empty()
    })
    .await;
    let resp = reqwest::Client::new()
        .post(format!("{}/live/sessions/{id}/hangup", emu.base_url()))
        .bearer_auth("sk")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    until(&mut events, &mut got, |g| g.closed.is_some()).await;
    assert_eq!(got.of("session.closed")[0]["reason"], "close_requested");
    assert_eq!(emu.stats().hangups, 1);
}

#[tokio::test]
async fn a_dropped_connection_ends_without_session_closed() {
    let mut scenario = scenario();
    scenario.trigger = jarvis_realtime_emulator::scenario::Trigger::Timer;
    let emu = start(scenario, &["drop-after-turn=1"]).await;
    let options = PeerOptions {
        idle_timeout: Duration::from_millis(1500),
        ..PeerOptions::loopback_only()
    };
    let (_peer, mut events, _) = connect(&emu, options).await;
    let mut got = Received::default();
    until(&mut events, &mut got, |g| g.closed.is_some()).await;
    assert!(got.of("session.closed").is_empty(), "{:?}", got.kinds());
    assert_eq!(got.of("session.input_transcript.delta").len(), 1);
    assert!(
        got.closed.as_deref().unwrap().contains("no packets"),
        "{:?}",
        got.closed
    );
    assert_eq!(emu.stats().drops, 1);
}
