//! Speaker playback straight through cpal: RTP packets from WebRTC go to a playback thread
//! (jitter buffer, Opus decode with FEC/PLC, prompt mixing, resampling to the device rate),
//! which keeps a short lock-free ring ahead of the device callback. The ring is kept at about
//! one device period plus 10 ms so speech reaches the speaker quickly and a flush is instant.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::{self, Thread};
use std::time::Duration;

use cpal::traits::DeviceTrait;
use cpal::{FromSample, Sample, SampleFormat, SizedSample};
use rtrb::{Consumer, RingBuffer};

use super::counters;
use super::device::{self, DeviceError, Direction};
use super::jitter::JitterStats;
use super::pipeline::{PlaybackChain, Slot};
use super::prompts::{PromptSet, PromptSound};
use super::reference::{EchoReference, ReferenceTap};
use super::reopen::{self, End, Stream, StreamWorker, WorkerThread};
use super::signal::SpeakingSignal;
use super::status::AudioStatus;
use jarvis_config::AudioConfig;
use jarvis_core::clock;
use jarvis_core::health::Health;

/// Commands queued to the playback thread before packets are dropped (about 10 s of RTP).
const QUEUE: usize = 512;
/// Audio kept ready ahead of the device beyond one period, in milliseconds.
const AHEAD_MS: u32 = 10;
/// Ring capacity between the playback thread and the callback, in seconds.
const RING_SECONDS: f64 = 0.5;

enum Cmd {
    Rtp {
        seq: u16,
        timestamp: u32,
        payload: Vec<u8>,
        arrival_ms: u64,
    },
    Flush,
    PromptSound(PromptSound),
}

/// A running playback. Cheap calls from any thread (including async tasks: nothing blocks);
/// dropping it stops the thread and closes the device.
pub struct Playback {
    /// Declared first so it is dropped first: the thread stops and the device closes before
    /// the command queue does.
    thread: WorkerThread,
    tx: std_mpsc::SyncSender<Cmd>,
    flush_pending: Arc<AtomicBool>,
    speaking: SpeakingSignal,
    reference: EchoReference,
    status: AudioStatus,
}

impl Playback {
    /// Opens `audio.output_device` (retrying in the background if it is missing) and loads the
    /// prompts (embedded, overridden from `audio.prompts_dir`).
    pub fn start(cfg: &AudioConfig, health: Health) -> Playback {
        Self::start_with_status(cfg, AudioStatus::new(health, (false, true)))
    }

    pub(crate) fn start_with_status(cfg: &AudioConfig, status: AudioStatus) -> Playback {
        let (prompts, errors) = PromptSet::load(cfg.prompts_dir.as_deref());
        for e in errors {
            tracing::warn!(error = %e, "prompt override ignored");
            status.health().record_error(e.to_string());
        }
        let (tx, rx) = std_mpsc::sync_channel(QUEUE);
        let flush_pending = Arc::new(AtomicBool::new(false));
        let speaking = SpeakingSignal::never();
        let reference = EchoReference::default();
        let thread = reopen::spawn(|stop| Worker {
            cfg: cfg.clone(),
            status: status.clone(),
            speaking: speaking.clone(),
            reference: reference.clone(),
            rx,
            prompts,
            stop,
            flush_pending: flush_pending.clone(),
        });
        Playback {
            thread,
            tx,
            flush_pending,
            speaking,
            reference,
            status,
        }
    }

    /// Hands over one received RTP packet (Opus payload). Never blocks; if the playback thread
    /// is far behind, the packet is dropped and counted.
    pub fn push_rtp(&self, seq: u16, timestamp: u32, payload: &[u8]) {
        let cmd = Cmd::Rtp {
            seq,
            timestamp,
            payload: payload.to_vec(),
            arrival_ms: clock::mono_ms(),
        };
        if self.tx.try_send(cmd).is_err() {
            self.status.health().add(counters::LATE_PACKETS, 1);
        }
    }

    /// Stops Realtime speech now (barge-in): call on `input_audio_buffer.speech_started` and
    /// `output_audio_buffer.cleared`. Buffered and queued audio is dropped, including what was
    /// already in the device ring; a prompt keeps playing.
    pub fn flush(&self) {
        self.speaking.clear();
        if self.tx.try_send(Cmd::Flush).is_err() {
            self.flush_pending.store(true, Ordering::Release);
        }
        self.wake();
    }

    /// Plays a prompt, mixed over whatever else is playing.
    pub fn play_prompt(&self, prompt: PromptSound) {
        if self.tx.try_send(Cmd::PromptSound(prompt)).is_err() {
            tracing::warn!(?prompt, "playback queue full; prompt dropped");
        }
        self.wake();
    }

    /// True while audio handed to the device has not finished playing (speech or prompt).
    /// Use it to know when the goodbye has been heard before closing the session.
    pub fn is_speaking(&self) -> bool {
        self.speaking.is_speaking()
    }

