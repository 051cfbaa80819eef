//! The central Postgres: a few pipelined connections, reopened when broken. The connection
//! set-up (URL, `sslmode`, verified rustls TLS, password file) is the kiosk's
//! (`jarvis_sync::conn::CentralTarget`), so every part of the fleet speaks to central alike.

use std::sync::Arc;

use tokio_postgres::Client;

use crate::config::CentralConfig;
use jarvis_sync::shared::SharedConnections;

/// Why central could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("central.url: {0}")]
    Setup(String),
    #[error("central database: {0}")]
    Query(String),
    #[error(
        "central database: the dashboard tables are missing or not granted: run scripts/central-migrate.sh (0010_dashboard.sql, 0011_live_sessions.sql) and make the login a member of dashboard_service"
    )]
    NotMigrated,
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let code = e.code();
        if code == Some(&SqlState::UNDEFINED_TABLE)
            || code == Some(&SqlState::UNDEFINED_COLUMN)
            || code == Some(&SqlState::INSUFFICIENT_PRIVILEGE)
        {
            return DbError::NotMigrated;
        }
        match e.as_db_error() {
            Some(db) => DbError::Query(format!("{} (SQLSTATE {})", db.message(), db.code().code())),
            None => DbError::Query(e.to_string()),
        }
    }
}

/// The dashboard's connections to central (see [`SharedConnections`]).
pub struct Central {
    pool: SharedConnections<Client>,
}

impl Central {
    /// Prepares the target from `central.*` (reads the password file); connects lazily.
    pub fn new(cfg: &CentralConfig, instance: &str) -> Result<Central, DbError> {
        let target = cfg
            .target(&format!("dashboard-{instance}"))
            .map_err(|e| DbError::Setup(e.to_string()))?;
        Ok(Central {
            pool: SharedConnections::new(target, cfg.pool_size),
        })
    }

    /// `user@host:port/db`, for logs.
    pub fn display(&self) -> &str {
        self.pool.target().display()
    }

    /// A shared connection (for statements that need no transaction).
    pub async fn client(&self) -> Result<Arc<Client>, DbError> {
        self.pool.get(|c| async { Ok::<_, DbError>(c) }).await
    }

    /// A connection of its own, for a transaction.
    pub async fn dedicated(&self) -> Result<Client, DbError> {
        Ok(self.pool.target().connect().await?)
    }
}
