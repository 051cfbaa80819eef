//! The signal chains between the device rings and the network, without threads or devices:
//! the capture and playback threads drive them, and so do the benchmarks (`benches/audio_*`).

use std::sync::Arc;

use super::codec::{CodecError, MAX_PACKET_SAMPLES, OpusDecoder, OpusEncoder};
use super::echo::{BLOCK_SAMPLES, EchoCanceller, EchoError};
use super::gate::HalfDuplexGate;
use super::guard::EchoGuard;
use super::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout, PushOutcome};
use super::reference::ReferenceReader;
use super::resample::{ResampleError, StreamResampler};
use super::{FRAME_SAMPLES, OpusFrame, SAMPLE_RATE, SEND_FRAME_SAMPLES};

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
    /// (zeros until then). `tail_ms` is the echo tail the recovery gate waits out after
    /// JARVIS stops (`audio.half_duplex_tail_ms`).
    pub fn aec(tail_ms: u64) -> Result<EchoStage, EchoError> {
        let mut guard = EchoGuard::new(tail_ms);
        // A new canceller knows nothing of the room yet.
        guard.disrupted();
        Ok(EchoStage::Aec(Box::new(AecStage {
            canceller: EchoCanceller::new()?,
            reference: None,
            render: vec![0.0; BLOCK_SAMPLES],
            guard,
            slips_seen: 0,
            errors: 0,
        })))
    }
}

/// The canceller, where its far-end reference comes from, and the gate that covers for it
/// while it re-converges after the two lost alignment.
pub struct AecStage {
    canceller: EchoCanceller,
    reference: Option<ReferenceReader>,
    render: Vec<f32>,
    guard: EchoGuard,
    /// The reference's slip count already passed to the guard.
    slips_seen: u64,
    errors: u64,
}

impl AecStage {
    /// Cancels echo in one 20 ms frame, 10 ms at a time. A block the canceller refuses is
    /// muted (echo must not reach the model) and counted. Returns whether the recovery gate
    /// muted the frame.
    fn apply(&mut self, frame: &mut [f32], speaking: bool, now_ms: u64) -> bool {
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
        let slips = self.reference.as_ref().map_or(0, ReferenceReader::slips);
        if slips != self.slips_seen {
            self.slips_seen = slips;
            self.guard.disrupted();
        }
        let muted = self.guard.is_muted(speaking, now_ms);
        if muted {
            frame.fill(0.0);
        }
        muted
    }

    /// The microphone lost `n` samples at 48 kHz: drop as much reference, and cover for the
    /// canceller while it settles.
    fn skip(&mut self, n: usize) {
        if let Some(r) = self.reference.as_mut() {
            r.skip(n);
        }
        self.guard.disrupted();
    }
}

/// Mono samples at the device rate in, 10 ms Opus frames out: resample to 48 kHz, cut into
/// frames, echo control (AEC or half-duplex gate), encode.
pub struct CaptureChain {
    resampler: StreamResampler,
    frame: Vec<f32>,
    echo: EchoStage,
    encoder: OpusEncoder,
    muted_frames: u64,
    device_rate: u32,
}

impl CaptureChain {
    pub fn new(device_rate: u32, echo: EchoStage) -> Result<Self, ChainError> {
        Ok(CaptureChain {
            device_rate,
            resampler: StreamResampler::new(device_rate, SAMPLE_RATE)?,
            frame: Vec::with_capacity(SEND_FRAME_SAMPLES),
            echo,
            encoder: OpusEncoder::new()?,
            muted_frames: 0,
        })
    }

    /// The far-end reference of a newly opened output stream (ignored without AEC).
    pub fn set_reference(&mut self, reader: ReferenceReader) {
        if let EchoStage::Aec(aec) = &mut self.echo {
            aec.slips_seen = reader.slips();
            aec.reference = Some(reader);
            aec.guard.disrupted();
        }
    }

    /// Capture goes idle: drop the partial frame. The canceller keeps what it learnt of the
    /// room.
    pub fn pause(&mut self) {
        self.frame.clear();
        self.resampler.reset();
    }

    /// Capture goes live again: drop the reference played while idle, so the microphone and
    /// the reference start aligned. The echo path may have moved meanwhile (both devices
    /// restarted their buffering): the guard covers the first words.
    pub fn resume(&mut self) {
        if let EchoStage::Aec(aec) = &mut self.echo {
            if let Some(r) = aec.reference.as_mut() {
                r.discard();
            }
            aec.guard.disrupted();
        }
    }

