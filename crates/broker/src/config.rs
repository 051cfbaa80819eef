//! The broker's configuration: embedded defaults, then the TOML file (default
//! `/etc/jarvis-broker/config.toml`), then `JARVIS_BROKER__SECTION__KEY` variables, the same
//! layering as the kiosk (`jarvis_config::load_layered`). Secrets are files: `openai.api_key_file`
//! and `central.password_file` (bare names resolve in `$CREDENTIALS_DIRECTORY`).
//!
//! The defaults run the broker against the local Postgres (trust auth) and a local emulator, so
//! `jarvis-broker run` works with one command on a development machine; a fleet sets
//! `central.url`, `openai.base_url` (default OpenAI) and `openai.api_key_file`.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use jarvis_config::secrets::SecretPath;
use jarvis_config::{ConfigError, ConfigIssue, load_checked};
use jarvis_core::money::UsdAmount;
pub use jarvis_service::config::{CentralConfig, LogConfig};

/// Where `run` looks when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/jarvis-broker/config.toml";
/// Prefix of environment overrides: `JARVIS_BROKER__LIMITS__SESSIONS_PER_MINUTE=10`.
pub const ENV_PREFIX: &str = "JARVIS_BROKER";

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    pub broker: ListenConfig,
    pub central: CentralConfig,
    pub openai: UpstreamConfig,
    pub session: SessionPolicy,
    pub live: LivePolicy,
    pub limits: Limits,
    pub tokens: TokenConfig,
    pub audit: AuditConfig,
    pub log: LogConfig,
}

/// `[broker]`: the HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// Plain HTTP: put a TLS-terminating proxy in front for anything but loopback.
    pub listen: SocketAddr,
    /// This instance's name in `broker_audit.broker` (default: the host name).
    pub instance: Option<String>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8710)),
            instance: None,
        }
    }
}

/// `[openai]`: the upstream the broker mints keys at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    pub base_url: String,
    /// The organisation's API key; only optional for a loopback `base_url` (an emulator).
    pub api_key_file: Option<SecretPath>,
    pub timeout_s: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            base_url: "http://127.0.0.1:8089/v1".into(),
            api_key_file: None,
            timeout_s: 10,
        }
    }
}

/// `[session]`: what the fleet decides for every session, whatever the kiosk asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionPolicy {
    pub model: String,
    pub voice: String,
    /// Lifetime of a minted key (10..=7200 s); it only gates starting the call.
    pub key_ttl_s: u64,
    /// `max_output_tokens` of every response (absent: the kiosk's or OpenAI's default).
    pub max_output_tokens: Option<u32>,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            model: "gpt-realtime".into(),
            voice: "marin".into(),
            key_ttl_s: 120,
            max_output_tokens: None,
        }
    }
}

/// `[live]`: what the fleet decides for every GPT-Live session it relays (the kiosk's
/// instructions, history and tool declarations stay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LivePolicy {
    /// `session.model`: `gpt-live-1` or `gpt-live-1.1`.
    pub model: String,
    /// `session.audio.output.voice` (immutable once the session starts).
    pub voice: String,
    /// `session.delegation.responses.model`, when the kiosk delegates to a Responses model.
    pub delegation_model: String,
    /// Cap on `delegation.responses.max_output_tokens` (>= 16; absent: the kiosk's or OpenAI's).
    pub delegation_max_output_tokens: Option<u32>,
    /// `session.store`: false keeps OpenAI from storing sessions (no recordings, no fork).
    pub store: bool,
}

impl Default for LivePolicy {
    fn default() -> Self {
        LivePolicy {
            model: "gpt-live-1".into(),
            voice: "marin".into(),
            delegation_model: "gpt-5-mini".into(),
            delegation_max_output_tokens: None,
            store: false,
        }
    }
}

/// `[limits]`: spend and rate, checked before every mint and Live relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// A kiosk's spend today (synced sessions) at or above this refuses new sessions.
    pub kiosk_daily_budget_usd: UsdAmount,
    /// The same for all the kiosks of one gym.
    pub gym_daily_budget_usd: UsdAmount,
    /// IANA zone (as Postgres knows it) whose midnight starts the budget day.
    pub budget_timezone: String,
    /// Sessions one kiosk may start per rolling minute.
    pub sessions_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            kiosk_daily_budget_usd: UsdAmount(jarvis_core::money::NanoUsd(
                20 * jarvis_core::money::NANOS_PER_USD,
            )),
            gym_daily_budget_usd: UsdAmount(jarvis_core::money::NanoUsd(
                100 * jarvis_core::money::NANOS_PER_USD,
            )),
            budget_timezone: "UTC".into(),
            sessions_per_minute: 6,
        }
    }
}

/// `[tokens]`: kiosk credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// After `kiosk rotate`, how long the previous token still works (install the new one
    /// meanwhile).
    pub rotation_overlap_s: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            rotation_overlap_s: 86_400,
        }
    }
}

/// `[audit]`: the `broker_audit` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Rows older than this are deleted (hourly, by any instance); 0 keeps them forever.
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { retention_days: 90 }
    }
}

impl BrokerConfig {
    /// Loads defaults, the file (`path`, or the default one when absent) and the environment.
    pub fn load(path: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        load_checked(path, DEFAULT_CONFIG_PATH, ENV_PREFIX, env, Self::validate)
    }

