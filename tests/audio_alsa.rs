//! Audio through REAL ALSA (alsa-lib + cpal) with the file-backed virtual sound card in
//! `tests/fixtures/asound-file.conf`: microphone = a FIFO fed in real time, speaker = a FIFO
//! drained in real time (S16_LE 48 kHz stereo).
//!
//! alsa-lib reads its configuration once per process, so every case runs in its own child
//! process: the parent test re-runs this test binary with `--exact child` and the case's
//! environment (`ALSA_CONFIG_PATH`, `KIOSK_AUDIO_IN`, `KIOSK_AUDIO_OUT`, `AUDIO_CASE`). No
//! `set_var` anywhere. `child` does nothing when `AUDIO_CASE` is unset.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use jarvis_audio::{self as audio, PromptSound, wav};
use jarvis_config::{AudioConfig, Config, EchoControl, SampleFormat};
use jarvis_core::health::{AdapterState, Health, Level};

/// Speaker side of the virtual card: S16_LE, 48 kHz, 2 channels.
const OUT_RATE: usize = 48_000;
const OUT_BYTES_PER_SEC: usize = OUT_RATE * 2 * 2;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asound-file.conf")
}

/// Real-time cases run one at a time: two paced audio children competing for the two cores
/// of the CI machine made tone lengths and packet timing flaky.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `case` in a child process with the virtual card, its microphone and speaker in `dir`.
/// The child runs at real-time round-robin priority where permitted, as a kiosk's audio
/// would: a build machine running other jobs starves its threads for hundreds of ms.
fn run_child(case: &str, dir: &Path, mic: &Path, speaker: &Path) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    // SAFETY: only an async-signal-safe system call runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let param = nix::libc::sched_param { sched_priority: 10 };
            nix::libc::sched_setscheduler(0, nix::libc::SCHED_RR, &param);
            Ok(())
        });
    }
    let out = cmd
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("AUDIO_CASE", case)
        .env("AUDIO_DIR", dir)
        .env("ALSA_CONFIG_PATH", fixture())
        .env("KIOSK_AUDIO_IN", mic)
        .env("KIOSK_AUDIO_OUT", speaker)
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
}

/// A case that plays `input` (raw bytes in the capture format) into the microphone and
/// returns what came out of the speaker (left channel, f32).
fn loopback_case(case: &str, input: &[u8]) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.raw"), input).unwrap();
    let mic = dir.path().join("mic.fifo");
    let speaker = dir.path().join("speaker.fifo");
    run_child(case, dir.path(), &mic, &speaker);
    let bytes = std::fs::read(dir.path().join("speaker.raw")).unwrap();
    bytes
        .chunks_exact(4)
        .map(|f| f32::from(i16::from_le_bytes([f[0], f[1]])) / 32768.0)
        .collect()
}

// ---------------------------------------------------------------- signals and analysis

fn sine(freq: f32, rate: usize, secs: f32, amp: f32) -> Vec<f32> {
    (0..(rate as f32 * secs) as usize)
        .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
        .collect()
}

fn silence(rate: usize, secs: f32) -> Vec<f32> {
    vec![0.0; (rate as f32 * secs) as usize]
}

/// Interleaved S16_LE, clipped to [-1, 1].
fn i16_bytes(frames: &[Vec<f32>]) -> Vec<u8> {
    interleave(frames)
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
        .collect()
}

fn f32_bytes(frames: &[Vec<f32>]) -> Vec<u8> {
    interleave(frames).flat_map(f32::to_le_bytes).collect()
}

/// Interleaves channels (all the same length).
fn interleave(channels: &[Vec<f32>]) -> impl Iterator<Item = f32> + '_ {
    (0..channels[0].len()).flat_map(move |i| channels.iter().map(move |c| c[i]))
}

fn rms(s: &[f32]) -> f32 {
    (s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32).sqrt()
}

/// RMS per `win` samples.
fn envelope(s: &[f32], win: usize) -> Vec<f32> {
    s.chunks(win).map(rms).collect()
}

/// First and last index of windows above `threshold`.
fn active_span(env: &[f32], threshold: f32) -> Option<(usize, usize)> {
    let first = env.iter().position(|e| *e > threshold)?;
    let last = env.iter().rposition(|e| *e > threshold)?;
    Some((first, last))
}

