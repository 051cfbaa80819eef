//! One task per adapter, restarted with backoff when it fails, its state kept in health.
//!
//! An adapter is an async function that runs until shutdown; returning an error means
//! "I cannot do my job right now" (device unplugged, network down). The supervisor marks it
//! degraded with that error, waits (exponential backoff with jitter, `backon`), and starts it
//! again, so a missing scanner or sound card never stops the daemon.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use jarvis_core::health::{AdapterState, Health};
use jarvis_core::retry::RetryPolicy;

/// A run this long is "stable": the next failure starts the backoff from the beginning.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// What an adapter gets each time it is started.
#[derive(Clone)]
pub struct AdapterCtx {
    pub health: Health,
    pub shutdown: CancellationToken,
    pub name: &'static str,
}

impl AdapterCtx {
    /// Reports the adapter as up (call once it really works, e.g. the device opened).
    pub fn up(&self) {
        self.health.set_adapter(self.name, AdapterState::Up);
    }

    pub fn degraded(&self, reason: impl Into<String>) {
        self.health
            .set_adapter(self.name, AdapterState::Degraded(reason.into()));
    }
}

/// Owns the adapter tasks; dropping it does not stop them, [`Supervisor::shutdown`] does.
pub struct Supervisor {
    health: Health,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Supervisor {
    pub fn new(health: Health, shutdown: CancellationToken) -> Self {
        Supervisor {
            health,
            shutdown,
            tasks: JoinSet::new(),
        }
    }

    /// Starts `make` now and again after every failure, until shutdown.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, mut make: F)
    where
        F: FnMut(AdapterCtx) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let ctx = AdapterCtx {
            health: self.health.clone(),
            shutdown: self.shutdown.clone(),
            name,
        };
        ctx.health.set_adapter(name, AdapterState::Starting);
        let span = tracing::info_span!("adapter", adapter = name);
        self.tasks.spawn(
            async move {
                let mut backoff = RetryPolicy::ADAPTER_RESTART.backoff();
                let mut last_error = String::new();
                loop {
                    let started = Instant::now();
                    let result = tokio::select! {
                        r = make(ctx.clone()) => r,
                        () = ctx.shutdown.cancelled() => return,
                    };
                    if ctx.shutdown.is_cancelled() {
                        return;
                    }
                    let error = match result {
                        Ok(()) => "stopped unexpectedly".to_owned(),
                        Err(e) => format!("{e:#}"),
                    };
                    if error != last_error {
                        tracing::warn!(error = %error, "adapter failed; restarting with backoff");
                        ctx.health.record_error(format!("{name}: {error}"));
                        last_error.clone_from(&error);
                    }
                    ctx.health.add(&format!("{name}_restarts"), 1);
                    ctx.degraded(error);
                    if started.elapsed() >= STABLE_AFTER {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = ctx.shutdown.cancelled() => return,
                    }
                }
            }
            .instrument(span),
        );
    }

    /// Cancels every adapter and waits for them, at most `grace`. Returns how many were
    /// still running when the grace period ran out (they are aborted).
    pub async fn shutdown(mut self, grace: Duration) -> usize {
        self.shutdown.cancel();
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_ok() {
            0
        } else {
            let left = self.tasks.len();
            self.tasks.abort_all();
            left
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn failing_adapter_is_restarted_and_marked_degraded() {
        let health = Health::new("k", 0);
        let token = CancellationToken::new();
        let mut sup = Supervisor::new(health.clone(), token.clone());
        let starts = Arc::new(AtomicU32::new(0));
        let s = starts.clone();
        sup.spawn("scanner", move |_ctx| {
            let s = s.clone();
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                anyhow::bail!("/dev/ttyACM0: No such file or directory")
            }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(starts.load(Ordering::SeqCst) >= 3);
        let snap = health.snapshot();
        assert_eq!(
            snap.adapters["scanner"],
            AdapterState::Degraded("/dev/ttyACM0: No such file or directory".into())
        );
        assert_eq!(snap.last_errors.len(), 1, "same error logged once");
        assert_eq!(sup.shutdown(Duration::from_secs(1)).await, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_running_adapters() {
        let health = Health::new("k", 0);
        let token = CancellationToken::new();
        let mut sup = Supervisor::new(health.clone(), token);
        sup.spawn("audio", |ctx| async move {
            ctx.up();
            ctx.shutdown.cancelled().await;
            Ok(())
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(health.snapshot().adapters["audio"], AdapterState::Up);
        assert_eq!(sup.shutdown(Duration::from_secs(1)).await, 0);
    }
}