    /// The device lost `n` microphone samples at its rate (its ring overran) after what was
    /// pushed so far: keeps the echo canceller's reference aligned with what follows.
    pub fn microphone_lost(&mut self, n: u64) {
        if let EchoStage::Aec(aec) = &mut self.echo {
            let at_48k = n * u64::from(SAMPLE_RATE) / u64::from(self.device_rate.max(1));
            aec.skip(usize::try_from(at_48k).unwrap_or(usize::MAX));
        }
    }

    /// The microphone and the echo canceller's reference lost alignment by an unknown amount
    /// (the input device overflowed): cover for the canceller while it settles.
    pub fn echo_disrupted(&mut self) {
        if let EchoStage::Aec(aec) = &mut self.echo {
            aec.guard.disrupted();
        }
    }

    /// Recovery windows the echo guard opened so far (see [`super::guard`]).
    pub fn echo_guard_engaged(&self) -> u64 {
        match &self.echo {
            EchoStage::Aec(aec) => aec.guard.engaged(),
            _ => 0,
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
            ..
        } = self;
        resampler.process(mono, |mut out| {
            while !out.is_empty() {
                let take = (SEND_FRAME_SAMPLES - frame.len()).min(out.len());
                frame.extend_from_slice(&out[..take]);
                out = &out[take..];
                if frame.len() == SEND_FRAME_SAMPLES {
                    match echo {
                        EchoStage::Off => {}
                        EchoStage::HalfDuplex(g) => {
                            if g.apply(frame, speaking, now_ms) {
                                *muted_frames += 1;
                            }
                        }
                        EchoStage::Aec(aec) => {
                            if aec.apply(frame, speaking, now_ms) {
                                *muted_frames += 1;
                            }
                        }
                    }
                    emit(encoder.encode(frame).map(|data| OpusFrame {
                        data,
                        samples: SEND_FRAME_SAMPLES as u32,
                    }));
                    frame.clear();
                }
            }
        });
    }

    /// Algorithmic delay this chain adds beyond the 20 ms framing, in 48 kHz samples
    /// (resampler, plus the canceller's with AEC).
    pub fn algorithmic_delay_samples(&self) -> usize {
        let aec = match self.echo {
            EchoStage::Aec(_) => super::echo::DELAY_SAMPLES,
            _ => 0,
        };
        self.resampler.delay_samples() + aec
    }

    /// Frames the gate muted so far.
    pub fn muted_frames(&self) -> u64 {
        self.muted_frames
    }
}

/// Mean square of a 20 ms slot at or above which it counts as audible: -50 dBFS RMS.
///
/// Speech from the Realtime API sits around -20 to -30 dBFS RMS, and its quiet passages
/// (breaths, closures) rarely fall under -45 dBFS in a whole 20 ms slot; the gate's tail bridges
/// those that do. The Opus silence frames peers stream between replies decode to digital
/// silence (under -90 dBFS), and concealment after them stays as quiet. Anything played under
/// -50 dBFS reaches a microphone a further 10-20 dB down through the room, below a typical
/// microphone's own noise floor, so it cannot be heard as JARVIS speaking.
pub const AUDIBLE_MEAN_SQUARE: f32 = 1e-5;

/// What one play-out slot held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Sound above [`AUDIBLE_MEAN_SQUARE`]: speech, its concealment, or a prompt.
    Audible,
    /// Silence: buffering, idle, Opus silence frames, concealment of silence.
    Silent,
}

/// True when `pcm` is loud enough to be heard (see [`AUDIBLE_MEAN_SQUARE`]).
pub fn is_audible(pcm: &[f32]) -> bool {
    let energy: f32 = pcm.iter().map(|s| s * s).sum();
    !pcm.is_empty() && energy >= AUDIBLE_MEAN_SQUARE * pcm.len() as f32
}

