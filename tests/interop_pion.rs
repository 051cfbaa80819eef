//! Interop with an independent WebRTC stack: the real daemon (pty scanner, virtual ALSA card)
//! holds a whole session with a Pion peer standing in for OpenAI (`tests/interop/pion-peer`,
//! built offline from Debian's Go sources). The peer answers as OpenAI does (`a=setup:active`,
//! host candidates, Opus, packets all the call long, silence between replies) and plays a
//! greeting, two turns found by its own VAD on the decoded member audio, the second calling
//! `end_session`.
//!
//! Checked: the data channel's SCTP stream id has the parity RFC 8832 gives the kiosk's DTLS
//! role, the member's speech reaches the peer (measured on what it decoded), JARVIS's replies
//! reach the speaker whole (measured on the speaker file), and the session ends by
//! `end_session` with its cost.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jarvis_core::money::NanoUsd;
use support::rig::Kiosk;

/// The Pion peer, built by `tests/interop/pion-peer/build.sh` and running until dropped.
struct PionPeer {
    child: Child,
    base_url: String,
    out: tempfile::TempDir,
}

impl PionPeer {
    /// Uses `$JARVIS_PION_PEER` (what `scripts/test.sh` built) or builds the peer here; `args`
    /// go to the peer (`--tcp-only`).
    fn start(args: &[&str]) -> PionPeer {
        let binary = match std::env::var_os("JARVIS_PION_PEER") {
            Some(path) => PathBuf::from(path),
            None => {
                let binary = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pion-peer");
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/pion-peer/build.sh");
                let built = Command::new(script)
                    .arg(&binary)
                    .status()
                    .expect("running tests/interop/pion-peer/build.sh");
                assert!(
                    built.success(),
                    "the Pion peer did not build: apt-get install golang-go \
                     golang-github-pion-webrtc.v3-dev libopus-dev"
                );
                binary
            }
        };
        let out = tempfile::tempdir().unwrap();
        let mut child = Command::new(&binary)
            .args(["--listen", "127.0.0.1:0", "--out"])
            .arg(out.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(out.path().join("peer.log")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base_url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the peer: {line:?}"))
            .to_string();
        PionPeer {
            child,
            base_url,
            out,
        }
    }

    fn state(&self) -> Option<serde_json::Value> {
        let port: u16 = self
            .base_url
            .rsplit(':')
            .next()?
            .split('/')
            .next()?
            .parse()
            .ok()?;
        let (status, body) = support::net::http_get(port, "/interop/state").ok()?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    }

    /// How many times the peer has sent `event`.
    fn sent(&self, event: &str) -> usize {
        self.state().map_or(0, |s| {
            s["timeline"].as_array().map_or(0, |t| {
                t.iter()
                    .filter(|e| e["event"] == "sent" && e["detail"] == event)
                    .count()
            })
        })
    }

    /// Waits until the peer has sent `event` `n` times; on timeout shows both sides' logs.
    fn wait_sent(&self, event: &str, n: usize, kiosk: &Kiosk) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.sent(event) < n {
            assert!(
                Instant::now() < deadline,
                "the peer did not send {event} x{n} within 20 s\npeer: {:#}\n{}\ndaemon:\n{}",
                self.state().unwrap_or_default(),
                self.log(),
                kiosk.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.out.path().join("peer.log")).unwrap_or_default()
    }
}

impl Drop for PionPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// RMS level in dBFS of each 20 ms frame of mono samples.
fn frame_levels(mono: &[i16]) -> Vec<f32> {
    mono.chunks(960)
        .map(|c| {
            let sum: f64 = c.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            let rms = (sum / c.len() as f64).sqrt() / 32768.0;
            if rms < 1e-6 {
                -120.0
            } else {
                20.0 * rms.log10() as f32
            }
        })
        .collect()
}

fn s16(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Voiced runs (frames above -40 dBFS) as (start frame, length in frames).
fn voiced_runs(levels: &[f32]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &l) in levels.iter().chain(std::iter::once(&-120.0)).enumerate() {
        match (l > -40.0, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i - s));
                start = None;
            }
            _ => {}
        }
    }
    runs
}

