//! The dashboard's configuration: embedded defaults, then the TOML file (default
//! `/etc/jarvis-dashboard/config.toml`), then `JARVIS_DASHBOARD__SECTION__KEY` variables: the
//! layering of the kiosk and the broker (`jarvis_config::load_layered`). Secrets are files
//! (`central.password_file`, `webhooks[].url_file`; bare names resolve in
//! `$CREDENTIALS_DIRECTORY`).

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use jarvis_config::secrets::SecretPath;
use jarvis_config::{ConfigError, ConfigIssue, load_checked};
use jarvis_core::money::{NANOS_PER_USD, NanoUsd, UsdAmount};
pub use jarvis_service::config::{CentralConfig, LogConfig};

/// Where `run` looks when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/jarvis-dashboard/config.toml";
/// Prefix of environment overrides: `JARVIS_DASHBOARD__ALERTS__SILENT_AFTER_S=300`.
pub const ENV_PREFIX: &str = "JARVIS_DASHBOARD";

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    pub dashboard: ListenConfig,
    pub central: CentralConfig,
    pub budgets: Budgets,
    pub alerts: AlertRules,
    pub webhooks: Vec<Webhook>,
    pub log: LogConfig,
}

/// `[dashboard]`: the HTTP listener and the login cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// Plain HTTP: put a TLS-terminating proxy in front for anything but loopback.
    pub listen: SocketAddr,
    /// This instance's name in the audit and in delivery claims (default: the host name).
    pub instance: Option<String>,
    /// `Secure` on the session cookie; only a loopback development setup turns it off.
    pub secure_cookie: bool,
    /// How long a login lasts.
    pub session_ttl_s: u64,
    /// How often the page refreshes itself.
    pub refresh_s: u64,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8720)),
            instance: None,
            secure_cookie: true,
            session_ttl_s: 12 * 3600,
            refresh_s: 5,
        }
    }
}

/// `[budgets]`: the daily budgets the page and the alerts compare spend with (set them as the
/// broker's `limits.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budgets {
    pub kiosk_daily_usd: UsdAmount,
    pub gym_daily_usd: UsdAmount,
    /// IANA zone (as Postgres knows it) whose midnight starts the day.
    pub timezone: String,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            kiosk_daily_usd: UsdAmount(NanoUsd(20 * NANOS_PER_USD)),
            gym_daily_usd: UsdAmount(NanoUsd(100 * NANOS_PER_USD)),
            timezone: "UTC".into(),
        }
    }
}

/// `[alerts]`: when a condition becomes an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRules {
    /// A kiosk with no heartbeat for this long is silent (also the page's "down").
    pub silent_after_s: u64,
    /// A kiosk whose oldest unsynced event is older than this has a stalled sync.
    pub sync_stalled_after_s: u64,
    /// The kiosks' `central.heartbeat_s`: expected heartbeats for the uptime figure.
    pub heartbeat_s: u64,
    /// How often each instance looks for incidents and due deliveries.
    pub poll_s: u64,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            silent_after_s: 300,
            sync_stalled_after_s: 900,
            heartbeat_s: 60,
            poll_s: 10,
        }
    }
}

/// Body shape of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// `{"text": "..."}`: Slack incoming webhooks and the chat tools that copy them.
    Slack,
    /// The incident as a JSON object.
    Json,
}

/// `[[webhooks]]`: where critical incidents go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Names the webhook in `dashboard_deliveries` (keep it when changing the URL).
    pub name: String,
    /// The URL, for a loopback receiver; a real one holds a token, so use `url_file`.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_file: Option<SecretPath>,
    pub format: WebhookFormat,
    /// Deliveries per rolling minute, over all instances.
    #[serde(default = "default_per_minute")]
    pub per_minute: u32,
}

fn default_per_minute() -> u32 {
    20
}