/// RTP payloads in, mono samples at the device rate out: jitter buffer, Opus decode with
/// FEC/PLC, prompt mixing, resampling. Each slot says whether it was audible.
///
/// When the jitter buffer holds more than it needs (its target plus the device's burst, plus
/// one), a packet that decodes to silence is dropped after decoding: the delay an underrun
/// added is given back in a pause, never by cutting speech.
pub struct PlaybackChain {
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    pcm: Vec<f32>,
    prompt: Option<(Arc<[f32]>, usize)>,
    resampler: StreamResampler,
    decode_errors: u64,
    /// The last slot taken from the stream was audible (speech is under way).
    speech: bool,
    device_burst: u32,
    trimmed_silence: u64,
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
            speech: false,
            device_burst: 0,
            trimmed_silence: 0,
        })
    }

    /// Packets the device takes at once (from the playback thread's measure): the jitter
    /// buffer may hold that many more before silence is trimmed or packets dropped.
    pub fn set_device_burst(&mut self, packets: u32) {
        self.device_burst = packets;
        self.jitter.set_device_burst(packets);
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
        self.speech = false;
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

    /// True while speech or a prompt is still to be produced: a prompt, or packets buffered
    /// while the stream is audible. Packets of a stream that is playing silence do not count
    /// (peers stream Opus silence between replies); speech that starts after silence counts
    /// from its first audible slot, before it reaches the device.
    pub fn has_audio(&self) -> bool {
        self.prompt.is_some() || (self.speech && !self.jitter.is_empty())
    }

    /// Produces the next play-out slot (usually 20 ms) at `now_ms` (the clock of
    /// [`Self::push_rtp`]), handing device-rate samples to `emit`.
    pub fn next_slot(&mut self, now_ms: u64, emit: &mut dyn FnMut(&[f32])) -> Slot {
        let mut n = self.decode_next(now_ms);
        if self.prompt.is_none() && self.has_surplus() && !is_audible(&self.pcm[..n]) {
            // A silent packet while the buffer holds more than it needs: skip it.
            self.trimmed_silence += 1;
            n = self.decode_next(now_ms);
        }
        self.speech = is_audible(&self.pcm[..n]);
        if let Some((clip, pos)) = self.prompt.as_mut() {
            let take = (clip.len() - *pos).min(n);
            for (o, s) in self.pcm[..take].iter_mut().zip(&clip[*pos..*pos + take]) {
                *o = (*o + s).clamp(-1.0, 1.0);
            }
            *pos += take;
            if *pos >= clip.len() {
                self.prompt = None;
            }
        }
        let audible = is_audible(&self.pcm[..n]);
        self.resampler.process(&self.pcm[..n], |out| emit(out));
        if audible { Slot::Audible } else { Slot::Silent }
    }

    /// More packets buffered than the target depth, the device's burst and one spare.
    fn has_surplus(&self) -> bool {
        self.jitter.len() as u32 > self.jitter.target_depth() + self.device_burst + 1
    }

    /// Decodes (or conceals) the stream's next slot into `pcm`; returns its sample count.
    fn decode_next(&mut self, now_ms: u64) -> usize {
        match self.jitter.pop(now_ms) {
            Playout::Packet(p) => match self.decoder.decode(&p, &mut self.pcm) {
                Ok(n) => n,
                Err(_) => {
                    self.decode_errors += 1;
                    self.conceal()
                }
            },
            Playout::Fec(next) => {
                match self.decoder.recover(&next, &mut self.pcm[..FRAME_SAMPLES]) {
                    Ok(n) => n,
                    Err(_) => {
                        self.decode_errors += 1;
                        self.conceal()
                    }
                }
            }
            Playout::Conceal => self.conceal(),
            Playout::Silence => {
                self.pcm[..FRAME_SAMPLES].fill(0.0);
                FRAME_SAMPLES
            }
        }
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

    /// Silent packets skipped to give back delay so far.
    pub fn trimmed_silence(&self) -> u64 {
        self.trimmed_silence
    }

    /// Algorithmic delay of the output resampler, in device-rate samples.
    pub fn resampler_delay_samples(&self) -> usize {
        self.resampler.delay_samples()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

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

    /// Plays `frames` arriving every 20 ms, one slot per 20 ms; returns the output and what
    /// each slot was, with `has_audio` after it.
    fn play_slots(frames: &[OpusFrame], device_rate: u32) -> (Vec<f32>, Vec<(Slot, bool)>) {
        let mut p = PlaybackChain::new(device_rate).unwrap();
        let mut out = Vec::new();
        let mut slots = Vec::new();
        let mut now = 0;
        for (i, f) in frames.iter().enumerate() {
            now = i as u64 * 20;
            p.push_rtp(i as u16, i as u32 * 960, &f.data, now);
            slots.push((
                p.next_slot(now, &mut |s| out.extend_from_slice(s)),
                p.has_audio(),
            ));
        }
        while p.is_active() {
            now += 20;
            slots.push((
                p.next_slot(now, &mut |s| out.extend_from_slice(s)),
                p.has_audio(),
            ));
        }
        (out, slots)
    }

    /// What the peer hears of the capture chain's `frames`: each decoded in turn at 48 kHz.
    pub(crate) fn decode(frames: &[OpusFrame]) -> Vec<f32> {
        let mut dec = OpusDecoder::new().unwrap();
        let mut pcm = vec![0.0; MAX_PACKET_SAMPLES];
        let mut out = Vec::new();
        for f in frames {
            let n = dec.decode(&f.data, &mut pcm).unwrap();
            assert_eq!(n, f.samples as usize);
            out.extend_from_slice(&pcm[..n]);
        }
        out
    }

    /// Opus frames of `pcm` (48 kHz), cut into 20 ms.
    fn opus(pcm: &[f32]) -> Vec<OpusFrame> {
        let mut enc = OpusEncoder::new().unwrap();
        pcm.chunks(FRAME_SAMPLES)
            .map(|c| {
                let mut f = c.to_vec();
                f.resize(FRAME_SAMPLES, 0.0);
                OpusFrame {
                    data: enc.encode(&f).unwrap(),
                    samples: FRAME_SAMPLES as u32,
                }
            })
            .collect()
    }

    #[test]
    fn threshold_is_minus_50_dbfs() {
        // A square wave of amplitude a has RMS a.
        let square = |db: f32| -> Vec<f32> {
            let a = 10f32.powf(db / 20.0);
            (0..960).map(|i| if i % 2 == 0 { a } else { -a }).collect()
        };
        assert!(is_audible(&square(-49.9)));
        assert!(!is_audible(&square(-50.1)));
        assert!(!is_audible(&[0.0; 960]));
        assert!(!is_audible(&[]));
    }

    #[test]
    fn a_stream_of_opus_silence_is_never_audible() {
        let frames = opus(&vec![0.0; 48_000 * 3]);
        let (out, slots) = play_slots(&frames, 48_000);
        assert!(slots.len() >= 150);
        assert!(
            slots.iter().all(|s| *s == (Slot::Silent, false)),
            "{slots:?}"
        );
        assert!(!is_audible(&out));
    }

    #[test]
    fn speech_between_silence_is_audible_and_ends_with_it() {
        let pcm = [vec![0.0; 48_000], tone(48_000, 24_000), vec![0.0; 48_000]].concat();
        let (_, slots) = play_slots(&opus(&pcm), 48_000);
        let first = slots.iter().position(|s| s.0 == Slot::Audible).unwrap();
        let last = slots.iter().rposition(|s| s.0 == Slot::Audible).unwrap();
        // 1 s of silence (50 slots) plays after the 2-packet buffering: the tone from ~52.
        assert!((50..=54).contains(&first), "first audible slot {first}");
        assert!((74..=79).contains(&last), "last audible slot {last}");
        assert!(
            slots[first..=last].iter().all(|s| s.0 == Slot::Audible),
            "continuous tone"
        );
        assert!(slots[first].1, "speech buffered counts as about to speak");
        assert!(
            slots[last + 2..]
                .iter()
                .all(|s| *s == (Slot::Silent, false)),
            "{:?}",
            &slots[last..]
        );
    }

    #[test]
    fn one_second_at_44k1_becomes_a_hundred_10_ms_frames_and_plays_back() {
        let frames = encode(44_100, 1.0, EchoStage::Off, false);
        assert!((99..=100).contains(&frames.len()), "{}", frames.len());
        assert!(frames.iter().all(|f| f.samples == 480));
        let out = decode(&frames);
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
        let mut c = CaptureChain::new(48_000, EchoStage::aec(300).unwrap()).unwrap();
        c.set_reference(reader);
        let mut frames = Vec::new();
        // The output callback plays 10 ms, the input callback delivers 10 ms, in turn.
        for (far, mic) in s.far.chunks(480).zip(mic.chunks(480)) {
            tap.played(far);
            c.push(mic, false, 0, &mut |f| frames.push(f.unwrap()));
        }
        assert_eq!(c.echo_errors(), 0);
        let out = decode(&frames);
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
        let out = decode(&frames);
        assert!(rms(&out) < 0.01, "{}", rms(&out));
    }

    #[test]
    fn prompt_plays_alone_and_is_audible() {
        let mut p = PlaybackChain::new(44_100).unwrap();
        p.start_prompt(Arc::from(tone(48_000, 4_800)));
        assert!(p.has_audio());
        let mut out = Vec::new();
        assert_eq!(
            p.next_slot(0, &mut |s| out.extend_from_slice(s)),
            Slot::Audible
        );
        while p.is_active() {
            p.next_slot(0, &mut |s| out.extend_from_slice(s));
        }
        assert!(!p.has_audio());
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
        let mut now = 60;
        while p.is_active() {
            p.next_slot(now, &mut |s| n += s.len());
            now += 20;
        }
        assert!(p.decode_errors() >= 4);
        assert!(n >= 4 * 960);
    }

    #[test]
    fn flush_stops_speech() {
        let frames = opus(&tone(48_000, 24_000));
        let mut p = PlaybackChain::new(48_000).unwrap();
        for (i, f) in frames.iter().enumerate() {
            p.push_rtp(i as u16, i as u32 * 960, &f.data, 0);
        }
        assert!(p.is_active());
        p.flush();
        assert!(!p.is_active());
        assert!(!p.has_audio());
        let mut out = Vec::new();
        assert_eq!(
            p.next_slot(0, &mut |s| out.extend_from_slice(s)),
            Slot::Silent
        );
        assert!(rms(&out) == 0.0);
    }

    #[test]
    fn surplus_silence_is_trimmed_but_speech_never() {
        let mut p = PlaybackChain::new(48_000).unwrap();
        let silent = opus(&vec![0.0; 48_000]);
        let speech = opus(&tone(48_000, 48_000));
        // 10 packets arrive at once (a delay spike): 6 more than target 2 + burst 1 + 1.
        for (i, f) in silent.iter().take(10).enumerate() {
            p.push_rtp(i as u16, i as u32 * 960, &f.data, 0);
        }
        p.set_device_burst(1);
        let mut slots = 0;
        while p.jitter_stats().played < 10 {
            p.next_slot(0, &mut |_| ());
            slots += 1;
        }
        let trimmed = p.trimmed_silence();
        // Down to target (2, or 3 after the jitter of a spike) + burst 1 + 1.
        assert!((2..=4).contains(&trimmed), "{trimmed} trimmed");
        assert_eq!(slots, 10 - trimmed);
        for (i, f) in speech.iter().take(10).enumerate() {
            p.push_rtp(10 + i as u16, (10 + i as u32) * 960, &f.data, 200);
        }
        while p.is_active() {
            p.next_slot(200, &mut |_| ());
        }
        assert_eq!(p.trimmed_silence(), trimmed, "speech is never trimmed");
        assert_eq!(p.jitter_stats().played, 20);
    }

    proptest! {
        /// Opus silence with any loss, reordering and arrival times never sounds, never
        /// counts as about to speak, and its concealment is silent too.
        #[test]
        fn silence_with_loss_and_reordering_is_never_audible(
            order in proptest::sample::subsequence((0u16..60).collect::<Vec<_>>(), 30..60)
                .prop_shuffle(),
            delays in proptest::collection::vec(0u64..80, 60),
        ) {
            let frames = opus(&vec![0.0; 60 * FRAME_SAMPLES]);
            let mut p = PlaybackChain::new(48_000).unwrap();
            let mut now = 0;
            for (k, i) in order.iter().enumerate() {
                now = k as u64 * 20 + delays[k];
                p.push_rtp(*i, u32::from(*i) * 960, &frames[*i as usize].data, now);
                prop_assert_eq!(p.next_slot(now, &mut |_| ()), Slot::Silent);
                prop_assert!(!p.has_audio());
            }
            for _ in 0..80 {
                now += 20;
                prop_assert_eq!(p.next_slot(now, &mut |_| ()), Slot::Silent);
                prop_assert!(!p.has_audio());
            }
        }
    }
}