/// The replies the peer speaks (tone lengths in ms): greeting, turn 1, turn 2.
const REPLIES_MS: [usize; 3] = [1000, 2000, 800];
/// Length of the badge-accepted chime (`assets/prompts/badge_accepted.wav`).
const CHIME_MS: usize = 320;

fn whole_session(extra: &str) {
    whole_session_with(&[], extra);
}

fn whole_session_with(peer_args: &[&str], extra: &str) {
    let peer = PionPeer::start(peer_args);
    let mut kiosk = Kiosk::start_at(&peer.base_url, "kiosk-interop", extra, &[]);
    kiosk.scanner.scan("0012345678");

    // The member answers the greeting, then says goodbye after the first reply.
    peer.wait_sent("output_audio_buffer.stopped", 1, &kiosk);
    kiosk.mic().say(&support::voice::utterance(1200));
    peer.wait_sent("output_audio_buffer.stopped", 2, &kiosk);
    kiosk.mic().say(&support::voice::utterance(1200));

    let s = kiosk.ended_session(Duration::from_secs(40));
    let state = support::wait_until("the peer hung up", Duration::from_secs(10), || {
        peer.state().filter(|s| s["hung_up"] == true)
    });
    let log = kiosk.log();
    let context = format!("{s:?}\npeer: {state:#}\n{}\ndaemon:\n{log}", peer.log());
    assert_eq!(s.end_reason.as_deref(), Some("goodbye"), "{context}");

    // Signalling as OpenAI answers: DTLS client (setup:active), host candidates only.
    let answer = state["answer_sdp"].as_str().unwrap();
    assert!(answer.contains("a=setup:active"), "{answer}");
    let candidates: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate"))
        .collect();
    assert!(!candidates.is_empty(), "{answer}");
    assert!(
        candidates.iter().all(|c| c.contains("typ host")),
        "{answer}"
    );
    if peer_args.contains(&"--tcp-only") {
        assert!(
            candidates
                .iter()
                .all(|c| c.contains(" tcp ") && c.contains("tcptype passive")),
            "{answer}"
        );
        let connected = log
            .lines()
            .find(|l| l.contains("WebRTC connected"))
            .unwrap_or_default();
        assert!(connected.contains("Tcp"), "{connected}");
    }
    // RFC 8832 §6: the DTLS client uses even stream ids, the server odd ones. The peer is the
    // client, so the channel the kiosk (DTLS server) opened must have an odd id.
    let stream_id = state["stream_id"].as_i64().unwrap();
    eprintln!("interop: oai-events on SCTP stream {stream_id}");
    assert_eq!(state["label"], "oai-events");
    assert_eq!(stream_id % 2, 1, "{context}");

    // The member's speech reached the peer: two utterances, as long and as loud as said.
    let heard = s16(&std::fs::read(peer.out.path().join("member.pcm")).unwrap());
    let voiced =
        |levels: Vec<f32>| -> Vec<f32> { levels.into_iter().filter(|&l| l > -40.0).collect() };
    let heard = voiced(frame_levels(&heard));
    let said = voiced(frame_levels(&s16(&support::voice::utterance(1200))));
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    let (heard_ms, said_ms) = (heard.len() * 20, 2 * said.len() * 20);
    eprintln!(
        "interop: peer heard {heard_ms} ms of speech at {:.1} dBFS; the member said {said_ms} ms at {:.1} dBFS",
        mean(&heard),
        mean(&said)
    );
    assert!(
        heard_ms * 10 >= said_ms * 8 && heard_ms <= said_ms + 100,
        "the peer heard {heard_ms} ms of speech, the member said {said_ms} ms\n{context}"
    );
    assert!(
        (mean(&heard) - mean(&said)).abs() <= 3.0,
        "heard at {:.1} dBFS, said at {:.1} dBFS",
        mean(&heard),
        mean(&said)
    );
    let timeline = state["timeline"].as_array().unwrap();
    let moments: Vec<String> = timeline
        .iter()
        .filter(|e| {
            e["event"] != "sent" && e["event"] != "received"
                || e["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("output_audio_buffer"))
        })
        .map(|e| format!("{} {} {}", e["at_ms"], e["event"], e["detail"]))
        .collect();
    eprintln!("interop: peer timeline {moments:#?}");
    let speech_started = timeline
        .iter()
        .filter(|e| e["event"] == "speech_started")
        .count();
    assert_eq!(speech_started, 2, "{context}");

    // The cost: greeting, turn 1, turn 2 (end_session) and turn 1's transcription.
    use support::price::*;
    let greeting = 80 * TEXT_IN + 6 * TEXT_OUT + 25 * AUDIO_OUT;
    let turn1 = 100 * TEXT_IN + 20 * AUDIO_IN + 5 * TEXT_OUT + 40 * AUDIO_OUT;
    let turn2 = 50 * TEXT_IN + 100 * CACHED + 30 * AUDIO_IN + 5 * TEXT_OUT + 30 * AUDIO_OUT;
    let asr = 20 * ASR_AUDIO_IN + 4 * ASR_TEXT_OUT;
    assert_eq!(s.responses, 3, "{context}");
    assert_eq!(s.cost.transcription_nusd, NanoUsd(asr));
    assert_eq!(
        s.total_nusd,
        NanoUsd(greeting + turn1 + turn2 + asr),
        "{s:?}"
    );
    // The daemon's exit closes the speaker pipe, so everything it played is in the file.
    kiosk.stop_with(nix::sys::signal::Signal::SIGTERM);
    // JARVIS's replies reached the speaker. Whole: each tone is one voiced run of its length
    // (no gap inside), and nothing else is voiced.
    let speaker = s16(&std::fs::read(kiosk.speaker_raw()).unwrap());
    let left: Vec<i16> = speaker.iter().step_by(2).copied().collect();
    let runs = voiced_runs(&frame_levels(&left));
    let played: Vec<usize> = runs.iter().map(|r| r.1 * 20).collect();
    let total: usize = played.iter().sum();
    // The replies, and the 320 ms badge chime (which the sink's start-up may split: the scan
    // comes as soon as the daemon is ready).
    let expected: usize = REPLIES_MS.iter().sum::<usize>() + CHIME_MS;
    eprintln!(
        "interop: speaker voiced {total} ms of {expected} ms in {} runs (start, ms): {:?}",
        runs.len(),
        runs.iter()
            .map(|r| (r.0 * 20, r.1 * 20))
            .collect::<Vec<_>>()
    );
    for want in REPLIES_MS {
        assert!(
            // The greeting may start while the chime ends (it is mixed over): one run of both.
            played
                .iter()
                .any(|&p| (want.saturating_sub(60)..=want + CHIME_MS + 60).contains(&p)),
            "no run of {want} ms on the speaker (runs {played:?}): a reply was cut or has gaps"
        );
    }
    assert!(
        total.abs_diff(expected) <= 120,
        "speaker voiced {total} ms, expected {expected} ms: runs {played:?}"
    );
}

/// The shipped default (echo cancellation): the member is heard although the peer never stops
/// sending, and every reply plays whole.
#[test]
fn whole_session_with_pion_default_config() {
    whole_session("");
}

/// Half duplex, the fallback: the peer's continuous silence packets must not keep the microphone
/// gated (they did, when every received packet counted as JARVIS speaking).
#[test]
fn whole_session_with_pion_half_duplex() {
    // Appended after the rig's [audio] table.
    whole_session("echo_control = \"half_duplex\"\n");
}

/// Pion offering only its passive ICE-TCP candidate, as on a network that blocks UDP: the
/// kiosk connects over TCP (RFC 4571 framing between two independent stacks) and the whole
/// session runs as over UDP.
#[test]
fn whole_session_with_pion_over_tcp_only() {
    whole_session_with(&["--tcp-only"], "");
}
