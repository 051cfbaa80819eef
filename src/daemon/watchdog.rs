//! systemd's watchdog, fed by the work itself: `WATCHDOG=1` goes out only when the lifecycle
//! loop has turned and a store round trip completed within the interval, so a loop stuck on
//! a store call or deadlocked gets the daemon restarted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use jarvis_core::clock;
use jarvis_store::StoreHandle;

/// The lifecycle loop's last turn (monotonic ms), shared with the watchdog, and the longest
/// the loop goes without turning when nothing happens (its tick).
#[derive(Debug, Clone)]
pub struct Heartbeat {
    last_ms: Arc<AtomicU64>,
    tick: Duration,
}

impl Heartbeat {
    /// A heartbeat for a loop that turns at least once every `tick`.
    pub fn new(tick: Duration) -> Self {
        Heartbeat {
            last_ms: Arc::default(),
            tick,
        }
    }

    /// The loop turned now.
    pub fn beat(&self) {
        self.last_ms.store(clock::mono_ms(), Ordering::Relaxed);
    }

    fn last(&self) -> u64 {
        self.last_ms.load(Ordering::Relaxed)
    }
}

/// Whether the loop beat recently enough: within the ping interval plus one tick (the loop
/// turns at least once a tick when nothing else happens).
pub fn loop_alive(last_beat_ms: u64, now_ms: u64, every: Duration, tick: Duration) -> bool {
    let limit = (every + tick).as_millis() as u64;
    now_ms.saturating_sub(last_beat_ms) <= limit
}

/// Pings every `every` while the loop beats and the store answers within `every`.
pub async fn run(
    every: Duration,
    heartbeat: Heartbeat,
    store: StoreHandle,
    shutdown: CancellationToken,
) {
    let mut quiet = false;
    loop {
        let store_ok = tokio::select! {
            r = tokio::time::timeout(every, store.call(|_| Ok(()))) => matches!(r, Ok(Ok(()))),
            () = shutdown.cancelled() => return,
        };
        let alive = loop_alive(heartbeat.last(), clock::mono_ms(), every, heartbeat.tick);
        if alive && store_ok {
            quiet = false;
            super::notify::watchdog();
        } else if !quiet {
            quiet = true;
            tracing::error!(
                lifecycle_loop = if alive { "turning" } else { "stuck" },
                store = if store_ok {
                    "answering"
                } else {
                    "not answering"
                },
                "not pinging the systemd watchdog: it will restart the daemon"
            );
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_is_alive_only_if_it_beat_within_the_interval_and_a_tick() {
        const TICK: Duration = Duration::from_millis(250);
        let every = Duration::from_secs(1);
        assert!(loop_alive(10_000, 10_000, every, TICK));
        assert!(loop_alive(10_000, 11_250, every, TICK));
        assert!(!loop_alive(10_000, 11_251, every, TICK));
        assert!(
            loop_alive(10_000, 9_000, every, TICK),
            "a beat after the read is alive"
        );
    }
}