impl DashboardConfig {
    /// Loads defaults, the file (`path`, or the default one when absent) and the environment.
    pub fn load(path: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        load_checked(path, DEFAULT_CONFIG_PATH, ENV_PREFIX, env, Self::validate)
    }

    /// What the types cannot say, each problem naming its key.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut out = self.central.issues();
        let mut bad = |key: String, problem: &str| {
            out.push(ConfigIssue {
                key,
                problem: problem.into(),
            })
        };
        if self.budgets.timezone.trim().is_empty() {
            bad(
                "budgets.timezone".into(),
                "expected an IANA zone such as \"Europe/Paris\"",
            );
        }
        if self.dashboard.session_ttl_s < 60 {
            bad(
                "dashboard.session_ttl_s".into(),
                "expected at least 60 seconds",
            );
        }
        if !(1..=300).contains(&self.dashboard.refresh_s) {
            bad("dashboard.refresh_s".into(), "expected 1 to 300 seconds");
        }
        for (key, v) in [
            ("alerts.silent_after_s", self.alerts.silent_after_s),
            (
                "alerts.sync_stalled_after_s",
                self.alerts.sync_stalled_after_s,
            ),
            ("alerts.heartbeat_s", self.alerts.heartbeat_s),
            ("alerts.poll_s", self.alerts.poll_s),
        ] {
            if v == 0 {
                bad(key.into(), "expected at least 1 second");
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let key = |k: &str| format!("webhooks[{i}].{k}");
            if w.name.trim().is_empty() || !names.insert(w.name.as_str()) {
                bad(
                    key("name"),
                    "expected a non-empty name used by one webhook only",
                );
            }
            match (&w.url, &w.url_file) {
                (Some(_), Some(_)) | (None, None) => {
                    bad(key("url_file"), "set exactly one of url_file and url")
                }
                (Some(url), None) if !(url.starts_with("https://") || is_loopback_url(url)) => bad(
                    key("url"),
                    "expected a loopback http:// URL; put a real webhook's URL in url_file",
                ),
                _ => {}
            }
            if w.per_minute == 0 {
                bad(key("per_minute"), "expected at least 1");
            }
        }
        out
    }

    /// The effective configuration as TOML for `config check` (paths only, no secret).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# could not render the configuration: {e}\n"))
    }

    /// `dashboard.instance`, else the host name.
    pub fn instance(&self) -> String {
        self.dashboard.instance.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "jarvis-dashboard".into())
        })
    }
}

/// Whether the URL is plain http to a loopback host (`127.0.0.0/8`, `[::1]`, `localhost`).
pub fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(DashboardConfig::default().validate().is_empty());
    }

    #[test]
    fn file_and_env_layer_and_webhooks_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[alerts]\nsilent_after_s = 120\n[[webhooks]]\nname = \"ops\"\nurl = \"http://example.com/x\"\nformat = \"slack\"\n",
        )
        .unwrap();
        let err = DashboardConfig::load(Some(&file), &[]).unwrap_err();
        assert!(err.to_string().contains("webhooks[0].url"), "{err}");
        std::fs::write(
            &file,
            "[alerts]\nsilent_after_s = 120\n[[webhooks]]\nname = \"ops\"\nurl = \"http://127.0.0.1:9/x\"\nformat = \"json\"\n",
        )
        .unwrap();
        let env = vec![("JARVIS_DASHBOARD__ALERTS__POLL_S".into(), "3".into())];
        let cfg = DashboardConfig::load(Some(&file), &env).unwrap();
        assert_eq!(cfg.alerts.silent_after_s, 120);
        assert_eq!(cfg.alerts.poll_s, 3);
        assert_eq!(cfg.webhooks[0].per_minute, 20);
    }

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("http://127.0.0.1:80/a"));
        assert!(is_loopback_url("http://[::1]:80/a"));
        assert!(is_loopback_url("http://localhost/a"));
        assert!(!is_loopback_url("http://127.0.0.1.example.com/a"));
        assert!(!is_loopback_url("https://127.0.0.1/a"));
    }
}
