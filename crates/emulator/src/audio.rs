//! Reply audio: tones and WAV files turned into 20 ms Opus frames, and the 20 ms pacing clock.

use std::path::Path;
use std::time::{Duration, Instant};

use super::scenario::AudioSpec;

/// RTP clock and Opus rate used on the wire.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples per 20 ms frame at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;
/// Frame period.
pub const FRAME: Duration = Duration::from_millis(20);
/// The 20 ms Opus silence frame (CELT, fullband) that browsers and Pion-based servers send
/// between replies; it decodes to digital silence.
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

/// Audio that cannot be produced.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The WAV file is unreadable or not 16-bit PCM.
    #[error("reply audio {path}: {message} (use a 16-bit PCM WAV, mono or stereo)")]
    Wav {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// libopus refused.
    #[error("Opus encoder: {0}")]
    Opus(#[from] opus::Error),
}

/// A sine tone of `ms` milliseconds at 48 kHz, amplitude 0.3 of full scale.
pub fn tone(hz: f32, ms: u32) -> Vec<i16> {
    let n = (SAMPLE_RATE as usize * ms as usize) / 1000;
    (0..n)
        .map(|i| {
            let t = i as f32 / SAMPLE_RATE as f32;
            ((t * hz * std::f32::consts::TAU).sin() * 0.3 * f32::from(i16::MAX)) as i16
        })
        .collect()
}

/// Linear resampling of mono samples to 48 kHz (good enough for test speech).
pub fn resample_to_48k(pcm: &[i16], rate: u32) -> Vec<i16> {
    if rate == SAMPLE_RATE || pcm.is_empty() || rate == 0 {
        return pcm.to_vec();
    }
    let out_len = (pcm.len() as u64 * u64::from(SAMPLE_RATE) / u64::from(rate)) as usize;
    let step = f64::from(rate) / f64::from(SAMPLE_RATE);
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let k = pos as usize;
            let frac = pos - k as f64;
            let a = f64::from(pcm[k.min(pcm.len() - 1)]);
            let b = f64::from(pcm[(k + 1).min(pcm.len() - 1)]);
            (a + (b - a) * frac).round() as i16
        })
        .collect()
}

/// Reads a 16-bit PCM WAV as 48 kHz mono.
pub fn read_wav(path: &Path) -> Result<Vec<i16>, AudioError> {
    let err = |message: String| AudioError::Wav {
        path: path.display().to_string(),
        message,
    };
    let reader = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(err(format!(
            "{} bits {:?} is not supported",
            spec.bits_per_sample, spec.sample_format
        )));
    }
    let channels = usize::from(spec.channels.max(1));
    let samples: Vec<i16> = reader
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    let mono: Vec<i16> = samples
        .chunks(channels)
        .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / c.len() as i32) as i16)
        .collect();
    Ok(resample_to_48k(&mono, spec.sample_rate))
}

/// The PCM of an audio spec (paths already resolved).
pub fn render(spec: &AudioSpec) -> Result<Vec<i16>, AudioError> {
    match spec {
        AudioSpec::Tone { tone_hz, ms } => Ok(tone(*tone_hz, *ms)),
        AudioSpec::Wav { wav } => read_wav(wav),
    }
}

/// Encodes 48 kHz mono PCM into 20 ms Opus frames (the last one zero-padded).
pub fn encode_frames(pcm: &[i16]) -> Result<Vec<Vec<u8>>, AudioError> {
    let mut enc = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
    let mut frame = [0i16; FRAME_SAMPLES];
    pcm.chunks(FRAME_SAMPLES)
        .map(|chunk| {
            frame.fill(0);
            frame[..chunk.len()].copy_from_slice(chunk);
            Ok(enc.encode_vec(&frame, 1500)?)
        })
        .collect()
}

/// When each frame of a reply is due: frame `i` at `start + i × 20 ms`, so a late wake-up sends
/// the overdue frames at once instead of drifting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacer {
    start: Instant,
    sent: usize,
    total: usize,
}

impl Pacer {
    /// Paces `total` frames from `start`.
    pub fn new(start: Instant, total: usize) -> Self {
        Self {
            start,
            sent: 0,
            total,
        }
    }

    /// When the next frame is due, or `None` when all are sent.
    pub fn next_due(&self) -> Option<Instant> {
        (self.sent < self.total).then(|| self.start + FRAME * self.sent as u32)
    }

    /// Indices of the frames due at `now` (marks them sent).
    pub fn due(&mut self, now: Instant) -> std::ops::Range<usize> {
        let first = self.sent;
        while self.next_due().is_some_and(|t| t <= now) {
            self.sent += 1;
        }
        first..self.sent
    }

    /// True when every frame has been handed out.
    pub fn finished(&self) -> bool {
        self.sent >= self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_has_the_right_length_and_level() {
        let t = tone(440.0, 100);
        assert_eq!(t.len(), 4800);
        let peak = t.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((9000..=9900).contains(&peak), "{peak}");
    }

    #[test]
    fn resampling_keeps_duration() {
        let pcm = vec![1000i16; 16_000];
        let out = resample_to_48k(&pcm, 16_000);
        assert_eq!(out.len(), 48_000);
        assert!(out.iter().all(|&s| s == 1000));
        assert_eq!(resample_to_48k(&pcm, 48_000).len(), 16_000);
        assert!(resample_to_48k(&[], 8000).is_empty());
    }

    #[test]
    fn frames_round_trip_through_opus() {
        let frames = encode_frames(&tone(440.0, 210)).unwrap();
        assert_eq!(frames.len(), 11);
        let mut dec = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).unwrap();
        let mut out = [0i16; FRAME_SAMPLES];
        for f in &frames {
            assert_eq!(dec.decode(f, &mut out, false).unwrap(), FRAME_SAMPLES);
        }
    }

    #[test]
    fn wav_files_are_read_downmixed_and_resampled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 24_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for _ in 0..2400 {
            w.write_sample(1000i16).unwrap();
            w.write_sample(3000i16).unwrap();
        }
        w.finalize().unwrap();
        let pcm = read_wav(&path).unwrap();
        assert_eq!(pcm.len(), 4800);
        assert!(pcm.iter().all(|&s| s == 2000));

        let bad = dir.path().join("bad.wav");
        std::fs::write(&bad, b"RIFF nope").unwrap();
        let err = read_wav(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.wav") && err.contains("16-bit PCM"),
            "{err}"
        );
    }

    #[test]
    fn the_silence_frame_decodes_to_20_ms_of_digital_silence() {
        let mut dec = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).unwrap();
        let mut out = [1i16; 2 * FRAME_SAMPLES];
        assert_eq!(
            dec.decode(&OPUS_SILENCE, &mut out, false).unwrap(),
            FRAME_SAMPLES
        );
        assert!(out[..FRAME_SAMPLES].iter().all(|&s| s == 0));
    }

    #[test]
    fn pacer_hands_out_frames_on_schedule_and_catches_up() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 5);
        assert_eq!(p.next_due(), Some(t0));
        assert_eq!(p.due(t0), 0..1);
        assert_eq!(p.due(t0 + Duration::from_millis(19)), 1..1);
        assert_eq!(p.next_due(), Some(t0 + FRAME));
        assert_eq!(p.due(t0 + Duration::from_millis(61)), 1..4);
        assert!(!p.finished());
        assert_eq!(p.due(t0 + Duration::from_secs(9)), 4..5);
        assert!(p.finished());
        assert_eq!(p.next_due(), None);
        assert_eq!(Pacer::new(t0, 0).next_due(), None);
    }
}
