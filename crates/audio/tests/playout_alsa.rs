//! Playout through REAL ALSA (alsa-lib + cpal, the file-backed virtual card) in front of two
//! kinds of speaker: one that drains 100 ms at once (`pv -L`, like large-period HDMI/USB
//! cards) and one that takes 20 ms every 20 ms from a 4096-byte pipe (a steady card). A peer
//! streams Opus (silence, a 3 s tone, silence) one packet every 20 ms; what the speaker
//! received is analysed in 10 ms windows: the tone must be continuous, last as long as it was
//! sent, and no packet may count as late.
//!
//! Each case runs in a child process (alsa-lib reads its configuration once per process):
//! the parent re-runs this binary with `--exact child` and the case's environment.

mod playout;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use jarvis_audio::Playback;
use jarvis_core::health::Health;
use playout::*;

/// Seconds of tone in the stream, between 0.4 s and 0.6 s of Opus silence.
const TONE_SECS: f32 = 3.0;

/// Real-time cases run one at a time (two paced children on two cores made timing flaky).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a child prints when its own sender was late by more than the jitter buffer's minimum
/// depth: its stream was not the steady one the case is about.
const STIMULUS_LATE: &str = "STIMULUS LATE";

/// The test's sender may be late by this much (the jitter buffer's minimum depth, 40 ms,
/// absorbs it) before the stream no longer counts as steady.
const SENDER_SLACK: Duration = Duration::from_millis(40);

/// Runs `case` in a child; returns whether its stimulus was steady.
fn run_child(case: &str, dir: &Path, speaker: &str) -> bool {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let exe = std::env::current_exe().unwrap();
    let out = child_command(
        &exe,
        &["--exact", "child", "--nocapture", "--test-threads=1"],
        case,
        dir,
        speaker,
    )
    .output()
    .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("child {case}:\n{log}");
    assert!(out.status.success(), "child {case} failed:\n{log}");
    assert!(log.contains("1 passed"), "child {case} did not run:\n{log}");
    !log.contains(STIMULUS_LATE)
}

/// Runs `case` (a fresh directory each time) until its stimulus was steady, at most twice:
/// a retry happens only when the child proved its own sender late, never on a playout fault.
fn run_steady(case: &str, speaker: impl Fn(&Path) -> String) -> tempfile::TempDir {
    for attempt in 1..=2 {
        let dir = tempfile::tempdir().unwrap();
        if run_child(case, dir.path(), &speaker(dir.path())) {
            return dir;
        }
        eprintln!("{case}: attempt {attempt}: the test's sender was late; running it again");
    }
    panic!(
        "{case}: the test's own sender was late twice: the machine is too loaded for this real-time test"
    );
}

/// The tone on the speaker is continuous and lasts what was sent.
fn assert_continuous_tone(raw: &Path) {
    let out = left(&std::fs::read(raw).unwrap());
    let env = envelope_10ms(&out);
    // A 0.3 sine has RMS 0.21: "on" above 0.05, a gap is any 10 ms window under 0.1.
    let (first, last, gaps) = tone_span(&env, 0.05, 0.1).expect("no tone on the speaker");
    let windows = last + 1 - first;
    assert!(
        gaps.is_empty(),
        "{} gaps of 10 ms inside the tone, at windows {gaps:?} (tone from {first} to {last})",
        gaps.len()
    );
    let sent = (TONE_SECS * 100.0) as usize;
    assert!(
        windows.abs_diff(sent) <= 2,
        "the tone lasted {windows} windows of 10 ms, {sent} were sent"
    );
}

#[test]
fn a_bursty_sink_plays_a_steady_stream_without_gaps_or_late_packets() {
    let dir = run_steady("bursty", |d| bursty_sink(&d.join("speaker.raw")));
    assert_continuous_tone(&dir.path().join("speaker.raw"));
}

#[test]
fn a_steady_sink_plays_a_steady_stream_without_gaps_or_late_packets() {
    let dir = run_steady("steady", |d| {
        d.join("speaker.fifo").to_str().unwrap().to_owned()
    });
    assert_continuous_tone(&dir.path().join("speaker.raw"));
}

// ---------------------------------------------------------------- the child side

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child() {
    let Ok(case) = std::env::var("PLAYOUT_CASE") else {
        return;
    };
    let (dir, speaker) = child_env();
    let packets = opus_packets(
        &[
            vec![0.0; 48_000 * 2 / 5],
            sine(440.0, TONE_SECS, 0.3),
            vec![0.0; 48_000 * 3 / 5],
        ]
        .concat(),
    );
    let health = Health::new("test", 0);
    match case.as_str() {
        "steady" => {
            let sink = SteadySink::start(fifo(&speaker));
            let playback = Playback::start(&playback_config(), health.clone());
            wait_up(&health);
            play(&playback, &packets, &health);
            drop(playback);
            std::fs::write(dir.join("speaker.raw"), sink.finish().bytes).unwrap();
        }
        "bursty" => {
            let playback = Playback::start(&playback_config(), health.clone());
            wait_up(&health);
            // The card has been playing (silence) since start-up, as in the daemon: wait until
            // the playback thread has seen it take 100 ms at once.
            let start = Instant::now();
            while gauge(&health, "audio_device_burst_ms") < 80 {
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "{:?}",
                    health.snapshot()
                );
                thread::sleep(Duration::from_millis(10));
            }
            play(&playback, &packets, &health);
            // Closing waits for pv to write out what its pipe still holds.
            drop(playback);
        }
        other => panic!("unknown case {other}"),
    }
}

/// Streams `packets`, waits for them to play out, and checks the counters (unless the
/// test's own sender was late, which the parent then sees and runs the case again).
fn play(playback: &Playback, packets: &[Vec<u8>], health: &Health) {
    let late = stream(playback, packets);
    wait_silent(playback);
    let snap = health.snapshot();
    eprintln!(
        "lead {} ms, device burst {} ms, sender at most {} ms late, counters {:?}",
        gauge(health, "audio_playout_lead_ms"),
        gauge(health, "audio_device_burst_ms"),
        late.as_millis(),
        snap.counters
    );
    if late > SENDER_SLACK {
        eprintln!("{STIMULUS_LATE}");
        return;
    }
    assert_eq!(snap.counters.get("audio_late_packets"), None, "{snap:?}");
}
