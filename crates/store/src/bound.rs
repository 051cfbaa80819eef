//! The `storage.max_bytes` bound on the outbox.
//!
//! Size is *accounted*, not measured on disk: each row counts its payload plus
//! [`ROW_OVERHEAD_BYTES`], summed by triggers into `store_meta.outbox_bytes`. Page counts would
//! not work: deleting scattered rows rarely frees whole pages, so a page-based bound would
//! delete far more than needed before the file size moved. The file may exceed the accounted
//! size by SQLite's fragmentation; `stats().file_bytes` shows both.
//!
//! When an append takes the outbox over the bound, events are dropped down to 90 % of it (so
//! the next appends do not each pay for a drop), in this order:
//! 1. already-synced events, whatever their importance, oldest first: central holds them, so
//!    dropping them loses nothing. Only the synced cost rows of the last [`BUDGET_KEEP_MS`]
//!    stay, because `spent_since` sums them for today's budget after a restart;
//! 2. unsynced `Low` events, oldest first;
//! 3. unsynced `Normal` events, oldest first.
//!
//! Unsynced `Critical` events (session start/end, costs, and the store's own `buffer_pressure`
//! and `store_recovered` alerts, which tell support what was lost) are never dropped: if they
//! and the kept cost rows alone exceed the bound they are kept and `over_bound` is set (loud,
//! not lossy). `dropped_low` / `dropped_normal` count losses only (unsynced drops). Drop
//! episodes append one `buffer_pressure` alert at most every [`PRESSURE_ALERT_INTERVAL_MS`];
//! entering the over-bound state always appends one (critical severity).

use rusqlite::{Connection, params};

use super::error::{StoreError, to_i64, to_u64};
use jarvis_core::events::{EventPayload, Importance, KioskEvent, Severity};

/// Accounted bytes per outbox row on top of its payload JSON: the other columns, the ids as
/// text, the index entries and room for an error text.
pub const ROW_OVERHEAD_BYTES: u64 = 256;

/// Minimum time between two `buffer_pressure` alerts (10 minutes).
pub const PRESSURE_ALERT_INTERVAL_MS: i64 = 10 * 60 * 1000;

/// Code of the alert appended when events are dropped or critical ones exceed the bound.
pub const PRESSURE_ALERT_CODE: &str = "buffer_pressure";

/// How far back synced cost rows are kept for the daily budget: 26 hours cover the longest
/// local day (25 hours on a DST change) in any time zone, so whatever `kiosk.timezone` says
/// "today" is, its costs are still summable.
pub const BUDGET_KEEP_MS: i64 = 26 * 3600 * 1000;

/// The drop passes in order; `?1` is the chunk size, `?2` the oldest cost row kept.
const DROP_PASSES: [&str; 3] = [
    "synced_at_ms IS NOT NULL AND NOT (cost_nusd > 0 AND occurred_at_ms >= ?2) ORDER BY seq",
    "synced_at_ms IS NULL AND importance = 0 AND ?2 = ?2 ORDER BY seq",
    "synced_at_ms IS NULL AND importance = 1 AND ?2 = ?2 ORDER BY seq",
];

/// Rows fetched per step while choosing what to drop.
const DROP_CHUNK: i64 = 256;

/// Where a drop pass should stop: 90 % of the bound.
pub(crate) fn drop_target(max_bytes: u64) -> u64 {
    max_bytes - max_bytes / 10
}

/// Whether a new `buffer_pressure` alert may be appended now. A clock that went backwards
/// counts as due, so a bad clock can delay an alert but never silence it for good.
pub(crate) fn pressure_alert_due(last_alert_ms: i64, now_ms: i64, interval_ms: i64) -> bool {
    last_alert_ms <= 0 || now_ms < last_alert_ms || now_ms - last_alert_ms >= interval_ms
}

/// What one enforcement pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DropOutcome {
    /// Already-synced events removed (no loss: central has them).
    pub synced: u64,
    pub low: u64,
    pub normal: u64,
    pub bytes_after: u64,
    pub over_bound: bool,
}

/// The alert text for one pressure episode.
pub(crate) fn pressure_message(o: &DropOutcome, max_bytes: u64, pending: u64) -> String {
    let mut msg = format!(
        "local store reached storage.max_bytes = {max_bytes} bytes with {pending} events waiting \
         for sync"
    );
    if o.synced > 0 {
        msg.push_str(&format!(
            "; removed {} events already synced to central (nothing lost)",
            o.synced
        ));
    }
    if o.low + o.normal > 0 {
        msg.push_str(&format!(
            "; dropped {} low and {} normal importance events not yet synced (never session or \
             cost events)",
            o.low, o.normal
        ));
    }
    if o.over_bound {
        msg.push_str(&format!(
            "; only critical events remain ({} bytes): all kept above the bound",
            o.bytes_after
        ));
    }
    msg.push_str(". Check the connection to central (central.url) or raise storage.max_bytes.");
    msg
}

