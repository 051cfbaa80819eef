//! Acoustic echo cancellation: WebRTC's AEC3 (the pure-Rust `aec3` port) followed by its noise
//! suppressor, behind a type of our own so the rest of the crate sees one call per 10 ms block.
//! The far-end reference is what the speaker actually played (see [`super::reference`]).
//!
//! AEC3 finds the echo path delay itself: its five matched filters cover 128 sub-blocks of
//! 4 ms, about 512 ms, so a 40-150 ms room plus both devices' buffering fits with room to
//! spare. It delays the microphone by [`DELAY_SAMPLES`] (17 ms).

use aec3::nodes::audio::AudioFormat;
use aec3::pipelines::linear::{self, LinearPipeline};

use super::SAMPLE_RATE;

/// Samples in one 10 ms block at [`SAMPLE_RATE`]: what the canceller takes per call.
pub const BLOCK_SAMPLES: usize = 480;

/// How late the microphone comes out of the canceller, in samples at [`SAMPLE_RATE`]: 17 ms,
/// 9 of them AEC3's band split and block framing, 8 the noise suppressor's overlap (measured by
/// cross-correlation, see the tests).
pub const DELAY_SAMPLES: usize = 816;

/// The canceller could not be built or refused a block.
#[derive(Debug, thiserror::Error)]
#[error("echo canceller (AEC3): {0}")]
pub struct EchoError(String);

/// AEC3 + noise suppression on 48 kHz mono, one 10 ms block at a time.
pub struct EchoCanceller {
    pipeline: LinearPipeline,
    out: Vec<f32>,
}

impl EchoCanceller {
    /// Builds the canceller (high-pass filter, AEC3, noise suppression; no gain control: the
    /// Realtime API normalises levels itself).
    pub fn new() -> Result<Self, EchoError> {
        let format = AudioFormat::ten_ms(SAMPLE_RATE, 1);
        let pipeline = linear::builder(format, format)
            .enable_high_pass_filter(true)
            .enable_noise_suppression(true)
            .enable_gain_controller2(false)
            .build()
            .map_err(|e| EchoError(e.to_string()))?;
        Ok(EchoCanceller {
            pipeline,
            out: vec![0.0; BLOCK_SAMPLES],
        })
    }

    /// Cancels the echo of `render` (what the speaker played during this block, or zeros)
    /// from `capture` (the microphone), in place. Both are [`BLOCK_SAMPLES`] long. Render and
    /// capture must be fed one for one; the canceller estimates the delay between them.
    pub fn process(&mut self, render: &[f32], capture: &mut [f32]) -> Result<(), EchoError> {
        self.pipeline
            .handle_render_frame(render)
            .map_err(|e| EchoError(e.to_string()))?;
        let produced = self
            .pipeline
            .process_capture_frame(capture, &mut self.out)
            .map_err(|e| EchoError(e.to_string()))?;
        if produced {
            capture.copy_from_slice(&self.out);
        } else {
            capture.fill(0.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::{Room, Signals};

    fn energy(s: &[f32]) -> f32 {
        s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32
    }

    fn run(room: &Room, signals: &Signals) -> Vec<f32> {
        let mut aec = EchoCanceller::new().unwrap();
        let mic = room.microphone(signals);
        let mut out = mic.clone();
        for (render, block) in signals
            .far
            .chunks_exact(BLOCK_SAMPLES)
            .zip(out.chunks_exact_mut(BLOCK_SAMPLES))
        {
            aec.process(render, block).unwrap();
        }
        out
    }

    #[test]
    fn reduces_a_synthetic_echo_by_20_db_after_convergence() {
        let room = Room::kiosk(100);
        let signals = Signals::far_only(8.0);
        let out = run(&room, &signals);
        let echo = room.echo(&signals.far);
        // After 2 s of convergence, over the blocks where the far end talks.
        let erle = crate::room::median_erle_db(&echo, &out, 2.0);
        assert!(erle >= 20.0, "ERLE {erle:.1} dB");
    }

    #[test]
    fn keeps_the_near_end_during_double_talk() {
        let room = Room::kiosk(60);
        let signals = Signals::double_talk(10.0, 4.0);
        let out = run(&room, &signals);
        let kept = crate::room::near_end_correlation(&signals, &out);
        let mic = room.microphone(&signals);
        let before = crate::room::near_end_correlation(&signals, &mic);
        // The member's voice is still there, and more clearly than in the raw microphone.
        assert!(kept > before, "kept {kept:.3}, raw microphone {before:.3}");
        let tail = 4 * crate::SAMPLE_RATE as usize..out.len();
        assert!(energy(&out[tail]) > 1e-5, "near end silenced");
    }

    #[test]
    fn the_microphone_comes_out_late_by_the_stated_delay() {
        let mut aec = EchoCanceller::new().unwrap();
        // Chirp bursts (200 ms on, 100 ms off) that the noise suppressor lets through.
        let n = BLOCK_SAMPLES * 300;
        let input: Vec<f32> = (0..n)
            .map(|i| {
                let t = (i % 14_400) as f32 / 48_000.0;
                let phase = 2.0 * std::f32::consts::PI * (300.0 * t + 4_000.0 * t * t);
                if t < 0.2 { 0.3 * phase.sin() } else { 0.0 }
            })
            .collect();
        let mut out = input.clone();
        for block in out.chunks_exact_mut(BLOCK_SAMPLES) {
            aec.process(&[0.0; BLOCK_SAMPLES], block).unwrap();
        }
        let correlation =
            |lag: usize| -> f32 { (48_000..n - 2_000).map(|i| input[i] * out[i + lag]).sum() };
        let delay = (0..2_000)
            .max_by(|&a, &b| correlation(a).total_cmp(&correlation(b)))
            .unwrap();
        assert!(delay.abs_diff(DELAY_SAMPLES) <= 24, "delay {delay} samples");
    }

    #[test]
    fn silence_in_gives_silence_out() {
        let mut aec = EchoCanceller::new().unwrap();
        let mut block = [0.0f32; BLOCK_SAMPLES];
        for _ in 0..100 {
            aec.process(&[0.0; BLOCK_SAMPLES], &mut block).unwrap();
        }
        assert!(energy(&block) < 1e-8);
    }
}
