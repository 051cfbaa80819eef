//! Typed configuration: defaults, then the TOML file, then `JARVIS_KIOSK__SECTION__KEY`
//! environment variables, validated once at start-up.
//!
//! Every error names the key (`session.max_cost_usd`) and what is expected, because the person
//! reading it is a technician with a config file open, not a developer with the source.
//! Secrets never live here: only the paths of the files that hold them (`*_file` keys).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod secrets;

use crate::secrets::SecretPath;
pub use jarvis_core::badge::frame::{Charset, Framing, LeadingZeros, LetterCase};
use jarvis_core::badge::frame::{DEFAULT_IDLE_RESET, FrameKind, FrameRules};
use jarvis_core::breaker::BreakerSettings;
pub use jarvis_core::config_issue::ConfigIssue;
pub use jarvis_core::metering::ModelPricing;
use jarvis_core::money::UsdAmount;
use jarvis_core::session::{
    DEFAULT_GOODBYE_GRACE_MS, DEFAULT_HANGUP_DELAY_MS, DEFAULT_LOOKUP_TIMEOUT_MS, Settings,
};
pub use jarvis_core::session::{ScanDuringSession, UnknownMember};

/// Where the daemon looks when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/jarvis-kiosk/config.toml";
/// Prefix of environment overrides: `JARVIS_KIOSK__SESSION__MAX_DURATION_S=300`.
pub const ENV_PREFIX: &str = "JARVIS_KIOSK";

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

impl BadgeConfig {
    /// The rules for a serial scanner, straight from `[badge]`.
    pub fn frame_rules(&self) -> FrameRules {
        let framing = match self.framing {
            Framing::Line => FrameKind::Line,
            Framing::StxEtx => FrameKind::StxEtx,
            Framing::Fixed => FrameKind::Fixed(self.fixed_len.max(1)),
        };
        FrameRules {
            framing,
            strip_prefix: self.strip_prefix.clone(),
            strip_suffix: self.strip_suffix.clone(),
            charset: self.charset,
            case: self.case,
            leading_zeros: self.leading_zeros,
            min_len: self.min_len.max(1),
            max_len: self.max_len.max(self.min_len.max(1)),
            idle_reset: DEFAULT_IDLE_RESET,
        }
    }

