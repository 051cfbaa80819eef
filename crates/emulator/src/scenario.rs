//! The scripted conversation the emulator replays, read from a TOML file.
//!
//! ```toml
//! trigger = "vad"                 # "vad" (default: energy VAD on the kiosk's audio) or "timer"
//! continuous_audio = false        # true: send a packet every 20 ms all the call long, Opus
//!                                 # silence between replies, RTP marker bit on every packet (as
//!                                 # Pion-based servers and browsers do); false: only during replies
//! [vad]                           # optional; defaults shown
//! threshold_dbfs = -45.0
//! start_ms = 60
//! silence_ms = 500
//! [[turns]]
//! after_ms = 300                  # timer trigger: start this long after the previous turn
//! user_transcript = "Bonjour JARVIS"
//! reply_transcript = "Bonjour ! Comment puis-je vous aider ?"
//! reply_audio = { tone_hz = 440.0, ms = 600 }   # or { wav = "reply.wav" } (relative to this file)
//! usage = { input_text = 120, input_audio = 30, cached_text = 64, output_text = 20, output_audio = 80 }
//! transcription_usage = { input = 30, output = 8 }  # or { seconds = 1.5 }
//! end_session = "user_said_goodbye"   # optional: the model calls end_session with this reason
//! [greeting]                      # optional: the reply to a response.create before any turn
//! transcript = "Bonjour Marie !"
//! audio = { tone_hz = 500.0, ms = 300 }
//! [live]                          # GPT-Live sessions only; defaults shown
//! usage_interval_ms = 60000       # session.usage.updated period
//! start_delay_ms = 50             # channel open -> session.started
//! max_duration_s = 7200           # expires_at after creation
//! [goodbye]                       # the reply to function_call_output + response.create
//! transcript = "À bientôt !"
//! audio = { tone_hz = 330.0, ms = 400 }
//! usage = { input_text = 200, output_audio = 40 }
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

use super::vad::VadConfig;

/// What starts a member turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The energy VAD detects speech then silence in the kiosk's audio (the real behaviour).
    #[default]
    Vad,
    /// Each turn starts `after_ms` after the previous one ended (tests without a microphone).
    Timer,
}

/// Audio the emulator speaks, sent as 20 ms Opus frames.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum AudioSpec {
    /// A sine tone.
    Tone {
        /// Frequency in Hz.
        tone_hz: f32,
        /// Duration in milliseconds.
        ms: u32,
    },
    /// A 16-bit PCM WAV file (any rate, mono or stereo), resolved against the scenario's folder.
    Wav {
        /// Path to the file.
        wav: PathBuf,
    },
}

/// Token counts reported in one `response.done`; cached counts are part of the input counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Usage {
    /// Input text tokens (cached included).
    pub input_text: u64,
    /// Input audio tokens (cached included).
    pub input_audio: u64,
    /// Cached input text tokens.
    pub cached_text: u64,
    /// Cached input audio tokens.
    pub cached_audio: u64,
    /// Output text tokens.
    pub output_text: u64,
    /// Output audio tokens.
    pub output_audio: u64,
}

impl Usage {
    /// The GA `response.usage` object.
    pub fn to_json(&self) -> Value {
        let input = self.input_text + self.input_audio;
        let output = self.output_text + self.output_audio;
        json!({
            "total_tokens": input + output,
            "input_tokens": input,
            "output_tokens": output,
            "input_token_details": {
                "text_tokens": self.input_text,
                "audio_tokens": self.input_audio,
                "image_tokens": 0,
                "cached_tokens": self.cached_text + self.cached_audio,
                "cached_tokens_details": {
                    "text_tokens": self.cached_text,
                    "audio_tokens": self.cached_audio,
                    "image_tokens": 0
                }
            },
            "output_token_details": {
                "text_tokens": self.output_text,
                "audio_tokens": self.output_audio
            }
        })
    }
}

/// Usage of the input transcription (billed separately from the response).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum TranscriptionUsage {
    /// Token-billed ASR (`gpt-4o-*-transcribe`).
    Tokens {
        /// Audio input tokens.
        input: u64,
        /// Text output tokens.
        output: u64,
    },
    /// Duration-billed ASR (`whisper-1`).
    Duration {
        /// Seconds of audio.
        seconds: f64,
    },
}

impl TranscriptionUsage {
    /// The GA `usage` object of `conversation.item.input_audio_transcription.completed`.
    pub fn to_json(&self) -> Value {
        match *self {
            Self::Tokens { input, output } => json!({
                "type": "tokens",
                "total_tokens": input + output,
                "input_tokens": input,
                "input_token_details": { "text_tokens": 0, "audio_tokens": input },
                "output_tokens": output
            }),
            Self::Duration { seconds } => json!({ "type": "duration", "seconds": seconds }),
        }
    }
}

