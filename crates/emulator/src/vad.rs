//! Energy voice-activity detection on the kiosk's decoded audio, the emulator's stand-in for
//! OpenAI's `server_vad`: speech starts after `start_ms` of frames louder than the threshold and
//! stops after `silence_ms` of quieter ones.

use serde::Deserialize;

/// VAD tuning (the `[vad]` table of a scenario).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadConfig {
    /// Frame RMS level, in dB relative to full scale, above which a frame counts as voiced.
    pub threshold_dbfs: f32,
    /// Voiced time needed to declare speech started.
    pub start_ms: u32,
    /// Unvoiced time needed to declare speech stopped (OpenAI's `silence_duration_ms`).
    pub silence_ms: u32,
    /// How far before the first voiced frame `audio_start_ms` points (`prefix_padding_ms`).
    pub prefix_padding_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold_dbfs: -45.0,
            start_ms: 60,
            silence_ms: 500,
            prefix_padding_ms: 300,
        }
    }
}

impl VadConfig {
    /// Rejects settings that could never trigger or never stop.
    pub fn validate(&self) -> Result<(), String> {
        if !(-120.0..=0.0).contains(&self.threshold_dbfs) {
            return Err(format!(
                "threshold_dbfs must be in -120..=0, got {}",
                self.threshold_dbfs
            ));
        }
        if self.start_ms == 0 || self.silence_ms == 0 {
            return Err("start_ms and silence_ms must be > 0".into());
        }
        Ok(())
    }
}

/// A turn boundary found in the audio. Times count from the first frame pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began (minus the prefix padding).
    SpeechStarted {
        /// Start of the speech in the input stream, in ms.
        audio_start_ms: u64,
    },
    /// Speech ended.
    SpeechStopped {
        /// End of the speech (first silent frame) in ms.
        audio_end_ms: u64,
    },
}

/// The detector; feed it every decoded frame in order.
#[derive(Debug, Clone)]
pub struct Vad {
    config: VadConfig,
    speaking: bool,
    /// Start of the current run of frames that disagree with `speaking`.
    run_start_ms: Option<u64>,
    audio_ms: u64,
}

/// RMS level of 16-bit samples in dBFS (-inf for silence, clamped to -120).
pub fn level_dbfs(pcm: &[i16]) -> f32 {
    if pcm.is_empty() {
        return -120.0;
    }
    let sum: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / pcm.len() as f64).sqrt() / 32768.0;
    if rms <= 1e-6 {
        -120.0
    } else {
        (20.0 * rms.log10()) as f32
    }
}

impl Vad {
    /// A detector in the silent state.
    pub fn new(config: VadConfig) -> Self {
        Self {
            config,
            speaking: false,
            run_start_ms: None,
            audio_ms: 0,
        }
    }