    /// The flag the capture gate reads (see [`super::Capture::start`]).
    pub fn speaking_signal(&self) -> SpeakingSignal {
        self.speaking.clone()
    }

    /// What the speaker plays, for the capture side's echo canceller (see
    /// [`super::Capture::start`]).
    pub fn echo_reference(&self) -> EchoReference {
        self.reference.clone()
    }

    fn wake(&self) {
        self.thread.wake();
    }

    /// Stops playback and waits for the device to close.
    pub fn stop(self) {
        drop(self);
    }
}

struct Worker {
    cfg: AudioConfig,
    status: AudioStatus,
    speaking: SpeakingSignal,
    reference: EchoReference,
    rx: std_mpsc::Receiver<Cmd>,
    prompts: PromptSet,
    stop: Arc<AtomicBool>,
    flush_pending: Arc<AtomicBool>,
}

/// State the output callback shares with the playback thread.
pub(crate) struct Shared {
    /// Frames the device asked for in its last callback (its period).
    period: AtomicU32,
    /// Set by a flush: the callback drops everything in the ring.
    discard: AtomicBool,
}

impl Shared {
    pub(crate) fn new(period: u32) -> Arc<Self> {
        Arc::new(Shared {
            period: AtomicU32::new(period),
            discard: AtomicBool::new(false),
        })
    }
}

struct Running {
    stream: Stream,
    producer: rtrb::Producer<f32>,
    capacity: usize,
    shared: Arc<Shared>,
}

impl StreamWorker for Worker {
    const DIRECTION: Direction = Direction::Output;
    type Running = Running;

    fn open(&self, host: &cpal::Host) -> Result<Running, DeviceError> {
        open(host, &self.cfg, &self.reference)
    }

    /// Without a device nothing can be played: keep the queue from filling up.
    fn between_attempts(&self) {
        while self.rx.try_recv().is_ok() {}
        self.speaking.clear();
    }

    fn pump(&self, mut r: Running) -> End {
        let mut chain = match PlaybackChain::new(r.stream.rate) {
            Ok(c) => c,
            Err(e) => return End::Failed(format!("{}: {e}", r.stream.name)),
        };
        let mut reported = JitterStats::default();
        let mut reported_decode_errors = 0;
        loop {
            if self.stop.load(Ordering::Acquire) {
                return End::Stop;
            }
            if let Some(e) = r.stream.next_error() {
                return End::Failed(format!("{}: {e}", r.stream.name));
            }
            if self.flush_pending.swap(false, Ordering::AcqRel) {
                self.flush(&mut chain, &r.shared);
            }
            loop {
                match self.rx.try_recv() {
                    Ok(Cmd::Rtp {
                        seq,
                        timestamp,
                        payload,
                        arrival_ms,
                    }) => {
                        chain.push_rtp(seq, timestamp, &payload, arrival_ms);
                    }
                    Ok(Cmd::Flush) => self.flush(&mut chain, &r.shared),
                    Ok(Cmd::PromptSound(p)) => chain.start_prompt(self.prompts.get(p)),
                    Err(std_mpsc::TryRecvError::Empty) => break,
                    // The Playback handle is gone.
                    Err(std_mpsc::TryRecvError::Disconnected) => return End::Stop,
                }
            }
            let period = r.shared.period.load(Ordering::Relaxed) as usize;
            let low_water = period + (r.stream.rate * AHEAD_MS / 1000) as usize;
            while chain.is_active() {
                let fill = r.capacity - r.producer.slots();
                if fill >= low_water {
                    break;
                }
                let producer = &mut r.producer;
                let slot = chain.next_slot(&mut |samples| {
                    let n = samples.len().min(producer.slots());
                    if let Ok(chunk) = producer.write_chunk_uninit(n) {
                        chunk.fill_from_iter(samples.iter().copied());
                    }
                });
                if slot == Slot::Audible {
                    let queued = (r.capacity - r.producer.slots()) + period;
                    let ms = (queued as u64 * 1000).div_ceil(u64::from(r.stream.rate.max(1)));
                    self.speaking.extend_to(clock::mono_ms() + ms);
                }
            }
            // Speech still buffered counts as speaking even if the device is between callbacks.
            self.speaking.set_pending(chain.has_audio());
            let stats = chain.jitter_stats();
            self.report(&stats, &reported);
            reported = stats;
            let decode_errors = chain.decode_errors();
            if decode_errors > reported_decode_errors {
                self.status.health().add(
                    counters::DECODE_ERRORS,
                    decode_errors - reported_decode_errors,
                );
                reported_decode_errors = decode_errors;
            }
            thread::park_timeout(Duration::from_millis(5));
        }
    }

    fn status(&self) -> &AudioStatus {
        &self.status
    }
}

impl Worker {
    fn flush(&self, chain: &mut PlaybackChain, shared: &Shared) {
        chain.flush();
        shared.discard.store(true, Ordering::Release);
        self.speaking.clear();
    }

