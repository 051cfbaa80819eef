//! The far-end reference for echo cancellation: exactly what the speaker played, silence
//! included, so it is a continuous stream at the output device's rate. The output callback
//! copies it into a lock-free ring ([`ReferenceTap`]); the capture thread reads it back at
//! 48 kHz, one 10 ms block per microphone block ([`ReferenceReader`]), which keeps render and
//! capture fed one for one. The canceller finds the delay between the two itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rtrb::{Consumer, Producer, RingBuffer};

use super::SAMPLE_RATE;
use super::echo::BLOCK_SAMPLES;
use super::resample::{ResampleError, StreamResampler};

/// Ring capacity in seconds of output audio: what accumulates while capture does not read.
/// Twice the microphone's ring, so a stalled capture thread overruns the microphone first and
/// the reference is skipped to match ([`ReferenceReader::skip`]) instead of losing samples.
const RING_SECONDS: f64 = 1.0;
/// Reference kept ahead of the microphone after (re)starting, so the reader never runs dry
/// on callback jitter: 30 ms at 48 kHz.
const PRIME_SAMPLES: usize = 3 * BLOCK_SAMPLES;
/// More reference than this waiting (700 ms) cannot be matched by microphone samples (its ring
/// holds 500 ms): the clocks drifted or capture stopped reading. Skip to the prime.
const MAX_BACKLOG: usize = 70 * BLOCK_SAMPLES;

/// Hands each output stream's reference from playback to capture. Cheap to clone; playback
/// [`attach`](Self::attach)es on every device (re)open, capture [`take`](Self::take)s the new
/// reader. Used outside the audio callbacks only.
#[derive(Clone, Default)]
pub struct EchoReference {
    next: Arc<Mutex<Option<ReferenceReader>>>,
    output_xruns: Arc<AtomicU64>,
}

impl EchoReference {
    /// A new output stream at `device_rate` Hz: returns the callback's end of its ring.
    pub fn attach(&self, device_rate: u32) -> Result<ReferenceTap, ResampleError> {
        let (tap, mut reader) = reference_ring(device_rate)?;
        reader.watch_xruns(self.output_xruns.clone());
        if let Ok(mut next) = self.next.lock() {
            *next = Some(reader);
        }
        Ok(tap)
    }

    /// The output stream's xrun count: an underrun puts silence on the speaker that the
    /// reference never saw, so the reader counts it as a slip.
    pub fn output_xruns(&self) -> Arc<AtomicU64> {
        self.output_xruns.clone()
    }

    /// The reader of the newest output stream, once.
    pub fn take(&self) -> Option<ReferenceReader> {
        self.next.lock().ok().and_then(|mut n| n.take())
    }
}

/// A tap and its reader, for a device at `device_rate` Hz.
pub fn reference_ring(device_rate: u32) -> Result<(ReferenceTap, ReferenceReader), ResampleError> {
    let resampler = StreamResampler::new(device_rate, SAMPLE_RATE)?;
    let capacity = ((f64::from(device_rate) * RING_SECONDS) as usize).max(4096);
    let (producer, consumer) = RingBuffer::new(capacity);
    Ok((
        ReferenceTap { producer },
        ReferenceReader {
            consumer,
            device_rate,
            resampler,
            scratch: vec![0.0; capacity],
            pending: Vec::with_capacity(capacity * 2),
            primed: false,
            owed: 0,
            slips: 0,
            xruns: None,
        },
    ))
}

/// The output callback's end: no allocation, no lock, no logging. What does not fit (capture
/// is not reading) is dropped; the reader re-aligns.
pub struct ReferenceTap {
    producer: Producer<f32>,
}

impl ReferenceTap {
    /// The mono samples the device was just given.
    pub fn played(&mut self, samples: &[f32]) {
        let n = samples.len().min(self.producer.slots());
        if let Ok(chunk) = self.producer.write_chunk_uninit(n) {
            chunk.fill_from_iter(samples.iter().copied());
        }
    }

    /// `n` samples of silence the device was just given (its ring was empty).
    pub fn silence(&mut self, n: usize) {
        let n = n.min(self.producer.slots());
        if let Ok(chunk) = self.producer.write_chunk_uninit(n) {
            chunk.fill_from_iter(std::iter::repeat(0.0));
        }
    }
}

