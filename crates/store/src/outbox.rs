//! The outbox: every recorded event in append order, with its sync state.
//!
//! Row life: pending -> synced (then pruned after `storage.retention_days`), or pending ->
//! failed attempts -> dead letter (kept until an operator runs `outbox retry`).

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{StoreError, to_i64, to_u64};
use super::{Store, bound, sessions};
use jarvis_core::events::{EventKind, EventPayload, Importance, KioskEvent};

/// Error texts are kept short: enough to diagnose, bounded so a failing sync cannot fill the disk.
const MAX_ERROR_CHARS: usize = 1000;

/// One pending event as the sync worker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Local append order; the sync sends in this order and acknowledges by it.
    pub seq: i64,
    pub event: KioskEvent,
    /// Failed sync attempts so far (drives the retry backoff).
    pub attempts: u32,
}

/// A parked event the sync gave up on, for `outbox dead-letters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub seq: i64,
    /// Kept as text: a dead letter may be a row that does not decode.
    pub event_id: String,
    pub session_id: Option<String>,
    pub kind: String,
    pub occurred_at_ms: i64,
    pub attempts: u32,
    /// Why it was parked.
    pub error: String,
    pub dead_at_ms: i64,
}

/// Outbox counters for `status`, `outbox stats`, health and heartbeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStats {
    /// Events waiting for the sync (not synced, not dead).
    pub pending: u64,
    /// `occurred_at_ms` of the first pending event in sequence order: how far behind central is.
    pub oldest_pending_ms: Option<i64>,
    pub synced: u64,
    pub dead: u64,
    /// Events ever dropped by the size bound (low + normal; critical ones never are).
    pub dropped: u64,
    pub dropped_low: u64,
    pub dropped_normal: u64,
    pub last_drop_at_ms: Option<i64>,
    /// Accounted size of the stored events, the quantity `storage.max_bytes` bounds.
    pub bytes: u64,
    pub max_bytes: u64,
    /// True when only critical events remain and they exceed `storage.max_bytes`: they are
    /// kept (loud, not lossy) until the sync drains them.
    pub over_bound: bool,
    /// Size on disk of the database and its WAL.
    pub file_bytes: u64,
    /// Highest sequence number ever assigned.
    pub last_seq: Option<i64>,
}

/// Whether an insert created a row or found the same event already stored (a retried append).
pub(crate) enum Inserted {
    New(i64),
    Existing(i64),
}

/// The cutoff to pass to [`Store::prune_synced`] for `storage.retention_days`.
pub fn retention_cutoff_ms(now_ms: i64, retention_days: u32) -> i64 {
    now_ms.saturating_sub(i64::from(retention_days) * 86_400_000)
}

/// The drop rank stored with an event: its kind's importance, except that the store's own
/// loss alerts (`buffer_pressure`, `store_recovered`) are kept like critical events, since
/// they are what tells support that something was lost.
pub(crate) fn stored_importance(payload: &EventPayload) -> Importance {
    match payload {
        EventPayload::Alert { code, .. }
            if code == bound::PRESSURE_ALERT_CODE || code == super::STORE_RECOVERED_CODE =>
        {
            Importance::Critical
        }
        other => other.kind().importance(),
    }
}

/// Enforces `storage.max_bytes` inside the caller's transaction and records the pressure
/// alert it asks for.
pub(crate) fn enforce_bound(
    tx: &Connection,
    max_bytes: u64,
    now_ms: i64,
    alert_interval_ms: i64,
) -> Result<(), StoreError> {
    if let Some(alert) = bound::enforce(tx, max_bytes, now_ms, alert_interval_ms)? {
        insert_event(tx, &alert)?;
    }
    Ok(())
}

