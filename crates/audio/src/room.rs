//! A synthetic room for echo tests and benchmarks (pure, deterministic): the speaker's sound
//! reaches the microphone after a known delay, attenuated, with discrete reflections and a
//! little noise, while a member may talk. Also the two figures echo cancellation is judged by:
//! ERLE over far-end-only speech, and how much of the member's voice survives double talk.
//! Speech comes from the embedded prompts (real recorded speech, 48 kHz mono).

use super::SAMPLE_RATE;
use super::echo::BLOCK_SAMPLES;
use super::prompts::{PromptSet, PromptSound};

/// A speaker-to-microphone path at 48 kHz.
#[derive(Debug, Clone)]
pub struct Room {
    /// Acoustic + device delay of the direct path.
    pub delay_ms: u32,
    /// Gain of the direct path (0.5 = -6 dB).
    pub gain: f32,
    /// Reflections as (milliseconds after the direct path, gain).
    pub reflections: Vec<(u32, f32)>,
    /// RMS of the white noise added at the microphone.
    pub noise: f32,
}

impl Room {
    /// A kiosk-like room: the direct path at `delay_ms`, -6 dB, then 24 reflections over the
    /// next 120 ms decaying by about 30 dB, and noise at -66 dBFS.
    pub fn kiosk(delay_ms: u32) -> Room {
        let mut rng = Rng(0x5eed ^ u64::from(delay_ms));
        let reflections = (1..=24)
            .map(|i| {
                let after = i * 5;
                let decay = (-(after as f32) / 35.0).exp();
                (after, 0.5 * 0.4 * decay * rng.sign())
            })
            .collect();
        Room {
            delay_ms,
            gain: 0.5,
            reflections,
            noise: 0.0005,
        }
    }

    /// The room's impulse response at 48 kHz.
    pub fn impulse_response(&self) -> Vec<f32> {
        let at = |ms: u32| (ms as usize) * SAMPLE_RATE as usize / 1000;
        let last = self.reflections.iter().map(|r| r.0).max().unwrap_or(0);
        let mut h = vec![0.0; at(self.delay_ms + last) + 1];
        h[at(self.delay_ms)] += self.gain;
        for &(after, g) in &self.reflections {
            h[at(self.delay_ms + after)] += g;
        }
        h
    }

    /// What the microphone hears of `far` (no noise, no member).
    pub fn echo(&self, far: &[f32]) -> Vec<f32> {
        let taps: Vec<(usize, f32)> = self
            .impulse_response()
            .into_iter()
            .enumerate()
            .filter(|(_, g)| *g != 0.0)
            .collect();
        (0..far.len())
            .map(|n| {
                taps.iter()
                    .filter(|(k, _)| *k <= n)
                    .map(|&(k, g)| g * far[n - k])
                    .sum()
            })
            .collect()
    }

    /// The microphone: echo of the far end + the member + noise.
    pub fn microphone(&self, s: &Signals) -> Vec<f32> {
        let mut rng = Rng(7);
        let amp = self.noise * 3f32.sqrt();
        self.echo(&s.far)
            .into_iter()
            .zip(&s.near)
            .map(|(e, n)| e + n + amp * rng.uniform())
            .collect()
    }
}

/// What the speaker plays (`far`) and what the member says (`near`, zero while silent), same
/// length, 48 kHz mono, a whole number of 10 ms blocks.
#[derive(Debug, Clone)]
pub struct Signals {
    pub far: Vec<f32>,
    pub near: Vec<f32>,
    /// Sample where the member starts talking (`near.len()` if never).
    pub near_start: usize,
}

impl Signals {
    /// JARVIS talks for `secs` seconds (recorded prompts back to back); nobody else does.
    pub fn far_only(secs: f32) -> Signals {
        let len = block_len(secs);
        Signals {
            far: speech(
                &[
                    PromptSound::BudgetReached,
                    PromptSound::ConnectionLost,
                    PromptSound::Unavailable,
                ],
                len,
            ),
            near: vec![0.0; len],
            near_start: len,
        }
    }