/// The capture thread's end: 10 ms blocks at 48 kHz.
pub struct ReferenceReader {
    consumer: Consumer<f32>,
    device_rate: u32,
    resampler: StreamResampler,
    scratch: Vec<f32>,
    /// Resampled reference not yet handed out.
    pending: Vec<f32>,
    /// False until [`PRIME_SAMPLES`] are waiting after a (re)start.
    primed: bool,
    /// Reference samples to drop as they arrive (see [`Self::skip`]).
    owed: usize,
    slips: u64,
    /// The output stream's xrun count, and the value last seen.
    xruns: Option<(Arc<AtomicU64>, u64)>,
}

impl ReferenceReader {
    /// Fills `block` ([`BLOCK_SAMPLES`]) with the next reference block, or zeros while the
    /// reference is (re)priming or the output stream is gone.
    pub fn next_block(&mut self, block: &mut [f32]) {
        if let Some((count, seen)) = &mut self.xruns {
            let now = count.load(Ordering::Acquire);
            if now != *seen {
                *seen = now;
                self.slips += 1;
            }
        }
        self.pull();
        if !self.primed && self.pending.len() >= PRIME_SAMPLES {
            self.primed = true;
        }
        if self.pending.len() > MAX_BACKLOG {
            self.slips += 1;
            self.pending.drain(..self.pending.len() - PRIME_SAMPLES);
        }
        if !self.primed || self.pending.len() < block.len() {
            if self.primed {
                // Ran dry: count it and prime again so the delay stays constant afterwards.
                self.slips += 1;
                self.primed = false;
            }
            block.fill(0.0);
            return;
        }
        block.copy_from_slice(&self.pending[..block.len()]);
        self.pending.drain(..block.len());
    }

    /// Counts each rise of `count` (the output stream's xruns) as a slip.
    pub fn watch_xruns(&mut self, count: Arc<AtomicU64>) {
        let seen = count.load(Ordering::Acquire);
        self.xruns = Some((count, seen));
    }

    /// Drops the next `n` samples (48 kHz) of reference: the microphone lost that much (its
    /// ring overran), and the two must stay aligned.
    pub fn skip(&mut self, n: usize) {
        self.owed += n;
        self.settle_owed();
    }

    /// Drops everything waiting (capture is idle): the next block starts priming afresh.
    pub fn discard(&mut self) {
        let all = self.consumer.slots();
        if let Ok(chunk) = self.consumer.read_chunk(all) {
            chunk.commit_all();
        }
        self.pending.clear();
        self.resampler.reset();
        self.primed = false;
        self.owed = 0;
    }

    /// Times the reference ran dry or piled up and was re-aligned.
    pub fn slips(&self) -> u64 {
        self.slips
    }

    /// Rate of the output device this reads from.
    pub fn device_rate(&self) -> u32 {
        self.device_rate
    }

