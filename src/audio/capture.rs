//! Microphone capture: the device's native stream, down-mixed to mono in the cpal callback and
//! handed over a lock-free ring to a capture thread that resamples, gates and encodes 20 ms
//! Opus frames for WebRTC. A failing or missing device degrades the `audio` adapter and is
//! reopened with backoff; the daemon keeps running.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, Sample, SampleFormat, SizedSample};
use rtrb::{Producer, RingBuffer};
use tokio::sync::mpsc;

use super::device::{self, DeviceError, Direction};
use super::gate::HalfDuplexGate;
use super::pipeline::CaptureChain;
use super::signal::{SpeakingSignal, now_ms};
use super::status::{AudioStatus, reopen_backoff};
use super::{OpusFrame, counters};
use crate::config::{AudioConfig, EchoControl};
use crate::health::Health;

/// Encoded frames buffered for the WebRTC side before new ones are dropped (1 s).
const CHANNEL_FRAMES: usize = 50;
/// Ring between the callback and the capture thread, in seconds of mono audio.
const RING_SECONDS: f64 = 0.5;

/// A running capture. Dropping it stops the capture thread and closes the device.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Starts capturing from `audio.input_device`. Frames arrive on the returned receiver; if
    /// the receiver is dropped, capture stops. `speaking` (from
    /// [`super::Playback::speaking_signal`]) drives the half-duplex gate.
    pub fn start(
        cfg: &AudioConfig,
        health: Health,
        speaking: SpeakingSignal,
    ) -> (Capture, mpsc::Receiver<OpusFrame>) {
        Self::start_with_status(cfg, AudioStatus::new(health, (true, false)), speaking)
    }

    pub(crate) fn start_with_status(
        cfg: &AudioConfig,
        status: AudioStatus,
        speaking: SpeakingSignal,
    ) -> (Capture, mpsc::Receiver<OpusFrame>) {
        let (tx, rx) = mpsc::channel(CHANNEL_FRAMES);
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            cfg: cfg.clone(),
            status,
            speaking,
            tx,
            stop: stop.clone(),
        };
        let thread = thread::Builder::new()
            .name("audio-capture".into())
            .spawn(move || worker.run())
            .ok();
        if thread.is_none() {
            tracing::error!("cannot spawn the audio capture thread");
        }
        (Capture { stop, thread }, rx)
    }

    /// Stops capture and waits for the device to close.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The gate for `audio.echo_control`; AEC is not built in, so it falls back to half duplex
/// with one warning per process.
pub(crate) fn gate_for(cfg: &AudioConfig) -> Option<HalfDuplexGate> {
    static WARNED: AtomicBool = AtomicBool::new(false);
    match cfg.echo_control {
        EchoControl::Off => None,
        EchoControl::HalfDuplex => Some(HalfDuplexGate::new(cfg.half_duplex_tail_ms)),
        EchoControl::Aec => {
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "audio.echo_control = \"aec\": echo cancellation is not built into this \
                     version; using half duplex (audio.half_duplex_tail_ms) instead"
                );
            }
            Some(HalfDuplexGate::new(cfg.half_duplex_tail_ms))
        }
    }
}

struct Worker {
    cfg: AudioConfig,
    status: AudioStatus,
    speaking: SpeakingSignal,
    tx: mpsc::Sender<OpusFrame>,
    stop: Arc<AtomicBool>,
}

/// Why a running stream ended.
enum End {
    Stop,
    Failed(String),
}

/// An open input stream and what the callback shares with the thread.
struct Running {
    _stream: cpal::Stream,
    name: String,
    rate: u32,
    consumer: rtrb::Consumer<f32>,
    errors: std_mpsc::Receiver<cpal::Error>,
    overruns: Arc<AtomicU64>,
}

impl Worker {
    fn run(self) {
        let mut backoff = reopen_backoff();
        let mut opened_before = false;
        let mut last_error = String::new();
        while !self.stop.load(Ordering::Acquire) && !self.tx.is_closed() {
            let host = cpal::default_host();
            match open(&host, &self.cfg) {
                Ok(running) => {
                    if opened_before {
                        self.status.health().add(counters::REOPENS, 1);
                    }
                    opened_before = true;
                    tracing::info!(device = %running.name, rate = running.rate, "audio capture started");
                    self.status.up(Direction::Input);
                    last_error.clear();
                    backoff = reopen_backoff();
                    match self.pump(running) {
                        End::Stop => break,
                        End::Failed(reason) => {
                            tracing::warn!(%reason, "audio capture failed; reopening");
                            self.status.down(Direction::Input, reason);
                        }
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    if msg != last_error {
                        tracing::warn!(error = %msg, "audio capture unavailable; retrying");
                        last_error = msg.clone();
                    }
                    self.status.down(Direction::Input, msg);
                }
            }
            let wait = backoff.next().unwrap_or(Duration::from_secs(10));
            sleep_unless_stopped(&self.stop, wait);
        }
    }

    fn pump(&self, mut r: Running) -> End {
        let mut chain = match CaptureChain::new(r.rate, gate_for(&self.cfg)) {
            Ok(c) => c,
            Err(e) => return End::Failed(format!("{}: {e}", r.name)),
        };
        let mut buf = vec![0.0f32; 4096];
        let mut reported_overruns = 0;
        let mut closed = false;
        let mut dropped = 0u64;
        let mut encode_errors = 0u64;
        loop {
            if self.stop.load(Ordering::Acquire) || closed {
                return End::Stop;
            }
            if let Some(e) = next_error(&r.errors) {
                return End::Failed(format!("{}: {e}", r.name));
            }
            let n = r.consumer.slots().min(buf.len());
            if n > 0 {
                if let Ok(chunk) = r.consumer.read_chunk(n) {
                    let (a, b) = chunk.as_slices();
                    buf[..a.len()].copy_from_slice(a);
                    buf[a.len()..a.len() + b.len()].copy_from_slice(b);
                    chunk.commit_all();
                }
                let speaking = self.speaking.is_speaking();
                chain.push(&buf[..n], speaking, now_ms(), &mut |res| match res {
                    Ok(frame) => match self.tx.try_send(frame) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => dropped += 1,
                        Err(mpsc::error::TrySendError::Closed(_)) => closed = true,
                    },
                    Err(_) => encode_errors += 1,
                });
            }
            let overruns = r.overruns.load(Ordering::Relaxed);
            if overruns > reported_overruns {
                self.status
                    .health()
                    .add(counters::OVERRUNS, overruns - reported_overruns);
                reported_overruns = overruns;
            }
            if dropped > 0 {
                self.status.health().add(counters::FRAMES_DROPPED, dropped);
                dropped = 0;
            }
            if encode_errors > 0 {
                self.status.health().record_error(format!(
                    "audio input: {encode_errors} frame(s) failed to encode"
                ));
                encode_errors = 0;
            }
            if n == 0 {
                thread::park_timeout(Duration::from_millis(20));
            }
        }
    }
}

