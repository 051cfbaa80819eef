//! Microphone capture: the device's native stream, down-mixed to mono in the cpal callback and
//! handed over a lock-free ring to a capture thread that resamples, cancels echo (or gates)
//! and encodes 10 ms Opus frames for WebRTC. While no session is live the stream stays open
//! (a lost device is noticed, a session starts at once) but the thread only discards what
//! the callback left: no resampling, echo cancellation or encoding. A failing or missing
//! device degrades the `audio` adapter and is reopened with backoff; the daemon keeps running.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, Thread};
use std::time::Duration;

use cpal::traits::DeviceTrait;
use cpal::{FromSample, Sample, SampleFormat, SizedSample};
use rtrb::{Producer, RingBuffer};
use tokio::sync::mpsc;

use super::device::{self, DeviceError, Direction};
use super::echo::EchoError;
use super::gate::HalfDuplexGate;
use super::pipeline::{CaptureChain, EchoStage};
use super::reference::EchoReference;
use super::reopen::{self, End, Stream, StreamWorker, WorkerThread};
use super::signal::SpeakingSignal;
use super::status::AudioStatus;
use super::{OpusFrame, counters};
use jarvis_config::{AudioConfig, EchoControl};
use jarvis_core::clock;
use jarvis_core::health::Health;

/// Encoded frames buffered for the WebRTC side before new ones are dropped (1 s).
const CHANNEL_FRAMES: usize = 100;
/// Ring between the callback and the capture thread, in seconds of mono audio.
const RING_SECONDS: f64 = 0.5;

/// A running capture. Dropping it stops the capture thread and closes the device.
pub struct Capture {
    thread: WorkerThread,
    live: Arc<AtomicBool>,
}

impl Capture {
    /// Starts capturing from `audio.input_device`. Frames arrive on the returned receiver; if
    /// the receiver is dropped, capture stops. `speaking` (from
    /// [`super::Playback::speaking_signal`]) drives the half-duplex gate; `reference` (from
    /// [`super::Playback::echo_reference`]) feeds echo cancellation. Capture starts live.
    pub fn start(
        cfg: &AudioConfig,
        health: Health,
        speaking: SpeakingSignal,
        reference: EchoReference,
    ) -> (Capture, mpsc::Receiver<OpusFrame>) {
        Self::start_with_status(
            cfg,
            AudioStatus::new(health, (true, false)),
            speaking,
            reference,
        )
    }

    pub(crate) fn start_with_status(
        cfg: &AudioConfig,
        status: AudioStatus,
        speaking: SpeakingSignal,
        reference: EchoReference,
    ) -> (Capture, mpsc::Receiver<OpusFrame>) {
        let (tx, rx) = mpsc::channel(CHANNEL_FRAMES);
        let live = Arc::new(AtomicBool::new(true));
        let thread = reopen::spawn(|stop| Worker {
            cfg: cfg.clone(),
            status,
            speaking,
            reference,
            live: live.clone(),
            tx,
            stop,
        });
        (Capture { thread, live }, rx)
    }

    /// Whether a session is live. When not, the device stays open but the capture thread only
    /// discards what the device delivers (no resampling, echo cancellation or encoding, no
    /// frames); when live again, frames resume within one device period.
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
        self.thread.wake();
    }

    /// Stops capture and waits for the device to close.
    pub fn stop(self) {
        drop(self);
    }
}

/// The echo stage for `audio.echo_control`. With `"aec"`, an error here means echo
/// cancellation cannot run: the capture side fails loudly (no fallback to another mode).
pub(crate) fn echo_stage_for(cfg: &AudioConfig) -> Result<EchoStage, EchoError> {
    Ok(match cfg.echo_control {
        EchoControl::Off => EchoStage::Off,
        EchoControl::HalfDuplex => {
            EchoStage::HalfDuplex(HalfDuplexGate::new(cfg.half_duplex_tail_ms))
        }
        EchoControl::Aec => EchoStage::aec(cfg.half_duplex_tail_ms)?,
    })
}

