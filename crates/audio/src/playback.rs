//! Speaker playback straight through cpal: RTP packets from WebRTC go to a playback thread
//! (jitter buffer, Opus decode with FEC/PLC, prompt mixing, resampling to the device rate),
//! which keeps a lock-free ring ahead of the device callback. The ring is kept at what the
//! device is measured to take between two wake-ups of the thread (one period on a steady card,
//! 100 ms on one that drains in bursts, see [`super::burst`]) plus 10 ms, so speech reaches the
//! speaker quickly, a bursty device never runs dry, and a flush drops little.
//!
//! The thread marks JARVIS as speaking ([`SpeakingSignal`]) only for slots whose sound is
//! audible (see [`super::pipeline::AUDIBLE_MEAN_SQUARE`]), until they have left the device.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::{self, Thread};
use std::time::Duration;

use cpal::traits::DeviceTrait;
use cpal::{FromSample, Sample, SampleFormat, SizedSample};
use rtrb::{Consumer, Producer, RingBuffer};

use super::FRAME_MS;
use super::burst::DeviceBurst;
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
/// Audio kept ready ahead of the device beyond its measured burst, in milliseconds.
const AHEAD_MS: u32 = 10;
/// How long the playback thread sleeps at most while a stream or prompt plays.
const ACTIVE_POLL: Duration = Duration::from_millis(5);
/// ... and while nothing plays (idle costs nothing: see README's benchmark table).
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a measured device burst is remembered (between one and two of these): a device's
/// pattern does not change, and a burst forgotten too soon is a gap when it recurs.
const BURST_WINDOW_MS: u64 = 10_000;
/// Gauge: audio the ring is kept filled to ahead of the device, in milliseconds.
const GAUGE_LEAD_MS: &str = "audio_playout_lead_ms";
/// Gauge: the most the device took between two wake-ups of the playback thread, in ms.
const GAUGE_BURST_MS: &str = "audio_device_burst_ms";
/// Gauge: the output device's period in frames as opened (`audio.period_frames`, or 10 ms
/// where the device accepts it, or the device's own when it said nothing; 0 then).
const GAUGE_PERIOD_FRAMES: &str = "audio_output_period_frames";
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
    /// Frames the device has asked for so far, all callbacks together.
    drained: AtomicU64,
    /// Set by a flush: the callback drops everything in the ring.
    discard: AtomicBool,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Shared {
            drained: AtomicU64::new(0),
            discard: AtomicBool::new(false),
        })
    }
}

struct Running {
    stream: Stream,
    producer: Producer<f32>,
    capacity: usize,
    shared: Arc<Shared>,
    /// The configured period (or 20 ms): the least the device takes at once.
    period: u32,
    /// The period the stream was opened with, when the daemon fixed it.
    fixed_period: Option<u32>,
}

