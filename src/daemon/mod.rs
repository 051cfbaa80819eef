//! Daemon wiring: supervisor, adapters, shutdown, systemd notify and watchdog.
//!
//! `run` starts every adapter under the supervisor, tells systemd READY as soon as the
//! daemon can accept a scan (adapters that are missing hardware report degraded and keep
//! retrying), reloads what can change safely on SIGHUP ([`reload`]), and on SIGTERM, SIGINT or
//! SIGQUIT ends a live session with reason `shutdown`, flushes the store and exits within
//! [`SHUTDOWN_GRACE`].

mod call;
pub mod conversation;
pub mod directory;
pub mod driver;
pub mod faults;
mod live_call;
pub mod notify;
mod realtime_call;
pub mod reload;
pub mod supervisor;
pub mod watchdog;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use jarvis_badge::MemberLookup;
use jarvis_badge::cache::CachePolicy;
use jarvis_core::breaker::Breaker;
use jarvis_core::session::SessionMachine;

use crate::health;
use crate::health::report::Observer;
use crate::telemetry::{self, Installed};
use jarvis_config::{Config, ConfigSource, VoiceApi};
use jarvis_core::clock;
use jarvis_core::health::{AdapterState, Health};
use jarvis_store::{StoreHandle, StoreOptions};

pub use supervisor::{AdapterCtx, Supervisor};

