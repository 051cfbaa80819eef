//! The sync worker: drains the local outbox into central `kiosk_events`, forever.
//!
//! Order of work on each turn: build the connection target (config and password file),
//! connect, check the central schema and the kiosk's identity, then read the oldest pending
//! events and let [`BatchPolicy`] decide whether to send. A batch is one statement; its
//! events are marked synced only after it committed. Failures follow [`classify`]:
//! transient ones retry the same events with backoff, poisoned batches are bisected
//! ([`Isolation`]) so only the event refused for its own content is dead-lettered (with an
//! alert event); set-up problems (missing migration, unregistered role, a revoked grant, a
//! failing trigger) stall the sync, degrade `central` with the cause and its fix, raise one
//! critical `central_setup` alert, and are re-checked.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::conn::CentralTarget;
use super::heartbeat::{self, Backlog};
use super::isolate::{Isolation, Refusal};
use super::schema;
use super::writer::{Writer, encode_batch};
use jarvis_config::Config;
use jarvis_core::clock;
use jarvis_core::events::{EventKind, EventPayload, KioskEvent, Severity};
use jarvis_core::health::{AdapterState, Health};
use jarvis_core::retry::{Backoff, RetryPolicy};
use jarvis_core::sync_policy::{BatchDecision, BatchPolicy, FailureClass, classify};
use jarvis_store::{StoreHandle, StoredEvent};

/// The health adapter name of the sync.
pub const ADAPTER: &str = "central";
/// Code of the critical alert raised when central refuses inserts for its set-up.
pub const SETUP_ALERT_CODE: &str = "central_setup";
/// Health counter: connections to central made again after one was lost.
pub const COUNTER_RECONNECTS: &str = "central_reconnects";

/// How the worker paces itself; built from `central.*` by [`SyncSettings::from_config`].
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub kiosk_id: String,
    pub batch: BatchPolicy,
    pub retry: RetryPolicy,
    /// `central.heartbeat_s`.
    pub heartbeat_every: Duration,
    /// Pause before checking again after a set-up problem (missing migration or role).
    pub setup_retry: Duration,
    /// Longest wait for one statement (or a connection) before it counts as a network failure.
    pub statement_timeout: Duration,
    /// Longest sleep when nothing is pending (new events are picked up within this).
    pub idle_poll: Duration,
    /// `storage.path`, for the free-disk figure of heartbeats.
    pub storage_path: PathBuf,
}

impl SyncSettings {
    pub fn from_config(cfg: &Config) -> Self {
        let c = &cfg.central;
        SyncSettings {
            kiosk_id: cfg.kiosk.id.clone(),
            batch: BatchPolicy {
                max_events: c.batch_max_events,
                max_wait_ms: c.batch_max_ms,
            },
            retry: RetryPolicy::CENTRAL_SYNC,
            heartbeat_every: Duration::from_secs(c.heartbeat_s.max(1)),
            setup_retry: Duration::from_secs(30),
            statement_timeout: Duration::from_secs(30),
            idle_poll: Duration::from_millis(c.batch_max_ms.clamp(50, 1000)),
            storage_path: cfg.storage.path.clone(),
        }
    }
}

/// Why the worker cannot proceed right now.
#[derive(Debug, thiserror::Error)]
enum Stall {
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Transient(String),
}

