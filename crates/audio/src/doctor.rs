//! `jarvis-kiosk doctor` audio checks: can both devices be opened with the configured settings,
//! is the microphone live (level over one second), does the speaker play (a short tone), and
//! are the codec, prompts and echo control usable.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread;
use std::time::{Duration, Instant};

use cpal::traits::StreamTrait;
use rtrb::RingBuffer;

use super::capture::{Feed, build_input_stream};
use super::codec::{OpusDecoder, OpusEncoder};
use super::device::{self, Direction};
use super::playback::{Drain, Shared, build_output_stream};
use super::prompts::PromptSet;
use jarvis_config::{Config, EchoControl};
use jarvis_core::health::Check;

/// Below this RMS level (dBFS) over one second, the microphone is considered dead or muted.
const SILENT_DBFS: f32 = -70.0;
const RECORD: Duration = Duration::from_secs(1);
const TONE: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_secs(4);

/// Runs the audio checks. `quiet` skips the audible test tone (the output is only opened).
pub fn doctor_checks(cfg: &Config, quiet: bool) -> Vec<Check> {
    // Each check names the device and the fix; alsa-lib's own lines would only bury them.
    let _alsa = super::alsa_messages::AlsaMessages::capture();
    let host = cpal::default_host();
    let mut checks = vec![input_check(&host, cfg), output_check(&host, cfg, quiet)];
    checks.push(codec_check());
    checks.push(prompts_check(cfg));
    if cfg.audio.echo_control == EchoControl::Aec {
        checks.push(Check::warn(
            "audio.echo_control",
            "acoustic echo cancellation is not built into this version; half duplex is used",
            "set audio.echo_control = \"half_duplex\" to silence this warning",
        ));
    }
    checks
}

/// Level of a signal in dBFS (RMS), `-inf` for digital silence.
pub fn level_dbfs(samples: &[f32]) -> f32 {
    let mean_sq = samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32;
    10.0 * mean_sq.log10()
}

fn input_check(host: &cpal::Host, cfg: &Config) -> Check {
    const NAME: &str = "audio.input";
    let fix = "check the microphone is plugged in, audio.input_device and the audio.input_* overrides (see `jarvis-kiosk devices`)";
    let chosen = match device::open_plan(host, &cfg.audio, Direction::Input) {
        Ok(c) => c,
        Err(e) => return Check::fail(NAME, e.to_string(), fix),
    };
    let rate = chosen.config.sample_rate;
    let wanted = (rate as usize) * RECORD.as_millis() as usize / 1000;
    let (producer, mut consumer) = RingBuffer::new(wanted * 2);
    let feed = Feed {
        channels: usize::from(chosen.config.channels.max(1)),
        producer,
        overruns: Arc::new(AtomicU64::new(0)),
        worker: thread::current(),
    };
    let stream = build_input_stream(&chosen.device, chosen.config, chosen.format, feed, |_| {})
        .and_then(|s| s.play().map(|()| s));
    let stream = match stream {
        Ok(s) => s,
        Err(e) => return Check::fail(NAME, format!("{}: {e}", chosen.name), fix),
    };
    let mut samples = Vec::with_capacity(wanted);
    let start = Instant::now();
    while samples.len() < wanted && start.elapsed() < TIMEOUT {
        let n = consumer.slots().min(wanted - samples.len());
        if let Ok(chunk) = consumer.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            samples.extend_from_slice(a);
            samples.extend_from_slice(b);
            chunk.commit_all();
        }
        if n == 0 {
            thread::park_timeout(Duration::from_millis(20));
        }
    }
    drop(stream);
    let what = format!(
        "{} ({} {} Hz {} ch)",
        chosen.name, chosen.format, rate, chosen.config.channels
    );
    if samples.len() < wanted {
        return Check::fail(
            NAME,
            format!(
                "{what}: only {} of {wanted} samples in {TIMEOUT:?}",
                samples.len()
            ),
            fix,
        );
    }
    let level = level_dbfs(&samples);
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let detail = format!(
        "{what}: level {level:.1} dBFS, peak {:.1} dBFS over 1 s",
        20.0 * peak.log10()
    );
    if level < SILENT_DBFS {
        Check::warn(
            NAME,
            format!("{detail}: the microphone delivers silence"),
            "unmute it (alsamixer), check the cable, or pick another audio.input_device",
        )
    } else {
        Check::ok(NAME, detail)
    }
}

