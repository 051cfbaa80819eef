//! Layering: defaults, then the TOML file, then `JARVIS_KIOSK__SECTION__KEY` environment
//! variables, through the `config` crate; and the way back out as TOML for `config check`.
//! Loading ends in validation, so a `Config` from here is one the daemon can run on.

use std::path::{Path, PathBuf};

use jarvis_core::config_issue::ConfigIssue;

use crate::types::Config;

/// Where the daemon looks when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/jarvis-kiosk/config.toml";
/// Prefix of environment overrides: `JARVIS_KIOSK__SESSION__MAX_DURATION_S=300`.
pub const ENV_PREFIX: &str = "JARVIS_KIOSK";

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
            env: process_env(ENV_PREFIX),
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
            .clone()
            .try_deserialize()
            .map_err(|e| ConfigError::Parse(explain(&e.to_string())))?;
        let mut issues = cfg.validate();
        issues.extend(cfg.api_issues(&|key| raw.get::<::config::Value>(key).is_ok()));
        if issues.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid(issues))
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

/// The process's `{prefix}__*` variables.
pub fn process_env(prefix: &str) -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with(prefix))
        .collect()
}

/// A central service's config (the broker's, the dashboard's): [`load_layered`] from `path`, or
/// from `default_path` when none was named (which may then be missing), with every problem
/// `validate` finds reported at once.
pub fn load_checked<T: serde::de::DeserializeOwned>(
    path: Option<&Path>,
    default_path: &str,
    prefix: &str,
    env: &[(String, String)],
    validate: impl FnOnce(&T) -> Vec<ConfigIssue>,
) -> Result<T, ConfigError> {
    let file = path.map_or_else(|| PathBuf::from(default_path), Path::to_path_buf);
    let cfg: T = load_layered(&file, path.is_some(), prefix, env)?;
    let issues = validate(&cfg);
    if issues.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigError::Invalid(issues))
    }
}

/// Layers `T`'s serde defaults, the TOML file at `path` (required when `explicit`) and the
/// `{prefix}__SECTION__KEY` variables of `env`, for another binary of the fleet (the broker)
/// that keeps the daemon's scheme without its sections. Validation is the caller's.
pub fn load_layered<T: serde::de::DeserializeOwned>(
    path: &Path,
    explicit: bool,
    prefix: &str,
    env: &[(String, String)],
) -> Result<T, ConfigError> {
    let mut builder = ::config::Config::builder();
    if path.exists() {
        std::fs::File::open(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        builder = builder.add_source(::config::File::from(path).format(::config::FileFormat::Toml));
    } else if explicit {
        return Err(ConfigError::File {
            path: path.to_path_buf(),
            reason: "no such file".into(),
        });
    }
    let env: ::config::Map<String, String> = env.iter().cloned().collect();
    builder = builder.add_source(
        ::config::Environment::with_prefix(prefix)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env)),
    );
    builder
        .build()
        .and_then(|raw| raw.try_deserialize())
        .map_err(|e| ConfigError::Parse(explain(&e.to_string())))
}
