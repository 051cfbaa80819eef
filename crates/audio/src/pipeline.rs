//! The signal chains between the device rings and the network, without threads or devices:
//! the capture and playback threads drive them, and so do the benchmarks (`benches/audio_*`).

use std::sync::Arc;

use super::codec::{CodecError, MAX_PACKET_SAMPLES, OpusDecoder, OpusEncoder};
use super::echo::{BLOCK_SAMPLES, EchoCanceller, EchoError};
use super::gate::HalfDuplexGate;
use super::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout, PushOutcome};
use super::reference::ReferenceReader;
use super::resample::{ResampleError, StreamResampler};
use super::{FRAME_SAMPLES, OpusFrame, SAMPLE_RATE};

/// Why a chain could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error(transparent)]
    Echo(#[from] EchoError),
}

/// How the capture chain keeps JARVIS's own voice out of the microphone
/// (`audio.echo_control`).
pub enum EchoStage {
    /// Nothing (a headset).
    Off,
    /// Mute while JARVIS is audible.
    HalfDuplex(HalfDuplexGate),
    /// Cancel the echo of the far-end reference.
    Aec(Box<AecStage>),
}

impl EchoStage {
    /// Echo cancellation; the reference comes later with [`CaptureChain::set_reference`]
    /// (zeros until then).
    pub fn aec() -> Result<EchoStage, EchoError> {
        Ok(EchoStage::Aec(Box::new(AecStage {
            canceller: EchoCanceller::new()?,
            reference: None,
            render: vec![0.0; BLOCK_SAMPLES],
            errors: 0,
        })))
    }
}

/// The canceller and where its far-end reference comes from.
pub struct AecStage {
    canceller: EchoCanceller,
    reference: Option<ReferenceReader>,
    render: Vec<f32>,
    errors: u64,
}

impl AecStage {
    /// Cancels echo in one 20 ms frame, 10 ms at a time. A block the canceller refuses is
    /// muted (echo must not reach the model) and counted.
    fn apply(&mut self, frame: &mut [f32]) {
        for block in frame.chunks_exact_mut(BLOCK_SAMPLES) {
            match self.reference.as_mut() {
                Some(r) => r.next_block(&mut self.render),
                None => self.render.fill(0.0),
            }
            if self.canceller.process(&self.render, block).is_err() {
                self.errors += 1;
                block.fill(0.0);
            }
        }
    }
}

/// Mono samples at the device rate in, 20 ms Opus frames out: resample to 48 kHz, cut into
/// frames, echo control (AEC or half-duplex gate), encode.
pub struct CaptureChain {
    resampler: StreamResampler,
    frame: Vec<f32>,
    echo: EchoStage,
    encoder: OpusEncoder,
    muted_frames: u64,
}

impl CaptureChain {
    pub fn new(device_rate: u32, echo: EchoStage) -> Result<Self, ChainError> {
        Ok(CaptureChain {
            resampler: StreamResampler::new(device_rate, SAMPLE_RATE)?,
            frame: Vec::with_capacity(FRAME_SAMPLES),
            echo,
            encoder: OpusEncoder::new()?,
            muted_frames: 0,
        })
    }

    /// The far-end reference of a newly opened output stream (ignored without AEC).
    pub fn set_reference(&mut self, reader: ReferenceReader) {
        if let EchoStage::Aec(aec) = &mut self.echo {
            aec.reference = Some(reader);
        }
    }

    /// Capture goes idle: drop the partial frame and the reference waiting, so the next live
    /// stretch starts aligned. The canceller keeps what it learnt of the room.
    pub fn pause(&mut self) {
        self.frame.clear();
        self.resampler.reset();
        if let EchoStage::Aec(aec) = &mut self.echo
            && let Some(r) = aec.reference.as_mut()
        {
            r.discard();
        }
    }

    /// Blocks the canceller refused so far (muted instead).
    pub fn echo_errors(&self) -> u64 {
        match &self.echo {
            EchoStage::Aec(aec) => aec.errors,
            _ => 0,
        }
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
            echo,
            encoder,
            muted_frames,
        } = self;
        resampler.process(mono, |mut out| {
            while !out.is_empty() {
                let take = (FRAME_SAMPLES - frame.len()).min(out.len());
                frame.extend_from_slice(&out[..take]);
                out = &out[take..];
                if frame.len() == FRAME_SAMPLES {
                    match echo {
                        EchoStage::Off => {}
                        EchoStage::HalfDuplex(g) => {
                            if g.apply(frame, speaking, now_ms) {
                                *muted_frames += 1;
                            }
                        }
                        EchoStage::Aec(aec) => aec.apply(frame),
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

    /// Algorithmic delay this chain adds beyond the 20 ms framing, in 48 kHz samples
    /// (resampler, plus the canceller's 10 ms block with AEC).
    pub fn algorithmic_delay_samples(&self) -> usize {
        let aec = match self.echo {
            EchoStage::Aec(_) => BLOCK_SAMPLES,
            _ => 0,
        };
        self.resampler.delay_samples() + aec
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

    fn encode(rate: u32, secs: f32, echo: EchoStage, speaking: bool) -> Vec<OpusFrame> {
        let mut c = CaptureChain::new(rate, echo).unwrap();
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
        let frames = encode(44_100, 1.0, EchoStage::Off, false);
        assert!((49..=50).contains(&frames.len()), "{}", frames.len());
        let out = play(&frames, 48_000);
        assert!(
            rms(&out[9_600..38_400]) > 0.2,
            "{}",
            rms(&out[9_600..38_400])
        );
    }

    #[test]
    fn aec_in_the_chain_removes_the_echo_of_the_reference_and_keeps_the_member() {
        use crate::reference::reference_ring;
        use crate::room::{Room, Signals};
        let room = Room::kiosk(80);
        let s = Signals::double_talk(8.0, 5.0);
        let mic = room.microphone(&s);
        let (mut tap, reader) = reference_ring(48_000).unwrap();
        let mut c = CaptureChain::new(48_000, EchoStage::aec().unwrap()).unwrap();
        c.set_reference(reader);
        let mut frames = Vec::new();
        // The output callback plays 10 ms, the input callback delivers 10 ms, in turn.
        for (far, mic) in s.far.chunks(480).zip(mic.chunks(480)) {
            tap.played(far);
            c.push(mic, false, 0, &mut |f| frames.push(f.unwrap()));
        }
        assert_eq!(c.echo_errors(), 0);
        let out = play(&frames, 48_000);
        // Far end only, after convergence: compare with what the echo alone would have sent.
        let span = 2 * 48_000..5 * 48_000;
        let echo = room.echo(&s.far);
        let reduction = 10.0 * (rms(&echo[span.clone()]) / rms(&out[span])).powi(2).log10();
        assert!(reduction >= 20.0, "echo reduced by {reduction:.1} dB");
        let member = 5 * 48_000 + 4_800..7 * 48_000;
        assert!(rms(&out[member]) > 0.02, "the member's voice went through");
    }

    #[test]
    fn gate_mutes_while_speaking() {
        let frames = encode(
            16_000,
            0.5,
            EchoStage::HalfDuplex(HalfDuplexGate::new(0)),
            true,
        );
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
        let frames = encode(48_000, 0.5, EchoStage::Off, false);
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