fn output_check(host: &cpal::Host, cfg: &Config, quiet: bool) -> Check {
    const NAME: &str = "audio.output";
    let fix = "check the speaker is plugged in, audio.output_device and audio.output_* overrides (see `jarvis-kiosk devices`)";
    let chosen = match device::open_plan(host, &cfg.audio, Direction::Output) {
        Ok(c) => c,
        Err(e) => return Check::fail(NAME, e.to_string(), fix),
    };
    let rate = chosen.config.sample_rate;
    let tone_len = if quiet {
        0
    } else {
        rate as usize * TONE.as_millis() as usize / 1000
    };
    let (mut producer, consumer) = RingBuffer::new(tone_len.max(1024));
    if let Ok(chunk) = producer.write_chunk_uninit(tone_len) {
        chunk.fill_from_iter((0..tone_len).map(|i| {
            let t = i as f32 / rate as f32;
            let fade = (i.min(tone_len - i) as f32 / (rate as f32 * 0.01)).min(1.0);
            0.25 * fade * (2.0 * std::f32::consts::PI * 880.0 * t).sin()
        }));
    }
    let drain = Drain {
        channels: usize::from(chosen.config.channels.max(1)),
        consumer,
        shared: Shared::new(),
        worker: thread::current(),
    };
    let stream = build_output_stream(&chosen.device, chosen.config, chosen.format, drain, |_| {})
        .and_then(|s| s.play().map(|()| s));
    let stream = match stream {
        Ok(s) => s,
        Err(e) => return Check::fail(NAME, format!("{}: {e}", chosen.name), fix),
    };
    let what = format!(
        "{} ({} Hz {} ch)",
        chosen.name, rate, chosen.config.channels
    );
    if quiet {
        return Check::ok(NAME, format!("{what}: opened (quiet: no test tone)"));
    }
    let start = Instant::now();
    while !producer.is_abandoned() && producer.slots() < producer.buffer().capacity() {
        if start.elapsed() > TIMEOUT {
            return Check::fail(
                NAME,
                format!("{what}: the device did not take the test tone within {TIMEOUT:?}"),
                fix,
            );
        }
        thread::park_timeout(Duration::from_millis(20));
    }
    // Let the device buffer play out before closing: ALSA keeps a few periods queued (about
    // 100 ms on the file-backed card, more on some USB cards), and closing cuts them off.
    thread::sleep(Duration::from_millis(300));
    drop(stream);
    Check::ok(NAME, format!("{what}: played a 0.5 s 880 Hz test tone"))
}

fn codec_check() -> Check {
    match (OpusEncoder::new(), OpusDecoder::new()) {
        (Ok(_), Ok(_)) => Check::ok("audio.opus", opus::version().to_owned()),
        (Err(e), _) | (_, Err(e)) => Check::fail(
            "audio.opus",
            e.to_string(),
            "reinstall libopus0 (the Opus library the daemon links)",
        ),
    }
}

fn prompts_check(cfg: &Config) -> Check {
    let (_, errors) = PromptSet::load(cfg.audio.prompts_dir.as_deref());
    if errors.is_empty() {
        let source = match &cfg.audio.prompts_dir {
            Some(d) => format!("embedded, overridden from {}", d.display()),
            None => "embedded".into(),
        };
        Check::ok("audio.prompts", source)
    } else {
        let detail = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Check::warn(
            "audio.prompts",
            detail,
            "fix or remove the files in audio.prompts_dir (embedded prompts are used meanwhile)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert!(level_dbfs(&[0.0; 100]).is_infinite());
        let full: Vec<f32> = (0..48_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1_000.0 * i as f32 / 48_000.0).sin())
            .collect();
        assert!((level_dbfs(&full) + 3.01).abs() < 0.05);
    }

    #[test]
    fn codec_is_available() {
        assert_eq!(codec_check().level, jarvis_core::health::Level::Ok);
    }
}
