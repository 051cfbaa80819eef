//! Health model shared by `status`, `doctor`, heartbeats and the local endpoint.
//!
//! Adapters report their state here (never by logging alone), so a technician running
//! `status` and the fleet reading heartbeats see the same truth.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::NanoUsd;

/// The state of one adapter (scanner, audio, realtime, store, central).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum AdapterState {
    Starting,
    Up,
    /// Running but not doing its job (device missing, network down); retrying.
    Degraded(String),
    /// Turned off by configuration.
    Disabled(String),
}

impl AdapterState {
    pub fn is_ok(&self) -> bool {
        matches!(self, AdapterState::Up | AdapterState::Disabled(_))
    }
}

impl fmt::Display for AdapterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdapterState::Starting => f.write_str("starting"),
            AdapterState::Up => f.write_str("up"),
            AdapterState::Degraded(r) => write!(f, "degraded: {r}"),
            AdapterState::Disabled(r) => write!(f, "disabled: {r}"),
        }
    }
}

/// A point-in-time copy of everything health knows, serialisable for `status --json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthSnapshot {
    pub kiosk_id: String,
    pub version: String,
    pub pid: u32,
    pub started_at_ms: i64,
    /// The lifecycle state (`idle`, `live`, ...).
    pub lifecycle: String,
    pub adapters: BTreeMap<String, AdapterState>,
    /// Monotonic counters: overruns, garbage frames, reconnects, unknown events...
    pub counters: BTreeMap<String, u64>,
    /// Current values: outbox backlog, breaker state...
    pub gauges: BTreeMap<String, serde_json::Value>,
    /// The last few errors a person should see, newest last.
    pub last_errors: Vec<String>,
    /// The session in progress, if any.
    pub current_session: Option<CurrentSession>,
    /// Sessions ended since start-up, by end reason.
    pub sessions_ended: BTreeMap<String, u64>,
    /// What the sessions ended since start-up cost.
    pub sessions_cost: NanoUsd,
    /// Spend recorded today, the quantity `session.daily_budget_usd` bounds.
    pub spent_today: NanoUsd,
    /// Whose day "today" is: `kiosk.timezone` (or the system's zone).
    #[serde(default)]
    pub budget_time_zone: String,
}

/// The session in progress, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentSession {
    pub session_id: Uuid,
    /// `None` for a guest.
    pub first_name: Option<String>,
    pub started_at_ms: i64,
    /// Metered so far (responses and transcription; for GPT-Live, voice time estimated
    /// between usage reports plus delegated responses).
    pub cost: NanoUsd,
    /// GPT-Live: voice seconds billed so far; absent for Realtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_seconds: Option<u64>,
}

const MAX_LAST_ERRORS: usize = 10;

/// Cheap-to-clone handle every adapter holds. Never used from an audio callback.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<HealthSnapshot>>,
}

impl Health {
    pub fn new(kiosk_id: &str, started_at_ms: i64) -> Self {
        let snap = HealthSnapshot {
            kiosk_id: kiosk_id.to_owned(),
            version: crate::VERSION.to_owned(),
            pid: std::process::id(),
            started_at_ms,
            lifecycle: "starting".into(),
            ..Default::default()
        };
        Health {
            inner: Arc::new(Mutex::new(snap)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HealthSnapshot> {
        // A panic while holding this lock cannot leave the snapshot half-written in a way
        // that matters (every update is a single assignment), so recover from poisoning.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_adapter(&self, name: &str, state: AdapterState) {
        self.lock().adapters.insert(name.to_owned(), state);
    }

    pub fn set_lifecycle(&self, state: &str) {
        self.lock().lifecycle = state.to_owned();
    }

    pub fn add(&self, counter: &str, n: u64) {
        *self.lock().counters.entry(counter.to_owned()).or_default() += n;
    }

    pub fn set_gauge(&self, name: &str, value: impl Into<serde_json::Value>) {
        self.lock().gauges.insert(name.to_owned(), value.into());
    }

    pub fn set_current_session(&self, session: Option<CurrentSession>) {
        self.lock().current_session = session;
    }

    /// Names the zone whose midnight resets the daily budget, for `status` and `/metrics`.
    pub fn set_budget_time_zone(&self, zone: &str) {
        self.lock().budget_time_zone = zone.to_owned();
    }

    pub fn set_spent_today(&self, spent: NanoUsd) {
        self.lock().spent_today = spent;
    }

    /// Counts one ended session for `/metrics`.
    pub fn session_ended(&self, reason: &str, cost: NanoUsd) {
        let mut s = self.lock();
        *s.sessions_ended.entry(reason.to_owned()).or_default() += 1;
        s.sessions_cost += cost;
    }

    pub fn record_error(&self, message: impl Into<String>) {
        let mut s = self.lock();
        s.last_errors.push(message.into());
        let excess = s.last_errors.len().saturating_sub(MAX_LAST_ERRORS);
        s.last_errors.drain(..excess);
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        self.lock().clone()
    }
}

/// Outcome of one `doctor` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One `doctor` line: what was checked, what was found, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub level: Level,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &str, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            level: Level::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            level: Level::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            level: Level::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_errors() {
        let h = Health::new("k1", 0);
        for i in 0..25 {
            h.record_error(format!("e{i}"));
        }
        let s = h.snapshot();
        assert_eq!(s.last_errors.len(), MAX_LAST_ERRORS);
        assert_eq!(s.last_errors.last().map(String::as_str), Some("e24"));
    }

    #[test]
    fn adapter_state_serialises_with_reason() {
        let v = serde_json::to_value(AdapterState::Degraded("no device".into())).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"state": "degraded", "reason": "no device"})
        );
        assert!(!AdapterState::Degraded(String::new()).is_ok());
        assert!(AdapterState::Disabled("off".into()).is_ok());
    }
}