    fn report(&self, now: &JitterStats, before: &JitterStats) {
        let h = self.status.health();
        for (name, n, b) in [
            (counters::FEC_RECOVERED, now.fec, before.fec),
            (counters::CONCEALED, now.concealed, before.concealed),
            (
                counters::LATE_PACKETS,
                now.late + now.duplicates + now.overflow_dropped,
                before.late + before.duplicates + before.overflow_dropped,
            ),
        ] {
            if n > b {
                h.add(name, n - b);
            }
        }
    }
}

fn open(
    host: &cpal::Host,
    cfg: &AudioConfig,
    reference: &EchoReference,
) -> Result<Running, DeviceError> {
    let chosen = device::open_plan(host, cfg, Direction::Output)?;
    let rate = chosen.config.sample_rate;
    // Only the echo canceller reads the reference; a rate it cannot resample leaves it on
    // zeros (the capture side reports AEC's own failures).
    let tap = reference.attach(rate).ok();
    let capacity = ((f64::from(rate) * RING_SECONDS) as usize).max(4096);
    let (producer, consumer) = RingBuffer::new(capacity);
    let shared = Shared::new(match chosen.config.buffer_size {
        cpal::BufferSize::Fixed(n) => n,
        cpal::BufferSize::Default => rate / 50,
    });
    let drain = Drain {
        channels: usize::from(chosen.config.channels.max(1)),
        consumer,
        shared: shared.clone(),
        worker: thread::current(),
        reference: tap,
    };
    let stream = Stream::start(Direction::Output, chosen.name, rate, |on_error| {
        build_output_stream(
            &chosen.device,
            chosen.config,
            chosen.format,
            drain,
            on_error,
        )
    })?;
    Ok(Running {
        stream,
        producer,
        capacity,
        shared,
    })
}

/// What the output callback owns: it copies mono samples from the ring to every channel,
/// plays silence when the ring is empty, hands what it played (silence included) to the echo
/// reference, and wakes the playback thread. No allocation, no lock, no logging.
pub(crate) struct Drain {
    pub channels: usize,
    pub consumer: Consumer<f32>,
    pub shared: Arc<Shared>,
    pub worker: Thread,
    pub reference: Option<ReferenceTap>,
}

impl Drain {
    fn pull<T>(&mut self, out: &mut [T])
    where
        T: Sample + FromSample<f32>,
    {
        let ch = self.channels;
        let frames = out.len() / ch;
        self.shared.period.store(frames as u32, Ordering::Relaxed);
        if self.shared.discard.swap(false, Ordering::AcqRel) {
            let all = self.consumer.slots();
            if let Ok(chunk) = self.consumer.read_chunk(all) {
                chunk.commit_all();
            }
        }
        let n = frames.min(self.consumer.slots());
        let mut written = 0;
        if let Ok(chunk) = self.consumer.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            for (frame, s) in out.chunks_exact_mut(ch).zip(a.iter().chain(b)) {
                frame.fill(T::from_sample(*s));
                written += 1;
            }
            if let Some(tap) = self.reference.as_mut() {
                tap.played(a);
                tap.played(b);
            }
            chunk.commit_all();
        }
        for frame in out.chunks_exact_mut(ch).skip(written) {
            frame.fill(T::EQUILIBRIUM);
        }
        if let Some(tap) = self.reference.as_mut() {
            tap.silence(frames - written);
        }
        self.worker.unpark();
    }
}

pub(crate) fn build_output_stream(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    format: SampleFormat,
    drain: Drain,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error> {
    fn typed<T>(
        device: &cpal::Device,
        config: cpal::StreamConfig,
        mut drain: Drain,
        on_error: impl FnMut(cpal::Error) + Send + 'static,
    ) -> Result<cpal::Stream, cpal::Error>
    where
        T: SizedSample + FromSample<f32> + Send + 'static,
    {
        device.build_output_stream::<T, _, _>(
            config,
            move |data: &mut [T], _| drain.pull(data),
            on_error,
            Some(Duration::from_secs(2)),
        )
    }
    match format {
        SampleFormat::F32 => typed::<f32>(device, config, drain, on_error),
        SampleFormat::I16 => typed::<i16>(device, config, drain, on_error),
        SampleFormat::I32 => typed::<i32>(device, config, drain, on_error),
        SampleFormat::F64 => typed::<f64>(device, config, drain, on_error),
        SampleFormat::I8 => typed::<i8>(device, config, drain, on_error),
        SampleFormat::U8 => typed::<u8>(device, config, drain, on_error),
        SampleFormat::U16 => typed::<u16>(device, config, drain, on_error),
        SampleFormat::U32 => typed::<u32>(device, config, drain, on_error),
        other => Err(cpal::Error::with_message(
            cpal::ErrorKind::UnsupportedConfig,
            format!(
                "sample format {other} is not converted; set audio.output_device to a plughw: or default device"
            ),
        )),
    }
}