    /// The rules for a keyboard wedge: Enter ends every frame whatever `badge.framing` says.
    pub fn keyboard_wedge_rules(&self) -> FrameRules {
        FrameRules {
            framing: FrameKind::Line,
            ..self.frame_rules()
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
    Off,
    /// Replace microphone frames with silence while JARVIS speaks.
    HalfDuplex,
    /// Acoustic echo cancellation and noise suppression (falls back to half duplex).
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
    /// Fixed cpal buffer size in frames; default lets the device choose.
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
            echo_control: EchoControl::HalfDuplex,
            half_duplex_tail_ms: 300,
            prompts_dir: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnDetection {
    SemanticVad,
    ServerVad,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiConfig {
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
    pub turn_detection: TurnDetection,
    pub transcription_model: String,
    /// Transcript phrases that end the session if the model does not call `end_session`.
    pub goodbye_phrases: Vec<String>,
    pub connect_timeout_s: u64,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before a half-open probe.
    pub breaker_open_s: u64,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        let core = Settings::default();
        OpenAiConfig {
            base_url: "https://api.openai.com/v1".into(),
            api_key_file: None,
            token_url: None,
            token_credential_file: None,
            model: core.model,
            voice: "marin".into(),
            instructions_file: None,
            turn_detection: TurnDetection::SemanticVad,
            transcription_model: core.transcription_model,
            goodbye_phrases: core.goodbye_phrases,
            connect_timeout_s: core.connect_timeout_ms / 1000,
            breaker_failures: 3,
            breaker_open_s: 60,
        }
    }
}

impl OpenAiConfig {
    /// The circuit breaker's thresholds (at least one failure).
    pub fn breaker_settings(&self) -> BreakerSettings {
        BreakerSettings {
            failures: self.breaker_failures.max(1),
            open_for: Duration::from_secs(self.breaker_open_s),
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

/// Why the configuration could not be used. Lists every problem, not just the first.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason} (pass --config PATH or create the file)")]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Parse(String),
    #[error("invalid configuration:\n{}", .0.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigIssue>),
}

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The file, and whether it was named explicitly (then it must exist).
    pub path: PathBuf,
    pub explicit: bool,
    /// Environment variables to read overrides from (the process environment in production).
    pub env: Vec<(String, String)>,
}

impl ConfigSource {
    pub fn from_process(path: Option<&Path>) -> Self {
        ConfigSource {
            path: path
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
            explicit: path.is_some(),
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with(ENV_PREFIX))
                .collect(),
        }
    }
}

impl Config {
    /// What the session core needs, in milliseconds and nano-dollars.
    pub fn session_settings(&self) -> Settings {
        let cfg = self;
        let s = &cfg.session;
        Settings {
            model: cfg.openai.model.clone(),
            transcription_model: cfg.openai.transcription_model.clone(),
            max_duration_ms: s.max_duration_s.saturating_mul(1000),
            idle_timeout_ms: s.idle_timeout_s.saturating_mul(1000),
            max_cost: s.max_cost_usd.0,
            daily_budget: s.daily_budget_usd.0,
            cooldown_ms: s.cooldown_s.saturating_mul(1000),
            debounce_ms: cfg.badge.debounce_s.saturating_mul(1000),
            max_sessions_per_hour: cfg.badge.max_sessions_per_hour,
            on_scan_during_session: cfg.badge.on_scan_during_session,
            unknown_member: cfg.badge.unknown_member,
            goodbye_phrases: cfg.openai.goodbye_phrases.clone(),
            connect_timeout_ms: cfg.openai.connect_timeout_s.saturating_mul(1000),
            lookup_timeout_ms: DEFAULT_LOOKUP_TIMEOUT_MS,
            goodbye_grace_ms: DEFAULT_GOODBYE_GRACE_MS,
            hangup_delay_ms: DEFAULT_HANGUP_DELAY_MS,
        }
    }

    /// Loads defaults, the file and the environment, then validates.
    pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
        let mut builder = ::config::Config::builder();
        if source.path.exists() {
            std::fs::File::open(&source.path).map_err(|e| ConfigError::File {
                path: source.path.clone(),
                reason: e.to_string(),
            })?;
            builder = builder.add_source(
                ::config::File::from(source.path.as_path()).format(::config::FileFormat::Toml),
            );
        } else if source.explicit {
            return Err(ConfigError::File {
                path: source.path.clone(),
                reason: "no such file".into(),
            });
        }
        let env: ::config::Map<String, String> = source.env.iter().cloned().collect();
        builder = builder.add_source(
            ::config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("openai.goodbye_phrases")
                .source(Some(env)),
        );
        let raw = builder
            .build()
            .map_err(|e| ConfigError::Parse(explain(&e.to_string())))?;
        let cfg: Config = raw
            .try_deserialize()
            .map_err(|e| ConfigError::Parse(explain(&e.to_string())))?;
        let issues = cfg.validate();
        if issues.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid(issues))
        }
    }

