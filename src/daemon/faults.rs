//! Faults the integration tests inject into the real daemon, from `JARVIS_KIOSK_TEST_FAULTS`.
//!
//! Production never sets the variable, and the daemon logs a warning when it is set, so a
//! fault can never be active unnoticed. Comma-separated `name=milliseconds` pairs:
//! - `stall-lifecycle-after-ms=N`: the lifecycle loop stops for good N ms after start-up (a
//!   deadlock or a store call that never returns), to prove the watchdog stops pinging;
//! - `store-delay-ms=N`: every event append waits N ms on the store thread first (a slow SD
//!   card's fsync), to prove the microphone does not wait on the store.

use std::time::Duration;

/// The variable the faults are read from.
pub const ENV: &str = "JARVIS_KIOSK_TEST_FAULTS";

/// The faults in effect (none in production).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestFaults {
    pub stall_lifecycle_after: Option<Duration>,
    pub store_delay: Option<Duration>,
}

impl TestFaults {
    /// Reads [`ENV`]; unknown or malformed entries are named in the error.
    pub fn from_env() -> Result<TestFaults, String> {
        match std::env::var(ENV) {
            Ok(spec) => TestFaults::parse(&spec),
            Err(_) => Ok(TestFaults::default()),
        }
    }

    fn parse(spec: &str) -> Result<TestFaults, String> {
        let mut faults = TestFaults::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, ms) = entry
                .split_once('=')
                .and_then(|(n, v)| Some((n, v.parse::<u64>().ok()?)))
                .ok_or_else(|| format!("{ENV}: `{entry}` is not name=milliseconds"))?;
            let d = Some(Duration::from_millis(ms));
            match name {
                "stall-lifecycle-after-ms" => faults.stall_lifecycle_after = d,
                "store-delay-ms" => faults.store_delay = d,
                other => return Err(format!("{ENV}: unknown fault `{other}`")),
            }
        }
        Ok(faults)
    }

    pub fn any(&self) -> bool {
        *self != TestFaults::default()
    }
}

/// The injected stall: says so to systemd's status (the tests watch it), then never returns.
pub async fn stall_forever() {
    tracing::warn!("test fault: the lifecycle loop stalls for good");
    super::notify::status("test fault: lifecycle stalled");
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_faults_and_names_bad_ones() {
        let f = TestFaults::parse("stall-lifecycle-after-ms=1500, store-delay-ms=500").unwrap();
        assert_eq!(f.stall_lifecycle_after, Some(Duration::from_millis(1500)));
        assert_eq!(f.store_delay, Some(Duration::from_millis(500)));
        assert!(f.any());
        assert!(!TestFaults::parse("").unwrap().any());
        let e = TestFaults::parse("store-delay-ms=x").unwrap_err();
        assert!(e.contains("store-delay-ms=x"), "{e}");
        let e = TestFaults::parse("reboot=1").unwrap_err();
        assert!(e.contains("`reboot`"), "{e}");
    }
}
