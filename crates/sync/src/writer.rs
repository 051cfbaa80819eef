//! The thin Postgres side of the sync: one pooler-safe statement per batch.
//!
//! Every statement here is either the simple protocol (`simple_query`) or an unnamed
//! extended-protocol statement (`query_typed`): nothing is prepared by name, so the writer
//! works through PgBouncer or Supavisor in transaction pooling mode, where consecutive
//! statements may run on different server connections.

use std::collections::BTreeSet;

use serde::Serialize;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};
use uuid::Uuid;

use super::conn::CentralTarget;
use super::schema::PROBE_SQL;
use jarvis_core::events::{EventPayload, KioskEvent};

/// Inserts a JSON array of events in one statement (so one transaction) and returns how
/// many were new. `ON CONFLICT DO NOTHING` (every unique index: the event id, and
/// `kiosk_events_usage_once` on `(session_id, response_id)` of usage) makes a retried batch or
/// a usage recorded twice harmless; the central trigger derives sessions, heartbeats and
/// alerts from the rows really inserted.
pub const INSERT_SQL: &str = "\
WITH ins AS ( \
  INSERT INTO public.kiosk_events (event_id, kiosk_id, session_id, seq, kind, occurred_at, payload) \
  SELECT r.event_id, r.kiosk_id, r.session_id, r.seq, r.kind, \
         timestamptz 'epoch' + r.occurred_at_ms * interval '1 millisecond', r.payload \
    FROM jsonb_to_recordset($1::text::jsonb) AS r(event_id uuid, kiosk_id text, session_id uuid, \
         seq bigint, kind text, occurred_at_ms bigint, payload jsonb) \
  ON CONFLICT DO NOTHING RETURNING 1) \
SELECT count(*) FROM ins";

/// One event as it travels to central: the `kiosk_events` columns, payload as JSON.
#[derive(Serialize)]
struct WireEvent<'a> {
    event_id: Uuid,
    kiosk_id: &'a str,
    session_id: Option<Uuid>,
    seq: i64,
    kind: &'static str,
    occurred_at_ms: i64,
    payload: &'a EventPayload,
}

/// The `$1` of [`INSERT_SQL`] for events given with their local sequence numbers.
pub fn encode_batch<'a>(
    kiosk_id: &str,
    events: impl IntoIterator<Item = (i64, &'a KioskEvent)>,
) -> Result<String, serde_json::Error> {
    let wire: Vec<WireEvent<'_>> = events
        .into_iter()
        .map(|(seq, e)| WireEvent {
            event_id: e.event_id,
            kiosk_id,
            session_id: e.session_id,
            seq,
            kind: e.kind().as_str(),
            occurred_at_ms: e.occurred_at_ms,
            payload: &e.payload,
        })
        .collect();
    serde_json::to_string(&wire)
}

/// A member as `kiosk_lookup_member` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentralMember {
    pub member_id: String,
    pub first_name: String,
    pub language: String,
    pub membership_status: String,
}

/// An open connection to the central database, used by one task at a time.
pub struct Writer {
    client: Client,
}

impl Writer {
    /// Connects (TLS per the target's `sslmode`).
    pub async fn connect(target: &CentralTarget) -> Result<Writer, tokio_postgres::Error> {
        Ok(Writer {
            client: target.connect().await?,
        })
    }

    /// True once the server or the network closed the connection: reconnect.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The names of the required objects present (see [`super::schema::PROBE_SQL`]).
    pub async fn probe_schema(&self) -> Result<BTreeSet<String>, tokio_postgres::Error> {
        let rows = self.client.simple_query(PROBE_SQL).await?;
        Ok(rows
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect())
    }

    /// The kiosk this login role is registered for, and whether it may insert events.
    pub async fn identity(&self) -> Result<(Option<String>, bool), tokio_postgres::Error> {
        let rows = self
            .client
            .simple_query(
                "SELECT public.current_kiosk_id(), \
                 has_any_column_privilege('public.kiosk_events', 'INSERT')::text",
            )
            .await?;
        for m in rows {
            if let SimpleQueryMessage::Row(r) = m {
                return Ok((r.get(0).map(str::to_owned), r.get(1) == Some("true")));
            }
        }
        Ok((None, false))
    }

    /// Sends one encoded batch (see [`encode_batch`]); returns how many events were new.
    pub async fn insert(&self, batch_json: &str) -> Result<u64, tokio_postgres::Error> {
        let rows = self
            .client
            .query_typed(INSERT_SQL, &[(&batch_json, Type::TEXT)])
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.try_get::<_, i64>(0).ok())
            .map_or(0, |n| n.max(0) as u64))
    }

    /// At most one member of this kiosk's gym with this badge.
    pub async fn lookup_member(
        &self,
        badge: &str,
    ) -> Result<Option<CentralMember>, tokio_postgres::Error> {
        let rows = self
            .client
            .query_typed(
                "SELECT member_id, first_name, language, membership_status \
                 FROM public.kiosk_lookup_member($1)",
                &[(&badge, Type::TEXT)],
            )
            .await?;
        Ok(rows.first().map(|r| CentralMember {
            member_id: r.get(0),
            first_name: r.get(1),
            language: r.get(2),
            membership_status: r.get(3),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_core::events::{CostBreakdown, Severity};
    use jarvis_core::money::NanoUsd;

    #[test]
    fn encodes_columns_and_integer_money() {
        let sid = Uuid::now_v7();
        let usage = KioskEvent::new(
            Some(sid),
            1_700_000_000_123,
            EventPayload::TranscriptionUsage {
                item_id: "i1".into(),
                model: "m".into(),
                cost: CostBreakdown {
                    transcription_nusd: NanoUsd(1234),
                    ..Default::default()
                },
                raw_usage: serde_json::json!({"seconds": 3}),
            },
        );
        let alert = KioskEvent::new(
            None,
            5,
            EventPayload::Alert {
                code: "c".into(),
                severity: Severity::Info,
                message: "quote \" and é".into(),
            },
        );
        let json = encode_batch("k1", [(7, &usage), (8, &alert)]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["event_id"], usage.event_id.to_string());
        assert_eq!(v[0]["kiosk_id"], "k1");
        assert_eq!(v[0]["session_id"], sid.to_string());
        assert_eq!(v[0]["seq"], 7);
        assert_eq!(v[0]["kind"], "transcription_usage");
        assert_eq!(v[0]["occurred_at_ms"], 1_700_000_000_123i64);
        assert_eq!(v[0]["payload"]["kind"], "transcription_usage");
        assert_eq!(v[0]["payload"]["cost"]["transcription_nusd"], 1234);
        assert_eq!(v[1]["session_id"], serde_json::Value::Null);
        assert_eq!(v[1]["payload"]["message"], "quote \" and é");
    }

    #[test]
    fn empty_batch_is_an_empty_array() {
        assert_eq!(encode_batch("k", []).unwrap(), "[]");
    }
}
