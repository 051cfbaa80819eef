//! The signal chains between the device rings and the network, without threads or devices:
//! the capture and playback threads drive them, and so do the benchmarks (`benches/audio_*`).

use std::sync::Arc;

use super::codec::{CodecError, MAX_PACKET_SAMPLES, OpusDecoder, OpusEncoder};
use super::gate::HalfDuplexGate;
use super::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout, PushOutcome};
use super::resample::{ResampleError, StreamResampler};
use super::{FRAME_SAMPLES, OpusFrame, SAMPLE_RATE};

/// Why a chain could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
}

/// Mono samples at the device rate in, 20 ms Opus frames out: resample to 48 kHz, cut into
/// frames, mute with the half-duplex gate, encode.
pub struct CaptureChain {
    resampler: StreamResampler,
    frame: Vec<f32>,
    gate: Option<HalfDuplexGate>,
    encoder: OpusEncoder,
    muted_frames: u64,
}

impl CaptureChain {
    /// `gate` is `None` when echo control is off.
    pub fn new(device_rate: u32, gate: Option<HalfDuplexGate>) -> Result<Self, ChainError> {
        Ok(CaptureChain {
            resampler: StreamResampler::new(device_rate, SAMPLE_RATE)?,
            frame: Vec::with_capacity(FRAME_SAMPLES),
            gate,
            encoder: OpusEncoder::new()?,
            muted_frames: 0,
        })
    }

    /// Feeds captured mono samples; `emit` gets each encoded frame (or the encode error).
    /// `speaking` and `now_ms` drive the half-duplex gate.
    pub fn push(
        &mut self,
        mono: &[f32],
        speaking: bool,
        now_ms: u64,
        emit: &mut dyn FnMut(Result<OpusFrame, CodecError>),
    ) {
        let CaptureChain {
            resampler,
            frame,
            gate,
            encoder,
            muted_frames,
        } = self;
        resampler.process(mono, |mut out| {
            while !out.is_empty() {
                let take = (FRAME_SAMPLES - frame.len()).min(out.len());
                frame.extend_from_slice(&out[..take]);
                out = &out[take..];
                if frame.len() == FRAME_SAMPLES {
                    if let Some(g) = gate.as_mut()
                        && g.apply(frame, speaking, now_ms)
                    {
                        *muted_frames += 1;
                    }
                    emit(encoder.encode(frame).map(|data| OpusFrame {
                        data,
                        samples: FRAME_SAMPLES as u32,
                    }));
                    frame.clear();
                }
            }
        });
    }

    /// Algorithmic delay this chain adds beyond the 20 ms framing, in 48 kHz samples.
    pub fn resampler_delay_samples(&self) -> usize {
        self.resampler.delay_samples()
    }

    /// Frames the gate muted so far.
    pub fn muted_frames(&self) -> u64 {
        self.muted_frames
    }
}

/// What one play-out slot held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Something audible (speech, concealment or a prompt) was produced.
    Audible,
    /// Silence while the jitter buffer fills.
    Silent,
}

/// RTP payloads in, mono samples at the device rate out: jitter buffer, Opus decode with
/// FEC/PLC, prompt mixing, resampling.
pub struct PlaybackChain {
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    pcm: Vec<f32>,
    prompt: Option<(Arc<[f32]>, usize)>,
    resampler: StreamResampler,
    decode_errors: u64,
}

impl PlaybackChain {
    pub fn new(device_rate: u32) -> Result<Self, ChainError> {
        Ok(PlaybackChain {
            jitter: JitterBuffer::new(JitterConfig::default()),
            decoder: OpusDecoder::new()?,
            pcm: vec![0.0; MAX_PACKET_SAMPLES],
            prompt: None,
            resampler: StreamResampler::new(SAMPLE_RATE, device_rate)?,
            decode_errors: 0,
        })
    }

    /// Queues a received RTP packet (arrival time `now_ms`).
    pub fn push_rtp(
        &mut self,
        seq: u16,
        timestamp: u32,
        payload: &[u8],
        now_ms: u64,
    ) -> PushOutcome {
        self.jitter.push(seq, timestamp, payload, now_ms)
    }

    /// Drops buffered Realtime audio (barge-in). A prompt that is playing keeps playing.
    pub fn flush(&mut self) {
        self.jitter.flush();
        // Old speech must not leak into the next response's concealment.
        if self.decoder.reset().is_err() {
            self.decode_errors += 1;
        }
        self.resampler.reset();
    }

    /// Starts a prompt (48 kHz mono), replacing one that is playing; it is mixed over speech.
    pub fn start_prompt(&mut self, clip: Arc<[f32]>) {
        self.prompt = Some((clip, 0));
    }

    /// True while there is anything to play (or the jitter buffer is filling).
    pub fn is_active(&self) -> bool {
        self.jitter.is_active() || self.prompt.is_some()
    }

    /// True while speech or a prompt is still to be produced (a jitter buffer that is only
    /// filling with nothing played yet counts too: it is about to speak).
    pub fn has_audio(&self) -> bool {
        self.prompt.is_some() || !self.jitter.is_empty() || self.jitter.is_active()
    }