/// The next stream error that needs a reopen; xruns are glitches, not failures.
pub(crate) fn next_error(errors: &std_mpsc::Receiver<cpal::Error>) -> Option<cpal::Error> {
    while let Ok(e) = errors.try_recv() {
        if e.kind() != cpal::ErrorKind::Xrun {
            return Some(e);
        }
    }
    None
}

pub(crate) fn sleep_unless_stopped(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(50);
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::Acquire) {
        let d = left.min(step);
        thread::park_timeout(d);
        left = left.saturating_sub(d);
    }
}

fn open(host: &cpal::Host, cfg: &AudioConfig) -> Result<Running, DeviceError> {
    let chosen = device::open_plan(host, cfg, Direction::Input)?;
    let channels = usize::from(chosen.config.channels.max(1));
    let rate = chosen.config.sample_rate;
    let capacity = ((f64::from(rate) * RING_SECONDS) as usize).max(4096);
    let (producer, consumer) = RingBuffer::new(capacity);
    let (err_tx, errors) = std_mpsc::channel();
    let overruns = Arc::new(AtomicU64::new(0));
    let worker = thread::current();
    let backend = |source: cpal::Error| DeviceError::Backend {
        dir: "input",
        device: chosen.name.clone(),
        source,
    };
    let stream = build_input_stream(
        &chosen.device,
        chosen.config,
        chosen.format,
        Feed {
            channels,
            producer,
            overruns: overruns.clone(),
            worker: worker.clone(),
        },
        move |e| {
            let _ = err_tx.send(e);
            worker.unpark();
        },
    )
    .map_err(backend)?;
    stream.play().map_err(backend)?;
    Ok(Running {
        _stream: stream,
        name: chosen.name,
        rate,
        consumer,
        errors,
        overruns,
    })
}

/// What the input callback owns: it down-mixes into `producer`, counts what did not fit, and
/// wakes the capture thread. No allocation, no lock, no logging.
pub(crate) struct Feed {
    pub channels: usize,
    pub producer: Producer<f32>,
    pub overruns: Arc<AtomicU64>,
    pub worker: Thread,
}

impl Feed {
    fn push<T>(&mut self, data: &[T])
    where
        T: Sample,
        f32: FromSample<T>,
    {
        let ch = self.channels;
        let frames = data.len() / ch;
        let n = frames.min(self.producer.slots());
        if n < frames {
            self.overruns
                .fetch_add((frames - n) as u64, Ordering::Relaxed);
        }
        if let Ok(chunk) = self.producer.write_chunk_uninit(n) {
            let scale = 1.0 / ch as f32;
            chunk.fill_from_iter(
                data.chunks_exact(ch)
                    .map(|f| f.iter().map(|s| s.to_sample::<f32>()).sum::<f32>() * scale),
            );
        }
        self.worker.unpark();
    }
}

/// Builds an input stream in the device's own sample format, converting in the callback.
pub(crate) fn build_input_stream(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    format: SampleFormat,
    feed: Feed,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error> {
    fn typed<T>(
        device: &cpal::Device,
        config: cpal::StreamConfig,
        mut feed: Feed,
        on_error: impl FnMut(cpal::Error) + Send + 'static,
    ) -> Result<cpal::Stream, cpal::Error>
    where
        T: SizedSample + Send + 'static,
        f32: FromSample<T>,
    {
        device.build_input_stream::<T, _, _>(
            config,
            move |data: &[T], _| feed.push(data),
            on_error,
            Some(Duration::from_secs(2)),
        )
    }
    match format {
        SampleFormat::F32 => typed::<f32>(device, config, feed, on_error),
        SampleFormat::I16 => typed::<i16>(device, config, feed, on_error),
        SampleFormat::I32 => typed::<i32>(device, config, feed, on_error),
        SampleFormat::F64 => typed::<f64>(device, config, feed, on_error),
        SampleFormat::I8 => typed::<i8>(device, config, feed, on_error),
        SampleFormat::U8 => typed::<u8>(device, config, feed, on_error),
        SampleFormat::U16 => typed::<u16>(device, config, feed, on_error),
        SampleFormat::U32 => typed::<u32>(device, config, feed, on_error),
        other => Err(cpal::Error::with_message(
            cpal::ErrorKind::UnsupportedConfig,
            format!(
                "sample format {other} is not converted; set audio.input_format = \"i16\" or \"f32\""
            ),
        )),
    }
}