    /// Whether speech is in progress.
    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// Pushes one frame of mono samples at `sample_rate` and returns a boundary if one is crossed.
    pub fn push(&mut self, pcm: &[i16], sample_rate: u32) -> Option<VadEvent> {
        let frame_ms = (pcm.len() as u64 * 1000) / u64::from(sample_rate.max(1));
        let at = self.audio_ms;
        self.audio_ms += frame_ms;
        let voiced = level_dbfs(pcm) > self.config.threshold_dbfs;
        if voiced == self.speaking {
            self.run_start_ms = None;
            return None;
        }
        let run_start = *self.run_start_ms.get_or_insert(at);
        let run = self.audio_ms - run_start;
        let needed = if self.speaking {
            self.config.silence_ms
        } else {
            self.config.start_ms
        };
        if run < u64::from(needed) {
            return None;
        }
        self.run_start_ms = None;
        self.speaking = voiced;
        Some(if voiced {
            VadEvent::SpeechStarted {
                audio_start_ms: run_start.saturating_sub(u64::from(self.config.prefix_padding_ms)),
            }
        } else {
            VadEvent::SpeechStopped {
                audio_end_ms: run_start,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RATE: u32 = 48_000;

    fn tone(amplitude: f32) -> Vec<i16> {
        (0..960)
            .map(|i| ((i as f32 / 48.0 * 0.44 * std::f32::consts::TAU).sin() * amplitude) as i16)
            .collect()
    }

    fn run(vad: &mut Vad, frames: &[Vec<i16>]) -> Vec<VadEvent> {
        frames.iter().filter_map(|f| vad.push(f, RATE)).collect()
    }

    #[test]
    fn levels() {
        assert_eq!(level_dbfs(&[]), -120.0);
        assert_eq!(level_dbfs(&[0; 960]), -120.0);
        let full = level_dbfs(&[i16::MAX; 960]);
        assert!(full > -0.1 && full <= 0.0, "{full}");
        let quiet = level_dbfs(&tone(100.0));
        assert!(quiet < -45.0, "{quiet}");
        let loud = level_dbfs(&tone(8000.0));
        assert!(loud > -20.0, "{loud}");
    }

    #[test]
    fn speech_then_silence_gives_one_turn() {
        let mut vad = Vad::new(VadConfig::default());
        let mut frames = vec![vec![0i16; 960]; 25]; // 500 ms silence
        frames.extend(std::iter::repeat_n(tone(8000.0), 50)); // 1 s speech
        frames.extend(std::iter::repeat_n(vec![0i16; 960], 30)); // 600 ms silence
        assert_eq!(
            run(&mut vad, &frames),
            vec![
                VadEvent::SpeechStarted {
                    audio_start_ms: 200
                },
                VadEvent::SpeechStopped { audio_end_ms: 1500 },
            ]
        );
        assert!(!vad.speaking());
    }

    #[test]
    fn short_blips_and_short_pauses_are_ignored() {
        let mut vad = Vad::new(VadConfig::default());
        let mut frames = vec![tone(8000.0); 2]; // 40 ms blip < start_ms
        frames.extend(std::iter::repeat_n(vec![0i16; 960], 10));
        assert!(run(&mut vad, &frames).is_empty());
        let mut frames = vec![tone(8000.0); 10];
        frames.extend(std::iter::repeat_n(vec![0i16; 960], 20)); // 400 ms pause < silence_ms
        frames.extend(std::iter::repeat_n(tone(8000.0), 10));
        let ev = run(&mut vad, &frames);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(vad.speaking());
    }

    #[test]
    fn quiet_noise_never_starts_speech() {
        let mut vad = Vad::new(VadConfig::default());
        assert!(run(&mut vad, &vec![tone(50.0); 200]).is_empty());
    }

    #[test]
    fn config_validation() {
        assert!(VadConfig::default().validate().is_ok());
        for bad in [
            VadConfig {
                threshold_dbfs: 3.0,
                ..VadConfig::default()
            },
            VadConfig {
                start_ms: 0,
                ..VadConfig::default()
            },
            VadConfig {
                silence_ms: 0,
                ..VadConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn events_alternate_and_times_increase(voiced in proptest::collection::vec(any::<bool>(), 0..300)) {
            let mut vad = Vad::new(VadConfig::default());
            let frames: Vec<_> = voiced.iter().map(|&v| if v { tone(8000.0) } else { vec![0; 960] }).collect();
            let events = run(&mut vad, &frames);
            let mut last = 0u64;
            for (i, e) in events.iter().enumerate() {
                match *e {
                    VadEvent::SpeechStarted { audio_start_ms } => {
                        prop_assert_eq!(i % 2, 0);
                        prop_assert!(audio_start_ms + 300 >= last);
                        last = audio_start_ms;
                    }
                    VadEvent::SpeechStopped { audio_end_ms } => {
                        prop_assert_eq!(i % 2, 1);
                        prop_assert!(audio_end_ms >= last);
                        last = audio_end_ms;
                    }
                }
            }
        }
    }
}
