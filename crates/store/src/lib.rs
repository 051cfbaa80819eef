//! Local SQLite store: the source of truth on the kiosk. An event is "recorded" once its
//! transaction commits (WAL, `synchronous=FULL`), whatever happens to the process afterwards.
//!
//! - [`Store`] is the blocking API: the daemon owns one behind a [`StoreHandle`] (a dedicated
//!   thread, so no tokio worker ever waits on SQLite), and CLI commands (`status`, `outbox ...`)
//!   open their own with [`Store::open_existing`] next to the running daemon (WAL allows it).
//! - The outbox keeps every event in append order (`seq`, never reused) until the sync worker
//!   marks it synced; retention prunes synced rows later.
//! - The `sessions` roll-up and the per-event cost column are written in the same transaction
//!   as the event, so `status` and the daily budget can never disagree with the outbox.
//! - `storage.max_bytes` bounds the outbox: least important events go first, critical ones
//!   (session start/end, costs) never.

mod bound;
mod error;
mod handle;
mod member_cache;
mod outbox;
mod recovery;
mod salvage;
mod schema;
mod sessions;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use serde::Serialize;

use jarvis_config::StorageConfig;
use jarvis_core::clock::{self, WallClock};
use jarvis_core::events::{EventPayload, KioskEvent, Severity};

pub use bound::{PRESSURE_ALERT_CODE, PRESSURE_ALERT_INTERVAL_MS, ROW_OVERHEAD_BYTES};
pub use error::StoreError;
pub use handle::StoreHandle;
pub use outbox::{DeadLetter, OutboxStats, StoredEvent, retention_cutoff_ms};
pub use recovery::{IntegrityCheck, Recovery};
pub use salvage::Salvage;
pub use schema::SCHEMA_VERSION;
pub use sessions::{LiveSummary, SessionSummary};

/// How long a writer waits for another connection's lock before failing (CLI next to daemon).
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Code of the alert appended in a fresh store after a corrupt one was moved aside.
pub const STORE_RECOVERED_CODE: &str = "store_recovered";

/// WAL file size kept after a checkpoint, so a burst does not leave a huge `-wal` behind.
const JOURNAL_SIZE_LIMIT_BYTES: i64 = 32 * 1024 * 1024;

/// How the daemon opens its store. Built from `[storage]` with [`StoreOptions::from_config`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `storage.path`.
    pub path: PathBuf,
    /// `storage.max_bytes`: bound on the outbox's accounted size (see [`ROW_OVERHEAD_BYTES`]).
    pub max_bytes: u64,
    /// Which check runs at open; a failing check moves the file aside.
    pub check: IntegrityCheck,
    /// How long a write waits for a CLI command's lock before failing.
    pub busy_timeout: Duration,
    /// Minimum time between two `buffer_pressure` alerts.
    pub pressure_alert_interval_ms: i64,
    /// Time source for `synced_at`, alerts and recovery names (an input, so tests control it).
    pub clock: WallClock,
}

impl StoreOptions {
    /// The daemon's options for this `[storage]` section.
    pub fn from_config(cfg: &StorageConfig) -> Self {
        StoreOptions {
            path: cfg.path.clone(),
            max_bytes: cfg.max_bytes,
            check: IntegrityCheck::Quick,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            pressure_alert_interval_ms: PRESSURE_ALERT_INTERVAL_MS,
            clock: clock::wall_ms,
        }
    }
}

/// What happened while opening, for the start-up log line and `doctor`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreOpened {
    pub path: PathBuf,
    /// The file did not exist and was created.
    pub created: bool,
    /// Schema version found in the file (0 for a new file) and the version now.
    pub migrated_from: i64,
    pub schema_version: i64,
    pub check: IntegrityCheck,
    /// Time the integrity check took.
    pub check_ms: u64,
    /// Set when the file was corrupt and replaced by a fresh one.
    pub recovered: Option<Recovery>,
}