/// systemd's default TimeoutStopSec is 90 s; we promise technicians far less.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// Runs the daemon until SIGTERM, SIGINT or SIGQUIT; `source` is re-read on SIGHUP.
pub async fn run(
    cfg: Config,
    source: ConfigSource,
    installed: Installed,
    started: Instant,
) -> anyhow::Result<()> {
    let span = telemetry::kiosk_span(&cfg.kiosk.id, &installed);
    async move {
        if let Installed::HumanFallback(why) = &installed {
            tracing::warn!("{why}");
        }
        let faults = faults::TestFaults::from_env().map_err(anyhow::Error::msg)?;
        if faults.any() {
            tracing::warn!(?faults, "{} is set: test faults are injected", faults::ENV);
        }
        let health = Health::new(&cfg.kiosk.id, clock::wall_ms());
        health.set_gauge(crate::health::OPENAI_API_GAUGE, api_name(cfg.openai.api));
        let shutdown = CancellationToken::new();
        let status_socket = open_status_socket(&cfg.health.runtime_dir, &health)?;

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
        let crashed = store.call(|s| s.end_crashed_sessions()).await.context("ending sessions a crash left open")?;
        for ended in &crashed {
            let cost = ended.payload.ended_cost().unwrap_or_default();
            health.session_ended("crashed", cost);
            health.record_error(format!("session {} was left open by a crash (kill -9, power cut): ended as `crashed` with {cost} recorded", ended.session_id.unwrap_or_default()));
        }

        let mut supervisor = Supervisor::new(health.clone(), shutdown.clone());
        let spent_today = {
            let calendar = cfg.kiosk.calendar();
            health.set_budget_time_zone(calendar.zone());
            let day_start = calendar.day_start_ms(calendar.day(clock::wall_ms()));
            store
                .call(move |s| s.spent_since(day_start))
                .await
                .context("reading today's spend from the local store")?
        };
        let settings = cfg.session_settings().map_err(|e| anyhow::anyhow!("{e}"))?;
        let machine = SessionMachine::new(settings, spent_today, clock::now(), Uuid::now_v7);

        let directory = Arc::new(directory::CachedDirectory(MemberLookup::new(
            directory::Members::from_config(&cfg),
            store.clone(),
            directory::badge_hasher(&cfg)?,
            CachePolicy::from_config(&cfg.badge),
        )));
        let (scan_tx, scans) = mpsc::channel(16);
        let reader = jarvis_badge::spawn_reader(&cfg.badge, &health, scan_tx)
            .context("starting the badge reader")?;
        let (playback, capture, mic) = jarvis_audio::start(&cfg.audio, health.clone());
        let playback = Arc::new(playback);
        // Idle until a session's conversation starts (the driver switches it).
        capture.set_live(false);
        let capture = Arc::new(capture);
        let realtime = Arc::new(realtime_deps(&cfg, &health, playback.clone())?);
        let heartbeat = watchdog::Heartbeat::new(driver::TICK);
        let (reload_tx, reloads) = mpsc::channel(1);
        let driver = driver::Driver {
            machine,
            store: store.clone(),
            health: health.clone(),
            directory,
            realtime,
            playback: playback.clone(),
            capture: capture.clone(),
            breaker: Breaker::new(cfg.openai.breaker_settings()),
            heartbeat: heartbeat.clone(),
            faults,
        };
        let driver_stop = CancellationToken::new();
        let inputs = driver::Inputs {
            scans,
            mic,
            reloads,
        };
        let driver_task =
            tokio::spawn(driver.run(inputs, driver_stop.clone()).in_current_span());
        if cfg.central.url.is_some() {
            let (cfg, store) = (cfg.clone(), store.clone());
            supervisor.spawn("central", move |ctx| {
                let (cfg, store) = (cfg.clone(), store.clone());
                async move {
                    jarvis_sync::run(cfg, store, ctx.health, ctx.shutdown).await;
                    Ok(())
                }
            });
        } else {
            health.set_adapter(
                "central",
                AdapterState::Disabled("central.url is not set: events stay local".into()),
            );
        }
        let (retention_store, retention_days) = (store.clone(), cfg.storage.retention_days);
        supervisor.spawn("retention", move |ctx| {
            prune_synced(retention_store.clone(), retention_days, ctx)
        });
        let observer = Observer {
            health: health.clone(),
            store: store.clone(),
        };
        let status_server = status_socket.map(|listener| {
            tokio::spawn(
                health::socket::serve(listener, observer.clone(), shutdown.clone())
                    .in_current_span(),
            )
        });
        let endpoint = match cfg.health.listen_addr() {
            Some(addr) => start_endpoint(addr, observer, &health, shutdown.clone()).await,
            None => None,
        };
        let watchdog = notify::watchdog_interval().map(|every| {
            tokio::spawn(
                watchdog::run(every, heartbeat.clone(), store.clone(), shutdown.clone())
                    .in_current_span(),
            )
        });

        // The DTLS certificate takes ~200 ms to generate: make it now, off the runtime, so
        // the first member does not wait for it.
        tokio::task::spawn_blocking(|| {
            if let Err(e) = jarvis_realtime::peer::warm_up() {
                tracing::warn!(error = %e, "cannot prepare the WebRTC certificate");
            }
        });
        // Before READY: a reload or stop sent as soon as systemd sees the daemon up must find
        // its handler, not the default action (SIGHUP would kill).
        let mut signals = Signals::install().context("installing signal handlers")?;
        let startup_ms = started.elapsed().as_millis() as u64;
        notify::ready(&format!("ready in {startup_ms} ms; idle"));
        tracing::info!(startup_ms, version = jarvis_core::VERSION, "ready");

        let mut running = cfg.clone();
        let signal = loop {
            match signals.next().await {
                Wake::Reload => {
                    if let Some(r) = reload::reload(&running, &source, &health, playback.clone()) {
                        running = r.config;
                        let _ = reload_tx.send(r.driver).await;
                    }
                }
                Wake::Stop(signal) => break signal,
            }
        };
        tracing::info!(signal, "shutting down");
        notify::stopping();
        driver_stop.cancel();
        match tokio::time::timeout(SHUTDOWN_GRACE, driver_task).await {
            Ok(Ok(machine)) => {
                tracing::info!(spent_today = %machine.spent_today(), "lifecycle stopped")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "the lifecycle task failed"),
            Err(_) => tracing::error!("the lifecycle did not stop in time"),
        }
        if let Some(reader) = reader {
            reader.stop();
        }
        // The stopped lifecycle has dropped its handle; if it did not stop in time, capture
        // closes with the runtime.
        if let Ok(capture) = Arc::try_unwrap(capture) {
            capture.stop();
        }
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
        if let Ok(playback) = Arc::try_unwrap(playback) {
            playback.stop();
        }
        for task in [status_server, endpoint, watchdog].into_iter().flatten() {
            let _ = task.await;
        }
        tracing::info!("stopped");
        Ok(())
    }
    .instrument(span)
    .await
}

/// `openai.api` as `status` and `/metrics` show it.
pub(crate) fn api_name(api: VoiceApi) -> &'static str {
    match api {
        VoiceApi::Realtime => "realtime",
        VoiceApi::Live => "live",
    }
}

