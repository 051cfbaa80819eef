//! The emulator over real WebRTC on loopback, with the kiosk's own peer as the client:
//! continuous audio (silence between replies, marker bit on every packet) and barge-in.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jarvis_realtime::peer::{AudioFrame, Peer, PeerEvent, PeerEvents, PeerHandle, PeerOptions};
use jarvis_realtime_emulator::audio::OPUS_SILENCE;
use jarvis_realtime_emulator::record::Happening;
use jarvis_realtime_emulator::scenario::Scenario;
use jarvis_realtime_emulator::vad::level_dbfs;
use jarvis_realtime_emulator::{Emulator, EmulatorConfig};
use serde_json::Value;
use tokio::time::timeout;

#[path = "support/mic.rs"]
mod mic;
use mic::Mic;

/// Guard against hangs only; not a performance assertion.
const GUARD: Duration = Duration::from_secs(20);

/// The barge-in fixture: a 5 s reply to interrupt, then a short turn calling end_session.
fn scenario() -> Scenario {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/scenarios/barge_in.toml");
    Scenario::load(&path).unwrap()
}

async fn start(continuous: bool) -> Emulator {
    let mut scenario = scenario();
    scenario.continuous_audio = continuous;
    Emulator::start(EmulatorConfig::new(scenario))
        .await
        .unwrap()
}

async fn connect(emu: &Emulator) -> (PeerHandle, PeerEvents) {
    let (pending, offer) = Peer::offer(PeerOptions::loopback_only()).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/realtime/calls", emu.base_url()))
        .bearer_auth("ek_test")
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    pending.accept(&resp.text().await.unwrap()).unwrap()
}

/// What the client received.
#[derive(Default)]
struct Received {
    events: Vec<Value>,
    audio: Vec<AudioFrame>,
}

impl Received {
    fn count(&self, kind: &str) -> usize {
        self.events.iter().filter(|e| e["type"] == kind).count()
    }

    fn event(&self, kind: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    }
}