/// Inserts one event and updates the session roll-up, inside the caller's transaction.
///
/// Appending an event id that is already stored with the same content returns its seq and
/// changes nothing, so a caller retrying after an ambiguous failure cannot double-count costs.
pub(crate) fn insert_event(tx: &Connection, ev: &KioskEvent) -> Result<Inserted, StoreError> {
    let payload = serde_json::to_string(&ev.payload).map_err(|e| StoreError::Encode {
        event_id: ev.event_id,
        reason: e.to_string(),
    })?;
    let kind = ev.kind();
    let cost = match &ev.payload {
        EventPayload::ResponseUsage { cost, .. }
        | EventPayload::TranscriptionUsage { cost, .. } => cost.total().0,
        // A Live voice figure is cumulative: the spend is its increment.
        EventPayload::LiveUsage { charged_nusd, .. } => charged_nusd.0,
        EventPayload::DelegationUsage { cost_nusd, .. } => cost_nusd.0,
        EventPayload::SessionEnded {
            live: Some(live), ..
        } => live.charged_nusd.0,
        _ => 0,
    };
    let size = payload.len() as u64 + bound::ROW_OVERHEAD_BYTES;
    let event_id = ev.event_id.to_string();
    let seq: Option<i64> = tx
        .prepare_cached(
            "INSERT INTO outbox (event_id, session_id, kind, importance, occurred_at_ms, payload,
                                 cost_nusd, size_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(event_id) DO NOTHING
             RETURNING seq",
        )?
        .query_row(
            params![
                event_id,
                ev.session_id.map(|s| s.to_string()),
                kind.as_str(),
                stored_importance(&ev.payload) as i64,
                ev.occurred_at_ms,
                payload,
                to_i64("cost_nusd", cost)?,
                to_i64("size_bytes", size)?,
            ],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(seq) = seq {
        sessions::apply(tx, ev)?;
        return Ok(Inserted::New(seq));
    }
    let (seq, stored): (i64, String) = tx.query_row(
        "SELECT seq, payload FROM outbox WHERE event_id = ?1",
        [&event_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if stored == payload {
        Ok(Inserted::Existing(seq))
    } else {
        Err(StoreError::ConflictingEvent {
            event_id: ev.event_id,
            seq,
        })
    }
}

impl Inserted {
    fn seq(&self) -> i64 {
        match self {
            Inserted::New(s) | Inserted::Existing(s) => *s,
        }
    }
}

fn truncate_error(error: &str) -> &str {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((i, _)) => &error[..i],
        None => error,
    }
}

const PENDING_COLUMNS: &str = "seq, event_id, session_id, occurred_at_ms, kind, payload, attempts";

fn decode_row(r: &Row<'_>) -> rusqlite::Result<(i64, Result<StoredEvent, String>)> {
    let seq: i64 = r.get(0)?;
    let event_id: String = r.get(1)?;
    let session_id: Option<String> = r.get(2)?;
    let occurred_at_ms: i64 = r.get(3)?;
    let kind: String = r.get(4)?;
    let payload: String = r.get(5)?;
    let attempts: i64 = r.get(6)?;
    let decoded = (|| {
        let event_id = Uuid::parse_str(&event_id)
            .map_err(|e| format!("event_id `{event_id}` is not a UUID: {e}"))?;
        let session_id = session_id
            .map(|s| Uuid::parse_str(&s).map_err(|e| format!("session_id `{s}`: {e}")))
            .transpose()?;
        let column_kind = EventKind::parse(&kind).ok_or_else(|| {
            format!("unknown event kind `{kind}` (written by a newer jarvis-kiosk?)")
        })?;
        let payload: EventPayload = serde_json::from_str(&payload)
            .map_err(|e| format!("payload of kind `{kind}` does not decode: {e}"))?;
        if payload.kind() != column_kind {
            return Err(format!(
                "kind column `{kind}` disagrees with payload kind `{}`",
                payload.kind().as_str()
            ));
        }
        Ok(StoredEvent {
            seq,
            event: KioskEvent {
                event_id,
                session_id,
                occurred_at_ms,
                payload,
            },
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        })
    })();
    Ok((seq, decoded))
}

impl Store {
    /// Records one event durably (committed with `synchronous=FULL`) and returns its seq.
    ///
    /// The session roll-up is updated in the same transaction, and the size bound is enforced
    /// before commit. Re-appending an already stored event returns its existing seq.
    pub fn append(&mut self, event: &KioskEvent) -> Result<i64, StoreError> {
        Ok(self.append_batch(std::slice::from_ref(event))?[0])
    }

    /// Records several events in one transaction (one fsync): all or none.
    pub fn append_batch(&mut self, events: &[KioskEvent]) -> Result<Vec<i64>, StoreError> {
        let now = (self.clock)();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut seqs = Vec::with_capacity(events.len());
        for ev in events {
            seqs.push(insert_event(&tx, ev)?.seq());
        }
        enforce_bound(&tx, self.max_bytes, now, self.pressure_alert_interval_ms)?;
        tx.commit()?;
        Ok(seqs)
    }

    /// Up to `limit` events to send, in seq order, excluding synced and dead ones.
    ///
    /// A row that does not decode (unknown kind, malformed payload) is dead-lettered with the
    /// reason instead of blocking the queue forever; it stays in the file for support.
    pub fn pending(&mut self, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = to_i64("limit", limit as u64)?;
        loop {
            let rows: Vec<(i64, Result<StoredEvent, String>)> = {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT {PENDING_COLUMNS} FROM outbox
                     WHERE synced_at_ms IS NULL AND dead_at_ms IS NULL
                     ORDER BY seq LIMIT ?1"
                ))?;
                stmt.query_map([limit], decode_row)?
                    .collect::<rusqlite::Result<_>>()?
            };
            let mut good = Vec::with_capacity(rows.len());
            let mut bad = Vec::new();
            for (seq, decoded) in rows {
                match decoded {
                    Ok(ev) => good.push(ev),
                    Err(reason) => bad.push((seq, reason)),
                }
            }
            if bad.is_empty() {
                return Ok(good);
            }
            for (seq, reason) in bad {
                tracing::error!(seq, %reason, "outbox row does not decode: dead-lettered");
                self.dead_letter(seq, &format!("unreadable row: {reason}"))?;
            }
        }
    }

    /// Marks events as accepted by central; returns how many changed (already synced or
    /// dropped seqs are ignored).
    pub fn mark_synced(&mut self, seqs: &[i64]) -> Result<usize, StoreError> {
        let now = (self.clock)();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut changed = 0;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE outbox SET synced_at_ms = ?2, dead_at_ms = NULL
                 WHERE seq = ?1 AND synced_at_ms IS NULL",
            )?;
            for seq in seqs {
                changed += stmt.execute(params![seq, now])?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Counts one failed attempt and keeps its error; false if the row no longer exists.
    pub fn record_failure(&mut self, seq: i64, error: &str) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2
             WHERE seq = ?1 AND synced_at_ms IS NULL",
            params![seq, truncate_error(error)],
        )?;
        Ok(n > 0)
    }

    /// Parks an event the sync cannot deliver (e.g. central rejects it permanently), so it stops
    /// blocking the queue; false if the row no longer exists.
    pub fn dead_letter(&mut self, seq: i64, error: &str) -> Result<bool, StoreError> {
        let now = (self.clock)();
        let n = self.conn.execute(
            "UPDATE outbox SET dead_at_ms = ?2, last_error = ?3
             WHERE seq = ?1 AND synced_at_ms IS NULL",
            params![seq, now, truncate_error(error)],
        )?;
        if n > 0 {
            tracing::warn!(seq, error = %truncate_error(error), "outbox event dead-lettered");
        }
        Ok(n > 0)
    }

    /// Every parked event, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, event_id, session_id, kind, occurred_at_ms, attempts, last_error,
                    dead_at_ms
             FROM dead_letters ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DeadLetter {
                seq: r.get(0)?,
                event_id: r.get(1)?,
                session_id: r.get(2)?,
                kind: r.get(3)?,
                occurred_at_ms: r.get(4)?,
                attempts: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(u32::MAX),
                error: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                dead_at_ms: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Puts every dead letter back in the queue with a fresh attempt count (`outbox retry`);
    /// returns how many. The last error is kept for reference.
    pub fn retry_dead_letters(&mut self) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "UPDATE outbox SET dead_at_ms = NULL, attempts = 0 WHERE dead_at_ms IS NOT NULL",
            [],
        )?)
    }

    /// Deletes events synced before `older_than_ms` (see [`retention_cutoff_ms`]) and ended
    /// sessions older than it; returns the number of events deleted.
    pub fn prune_synced(&mut self, older_than_ms: i64) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "DELETE FROM outbox WHERE synced_at_ms IS NOT NULL AND synced_at_ms < ?1",
            [older_than_ms],
        )?;
        tx.execute(
            "DELETE FROM sessions WHERE ended_at_ms IS NOT NULL AND ended_at_ms < ?1",
            [older_than_ms],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// Outbox counters; cheap enough for every heartbeat (indexed counts).
    pub fn stats(&self) -> Result<OutboxStats, StoreError> {
        // Both read the `outbox_pending` index: the count never touches the rows, and the
        // oldest pending event is the first in sequence order (the order the sync sends in),
        // so a backlog of weeks costs status and /metrics no table scan.
        let pending: i64 = self.conn.query_row(
            "SELECT count(*) FROM outbox WHERE synced_at_ms IS NULL AND dead_at_ms IS NULL",
            [],
            |r| r.get(0),
        )?;
        let oldest_pending_ms: Option<i64> = self
            .conn
            .query_row(
                "SELECT occurred_at_ms FROM outbox
                 WHERE synced_at_ms IS NULL AND dead_at_ms IS NULL ORDER BY seq LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let synced: i64 = self.conn.query_row(
            "SELECT count(*) FROM outbox WHERE synced_at_ms IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        let dead: i64 = self.conn.query_row(
            "SELECT count(*) FROM outbox WHERE dead_at_ms IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        let last_seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let dropped_low = to_u64(self.meta("dropped_low")?);
        let dropped_normal = to_u64(self.meta("dropped_normal")?);
        let last_drop = self.meta("last_drop_at_ms")?;
        let file_bytes = super::recovery::companions(&self.path)[..2]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        Ok(OutboxStats {
            pending: to_u64(pending),
            oldest_pending_ms,
            synced: to_u64(synced),
            dead: to_u64(dead),
            dropped: dropped_low + dropped_normal,
            dropped_low,
            dropped_normal,
            last_drop_at_ms: (last_drop > 0).then_some(last_drop),
            bytes: to_u64(self.meta("outbox_bytes")?),
            max_bytes: self.max_bytes,
            over_bound: self.meta("over_bound")? != 0,
            file_bytes,
            last_seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_cutoff_counts_whole_days() {
        assert_eq!(retention_cutoff_ms(10 * 86_400_000, 3), 7 * 86_400_000);
        assert_eq!(retention_cutoff_ms(i64::MIN + 1, 30), i64::MIN);
    }

    #[test]
    fn error_texts_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(MAX_ERROR_CHARS + 10);
        assert_eq!(truncate_error(&long).chars().count(), MAX_ERROR_CHARS);
        assert_eq!(truncate_error("short"), "short");
    }
}