/// The Realtime side's long-lived parts. Missing credentials do not stop the daemon: the
/// `realtime` adapter shows why, and each scan gets the "unavailable" prompt.
pub(crate) fn realtime_deps(
    cfg: &Config,
    health: &Health,
    playback: Arc<jarvis_audio::Playback>,
) -> anyhow::Result<conversation::RealtimeDeps> {
    use jarvis_realtime::{credentials::Credentials, session_update::InstructionsTemplate};
    let credentials = match cfg.openai.api {
        VoiceApi::Realtime => Credentials::from_config(&cfg.openai),
        VoiceApi::Live => {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY");
            Credentials::for_live(&cfg.openai, dir.as_deref().map(std::path::Path::new))
        }
    }
    .map_err(|e| e.to_string());
    match &credentials {
        Ok(_) => health.set_adapter("realtime", AdapterState::Up),
        Err(e) => health.set_adapter("realtime", AdapterState::Degraded(e.clone())),
    }
    Ok(conversation::RealtimeDeps {
        cfg: cfg.openai.clone(),
        http: jarvis_realtime::http::http_client(&cfg.openai)
            .context("building the HTTP client")?,
        credentials,
        pricing: Arc::new(
            jarvis_core::metering::Pricing::from_config(&cfg.pricing)
                .context("the pricing table")?,
        ),
        template: InstructionsTemplate::load(&cfg.openai).context("openai.instructions_file")?,
        delegation_instructions: match cfg.openai.api {
            VoiceApi::Live => jarvis_realtime::live::sessions::delegation_instructions(&cfg.openai)
                .map_err(anyhow::Error::msg)?,
            VoiceApi::Realtime => String::new(),
        },
        playback,
        health: health.clone(),
        log_transcripts: cfg.log.transcripts,
    })
}

/// The signals the daemon acts on: SIGHUP reloads, the terminating ones stop it cleanly
/// (a live session ends `shutdown`, its usage recorded).
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

enum Wake {
    Reload,
    Stop(&'static str),
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    async fn next(&mut self) -> Wake {
        tokio::select! {
            _ = self.hup.recv() => Wake::Reload,
            _ = self.term.recv() => Wake::Stop("SIGTERM"),
            _ = self.int.recv() => Wake::Stop("SIGINT"),
            _ = self.quit.recv() => Wake::Stop("SIGQUIT"),
        }
    }
}

/// Binds the status socket before anything else opens the scanner or the store, so a second
/// daemon on the same kiosk stops at once. Any other failure only costs `status` its view.
fn open_status_socket(
    runtime_dir: &std::path::Path,
    health: &Health,
) -> anyhow::Result<Option<tokio::net::UnixListener>> {
    if let Err(e) = std::fs::create_dir_all(runtime_dir) {
        tracing::warn!(dir = %runtime_dir.display(), error = %e, "cannot create health.runtime_dir");
    }
    match health::socket::bind(runtime_dir) {
        Ok(listener) => Ok(Some(listener)),
        Err(e @ health::socket::SocketBindError::AlreadyRunning { .. }) => Err(e.into()),
        Err(e) => {
            tracing::warn!("{e}; `jarvis-kiosk status` will not see this daemon");
            health.record_error(e.to_string());
            Ok(None)
        }
    }
}

/// Starts `/healthz` and `/metrics`; a port already taken costs the endpoint, not the kiosk.
async fn start_endpoint(
    addr: std::net::SocketAddr,
    observer: Observer,
    health: &Health,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    match health::endpoint::bind(addr).await {
        Ok(listener) => {
            tracing::info!(%addr, "health endpoint listening (/healthz, /metrics)");
            Some(tokio::spawn(
                health::endpoint::serve(listener, observer, shutdown).in_current_span(),
            ))
        }
        Err(e) => {
            tracing::error!("{e}");
            health.record_error(e.to_string());
            None
        }
    }
}

/// How often synced events past `storage.retention_days` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Retention: synced events older than `storage.retention_days` leave the local store.
/// A failure returns, so the supervisor shows it and retries with backoff.
async fn prune_synced(
    store: StoreHandle,
    retention_days: u32,
    ctx: AdapterCtx,
) -> anyhow::Result<()> {
    loop {
        let cutoff = jarvis_store::retention_cutoff_ms(clock::wall_ms(), retention_days);
        let pruned = store
            .call(move |s| s.prune_synced(cutoff))
            .await
            .context("pruning synced events (storage.retention_days)")?;
        ctx.up();
        if pruned > 0 {
            tracing::info!(pruned, retention_days, "pruned synced events");
        }
        tokio::select! {
            () = tokio::time::sleep(PRUNE_EVERY) => {}
            () = ctx.shutdown.cancelled() => return Ok(()),
        }
    }
}
