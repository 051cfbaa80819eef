//! The config sections every central service has: `[central]` and `[log]`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use jarvis_config::ConfigIssue;
use jarvis_config::secrets::SecretPath;
use jarvis_sync::conn::{CentralTarget, ConnectSetupError};

/// `[central]`: the fleet's Postgres, through the service's own login role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CentralConfig {
    /// `sslmode=disable` for a local socket or trusted link; anything else is verified TLS.
    pub url: String,
    pub password_file: Option<SecretPath>,
    /// Connections kept open (each pipelines concurrent queries).
    pub pool_size: usize,
    /// CA certificates (PEM) for the server's certificate; default: the system roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for CentralConfig {
    fn default() -> Self {
        CentralConfig {
            url: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into(),
            password_file: None,
            pool_size: 4,
            ca_file: None,
        }
    }
}

impl CentralConfig {
    /// What the types cannot say, each problem naming its key.
    pub fn issues(&self) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        let mut bad = |key: &str, problem: &str| {
            out.push(ConfigIssue {
                key: key.into(),
                problem: problem.into(),
            })
        };
        if !self.url.starts_with("postgres://") && !self.url.starts_with("postgresql://") {
            bad("central.url", "expected a postgres:// URL");
        }
        if self.pool_size == 0 || self.pool_size > 64 {
            bad("central.pool_size", "expected 1 to 64 connections");
        }
        out
    }

    /// The connection target (reads the password file), named `application` in
    /// `pg_stat_activity`.
    pub fn target(&self, application: &str) -> Result<CentralTarget, ConnectSetupError> {
        CentralTarget::with_password_file(
            &self.url,
            self.password_file.as_ref(),
            self.ca_file.as_deref(),
            application,
        )
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// An `EnvFilter` directive (`RUST_LOG` wins when set).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}
