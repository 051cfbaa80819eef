//! Versioned schema: `PRAGMA user_version` counts the migrations applied, in order.
//!
//! Migrations are append-only SQL strings: never edit a shipped one, add the next. Each runs in
//! its own `BEGIN IMMEDIATE` transaction together with the version bump, so a crash or a second
//! process (a CLI command) can never see or apply half a migration.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::error::StoreError;

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: outbox, sessions roll-up, member cache, bookkeeping.
    r#"
CREATE TABLE outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT    NOT NULL UNIQUE,
    session_id     TEXT,
    kind           TEXT    NOT NULL,
    importance     INTEGER NOT NULL,
    occurred_at_ms INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    cost_nusd      INTEGER NOT NULL DEFAULT 0,
    size_bytes     INTEGER NOT NULL,
    synced_at_ms   INTEGER,
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    dead_at_ms     INTEGER
);
CREATE INDEX outbox_pending ON outbox(seq) WHERE synced_at_ms IS NULL AND dead_at_ms IS NULL;
CREATE INDEX outbox_synced ON outbox(synced_at_ms) WHERE synced_at_ms IS NOT NULL;
CREATE INDEX outbox_dead ON outbox(seq) WHERE dead_at_ms IS NOT NULL;
CREATE INDEX outbox_cost ON outbox(occurred_at_ms) WHERE cost_nusd > 0;
CREATE INDEX outbox_droppable ON outbox(importance, seq) WHERE importance < 2;

CREATE VIEW dead_letters AS
    SELECT seq, event_id, session_id, kind, occurred_at_ms, attempts, last_error, dead_at_ms
    FROM outbox WHERE dead_at_ms IS NOT NULL;

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO store_meta(key, value) VALUES
    ('outbox_bytes', 0),
    ('dropped_low', 0),
    ('dropped_normal', 0),
    ('last_drop_at_ms', 0),
    ('last_pressure_alert_ms', 0),
    ('over_bound', 0),
    ('max_bytes', 0);

CREATE TRIGGER outbox_bytes_insert AFTER INSERT ON outbox BEGIN
    UPDATE store_meta SET value = value + NEW.size_bytes WHERE key = 'outbox_bytes';
END;
CREATE TRIGGER outbox_bytes_delete AFTER DELETE ON outbox BEGIN
    UPDATE store_meta SET value = value - OLD.size_bytes WHERE key = 'outbox_bytes';
END;

CREATE TABLE sessions (
    session_id          TEXT PRIMARY KEY,
    started_at_ms       INTEGER,
    member_id           TEXT,
    membership          TEXT,
    model               TEXT,
    connect_ms          INTEGER,
    ended_at_ms         INTEGER,
    end_reason          TEXT,
    duration_ms         INTEGER,
    responses           INTEGER NOT NULL DEFAULT 0,
    input_text_tokens   INTEGER NOT NULL DEFAULT 0,
    input_audio_tokens  INTEGER NOT NULL DEFAULT 0,
    input_image_tokens  INTEGER NOT NULL DEFAULT 0,
    cached_text_tokens  INTEGER NOT NULL DEFAULT 0,
    cached_audio_tokens INTEGER NOT NULL DEFAULT 0,
    cached_image_tokens INTEGER NOT NULL DEFAULT 0,
    output_text_tokens  INTEGER NOT NULL DEFAULT 0,
    output_audio_tokens INTEGER NOT NULL DEFAULT 0,
    input_audio_nusd    INTEGER NOT NULL DEFAULT 0,
    output_audio_nusd   INTEGER NOT NULL DEFAULT 0,
    input_text_nusd     INTEGER NOT NULL DEFAULT 0,
    output_text_nusd    INTEGER NOT NULL DEFAULT 0,
    transcription_nusd  INTEGER NOT NULL DEFAULT 0,
    first_event_at_ms   INTEGER NOT NULL
);
CREATE INDEX sessions_recent ON sessions(first_event_at_ms);

CREATE TABLE member_cache (
    key           TEXT PRIMARY KEY,
    member        TEXT    NOT NULL,
    fetched_at_ms INTEGER NOT NULL
);
CREATE INDEX member_cache_age ON member_cache(fetched_at_ms);
"#,
    // 2: GPT-Live sessions in the roll-up. The voice figure kept is the largest by
    // (rank, voice, billed seconds, upper bound, estimated), rank 2 for a `session.closed`
    // figure, 1 for the end's, 0 for a report: central's rule (0011_live_sessions.sql).
    r#"
ALTER TABLE sessions ADD COLUMN backend TEXT NOT NULL DEFAULT 'realtime';
ALTER TABLE sessions ADD COLUMN live_voice_rank INTEGER;
ALTER TABLE sessions ADD COLUMN live_voice_nusd INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN billed_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN live_upper_bound INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN live_estimated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN delegation_nusd INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN delegations INTEGER NOT NULL DEFAULT 0;
"#,
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies the missing migrations; returns the version found before.
///
/// Refuses a file from a newer binary instead of guessing at its layout.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<i64, StoreError> {
    let found = user_version(conn)?;
    check_not_newer(found, path)?;
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let target = index as i64 + 1;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Re-read under the write lock: another process may have migrated meanwhile.
        let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        check_not_newer(current, path)?;
        if current >= target {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", target)?;
        tx.commit()?;
    }
    Ok(found)
}

fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

fn check_not_newer(found: i64, path: &Path) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
            binary: jarvis_core::VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_an_empty_database_to_the_current_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, Path::new(":memory:")).unwrap(), 0);
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        // Idempotent: a second run applies nothing.
        assert_eq!(
            migrate(&mut conn, Path::new(":memory:")).unwrap(),
            SCHEMA_VERSION
        );
    }

    #[test]
    fn a_version_1_file_keeps_its_sessions_as_realtime_ones() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO sessions (session_id, first_event_at_ms, input_audio_nusd)
             VALUES ('s1', 5, 42)",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut conn, Path::new(":memory:")).unwrap(), 1);
        let row: (String, Option<i64>, i64, i64) = conn
            .query_row(
                "SELECT backend, live_voice_rank, delegation_nusd, input_audio_nusd
                 FROM sessions WHERE session_id = 's1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(row, ("realtime".into(), None, 0, 42));
    }

    #[test]
    fn refuses_a_newer_schema_and_names_both_versions() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 7)
            .unwrap();
        let err = migrate(&mut conn, Path::new("/var/lib/k.db")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::SchemaTooNew { .. }));
        assert!(
            msg.contains(&format!("version {}", SCHEMA_VERSION + 7)),
            "{msg}"
        );
        assert!(msg.contains(&format!("version {SCHEMA_VERSION}")), "{msg}");
        assert!(msg.contains("/var/lib/k.db"), "{msg}");
    }
}