/// Runs the sync until `shutdown`. Never returns early: every problem (bad URL, unreadable
/// password file, central unreachable, missing migration) is reported as `central` degraded
/// in health, logged once per change, and retried, while events stay buffered locally.
/// With `central.url` unset, reports `central` disabled and waits for shutdown.
pub async fn run(cfg: Config, store: StoreHandle, health: Health, shutdown: CancellationToken) {
    if cfg.central.url.is_none() {
        health.set_adapter(
            ADAPTER,
            AdapterState::Disabled("central.url is not set: events are kept locally only".into()),
        );
        shutdown.cancelled().await;
        return;
    }
    let settings = SyncSettings::from_config(&cfg);
    let mut worker = Worker::new(settings, store, health);
    loop {
        let pause = worker.turn(&cfg).await;
        if pause.is_zero() {
            if shutdown.is_cancelled() {
                return;
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Runs the sync against an explicit target (tests, benchmarks, tools) until `shutdown`.
pub async fn run_with_target(
    target: CentralTarget,
    settings: SyncSettings,
    store: StoreHandle,
    health: Health,
    shutdown: CancellationToken,
) {
    let mut worker = Worker::new(settings, store, health);
    worker.target = Some(target);
    loop {
        let pause = worker.step().await;
        if shutdown.is_cancelled() {
            return;
        }
        if pause.is_zero() {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

struct Worker {
    settings: SyncSettings,
    store: StoreHandle,
    health: Health,
    target: Option<CentralTarget>,
    writer: Option<Writer>,
    /// A connection was made before: the next one is a reconnect.
    connected_once: bool,
    /// Schema and identity checked on the current connection.
    checked: bool,
    backoff: Backoff,
    next_heartbeat: Instant,
    last_problem: Option<String>,
    /// The set-up cause last alerted on, so a stall raises one alert, not one per retry.
    last_setup_alert: Option<String>,
}

impl Worker {
    fn new(settings: SyncSettings, store: StoreHandle, health: Health) -> Self {
        health.set_adapter(ADAPTER, AdapterState::Starting);
        Worker {
            backoff: settings.retry.backoff(),
            next_heartbeat: Instant::now(),
            settings,
            store,
            health,
            target: None,
            writer: None,
            connected_once: false,
            checked: false,
            last_problem: None,
            last_setup_alert: None,
        }
    }

    /// One turn with the target built from the configuration when needed.
    async fn turn(&mut self, cfg: &Config) -> Duration {
        if self.target.is_none() {
            match CentralTarget::from_config(&cfg.central, &cfg.kiosk.id) {
                Ok(Some(t)) => {
                    tracing::info!(central = %t.display(), ssl = ?t.ssl_mode(), "central sync target");
                    self.target = Some(t);
                }
                Ok(None) => return self.settings.setup_retry,
                Err(e) => {
                    self.degraded(e.to_string());
                    self.heartbeat_if_due().await;
                    return self.settings.setup_retry;
                }
            }
        }
        self.step().await
    }

    /// One unit of work; returns how long to pause before the next.
    async fn step(&mut self) -> Duration {
        self.heartbeat_if_due().await;
        match self.sync_once().await {
            Ok(pause) => pause,
            Err(Stall::Setup(msg)) => {
                self.checked = false;
                self.degraded(msg);
                self.settings.setup_retry
            }
            Err(Stall::Transient(msg)) => {
                self.degraded(msg);
                self.backoff.next_delay()
            }
        }
    }

    async fn sync_once(&mut self) -> Result<Duration, Stall> {
        self.ensure_ready().await?;
        let max = self.settings.batch.max_events.max(1);
        let mut events = self
            .store
            .call(move |s| s.pending(max))
            .await
            .map_err(|e| Stall::Transient(format!("cannot read the local outbox: {e}")))?;
        let age = events.first().map_or(0, |e| {
            (clock::wall_ms() - e.event.occurred_at_ms).max(0) as u64
        });
        match self.settings.batch.decide(events.len(), age) {
            BatchDecision::Idle => {
                self.up();
                Ok(self.settings.idle_poll)
            }
            BatchDecision::Wait(d) => Ok(d.min(self.settings.idle_poll)),
            BatchDecision::Send(n) => {
                events.truncate(n);
                self.send(&events).await?;
                Ok(Duration::ZERO)
            }
        }
    }

    /// Connects and checks the schema and identity if not done on this connection.
    async fn ensure_ready(&mut self) -> Result<(), Stall> {
        if self.writer.as_ref().is_some_and(Writer::is_closed) {
            self.writer = None;
        }
        if self.writer.is_none() {
            self.checked = false;
            let Some(target) = &self.target else {
                return Err(Stall::Setup("central.url is not set".into()));
            };
            let connected =
                tokio::time::timeout(self.settings.statement_timeout, Writer::connect(target))
                    .await;
            let writer = match connected {
                Ok(Ok(w)) => w,
                Ok(Err(e)) => {
                    let msg = format!(
                        "cannot connect to central {}: {}",
                        target.display(),
                        pg_error(&e)
                    );
                    return Err(match classify(sqlstate(&e)) {
                        FailureClass::Setup => Stall::Setup(format!(
                            "{msg}; check central.url and central.password_file"
                        )),
                        _ => Stall::Transient(msg),
                    });
                }
                Err(_) => {
                    return Err(Stall::Transient(format!(
                        "cannot connect to central {}: timed out",
                        target.display()
                    )));
                }
            };
            if self.connected_once {
                self.health.add(COUNTER_RECONNECTS, 1);
            }
            self.connected_once = true;
            self.writer = Some(writer);
        }
        if !self.checked {
            self.check().await?;
            self.checked = true;
            self.up();
        }
        Ok(())
    }

    async fn check(&mut self) -> Result<(), Stall> {
        let Some(w) = &self.writer else {
            return Err(Stall::Transient("not connected".into()));
        };
        let found = w.probe_schema().await.map_err(|e| self.stall(&e))?;
        if let Some(msg) = schema::explain(&schema::missing(&found)) {
            return Err(Stall::Setup(msg));
        }
        let (kiosk, can_insert) = w.identity().await.map_err(|e| self.stall(&e))?;
        if let Some(msg) =
            schema::explain_identity(&self.settings.kiosk_id, kiosk.as_deref(), can_insert)
        {
            return Err(Stall::Setup(msg));
        }
        Ok(())
    }

    /// Sends one batch, bisecting it if central refuses its data.
    async fn send(&mut self, events: &[StoredEvent]) -> Result<(), Stall> {
        let mut iso = Isolation::new(events.len());
        while let Some(range) = iso.next() {
            let part = &events[range.clone()];
            let json = match encode_batch(
                &self.settings.kiosk_id,
                part.iter().map(|e| (e.seq, &e.event)),
            ) {
                Ok(j) => j,
                Err(e) => {
                    if let Refusal::DeadLetter(i) = iso.refused() {
                        self.dead_letter(&events[i], &format!("cannot encode: {e}"))
                            .await?;
                    }
                    continue;
                }
            };
            let Some(w) = &self.writer else {
                return Err(Stall::Transient("not connected".into()));
            };
            let result =
                tokio::time::timeout(self.settings.statement_timeout, w.insert(&json)).await;
            match result {
                Ok(Ok(inserted)) => {
                    let seqs: Vec<i64> = part.iter().map(|e| e.seq).collect();
                    let n = seqs.len() as u64;
                    self.store
                        .call(move |s| s.mark_synced(&seqs))
                        .await
                        .map_err(|e| Stall::Transient(format!("cannot mark events synced: {e}")))?;
                    iso.sent();
                    self.health.add("central_events_sent", n);
                    self.health
                        .add("central_events_duplicate", n.saturating_sub(inserted));
                    self.health
                        .set_gauge("central_last_sync_ms", clock::wall_ms());
                    self.backoff.reset();
                }
                Ok(Err(e)) => match classify(sqlstate(&e)) {
                    FailureClass::Poison => {
                        if let Refusal::DeadLetter(i) = iso.refused() {
                            self.dead_letter(&events[i], &pg_error(&e)).await?;
                        }
                    }
                    FailureClass::Setup => {
                        self.checked = false;
                        let why = setup_fix(&e);
                        self.alert_setup(&why).await;
                        return Err(Stall::Setup(why));
                    }
                    FailureClass::Transient => {
                        let msg = pg_error(&e);
                        let first = part[0].seq;
                        let note = msg.clone();
                        let _ = self
                            .store
                            .call(move |s| s.record_failure(first, &note))
                            .await;
                        if w.is_closed() {
                            self.writer = None;
                        }
                        return Err(Stall::Transient(format!(
                            "sending to central failed: {msg}"
                        )));
                    }
                },
                Err(_) => {
                    // The statement may still commit: the retry is harmless (ON CONFLICT).
                    self.writer = None;
                    return Err(Stall::Transient(format!(
                        "sending to central timed out after {:?}",
                        self.settings.statement_timeout
                    )));
                }
            }
        }
        Ok(())
    }

    /// Parks a refused event locally and raises an alert event about it.
    async fn dead_letter(&mut self, ev: &StoredEvent, reason: &str) -> Result<(), Stall> {
        let seq = ev.seq;
        let why = format!("central refused it: {reason}");
        let note = why.clone();
        self.store
            .call(move |s| s.dead_letter(seq, &note))
            .await
            .map_err(|e| Stall::Transient(format!("cannot dead-letter event {seq}: {e}")))?;
        self.health.add("central_dead_letters", 1);
        let message = format!(
            "event {} ({}, seq {seq}) was dead-lettered: {why}; see `jarvis-kiosk outbox dead-letters`, fix, then `jarvis-kiosk outbox retry`",
            ev.event.event_id,
            ev.event.kind().as_str()
        );
        tracing::warn!(seq, event_id = %ev.event.event_id, reason, "event dead-lettered");
        self.health.record_error(message.clone());
        // An alert about a refused alert could be refused the same way: log it only.
        if ev.event.kind() != EventKind::Alert {
            let alert = KioskEvent::new(
                None,
                clock::wall_ms(),
                EventPayload::Alert {
                    code: "sync_dead_letter".into(),
                    severity: Severity::Warning,
                    message,
                },
            );
            self.store
                .call(move |s| s.append(&alert))
                .await
                .map_err(|e| Stall::Transient(format!("cannot record the alert: {e}")))?;
        }
        Ok(())
    }

    /// Records a critical alert the first time a set-up cause stalls the sync (not on every
    /// retry): it lands centrally once the cause is fixed, and shows locally meanwhile.
    async fn alert_setup(&mut self, why: &str) {
        if self.last_setup_alert.as_deref() == Some(why) {
            return;
        }
        self.last_setup_alert = Some(why.to_owned());
        tracing::error!(problem = why, "central sync stalled on a set-up problem");
        let alert = KioskEvent::new(
            None,
            clock::wall_ms(),
            EventPayload::Alert {
                code: SETUP_ALERT_CODE.into(),
                severity: Severity::Critical,
                message: why.to_owned(),
            },
        );
        if let Err(e) = self.store.call(move |s| s.append(&alert)).await {
            tracing::warn!(error = %e, "cannot record the central set-up alert");
        }
    }

    /// Appends a heartbeat event when one is due (also while central is unreachable).
    async fn heartbeat_if_due(&mut self) {
        if Instant::now() < self.next_heartbeat {
            return;
        }
        self.next_heartbeat = Instant::now() + self.settings.heartbeat_every;
        let stats = match self.store.call(|s| s.stats()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no heartbeat: cannot read outbox stats");
                return;
            }
        };
        let backlog = Backlog {
            pending: stats.pending,
            oldest_pending_ms: stats.oldest_pending_ms,
            dead: stats.dead,
        };
        self.health.set_gauge("outbox_backlog", backlog.pending);
        let now = clock::wall_ms();
        let free = heartbeat::free_disk_bytes(&self.settings.storage_path);
        let health = heartbeat::payload(&self.health.snapshot(), backlog, free, now);
        let event = KioskEvent::new(None, now, EventPayload::Heartbeat { health });
        if let Err(e) = self.store.call(move |s| s.append(&event)).await {
            tracing::warn!(error = %e, "cannot record a heartbeat");
        }
    }

    fn stall(&self, e: &tokio_postgres::Error) -> Stall {
        match classify(sqlstate(e)) {
            FailureClass::Transient => {
                Stall::Transient(format!("central check failed: {}", pg_error(e)))
            }
            _ => Stall::Setup(format!(
                "central check failed: {}; run scripts/central-migrate.sh on the central database",
                pg_error(e)
            )),
        }
    }

    fn up(&mut self) {
        self.last_setup_alert = None;
        if self.last_problem.take().is_some() {
            tracing::info!("central sync recovered");
        }
        self.health.set_adapter(ADAPTER, AdapterState::Up);
    }

    fn degraded(&mut self, msg: String) {
        if self.last_problem.as_deref() != Some(msg.as_str()) {
            tracing::warn!(problem = %msg, "central sync degraded; events stay buffered locally");
            self.health.record_error(format!("{ADAPTER}: {msg}"));
            self.last_problem = Some(msg.clone());
        }
        self.health
            .set_adapter(ADAPTER, AdapterState::Degraded(msg));
    }
}

/// What to fix on central when it refused an insert for its set-up rather than the data:
/// the server's message, where it was raised (the function of a failing trigger), and the fix.
fn setup_fix(e: &tokio_postgres::Error) -> String {
    let code = sqlstate(e).unwrap_or_default();
    let place = e
        .as_db_error()
        .and_then(|d| d.where_())
        .map(|w| format!(" (raised in {})", w.replace('\n', "; ")))
        .unwrap_or_default();
    let fix = if code == "42501" {
        "the kiosk's login role lacks a privilege or a row-level security policy refuses its own \
         rows: restore kiosk_service's grants and the policy kiosk_events_insert_own (re-run \
         scripts/central-migrate.sh: 0005_security.sql) and check the login role is a member of \
         kiosk_service"
    } else if code.starts_with("42") || code.starts_with("0A") {
        "the central schema does not match this kiosk: run scripts/central-migrate.sh on the \
         central database"
    } else {
        "a trigger or function on kiosk_events fails for every event, not for one event's \
         content: fix or drop it on the central database"
    };
    format!(
        "central refused the insert: {}{place}; {fix}. No event was dead-lettered: events stay \
         buffered and are sent once this is fixed",
        pg_error(e)
    )
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// The server's message with its SQLSTATE, or the client-side cause chain.
fn pg_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