/// The blocking store. One per process and file; see [`StoreHandle`] for async callers.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    max_bytes: u64,
    pressure_alert_interval_ms: i64,
    clock: WallClock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// A failed attempt to prepare the file: damaged content (recover) or anything else (report).
enum Prepare {
    Corrupt(String),
    Fatal(StoreError),
}

impl Store {
    /// Opens (creating if needed) the daemon's store for `[storage]`.
    pub fn open(cfg: &StorageConfig) -> Result<(Store, StoreOpened), StoreError> {
        Store::open_with(StoreOptions::from_config(cfg))
    }

    /// Opens the daemon's store: creates the directory and file, checks integrity, migrates,
    /// and moves a corrupt file aside (with a `store_recovered` alert in the fresh one) rather
    /// than failing at every start.
    pub fn open_with(opts: StoreOptions) -> Result<(Store, StoreOpened), StoreError> {
        let path = opts.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| unusable(&path, &e))?;
        }
        let created = !path.exists();
        let (conn, migrated_from, check_ms, recovered) = match prepare(&opts) {
            Ok((conn, from, ms)) => (conn, from, ms, None),
            Err(Prepare::Fatal(e)) => return Err(e),
            Err(Prepare::Corrupt(detail)) => {
                let target = recovery::corrupt_name(&path, (opts.clock)());
                let (moved_to, moved_files) = recovery::move_aside(&path, target).map_err(|e| {
                    StoreError::RecoveryFailed {
                        path: path.clone(),
                        detail: detail.clone(),
                        reason: e.to_string(),
                    }
                })?;
                let (conn, from, ms) = prepare(&opts).map_err(|p| match p {
                    Prepare::Fatal(e) => e,
                    Prepare::Corrupt(again) => StoreError::RecoveryFailed {
                        path: path.clone(),
                        detail: detail.clone(),
                        reason: format!("the fresh file is unusable too: {again}"),
                    },
                })?;
                (conn, from, ms, Some((detail, moved_to, moved_files)))
            }
        };
        let mut store = Store {
            conn,
            path: path.clone(),
            max_bytes: opts.max_bytes,
            pressure_alert_interval_ms: opts.pressure_alert_interval_ms,
            clock: opts.clock,
        };
        store.set_meta(
            "max_bytes",
            error::to_i64("storage.max_bytes", opts.max_bytes)?,
        )?;
        let recovered = match recovered {
            None => None,
            Some((reason, moved_to, moved_files)) => {
                let salvaged = salvage::salvage(&moved_to, &mut store, (opts.clock)())?;
                let alert_seq = store.append_store_recovered(&reason, &moved_to, &salvaged)?;
                tracing::error!(
                    path = %path.display(),
                    moved_to = %moved_to.display(),
                    reason = %reason,
                    salvaged = salvaged.pending + salvaged.synced_costs,
                    unreadable = salvaged.unreadable_rows,
                    "local store was corrupt: moved it aside and started a fresh one; {}",
                    salvaged.summary()
                );
                Some(Recovery {
                    reason,
                    moved_to,
                    moved_files,
                    alert_seq,
                    salvaged,
                })
            }
        };
        store.enforce_bound()?;
        Ok((
            store,
            StoreOpened {
                path,
                created,
                migrated_from,
                schema_version: SCHEMA_VERSION,
                check: opts.check,
                check_ms,
                recovered,
            },
        ))
    }

    /// Opens an existing store next to the running daemon, for CLI commands (`status`,
    /// `outbox stats|dead-letters|retry`): never creates, checks, recovers or moves anything,
    /// so it cannot disturb the daemon's file.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| classify(path, e))?;
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT)?;
        configure(&conn).map_err(|e| classify(path, e))?;
        schema::migrate(&mut conn, path)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            max_bytes: 0,
            pressure_alert_interval_ms: PRESSURE_ALERT_INTERVAL_MS,
            clock: clock::wall_ms,
        };
        store.max_bytes = error::to_u64(store.meta("max_bytes")?);
        Ok(store)
    }

    /// The file this store lives in (`storage.path`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `PRAGMA quick_check` or `integrity_check` now; returns the problems (empty = ok).
    /// For `doctor`.
    pub fn check(&self, which: IntegrityCheck) -> Result<Vec<String>, StoreError> {
        let Some(pragma) = which.pragma() else {
            return Ok(Vec::new());
        };
        Ok(run_check(&self.conn, pragma)?)
    }

    fn meta(&self, key: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM store_meta WHERE key = ?1", [key], |r| {
                r.get(0)
            })?)
    }

    fn set_meta(&self, key: &str, value: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE store_meta SET value = ?2 WHERE key = ?1",
            rusqlite::params![key, value],
        )?;
        Ok(())
    }

    fn append_store_recovered(
        &mut self,
        reason: &str,
        moved_to: &Path,
        salvaged: &Salvage,
    ) -> Result<i64, StoreError> {
        let ev = KioskEvent::new(
            None,
            (self.clock)(),
            EventPayload::Alert {
                code: STORE_RECOVERED_CODE.into(),
                severity: Severity::Critical,
                message: format!(
                    "the local store {} was unreadable ({reason}); it was moved to {} and a fresh \
                     store was started: {}.",
                    self.path.display(),
                    moved_to.display(),
                    salvaged.summary()
                ),
            },
        );
        self.append(&ev)
    }

    fn enforce_bound(&mut self) -> Result<(), StoreError> {
        let now = (self.clock)();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        outbox::enforce_bound(&tx, self.max_bytes, now, self.pressure_alert_interval_ms)?;
        tx.commit()?;
        Ok(())
    }
}

