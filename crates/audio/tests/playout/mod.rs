//! Playout through the real virtual sound card (the workspace's
//! `tests/fixtures/asound-file.conf`), shared by `tests/playout_alsa.rs` and
//! `benches/playout.rs`: the two kinds of speaker sink, an
//! RTP stream of a known signal paced like a peer, and the analysis of what came out.
//!
//! alsa-lib reads its configuration once per process, so each case runs in a child process
//! (the caller re-runs its own executable with [`child_command`]'s environment).
#![allow(dead_code)] // the test and the bench use different subsets

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use jarvis_audio::{OpusEncoder, Playback};
use jarvis_config::{AudioConfig, EchoControl};
use jarvis_core::health::{AdapterState, Health};

/// The speaker side of the virtual card: S16_LE, 48 kHz, stereo.
pub const OUT_RATE: usize = 48_000;

/// The command that runs one case in a child process with the virtual card; `speaker` is
/// `$KIOSK_AUDIO_OUT` (a FIFO path, or `|command`).
///
/// The child (its threads, and the sink programs it starts) runs at real-time round-robin
/// priority where that is permitted, as a kiosk's audio would: what is measured is the
/// playout and the device, not a build machine running other jobs that starve the threads
/// for hundreds of milliseconds. Where it is not permitted, the child runs as usual.
pub fn child_command(exe: &Path, args: &[&str], case: &str, dir: &Path, speaker: &str) -> Command {
    let mut cmd = Command::new(exe);
    // SAFETY: only an async-signal-safe system call runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let param = nix::libc::sched_param { sched_priority: 10 };
            nix::libc::sched_setscheduler(0, nix::libc::SCHED_RR, &param);
            Ok(())
        });
    }
    cmd.args(args)
        .env("PLAYOUT_CASE", case)
        .env("PLAYOUT_DIR", dir)
        .env(
            "ALSA_CONFIG_PATH",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/asound-file.conf"),
        )
        .env("KIOSK_AUDIO_IN", "/dev/zero")
        .env("KIOSK_AUDIO_OUT", speaker);
    cmd
}

/// `$KIOSK_AUDIO_OUT` for a sink that drains in 100 ms bursts, like large-period HDMI/USB
/// cards: `pv -L` paces in 100 ms steps, behind a 64 KiB pipe.
pub fn bursty_sink(raw: &Path) -> String {
    format!("|exec pv -q -L 192000 -B 4096 > {}", raw.display())
}

/// The case's directory and speaker FIFO, from the child's environment.
pub fn child_env() -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(std::env::var("PLAYOUT_DIR").expect("PLAYOUT_DIR"));
    let speaker = PathBuf::from(std::env::var("KIOSK_AUDIO_OUT").expect("KIOSK_AUDIO_OUT"));
    (dir, speaker)
}

/// Playback on the virtual card at 48 kHz stereo with 20 ms periods.
pub fn playback_config() -> AudioConfig {
    AudioConfig {
        input_device: "kiosk_in".into(),
        output_device: "default".into(),
        output_sample_rate: Some(48_000),
        output_channels: Some(2),
        period_frames: Some(960),
        echo_control: EchoControl::Off,
        ..AudioConfig::default()
    }
}

