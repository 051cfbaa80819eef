//! Salvage of a quarantined store: after a corrupt file is moved aside, everything still
//! readable in it is copied into the fresh store, so a few damaged pages do not strand the
//! whole backlog.
//!
//! The moved file is opened read-only and its outbox read by `seq` in chunks; a chunk that
//! fails (a damaged page on its path) is retried row by row, so only the rows on damaged pages
//! are lost, and they are named by `seq`. Copied events keep their event ids: central
//! deduplicates on them, so an event that reached central before the crash is not counted
//! twice. What is copied:
//! - every unsynced event, dead letters included (they are refused again, or land if the cause
//!   was fixed meanwhile): they exist nowhere else;
//! - synced cost events of the last [`BUDGET_KEEP_MS`], marked synced again, so today's budget
//!   still counts what was spent before the corruption.
//!
//! Older synced events are central's already and are left in the moved file.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use serde::Serialize;
use uuid::Uuid;

use super::Store;
use super::bound::BUDGET_KEEP_MS;
use super::error::StoreError;
use jarvis_core::events::{EventKind, EventPayload, KioskEvent};

/// Rows read per chunk of the quarantined outbox.
const CHUNK: i64 = 256;

/// Events appended to the fresh store per transaction.
const APPEND_BATCH: usize = 500;

/// What a salvage brought back, and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Salvage {
    /// Unsynced events copied into the fresh store (to be synced, ids unchanged).
    pub pending: u64,
    /// Synced cost events of the last day copied back as synced (for the daily budget).
    pub synced_costs: u64,
    /// `seq` ranges of the moved outbox that could not be read or decoded: lost unless support
    /// recovers them from the moved file by hand.
    pub unreadable: Vec<(i64, i64)>,
    /// Number of rows in `unreadable`.
    pub unreadable_rows: u64,
    /// Set when the moved file's outbox could not be read at all (its schema or first pages
    /// are destroyed): nothing was salvaged.
    pub failed: Option<String>,
}

impl Salvage {
    /// One sentence for the log and the `store_recovered` alert.
    pub fn summary(&self) -> String {
        if let Some(why) = &self.failed {
            return format!("nothing could be salvaged from it ({why})");
        }
        let mut s = format!(
            "salvaged {} unsynced events (synced from here with their ids) and {} cost events \
             of the last day",
            self.pending, self.synced_costs
        );
        if self.unreadable_rows == 0 {
            s.push_str("; every row was readable");
        } else {
            let ranges: Vec<String> = self
                .unreadable
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            s.push_str(&format!(
                "; {} rows were unreadable and are lost (outbox seq {})",
                self.unreadable_rows,
                ranges.join(", ")
            ));
        }
        s
    }

    fn lost(&mut self, seq: i64) {
        self.unreadable_rows += 1;
        match self.unreadable.last_mut() {
            Some((_, end)) if *end + 1 == seq => *end = seq,
            _ => self.unreadable.push((seq, seq)),
        }
    }
}

/// One outbox row of the moved file.
struct Salvaged {
    event: KioskEvent,
    synced: bool,
    cost: i64,
}

const COLUMNS: &str = "seq, event_id, session_id, occurred_at_ms, kind, payload, synced_at_ms, \
                       cost_nusd";

fn read_row(r: &Row<'_>) -> rusqlite::Result<(i64, Result<Salvaged, String>)> {
    let seq: i64 = r.get(0)?;
    let decoded = (|| {
        let text = |i: usize| r.get::<_, String>(i).map_err(|e| e.to_string());
        let event_id = Uuid::parse_str(&text(1)?).map_err(|e| e.to_string())?;
        let session_id = r
            .get::<_, Option<String>>(2)
            .map_err(|e| e.to_string())?
            .map(|s| Uuid::parse_str(&s).map_err(|e| e.to_string()))
            .transpose()?;
        let occurred_at_ms: i64 = r.get(3).map_err(|e| e.to_string())?;
        let kind = EventKind::parse(&text(4)?).ok_or("unknown kind")?;
        let payload: EventPayload = serde_json::from_str(&text(5)?).map_err(|e| e.to_string())?;
        if payload.kind() != kind {
            return Err("kind column disagrees with the payload".to_owned());
        }
        Ok(Salvaged {
            event: KioskEvent {
                event_id,
                session_id,
                occurred_at_ms,
                payload,
            },
            synced: r
                .get::<_, Option<i64>>(6)
                .map_err(|e| e.to_string())?
                .is_some(),
            cost: r.get(7).map_err(|e| e.to_string())?,
        })
    })();
    Ok((seq, decoded))
}