/// Fills the ring from the chain up to `low_water` frames; marks JARVIS as speaking until
/// each audible slot has left the device (`device_ms` after the ring empties).
fn fill_ring(
    chain: &mut PlaybackChain,
    ring: &mut Producer<f32>,
    capacity: usize,
    low_water: usize,
    rate: u32,
    device_ms: u64,
    speaking: &SpeakingSignal,
) {
    while chain.is_active() {
        let fill = capacity - ring.slots();
        if fill >= low_water {
            break;
        }
        let now = clock::mono_ms();
        let slot = chain.next_slot(now, &mut |samples| {
            let n = samples.len().min(ring.slots());
            if let Ok(chunk) = ring.write_chunk_uninit(n) {
                chunk.fill_from_iter(samples.iter().copied());
            }
        });
        if slot == Slot::Audible {
            let queued = (capacity - ring.slots()) as u64;
            let ms = (queued * 1000).div_ceil(u64::from(rate.max(1)));
            speaking.extend_to(now + ms + device_ms);
        }
    }
    // Speech still buffered counts as speaking even if the device is between callbacks.
    speaking.set_pending(chain.has_audio());
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
        let rate = r.stream.rate.max(1);
        let mut burst = DeviceBurst::new(u64::from(r.period), BURST_WINDOW_MS);
        self.status
            .health()
            .set_gauge(GAUGE_PERIOD_FRAMES, u64::from(r.fixed_period.unwrap_or(0)));
        let mut reported_burst = 0;
        loop {
            if self.stop.load(Ordering::Acquire) {
                return End::Stop;
            }
            if let Some(e) = r.stream.next_error() {
                return End::Failed(format!("{}: {e}", r.stream.name));
            }
            let xruns = r.stream.take_xruns();
            if xruns > 0 {
                self.status.health().add(counters::OUTPUT_XRUNS, xruns);
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
            burst.observe(r.shared.drained.load(Ordering::Acquire), clock::mono_ms());
            let burst_frames = burst.frames();
            if burst_frames != reported_burst {
                reported_burst = burst_frames;
                let packets = (burst_frames * 1000).div_ceil(u64::from(rate) * FRAME_MS);
                chain.set_device_burst(u32::try_from(packets).unwrap_or(u32::MAX));
                self.report_lead(burst_frames, rate);
            }
            let low_water =
                (burst_frames as usize + (rate * AHEAD_MS / 1000) as usize).min(r.capacity);
            let device_ms = burst_frames * 1000 / u64::from(rate);
            fill_ring(
                &mut chain,
                &mut r.producer,
                r.capacity,
                low_water,
                rate,
                device_ms,
                &self.speaking,
            );
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
            // Every device callback, packet, prompt and flush wakes the thread; the timeout
            // only keeps a stream's refill going between them. With nothing to play, the
            // callbacks alone (for the burst measure) are enough.
            let timeout = if chain.is_active() {
                ACTIVE_POLL
            } else {
                IDLE_POLL
            };
            thread::park_timeout(timeout);
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

    fn report_lead(&self, burst_frames: u64, rate: u32) {
        let burst_ms = burst_frames * 1000 / u64::from(rate);
        let h = self.status.health();
        h.set_gauge(GAUGE_BURST_MS, burst_ms);
        h.set_gauge(GAUGE_LEAD_MS, burst_ms + u64::from(AHEAD_MS));
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
    let fixed_period = match chosen.config.buffer_size {
        cpal::BufferSize::Fixed(n) => Some(n),
        cpal::BufferSize::Default => None,
    };
    let period = fixed_period.unwrap_or(rate / 50);
    let shared = Shared::new();
    let drain = Drain {
        channels: usize::from(chosen.config.channels.max(1)),
        consumer,
        shared: shared.clone(),
        worker: thread::current(),
        reference: tap,
    };
    let stream = Stream::start(
        Direction::Output,
        chosen.name,
        rate,
        reference.output_xruns(),
        |on_error| {
            build_output_stream(
                &chosen.device,
                chosen.config,
                chosen.format,
                drain,
                on_error,
            )
        },
    )?;
    Ok(Running {
        stream,
        producer,
        capacity,
        shared,
        period,
        fixed_period,
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
        self.shared
            .drained
            .fetch_add(frames as u64, Ordering::AcqRel);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FRAME_SAMPLES, OpusEncoder};

    /// 20 ms Opus packets of `pcm` (48 kHz).
    fn opus(pcm: &[f32]) -> Vec<Vec<u8>> {
        let mut enc = OpusEncoder::new().unwrap();
        pcm.chunks_exact(FRAME_SAMPLES)
            .map(|c| enc.encode(c).unwrap())
            .collect()
    }

    /// Drives [`fill_ring`] like the thread does in front of a 20 ms device: one packet in,
    /// one period out, per step. Returns whether the signal said speaking after each step.
    fn run(packets: &[Vec<u8>], speaking: &SpeakingSignal) -> Vec<bool> {
        let mut chain = PlaybackChain::new(48_000).unwrap();
        let (mut ring, mut device) = RingBuffer::new(24_000);
        let mut said = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            chain.push_rtp(i as u16, i as u32 * 960, p, clock::mono_ms());
            fill_ring(&mut chain, &mut ring, 24_000, 1_440, 48_000, 20, speaking);
            let take = device.slots().min(960);
            device.read_chunk(take).unwrap().commit_all();
            said.push(speaking.is_speaking());
        }
        said
    }

    #[test]
    fn a_flush_drops_the_whole_lead_however_deep() {
        let shared = Shared::new();
        let (mut ring, consumer) = RingBuffer::new(24_000);
        // 110 ms kept ahead of a device that drains 100 ms at once.
        let lead = 5_280;
        ring.write_chunk_uninit(lead)
            .unwrap()
            .fill_from_iter(std::iter::repeat(0.5));
        let mut drain = Drain {
            channels: 2,
            consumer,
            shared: shared.clone(),
            worker: thread::current(),
            reference: None,
        };
        shared.discard.store(true, Ordering::Release);
        let mut out = vec![1.0f32; 2 * 960];
        drain.pull(&mut out);
        assert!(out.iter().all(|s| *s == 0.0), "the next period is silent");
        assert_eq!(ring.slots(), 24_000, "nothing of the lead is left");
        assert_eq!(shared.drained.load(Ordering::Acquire), 960);
    }

    #[test]
    fn opus_silence_never_makes_jarvis_speak() {
        let speaking = SpeakingSignal::never();
        let said = run(&opus(&vec![0.0; 48_000 * 2]), &speaking);
        assert_eq!(said.len(), 100);
        assert!(said.iter().all(|s| !s), "{said:?}");
    }

    #[test]
    fn speech_makes_jarvis_speak_and_the_tail_ends_after_it() {
        let tone: Vec<f32> = (0..48_000)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin())
            .collect();
        let pcm = [vec![0.0; 48_000], tone, vec![0.0; 48_000]].concat();
        let speaking = SpeakingSignal::never();
        let said = run(&opus(&pcm), &speaking);
        assert!(said[..45].iter().all(|s| !s), "silent lead-in");
        assert!(said[55..95].iter().all(|s| *s), "speaking through the tone");
        // The last audible slot is in the ring at most 50 ms (ring + device) before it has
        // played: speaking ends within that once the stream is silent.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while speaking.is_speaking() {
            assert!(std::time::Instant::now() < deadline, "speaking never ended");
            thread::sleep(Duration::from_millis(5));
        }
    }
}