/// Frequency from positive-going zero crossings.
fn zero_crossing_hz(s: &[f32], rate: usize) -> f32 {
    let crossings = s.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    crossings as f32 * rate as f32 / s.len() as f32
}

/// The tone's duration, level and frequency as heard on the speaker.
fn analyse_tone(out: &[f32]) -> (f32, f32, f32) {
    let win = OUT_RATE / 100;
    let env = envelope(out, win);
    let (first, last) = active_span(&env, 0.05).expect("no tone came out of the speaker");
    let secs = (last + 1 - first) as f32 / 100.0;
    let a = (first + (last - first) / 5) * win;
    let b = (last - (last - first) / 5) * win;
    (
        secs,
        rms(&out[a..b]),
        zero_crossing_hz(&out[a..b], OUT_RATE),
    )
}

/// Best normalised correlation of two envelopes over lags of `b` behind `a`.
fn best_correlation(a: &[f32], b: &[f32]) -> (f32, usize) {
    let mut best = (f32::MIN, 0);
    for lag in 0..b.len().saturating_sub(a.len() / 2) {
        let pairs: Vec<(f32, f32)> = a.iter().copied().zip(b[lag..].iter().copied()).collect();
        let n = pairs.len() as f32;
        let (ma, mb) = (
            pairs.iter().map(|p| p.0).sum::<f32>() / n,
            pairs.iter().map(|p| p.1).sum::<f32>() / n,
        );
        let cov: f32 = pairs.iter().map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f32 = pairs.iter().map(|(x, _)| (x - ma).powi(2)).sum();
        let vb: f32 = pairs.iter().map(|(_, y)| (y - mb).powi(2)).sum();
        let c = cov / (va.sqrt() * vb.sqrt()).max(1e-9);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

// ---------------------------------------------------------------- the cases (parents)

#[test]
fn native_48k_i16_mono_tone_round_trips() {
    let rate = 48_000;
    let mono = [
        silence(rate, 0.3),
        sine(1_000.0, rate, 1.0, 0.5),
        silence(rate, 1.2),
    ]
    .concat();
    let out = loopback_case("tone_48k_i16_mono", &i16_bytes(&[mono]));
    let (secs, level, hz) = analyse_tone(&out);
    assert!((0.95..=1.08).contains(&secs), "tone lasted {secs} s");
    assert!((level - 0.3536).abs() < 0.04, "rms {level}");
    assert!((hz - 1_000.0).abs() < 15.0, "{hz} Hz");
}

#[test]
fn native_44k1_f32_stereo_tone_is_downmixed_and_round_trips() {
    let rate = 44_100;
    let tone = |amp| {
        [
            silence(rate, 0.3),
            sine(440.0, rate, 1.0, amp),
            silence(rate, 1.2),
        ]
        .concat()
    };
    // Left 0.6, right 0.2: the mono mix is 0.4 (rms 0.283).
    let out = loopback_case("tone_44k1_f32_stereo", &f32_bytes(&[tone(0.6), tone(0.2)]));
    let (secs, level, hz) = analyse_tone(&out);
    assert!((0.95..=1.08).contains(&secs), "tone lasted {secs} s");
    assert!((level - 0.2828).abs() < 0.035, "rms {level}");
    assert!((hz - 440.0).abs() < 10.0, "{hz} Hz");
}

#[test]
fn native_16k_i16_mono_speech_round_trips() {
    // An espeak-ng phrase (the shipped "Merci de vous adresser à l'accueil" prompt, 16 kHz).
    let speech = wav::decode_mono_f32(include_bytes!("../assets/prompts/front_desk.wav")).unwrap();
    assert_eq!(speech.sample_rate, 16_000);
    let rate = 16_000;
    let mono = [
        silence(rate, 0.3),
        speech.samples.clone(),
        silence(rate, 1.2),
    ]
    .concat();
    let out = loopback_case(
        "speech_16k_i16_mono",
        &i16_bytes(std::slice::from_ref(&mono)),
    );
    // Compare 20 ms envelopes: same shape, same length, similar level.
    let env_in = envelope(&mono, rate / 50);
    let env_out = envelope(&out, OUT_RATE / 50);
    let (corr, lag) = best_correlation(&env_in, &env_out);
    assert!(corr > 0.9, "envelope correlation {corr} at lag {lag}");
    let speech_in = active_span(&env_in, 0.02).unwrap();
    let speech_out = active_span(&env_out, 0.02).unwrap();
    let (len_in, len_out) = (speech_in.1 - speech_in.0, speech_out.1 - speech_out.0);
    assert!(
        len_in.abs_diff(len_out) <= 3,
        "speech lasted {len_in} vs {len_out} frames"
    );
    let r_in = rms(&mono[speech_in.0 * rate / 50..(speech_in.1 + 1) * rate / 50]);
    let r_out = rms(&out[speech_out.0 * OUT_RATE / 50..(speech_out.1 + 1) * OUT_RATE / 50]);
    assert!((r_out / r_in - 1.0).abs() < 0.25, "level {r_out} vs {r_in}");
}

#[test]
fn missing_microphone_degrades_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    // The microphone's file appears only after a while: the card is "plugged in" late.
    let mic = dir.path().join("late-mic.raw");
    run_child("missing_mic", dir.path(), &mic, Path::new("/dev/null"));
}

#[test]
fn doctor_hears_the_microphone_and_plays_a_tone() {
    let dir = tempfile::tempdir().unwrap();
    let mic = dir.path().join("mic.raw");
    // doctor opens its default (F32 48 kHz stereo) and records 1 s, unpaced: a file is enough.
    let tone = sine(300.0, 48_000, 3.0, 0.25);
    std::fs::write(&mic, f32_bytes(&[tone.clone(), tone])).unwrap();
    let speaker = dir.path().join("speaker.fifo");
    run_child("doctor", dir.path(), &mic, &speaker);
    let out: Vec<f32> = std::fs::read(dir.path().join("speaker.raw"))
        .unwrap()
        .chunks_exact(4)
        .map(|f| f32::from(i16::from_le_bytes([f[0], f[1]])) / 32768.0)
        .collect();
    let (secs, _, hz) = analyse_tone(&out);
    assert!((0.45..=0.55).contains(&secs), "test tone lasted {secs} s");
    assert!((hz - 880.0).abs() < 15.0, "{hz} Hz");
}

#[test]
fn doctor_warns_about_a_silent_microphone_and_lists_devices() {
    let dir = tempfile::tempdir().unwrap();
    run_child(
        "doctor_silent",
        dir.path(),
        Path::new("/dev/zero"),
        Path::new("/dev/null"),
    );
}

#[test]
fn prompt_mutes_the_microphone_in_half_duplex() {
    let rate = 16_000;
    let mono = [silence(rate, 0.3), sine(700.0, rate, 4.0, 0.5)].concat();
    let out = loopback_case("half_duplex", &i16_bytes(&[mono]));
    // The child checked the capture side; the speaker heard the prompt.
    assert!(rms(&out) > 0.01);
}

// ---------------------------------------------------------------- the child side

/// Entry point of the child processes; a no-op in a normal test run.
#[test]
fn child() {
    let Ok(case) = std::env::var("AUDIO_CASE") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("AUDIO_DIR").unwrap());
    let base = AudioConfig {
        input_device: "kiosk_in".into(),
        output_device: "default".into(),
        echo_control: EchoControl::Off,
        ..AudioConfig::default()
    };
    match case.as_str() {
        "tone_48k_i16_mono" => loopback(
            AudioConfig {
                input_sample_rate: Some(48_000),
                input_channels: Some(1),
                input_format: Some(SampleFormat::I16),
                period_frames: Some(480),
                ..base
            },
            &dir,
            2,
            2.8,
        ),
        "tone_44k1_f32_stereo" => loopback(
            AudioConfig {
                input_sample_rate: Some(44_100),
                input_channels: Some(2),
                input_format: Some(SampleFormat::F32),
                output_device: "kiosk_out".into(),
                output_sample_rate: Some(44_100),
                output_channels: Some(1),
                period_frames: Some(441),
                ..base
            },
            &dir,
            2 * 4,
            2.8,
        ),
        "speech_16k_i16_mono" => loopback(
            AudioConfig {
                input_sample_rate: Some(16_000),
                input_channels: Some(1),
                input_format: Some(SampleFormat::I16),
                period_frames: Some(320),
                ..base
            },
            &dir,
            2,
            3.9,
        ),
        "half_duplex" => half_duplex(
            AudioConfig {
                input_sample_rate: Some(16_000),
                input_channels: Some(1),
                input_format: Some(SampleFormat::I16),
                period_frames: Some(320),
                echo_control: EchoControl::HalfDuplex,
                half_duplex_tail_ms: 200,
                ..base
            },
            &dir,
        ),
        "missing_mic" => missing_mic(base),
        "doctor" => {
            let rig = Rig::new(&dir, None, fifo(&dir.join("speaker.fifo")));
            let cfg = Config {
                audio: AudioConfig {
                    input_device: "default".into(),
                    ..base
                },
                ..Config::default()
            };
            let checks = audio::doctor_checks(&cfg, false);
            let input = &checks[0];
            assert_eq!(input.level, Level::Ok, "{checks:?}");
            // A 0.25 sine is -15.05 dBFS.
            assert!(input.detail.contains("level -15."), "{}", input.detail);
            assert!(checks[1].detail.contains("test tone"), "{checks:?}");
            assert!(checks.iter().all(|c| c.level == Level::Ok), "{checks:?}");
            drop(rig);
        }
        "doctor_silent" => {
            let cfg = Config {
                audio: AudioConfig {
                    echo_control: EchoControl::Aec,
                    ..base
                },
                ..Config::default()
            };
            let checks = audio::doctor_checks(&cfg, true);
            assert_eq!(checks[0].level, Level::Warn, "{checks:?}");
            assert!(checks[0].detail.contains("silence"), "{}", checks[0].detail);
            assert!(checks[1].detail.contains("quiet"), "{}", checks[1].detail);
            assert!(
                checks.iter().any(|c| c.name == "audio.echo_control"
                    && c.level == Level::Ok
                    && c.detail.starts_with("aec: echo canceller ready")),
                "{checks:?}"
            );
            let list = audio::devices::list().unwrap();
            let text = list.to_string();
            assert!(
                text.contains("kiosk_in") && text.contains("kiosk_out"),
                "{text}"
            );
            assert!(text.contains("i16") && text.contains("48000"), "{text}");
            let bad = Config {
                audio: AudioConfig {
                    input_device: "no-such-usb-mic".into(),
                    ..AudioConfig::default()
                },
                ..Config::default()
            };
            let checks = audio::doctor_checks(&bad, true);
            assert_eq!(checks[0].level, Level::Fail);
            assert!(
                checks[0].detail.contains("no-such-usb-mic"),
                "{}",
                checks[0].detail
            );
            assert!(
                checks[0].detail.contains("audio.input_device"),
                "{}",
                checks[0].detail
            );
        }
        other => panic!("unknown case {other}"),
    }
}

