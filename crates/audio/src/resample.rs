//! Mono sample-rate conversion with `rubato`'s FFT resampler (fixed ratio, high quality, cheap),
//! streaming in 2.5 ms chunks so it adds under 2 ms of delay, or whole clips for prompts.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use thiserror::Error;

/// A resampler could not be built for this rate pair.
#[derive(Debug, Error)]
#[error("cannot resample {from} Hz to {to} Hz: {reason}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    reason: String,
}

/// Streaming mono resampler. Equal rates pass samples through untouched.
pub struct StreamResampler {
    fft: Option<Fft<f32>>,
    pending: Vec<f32>,
    out: Vec<f32>,
}

impl StreamResampler {
    /// Builds a resampler from `from` Hz to `to` Hz. Buffers are allocated here, not while
    /// streaming.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        let err = |reason: String| ResampleError { from, to, reason };
        if from == 0 || to == 0 {
            return Err(err("rate 0".into()));
        }
        let fft = if from == to {
            None
        } else {
            // The delay follows the chunk: 10 ms chunks cost 5 ms, 2.5 ms chunks 1.25-1.7 ms,
            // out of a 30 ms budget the canceller already takes 17 ms of.
            let chunk = (from as usize / 400).max(16);
            Some(
                Fft::new(from as usize, to as usize, chunk, 1, FixedSync::Input)
                    .map_err(|e| err(e.to_string()))?,
            )
        };
        let (pending_cap, out_len) = match &fft {
            Some(f) => (f.input_frames_max() * 2, f.output_frames_max()),
            None => (0, 0),
        };
        Ok(StreamResampler {
            fft,
            pending: Vec::with_capacity(pending_cap),
            out: vec![0.0; out_len],
        })
    }

    /// Delay the resampler adds, in output samples (0 when passing through).
    pub fn delay_samples(&self) -> usize {
        self.fft.as_ref().map_or(0, |f| f.output_delay())
    }

    /// Feeds `input` and hands every block of output to `emit`, in order.
    pub fn process(&mut self, mut input: &[f32], mut emit: impl FnMut(&[f32])) {
        let Some(fft) = self.fft.as_mut() else {
            emit(input);
            return;
        };
        while !input.is_empty() {
            let need = fft.input_frames_next();
            let take = (need - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() < need {
                break;
            }
            let out_frames = fft.output_frames_next();
            let written = match (
                InterleavedSlice::new(&self.pending[..], 1, need),
                InterleavedSlice::new_mut(&mut self.out[..], 1, out_frames),
            ) {
                (Ok(i), Ok(mut o)) => fft.process_into_buffer(&i, &mut o, None).map(|(_, w)| w),
                // Sizes come from the resampler itself; treat a mismatch as a dropped chunk.
                _ => Ok(0),
            };
            self.pending.clear();
            if let Ok(w) = written {
                emit(&self.out[..w]);
            }
        }
    }

    /// Forgets buffered input and filter state (after a flush or a device reopen).
    pub fn reset(&mut self) {
        self.pending.clear();
        if let Some(f) = self.fft.as_mut() {
            f.reset();
        }
    }
}