    /// What the types cannot say, each problem naming its key.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut out = self.central.issues();
        let mut bad = |key: &str, problem: String| {
            out.push(ConfigIssue {
                key: key.into(),
                problem,
            })
        };
        let url = self.openai.base_url.as_str();
        let plain_loopback = url.starts_with("http://") && is_loopback_url(url);
        if !(url.starts_with("https://") || plain_loopback) {
            bad(
                "openai.base_url",
                "expected an https:// URL (plain http:// only to a loopback host)".into(),
            );
        }
        if self.openai.api_key_file.is_none() && !is_loopback_url(url) {
            bad(
                "openai.api_key_file",
                "required: the file holding the organisation's OpenAI API key".into(),
            );
        }
        if !(1..=120).contains(&self.openai.timeout_s) {
            bad("openai.timeout_s", "expected 1 to 120 seconds".into());
        }
        if !(10..=7200).contains(&self.session.key_ttl_s) {
            bad(
                "session.key_ttl_s",
                "expected 10 to 7200 seconds (OpenAI's range)".into(),
            );
        }
        if self.session.model.trim().is_empty() {
            bad("session.model", "must not be empty".into());
        }
        if self.session.voice.trim().is_empty() {
            bad("session.voice", "must not be empty".into());
        }
        if !LIVE_MODELS.contains(&self.live.model.as_str()) {
            bad(
                "live.model",
                format!("expected one of {LIVE_MODELS:?} (GPT-Live models)"),
            );
        }
        if self.live.voice.trim().is_empty() {
            bad("live.voice", "must not be empty".into());
        }
        if self.live.delegation_model.trim().is_empty() {
            bad(
                "live.delegation_model",
                "must not be empty (a Responses model such as gpt-5-mini)".into(),
            );
        }
        if self
            .live
            .delegation_max_output_tokens
            .is_some_and(|n| n < 16)
        {
            bad(
                "live.delegation_max_output_tokens",
                "expected at least 16 (OpenAI's minimum)".into(),
            );
        }
        if self.limits.sessions_per_minute == 0 {
            bad(
                "limits.sessions_per_minute",
                "expected at least 1 (a kiosk needs one session per scan)".into(),
            );
        }
        if self.limits.budget_timezone.trim().is_empty() {
            bad(
                "limits.budget_timezone",
                "expected an IANA zone such as \"Europe/Paris\"".into(),
            );
        }
        out
    }

    /// The effective configuration as TOML for `config check` (paths only, no secret).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# could not render the configuration: {e}\n"))
    }

    /// `broker.instance`, else the host name.
    pub fn instance(&self) -> String {
        self.broker.instance.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "jarvis-broker".into())
        })
    }
}

/// The GPT-Live models (`live.model`).
pub const LIVE_MODELS: [&str; 2] = ["gpt-live-1", "gpt-live-1.1"];

/// Whether the URL's host is loopback (`127.0.0.0/8`, `[::1]`, `localhost`).
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_run_locally() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BrokerConfig::load(None, &[]).unwrap();
        assert!(cfg.validate().is_empty());
        assert_eq!(cfg.broker.listen.port(), 8710);
        let shown = cfg.to_toml();
        for key in [
            "[live]",
            "delegation_model = \"gpt-5-mini\"",
            "store = false",
        ] {
            assert!(shown.contains(key), "config check shows {key}: {shown}");
        }
        let missing = BrokerConfig::load(Some(&dir.path().join("nope.toml")), &[]).unwrap_err();
        assert!(missing.to_string().contains("nope.toml"), "{missing}");
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("broker.toml");
        std::fs::write(
            &file,
            "[limits]\nsessions_per_minute = 3\nkiosk_daily_budget_usd = \"5.50\"\n",
        )
        .unwrap();
        let cfg = BrokerConfig::load(
            Some(&file),
            &env(&[("JARVIS_BROKER__LIMITS__SESSIONS_PER_MINUTE", "9")]),
        )
        .unwrap();
        assert_eq!(cfg.limits.sessions_per_minute, 9);
        assert_eq!(cfg.limits.kiosk_daily_budget_usd.0, "5.50".parse().unwrap());
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("broker.toml");
        std::fs::write(
            &file,
            "[openai]\nbase_url = \"http://api.example.com/v1\"\n[session]\nkey_ttl_s = 5\n\
             [live]\nmodel = \"gpt-realtime\"\ndelegation_max_output_tokens = 8\n",
        )
        .unwrap();
        let text = BrokerConfig::load(Some(&file), &[])
            .unwrap_err()
            .to_string();
        for key in [
            "openai.base_url",
            "openai.api_key_file",
            "session.key_ttl_s",
            "live.model",
            "live.delegation_max_output_tokens",
        ] {
            assert!(text.contains(key), "{key} missing from: {text}");
        }
        std::fs::write(&file, "[limits]\nsessions_per_hour = 3\n").unwrap();
        let text = BrokerConfig::load(Some(&file), &[])
            .unwrap_err()
            .to_string();
        assert!(text.contains("sessions_per_hour"), "{text}");
        std::fs::write(&file, "[limits]\ngym_daily_budget_usd = \"-3\"\n").unwrap();
        let text = BrokerConfig::load(Some(&file), &[])
            .unwrap_err()
            .to_string();
        assert!(text.contains("dollar amount"), "{text}");
    }

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("http://127.0.0.1:8089/v1"));
        assert!(is_loopback_url("http://[::1]:80/v1"));
        assert!(is_loopback_url("http://localhost/v1"));
        assert!(!is_loopback_url("https://api.openai.com/v1"));
        assert!(!is_loopback_url("http://127.0.0.1.example.com/v1"));
    }
}
