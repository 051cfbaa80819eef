//! Corruption handling at open: tell a damaged file from an unusable environment, and move a
//! damaged file (with its `-wal` and `-shm`) aside so the kiosk starts with a fresh store instead
//! of crash-looping. What is readable in the moved file is then salvaged into the fresh one
//! (`salvage`); the moved file is kept for support.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;
use serde::Serialize;

/// Which SQLite check runs at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrityCheck {
    /// `PRAGMA quick_check`: every page and record format, without cross-checking indexes
    /// against tables. Linear in the file size; the default (see the benchmark in the report).
    Quick,
    /// `PRAGMA integrity_check`: also verifies every index entry; several times slower.
    Full,
    /// No check (tests, or a CLI command opening the daemon's live file).
    Skip,
}

impl IntegrityCheck {
    pub(crate) fn pragma(self) -> Option<&'static str> {
        match self {
            IntegrityCheck::Quick => Some("PRAGMA quick_check"),
            IntegrityCheck::Full => Some("PRAGMA integrity_check"),
            IntegrityCheck::Skip => None,
        }
    }
}

/// What a corrupt store was replaced with, for the open report and the `store_recovered` alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// Why the file was judged unusable (SQLite's words).
    pub reason: String,
    /// Where the damaged database file now is (`kiosk.db.corrupt-<timestamp>`).
    pub moved_to: PathBuf,
    /// Every file moved: the database and its `-wal` / `-shm` when present.
    pub moved_files: Vec<PathBuf>,
    /// Sequence number of the `store_recovered` alert in the fresh store.
    pub alert_seq: i64,
    /// What was copied from the moved file into the fresh store, and what was unreadable.
    pub salvaged: crate::salvage::Salvage,
}

/// True when an SQLite error means the file's content is damaged (move it aside), as opposed
/// to the environment being wrong (permissions, disk full, locked: report, never move).
pub(crate) fn is_corruption(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// `kiosk.db` + `-wal` / `-shm`, the three files that make one SQLite database in WAL mode.
pub(crate) fn companions(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [path.to_path_buf(), with("-wal"), with("-shm")]
}

/// `kiosk.db.corrupt-20261121T053500.123Z`: sorts by time and says what it is.
pub(crate) fn corrupt_name(path: &Path, now_ms: i64) -> PathBuf {
    let stamp = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| now_ms.to_string());
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".corrupt-{stamp}"));
    PathBuf::from(s)
}

/// Moves the database and its companions to `target` (`target-wal`, `target-shm`), choosing a
/// free name if `target` exists. Returns the database's new path and every file moved.
pub(crate) fn move_aside(path: &Path, target: PathBuf) -> std::io::Result<(PathBuf, Vec<PathBuf>)> {
    let mut chosen = target.clone();
    let mut n = 1;
    while companions(&chosen).iter().any(|p| p.exists()) {
        let mut s = target.as_os_str().to_owned();
        s.push(format!("-{n}"));
        chosen = PathBuf::from(s);
        n += 1;
    }
    let mut moved = Vec::new();
    for (from, to) in companions(path).into_iter().zip(companions(&chosen)) {
        match std::fs::rename(&from, &to) {
            Ok(()) => moved.push(to),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok((chosen, moved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_name_carries_a_sortable_utc_stamp() {
        let p = corrupt_name(Path::new("/d/kiosk.db"), 1_795_000_000_123);
        assert_eq!(p, PathBuf::from("/d/kiosk.db.corrupt-20261118T110640.123Z"));
    }

    #[test]
    fn companions_are_wal_and_shm() {
        let [db, wal, shm] = companions(Path::new("/d/kiosk.db"));
        assert_eq!(db, PathBuf::from("/d/kiosk.db"));
        assert_eq!(wal, PathBuf::from("/d/kiosk.db-wal"));
        assert_eq!(shm, PathBuf::from("/d/kiosk.db-shm"));
    }

    #[test]
    fn move_aside_keeps_an_earlier_corrupt_copy() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kiosk.db");
        let target = corrupt_name(&db, 0);
        std::fs::write(&target, b"older").unwrap();
        std::fs::write(&db, b"garbage").unwrap();
        std::fs::write(companions(&db)[1].clone(), b"wal").unwrap();
        let (chosen, moved) = move_aside(&db, target.clone()).unwrap();
        assert_ne!(chosen, target);
        assert_eq!(moved.len(), 2);
        assert_eq!(std::fs::read(&target).unwrap(), b"older");
        assert_eq!(std::fs::read(&chosen).unwrap(), b"garbage");
        assert!(!db.exists());
    }

    #[test]
    fn only_content_damage_counts_as_corruption() {
        let corrupt = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
            None,
        );
        let denied = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            None,
        );
        assert!(is_corruption(&corrupt));
        assert!(!is_corruption(&denied));
    }
}
