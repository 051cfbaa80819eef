//! Fixed prompts played locally (no network needed): a chime when a badge is accepted, an error
//! tone, and French messages for when JARVIS cannot talk. The WAV files in `assets/prompts/`
//! (made by `scripts/make-prompts.sh`) are embedded in the binary; a file of the same name in
//! `audio.prompts_dir` replaces one (a gym can record its own voice).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use super::SAMPLE_RATE;
use super::resample::resample_clip;
use super::wav;

/// A prompt the lead can ask playback to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromptSound {
    /// Short rising chime: the badge was read and a session is starting.
    BadgeAccepted,
    /// Short falling tone: something went wrong (unreadable badge, refused scan).
    Error,
    /// "JARVIS est indisponible, merci de vous adresser à l'accueil"
    Unavailable,
    /// "Merci de vous adresser à l'accueil"
    FrontDesk,
    /// "Le budget du jour est atteint, merci de réessayer demain"
    BudgetReached,
    /// "Désolé, la connexion a été perdue. Au revoir."
    ConnectionLost,
}

impl PromptSound {
    /// Every prompt, in a stable order.
    pub const ALL: [PromptSound; 6] = [
        PromptSound::BadgeAccepted,
        PromptSound::Error,
        PromptSound::Unavailable,
        PromptSound::FrontDesk,
        PromptSound::BudgetReached,
        PromptSound::ConnectionLost,
    ];

    /// File name in `assets/prompts/` and in `audio.prompts_dir`.
    pub fn file_name(self) -> &'static str {
        match self {
            PromptSound::BadgeAccepted => "badge_accepted.wav",
            PromptSound::Error => "error.wav",
            PromptSound::Unavailable => "unavailable.wav",
            PromptSound::FrontDesk => "front_desk.wav",
            PromptSound::BudgetReached => "budget_reached.wav",
            PromptSound::ConnectionLost => "connection_lost.wav",
        }
    }

    fn embedded(self) -> &'static [u8] {
        match self {
            PromptSound::BadgeAccepted => {
                include_bytes!("../../../assets/prompts/badge_accepted.wav")
            }
            PromptSound::Error => include_bytes!("../../../assets/prompts/error.wav"),
            PromptSound::Unavailable => include_bytes!("../../../assets/prompts/unavailable.wav"),
            PromptSound::FrontDesk => include_bytes!("../../../assets/prompts/front_desk.wav"),
            PromptSound::BudgetReached => {
                include_bytes!("../../../assets/prompts/budget_reached.wav")
            }
            PromptSound::ConnectionLost => {
                include_bytes!("../../../assets/prompts/connection_lost.wav")
            }
        }
    }

    fn index(self) -> usize {
        PromptSound::ALL
            .iter()
            .position(|p| *p == self)
            .unwrap_or(0)
    }
}

/// An override in `audio.prompts_dir` could not be used (the embedded prompt is used instead).
#[derive(Debug, Error)]
pub enum PromptError {
    #[error("cannot read prompt {path}: {source} (check audio.prompts_dir)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "prompt {path} is not a usable WAV file: {source} (regenerate it or remove it from audio.prompts_dir)"
    )]
    Format {
        path: PathBuf,
        source: wav::WavError,
    },
    #[error("prompt {path}: {reason}")]
    Resample { path: PathBuf, reason: String },
}

/// All prompts decoded and resampled to 48 kHz mono, ready to mix into playback.
#[derive(Debug, Clone)]
pub struct PromptSet {
    clips: Vec<Arc<[f32]>>,
}

impl PromptSet {
    /// Loads the embedded prompts, replaced by same-named files in `dir` where present. A bad
    /// override is reported and the embedded prompt kept, so a typo never silences the kiosk.
    pub fn load(dir: Option<&Path>) -> (PromptSet, Vec<PromptError>) {
        let mut errors = Vec::new();
        let clips = PromptSound::ALL
            .iter()
            .map(|p| {
                let over = dir
                    .map(|d| d.join(p.file_name()))
                    .filter(|path| path.exists());
                if let Some(path) = over {
                    match load_file(&path) {
                        Ok(c) => return c,
                        Err(e) => errors.push(e),
                    }
                }
                decode(p.embedded()).unwrap_or_else(|_| Arc::from(Vec::new()))
            })
            .collect();
        (PromptSet { clips }, errors)
    }

    /// The prompt's samples (48 kHz mono).
    pub fn get(&self, prompt: PromptSound) -> Arc<[f32]> {
        self.clips
            .get(prompt.index())
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }
}

fn decode(bytes: &[u8]) -> Result<Arc<[f32]>, String> {
    let w = wav::decode_mono_f32(bytes).map_err(|e| e.to_string())?;
    resample_clip(&w.samples, w.sample_rate, SAMPLE_RATE)
        .map(Arc::from)
        .map_err(|e| e.to_string())
}

fn load_file(path: &Path) -> Result<Arc<[f32]>, PromptError> {
    let bytes = std::fs::read(path).map_err(|source| PromptError::Read {
        path: path.to_owned(),
        source,
    })?;
    let w = wav::decode_mono_f32(&bytes).map_err(|source| PromptError::Format {
        path: path.to_owned(),
        source,
    })?;
    resample_clip(&w.samples, w.sample_rate, SAMPLE_RATE)
        .map(Arc::from)
        .map_err(|e| PromptError::Resample {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(s: &[f32]) -> f32 {
        (s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32).sqrt()
    }

    #[test]
    fn embedded_prompts_decode_to_audible_48k_clips() {
        let (set, errors) = PromptSet::load(None);
        assert!(errors.is_empty());
        for p in PromptSound::ALL {
            let clip = set.get(p);
            let secs = clip.len() as f32 / 48_000.0;
            assert!((0.2..6.0).contains(&secs), "{p:?} lasts {secs} s");
            assert!(rms(&clip) > 0.02, "{p:?} is audible");
            assert!(p.embedded().len() < 160_000, "{p:?} stays small");
        }
        let speech = set.get(PromptSound::Unavailable).len();
        assert!(speech > 2 * 48_000, "the spoken message is a sentence");
    }

    #[test]
    fn overrides_replace_and_bad_overrides_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(dir.path().join("error.wav"), spec).unwrap();
        for _ in 0..8_000 {
            w.write_sample(16_384i16).unwrap();
        }
        w.finalize().unwrap();
        std::fs::write(dir.path().join("front_desk.wav"), b"not a wav").unwrap();
        let (set, errors) = PromptSet::load(Some(dir.path()));
        assert_eq!(
            set.get(PromptSound::Error).len(),
            48_000,
            "1 s override at 8 kHz"
        );
        assert_eq!(errors.len(), 1);
        let msg = errors[0].to_string();
        assert!(
            msg.contains("front_desk.wav")
                && msg.contains("no RIFF tag")
                && msg.contains("audio.prompts_dir"),
            "{msg}"
        );
        assert!(
            set.get(PromptSound::FrontDesk).len() > 48_000,
            "embedded kept"
        );
    }
}
