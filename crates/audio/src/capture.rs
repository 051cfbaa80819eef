//! Microphone capture: the device's native stream, down-mixed to mono in the cpal callback and
//! handed over a lock-free ring to a capture thread that resamples, gates and encodes 20 ms
//! Opus frames for WebRTC. A failing or missing device degrades the `audio` adapter and is
//! reopened with backoff; the daemon keeps running.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, Thread};
use std::time::Duration;

use cpal::traits::DeviceTrait;
use cpal::{FromSample, Sample, SampleFormat, SizedSample};
use rtrb::{Producer, RingBuffer};
use tokio::sync::mpsc;

use super::device::{self, DeviceError, Direction};
use super::gate::HalfDuplexGate;
use super::pipeline::CaptureChain;
use super::reopen::{self, End, Stream, StreamWorker, WorkerThread};
use super::signal::SpeakingSignal;
use super::status::AudioStatus;
use super::{OpusFrame, counters};
use jarvis_config::{AudioConfig, EchoControl};
use jarvis_core::clock;
use jarvis_core::health::Health;

/// Encoded frames buffered for the WebRTC side before new ones are dropped (1 s).
const CHANNEL_FRAMES: usize = 50;
/// Ring between the callback and the capture thread, in seconds of mono audio.
const RING_SECONDS: f64 = 0.5;

/// A running capture. Dropping it stops the capture thread and closes the device.
pub struct Capture {
    _thread: WorkerThread,
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
        let thread = reopen::spawn(|stop| Worker {
            cfg: cfg.clone(),
            status,
            speaking,
            tx,
            stop,
        });
        (Capture { _thread: thread }, rx)
    }

    /// Stops capture and waits for the device to close.
    pub fn stop(self) {
        drop(self);
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

/// An open input stream and what the callback shares with the thread.
struct Running {
    stream: Stream,
    consumer: rtrb::Consumer<f32>,
    overruns: Arc<AtomicU64>,
}

impl StreamWorker for Worker {
    const DIRECTION: Direction = Direction::Input;
    type Running = Running;

    fn open(&self, host: &cpal::Host) -> Result<Running, DeviceError> {
        open(host, &self.cfg)
    }

    /// Capture ends when the receiver of the frames is dropped.
    fn wanted(&self) -> bool {
        !self.tx.is_closed()
    }

    fn pump(&self, mut r: Running) -> End {
        let mut chain = match CaptureChain::new(r.stream.rate, gate_for(&self.cfg)) {
            Ok(c) => c,
            Err(e) => return End::Failed(format!("{}: {e}", r.stream.name)),
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
            if let Some(e) = r.stream.next_error() {
                return End::Failed(format!("{}: {e}", r.stream.name));
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
                chain.push(
                    &buf[..n],
                    speaking,
                    clock::mono_ms(),
                    &mut |res| match res {
                        Ok(frame) => match self.tx.try_send(frame) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => dropped += 1,
                            Err(mpsc::error::TrySendError::Closed(_)) => closed = true,
                        },
                        Err(_) => encode_errors += 1,
                    },
                );
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

    fn status(&self) -> &AudioStatus {
        &self.status
    }
}

fn open(host: &cpal::Host, cfg: &AudioConfig) -> Result<Running, DeviceError> {
    let chosen = device::open_plan(host, cfg, Direction::Input)?;
    let channels = usize::from(chosen.config.channels.max(1));
    let rate = chosen.config.sample_rate;
    let capacity = ((f64::from(rate) * RING_SECONDS) as usize).max(4096);
    let (producer, consumer) = RingBuffer::new(capacity);
    let overruns = Arc::new(AtomicU64::new(0));
    let feed = Feed {
        channels,
        producer,
        overruns: overruns.clone(),
        worker: thread::current(),
    };
    let stream = Stream::start(Direction::Input, chosen.name, rate, |on_error| {
        build_input_stream(&chosen.device, chosen.config, chosen.format, feed, on_error)
    })?;
    Ok(Running {
        stream,
        consumer,
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
