//! The page's queries, read through `monitoring_service`'s grants. Each is one statement that
//! the indexes answer without scanning history (see `bench_queries` and the README):
//! per-kiosk parts are LATERAL index lookups on `(kiosk_id, …)`, period figures read the daily
//! rollups (`session_days`, `kiosk_heartbeat_days`), the 24-hour figures range-scan
//! `session_started_at`. A period of N days is the last N UTC days, today included.
//!
//! `$1` is always the operator's gyms (`NULL` = all gyms).

use jarvis_core::money::NanoUsd;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::db::{Central, DbError};

/// Per kiosk: last heartbeat, live session, today's sessions and spend. `$2` = time zone.
pub const KIOSKS_SQL: &str = "\
WITH d AS (SELECT date_trunc('day', now() AT TIME ZONE $2) AT TIME ZONE $2 AS start)
SELECT k.kiosk_id, k.gym_id, coalesce(k.label, '') AS label,
       hb.received_at IS NOT NULL AS seen,
       coalesce(extract(epoch FROM now() - hb.received_at)::bigint, 0) AS seen_ago_s,
       coalesce(hb.version, '') AS version,
       hb.outbox_backlog, hb.outbox_oldest_age_s,
       live.session_id AS live_session,
       coalesce(extract(epoch FROM now() - live.session_started_at)::bigint, 0) AS live_for_s,
       t.sessions, t.cost::text AS cost
FROM kiosks k
CROSS JOIN d
LEFT JOIN LATERAL (
    SELECT h.received_at, h.version, h.outbox_backlog, h.outbox_oldest_age_s
    FROM kiosk_heartbeats h WHERE h.kiosk_id = k.kiosk_id
    ORDER BY h.occurred_at DESC LIMIT 1) hb ON true
LEFT JOIN LATERAL (
    SELECT s.session_id, s.session_started_at
    FROM openai_realtime_sessions s
    WHERE s.kiosk_id = k.kiosk_id AND s.ended_at IS NULL
      AND s.session_started_at > now() - interval '2 hours'
    ORDER BY s.session_started_at DESC LIMIT 1) live ON true
CROSS JOIN LATERAL (
    SELECT count(*) AS sessions, coalesce(sum(s.total_cost_usd), 0) AS cost
    FROM openai_realtime_sessions s
    WHERE s.kiosk_id = k.kiosk_id AND s.session_started_at >= d.start) t
WHERE $1::text[] IS NULL OR k.gym_id = ANY($1)
ORDER BY k.gym_id, k.kiosk_id";

/// The last alerts, open or not.
pub const ALERTS_SQL: &str = "\
SELECT a.kiosk_id, coalesce(k.gym_id, '') AS gym_id, a.code, a.severity, a.message,
       extract(epoch FROM now() - a.occurred_at)::bigint AS ago_s,
       a.acknowledged_at IS NOT NULL AS acknowledged
FROM kiosk_alerts a
LEFT JOIN kiosks k ON k.kiosk_id = a.kiosk_id
WHERE $1::text[] IS NULL OR k.gym_id = ANY($1)
ORDER BY a.occurred_at DESC
LIMIT 20";

/// The period's sessions from the daily rollup (`$2` = days, today included).
pub const SLA_SQL: &str = "\
SELECT coalesce(sum(d.sessions), 0)::bigint AS sessions,
       coalesce(sum(d.ended), 0)::bigint AS ended,
       coalesce(sum(d.connected), 0)::bigint AS connected,
       coalesce(sum(d.connect_ms_sum) / nullif(sum(d.connected), 0), 0)::float8 AS connect_avg_ms,
       coalesce(sum(d.cost_usd), 0)::text AS cost,
       coalesce(sum(d.live_sessions), 0)::bigint AS live_sessions,
       coalesce(sum(d.billed_seconds), 0)::bigint AS billed_seconds
FROM session_days d
WHERE d.day >= (now() AT TIME ZONE 'UTC')::date - ($2::int - 1)
  AND ($1::text[] IS NULL OR d.gym_id = ANY($1))";

/// The 95th percentile of connect time over the last 24 hours (a percentile does not roll up).
pub const CONNECT_P95_SQL: &str = "\
SELECT coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY s.connect_ms), 0)::float8 AS p95
FROM openai_realtime_sessions s
WHERE s.session_started_at >= now() - interval '24 hours' AND s.connect_ms IS NOT NULL
  AND ($1::text[] IS NULL OR s.gym_id = ANY($1))";