/// Resamples a whole clip (prompts), trimming the filter delay so it lines up with the input.
pub fn resample_clip(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    let err = |reason: String| ResampleError { from, to, reason };
    if from == to {
        return Ok(samples.to_vec());
    }
    if from == 0 || to == 0 {
        return Err(err("rate 0".into()));
    }
    if samples.is_empty() {
        return Ok(Vec::new());
    }
    let mut fft = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Both)
        .map_err(|e| err(e.to_string()))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| err(e.to_string()))?;
    let out = fft
        .process_all(&input, samples.len(), None)
        .map_err(|e| err(e.to_string()))?;
    Ok(out.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    fn rms(s: &[f32]) -> f32 {
        (s.iter().map(|x| x * x).sum::<f32>() / s.len() as f32).sqrt()
    }

    #[test]
    fn streams_44k1_to_48k_at_the_right_length_and_level() {
        let input = sine(1000.0, 44_100, 44_100);
        let mut r = StreamResampler::new(44_100, 48_000).unwrap();
        let mut out = Vec::new();
        // Odd block sizes, like a device callback.
        for block in input.chunks(333) {
            r.process(block, |o| out.extend_from_slice(o));
        }
        assert!((47_000..=48_000).contains(&out.len()), "{}", out.len());
        let steady = &out[4_800..out.len() - 4_800];
        assert!((rms(steady) - 0.3536).abs() < 0.01, "{}", rms(steady));
        assert!(
            r.delay_samples() <= 96,
            "delay {} (2 ms at most)",
            r.delay_samples()
        );
    }

    /// Short chunks must not cost fidelity: a tone comes out as the same tone (whatever its
    /// delay, fitted out), at least 60 dB above everything else.
    #[test]
    fn short_chunks_keep_the_signal_clean() {
        for from in [44_100, 16_000, 32_000] {
            let input = sine(1000.0, from, from as usize);
            let mut r = StreamResampler::new(from, 48_000).unwrap();
            let mut out = Vec::new();
            for block in input.chunks(from as usize / 100) {
                r.process(block, |o| out.extend_from_slice(o));
            }
            let steady = &out[4_800..40_000];
            let w = 2.0 * std::f64::consts::PI * 1000.0 / 48_000.0;
            let (sin, cos): (Vec<f64>, Vec<f64>) = (0..steady.len())
                .map(|i| ((w * i as f64).sin(), (w * i as f64).cos()))
                .unzip();
            let dot = |a: &[f64]| -> f64 {
                steady
                    .iter()
                    .zip(a)
                    .map(|(x, y)| f64::from(*x) * y)
                    .sum::<f64>()
                    / a.iter().map(|y| y * y).sum::<f64>()
            };
            let (a, b) = (dot(&sin), dot(&cos));
            let fit: Vec<f64> = sin.iter().zip(&cos).map(|(s, c)| a * s + b * c).collect();
            let power = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>();
            let residual = power(&mut steady.iter().zip(&fit).map(|(x, f)| f64::from(*x) - f));
            let snr = 10.0 * (power(&mut fit.iter().copied()) / residual).log10();
            assert!(snr >= 60.0, "{from} Hz: {snr:.1} dB");
        }
    }

    #[test]
    fn streams_every_common_rate_at_the_right_length() {
        for (from, to) in [
            (16_000, 48_000),
            (8_000, 48_000),
            (22_050, 48_000),
            (48_000, 44_100),
            (48_000, 16_000),
            (96_000, 48_000),
        ] {
            let input = sine(440.0, from, from as usize * 2);
            let mut r = StreamResampler::new(from, to).unwrap();
            let mut n = 0;
            for block in input.chunks(320) {
                r.process(block, |o| n += o.len());
            }
            let expected = to as usize * 2;
            assert!(
                n <= expected && n + 2_000 >= expected,
                "{from}->{to}: {n} samples, expected {expected}"
            );
        }
    }

    #[test]
    fn passes_through_equal_rates() {
        let mut r = StreamResampler::new(48_000, 48_000).unwrap();
        let mut out = Vec::new();
        r.process(&[0.1, 0.2, 0.3], |o| out.extend_from_slice(o));
        assert_eq!(out, vec![0.1, 0.2, 0.3]);
        assert_eq!(r.delay_samples(), 0);
    }

    #[test]
    fn rejects_rate_zero() {
        assert!(StreamResampler::new(0, 48_000).is_err());
        assert!(resample_clip(&[0.0], 16_000, 0).is_err());
    }

    #[test]
    fn clip_keeps_duration_and_level() {
        let input = sine(440.0, 16_000, 16_000);
        let out = resample_clip(&input, 16_000, 48_000).unwrap();
        assert!((out.len() as i64 - 48_000).abs() <= 3, "{}", out.len());
        assert!((rms(&out[4_800..43_200]) - 0.3536).abs() < 0.01);
    }
}