    /// Every semantic problem the types alone cannot catch.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut bad = |key: &str, problem: String| {
            issues.push(ConfigIssue {
                key: key.into(),
                problem,
            })
        };
        if self.kiosk.id.trim().is_empty() {
            bad(
                "kiosk.id",
                "required: this kiosk's id as in the central `kiosks` table".into(),
            );
        }
        if let Err(e) = self
            .log
            .level
            .parse::<tracing_subscriber::filter::EnvFilter>()
        {
            bad(
                "log.level",
                format!(
                    "`{}` is not a log filter ({e}); expected e.g. \"info\"",
                    self.log.level
                ),
            );
        }
        let b = &self.badge;
        if b.min_len == 0 || b.min_len > b.max_len {
            bad(
                "badge.min_len",
                format!("must be between 1 and badge.max_len ({})", b.max_len),
            );
        }
        if b.max_len > 256 {
            bad("badge.max_len", "must be at most 256".into());
        }
        if b.framing == Framing::Fixed && (b.fixed_len == 0 || b.fixed_len > 256) {
            bad(
                "badge.fixed_len",
                "must be between 1 and 256 with badge.framing = \"fixed\"".into(),
            );
        }
        if !matches!(b.serial.stop_bits, 1 | 2) {
            bad("badge.serial.stop_bits", "must be 1 or 2".into());
        }
        if !(5..=8).contains(&b.serial.data_bits) {
            bad("badge.serial.data_bits", "must be 5, 6, 7 or 8".into());
        }
        if b.serial.baud == 0 {
            bad(
                "badge.serial.baud",
                "must be a positive baud rate such as 9600".into(),
            );
        }
        if b.source == BadgeSource::Hid && b.hid.device.trim().is_empty() {
            bad(
                "badge.hid.device",
                "required with badge.source = \"hid\": a device name or /dev/input/by-id path"
                    .into(),
            );
        }
        if b.member_cache_max == 0 {
            bad("badge.member_cache_max", "must be at least 1".into());
        }
        if b.lookup_timeout_ms == 0 {
            bad(
                "badge.lookup_timeout_ms",
                "must be at least 1 millisecond, e.g. 800".into(),
            );
        }
        let a = &self.audio;
        for (key, dev) in [
            ("audio.input_device", &a.input_device),
            ("audio.output_device", &a.output_device),
        ] {
            if dev.trim().is_empty() {
                bad(key, "must be `default` or a substring of a device name (see `jarvis-kiosk devices`)".into());
            }
        }
        for (key, rate) in [
            ("audio.input_sample_rate", a.input_sample_rate),
            ("audio.output_sample_rate", a.output_sample_rate),
        ] {
            if let Some(r) = rate
                && !(8_000..=192_000).contains(&r)
            {
                bad(key, format!("{r} Hz is outside 8000..=192000"));
            }
        }
        for (key, ch) in [
            ("audio.input_channels", a.input_channels),
            ("audio.output_channels", a.output_channels),
        ] {
            if let Some(c) = ch
                && !(1..=8).contains(&c)
            {
                bad(key, format!("{c} channels is outside 1..=8"));
            }
        }
        if let Some(p) = a.period_frames
            && !(32..=16_384).contains(&p)
        {
            bad(
                "audio.period_frames",
                format!("{p} is outside 32..=16384 frames"),
            );
        }
        let o = &self.openai;
        if !(o.base_url.starts_with("https://") || o.base_url.starts_with("http://")) {
            bad(
                "openai.base_url",
                format!("`{}` is not an http(s) URL", o.base_url),
            );
        }
        match (&o.api_key_file, &o.token_url) {
            (Some(_), Some(_)) => bad(
                "openai.token_url",
                "set either openai.api_key_file or openai.token_url, not both".into(),
            ),
            (None, Some(_)) if o.token_credential_file.is_none() => bad(
                "openai.token_credential_file",
                "required with openai.token_url: the file holding this kiosk's bearer credential"
                    .into(),
            ),
            _ => {}
        }
        if o.model.trim().is_empty() {
            bad("openai.model", "required, e.g. \"gpt-realtime\"".into());
        }
        if o.voice.trim().is_empty() {
            bad("openai.voice", "required, e.g. \"marin\"".into());
        }
        if o.connect_timeout_s == 0 {
            bad(
                "openai.connect_timeout_s",
                "must be at least 1 second".into(),
            );
        }
        if o.breaker_failures == 0 {
            bad("openai.breaker_failures", "must be at least 1".into());
        }
        if o.goodbye_phrases.iter().any(|p| p.trim().is_empty()) {
            bad("openai.goodbye_phrases", "phrases must not be empty".into());
        }
        let s = &self.session;
        if s.max_duration_s == 0 {
            bad("session.max_duration_s", "must be at least 1 second".into());
        }
        if s.idle_timeout_s == 0 {
            bad("session.idle_timeout_s", "must be at least 1 second".into());
        }
        if s.max_cost_usd.0.0 == 0 {
            bad(
                "session.max_cost_usd",
                "must be more than 0, e.g. \"1.00\"".into(),
            );
        }
        if s.daily_budget_usd.0 < s.max_cost_usd.0 {
            bad(
                "session.daily_budget_usd",
                "must be at least session.max_cost_usd".into(),
            );
        }
        if self.storage.max_bytes < 1024 * 1024 {
            bad(
                "storage.max_bytes",
                "must be at least 1048576 (1 MiB)".into(),
            );
        }
        if self.storage.retention_days == 0 {
            bad("storage.retention_days", "must be at least 1 day".into());
        }
        let c = &self.central;
        if let Some(url) = &c.url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                bad("central.url", "must be a postgres:// URL".into());
            } else if url_password(url).is_some() {
                bad("central.url", "must not contain a password: put it in the file named by central.password_file".into());
            }
        }
        if c.heartbeat_s == 0 {
            bad("central.heartbeat_s", "must be at least 1 second".into());
        }
        if c.batch_max_events == 0 {
            bad("central.batch_max_events", "must be at least 1".into());
        }
        if let Some(listen) = &self.health.listen {
            match listen.parse::<std::net::SocketAddr>() {
                Ok(addr) if addr.ip().is_loopback() => {}
                Ok(_) => bad(
                    "health.listen",
                    "must be a loopback address such as 127.0.0.1:9750".into(),
                ),
                Err(_) => bad(
                    "health.listen",
                    format!("`{listen}` is not an address such as 127.0.0.1:9750"),
                ),
            }
        }
        issues.extend(self.pricing_issues());
        issues
    }

    /// Every price is valid, and the configured models have prices (never billed as $0).
    fn pricing_issues(&self) -> Vec<ConfigIssue> {
        use jarvis_core::metering::{MeteringError, Pricing};
        let issue = |key: &str, e: MeteringError| ConfigIssue {
            key: key.into(),
            problem: e.to_string(),
        };
        match Pricing::from_config(&self.pricing) {
            Err(MeteringError::InvalidPricing(issues)) => issues,
            Err(e) => vec![issue("pricing", e)],
            Ok(p) => {
                let mut issues = Vec::new();
                if let Err(e) = p.require_realtime(&self.openai.model) {
                    issues.push(issue("openai.model", e));
                }
                if let Err(e) = p.require_transcription(&self.openai.transcription_model) {
                    issues.push(issue("openai.transcription_model", e));
                }
                issues
            }
        }
    }

    /// The effective configuration as TOML, for `config check`. Holds no secret: only paths.
    pub fn to_toml(&self) -> String {
        match toml::to_string_pretty(self) {
            Ok(s) => s,
            Err(e) => format!("# could not render the configuration: {e}\n"),
        }
    }
}

