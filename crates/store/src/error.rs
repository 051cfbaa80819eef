//! What can go wrong in the local store, phrased for the technician who has to fix it.

use std::path::PathBuf;

use uuid::Uuid;

/// Why a store operation failed. Every variant names the file or the config key to look at.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file or its directory cannot be created, opened or written (permissions, read-only
    /// file system, disk full).
    #[error(
        "cannot use the local store {path} (storage.path): {reason}; make the directory writable by \
         the daemon's user or set storage.path to a writable location"
    )]
    Unusable { path: PathBuf, reason: String },

    /// A CLI command found the file damaged; only the daemon moves a damaged store aside.
    #[error(
        "the local store {path} (storage.path) is damaged: {detail}; restart the daemon, which \
         moves it aside and starts a fresh store"
    )]
    Corrupt { path: PathBuf, detail: String },

    /// A CLI command was pointed at a store the daemon never created.
    #[error(
        "the local store {path} does not exist (storage.path): run the daemon once \
         (`jarvis-kiosk run`) or check storage.path in the config"
    )]
    Missing { path: PathBuf },

    /// The file was written by a newer jarvis-kiosk: refusing it keeps its data intact.
    #[error(
        "the local store {path} has schema version {found}, newer than version {known} known to \
         jarvis-kiosk {binary}: install the newer jarvis-kiosk again or set storage.path to \
         another file (the file was left untouched)"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
        binary: &'static str,
    },

    /// The file is corrupt and could not be moved aside to start a fresh one.
    #[error(
        "the local store {path} is corrupt ({detail}) and could not be moved aside: {reason}; \
         move it away by hand or set storage.path to another file"
    )]
    RecoveryFailed {
        path: PathBuf,
        detail: String,
        reason: String,
    },

    /// An event could not be turned into its stored form.
    #[error("event {event_id} cannot be stored: {reason}")]
    Encode { event_id: Uuid, reason: String },

    /// A stored row does not decode (unknown kind, malformed payload); it stays in the file.
    #[error("outbox row seq {seq} is unreadable: {reason}")]
    Decode { seq: i64, reason: String },

    /// The same event id was appended twice with different content: a bug in the caller.
    #[error("event {event_id} is already stored as seq {seq} with different content")]
    ConflictingEvent { event_id: Uuid, seq: i64 },

    /// A count or amount does not fit SQLite's signed 64-bit integers.
    #[error("{field} = {value} is too large to store (at most {max})", max = i64::MAX)]
    OutOfRange { field: &'static str, value: u64 },

    /// Member cache keys are HMACs, so a raw badge can never reach the disk.
    #[error(
        "member cache key must be the 64 hex digits of HMAC-SHA256(badge) (never a raw badge); \
         got {len} characters"
    )]
    InvalidCacheKey { len: usize },

    /// Member cache values must be JSON so the badge module can read them back.
    #[error("member cache value is not JSON: {0}")]
    InvalidMemberJson(String),

    /// The dedicated store thread is gone (shut down or a job panicked).
    #[error("the local store worker thread has stopped: {0}; restart the daemon")]
    WorkerGone(String),

    /// The store thread did not take or finish a synchronous request in time.
    #[error("the local store is busy: {0}")]
    Busy(String),

    /// Any other SQLite failure.
    #[error("local store query failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Converts an unsigned count or amount to SQLite's integer type, naming the field on overflow.
pub(crate) fn to_i64(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { field, value })
}

/// Reads back a non-negative integer column (negative values are treated as corrupt: 0).
pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