/// One member turn and the model's reply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// Timer trigger: delay after the previous turn's audio ended (or the channel opened).
    #[serde(default)]
    pub after_ms: u32,
    /// What the member "said".
    pub user_transcript: String,
    /// What the model answers.
    pub reply_transcript: String,
    /// The reply's audio.
    pub reply_audio: AudioSpec,
    /// `response.done` usage.
    #[serde(default)]
    pub usage: Usage,
    /// Usage of the transcription of the member's audio.
    #[serde(default)]
    pub transcription_usage: Option<TranscriptionUsage>,
    /// If set, the reply also calls `end_session` with this reason.
    #[serde(default)]
    pub end_session: Option<String>,
}

/// A reply to a client `response.create` (the greeting, or the goodbye after `end_session`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// What the model says.
    pub transcript: String,
    /// Its audio.
    pub audio: AudioSpec,
    /// `response.done` usage.
    #[serde(default)]
    pub usage: Usage,
}

/// A whole scripted session.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What starts member turns.
    #[serde(default)]
    pub trigger: Trigger,
    /// Model reported in `session.created`.
    #[serde(default = "default_model")]
    pub model: String,
    /// Voice reported in `session.created`.
    #[serde(default = "default_voice")]
    pub voice: String,
    /// VAD tuning.
    #[serde(default)]
    pub vad: VadConfig,
    /// Stream audio all the call long (Opus silence between replies, marker bit on every
    /// packet), as OpenAI's Pion-based servers do; `false` sends packets only during replies.
    /// With `trigger = "vad"` the member can interrupt a reply (barge-in) either way.
    #[serde(default)]
    pub continuous_audio: bool,
    /// The member turns, in order.
    pub turns: Vec<Turn>,
    /// GPT-Live timing (`[live]`).
    #[serde(default)]
    pub live: crate::live::LiveTiming,
    /// The reply to the first `response.create` before any turn (the kiosk's greeting).
    #[serde(default)]
    pub greeting: Option<Reply>,
    /// The reply to `function_call_output` + `response.create` after `end_session`.
    #[serde(default)]
    pub goodbye: Option<Reply>,
    /// Folder that relative WAV paths are resolved against (the scenario file's folder).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

fn default_model() -> String {
    "gpt-realtime".into()
}

fn default_voice() -> String {
    "marin".into()
}

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// TOML syntax or shape error.
    #[error("scenario {path} is invalid: {message}")]
    Invalid {
        /// The file (or `<inline>`).
        path: PathBuf,
        /// What is wrong, with the key.
        message: String,
    },
}

