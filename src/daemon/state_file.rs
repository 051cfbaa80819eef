//! The daemon publishes its health snapshot as a file in the runtime directory, so `status`
//! can show it from another process (and knows when the daemon is not running).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::health::HealthSnapshot;

/// A snapshot older than this means the daemon is hung or gone.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

pub fn path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("status.json")
}

/// Writes atomically (temp file + rename) so a reader never sees half a file.
pub fn write(runtime_dir: &Path, snapshot: &HealthSnapshot) -> anyhow::Result<()> {
    let target = path(runtime_dir);
    let tmp = target.with_extension("json.tmp");
    let body = serde_json::to_vec_pretty(snapshot)?;
    std::fs::write(&tmp, body).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &target).with_context(|| format!("renaming to {}", target.display()))
}

/// What `status` learns from the runtime directory.
#[derive(Debug)]
pub enum Published {
    /// The daemon runs and refreshed its snapshot recently.
    Running(HealthSnapshot),
    /// A snapshot exists, but its process is gone or it stopped refreshing it.
    Stale {
        snapshot: HealthSnapshot,
        why: String,
    },
    NotRunning,
}

pub fn read(runtime_dir: &Path) -> Published {
    let file = path(runtime_dir);
    let Ok(meta) = std::fs::metadata(&file) else {
        return Published::NotRunning;
    };
    let snapshot = match std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice::<HealthSnapshot>(&b).ok())
    {
        Some(s) => s,
        None => return Published::NotRunning,
    };
    let alive = i32::try_from(snapshot.pid)
        .ok()
        .map(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
        .unwrap_or(false);
    let age = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .unwrap_or(Duration::MAX);
    if !alive {
        let why = format!("process {} is not running", snapshot.pid);
        Published::Stale { snapshot, why }
    } else if age > STALE_AFTER {
        let why = format!("no update for {} s (hung?)", age.as_secs());
        Published::Stale { snapshot, why }
    } else {
        Published::Running(snapshot)
    }
}

/// Removes the snapshot on clean exit so `status` says "not running" rather than "stale".
pub fn remove(runtime_dir: &Path) {
    let _ = std::fs::remove_file(path(runtime_dir));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_liveness() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read(dir.path()), Published::NotRunning));
        let mut snap = HealthSnapshot {
            kiosk_id: "k1".into(),
            pid: std::process::id(),
            ..Default::default()
        };
        write(dir.path(), &snap).unwrap();
        assert!(matches!(read(dir.path()), Published::Running(s) if s.kiosk_id == "k1"));
        snap.pid = i32::MAX as u32;
        write(dir.path(), &snap).unwrap();
        assert!(matches!(read(dir.path()), Published::Stale { .. }));
        remove(dir.path());
        assert!(matches!(read(dir.path()), Published::NotRunning));
    }
}