/// How the period's sessions ended.
pub const END_REASONS_SQL: &str = "\
SELECT r.key AS reason, sum(r.value::bigint)::bigint AS n
FROM session_days d, jsonb_each_text(d.reasons) r
WHERE d.day >= (now() AT TIME ZONE 'UTC')::date - ($2::int - 1)
  AND ($1::text[] IS NULL OR d.gym_id = ANY($1))
GROUP BY 1 HAVING sum(r.value::bigint) > 0
ORDER BY 2 DESC, 1";

/// Heartbeats received in the period's days (each day capped at `$3`, one per interval) and
/// the seconds each kiosk existed in the period, for the uptime figure.
pub const UPTIME_SQL: &str = "\
WITH p AS (SELECT ((now() AT TIME ZONE 'UTC')::date - ($2::int - 1))::timestamp AT TIME ZONE 'UTC' AS start)
SELECT count(*) AS kiosks,
       coalesce(sum(b.beats), 0)::bigint AS beats,
       coalesce(sum(extract(epoch FROM now() - greatest(k.created_at, p.start))), 0)::float8 AS expected_s
FROM kiosks k
CROSS JOIN p
CROSS JOIN LATERAL (
    SELECT coalesce(sum(least(d.beats, $3)), 0) AS beats FROM kiosk_heartbeat_days d
    WHERE d.kiosk_id = k.kiosk_id AND d.day >= (p.start AT TIME ZONE 'UTC')::date) b
WHERE $1::text[] IS NULL OR k.gym_id = ANY($1)";

/// Spend and sessions per UTC day of the period.
pub const COST_PER_DAY_SQL: &str = "\
SELECT d.day::text AS day, sum(d.sessions)::bigint AS sessions, sum(d.cost_usd)::text AS cost
FROM session_days d
WHERE d.day >= (now() AT TIME ZONE 'UTC')::date - ($2::int - 1)
  AND ($1::text[] IS NULL OR d.gym_id = ANY($1))
GROUP BY d.day ORDER BY d.day";

/// Sessions started in each of the last 24 hours (0 = the current hour).
pub const SESSIONS_PER_HOUR_SQL: &str = "\
SELECT (extract(epoch FROM date_trunc('hour', now()) - date_trunc('hour', s.session_started_at))
        / 3600)::int AS hours_ago,
       count(*) AS sessions
FROM openai_realtime_sessions s
WHERE s.session_started_at >= date_trunc('hour', now()) - interval '23 hours'
  AND ($1::text[] IS NULL OR s.gym_id = ANY($1))
GROUP BY 1";

/// One kiosk's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KioskRow {
    pub kiosk_id: String,
    pub gym_id: String,
    pub label: String,
    /// Whether any heartbeat was ever received.
    pub seen: bool,
    pub seen_ago_s: u64,
    pub version: String,
    pub outbox_backlog: Option<i64>,
    pub outbox_oldest_age_s: Option<i64>,
    pub live_session: Option<Uuid>,
    pub live_for_s: u64,
    pub sessions_today: u64,
    pub cost_today: NanoUsd,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    pub kiosk_id: String,
    pub gym_id: String,
    pub code: String,
    pub severity: String,
    pub message: String,
    pub ago_s: u64,
    pub acknowledged: bool,
}

/// The period's service figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Sla {
    pub sessions: u64,
    pub ended: u64,
    pub connected: u64,
    pub connect_avg_ms: f64,
    /// Over the last 24 hours, whatever the period.
    pub connect_p95_ms: f64,
    /// Realtime and GPT-Live sessions alike.
    pub cost: NanoUsd,
    /// GPT-Live sessions and their billed voice seconds.
    pub live_sessions: u64,
    pub billed_seconds: u64,
    pub end_reasons: Vec<(String, u64)>,
    pub kiosks: u64,
    pub beats: u64,
    /// Seconds the kiosks existed during the period (the uptime's denominator).
    pub expected_s: f64,
}

/// Everything the page shows, for one operator and period.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub kiosks: Vec<KioskRow>,
    pub alerts: Vec<AlertRow>,
    pub sla: Sla,
    /// `(day, sessions, spend)`, oldest first.
    pub cost_per_day: Vec<(String, u64, NanoUsd)>,
    /// Index 0 = 23 hours ago, 23 = the current hour.
    pub sessions_per_hour: [u64; 24],
}

/// What to read: whose gyms, which period, which day.
#[derive(Debug, Clone)]
pub struct Scope {
    pub gyms: Option<Vec<String>>,
    pub period_days: u32,
    pub timezone: String,
    /// Heartbeats a healthy kiosk sends per day.
    pub beats_per_day: i32,
}