/// A FIFO the test holds read-write, so ALSA's probe opens never block or cut it off.
fn fifo(path: &Path) -> File {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .unwrap()
}

/// Waits until both audio devices are open (the microphone FIFO is then being read).
fn wait_up(health: &Health) {
    let start = Instant::now();
    while health.snapshot().adapters.get("audio") != Some(&AdapterState::Up) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            health.snapshot()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Real-time microphone and speaker around the FIFOs in `dir`. Declare it after the audio
/// handles: on drop (also when a test panics) it stops feeding and draining, closing the
/// FIFOs so cpal's device threads can never stay blocked on them.
struct Rig {
    stop: Arc<AtomicBool>,
    go: Arc<AtomicBool>,
    feeder: Option<thread::JoinHandle<()>>,
    drainer: Option<thread::JoinHandle<Vec<u8>>>,
    dir: PathBuf,
}

impl Rig {
    /// `mic`: the microphone FIFO and the bytes to play into it (then silence) at
    /// (bytes per second, bytes per capture period) once [`Rig::go`] is called;
    /// `speaker`: the speaker FIFO.
    fn new(dir: &Path, mic: Option<(File, Vec<u8>, (usize, usize))>, speaker: File) -> Rig {
        let stop = Arc::new(AtomicBool::new(false));
        let go = Arc::new(AtomicBool::new(false));
        let feeder = mic.map(|(f, data, rate)| {
            let (stop, go) = (stop.clone(), go.clone());
            thread::spawn(move || feed_mic(f, data, rate, &go, &stop))
        });
        let drainer = {
            let stop = stop.clone();
            thread::spawn(move || drain_speaker(speaker, &stop))
        };
        Rig {
            stop,
            go,
            feeder,
            drainer: Some(drainer),
            dir: dir.to_owned(),
        }
    }

    fn go(&self) {
        self.go.store(true, Ordering::Relaxed);
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(f) = self.feeder.take() {
            let _ = f.join();
        }
        if let Some(d) = self.drainer.take()
            && let Ok(out) = d.join()
        {
            let _ = std::fs::write(self.dir.join("speaker.raw"), out);
        }
    }
}

/// Feeds `data` then silence into the microphone FIFO in real time, never more than 30 ms
/// ahead of what the capture has taken (no bursts), in writes of exactly one capture period:
/// the `file` plugin fills a short read with stale bytes, and a pipe write of at most
/// PIPE_BUF bytes is atomic, so each period read then gets a whole fresh period.
fn feed_mic(mut f: File, data: Vec<u8>, rate: (usize, usize), go: &AtomicBool, stop: &AtomicBool) {
    while !go.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(2));
    }
    let (bytes_per_sec, chunk) = rate;
    assert!(chunk <= 4096, "a period must fit in PIPE_BUF");
    let start = Instant::now();
    let mut sent = 0usize;
    let mut pending: &[u8] = &[];
    let zeros = vec![0u8; chunk];
    while !stop.load(Ordering::Relaxed) {
        let due =
            (start.elapsed().as_millis() as usize * bytes_per_sec / 1000).min(sent + 3 * chunk);
        while sent < due {
            if pending.is_empty() {
                pending = if sent < data.len() {
                    &data[sent..(sent + chunk).min(data.len())]
                } else {
                    &zeros
                };
            }
            match f.write(pending) {
                Ok(n) => {
                    pending = &pending[n..];
                    sent += n;
                }
                Err(_) => break, // pipe full: the capture has not caught up yet
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Drains the speaker FIFO in real time (never more than 20 ms of credit), keeping the bytes.
/// The clock starts with the first byte the device writes.
fn drain_speaker(mut f: File, stop: &AtomicBool) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut t0: Option<Instant> = None;
    let credit = OUT_BYTES_PER_SEC / 50;
    while !stop.load(Ordering::Relaxed) {
        let due = match t0 {
            Some(t) => (t.elapsed().as_millis() as usize * OUT_BYTES_PER_SEC / 1000)
                .min(got.len() + credit),
            None => credit,
        };
        while got.len() < due {
            let want = (due - got.len()).min(buf.len());
            match f.read(&mut buf[..want]) {
                Ok(n) if n > 0 => {
                    t0.get_or_insert_with(Instant::now);
                    got.extend_from_slice(&buf[..n]);
                }
                _ => break,
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    got
}

/// Microphone -> Capture -> Opus frames -> Playback (as RTP) -> speaker, for `secs`.
fn loopback(cfg: AudioConfig, dir: &Path, bytes_per_frame: usize, secs: f32) {
    let rate = cfg.input_sample_rate.unwrap() as usize;
    let period = cfg.period_frames.unwrap() as usize;
    let in_rate = (rate * bytes_per_frame, period * bytes_per_frame);
    let input = std::fs::read(dir.join("input.raw")).unwrap();
    let (mic, speaker) = (fifo(&dir.join("mic.fifo")), fifo(&dir.join("speaker.fifo")));
    let health = Health::new("test", 0);
    let (playback, capture, mut frames) = audio::start(&cfg, health.clone());
    let rig = Rig::new(dir, Some((mic, input, in_rate)), speaker);
    wait_up(&health);
    rig.go();
    let deadline = Instant::now() + Duration::from_secs_f32(secs);
    let (mut seq, mut ts, mut n) = (0u16, 0u32, 0u32);
    while Instant::now() < deadline {
        match frames.try_recv() {
            Ok(f) => {
                assert_eq!(f.samples, audio::SEND_FRAME_SAMPLES as u32);
                playback.push_rtp(seq, ts, &f.data);
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(f.samples);
                n += 1;
            }
            Err(_) => thread::sleep(Duration::from_millis(2)),
        }
    }
    let snap = health.snapshot();
    eprintln!("health after the loop: {snap:?}");
    // Capture first (the mic is still fed), playback while the speaker is still drained.
    drop(capture);
    drop(playback);
    drop(rig);
    assert_eq!(snap.adapters["audio"], AdapterState::Up, "{snap:?}");
    let per_second = 1_000.0 / audio::SEND_FRAME_MS as f32;
    let expected = (secs * per_second) as u32;
    assert!(
        n + per_second as u32 / 2 >= expected,
        "{n} frames in {secs} s"
    );
    assert!(
        n <= expected + 5,
        "{n} frames in {secs} s: capture faster than real time"
    );
    assert_eq!(snap.counters.get("audio_overruns"), None, "{snap:?}");
    assert_eq!(snap.counters.get("audio_late_packets"), None, "{snap:?}");
}

/// With half duplex on, the microphone frames are silent while a prompt plays.
fn half_duplex(cfg: AudioConfig, dir: &Path) {
    let input = std::fs::read(dir.join("input.raw")).unwrap();
    let (mic, speaker) = (fifo(&dir.join("mic.fifo")), fifo(&dir.join("speaker.fifo")));
    let health = Health::new("test", 0);
    let (playback, capture, mut frames) = audio::start(&cfg, health.clone());
    let rig = Rig::new(dir, Some((mic, input, (32_000, 640))), speaker);
    wait_up(&health);
    rig.go();
    let mut decoder = audio::OpusDecoder::new().unwrap();
    let mut pcm = vec![0.0; 5_760];
    let mut level = |data: &[u8]| {
        let n = decoder.decode(data, &mut pcm).unwrap();
        rms(&pcm[..n])
    };
    // 1 s of open microphone: the tone comes through.
    let until = Instant::now() + Duration::from_millis(1_000);
    let mut open_levels = Vec::new();
    while Instant::now() < until {
        if let Ok(f) = frames.try_recv() {
            open_levels.push(level(&f.data));
        }
        thread::sleep(Duration::from_millis(2));
    }
    assert!(open_levels.iter().any(|l| *l > 0.2), "{open_levels:?}");
    // While the spoken prompt plays, frames are silent.
    playback.play_prompt(PromptSound::FrontDesk);
    let start = Instant::now();
    while !playback.is_speaking() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "prompt never started"
        );
        thread::sleep(Duration::from_millis(2));
    }
    thread::sleep(Duration::from_millis(100));
    while frames.try_recv().is_ok() {}
    let mut gated = Vec::new();
    while playback.is_speaking() && gated.len() < 40 {
        if let Ok(f) = frames.try_recv() {
            gated.push(level(&f.data));
        }
        thread::sleep(Duration::from_millis(2));
    }
    assert!(
        gated.len() >= 20,
        "only {} frames while speaking",
        gated.len()
    );
    assert!(gated.iter().skip(2).all(|l| *l < 0.01), "{gated:?}");
    drop(capture);
    drop(playback);
    drop(rig);
}

/// The microphone's file does not exist: degraded with the device and the cause, then up.
fn missing_mic(cfg: AudioConfig) {
    let mic = PathBuf::from(std::env::var("KIOSK_AUDIO_IN").unwrap());
    let health = Health::new("test", 0);
    let (capture, _frames) = audio::Capture::start(
        &cfg,
        health.clone(),
        audio::SpeakingSignal::never(),
        audio::EchoReference::default(),
    );
    let wait_for = |pred: &dyn Fn(&AdapterState) -> bool| {
        let start = Instant::now();
        loop {
            let s = health.snapshot();
            if let Some(a) = s.adapters.get("audio")
                && pred(a)
            {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "{s:?}");
            thread::sleep(Duration::from_millis(20));
        }
    };
    let s = wait_for(&|a| matches!(a, AdapterState::Degraded(_)));
    let AdapterState::Degraded(reason) = &s.adapters["audio"] else {
        unreachable!()
    };
    assert!(
        reason.contains("input") && reason.contains("kiosk_in"),
        "{reason}"
    );
    assert!(reason.contains("not available"), "{reason}");
    assert!(!s.last_errors.is_empty());
    // Plug it in.
    std::fs::write(&mic, vec![0u8; 48_000 * 8 * 10]).unwrap();
    wait_for(&|a| *a == AdapterState::Up);
    drop(capture);
}