/// Opens the moved file without writing to it: read-only, then `immutable` (no locks, no WAL)
/// when a read-only open is refused (for example a `-shm` that cannot be mapped).
fn open_read_only(path: &Path) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let probe = |c: &Connection| c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()));
    let plain = Connection::open_with_flags(path, flags).and_then(|c| probe(&c).map(|()| c));
    match plain {
        Ok(c) => Ok(c),
        Err(first) => {
            let uri = format!("file:{}?immutable=1", path.display());
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
                .and_then(|c| probe(&c).map(|()| c))
                .map_err(|e| format!("{first}; immutable: {e}"))
        }
    }
}

/// The highest `seq` the moved outbox may hold: from the table, or from `sqlite_sequence`
/// when the table's last page is the damaged one.
fn highest_seq(conn: &Connection) -> Result<i64, String> {
    let from_table = conn
        .query_row("SELECT max(seq) FROM outbox", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .map_err(|e| e.to_string());
    let from_sequence = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map_err(|e| e.to_string());
    match (from_table, from_sequence) {
        (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        (a, b) => Ok(a
            .ok()
            .flatten()
            .unwrap_or(0)
            .max(b.ok().flatten().unwrap_or(0))),
    }
}

/// Reads `[from, to]`: the whole chunk in one query, or row by row when the chunk hits a
/// damaged page.
fn read_chunk(
    conn: &Connection,
    from: i64,
    to: i64,
    out: &mut Vec<Salvaged>,
    report: &mut Salvage,
) {
    let whole = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq"
        ))
        .and_then(|mut stmt| {
            stmt.query_map([from, to], read_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
    let rows = match whole {
        Ok(rows) => rows,
        Err(_) => (from..=to)
            .filter_map(|seq| {
                let one = conn
                    .prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE seq = ?1"))
                    .and_then(|mut stmt| stmt.query_row([seq], read_row).optional());
                match one {
                    Ok(row) => row,
                    Err(e) => Some((seq, Err(e.to_string()))),
                }
            })
            .collect(),
    };
    for (seq, row) in rows {
        match row {
            Ok(row) => out.push(row),
            Err(why) => {
                tracing::debug!(seq, %why, "unreadable row in the moved store");
                report.lost(seq);
            }
        }
    }
}

/// Copies what is readable in the moved file `from` into `into` (see the module doc).
pub(crate) fn salvage(from: &Path, into: &mut Store, now_ms: i64) -> Result<Salvage, StoreError> {
    let mut report = Salvage::default();
    let conn = match open_read_only(from).and_then(|c| highest_seq(&c).map(|hi| (c, hi))) {
        Ok(found) => found,
        Err(why) => {
            report.failed = Some(why);
            return Ok(report);
        }
    };
    let (conn, highest) = conn;
    let keep_costs_since = now_ms.saturating_sub(BUDGET_KEEP_MS);
    let mut start = 1;
    while start <= highest {
        let end = start.saturating_add(CHUNK - 1).min(highest);
        let mut rows = Vec::new();
        read_chunk(&conn, start, end, &mut rows, &mut report);
        let rows: Vec<Salvaged> = rows
            .into_iter()
            .filter(|r| !r.synced || (r.cost > 0 && r.event.occurred_at_ms >= keep_costs_since))
            .collect();
        for batch in rows.chunks(APPEND_BATCH) {
            let events: Vec<KioskEvent> = batch.iter().map(|r| r.event.clone()).collect();
            let seqs = into.append_batch(&events)?;
            let synced: Vec<i64> = seqs
                .iter()
                .zip(batch)
                .filter(|(_, r)| r.synced)
                .map(|(seq, _)| *seq)
                .collect();
            if !synced.is_empty() {
                into.mark_synced(&synced)?;
            }
            report.synced_costs += synced.len() as u64;
            report.pending += (batch.len() - synced.len()) as u64;
        }
        start = end + 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_rows_are_kept_as_ranges_and_named_in_the_summary() {
        let mut s = Salvage {
            pending: 7,
            synced_costs: 2,
            ..Salvage::default()
        };
        assert!(
            s.summary().contains("every row was readable"),
            "{}",
            s.summary()
        );
        for seq in [3, 4, 5, 9, 11, 12] {
            s.lost(seq);
        }
        assert_eq!(s.unreadable, vec![(3, 5), (9, 9), (11, 12)]);
        let text = s.summary();
        assert!(text.contains("6 rows were unreadable"), "{text}");
        assert!(text.contains("outbox seq 3-5, 9, 11-12"), "{text}");
        assert!(text.contains("salvaged 7 unsynced events"), "{text}");
        s.failed = Some("file is not a database".into());
        assert!(s.summary().contains("nothing could be salvaged"));
    }
}
