//! Daemon wiring: supervisor, adapters, shutdown, systemd notify and watchdog.
//!
//! `run` starts every adapter under the supervisor, tells systemd READY as soon as the
//! daemon can accept a scan (adapters that are missing hardware report degraded and keep
//! retrying), and on SIGTERM/SIGINT ends a live session with reason `shutdown`, flushes the
//! store and exits within [`SHUTDOWN_GRACE`].

pub mod notify;
pub mod state_file;
pub mod supervisor;

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Config;
use crate::health::{AdapterState, Health};
use crate::store::{StoreHandle, StoreOptions};
use crate::telemetry::{self, Installed};

pub use supervisor::{AdapterCtx, Supervisor};

/// systemd's default TimeoutStopSec is 90 s; we promise technicians far less.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);
/// How often the health snapshot is republished for `status`.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(cfg: Config, installed: Installed, started: Instant) -> anyhow::Result<()> {
    let span = telemetry::kiosk_span(&cfg.kiosk.id, &installed);
    async move {
        if let Installed::HumanFallback(why) = &installed {
            tracing::warn!("{why}");
        }
        let health = Health::new(&cfg.kiosk.id, now_ms());
        let shutdown = CancellationToken::new();
        let runtime_dir = cfg.health.runtime_dir.clone();
        if let Err(e) = std::fs::create_dir_all(&runtime_dir) {
            tracing::warn!(
                dir = %runtime_dir.display(),
                error = %e,
                "cannot create health.runtime_dir; `jarvis-kiosk status` will not see this daemon"
            );
        }

        let (store, report) = StoreHandle::open(StoreOptions::from_config(&cfg.storage))
            .await
            .context("opening the local store")?;
        if let Some(r) = &report.recovered {
            tracing::error!(recovery = ?r, "the local store was corrupt: moved aside, started a fresh one");
            health.record_error(format!("store recovered: {r:?}"));
        }
        tracing::info!(
            path = %report.path.display(),
            schema = report.schema_version,
            check_ms = report.check_ms,
            "local store open"
        );
        health.set_adapter("store", AdapterState::Up);

        let supervisor = Supervisor::new(health.clone(), shutdown.clone());
        let publisher = tokio::spawn(
            publish_health(health.clone(), runtime_dir.clone(), shutdown.clone()).in_current_span(),
        );
        let watchdog = notify::watchdog_interval()
            .map(|every| tokio::spawn(ping_watchdog(every, shutdown.clone())));

        health.set_lifecycle("idle");
        let startup_ms = started.elapsed().as_millis() as u64;
        notify::ready(&format!("ready in {startup_ms} ms; idle"));
        tracing::info!(startup_ms, version = crate::VERSION, "ready");

        let signal = wait_for_signal()
            .await
            .context("installing signal handlers")?;
        tracing::info!(signal, "shutting down");
        notify::stopping();
        let left = supervisor.shutdown(SHUTDOWN_GRACE).await;
        if left > 0 {
            tracing::warn!(
                adapters = left,
                "adapters did not stop in time and were aborted"
            );
        }
        shutdown.cancel();
        // Jobs run in order: once this barrier returns, every queued append has committed.
        if let Err(e) = store.call(|_| Ok(())).await {
            tracing::error!(error = %e, "flushing the local store");
        }
        drop(store);
        let _ = publisher.await;
        if let Some(w) = watchdog {
            let _ = w.await;
        }
        state_file::remove(&runtime_dir);
        tracing::info!("stopped");
        Ok(())
    }
    .instrument(span)
    .await
}

async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

async fn publish_health(health: Health, dir: std::path::PathBuf, shutdown: CancellationToken) {
    let mut warned = false;
    loop {
        if let Err(e) = state_file::write(&dir, &health.snapshot())
            && !warned
        {
            tracing::warn!(error = %format!("{e:#}"), "cannot publish health for `status`");
            warned = true;
        }
        tokio::select! {
            () = tokio::time::sleep(PUBLISH_EVERY) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

async fn ping_watchdog(every: Duration, shutdown: CancellationToken) {
    loop {
        notify::watchdog();
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch (for records; timers use `Instant`).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