fn count(row: &Row, col: &str) -> Result<u64, DbError> {
    let v: i64 = row.try_get(col)?;
    Ok(u64::try_from(v).unwrap_or(0))
}

fn money(row: &Row, col: &str) -> Result<NanoUsd, DbError> {
    let text: String = row.try_get(col)?;
    text.parse()
        .map_err(|e| DbError::Query(format!("{col} = {text}: {e}")))
}

/// Reads the whole snapshot; the statements run concurrently on pipelined connections.
pub async fn snapshot(db: &Central, scope: &Scope) -> Result<Snapshot, DbError> {
    let c = db.client().await?;
    let gyms = &scope.gyms;
    let since = since(scope.period_days);
    let k_params: [&(dyn ToSql + Sync); 2] = [gyms, &scope.timezone];
    let g_params: [&(dyn ToSql + Sync); 1] = [gyms];
    let p_params: [&(dyn ToSql + Sync); 2] = [gyms, &since];
    let u_params: [&(dyn ToSql + Sync); 3] = [gyms, &since, &scope.beats_per_day];
    let (kiosks, alerts, sla, p95, reasons, uptime, per_day, per_hour) = tokio::try_join!(
        c.query(KIOSKS_SQL, &k_params),
        c.query(ALERTS_SQL, &g_params),
        c.query_one(SLA_SQL, &p_params),
        c.query_one(CONNECT_P95_SQL, &g_params),
        c.query(END_REASONS_SQL, &p_params),
        c.query_one(UPTIME_SQL, &u_params),
        c.query(COST_PER_DAY_SQL, &p_params),
        c.query(SESSIONS_PER_HOUR_SQL, &g_params),
    )?;
    let kiosks = kiosks
        .iter()
        .map(|r| {
            Ok(KioskRow {
                kiosk_id: r.try_get("kiosk_id")?,
                gym_id: r.try_get("gym_id")?,
                label: r.try_get("label")?,
                seen: r.try_get("seen")?,
                seen_ago_s: count(r, "seen_ago_s")?,
                version: r.try_get("version")?,
                outbox_backlog: r.try_get("outbox_backlog")?,
                outbox_oldest_age_s: r.try_get("outbox_oldest_age_s")?,
                live_session: r.try_get("live_session")?,
                live_for_s: count(r, "live_for_s")?,
                sessions_today: count(r, "sessions")?,
                cost_today: money(r, "cost")?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    let alerts = alerts
        .iter()
        .map(|r| {
            Ok(AlertRow {
                kiosk_id: r.try_get("kiosk_id")?,
                gym_id: r.try_get("gym_id")?,
                code: r.try_get("code")?,
                severity: r.try_get("severity")?,
                message: r.try_get("message")?,
                ago_s: count(r, "ago_s")?,
                acknowledged: r.try_get("acknowledged")?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    let end_reasons = reasons
        .iter()
        .map(|r| Ok((r.try_get("reason")?, count(r, "n")?)))
        .collect::<Result<Vec<_>, DbError>>()?;
    let sla = Sla {
        sessions: count(&sla, "sessions")?,
        ended: count(&sla, "ended")?,
        connected: count(&sla, "connected")?,
        connect_avg_ms: sla.try_get("connect_avg_ms")?,
        connect_p95_ms: p95.try_get("p95")?,
        cost: money(&sla, "cost")?,
        live_sessions: count(&sla, "live_sessions")?,
        billed_seconds: count(&sla, "billed_seconds")?,
        end_reasons,
        kiosks: count(&uptime, "kiosks")?,
        beats: count(&uptime, "beats")?,
        expected_s: uptime.try_get("expected_s")?,
    };
    let cost_per_day = per_day
        .iter()
        .map(|r| Ok((r.try_get("day")?, count(r, "sessions")?, money(r, "cost")?)))
        .collect::<Result<Vec<_>, DbError>>()?;
    let mut sessions_per_hour = [0u64; 24];
    for r in &per_hour {
        let ago: i32 = r.try_get("hours_ago")?;
        if let Ok(ago @ 0..=23) = usize::try_from(ago) {
            sessions_per_hour[23 - ago] = count(r, "sessions")?;
        }
    }
    Ok(Snapshot {
        kiosks,
        alerts,
        sla,
        cost_per_day,
        sessions_per_hour,
    })
}

/// The period as the `int` days parameter of the statements.
fn since(days: u32) -> i32 {
    i32::try_from(days).unwrap_or(i32::MAX)
}
