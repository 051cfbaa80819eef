//! Heartbeats: the kiosk's health, shipped to central as ordinary `heartbeat` events.
//!
//! They go through the outbox like every other fact (not a side channel), so they are
//! exactly-once and ordered too, the central trigger files them in `kiosk_heartbeats`, and
//! a kiosk that was offline shows afterwards what its backlog looked like meanwhile. They
//! are `Importance::Low`: under storage pressure the store drops them first.

use std::path::Path;

use serde_json::{Value, json};

use jarvis_core::health::HealthSnapshot;

/// The outbox figures a heartbeat reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub pending: u64,
    pub oldest_pending_ms: Option<i64>,
    pub dead: u64,
}

/// The `health` object of a heartbeat event; the central trigger reads `version`,
/// `uptime_s`, `outbox_backlog`, `outbox_oldest_age_s`, `free_disk_bytes` and `breaker`.
pub fn payload(
    snap: &HealthSnapshot,
    backlog: Backlog,
    free_disk_bytes: Option<u64>,
    now_ms: i64,
) -> Value {
    let breaker = snap
        .gauges
        .iter()
        .find(|(k, _)| k.contains("breaker"))
        .map(|(_, v)| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    json!({
        "version": snap.version,
        "uptime_s": (now_ms - snap.started_at_ms).max(0) / 1000,
        "lifecycle": snap.lifecycle,
        "outbox_backlog": backlog.pending,
        "outbox_oldest_age_s": backlog.oldest_pending_ms.map(|t| (now_ms - t).max(0) / 1000),
        "outbox_dead_letters": backlog.dead,
        "free_disk_bytes": free_disk_bytes,
        "breaker": breaker,
        "adapters": snap.adapters,
        "counters": snap.counters,
        "gauges": snap.gauges,
        "last_errors": snap.last_errors,
    })
}

/// Free bytes for an unprivileged writer on the file system holding `path` (its parent
/// directory when the file does not exist yet).
pub fn free_disk_bytes(path: &Path) -> Option<u64> {
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().filter(|p| !p.as_os_str().is_empty())?
    };
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    // u64 already on x86_64 and aarch64, but 32-bit on armv7: keep the widening.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (
        u64::from(st.blocks_available()),
        u64::from(st.fragment_size()),
    );
    Some(blocks.saturating_mul(size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_core::health::{AdapterState, Health};

    #[test]
    fn reports_the_fields_central_reads() {
        let h = Health::new("k1", 1_000);
        h.set_adapter("central", AdapterState::Up);
        h.set_gauge("realtime_breaker", "closed");
        let v = payload(
            &h.snapshot(),
            Backlog {
                pending: 12,
                oldest_pending_ms: Some(61_000),
                dead: 1,
            },
            Some(5_000_000),
            121_000,
        );
        assert_eq!(v["version"], jarvis_core::VERSION);
        assert_eq!(v["uptime_s"], 120);
        assert_eq!(v["outbox_backlog"], 12);
        assert_eq!(v["outbox_oldest_age_s"], 60);
        assert_eq!(v["outbox_dead_letters"], 1);
        assert_eq!(v["free_disk_bytes"], 5_000_000);
        assert_eq!(v["breaker"], "closed");
        assert_eq!(v["adapters"]["central"]["state"], "up");
    }

    #[test]
    fn empty_backlog_and_unknown_disk_are_null_not_zero() {
        let v = payload(&Health::new("k", 0).snapshot(), Backlog::default(), None, 0);
        assert_eq!(v["outbox_oldest_age_s"], Value::Null);
        assert_eq!(v["free_disk_bytes"], Value::Null);
        assert_eq!(v["breaker"], Value::Null);
    }

    #[test]
    fn measures_free_disk_of_the_store_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_disk_bytes(&dir.path().join("kiosk.db")).unwrap() > 0);
        assert!(free_disk_bytes(dir.path()).unwrap() > 0);
        assert_eq!(free_disk_bytes(Path::new("/no/such/dir/kiosk.db")), None);
    }
}