fn meta(tx: &Connection, key: &str) -> rusqlite::Result<i64> {
    tx.query_row("SELECT value FROM store_meta WHERE key = ?1", [key], |r| {
        r.get(0)
    })
}

fn add_meta(tx: &Connection, key: &str, delta: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE store_meta SET value = value + ?2 WHERE key = ?1")?
        .execute(params![key, delta])?;
    Ok(())
}

fn set_meta(tx: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE store_meta SET value = ?2 WHERE key = ?1")?
        .execute(params![key, value])?;
    Ok(())
}

/// Enforces the bound inside the caller's write transaction; returns the pressure alert to
/// record when events were dropped and the last alert is old enough. Cheap when under the
/// bound (one meta read). `max_bytes == 0` means no bound is known (never from a valid config).
pub(crate) fn enforce(
    tx: &Connection,
    max_bytes: u64,
    now_ms: i64,
    alert_interval_ms: i64,
) -> Result<Option<KioskEvent>, StoreError> {
    if max_bytes == 0 {
        // A store opened by a CLI command before the daemon ever recorded its bound.
        return Ok(None);
    }
    let mut bytes = to_u64(meta(tx, "outbox_bytes")?);
    let was_over = meta(tx, "over_bound")? != 0;
    if bytes <= max_bytes {
        if was_over {
            set_meta(tx, "over_bound", 0)?;
        }
        return Ok(None);
    }
    let target = drop_target(max_bytes);
    let mut outcome = DropOutcome::default();
    let keep_costs_since = now_ms.saturating_sub(BUDGET_KEEP_MS);
    'passes: for (index, pass) in DROP_PASSES.iter().enumerate() {
        loop {
            let chunk: Vec<(i64, i64, i64)> = tx
                .prepare_cached(&format!(
                    "SELECT seq, size_bytes, importance FROM outbox WHERE {pass} LIMIT ?1"
                ))?
                .query_map(params![DROP_CHUNK, keep_costs_since], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            if chunk.is_empty() {
                continue 'passes;
            }
            let mut delete = tx.prepare_cached("DELETE FROM outbox WHERE seq = ?1")?;
            for (seq, size, importance) in chunk {
                delete.execute([seq])?;
                bytes = bytes.saturating_sub(to_u64(size));
                if index == 0 {
                    outcome.synced += 1;
                } else if importance == Importance::Low as i64 {
                    outcome.low += 1;
                } else {
                    outcome.normal += 1;
                }
                if bytes <= target {
                    break 'passes;
                }
            }
        }
    }
    outcome.bytes_after = bytes;
    outcome.over_bound = bytes > max_bytes;
    if outcome.synced + outcome.low + outcome.normal > 0 {
        add_meta(tx, "dropped_low", to_i64("dropped_low", outcome.low)?)?;
        add_meta(
            tx,
            "dropped_normal",
            to_i64("dropped_normal", outcome.normal)?,
        )?;
        set_meta(tx, "last_drop_at_ms", now_ms)?;
    }
    set_meta(tx, "over_bound", i64::from(outcome.over_bound))?;
    let last_alert = meta(tx, "last_pressure_alert_ms")?;
    let newly_over = outcome.over_bound && !was_over;
    if newly_over || pressure_alert_due(last_alert, now_ms, alert_interval_ms) {
        let pending: i64 = tx.query_row(
            "SELECT count(*) FROM outbox WHERE synced_at_ms IS NULL AND dead_at_ms IS NULL",
            [],
            |r| r.get(0),
        )?;
        let message = pressure_message(&outcome, max_bytes, to_u64(pending));
        tracing::warn!(
            removed_synced = outcome.synced,
            dropped_low = outcome.low,
            dropped_normal = outcome.normal,
            over_bound = outcome.over_bound,
            "{message}"
        );
        let severity = if outcome.over_bound {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let alert = KioskEvent::new(
            None,
            now_ms,
            EventPayload::Alert {
                code: PRESSURE_ALERT_CODE.into(),
                severity,
                message,
            },
        );
        set_meta(tx, "last_pressure_alert_ms", now_ms)?;
        return Ok(Some(alert));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_alert_is_always_due_then_rate_limited() {
        let i = PRESSURE_ALERT_INTERVAL_MS;
        assert!(pressure_alert_due(0, 1_000, i));
        assert!(!pressure_alert_due(1_000, 1_000 + i - 1, i));
        assert!(pressure_alert_due(1_000, 1_000 + i, i));
        assert!(pressure_alert_due(5_000, 4_000, i), "clock went back");
    }

    #[test]
    fn message_says_what_was_dropped_and_what_to_do() {
        let o = DropOutcome {
            synced: 0,
            low: 3,
            normal: 1,
            bytes_after: 10,
            over_bound: false,
        };
        let m = pressure_message(&o, 1_048_576, 42);
        assert!(m.contains("dropped 3 low and 1 normal"), "{m}");
        assert!(m.contains("storage.max_bytes = 1048576"), "{m}");
        assert!(m.contains("42 events waiting"), "{m}");
        let over = DropOutcome {
            over_bound: true,
            bytes_after: 2_000_000,
            ..Default::default()
        };
        let m = pressure_message(&over, 1_048_576, 5);
        assert!(
            m.contains("only critical events remain (2000000 bytes)"),
            "{m}"
        );
        assert!(!m.contains("dropped"), "{m}");
    }

    /// One outbox row as the model sees it.
    #[derive(Debug, Clone)]
    struct Row {
        importance: i64,
        synced: bool,
        size: u64,
        cost: bool,
        age_ms: i64,
    }

    fn row() -> impl Strategy<Value = Row> {
        (
            0i64..3,
            any::<bool>(),
            300u64..3_000,
            any::<bool>(),
            0i64..3 * BUDGET_KEEP_MS,
        )
            .prop_map(|(importance, synced, size, cost, age_ms)| Row {
                importance,
                synced,
                size,
                cost,
                age_ms,
            })
    }

    /// The order of the module's doc, written as plainly as possible: the seqs (1-based)
    /// that survive.
    fn model(rows: &[Row], max: u64, now: i64) -> Vec<i64> {
        let mut bytes: u64 = rows.iter().map(|r| r.size).sum();
        let mut kept = vec![true; rows.len()];
        if bytes > max {
            let budget_row = |r: &Row| r.cost && now - r.age_ms >= now - BUDGET_KEEP_MS;
            let passes: [&dyn Fn(&Row) -> bool; 3] = [
                &|r| r.synced && !budget_row(r),
                &|r| !r.synced && r.importance == 0,
                &|r| !r.synced && r.importance == 1,
            ];
            'passes: for pass in passes {
                for (i, r) in rows.iter().enumerate() {
                    if kept[i] && pass(r) {
                        kept[i] = false;
                        bytes -= r.size;
                        if bytes <= drop_target(max) {
                            break 'passes;
                        }
                    }
                }
            }
        }
        (1..=rows.len() as i64)
            .filter(|seq| kept[*seq as usize - 1])
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A real (in-memory) SQLite outbox keeps exactly the rows the model keeps: synced rows
        /// go first whatever their importance, today's cost rows stay, unsynced critical rows
        /// are never dropped.
        #[test]
        fn drops_match_the_model(
            rows in prop::collection::vec(row(), 1..120),
            max in 20_000u64..120_000,
        ) {
            let now: i64 = 10 * BUDGET_KEEP_MS;
            let mut conn = Connection::open_in_memory().unwrap();
            crate::schema::migrate(&mut conn, std::path::Path::new(":memory:")).unwrap();
            for (i, r) in rows.iter().enumerate() {
                // `size_bytes` is what the triggers account, so the payload's length is moot.
                conn.execute(
                    "INSERT INTO outbox(event_id, kind, importance, occurred_at_ms, payload,
                                        cost_nusd, size_bytes, synced_at_ms)
                     VALUES (?1, 'alert', ?2, ?3, '{}', ?4, ?5, ?6)",
                    params![
                        format!("e{i}"),
                        r.importance,
                        now - r.age_ms,
                        i64::from(r.cost) * 1_000,
                        r.size as i64,
                        r.synced.then_some(now - 1),
                    ],
                )
                .unwrap();
            }
            let tx = conn.transaction().unwrap();
            enforce(&tx, max, now, PRESSURE_ALERT_INTERVAL_MS).unwrap();
            let kept: Vec<i64> = tx
                .prepare("SELECT seq FROM outbox ORDER BY seq")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            prop_assert_eq!(&kept, &model(&rows, max, now));
            for (i, r) in rows.iter().enumerate() {
                if !r.synced && r.importance == 2 {
                    prop_assert!(kept.contains(&(i as i64 + 1)), "unsynced critical row {} dropped", i + 1);
                }
            }
        }

        #[test]
        fn drop_target_is_below_the_bound_and_near_it(max in 1u64..u64::MAX) {
            let t = drop_target(max);
            prop_assert!(t <= max);
            prop_assert!(t >= max - max / 10);
        }

        #[test]
        fn alerts_are_never_closer_than_the_interval(last in 1i64..1i64 << 50, dt in 0i64..1i64 << 40) {
            let i = PRESSURE_ALERT_INTERVAL_MS;
            prop_assert_eq!(pressure_alert_due(last, last + dt, i), dt >= i);
        }
    }
}