    /// Produces the next play-out slot (usually 20 ms), handing device-rate samples to `emit`.
    pub fn next_slot(&mut self, emit: &mut dyn FnMut(&[f32])) -> Slot {
        let (n, mut audible) = match self.jitter.pop() {
            Playout::Packet(p) => match self.decoder.decode(&p, &mut self.pcm) {
                Ok(n) => (n, true),
                Err(_) => {
                    self.decode_errors += 1;
                    (self.conceal(), true)
                }
            },
            Playout::Fec(next) => {
                match self.decoder.recover(&next, &mut self.pcm[..FRAME_SAMPLES]) {
                    Ok(n) => (n, true),
                    Err(_) => {
                        self.decode_errors += 1;
                        (self.conceal(), true)
                    }
                }
            }
            Playout::Conceal => (self.conceal(), true),
            Playout::Silence => {
                self.pcm[..FRAME_SAMPLES].fill(0.0);
                (FRAME_SAMPLES, false)
            }
        };
        if let Some((clip, pos)) = self.prompt.as_mut() {
            let take = (clip.len() - *pos).min(n);
            for (o, s) in self.pcm[..take].iter_mut().zip(&clip[*pos..*pos + take]) {
                *o = (*o + s).clamp(-1.0, 1.0);
            }
            *pos += take;
            audible = true;
            if *pos >= clip.len() {
                self.prompt = None;
            }
        }
        self.resampler.process(&self.pcm[..n], |out| emit(out));
        if audible { Slot::Audible } else { Slot::Silent }
    }

    fn conceal(&mut self) -> usize {
        match self.decoder.conceal(&mut self.pcm[..FRAME_SAMPLES]) {
            Ok(n) => n,
            Err(_) => {
                self.decode_errors += 1;
                self.pcm[..FRAME_SAMPLES].fill(0.0);
                FRAME_SAMPLES
            }
        }
    }

    /// Jitter buffer counters.
    pub fn jitter_stats(&self) -> JitterStats {
        self.jitter.stats()
    }

    /// Packets that failed to decode so far.
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }

    /// Algorithmic delay of the output resampler, in device-rate samples.
    pub fn resampler_delay_samples(&self) -> usize {
        self.resampler.delay_samples()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.4 * (2.0 * std::f32::consts::PI * 500.0 * i as f32 / rate as f32).sin())
            .collect()
    }

    fn rms(s: &[f32]) -> f32 {
        (s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32).sqrt()
    }

    fn encode(
        rate: u32,
        secs: f32,
        gate: Option<HalfDuplexGate>,
        speaking: bool,
    ) -> Vec<OpusFrame> {
        let mut c = CaptureChain::new(rate, gate).unwrap();
        let mut frames = Vec::new();
        for block in tone(rate, (rate as f32 * secs) as usize).chunks(256) {
            c.push(block, speaking, 0, &mut |f| frames.push(f.unwrap()));
        }
        frames
    }

    fn play(frames: &[OpusFrame], device_rate: u32) -> Vec<f32> {
        let mut p = PlaybackChain::new(device_rate).unwrap();
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            p.push_rtp(i as u16, i as u32 * 960, &f.data, i as u64 * 20);
            p.next_slot(&mut |s| out.extend_from_slice(s));
        }
        while p.is_active() {
            p.next_slot(&mut |s| out.extend_from_slice(s));
        }
        out
    }

    #[test]
    fn one_second_at_44k1_becomes_fifty_frames_and_plays_back() {
        let frames = encode(44_100, 1.0, None, false);
        assert!((49..=50).contains(&frames.len()), "{}", frames.len());
        let out = play(&frames, 48_000);
        assert!(
            rms(&out[9_600..38_400]) > 0.2,
            "{}",
            rms(&out[9_600..38_400])
        );
    }

    #[test]
    fn gate_mutes_while_speaking() {
        let frames = encode(16_000, 0.5, Some(HalfDuplexGate::new(0)), true);
        let out = play(&frames, 48_000);
        assert!(rms(&out) < 0.01, "{}", rms(&out));
    }

    #[test]
    fn prompt_plays_alone_and_is_audible() {
        let mut p = PlaybackChain::new(44_100).unwrap();
        p.start_prompt(Arc::from(tone(48_000, 4_800)));
        let mut out = Vec::new();
        assert_eq!(
            p.next_slot(&mut |s| out.extend_from_slice(s)),
            Slot::Audible
        );
        while p.is_active() {
            p.next_slot(&mut |s| out.extend_from_slice(s));
        }
        assert!(!p.is_active());
        assert!(rms(&out) > 0.2);
    }

    #[test]
    fn garbage_packets_are_concealed_not_fatal() {
        let mut p = PlaybackChain::new(48_000).unwrap();
        for i in 0..4u16 {
            p.push_rtp(
                i,
                u32::from(i) * 960,
                &[0xFF, 0xFF, 0xFF],
                u64::from(i) * 20,
            );
        }
        let mut n = 0;
        while p.is_active() {
            p.next_slot(&mut |s| n += s.len());
        }
        assert!(p.decode_errors() >= 4);
        assert!(n >= 4 * 960);
    }

    #[test]
    fn flush_stops_speech() {
        let frames = encode(48_000, 0.5, None, false);
        let mut p = PlaybackChain::new(48_000).unwrap();
        for (i, f) in frames.iter().enumerate() {
            p.push_rtp(i as u16, i as u32 * 960, &f.data, 0);
        }
        assert!(p.is_active());
        p.flush();
        assert!(!p.is_active());
        let mut out = Vec::new();
        assert_eq!(p.next_slot(&mut |s| out.extend_from_slice(s)), Slot::Silent);
        assert!(rms(&out) == 0.0);
    }
}
