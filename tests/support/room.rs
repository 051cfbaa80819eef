//! An echo room for end-to-end tests: what the daemon's speaker plays comes back into its
//! microphone through a simulated room (delayed taps, attenuation, noise), mixed with what the
//! member says, on one steady 20 ms clock, like a sound card with 20 ms periods.
//!
//! The speaker is a FIFO shrunk to one page, so the daemon's output is paced by the room's
//! reads and never runs more than about 20 ms ahead of what the room has "played". Everything
//! is recorded per tick (speaker, microphone, the clean member track) for signal analysis.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Samples per 20 ms tick at 48 kHz.
pub const TICK_SAMPLES: usize = 960;
const TICK: Duration = Duration::from_millis(20);

/// The acoustic path from the speaker to the microphone.
#[derive(Debug, Clone)]
pub struct RoomSpec {
    /// `(delay_ms, gain)` of each path: the direct one first, then reflections.
    pub taps: Vec<(u32, f32)>,
    /// Level of the room's white noise, dBFS RMS.
    pub noise_dbfs: f32,
}

impl RoomSpec {
    /// A kiosk cabinet: the speaker a hand's width from the microphone, two reflections.
    pub fn kiosk() -> RoomSpec {
        RoomSpec {
            taps: vec![(60, 0.5), (85, 0.25), (140, 0.1)],
            noise_dbfs: -60.0,
        }
    }

    fn longest_delay_samples(&self) -> usize {
        self.taps
            .iter()
            .map(|(d, _)| *d as usize * 48)
            .max()
            .unwrap_or(0)
    }
}

/// What the room heard and played, one entry per 20 ms tick.
#[derive(Debug, Default, Clone)]
pub struct Recording {
    /// Tick times, from the room's start.
    pub ticks: Vec<Duration>,
    /// What the speaker played (left channel), 48 kHz.
    pub speaker: Vec<f32>,
    /// What the microphone captured (member + echo + noise), 48 kHz.
    pub mic: Vec<f32>,
}

impl Recording {
    /// The tick index at or after `at`.
    pub fn tick_at(&self, start: Instant, at: Instant) -> usize {
        let since = at.saturating_duration_since(start);
        self.ticks.partition_point(|t| *t < since)
    }
}

/// RMS level of `s` in dBFS (-120 for silence).
pub fn dbfs(s: &[f32]) -> f32 {
    let rms = (s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32).sqrt();
    if rms <= 1e-6 {
        -120.0
    } else {
        20.0 * rms.log10()
    }
}