impl Scenario {
    /// Parses and validates a scenario; `base_dir` resolves relative WAV paths.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Self, ScenarioError> {
        let invalid = |message: String| ScenarioError::Invalid {
            path: base_dir.to_path_buf(),
            message,
        };
        let mut s: Scenario = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        s.base_dir = base_dir.to_path_buf();
        s.validate().map_err(invalid)?;
        Ok(s)
    }

    /// Reads a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, dir).map_err(|e| match e {
            ScenarioError::Invalid { message, .. } => ScenarioError::Invalid {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    fn validate(&self) -> Result<(), String> {
        if self.turns.is_empty() {
            return Err("`turns` is empty: add at least one [[turns]] table".into());
        }
        let audios = self
            .turns
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("turns[{i}].reply_audio"), &t.reply_audio))
            .chain(
                self.greeting
                    .iter()
                    .map(|g| ("greeting.audio".to_string(), &g.audio)),
            )
            .chain(
                self.goodbye
                    .iter()
                    .map(|g| ("goodbye.audio".to_string(), &g.audio)),
            );
        for (key, audio) in audios {
            if let AudioSpec::Tone { tone_hz, ms } = audio
                && (!(20.0..=20_000.0).contains(tone_hz) || *ms == 0 || *ms > 60_000)
            {
                return Err(format!(
                    "{key}: tone_hz must be 20..=20000 and ms 1..=60000, got {tone_hz} Hz / {ms} ms"
                ));
            }
        }
        let usages = self
            .turns
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("turns[{i}].usage"), &t.usage))
            .chain(
                self.greeting
                    .iter()
                    .map(|g| ("greeting.usage".to_string(), &g.usage)),
            )
            .chain(
                self.goodbye
                    .iter()
                    .map(|g| ("goodbye.usage".to_string(), &g.usage)),
            );
        for (key, u) in usages {
            if u.cached_text > u.input_text || u.cached_audio > u.input_audio {
                return Err(format!("{key}: cached tokens cannot exceed input tokens"));
            }
        }
        self.live.validate().map_err(|e| format!("live: {e}"))?;
        self.vad.validate().map_err(|e| format!("vad: {e}"))
    }

    /// Resolves an audio spec's path against the scenario folder.
    pub fn resolve(&self, audio: &AudioSpec) -> AudioSpec {
        match audio {
            AudioSpec::Wav { wav } if wav.is_relative() => AudioSpec::Wav {
                wav: self.base_dir.join(wav),
            },
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[turns]]
user_transcript = "Bonjour"
reply_transcript = "Salut"
reply_audio = { tone_hz = 440.0, ms = 200 }
"#;

    #[test]
    fn minimal_scenario_gets_defaults() {
        let s = Scenario::from_toml(MINIMAL, Path::new("/x")).unwrap();
        assert_eq!(s.trigger, Trigger::Vad);
        assert_eq!(s.model, "gpt-realtime");
        assert_eq!(s.turns[0].usage, Usage::default());
        assert_eq!(s.turns[0].end_session, None);
        assert!(s.goodbye.is_none());
        assert!(
            !s.continuous_audio,
            "packets only during replies unless asked"
        );
    }

    #[test]
    fn full_scenario_parses() {
        let text = r#"
trigger = "timer"
voice = "cedar"
continuous_audio = true
[vad]
threshold_dbfs = -30.0
[[turns]]
after_ms = 100
user_transcript = "Au revoir"
reply_transcript = "Bye"
reply_audio = { wav = "bye.wav" }
usage = { input_text = 10, cached_text = 4, output_audio = 7 }
transcription_usage = { seconds = 1.5 }
end_session = "user_said_goodbye"
[goodbye]
transcript = "Ciao"
audio = { tone_hz = 300.0, ms = 100 }
"#;
        let s = Scenario::from_toml(text, Path::new("/scen")).unwrap();
        assert_eq!(s.trigger, Trigger::Timer);
        assert!(s.continuous_audio);
        assert_eq!(s.vad.threshold_dbfs, -30.0);
        assert_eq!(
            s.resolve(&s.turns[0].reply_audio),
            AudioSpec::Wav {
                wav: "/scen/bye.wav".into()
            }
        );
        assert_eq!(
            s.turns[0].transcription_usage,
            Some(TranscriptionUsage::Duration { seconds: 1.5 })
        );
        assert_eq!(s.turns[0].end_session.as_deref(), Some("user_said_goodbye"));
    }

    #[test]
    fn bad_scenarios_name_the_key() {
        let cases = [
            ("turns = []", "turns"),
            (
                "trigger = \"sometimes\"\n[[turns]]\nuser_transcript=\"a\"\nreply_transcript=\"b\"\nreply_audio={tone_hz=440.0,ms=1}",
                "trigger",
            ),
            (&MINIMAL.replace("440.0", "5.0"), "turns[0].reply_audio"),
            (
                &MINIMAL.replace("ms = 200", "ms = 0"),
                "turns[0].reply_audio",
            ),
            (
                &format!("{MINIMAL}usage = {{ input_text = 1, cached_text = 2 }}"),
                "cached",
            ),
            (&format!("{MINIMAL}colour = 1"), "colour"),
            (&format!("[vad]\nsilence_ms = 0\n{MINIMAL}"), "vad"),
            (
                &format!("[live]\nusage_interval_ms = 10\n{MINIMAL}"),
                "live: usage_interval_ms",
            ),
        ];
        for (text, needle) in cases {
            let err = Scenario::from_toml(text, Path::new("/x"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn usage_json_adds_up() {
        let u = Usage {
            input_text: 1450,
            input_audio: 220,
            cached_text: 1280,
            cached_audio: 64,
            output_text: 42,
            output_audio: 310,
        };
        let j = u.to_json();
        assert_eq!(j["total_tokens"], 2022);
        assert_eq!(j["input_tokens"], 1670);
        assert_eq!(j["output_tokens"], 352);
        assert_eq!(j["input_token_details"]["cached_tokens"], 1344);
        assert_eq!(
            j["input_token_details"]["cached_tokens_details"]["audio_tokens"],
            64
        );
        let t = TranscriptionUsage::Tokens {
            input: 33,
            output: 12,
        }
        .to_json();
        assert_eq!(t["total_tokens"], 45);
        assert_eq!(t["input_token_details"]["audio_tokens"], 33);
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = Scenario::load(Path::new("/nonexistent/s.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/s.toml"), "{err}");
    }
}
