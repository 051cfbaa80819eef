//! Typed configuration: defaults, then the TOML file, then `JARVIS_KIOSK__SECTION__KEY`
//! environment variables, validated once at start-up.
//!
//! Every error names the key (`session.max_cost_usd`) and what is expected, because the person
//! reading it is a technician with a config file open, not a developer with the source.
//! Secrets never live here: only the paths of the files that hold them (`*_file` keys).
//!
//! - `types`: the sections and their defaults (the file format).
//! - `load`: file and environment layered into a [`Config`], and back out as TOML.
//! - `validate`: what the types alone cannot check, each problem naming its key.
//! - `settings`: the sections mapped onto the settings the core takes.
//! - `calendar`: `kiosk.timezone` read from the system's time zone database into the core's
//!   `Calendar` (the daily budget's day).
//! - [`secrets`]: the files named by `*_file` keys.

mod calendar;
mod load;
pub mod secrets;
mod settings;
mod types;
mod validate;

pub use jarvis_core::badge::frame::{Charset, Framing, LeadingZeros, LetterCase};
pub use jarvis_core::config_issue::ConfigIssue;
pub use jarvis_core::metering::ModelPricing;
pub use jarvis_core::session::{ScanDuringSession, UnknownMember};
pub use load::{
    ConfigError, ConfigSource, DEFAULT_CONFIG_PATH, ENV_PREFIX, load_checked, load_layered,
    process_env,
};
pub use types::{
    AudioConfig, BadgeConfig, BadgeSource, CentralConfig, Config, EchoControl, HealthConfig,
    HidConfig, KeyboardLayout, KioskConfig, LiveConfig, LogConfig, OpenAiConfig, Parity,
    SampleFormat, SerialConfig, SessionConfig, StorageConfig, TurnDetectionMode, VoiceApi,
};