/// Waits until the audio adapter is up (the device is open and playing).
/// A health gauge as a number (0 while unset).
pub fn gauge(health: &Health, name: &str) -> u64 {
    health
        .snapshot()
        .gauges
        .get(name)
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

pub fn wait_up(health: &Health) {
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

/// Waits until the playback thread measures the bursty sink's 100 ms steps: the first second
/// of a device behind `pv` also shows the 64 KiB pipe filling at once, a start-up burst the
/// daemon has long forgotten (its card opens at start-up) when a session begins.
pub fn wait_bursts_settled(health: &Health) {
    let start = Instant::now();
    loop {
        let burst = health
            .snapshot()
            .gauges
            .get("audio_device_burst_ms")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if (80..=150).contains(&burst) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "burst {burst} ms: {:?}",
            health.snapshot()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Creates a FIFO and holds it read-write, so ALSA's probe opens never block or cut it off.
pub fn fifo(path: &Path) -> File {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .expect("open fifo")
}

/// A sink that behaves like a card with 20 ms periods (or `period_ms`): its pipe is shrunk to
/// 4096 bytes (one 20 ms period fits), and it takes one period of bytes every period on a
/// monotonic schedule, recording when each read happened.
pub struct SteadySink {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<Drained>>,
}

/// What a [`SteadySink`] read: the bytes, and (time, bytes so far) after each read.
pub struct Drained {
    pub bytes: Vec<u8>,
    pub reads: Vec<(Instant, usize)>,
}

impl SteadySink {
    pub fn start(fifo: File) -> SteadySink {
        Self::with_period(fifo, 20)
    }

    /// A card with `period_ms` periods.
    pub fn with_period(fifo: File, period_ms: u64) -> SteadySink {
        nix::fcntl::fcntl(fifo.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096))
            .expect("F_SETPIPE_SZ");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || drain_steadily(fifo, period_ms, &flag));
        SteadySink {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops draining and returns what was read.
    pub fn finish(mut self) -> Drained {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or(Drained {
                bytes: Vec::new(),
                reads: Vec::new(),
            })
    }
}

impl Drop for SteadySink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn drain_steadily(mut f: File, period_ms: u64, stop: &AtomicBool) -> Drained {
    let mut out = Drained {
        bytes: Vec::new(),
        reads: Vec::new(),
    };
    let period_bytes = OUT_RATE * 4 * period_ms as usize / 1_000;
    let mut buf = vec![0u8; period_bytes];
    let mut due = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Like a card's clock: a tick missed is not made up for by reading faster later.
        due = (due + Duration::from_millis(period_ms)).max(Instant::now());
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        // One period per tick: what the writer has put in the 4096-byte pipe, up to a period.
        let mut got = 0;
        while got < period_bytes {
            match f.read(&mut buf[got..]) {
                Ok(n) if n > 0 => got += n,
                _ => break,
            }
        }
        out.bytes.extend_from_slice(&buf[..got]);
        out.reads.push((Instant::now(), out.bytes.len()));
    }
    out
}

/// 20 ms Opus packets of `pcm` (48 kHz mono).
pub fn opus_packets(pcm: &[f32]) -> Vec<Vec<u8>> {
    let mut enc = OpusEncoder::new().expect("encoder");
    pcm.chunks(960)
        .map(|c| {
            let mut f = c.to_vec();
            f.resize(960, 0.0);
            enc.encode(&f).expect("encode")
        })
        .collect()
}

/// A sine at `freq`, amplitude `amp`, 48 kHz.
pub fn sine(freq: f32, secs: f32, amp: f32) -> Vec<f32> {
    (0..(48_000.0 * secs) as usize)
        .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 48_000.0).sin())
        .collect()
}

/// Pushes `packets` into `playback` like a peer does: one every 20 ms on a monotonic schedule
/// starting now. Returns when the last one is pushed; `at` (if any) is called just before
/// packet `at.0` is pushed.
/// Streams `packets` one every 20 ms on an absolute schedule and returns how late the most
/// late push was: a sender thread the machine did not schedule in time is the test's fault,
/// not the playout's.
pub fn stream(playback: &Playback, packets: &[Vec<u8>]) -> Duration {
    let start = Instant::now();
    let mut latest = Duration::ZERO;
    for (i, p) in packets.iter().enumerate() {
        let due = start + Duration::from_millis(20) * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        latest = latest.max(Instant::now().saturating_duration_since(due));
        playback.push_rtp(i as u16, i as u32 * 960, p);
    }
    latest
}

/// Waits until playback has stopped being audible (what it was given has played out).
pub fn wait_silent(playback: &Playback) {
    let start = Instant::now();
    while playback.is_speaking() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "playback never finished"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// The left channel of S16_LE stereo bytes.
pub fn left(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|f| f32::from(i16::from_le_bytes([f[0], f[1]])) / 32768.0)
        .collect()
}

/// RMS per 10 ms window.
pub fn envelope_10ms(s: &[f32]) -> Vec<f32> {
    s.chunks(OUT_RATE / 100)
        .map(|w| (w.iter().map(|x| x * x).sum::<f32>() / w.len().max(1) as f32).sqrt())
        .collect()
}

/// The tone as heard: (first window, last window, windows inside that span below `gap`).
pub fn tone_span(env: &[f32], on: f32, gap: f32) -> Option<(usize, usize, Vec<usize>)> {
    let first = env.iter().position(|e| *e > on)?;
    let last = env.iter().rposition(|e| *e > on)?;
    let gaps = (first..=last).filter(|i| env[*i] < gap).collect();
    Some((first, last, gaps))
}
