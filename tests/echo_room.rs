//! The kiosk in an echo room, with the shipped default configuration (echo cancellation): what
//! its speaker plays comes back into its microphone through a simulated room (direct path and
//! reflections at 60-140 ms, attenuation, noise) while the member speaks. The member answers
//! the greeting, interrupts JARVIS's long reply, and says goodbye.
//!
//! Judged on what the Realtime emulator heard and what the speaker played: JARVIS never
//! interrupts itself (its own voice, heard through the room, never starts a turn), the member's
//! interruption is heard while the reply plays, the speaker is silent within 150 ms of the
//! `speech_started` reaching the kiosk, and the session ends by `end_session`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use jarvis_realtime_emulator::record::{CallRecord, Happening};
use support::rig::{Emulator, Kiosk};
use support::room::{Recording, RoomSpec, TICK_SAMPLES, dbfs};

/// French speech from espeak-ng, as 48 kHz mono samples and as a WAV file for the emulator.
fn speech(dir: &Path, name: &str, text: &str) -> Vec<f32> {
    let wav = dir.join(format!("{name}.wav"));
    let spoke = Command::new("espeak-ng")
        .args(["-v", "fr", "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng (scripts/test.sh installs it)");
    assert!(spoke.success());
    let raw = Command::new("sox")
        .arg(&wav)
        .args([
            "-t", "raw", "-e", "signed", "-b", "16", "-r", "48000", "-c", "1", "-",
        ])
        .output()
        .expect("sox (scripts/test.sh installs it)");
    assert!(raw.status.success());
    raw.stdout
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// Writes the scenario: a greeting, a long reply to interrupt, and a goodbye turn.
fn scenario(dir: &Path) -> std::path::PathBuf {
    speech(
        dir,
        "greeting",
        "Bonjour Marie, bienvenue à la salle. Comment puis-je vous aider aujourd'hui ?",
    );
    speech(
        dir,
        "program",
        "Aujourd'hui, je vous propose un programme complet. D'abord dix minutes d'échauffement \
         sur le vélo, puis trois séries de squats, ensuite du gainage, et pour finir des \
         étirements pendant un bon quart d'heure.",
    );
    speech(dir, "bye", "D'accord, au revoir Marie, à bientôt !");
    let path = dir.join("echo_room.toml");
    std::fs::write(
        &path,
        r#"trigger = "vad"
continuous_audio = true

[vad]
threshold_dbfs = -40.0
start_ms = 60
silence_ms = 400

[[turns]]
user_transcript = "Quel est mon programme aujourd'hui ?"
reply_transcript = "Aujourd'hui, je vous propose un programme complet."
reply_audio = { wav = "program.wav" }
usage = { input_text = 100, input_audio = 20, output_text = 25, output_audio = 200 }
transcription_usage = { input = 20, output = 6 }

[[turns]]
user_transcript = "Attends, non, au revoir"
reply_transcript = "D'accord, au revoir Marie, à bientôt !"
reply_audio = { wav = "bye.wav" }
usage = { input_text = 160, input_audio = 25, cached_text = 100, output_text = 6, output_audio = 40 }
end_session = "user_said_goodbye"

[greeting]
transcript = "Bonjour Marie, bienvenue à la salle."
audio = { wav = "greeting.wav" }
usage = { input_text = 80, output_text = 10, output_audio = 80 }

[goodbye]
transcript = "À bientôt !"
audio = { wav = "bye.wav" }
usage = { input_text = 180, cached_text = 150, output_text = 4, output_audio = 40 }
"#,
    )
    .unwrap();
    path
}

/// One member's visit to a kiosk in the echoing room: the scenario's voices, the emulator, the
/// kiosk (`extra` config, `env` overrides) and what the member will say.
struct Visit {
    _scratch: tempfile::TempDir,
    emulator: Emulator,
    kiosk: Kiosk,
    question: Vec<f32>,
    stop: Vec<f32>,
}

impl Visit {
    fn start(kiosk_id: &str, extra: &str, env: &[(&str, &str)]) -> Visit {
        let scratch = tempfile::tempdir().unwrap();
        let scenario = scenario(scratch.path());
        let emulator = Emulator::start(scenario.to_str().unwrap(), &[]);
        let kiosk =
            Kiosk::start_in_room(&emulator.base_url, kiosk_id, extra, RoomSpec::kiosk(), env);
        let question = speech(
            scratch.path(),
            "question",
            "Quel est mon programme aujourd'hui ?",
        );
        let stop = speech(scratch.path(), "stop", "Attends, non, au revoir.");
        Visit {
            _scratch: scratch,
            emulator,
            kiosk,
            question,
            stop,
        }
    }
}

/// The emulator's only call, once `ready` says so; on timeout, what the call and the daemon
/// did instead.
fn wait_call(
    emulator: &Emulator,
    kiosk: &Kiosk,
    what: &str,
    ready: impl Fn(&CallRecord) -> bool,
) -> CallRecord {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let call = emulator.calls().into_iter().next();
        if let Some(c) = call.as_ref().filter(|c| ready(c)) {
            return c.clone();
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not within 30 s\ncall: {call:#?}\nstatus: {:#}\ndaemon:\n{}",
                kiosk.status().unwrap_or_default(),
                kiosk.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sent(call: &CallRecord, kind: &str) -> usize {
    call.find(|h| matches!(h, Happening::Sent { kind: k, .. } if k == kind))
        .len()
}

#[test]
fn the_member_interrupts_jarvis_in_an_echoing_room_and_jarvis_never_interrupts_itself() {
    let Visit {
        _scratch,
        emulator,
        kiosk,
        question,
        stop,
    } = Visit::start("kiosk-echo-room", "", &[]);
    let room = kiosk.room();

    kiosk.scanner.scan("0012345678");
    // The member waits for the greeting to end, then asks.
    wait_call(&emulator, &kiosk, "the greeting to end", |c| {
        sent(c, "output_audio_buffer.stopped") >= 1
    });
    room.say(question);
    // JARVIS answers at length; 1.5 s into the reply, the member cuts in.
    wait_call(&emulator, &kiosk, "1.5 s of the long reply", |c| {
        c.replies.len() >= 2 && c.replies[1].frames_sent >= 75
    });
    let interrupted_at = room.say(stop.clone());

    let s = kiosk.ended_session(Duration::from_secs(60));
    let call = emulator.calls().into_iter().next().unwrap();
    let log = kiosk.log();
    let context = format!(
        "{s:?}\ntimeline: {:#?}\nstatus: {:#}\ndaemon:\n{log}",
        call.timeline,
        kiosk.status().unwrap_or_default()
    );
    assert_eq!(s.end_reason.as_deref(), Some("goodbye"), "{context}");

    // Turns started only when the member spoke: the question and the interruption. JARVIS's own
    // voice, played into the room for the whole call, never started one.
    let started: Vec<_> = call
        .find(|h| matches!(h, Happening::SpeechStarted { .. }))
        .into_iter()
        .map(|e| (e.at, e.what.clone()))
        .collect();
    assert_eq!(
        started.len(),
        2,
        "self-interruptions: {started:?}\n{context}"
    );
    assert_eq!(
        started[1].1,
        Happening::SpeechStarted {
            audio_playing: true
        },
        "the interruption is heard while the reply plays\n{context}"
    );
    let barge_ins = call.barge_ins();
    assert_eq!(barge_ins.len(), 1, "{context}");
    assert!(call.replies[1].interrupted, "{context}");

    // The speaker went silent within 150 ms of the speech_started reaching the kiosk.
    let answered = call.answered_at.expect("answered");
    let speech_started = answered + started[1].0;
    assert!(speech_started > interrupted_at, "{context}");
    let rec = room.recording();
    let silent_after = last_voiced_end(&rec, room.started, speech_started);
    let cut_ms = silent_after
        .saturating_duration_since(speech_started)
        .as_millis();
    let detect_ms = speech_started.duration_since(interrupted_at).as_millis();
    eprintln!(
        "echo room: member started {} ms into the room clock, speech_started {detect_ms} ms later, \
         speaker silent {cut_ms} ms after that",
        room.since_start(interrupted_at).as_millis()
    );
    assert!(
        cut_ms <= 150,
        "the speaker played on {cut_ms} ms after speech_started\n{context}"
    );

    // The member was heard over JARVIS's voice (double talk, then alone once it stopped): what
    // the server decoded in the interruption's window is voiced about as long as what was said.
    let from = call.member_audio_start.expect("member audio");
    let at = |t: Instant| (t.saturating_duration_since(answered + from).as_millis() as usize) * 48;
    let said = voiced_ms(&stop);
    let window = &call.member_audio[at(interrupted_at)
        ..at(interrupted_at + Duration::from_millis(said as u64 + 800))
            .min(call.member_audio.len())];
    let heard = voiced_ms(
        &window
            .iter()
            .map(|s| f32::from(*s) / 32768.0)
            .collect::<Vec<_>>(),
    );
    eprintln!("echo room: the interruption: said {said} ms voiced, the server heard {heard} ms");
    assert!(
        heard * 10 >= said * 7,
        "the server heard {heard} ms of the {said} ms said\n{context}"
    );

    // What the server heard while JARVIS spoke alone was the room's residue, under its VAD.
    let greeting_end = answered
        + call
            .find(|h| matches!(h, Happening::Sent { kind, .. } if kind == "output_audio_buffer.stopped"))
            .first()
            .map(|e| e.at)
            .unwrap();
    let mic_during_greeting = &rec.mic[rec
        .tick_at(room.started, greeting_end - Duration::from_millis(2000))
        * TICK_SAMPLES
        ..rec.tick_at(room.started, greeting_end) * TICK_SAMPLES];
    eprintln!(
        "echo room: microphone during the greeting's last 2 s: {:.1} dBFS (echo before cancellation)",
        dbfs(mic_during_greeting)
    );
    assert!(
        dbfs(mic_during_greeting) > -30.0,
        "the room echoes: {context}"
    );
    kiosk.stop();
}

/// Time in 20 ms frames above -40 dBFS (the emulator's VAD threshold).
fn voiced_ms(pcm: &[f32]) -> usize {
    pcm.chunks(960).filter(|c| dbfs(c) > -40.0).count() * 20
}

/// When the speaker's last voiced 20 ms tick in the second after `from` ended.
fn last_voiced_end(rec: &Recording, start: Instant, from: Instant) -> Instant {
    let first = rec.tick_at(start, from);
    let last = rec
        .tick_at(start, from + Duration::from_secs(1))
        .min(rec.ticks.len());
    let mut end = from;
    for t in first..last {
        let tick = &rec.speaker[t * TICK_SAMPLES..(t + 1) * TICK_SAMPLES];
        if dbfs(tick) > -50.0 {
            end = start + rec.ticks[t] + Duration::from_millis(20);
        }
    }
    end
}

/// GPT-Live in the same echoing room: barge-in is native (no event reaches the kiosk; the
/// model's audio just stops on RTP), so the kiosk never flushes its speaker. The member, heard
/// over JARVIS's voice, cuts the long answer; the speaker falls silent with the model's audio,
/// and JARVIS's own voice, played into the room, never starts a turn.
#[test]
fn the_member_interrupts_a_live_jarvis_in_an_echoing_room() {
    let Visit {
        _scratch,
        emulator,
        kiosk,
        question,
        stop,
    } = Visit::start(
        "kiosk-echo-live",
        "[openai.live]\nmodel = \"gpt-live-1\"\n",
        &[("JARVIS_KIOSK__OPENAI__API", "live")],
    );
    let room = kiosk.room();

    kiosk.scanner.scan("0012345678");
    wait_call(&emulator, &kiosk, "the greeting to end", |c| {
        c.replies
            .first()
            .is_some_and(|r| r.frames_sent == r.frames_total)
    });
    room.say(question);
    wait_call(&emulator, &kiosk, "1.5 s of the long reply", |c| {
        c.replies.len() >= 2 && c.replies[1].frames_sent >= 75
    });
    room.say(stop);

    let s = kiosk.ended_session(Duration::from_secs(60));
    let call = emulator.calls().into_iter().next().unwrap();
    let context = format!(
        "{s:?}\ntimeline: {:#?}\ndaemon:\n{}",
        call.timeline,
        kiosk.log()
    );
    assert!(
        matches!(s.end_reason.as_deref(), Some("goodbye" | "goodbye_phrase")),
        "{context}"
    );
    let started: Vec<_> = call
        .find(|h| matches!(h, Happening::SpeechStarted { .. }))
        .into_iter()
        .map(|e| e.what.clone())
        .collect();
    assert_eq!(
        started,
        [
            Happening::SpeechStarted {
                audio_playing: false
            },
            Happening::SpeechStarted {
                audio_playing: true
            }
        ],
        "the question, then the interruption over the reply; never JARVIS itself\n{context}"
    );
    assert_eq!(call.barge_ins().len(), 1, "{context}");
    assert!(call.replies[1].interrupted, "{context}");
    // The speaker followed the model: silent once what it had buffered played out. Live sends
    // no barge-in event, so the kiosk does not flush as it does for Realtime (within 150 ms of
    // speech_started): the jitter buffer (40 ms, deepened up to 200 ms by measured jitter), the
    // playout ring and the device's periods still play. Measured on a quiet machine: 256-276 ms.
    let answered = call.answered_at.expect("answered");
    let cut = answered + call.barge_ins()[0].at;
    let rec = room.recording();
    let silent_after = last_voiced_end(&rec, room.started, cut);
    let cut_ms = silent_after.saturating_duration_since(cut).as_millis();
    eprintln!("echo room (GPT-Live): speaker silent {cut_ms} ms after the model's audio stopped");
    assert!(
        cut_ms <= 400,
        "the speaker played on {cut_ms} ms after the model stopped\n{context}"
    );
    kiosk.stop();
}