struct Worker {
    cfg: AudioConfig,
    status: AudioStatus,
    speaking: SpeakingSignal,
    reference: EchoReference,
    live: Arc<AtomicBool>,
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
        let echo = match echo_stage_for(&self.cfg) {
            Ok(e) => e,
            Err(e) => {
                let reason = format!(
                    "audio.echo_control = \"aec\": {e}; set audio.echo_control = \"half_duplex\" \
                     until this is fixed"
                );
                tracing::error!(%reason, "echo cancellation cannot run");
                return End::Failed(reason);
            }
        };
        let mut chain = match CaptureChain::new(r.stream.rate, echo) {
            Ok(c) => c,
            Err(e) => return End::Failed(format!("{}: {e}", r.stream.name)),
        };
        let mut round = Round::new();
        let mut reported_overruns = 0;
        let mut reported_echo_errors = 0;
        let mut reported_guards = 0;
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
            if let Some(reader) = self.reference.take() {
                chain.set_reference(reader);
            }
            let n = round.run(
                &mut r.consumer,
                &mut chain,
                r.overruns.load(Ordering::Acquire),
                self.live.load(Ordering::Acquire),
                || (self.speaking.is_speaking(), clock::mono_ms()),
                &mut |res| match res {
                    Ok(frame) => match self.tx.try_send(frame) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => dropped += 1,
                        Err(mpsc::error::TrySendError::Closed(_)) => closed = true,
                    },
                    Err(_) => encode_errors += 1,
                },
            );
            let echo_errors = chain.echo_errors();
            if echo_errors > reported_echo_errors {
                self.status.health().record_error(format!(
                    "audio.echo_control = \"aec\": {} block(s) refused by the echo canceller \
                     (muted)",
                    echo_errors - reported_echo_errors
                ));
                reported_echo_errors = echo_errors;
            }
            let overruns = r.overruns.load(Ordering::Relaxed);
            if overruns > reported_overruns {
                self.status
                    .health()
                    .add(counters::OVERRUNS, overruns - reported_overruns);
                reported_overruns = overruns;
            }
            let xruns = r.stream.take_xruns();
            if xruns > 0 {
                // The device lost microphone audio we cannot measure: the canceller's
                // reference no longer lines up.
                chain.echo_disrupted();
                self.status.health().add(counters::INPUT_XRUNS, xruns);
            }
            let guarded = chain.echo_guard_engaged();
            if guarded > reported_guards {
                self.status
                    .health()
                    .add(counters::ECHO_GUARD_ENGAGED, guarded - reported_guards);
                reported_guards = guarded;
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

/// One round of the capture thread over what the callback left in the ring.
pub(crate) struct Round {
    buf: Vec<f32>,
    was_live: bool,
    /// The callback's overrun count already accounted for.
    overruns_seen: u64,
    /// Samples still in the ring before the samples the callback dropped, and how many it
    /// dropped: the chain hears of the loss where it happened in the stream.
    gap: Option<(usize, u64)>,
}

impl Round {
    pub(crate) fn new() -> Self {
        Round {
            buf: vec![0.0; 4096],
            was_live: true,
            overruns_seen: 0,
            gap: None,
        }
    }

    /// Takes the waiting samples: while `live`, through the chain (`state` gives whether
    /// JARVIS is speaking and the time, read only then); otherwise they are discarded and the
    /// chain pauses. `overruns` is the callback's count of dropped samples: a rise means
    /// samples are missing after what the ring holds now. Returns how many samples were taken.
    pub(crate) fn run(
        &mut self,
        consumer: &mut rtrb::Consumer<f32>,
        chain: &mut CaptureChain,
        overruns: u64,
        live: bool,
        state: impl FnOnce() -> (bool, u64),
        emit: &mut dyn FnMut(Result<OpusFrame, super::codec::CodecError>),
    ) -> usize {
        let lost = overruns.saturating_sub(self.overruns_seen);
        self.overruns_seen = overruns;
        if !live {
            self.gap = None;
            let n = consumer.slots();
            if let Ok(chunk) = consumer.read_chunk(n) {
                chunk.commit_all();
            }
            if self.was_live {
                chain.pause();
                self.was_live = false;
            }
            return n;
        }
        if !self.was_live {
            chain.resume();
            self.was_live = true;
        }
        if lost > 0 {
            // Later losses before the first is reached are counted at its place.
            let at = self.gap.map_or(consumer.slots(), |(at, _)| at);
            let total = self.gap.map_or(0, |(_, n)| n) + lost;
            self.gap = Some((at, total));
        }
        let mut n = consumer.slots().min(self.buf.len());
        if let Some((at, _)) = self.gap {
            n = n.min(at);
        }
        if n > 0 {
            if let Ok(chunk) = consumer.read_chunk(n) {
                let (a, b) = chunk.as_slices();
                self.buf[..a.len()].copy_from_slice(a);
                self.buf[a.len()..a.len() + b.len()].copy_from_slice(b);
                chunk.commit_all();
            }
            let (speaking, now_ms) = state();
            chain.push(&self.buf[..n], speaking, now_ms, emit);
        }
        if let Some((at, dropped)) = self.gap {
            if at == n {
                chain.microphone_lost(dropped);
                self.gap = None;
            } else {
                self.gap = Some((at - n, dropped));
            }
        }
        n
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
    let xruns = Arc::new(AtomicU64::new(0));
    let stream = Stream::start(Direction::Input, chosen.name, rate, xruns, |on_error| {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin())
            .collect()
    }

    /// Feeds 80 ms through the ring and one round; returns (samples taken, frames out,
    /// whether the chain was asked for the speaking state).
    fn round_trip(round: &mut Round, chain: &mut CaptureChain, live: bool) -> (usize, usize, bool) {
        let (mut producer, mut consumer) = RingBuffer::new(8_192);
        if let Ok(chunk) = producer.write_chunk_uninit(3_840) {
            chunk.fill_from_iter(tone(3_840));
        }
        let mut frames = 0;
        let mut asked = false;
        let n = round.run(
            &mut consumer,
            chain,
            0,
            live,
            || {
                asked = true;
                (false, 0)
            },
            &mut |f| {
                assert!(f.is_ok());
                frames += 1;
            },
        );
        assert_eq!(consumer.slots(), 0, "the ring is always drained");
        (n, frames, asked)
    }

    #[test]
    fn idle_capture_discards_without_running_the_chain_and_resumes_when_live() {
        let mut chain = CaptureChain::new(48_000, EchoStage::aec(300).unwrap()).unwrap();
        let mut round = Round::new();
        assert_eq!(round_trip(&mut round, &mut chain, true), (3_840, 8, true));
        for _ in 0..3 {
            assert_eq!(round_trip(&mut round, &mut chain, false), (3_840, 0, false));
        }
        assert_eq!(round_trip(&mut round, &mut chain, true), (3_840, 8, true));
    }

    fn rms(s: &[f32]) -> f32 {
        (s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32).sqrt()
    }

    /// The callback's side of the ring: what does not fit is dropped and counted.
    fn feed(producer: &mut rtrb::Producer<f32>, overruns: &mut u64, block: &[f32]) {
        let n = block.len().min(producer.slots());
        *overruns += (block.len() - n) as u64;
        if let Ok(chunk) = producer.write_chunk_uninit(n) {
            chunk.fill_from_iter(block.iter().copied());
        }
    }

    /// One capture round while JARVIS speaks at `now_ms`; the frames go to `frames`.
    fn speaking_round(
        round: &mut Round,
        consumer: &mut rtrb::Consumer<f32>,
        chain: &mut CaptureChain,
        overruns: u64,
        now_ms: u64,
        frames: &mut Vec<OpusFrame>,
    ) -> usize {
        round.run(
            consumer,
            chain,
            overruns,
            true,
            || (true, now_ms),
            &mut |f| frames.push(f.unwrap()),
        )
    }

    #[test]
    fn the_chain_hears_of_an_overrun_where_the_samples_went_missing() {
        let mut chain = CaptureChain::new(48_000, EchoStage::aec(300).unwrap()).unwrap();
        let mut round = Round::new();
        let (mut producer, mut consumer) = RingBuffer::new(9_600);
        let mut overruns = 0;
        let mut frames = Vec::new();
        // The capture thread stalled: the ring filled up, then 4 800 samples were dropped.
        feed(&mut producer, &mut overruns, &tone(14_400));
        assert_eq!(overruns, 4_800);
        let mut taken = 0;
        while taken < 9_600 {
            taken += speaking_round(
                &mut round,
                &mut consumer,
                &mut chain,
                overruns,
                0,
                &mut frames,
            );
            // The new canceller's own window opened with the first frame (it is over by 5 s);
            // the loss is not reached yet.
            assert_eq!(
                chain.echo_guard_engaged(),
                1,
                "told before the gap, at {taken}"
            );
        }
        assert_eq!(taken, 9_600);
        // The next frame, the first after the gap, opens the recovery window.
        feed(&mut producer, &mut overruns, &tone(960));
        speaking_round(
            &mut round,
            &mut consumer,
            &mut chain,
            overruns,
            5_000,
            &mut frames,
        );
        assert_eq!(chain.echo_guard_engaged(), 2);
    }

    #[test]
    fn after_a_capture_stall_jarvis_is_gated_until_the_canceller_settles_then_cancelled() {
        use crate::reference::reference_ring;
        use crate::room::{Room, Signals};
        let room = Room::kiosk(80);
        let s = Signals::far_only(8.0);
        let mic = room.microphone(&s);
        let echo = room.echo(&s.far);
        let (mut tap, reader) = reference_ring(48_000).unwrap();
        let mut chain = CaptureChain::new(48_000, EchoStage::aec(300).unwrap()).unwrap();
        chain.set_reference(reader);
        let mut round = Round::new();
        let (mut producer, mut consumer) = RingBuffer::new(24_000);
        let mut overruns = 0;
        let mut frames = Vec::new();
        // 10 ms at a time the speaker plays and the microphone records; the capture thread
        // does not run from 2.5 s to 3.1 s, and its 500 ms ring loses 100 ms.
        for (i, (far, near)) in s.far.chunks(480).zip(mic.chunks(480)).enumerate() {
            let now_ms = i as u64 * 10;
            tap.played(far);
            feed(&mut producer, &mut overruns, near);
            if (2_500..3_100).contains(&now_ms) {
                continue;
            }
            let mut round_once = || {
                speaking_round(
                    &mut round,
                    &mut consumer,
                    &mut chain,
                    overruns,
                    now_ms,
                    &mut frames,
                )
            };
            while round_once() > 0 {}
        }
        // 600 ms of stall plus the block fed before the thread ran again, less the ring.
        assert_eq!(overruns, 5_280);
        let lost = 5_280;
        // The new canceller's window at the start, then the stall's.
        assert_eq!(chain.echo_guard_engaged(), 2);
        let out = crate::pipeline::tests::decode(&frames);
        // JARVIS speaks throughout: what follows the gap (3.1 s of the room) is gated for 1.5 s.
        let gap = 3 * 48_000 + 4_800 - lost;
        let window = gap + 960..gap + 72_000 - 960;
        assert!(
            rms(&out[window]) < 1e-4,
            "gated: {}",
            rms(&out[gap..gap + 48_000])
        );
        // Then the canceller works on a reference still aligned with the microphone.
        let echo_span = 5 * 48_000..7 * 48_000;
        let out_span = echo_span.start - lost..echo_span.end - lost;
        let reduction = 20.0 * (rms(&echo[echo_span]) / rms(&out[out_span])).log10();
        assert!(
            reduction >= 20.0,
            "echo reduced by {reduction:.1} dB after the stall"
        );
    }

    #[test]
    fn every_echo_control_mode_builds() {
        for mode in [EchoControl::Off, EchoControl::HalfDuplex, EchoControl::Aec] {
            let cfg = AudioConfig {
                echo_control: mode,
                ..AudioConfig::default()
            };
            let stage = echo_stage_for(&cfg).unwrap();
            let matches = matches!(
                (mode, stage),
                (EchoControl::Off, EchoStage::Off)
                    | (EchoControl::HalfDuplex, EchoStage::HalfDuplex(_))
                    | (EchoControl::Aec, EchoStage::Aec(_))
            );
            assert!(matches, "{mode:?}");
        }
        assert_eq!(AudioConfig::default().echo_control, EchoControl::Aec);
    }
}
