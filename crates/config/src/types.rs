//! The config file's shape: one struct per `[section]`, each with the defaults a fresh install
//! runs on. Serde reads these from TOML and the environment, so a field's name is its key and
//! `deny_unknown_fields` turns a typo into an error rather than a silently ignored setting.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::secrets::SecretPath;
use jarvis_core::badge::frame::{Charset, Framing, LeadingZeros, LetterCase};
use jarvis_core::metering::ModelPricing;
use jarvis_core::money::UsdAmount;
use jarvis_core::session::{ScanDuringSession, Settings, UnknownMember};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kiosk: KioskConfig,
    pub log: LogConfig,
    pub badge: BadgeConfig,
    pub audio: AudioConfig,
    pub openai: OpenAiConfig,
    pub session: SessionConfig,
    /// Prices per model, on top of the shipped defaults (see `metering`).
    pub pricing: BTreeMap<String, ModelPricing>,
    pub storage: StorageConfig,
    pub central: CentralConfig,
    pub health: HealthConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KioskConfig {
    /// This kiosk's id, as in the central `kiosks` table. Required.
    pub id: String,
    /// The gym's IANA time zone (`Europe/Paris`): its midnight resets the daily budget.
    /// Unset = the system's zone.
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `jarvis_kiosk=debug`.
    pub level: String,
    /// Log transcripts of what members and JARVIS say. Off by default (privacy).
    pub transcripts: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            transcripts: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadgeSource {
    Serial,
    Hid,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BadgeConfig {
    pub source: BadgeSource,
    pub serial: SerialConfig,
    pub hid: HidConfig,
    pub framing: Framing,
    /// Frame length for `framing = "fixed"`.
    pub fixed_len: usize,
    pub strip_prefix: String,
    pub strip_suffix: String,
    pub charset: Charset,
    pub case: LetterCase,
    pub leading_zeros: LeadingZeros,
    pub min_len: usize,
    pub max_len: usize,
    /// The same badge within this many seconds is one scan.
    pub debounce_s: u64,
    pub on_scan_during_session: ScanDuringSession,
    /// Sessions one badge may start per rolling hour.
    pub max_sessions_per_hour: u32,
    pub unknown_member: UnknownMember,
    /// Per-fleet key for HMAC-SHA256 of unknown badges (never stored raw).
    pub hash_key_file: Option<SecretPath>,
    pub member_cache_ttl_s: u64,
    pub member_cache_max: usize,
    /// How long the member directory (central) may take before the local cache answers.
    pub lookup_timeout_ms: u64,
}

impl Default for BadgeConfig {
    fn default() -> Self {
        let core = Settings::default();
        BadgeConfig {
            source: BadgeSource::Serial,
            serial: SerialConfig::default(),
            hid: HidConfig::default(),
            framing: Framing::Line,
            fixed_len: 10,
            strip_prefix: String::new(),
            strip_suffix: String::new(),
            charset: Charset::Alphanumeric,
            case: LetterCase::Upper,
            leading_zeros: LeadingZeros::Keep,
            min_len: 4,
            max_len: 32,
            debounce_s: core.debounce_ms / 1000,
            on_scan_during_session: core.on_scan_during_session,
            max_sessions_per_hour: core.max_sessions_per_hour,
            unknown_member: core.unknown_member,
            hash_key_file: None,
            member_cache_ttl_s: 7 * 24 * 3600,
            member_cache_max: 10_000,
            lookup_timeout_ms: 800,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SerialConfig {
    /// Prefer `/dev/serial/by-id/...` or the udev symlink `/dev/jarvis-scanner`.
    pub path: PathBuf,
    pub baud: u32,
    pub parity: Parity,
    pub stop_bits: u8,
    pub data_bits: u8,
}

impl Default for SerialConfig {
    fn default() -> Self {
        SerialConfig {
            path: PathBuf::from("/dev/jarvis-scanner"),
            baud: 9600,
            parity: Parity::None,
            stop_bits: 1,
            data_bits: 8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyboardLayout {
    Us,
    Fr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HidConfig {
    /// Device name substring or `/dev/input/by-id/...` path.
    pub device: String,
    pub layout: KeyboardLayout,
}

impl Default for HidConfig {
    fn default() -> Self {
        HidConfig {
            device: String::new(),
            layout: KeyboardLayout::Us,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleFormat {
    I16,
    F32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EchoControl {
    /// Nothing: for a headset, or a speaker the microphone cannot hear.
    Off,
    /// Replace microphone frames with silence while JARVIS is audible: the fallback for
    /// hardware where echo cancellation cannot converge; the member cannot interrupt JARVIS.
    HalfDuplex,
    /// Acoustic echo cancellation (WebRTC's AEC3, with noise suppression) fed with what the
    /// speaker plays: the member can talk over JARVIS. The default.
    Aec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    /// Substring of the device name, or `default`.
    pub input_device: String,
    pub output_device: String,
    pub input_sample_rate: Option<u32>,
    pub input_channels: Option<u16>,
    pub input_format: Option<SampleFormat>,
    pub output_sample_rate: Option<u32>,
    pub output_channels: Option<u16>,
    /// Fixed device period in frames; unset: 10 ms where the device accepts it, else the
    /// device's own choice.
    pub period_frames: Option<u32>,
    pub echo_control: EchoControl,
    /// How long the microphone stays gated after JARVIS stops speaking.
    pub half_duplex_tail_ms: u64,
    /// Directory whose files override the embedded prompts (same file names).
    pub prompts_dir: Option<PathBuf>,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            input_device: "default".into(),
            output_device: "default".into(),
            input_sample_rate: None,
            input_channels: None,
            input_format: None,
            output_sample_rate: None,
            output_channels: None,
            period_frames: None,
            echo_control: EchoControl::Aec,
            half_duplex_tail_ms: 300,
            prompts_dir: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnDetectionMode {
    SemanticVad,
    ServerVad,
}

/// Which OpenAI voice API the kiosk talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoiceApi {
    /// The Realtime API: per-token billing, ephemeral keys, server VAD.
    #[default]
    Realtime,
    /// GPT-Live: full duplex, billed per second; sessions need the org key, so a kiosk goes
    /// through the broker's relay (or a key file, for development).
    Live,
}

/// GPT-Live settings, used with `openai.api = "live"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    pub model: String,
    pub voice: String,
    /// The Responses model the voice delegates to (it runs the `end_session` tool).
    pub delegation_model: String,
    /// Instructions template for the delegation model; default: built-in text.
    pub delegation_instructions_file: Option<PathBuf>,
    /// The broker's Live relay: the kiosk posts its offer there with its bearer credential
    /// (`openai.token_credential_file`) and holds no OpenAI key.
    pub relay_url: Option<String>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            model: "gpt-live-1.1".into(),
            voice: "marin".into(),
            delegation_model: "gpt-5-mini".into(),
            delegation_instructions_file: None,
            relay_url: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiConfig {
    /// `realtime` or `live`.
    pub api: VoiceApi,
    pub base_url: String,
    /// File holding the OpenAI API key. Exactly one of this and `token_url`.
    pub api_key_file: Option<SecretPath>,
    /// Token broker minting ephemeral keys for this kiosk.
    pub token_url: Option<String>,
    /// File holding the kiosk's bearer credential for `token_url`.
    pub token_credential_file: Option<SecretPath>,
    pub model: String,
    pub voice: String,
    /// Instructions template; `{first_name}`, `{language}`, `{membership}` are filled in.
    pub instructions_file: Option<PathBuf>,
    pub turn_detection: TurnDetectionMode,
    pub transcription_model: String,
    /// Transcript phrases that end the session if the model does not call `end_session`.
    pub goodbye_phrases: Vec<String>,
    pub connect_timeout_s: u64,
    /// How long ICE may stay disconnected (a network hiccup) before the call counts as lost.
    pub ice_disconnect_grace_s: u64,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before a half-open probe.
    pub breaker_open_s: u64,
    pub live: LiveConfig,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        let core = Settings::default();
        OpenAiConfig {
            api: VoiceApi::Realtime,
            base_url: "https://api.openai.com/v1".into(),
            api_key_file: None,
            token_url: None,
            token_credential_file: None,
            model: core.model,
            voice: "marin".into(),
            instructions_file: None,
            turn_detection: TurnDetectionMode::SemanticVad,
            transcription_model: core.transcription_model,
            goodbye_phrases: core.goodbye_phrases,
            connect_timeout_s: core.connect_timeout_ms / 1000,
            ice_disconnect_grace_s: 5,
            breaker_failures: 3,
            breaker_open_s: 60,
            live: LiveConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    pub max_duration_s: u64,
    pub idle_timeout_s: u64,
    pub max_cost_usd: UsdAmount,
    pub daily_budget_usd: UsdAmount,
    /// Pause after a session before the next scan is accepted.
    pub cooldown_s: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        let core = Settings::default();
        SessionConfig {
            max_duration_s: core.max_duration_ms / 1000,
            idle_timeout_s: core.idle_timeout_ms / 1000,
            max_cost_usd: UsdAmount(core.max_cost),
            daily_budget_usd: UsdAmount(core.daily_budget),
            cooldown_s: core.cooldown_ms / 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub path: PathBuf,
    /// Size bound of the local buffer; least important events are dropped first.
    pub max_bytes: u64,
    /// Synced events older than this are pruned.
    pub retention_days: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("/var/lib/jarvis-kiosk/kiosk.db"),
            max_bytes: 256 * 1024 * 1024,
            retention_days: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CentralConfig {
    /// Postgres URL without password; absent = buffer locally only.
    pub url: Option<String>,
    pub password_file: Option<SecretPath>,
    /// PEM file of the CA that signed the server's certificate (default: system roots).
    pub ca_file: Option<PathBuf>,
    pub heartbeat_s: u64,
    pub batch_max_events: usize,
    pub batch_max_ms: u64,
}

impl Default for CentralConfig {
    fn default() -> Self {
        CentralConfig {
            url: None,
            password_file: None,
            ca_file: None,
            heartbeat_s: 60,
            batch_max_events: 500,
            batch_max_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Holds `status.sock`, through which `status` reads the running daemon.
    pub runtime_dir: PathBuf,
    /// `127.0.0.1:PORT` for `/healthz` and `/metrics`; absent = no endpoint.
    pub listen: Option<String>,
}

impl HealthConfig {
    /// The endpoint's address; `None` when absent (validation has refused a bad one).
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            runtime_dir: PathBuf::from("/run/jarvis-kiosk"),
            listen: None,
        }
    }
}
