//! Playout on the real virtual sound card (alsa-lib + cpal), in front of a steady sink (20 ms
//! every 20 ms from a 4096-byte pipe) and a bursty one (`pv -L`, 100 ms at once). A peer
//! streams Opus (silence, tone, silence) one packet every 20 ms. Prints a table:
//!
//! - the ring lead the playback thread keeps (the device's measured burst + 10 ms) and the
//!   audio added beyond the device's own period, on each sink;
//! - late packets, concealed packets and 10 ms gaps inside the tone, on each sink;
//! - flush-to-silence on the steady sink: from `Playback::flush()` to the sink reading the
//!   last non-silent sample, over several flushes in the middle of a tone.
//!
//! Run with `cargo bench -p jarvis-audio --bench playout`. Each case runs in a child process (alsa-lib
//! reads its configuration once per process): this binary re-runs itself.

#[path = "../tests/playout/mod.rs"]
mod playout;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use jarvis_audio::Playback;
use jarvis_core::health::Health;
use playout::*;

const TONE_SECS: f32 = 3.0;
const FLUSHES: usize = 8;

fn main() {
    if let Ok(case) = std::env::var("PLAYOUT_CASE") {
        child(&case);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let run = |case: &str, speaker: &dyn Fn(&Path) -> String| -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = child_command(&exe, &[], case, dir.path(), &speaker(dir.path()))
            .output()
            .expect("child");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{case}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let fifo = |d: &Path| d.join("speaker.fifo").display().to_string();
    println!("audio playout on the virtual card, 48 kHz stereo, 20 ms periods, {TONE_SECS} s tone");
    println!(
        "{:<34} {:>8} {:>8} {:>9} {:>6} {:>9} {:>6}",
        "sink", "burst ms", "lead ms", "added ms", "late", "concealed", "gaps"
    );
    print!("{}", run("steady", &fifo));
    print!(
        "{}",
        run("bursty", &|d| bursty_sink(&d.join("speaker.raw")))
    );
    print!("{}", run("flush", &fifo));
    print!("{}", run("flush_default_period", &fifo));
}

fn child(case: &str) {
    let (dir, speaker) = child_env();
    let health = Health::new("bench", 0);
    let cfg = playback_config();
    let packets = opus_packets(
        &[
            vec![0.0; 48_000 * 2 / 5],
            sine(440.0, TONE_SECS, 0.3),
            vec![0.0; 48_000 * 3 / 5],
        ]
        .concat(),
    );
    match case {
        "steady" => {
            let sink = SteadySink::start(fifo(&speaker));
            let playback = Playback::start(&cfg, health.clone());
            wait_up(&health);
            let lead = stream_sampling_lead(&playback, &packets, &health);
            wait_silent(&playback);
            drop(playback);
            let bytes = sink.finish().bytes;
            row("steady (20 ms every 20 ms)", &health, lead, &bytes);
        }
        "bursty" => {
            let playback = Playback::start(&cfg, health.clone());
            wait_up(&health);
            wait_bursts_settled(&health);
            let lead = stream_sampling_lead(&playback, &packets, &health);
            wait_silent(&playback);
            drop(playback);
            let bytes = std::fs::read(dir.join("speaker.raw")).expect("speaker.raw");
            row("bursty (pv -L, 100 ms at once)", &health, lead, &bytes);
        }
        "flush" => flush_to_silence(&speaker, &cfg, &health, "20 ms periods", 20),
        "flush_default_period" => {
            let cfg = jarvis_config::AudioConfig {
                period_frames: None,
                ..cfg
            };
            flush_to_silence(
                &speaker,
                &cfg,
                &health,
                "the default period (a 10 ms card)",
                10,
            );
        }
        other => panic!("unknown case {other}"),
    }
}

/// Streams `packets`, sampling the lead gauge every 20 ms; returns its largest value.
fn stream_sampling_lead(playback: &Playback, packets: &[Vec<u8>], health: &Health) -> u64 {
    let start = Instant::now();
    let mut lead = 0;
    for (i, p) in packets.iter().enumerate() {
        let due = start + Duration::from_millis(20) * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        playback.push_rtp(i as u16, i as u32 * 960, p);
        lead = lead.max(gauge(health, "audio_playout_lead_ms"));
    }
    lead
}

fn row(sink: &str, health: &Health, lead: u64, bytes: &[u8]) {
    let snap = health.snapshot();
    let count = |name: &str| snap.counters.get(name).copied().unwrap_or(0);
    let env = envelope_10ms(&left(bytes));
    let gaps = tone_span(&env, 0.05, 0.1).map_or(usize::MAX, |(_, _, g)| g.len());
    let burst = gauge(health, "audio_device_burst_ms");
    println!(
        "{:<34} {:>8} {:>8} {:>9} {:>6} {:>9} {:>6}",
        sink,
        burst,
        lead,
        lead.saturating_sub(20),
        count("audio_late_packets"),
        count("audio_concealed"),
        gaps
    );
}

/// Flushes in the middle of a tone, several times; prints from `flush()` to the sink reading
/// the last non-silent sample (median and worst).
fn flush_to_silence(
    speaker: &Path,
    cfg: &jarvis_config::AudioConfig,
    health: &Health,
    what: &str,
    period_ms: u64,
) {
    let sink = SteadySink::with_period(fifo(speaker), period_ms);
    let playback = Playback::start(cfg, health.clone());
    wait_up(health);
    let tone = opus_packets(&sine(440.0, 1.0, 0.3));
    let (mut flushed_at, mut started_at) = (Vec::new(), Vec::new());
    for k in 0..FLUSHES {
        // Each round starts a new RTP stream after the previous flush (as a new response does).
        let offset = (k * 1_000) as u16;
        let start = Instant::now();
        started_at.push(start);
        for (i, p) in tone.iter().enumerate() {
            let due = start + Duration::from_millis(20) * i as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            if i == 30 {
                flushed_at.push(Instant::now());
                playback.flush();
                break;
            }
            playback.push_rtp(offset + i as u16, (offset as u32 + i as u32) * 960, p);
        }
        wait_silent(&playback);
        // A quiet gap between rounds, so each flush's tail is told apart.
        thread::sleep(Duration::from_millis(300));
    }
    drop(playback);
    let drained = sink.finish();
    let samples = left(&drained.bytes);
    let mut times = Vec::new();
    for (k, t) in flushed_at.iter().enumerate() {
        // The sink's position when the flush happened, then the last loud sample after it
        // and before the next round started.
        let pos = drained
            .reads
            .iter()
            .take_while(|(at, _)| at <= t)
            .last()
            .map_or(0, |(_, n)| n / 4);
        let end = started_at.get(k + 1).map_or(samples.len(), |next| {
            drained
                .reads
                .iter()
                .take_while(|(at, _)| at <= next)
                .last()
                .map_or(samples.len(), |(_, n)| n / 4)
        });
        let last_loud = (pos..end.min(samples.len()))
            .rev()
            .find(|i| samples[*i].abs() > 0.01)
            .unwrap_or(pos);
        let read_at = drained
            .reads
            .iter()
            .find(|(_, n)| n / 4 > last_loud)
            .map_or(*t, |(at, _)| *at);
        times.push(read_at.saturating_duration_since(*t).as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "flush -> last non-silent sample read by the steady sink, {what} (device period {} frames): median {:.1} ms, worst {:.1} ms ({} flushes, one read per device period)",
        gauge(health, "audio_output_period_frames"),
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
}