/// Receives until `done` holds.
async fn until(events: &mut PeerEvents, got: &mut Received, done: impl Fn(&Received) -> bool) {
    timeout(GUARD, async {
        while !done(got) {
            match events.recv().await.expect("peer events ended") {
                PeerEvent::Message(t) => got.events.push(serde_json::from_str(&t).unwrap()),
                PeerEvent::Audio(a) => got.audio.push(a),
                PeerEvent::Closed { reason } => panic!("closed: {reason}"),
                PeerEvent::Connected | PeerEvent::ChannelOpen => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        let kinds: Vec<_> = got.events.iter().map(|e| e["type"].clone()).collect();
        panic!(
            "guard timeout; events {kinds:?}, {} frames",
            got.audio.len()
        )
    });
}

fn is_silence(f: &AudioFrame) -> bool {
    f.payload == OPUS_SILENCE
}

#[tokio::test]
async fn continuous_audio_sends_marked_silence_between_replies() {
    assert!(
        scenario().continuous_audio,
        "the fixture streams as OpenAI does"
    );
    let emu = start(true).await;
    let (peer, mut events) = connect(&emu).await;
    let mut got = Received::default();
    until(&mut events, &mut got, |g| g.count("session.created") == 1).await;
    // Silence flows before any reply.
    until(&mut events, &mut got, |g| g.audio.len() >= 10).await;
    peer.send_event(r#"{"type":"response.create"}"#.into())
        .unwrap();
    until(&mut events, &mut got, |g| {
        g.count("output_audio_buffer.stopped") == 1
    })
    .await;
    let at_stop = got.audio.len();
    until(&mut events, &mut got, |g| g.audio.len() >= at_stop + 15).await;

    let frames = &got.audio;
    assert!(
        frames.iter().all(|f| f.marker),
        "marker bit on every packet"
    );
    assert!(
        frames.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "one packet every frame, none missing"
    );
    assert!(
        frames
            .windows(2)
            .all(|w| w[1].rtp_time == w[0].rtp_time + 960),
        "20 ms apart on the RTP clock"
    );
    let first_reply = frames.iter().position(|f| !is_silence(f)).unwrap();
    let last_reply = frames.iter().rposition(|f| !is_silence(f)).unwrap();
    assert!(first_reply >= 10, "silence before the greeting");
    assert!(frames.len() - last_reply > 10, "silence after the greeting");
    // The greeting (400 ms) is 20 frames, sent back to back without silence inside.
    assert_eq!(last_reply + 1 - first_reply, 20);
    let record = &emu.calls()[0];
    assert_eq!(record.replies.len(), 1);
    assert_eq!(record.replies[0].frames_sent, 20);
    assert!(!record.replies[0].interrupted);
}

#[tokio::test]
async fn reply_only_mode_sends_nothing_between_replies() {
    let emu = start(false).await;
    let (peer, mut events) = connect(&emu).await;
    let mut got = Received::default();
    until(&mut events, &mut got, |g| g.count("session.created") == 1).await;
    peer.send_event(r#"{"type":"response.create"}"#.into())
        .unwrap();
    // RTP and the data channel are separate paths: the last frames may land after `stopped`.
    until(&mut events, &mut got, |g| {
        g.count("output_audio_buffer.stopped") == 1 && g.audio.len() >= 20
    })
    .await;
    // A silence stream would have started at connection, before the greeting.
    assert_eq!(got.audio.len(), 20, "the greeting's frames only");
    assert!(got.audio.iter().all(|f| !f.marker && !is_silence(f)));
}

#[tokio::test]
async fn the_member_interrupts_a_long_reply() {
    let emu = start(true).await;
    let (peer, mut events) = connect(&emu).await;
    let peer = Arc::new(peer);
    let mut got = Received::default();
    until(&mut events, &mut got, |g| g.count("session.created") == 1).await;
    let mic = Mic::start(peer.clone());

    // Turn 1: the question, then the 5 s reply starts.
    mic.say(600);
    until(&mut events, &mut got, |g| {
        g.count("output_audio_buffer.started") == 1
    })
    .await;
    let reply_id = got.event("response.created")["response"]["id"].clone();
    let before = got.audio.len();
    until(&mut events, &mut got, |g| {
        g.audio[before..].iter().filter(|f| !is_silence(f)).count() >= 50
    })
    .await;

    // One second into the reply the member speaks: barge-in.
    mic.say(800);
    until(&mut events, &mut got, |g| {
        g.count("output_audio_buffer.cleared") == 1
    })
    .await;
    let kinds: Vec<&str> = got
        .events
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    let started = kinds
        .iter()
        .rposition(|k| *k == "input_audio_buffer.speech_started")
        .unwrap();
    assert_eq!(
        kinds[started..],
        [
            "input_audio_buffer.speech_started",
            "response.done",
            "output_audio_buffer.cleared"
        ]
    );
    let done = &got
        .events
        .iter()
        .rev()
        .find(|e| e["type"] == "response.done")
        .unwrap()["response"];
    assert_eq!(done["id"], reply_id);
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["status_details"]["reason"], "turn_detected");
    assert_eq!(done["usage"]["output_tokens"], 125, "billed as generated");

    // The turn goes on: transcription of the interruption, then its own reply, whole.
    until(&mut events, &mut got, |g| {
        g.count("output_audio_buffer.stopped") == 1
    })
    .await;
    assert_eq!(
        got.events
            .iter()
            .filter(|e| e["type"] == "conversation.item.input_audio_transcription.completed")
            .map(|e| e["transcript"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["Quel est mon programme ?", "Attends, non, au revoir"]
    );
    let statuses: Vec<&str> = got
        .events
        .iter()
        .filter(|e| e["type"] == "response.done")
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["cancelled", "completed"]);

    let record = &emu.calls()[0];
    let speech: Vec<bool> = record
        .timeline
        .iter()
        .filter_map(|e| match e.what {
            Happening::SpeechStarted { audio_playing } => Some(audio_playing),
            _ => None,
        })
        .collect();
    assert_eq!(
        speech,
        [false, true],
        "the second speech came over the reply"
    );
    let barge = record.barge_ins();
    assert_eq!(barge.len(), 1);
    let Happening::BargeIn { frames_sent, .. } = &barge[0].what else {
        unreachable!()
    };
    let cut = &record.replies[0];
    assert!(cut.interrupted);
    assert_eq!(cut.frames_sent, *frames_sent);
    assert!(
        (50..150).contains(frames_sent),
        "cut about 1 s into the 5 s reply: {frames_sent} frames"
    );
    // What reached the client is what the emulator says it sent: the cut reply, then turn 2's
    // 300 ms reply (15 frames); nothing of the cut reply after the cut.
    let expected = cut.frames_sent + 15;
    until(&mut events, &mut got, |g| {
        g.audio.iter().filter(|f| !is_silence(f)).count() >= expected
    })
    .await;
    assert_eq!(
        got.audio.iter().filter(|f| !is_silence(f)).count(),
        expected
    );
    // The member audio the emulator decoded: 600 + 800 ms of speech at the tone's level.
    let voiced: Vec<f32> = record
        .member_audio
        .chunks(960)
        .map(level_dbfs)
        .filter(|&l| l > -40.0)
        .collect();
    let voiced_ms = voiced.len() * 20;
    assert!(
        (1300..=1500).contains(&voiced_ms),
        "heard {voiced_ms} ms of speech"
    );
    let mean = voiced.iter().sum::<f32>() / voiced.len() as f32;
    assert!((-16.0..=-11.0).contains(&mean), "{mean} dBFS");
}
