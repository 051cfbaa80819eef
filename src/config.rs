//! Typed configuration: defaults, then the TOML file, then `JARVIS_KIOSK__SECTION__KEY`
//! environment variables, validated once at start-up.
//!
//! Every error names the key (`session.max_cost_usd`) and what is expected, because the person
//! reading it is a technician with a config file open, not a developer with the source.
//! Secrets never live here: only the paths of the files that hold them (`*_file` keys).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::money::UsdAmount;
use crate::secrets::SecretPath;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// Frames end with CR, LF or CRLF.
    Line,
    /// Frames are STX (0x02) ... ETX (0x03).
    StxEtx,
    /// Every `badge.fixed_len` bytes are one frame.
    Fixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Charset {
    Digits,
    Hex,
    Alphanumeric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LetterCase {
    Keep,
    Upper,
    Lower,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadingZeros {
    Keep,
    Strip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanDuringSession {
    /// Ignore scans while a session is live.
    Ignore,
    /// End the live session and start the new member's.
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownMember {
    /// Talk with them as a guest.
    Guest,
    /// Say "please see the front desk" and start no session.
    FrontDesk,
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
            debounce_s: 3,
            on_scan_during_session: ScanDuringSession::Ignore,
            max_sessions_per_hour: 6,
            unknown_member: UnknownMember::FrontDesk,
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
        OpenAiConfig {
            base_url: "https://api.openai.com/v1".into(),
            api_key_file: None,
            token_url: None,
            token_credential_file: None,
            model: "gpt-realtime".into(),
            voice: "marin".into(),
            instructions_file: None,
            turn_detection: TurnDetection::SemanticVad,
            transcription_model: "gpt-4o-mini-transcribe".into(),
            goodbye_phrases: vec![
                "au revoir".into(),
                "bonne journée".into(),
                "à bientôt".into(),
            ],
            connect_timeout_s: 10,
            breaker_failures: 3,
            breaker_open_s: 60,
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
        SessionConfig {
            max_duration_s: 600,
            idle_timeout_s: 60,
            max_cost_usd: UsdAmount(crate::money::NanoUsd(1_000_000_000)),
            daily_budget_usd: UsdAmount(crate::money::NanoUsd(20_000_000_000)),
            cooldown_s: 3,
        }
    }
}

/// USD per one million tokens (decimal strings), as OpenAI publishes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ModelPricing {
    pub text_in: UsdAmount,
    pub text_cached: UsdAmount,
    pub text_out: UsdAmount,
    pub audio_in: UsdAmount,
    pub audio_cached: UsdAmount,
    pub audio_out: UsdAmount,
    pub image_in: UsdAmount,
    pub image_cached: UsdAmount,
    /// For duration-billed transcription models: USD per minute of audio.
    pub per_minute: UsdAmount,
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

/// One thing wrong with the configuration, tied to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
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
        use crate::metering::{MeteringError, Pricing};
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
