//! `jarvis-kiosk doctor` audio checks: can both devices be opened with the configured settings,
//! is the microphone live (level over one second), does the speaker play (a short tone), are
//! the codec and prompts usable, and which echo control applies (with AEC, how much of a test
//! phrase's echo it cancels on this hardware).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread;
use std::time::{Duration, Instant};

use cpal::traits::StreamTrait;
use rtrb::RingBuffer;

use super::capture::{Feed, build_input_stream};
use super::codec::{OpusDecoder, OpusEncoder};
use super::device::{self, Direction};
use super::echo::{BLOCK_SAMPLES, EchoCanceller};
use super::playback::{Drain, Shared, build_output_stream};
use super::prompts::{PromptSet, PromptSound};
use super::reference::reference_ring;
use super::resample::{StreamResampler, resample_clip};
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
    checks.push(echo_check(&host, cfg, quiet));
    checks
}

const ECHO: &str = "audio.echo_control";
/// Below this level the microphone does not hear the speaker: nothing to cancel.
const INAUDIBLE_ECHO_DBFS: f32 = -60.0;
/// AEC that removes less than this of the test phrase's echo is not converging here.
const MIN_ECHO_REDUCTION_DB: f32 = 15.0;
/// The canceller converges on the first part of the test phrase; only the rest is measured.
const CONVERGE: Duration = Duration::from_millis(2_500);

/// Which echo control applies; with AEC, a test phrase played and recorded through it.
fn echo_check(host: &cpal::Host, cfg: &Config, quiet: bool) -> Check {
    match cfg.audio.echo_control {
        EchoControl::Off => Check::ok(
            ECHO,
            "off: no echo control (a headset; on an open speaker the model would hear itself)",
        ),
        EchoControl::HalfDuplex => Check::ok(
            ECHO,
            format!(
                "half_duplex: the microphone is muted while JARVIS is audible and {} ms after \
                 (audio.half_duplex_tail_ms); the member cannot interrupt",
                cfg.audio.half_duplex_tail_ms
            ),
        ),
        EchoControl::Aec => {
            let fix = "set audio.echo_control = \"half_duplex\" (mutes the microphone while \
                       JARVIS speaks) until echo cancellation works here";
            if let Err(e) = EchoCanceller::new() {
                return Check::fail(ECHO, format!("aec cannot run: {e}"), fix);
            }
            if quiet {
                return Check::ok(
                    ECHO,
                    "aec: echo canceller ready (quiet: its echo was not measured)",
                );
            }
            match measure_echo(host, cfg) {
                Err(why) => Check::warn(
                    ECHO,
                    format!("aec: echo canceller ready; echo not measured: {why}"),
                    "fix the audio.input / audio.output lines above, then run doctor again",
                ),
                Ok(m) if m.echo_dbfs < INAUDIBLE_ECHO_DBFS => Check::ok(
                    ECHO,
                    format!(
                        "aec: the microphone barely hears the speaker ({:.1} dBFS during the \
                         test phrase): nothing to cancel",
                        m.echo_dbfs
                    ),
                ),
                Ok(m) if m.reduction_db() >= MIN_ECHO_REDUCTION_DB => Check::ok(
                    ECHO,
                    format!(
                        "aec: the test phrase's echo ({:.1} dBFS at the microphone) is reduced \
                         by {:.1} dB",
                        m.echo_dbfs,
                        m.reduction_db()
                    ),
                ),
                Ok(m) => Check::warn(
                    ECHO,
                    format!(
                        "aec: the test phrase's echo ({:.1} dBFS at the microphone) is only \
                         reduced by {:.1} dB (< {MIN_ECHO_REDUCTION_DB} dB): the model may hear \
                         itself",
                        m.echo_dbfs,
                        m.reduction_db()
                    ),
                    fix,
                ),
            }
        }
    }
}

/// Levels of the test phrase at the microphone before and after the canceller.
struct EchoMeasure {
    echo_dbfs: f32,
    residual_dbfs: f32,
}

impl EchoMeasure {
    fn reduction_db(&self) -> f32 {
        self.echo_dbfs - self.residual_dbfs
    }
}