    /// JARVIS talks for `secs` seconds and the member talks over it from `near_from` seconds.
    pub fn double_talk(secs: f32, near_from: f32) -> Signals {
        let mut s = Signals::far_only(secs);
        let start = block_len(near_from).min(s.near.len());
        let clip = PromptSet::load(None).0.get(PromptSound::FrontDesk);
        for (o, v) in s.near[start..].iter_mut().zip(clip.iter()) {
            *o = 0.6 * v;
        }
        s.near_start = start;
        s
    }
}

fn block_len(secs: f32) -> usize {
    (secs * SAMPLE_RATE as f32) as usize / BLOCK_SAMPLES * BLOCK_SAMPLES
}

fn speech(clips: &[PromptSound], len: usize) -> Vec<f32> {
    let prompts = PromptSet::load(None).0;
    let all: Vec<f32> = clips
        .iter()
        .flat_map(|&c| prompts.get(c).iter().copied().collect::<Vec<_>>())
        .collect();
    all.iter().copied().cycle().take(len).collect()
}

/// Median echo return loss enhancement, in dB, over the 10 ms blocks after `skip_secs` where
/// the echo is audible (above -50 dBFS): echo energy in, what is left of it out.
pub fn median_erle_db(echo: &[f32], out: &[f32], skip_secs: f32) -> f32 {
    let skip = block_len(skip_secs) / BLOCK_SAMPLES;
    let mut erle: Vec<f32> = echo
        .chunks_exact(BLOCK_SAMPLES)
        .zip(out.chunks_exact(BLOCK_SAMPLES))
        .skip(skip)
        .filter(|(e, _)| energy(e) > 1e-5)
        .map(|(e, o)| 10.0 * (energy(e) / energy(o).max(1e-12)).log10())
        .collect();
    if erle.is_empty() {
        return 0.0;
    }
    erle.sort_by(f32::total_cmp);
    erle[erle.len() / 2]
}

/// Largest normalised correlation between `out` and the member's clean voice, over the
/// double-talk stretch and output delays of 0-20 ms (the canceller delays its output).
pub fn near_end_correlation(s: &Signals, out: &[f32]) -> f32 {
    let max_lag = SAMPLE_RATE as usize / 50;
    let end = s.near.len().min(out.len()).saturating_sub(max_lag);
    if end <= s.near_start {
        return 0.0;
    }
    let near = &s.near[s.near_start..end];
    let at = |lag: usize| {
        let o = &out[s.near_start + lag..end + lag];
        let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
        for (&x, &y) in o.iter().zip(near) {
            ab += f64::from(x) * f64::from(y);
            aa += f64::from(x) * f64::from(x);
            bb += f64::from(y) * f64::from(y);
        }
        if aa == 0.0 || bb == 0.0 {
            0.0
        } else {
            (ab / (aa * bb).sqrt()) as f32
        }
    };
    // Coarse search, then refine around the best lag.
    let coarse = (0..=max_lag)
        .step_by(8)
        .max_by(|&a, &b| at(a).total_cmp(&at(b)))
        .unwrap_or(0);
    (coarse.saturating_sub(8)..=(coarse + 8).min(max_lag))
        .map(at)
        .fold(0.0, f32::max)
}

fn energy(s: &[f32]) -> f32 {
    s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32
}

/// xorshift64: deterministic noise without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn sign(&mut self) -> f32 {
        if self.next() & 1 == 0 { 1.0 } else { -1.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_impulse_response_starts_at_the_delay_with_the_direct_gain() {
        let room = Room::kiosk(100);
        let h = room.impulse_response();
        assert!(h[..4_800].iter().all(|&g| g == 0.0));
        assert_eq!(h[4_800], 0.5);
        let echo = room.echo(&[1.0, 0.0, 0.0]);
        assert_eq!(echo, vec![0.0; 3], "nothing arrives before the delay");
    }

    #[test]
    fn a_perfect_canceller_scores_high_and_keeps_the_member() {
        let room = Room::kiosk(40);
        let s = Signals::double_talk(4.0, 1.0);
        let echo = room.echo(&s.far);
        let quiet: Vec<f32> = echo.iter().map(|e| e * 0.01).collect();
        assert!((median_erle_db(&echo, &quiet, 0.0) - 40.0).abs() < 0.1);
        assert!(near_end_correlation(&s, &s.near) > 0.999);
        let mic = room.microphone(&s);
        assert!(
            near_end_correlation(&s, &mic) < 0.9,
            "the echo masks the member"
        );
    }
}