/// The password part of a URL, if any (`postgres://user:secret@host`).
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo
        .split_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

/// Adds the fix to the `config` crate's messages where it helps a technician.
fn explain(message: &str) -> String {
    let mut out = message.to_owned();
    for secret in ["api_key", "password", "token", "hash_key"] {
        if message.contains(&format!("unknown field `{secret}`")) {
            out.push_str(&format!(
                " (secrets are never written in the config: put it in a file and set `{secret}_file`)"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_core::money::NanoUsd;
    use jarvis_core::session::{Lifecycle, Now, SessionMachine};

    #[test]
    fn badge_frame_rules_map_every_key() {
        let cfg = BadgeConfig {
            framing: Framing::Fixed,
            fixed_len: 8,
            strip_prefix: "P".into(),
            strip_suffix: "S".into(),
            charset: Charset::Digits,
            case: LetterCase::Keep,
            leading_zeros: LeadingZeros::Strip,
            min_len: 5,
            max_len: 9,
            ..BadgeConfig::default()
        };
        let r = cfg.frame_rules();
        assert_eq!(r.framing, FrameKind::Fixed(8));
        assert_eq!((r.min_len, r.max_len), (5, 9));
        assert_eq!(r.strip_prefix, "P");
        assert_eq!(cfg.keyboard_wedge_rules().framing, FrameKind::Line);
        let stx = BadgeConfig {
            framing: Framing::StxEtx,
            ..BadgeConfig::default()
        };
        assert_eq!(stx.frame_rules().framing, FrameKind::StxEtx);
    }

    #[test]
    fn settings_come_from_config() {
        let mut cfg = Config::default();
        cfg.session.max_duration_s = 120;
        cfg.session.cooldown_s = 7;
        cfg.badge.debounce_s = 2;
        cfg.openai.connect_timeout_s = 4;
        let s = cfg.session_settings();
        assert_eq!(s.max_duration_ms, 120_000);
        assert_eq!(s.idle_timeout_ms, 60_000);
        assert_eq!(s.cooldown_ms, 7_000);
        assert_eq!(s.debounce_ms, 2_000);
        assert_eq!(s.connect_timeout_ms, 4_000);
        assert_eq!(s.max_cost, NanoUsd(1_000_000_000));
        assert_eq!(s.daily_budget, NanoUsd(20_000_000_000));
        assert_eq!(s.model, "gpt-realtime");
        assert_eq!(s.goodbye_phrases[0], "au revoir");
        let m = SessionMachine::new(
            s,
            NanoUsd(5),
            Now {
                mono_ms: 0,
                wall_ms: 0,
            },
            uuid::Uuid::now_v7,
        );
        assert_eq!(m.lifecycle(), Lifecycle::Idle);
        assert_eq!(m.spent_today(), NanoUsd(5));
        assert_eq!(m.current_session(), None);
    }

    #[test]
    fn config_validation_reports_unpriced_models_and_bad_prices() {
        let mut cfg = Config::default();
        cfg.kiosk.id = "k1".into();
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
        cfg.openai.model = "gpt-realtime-9".into();
        cfg.openai.transcription_model = "asr-x".into();
        cfg.pricing.insert("cheap".into(), ModelPricing::default());
        let keys: Vec<String> = cfg.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["pricing.\"cheap\""]);
        cfg.pricing.clear();
        let issues = cfg.validate();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["openai.model", "openai.transcription_model"]);
        assert!(
            issues[0].problem.contains("[pricing.\"gpt-realtime-9\"]"),
            "{}",
            issues[0]
        );
    }

    #[test]
    fn breaker_settings_come_from_the_openai_section() {
        let c = OpenAiConfig::default().breaker_settings();
        assert_eq!(c.failures, 3);
        assert_eq!(c.open_for, Duration::from_secs(60));
    }

    #[test]
    fn defaults_are_the_session_cores() {
        assert_eq!(Config::default().session_settings(), Settings::default());
    }
}