/// A running room. Dropping it stops the clock.
pub struct Room {
    pub speaker_fifo: PathBuf,
    pub mic_fifo: PathBuf,
    pub started: Instant,
    say: mpsc::Sender<(Vec<f32>, mpsc::Sender<Instant>)>,
    recording: Arc<Mutex<Recording>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Room {
    /// Makes the two FIFOs in `dir` and starts the 20 ms clock.
    pub fn start(dir: &Path, spec: RoomSpec) -> Room {
        let speaker_fifo = dir.join("speaker.fifo");
        let mic_fifo = dir.join("mic.fifo");
        for f in [&speaker_fifo, &mic_fifo] {
            nix::unistd::mkfifo(f, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }
        // Both held read-write: opens never block, and probe opens by cpal, which open and
        // close the device, never see the other end vanish.
        let open = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(p)
                .unwrap()
        };
        let speaker = open(&speaker_fifo);
        let mic = open(&mic_fifo);
        // One page: the daemon's writes block once ~20 ms are waiting, as on a real card.
        // SAFETY: F_SETPIPE_SZ on a pipe fd we own, with an integer argument.
        let set = unsafe { libc::fcntl(speaker.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        assert!(set >= 4096, "F_SETPIPE_SZ failed");
        let (say, said) = mpsc::channel();
        let recording = Arc::new(Mutex::new(Recording::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let clock = Clock {
            spec,
            speaker,
            mic,
            said,
            recording: recording.clone(),
            stop: stop.clone(),
            started,
        };
        let thread = std::thread::spawn(move || clock.run());
        Room {
            speaker_fifo,
            mic_fifo,
            started,
            say,
            recording,
            stop,
            thread: Some(thread),
        }
    }

    /// The member says `pcm` (48 kHz mono), starting at the next tick; returns that tick's time.
    pub fn say(&self, pcm: Vec<f32>) -> Instant {
        let (at_tx, at_rx) = mpsc::channel();
        self.say.send((pcm, at_tx)).unwrap();
        at_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the room's clock is running")
    }

    /// A copy of everything recorded so far.
    pub fn recording(&self) -> Recording {
        self.recording.lock().unwrap().clone()
    }

    /// Time since the room started of an instant.
    pub fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Clock {
    spec: RoomSpec,
    speaker: File,
    mic: File,
    said: mpsc::Receiver<(Vec<f32>, mpsc::Sender<Instant>)>,
    recording: Arc<Mutex<Recording>>,
    stop: Arc<AtomicBool>,
    started: Instant,
}

impl Clock {
    fn run(mut self) {
        let mut pending: Vec<u8> = Vec::new();
        let mut history: Vec<f32> = vec![0.0; self.spec.longest_delay_samples()];
        let mut member: Vec<f32> = Vec::new();
        let mut member_pos = 0usize;
        let mut noise = Noise::new(10f32.powf(self.spec.noise_dbfs / 20.0));
        let mut tick = 0u32;
        while !self.stop.load(Ordering::Relaxed) {
            let due = self.started + TICK * tick;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let now = Instant::now();
            tick += 1;
            if let Ok((pcm, at)) = self.said.try_recv() {
                member = pcm;
                member_pos = 0;
                let _ = at.send(now);
            }
            // What the speaker played this tick: S16 LE stereo, left channel kept.
            let mut buf = [0u8; TICK_SAMPLES * 4];
            let want = TICK_SAMPLES * 4 - pending.len();
            match self.speaker.read(&mut buf[..want]) {
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("speaker fifo: {e}"),
            }
            let frames = pending.len() / 4;
            let mut played: Vec<f32> = pending[..frames * 4]
                .chunks_exact(4)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                .collect();
            pending.drain(..frames * 4);
            played.resize(TICK_SAMPLES, 0.0);

            let base = history.len();
            history.extend_from_slice(&played);
            let near: Vec<f32> = (0..TICK_SAMPLES)
                .map(|i| member.get(member_pos + i).copied().unwrap_or(0.0))
                .collect();
            member_pos += TICK_SAMPLES;
            let mic: Vec<f32> = (0..TICK_SAMPLES)
                .map(|i| {
                    let echo: f32 = self
                        .spec
                        .taps
                        .iter()
                        .map(|(d, g)| g * history[base + i - *d as usize * 48])
                        .sum();
                    (near[i] + echo + noise.next()).clamp(-1.0, 1.0)
                })
                .collect();
            let keep = self.spec.longest_delay_samples();
            history.drain(..history.len() - keep);
            let bytes: Vec<u8> = mic
                .iter()
                .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
                .collect();
            // A microphone nobody reads overruns: the room drops what does not fit.
            let _ = self.mic.write(&bytes);

            let mut r = self.recording.lock().unwrap();
            r.ticks.push(now - self.started);
            r.speaker.extend_from_slice(&played);
            r.mic.extend_from_slice(&mic);
        }
    }
}

/// A small deterministic white-noise source (xorshift), uniform in ±amplitude·√3.
struct Noise {
    state: u32,
    scale: f32,
}

impl Noise {
    fn new(rms: f32) -> Noise {
        Noise {
            state: 0x9E37_79B9,
            scale: rms * 3f32.sqrt(),
        }
    }

    fn next(&mut self) -> f32 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        (self.state as f32 / u32::MAX as f32 * 2.0 - 1.0) * self.scale
    }
}