    fn pull(&mut self) {
        let n = self.consumer.slots().min(self.scratch.len());
        if n == 0 {
            return;
        }
        if let Ok(chunk) = self.consumer.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            self.scratch[..a.len()].copy_from_slice(a);
            self.scratch[a.len()..a.len() + b.len()].copy_from_slice(b);
            chunk.commit_all();
        }
        let pending = &mut self.pending;
        self.resampler
            .process(&self.scratch[..n], |out| pending.extend_from_slice(out));
        self.settle_owed();
    }

    fn settle_owed(&mut self) {
        let n = self.owed.min(self.pending.len());
        self.pending.drain(..n);
        self.owed -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(from: usize, n: usize) -> Vec<f32> {
        (from..from + n).map(|i| i as f32).collect()
    }

    #[test]
    fn played_audio_and_silence_come_back_as_one_continuous_stream() {
        let (mut tap, mut reader) = reference_ring(48_000).unwrap();
        // The callback plays 1 000 samples, then its ring runs dry for 440, then plays again.
        tap.played(&ramp(1, 1_000));
        tap.silence(440);
        tap.played(&ramp(1_001, 1_000));
        let mut got = Vec::new();
        let mut block = [0.0; BLOCK_SAMPLES];
        for _ in 0..5 {
            reader.next_block(&mut block);
            got.extend_from_slice(&block);
        }
        let mut want = ramp(1, 1_000);
        want.extend(std::iter::repeat_n(0.0, 440));
        want.extend(ramp(1_001, 1_000));
        // Priming waited for 30 ms before handing anything out, then nothing was lost.
        assert_eq!(&got[..], &want[..got.len()]);
        assert_eq!(reader.slips(), 0);
    }

    #[test]
    fn zeros_until_primed_then_one_block_per_call() {
        let (mut tap, mut reader) = reference_ring(48_000).unwrap();
        let mut block = [1.0; BLOCK_SAMPLES];
        reader.next_block(&mut block);
        assert_eq!(block, [0.0; BLOCK_SAMPLES], "nothing played yet");
        tap.played(&[0.5; PRIME_SAMPLES]);
        reader.next_block(&mut block);
        assert_eq!(block, [0.5; BLOCK_SAMPLES]);
    }

    #[test]
    fn a_backlog_is_cut_back_to_the_prime() {
        let (mut tap, mut reader) = reference_ring(48_000).unwrap();
        tap.played(&ramp(0, MAX_BACKLOG + 4_800));
        let mut block = [0.0; BLOCK_SAMPLES];
        reader.next_block(&mut block);
        assert_eq!(reader.slips(), 1);
        let first_kept = (MAX_BACKLOG + 4_800 - PRIME_SAMPLES) as f32;
        assert_eq!(block[0], first_kept);
    }

    #[test]
    fn a_skip_drops_what_is_waiting_then_what_arrives() {
        let (mut tap, mut reader) = reference_ring(48_000).unwrap();
        tap.played(&ramp(0, PRIME_SAMPLES + 100));
        let mut block = [0.0; BLOCK_SAMPLES];
        reader.next_block(&mut block);
        assert_eq!(block[0], 0.0);
        // The microphone lost 1 000 samples: 1 000 - 100 - (prime - block) are owed from later.
        reader.skip(1_000);
        tap.played(&ramp(PRIME_SAMPLES + 100, 2_000));
        reader.next_block(&mut block);
        assert_eq!(block[0], (BLOCK_SAMPLES + 1_000) as f32);
        assert_eq!(reader.slips(), 0, "a skip keeps the alignment: no slip");
    }

    #[test]
    fn a_capture_stall_shorter_than_the_microphone_ring_is_not_a_slip() {
        let (mut tap, mut reader) = reference_ring(48_000).unwrap();
        tap.played(&ramp(0, PRIME_SAMPLES));
        let mut block = [0.0; BLOCK_SAMPLES];
        reader.next_block(&mut block);
        // Capture did not run for 480 ms while the speaker kept playing; it then catches up
        // on its own backlog, one block for one block.
        tap.played(&ramp(PRIME_SAMPLES, 48 * BLOCK_SAMPLES));
        for i in 1..49 {
            reader.next_block(&mut block);
            assert_eq!(block[0], (i * BLOCK_SAMPLES) as f32);
        }
        assert_eq!(reader.slips(), 0);
    }

    #[test]
    fn an_output_xrun_is_a_slip() {
        let link = EchoReference::default();
        let mut tap = link.attach(48_000).unwrap();
        let mut reader = link.take().unwrap();
        tap.played(&[0.1; 4 * BLOCK_SAMPLES]);
        let mut block = [0.0; BLOCK_SAMPLES];
        reader.next_block(&mut block);
        assert_eq!(reader.slips(), 0);
        link.output_xruns().fetch_add(1, Ordering::AcqRel);
        reader.next_block(&mut block);
        assert_eq!(reader.slips(), 1);
        reader.next_block(&mut block);
        assert_eq!(reader.slips(), 1, "counted once");
    }

    #[test]
    fn a_44k1_device_is_resampled_to_48k_blocks() {
        let (mut tap, mut reader) = reference_ring(44_100).unwrap();
        let tone: Vec<f32> = (0..13_230)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 44_100.0).sin())
            .collect();
        tap.played(&tone);
        let mut n = 0;
        let mut block = [0.0; BLOCK_SAMPLES];
        let mut energy = 0.0;
        for _ in 0..20 {
            reader.next_block(&mut block);
            energy += block.iter().map(|x| x * x).sum::<f32>();
            n += BLOCK_SAMPLES;
        }
        assert!(energy / n as f32 > 0.1, "{}", energy / n as f32);
    }

    #[test]
    fn the_newest_attached_stream_is_taken_once() {
        let link = EchoReference::default();
        assert!(link.take().is_none());
        let _tap = link.attach(44_100).unwrap();
        let _tap = link.attach(48_000).unwrap();
        assert_eq!(link.take().map(|r| r.device_rate()), Some(48_000));
        assert!(link.take().is_none());
    }
}