/// Opens, checks, configures and migrates the daemon's file; returns the connection, the schema
/// version found and the check's duration.
fn prepare(opts: &StoreOptions) -> Result<(Connection, i64, u64), Prepare> {
    let path = &opts.path;
    let fatal_or_corrupt = |e: rusqlite::Error| {
        if recovery::is_corruption(&e) {
            Prepare::Corrupt(e.to_string())
        } else {
            Prepare::Fatal(classify(path, e))
        }
    };
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fatal_or_corrupt)?;
    conn.busy_timeout(opts.busy_timeout)
        .map_err(fatal_or_corrupt)?;
    let started = Instant::now();
    if let Some(pragma) = opts.check.pragma() {
        let problems = run_check(&conn, pragma).map_err(fatal_or_corrupt)?;
        if !problems.is_empty() {
            return Err(Prepare::Corrupt(format!(
                "{pragma} reported: {}",
                problems.join("; ")
            )));
        }
    }
    let check_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    configure(&conn).map_err(fatal_or_corrupt)?;
    let from = schema::migrate(&mut conn, path).map_err(|e| match e {
        StoreError::Sqlite(e) => fatal_or_corrupt(e),
        other => Prepare::Fatal(other),
    })?;
    Ok((conn, from, check_ms))
}

/// Connection settings every opener applies: WAL, full fsync at commit, bounded WAL file.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!(
                "journal_mode stays `{mode}`: WAL is required (the file system must support \
                 shared memory and locking)"
            )),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES)?;
    Ok(())
}

/// Rows of a check pragma other than `ok` (at most the first 20: enough to say what is wrong).
fn run_check(conn: &Connection, pragma: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(pragma)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut problems = Vec::new();
    for row in rows.take(20) {
        let row = row?;
        if row != "ok" {
            problems.push(row);
        }
    }
    Ok(problems)
}

/// Environment failures name the file and the config key; the rest stays an SQLite error.
fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(NotADatabase | DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        Some(CannotOpen | ReadOnly | PermissionDenied | SystemIoFailure | DiskFull) => {
            StoreError::Unusable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        }
        _ => StoreError::Sqlite(e),
    }
}

fn unusable(path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Unusable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}
