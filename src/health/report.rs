//! The one report behind `status`, the status socket and `/metrics`: the health snapshot
//! plus what the store knows, gathered in one place so every view tells the same story.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use jarvis_core::health::{Health, HealthSnapshot};
use jarvis_store::{OutboxStats, SessionSummary, StoreHandle};

/// Sessions a report lists.
pub const RECENT_SESSIONS: usize = 5;

/// A store busy longer than this (a long write, a stuck disk) leaves its part of the report
/// empty rather than leave `status` hanging.
const STORE_WAIT: Duration = Duration::from_secs(2);

/// Everything `status` shows about a running daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Wall-clock milliseconds when the daemon made the report (durations count to here).
    pub generated_at_ms: i64,
    pub health: HealthSnapshot,
    pub recent_sessions: Vec<SessionSummary>,
    pub outbox: Option<OutboxStats>,
    /// Why the store part is missing, when it is.
    pub store_error: Option<String>,
}

impl StatusReport {
    /// How long the current session has lasted, if one is in progress.
    pub fn current_session_ms(&self) -> Option<u64> {
        self.health
            .current_session
            .as_ref()
            .map(|s| (self.generated_at_ms - s.started_at_ms).max(0) as u64)
    }
}

/// What the daemon's status views read from.
#[derive(Clone)]
pub struct Observer {
    pub health: Health,
    pub store: StoreHandle,
}

impl Observer {
    pub async fn report(&self) -> StatusReport {
        let store = self.store.call(|s| {
            let sessions = s.recent_sessions(RECENT_SESSIONS)?;
            Ok((sessions, s.stats()?))
        });
        let (recent_sessions, outbox, store_error) =
            match tokio::time::timeout(STORE_WAIT, store).await {
                Ok(Ok((sessions, stats))) => (sessions, Some(stats), None),
                Ok(Err(e)) => (Vec::new(), None, Some(e.to_string())),
                Err(_) => (
                    Vec::new(),
                    None,
                    Some(format!(
                        "the local store did not answer within {} s",
                        STORE_WAIT.as_secs()
                    )),
                ),
            };
        StatusReport {
            generated_at_ms: jarvis_core::clock::wall_ms(),
            health: self.health.snapshot(),
            recent_sessions,
            outbox,
            store_error,
        }
    }
}
