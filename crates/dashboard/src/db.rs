//! The central Postgres: a few pipelined connections, reopened when broken. The connection
//! set-up (URL, `sslmode`, verified rustls TLS, password file) is the kiosk's
//! (`jarvis_sync::conn::CentralTarget`), so every part of the fleet speaks to central alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::config::CentralConfig;
use jarvis_sync::conn::CentralTarget;

/// Why central could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("central.url: {0}")]
    Setup(String),
    #[error("central database: {0}")]
    Query(String),
    #[error(
        "central database: the dashboard tables are missing or not granted: run scripts/central-migrate.sh (0010_dashboard.sql) and make the login a member of dashboard_service"
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

/// A small set of connections, each shared by concurrent requests (tokio-postgres pipelines
/// them); a broken one is reopened by the next request that picks it.
pub struct Central {
    target: CentralTarget,
    slots: Vec<Mutex<Option<Arc<Client>>>>,
    next: AtomicUsize,
}

impl Central {
    /// Prepares the target from `central.*` (reads the password file); connects lazily.
    pub fn new(cfg: &CentralConfig, instance: &str) -> Result<Central, DbError> {
        let password = match &cfg.password_file {
            Some(p) => Some(
                p.read("central.password_file")
                    .map_err(|e| DbError::Setup(e.to_string()))?,
            ),
            None => None,
        };
        let target = CentralTarget::new(
            &cfg.url,
            password.as_ref().map(|s| s.expose()),
            cfg.ca_file.as_deref(),
            &format!("dashboard-{instance}"),
        )
        .map_err(|e| DbError::Setup(e.to_string()))?;
        Ok(Central {
            target,
            slots: (0..cfg.pool_size.max(1))
                .map(|_| Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// `user@host:port/db`, for logs.
    pub fn display(&self) -> &str {
        self.target.display()
    }

    /// A shared connection (for statements that need no transaction).
    pub async fn client(&self) -> Result<Arc<Client>, DbError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let client = Arc::new(self.target.connect().await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// A connection of its own, for a transaction.
    pub async fn dedicated(&self) -> Result<Client, DbError> {
        Ok(self.target.connect().await?)
    }
}