/// Plays a recorded phrase while recording, then runs what was played (the output callback's
/// reference) and what was heard through the canceller, block for block.
fn measure_echo(host: &cpal::Host, cfg: &Config) -> Result<EchoMeasure, String> {
    let out = device::open_plan(host, &cfg.audio, Direction::Output).map_err(|e| e.to_string())?;
    let inp = device::open_plan(host, &cfg.audio, Direction::Input).map_err(|e| e.to_string())?;
    let (out_rate, in_rate) = (out.config.sample_rate, inp.config.sample_rate);
    let prompts = PromptSet::load(None).0;
    let phrase: Vec<f32> = [PromptSound::Unavailable, PromptSound::FrontDesk]
        .iter()
        .flat_map(|&p| prompts.get(p).iter().copied().collect::<Vec<_>>())
        .collect();
    let phrase = resample_clip(&phrase, super::SAMPLE_RATE, out_rate).map_err(|e| e.to_string())?;
    let total = phrase.len() + out_rate as usize / 2;
    let (mut producer, consumer) = RingBuffer::new(total);
    if let Ok(chunk) = producer.write_chunk_uninit(phrase.len()) {
        chunk.fill_from_iter(phrase.iter().copied());
    }
    let (tap, mut reference) = reference_ring(out_rate).map_err(|e| e.to_string())?;
    let drain = Drain {
        channels: usize::from(out.config.channels.max(1)),
        consumer,
        shared: Shared::new(),
        worker: thread::current(),
        reference: Some(tap),
    };
    let wanted = in_rate as usize * total / out_rate as usize;
    let (mic_producer, mut mic) = RingBuffer::new(wanted * 2);
    let feed = Feed {
        channels: usize::from(inp.config.channels.max(1)),
        producer: mic_producer,
        overruns: Arc::new(AtomicU64::new(0)),
        worker: thread::current(),
    };
    let input = build_input_stream(&inp.device, inp.config, inp.format, feed, |_| {})
        .and_then(|s| s.play().map(|()| s))
        .map_err(|e| format!("{}: {e}", inp.name))?;
    let output = build_output_stream(&out.device, out.config, out.format, drain, |_| {})
        .and_then(|s| s.play().map(|()| s))
        .map_err(|e| format!("{}: {e}", out.name))?;
    let mut aec = EchoCanceller::new().map_err(|e| e.to_string())?;
    let mut mic_48k =
        StreamResampler::new(in_rate, super::SAMPLE_RATE).map_err(|e| e.to_string())?;
    let mut heard = Vec::new();
    let mut render = vec![0.0; BLOCK_SAMPLES];
    let (mut echo, mut residual) = (Vec::new(), Vec::new());
    let converge_blocks = CONVERGE.as_millis() as usize / 10;
    let mut block_index = 0;
    let deadline =
        Instant::now() + Duration::from_secs_f64(total as f64 / f64::from(out_rate)) + TIMEOUT;
    let mut taken = 0;
    // Capture paces the run: each 10 ms the microphone delivers is paired with 10 ms of
    // reference, as the capture thread does.
    while taken < wanted && Instant::now() < deadline {
        let n = mic.slots().min(wanted - taken);
        if n == 0 {
            thread::park_timeout(Duration::from_millis(10));
            continue;
        }
        if let Ok(chunk) = mic.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            mic_48k.process(a, |o| heard.extend_from_slice(o));
            mic_48k.process(b, |o| heard.extend_from_slice(o));
            chunk.commit_all();
        }
        taken += n;
        while heard.len() >= BLOCK_SAMPLES {
            let mut block: Vec<f32> = heard.drain(..BLOCK_SAMPLES).collect();
            reference.next_block(&mut render);
            let before = block.clone();
            aec.process(&render, &mut block)
                .map_err(|e| e.to_string())?;
            if block_index >= converge_blocks {
                echo.extend_from_slice(&before);
                residual.extend_from_slice(&block);
            }
            block_index += 1;
        }
    }
    drop(output);
    drop(input);
    if echo.is_empty() {
        return Err(format!(
            "{}: only {taken} of {wanted} samples recorded in time",
            inp.name
        ));
    }
    Ok(EchoMeasure {
        echo_dbfs: level_dbfs(&echo),
        residual_dbfs: level_dbfs(&residual),
    })
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
        reference: None,
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
