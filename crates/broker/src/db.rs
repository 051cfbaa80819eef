//! The central Postgres, the broker's only state: a few pipelined connections with the two
//! statements a mint needs prepared once (the kiosk's standing, the audit row), and the
//! admin statements behind `jarvis-broker kiosk …`.
//!
//! The connection set-up (URL, `sslmode`, verified rustls TLS, password file) is the kiosk's
//! (`jarvis_sync::conn::CentralTarget`), so both sides of the fleet speak to central alike.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use crate::config::CentralConfig;
use crate::policy::Standing;
use jarvis_core::money::NanoUsd;
use jarvis_sync::shared::{HasClient, SharedConnections};

/// Why central could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("central.url: {0}")]
    Setup(String),
    #[error("central database: {0}")]
    Query(String),
    #[error(
        "central database: the broker tables are missing: run scripts/central-migrate.sh (migration 0008_broker.sql)"
    )]
    NotMigrated,
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
            || e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_COLUMN)
        {
            return DbError::NotMigrated;
        }
        let mut text = e.to_string();
        if let Some(db) = e.as_db_error() {
            text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        }
        DbError::Query(text)
    }
}

/// The one query before a mint or Live relay: the token's kiosk, its enablement, today's spend
/// of the kiosk and of its gym, and the sessions it started in the last minute (mints and Live
/// relays alike). Every part is an index lookup or range scan (token PK; sessions by
/// (kiosk_id, started) and (gym_id, started); the audit's partial index of successful session
/// starts, 0009_broker_live.sql).
pub const STANDING_SQL: &str = "\
WITH d AS (
    SELECT date_trunc('day', now() AT TIME ZONE $2) AT TIME ZONE $2 AS start,
           (date_trunc('day', now() AT TIME ZONE $2) + interval '1 day') AT TIME ZONE $2 AS next
)
SELECT k.kiosk_id, k.gym_id, k.disabled_at IS NOT NULL AS disabled,
       coalesce(t.expires_at <= now(), false) AS token_expired,
       (SELECT coalesce(sum(s.total_cost_usd), 0) FROM openai_realtime_sessions s
         WHERE s.kiosk_id = k.kiosk_id AND s.session_started_at >= d.start)::text AS kiosk_spend,
       (SELECT coalesce(sum(s.total_cost_usd), 0) FROM openai_realtime_sessions s
         WHERE s.gym_id = k.gym_id AND s.session_started_at >= d.start)::text AS gym_spend,
       r.n AS recent_mints,
       coalesce((extract(epoch FROM now() - r.oldest) * 1000)::bigint, 0) AS oldest_recent_ms,
       ceil(extract(epoch FROM d.next - now()))::bigint AS day_ends_in_s
FROM broker_kiosk_tokens t
JOIN kiosks k ON k.kiosk_id = t.kiosk_id
CROSS JOIN d
CROSS JOIN LATERAL (
    SELECT count(*)::int AS n, min(a.at) AS oldest FROM broker_audit a
     WHERE a.kiosk_id = k.kiosk_id AND a.action IN ('mint', 'relay') AND a.outcome = 'ok'
       AND a.at > now() - interval '60 seconds') r
WHERE t.token_hash = $1";

/// The second query of a mint: its audit row.
pub const AUDIT_SQL: &str = "\
INSERT INTO broker_audit (broker, kiosk_id, gym_id, action, outcome, reason, http_status,
                          latency_ms, upstream_ms, kiosk_session_id, openai_session_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// One row of `broker_audit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub kiosk_id: Option<String>,
    pub gym_id: Option<String>,
    /// `mint`, `relay` or `close`.
    pub action: &'static str,
    /// `ok`, `refused` or `upstream_error`.
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub http_status: u16,
    pub latency_ms: u32,
    pub upstream_ms: Option<u32>,
    pub kiosk_session_id: Option<Uuid>,
    pub openai_session_id: Option<String>,
}

struct Conn {
    client: Client,
    standing: Statement,
    audit: Statement,
}

impl HasClient for Conn {
    fn client(&self) -> &Client {
        &self.client
    }
}

/// The broker's connections to central, each with the mint's two statements prepared (see
/// [`SharedConnections`]).
pub struct Central {
    pool: SharedConnections<Conn>,
}

impl Central {
    /// Prepares the target from `central.*` (reads the password file); connects lazily.
    pub fn new(cfg: &CentralConfig, instance: &str) -> Result<Central, DbError> {
        let target = cfg
            .target(&format!("broker-{instance}"))
            .map_err(|e| DbError::Setup(e.to_string()))?;
        Ok(Central {
            pool: SharedConnections::new(target, cfg.pool_size),
        })
    }

    /// `user@host:port/db`, for logs.
    pub fn display(&self) -> &str {
        self.pool.target().display()
    }

    async fn conn(&self) -> Result<Arc<Conn>, DbError> {
        self.pool
            .get(|client| async move {
                let standing = client.prepare(STANDING_SQL).await?;
                let audit = client.prepare(AUDIT_SQL).await?;
                Ok::<_, DbError>(Conn {
                    client,
                    standing,
                    audit,
                })
            })
            .await
    }

    /// The kiosk's standing for a token hash; `None` for an unknown token.
    pub async fn standing(
        &self,
        token_hash: &[u8; 32],
        timezone: &str,
    ) -> Result<Option<Standing>, DbError> {
        let c = self.conn().await?;
        let Some(row) = c
            .client
            .query_opt(&c.standing, &[&token_hash.as_slice(), &timezone])
            .await?
        else {
            return Ok(None);
        };
        let money = |col: &str| -> Result<NanoUsd, DbError> {
            let text: String = row.try_get(col)?;
            text.parse()
                .map_err(|e| DbError::Query(format!("{col} = {text}: {e}")))
        };
        let recent: i32 = row.try_get("recent_mints")?;
        let oldest: i64 = row.try_get("oldest_recent_ms")?;
        let day_ends: i64 = row.try_get("day_ends_in_s")?;
        Ok(Some(Standing {
            kiosk_id: row.try_get("kiosk_id")?,
            gym_id: row.try_get("gym_id")?,
            disabled: row.try_get("disabled")?,
            token_expired: row.try_get("token_expired")?,
            kiosk_spend: money("kiosk_spend")?,
            gym_spend: money("gym_spend")?,
            recent_mints: u32::try_from(recent).unwrap_or(0),
            oldest_recent_ms: u64::try_from(oldest).unwrap_or(0),
            day_ends_in_s: u64::try_from(day_ends).unwrap_or(1),
        }))
    }

    /// The kiosk a Live session was relayed for (from its `relay` audit row), if any: a kiosk
    /// may close only its own sessions.
    pub async fn relayed_to(&self, openai_session_id: &str) -> Result<Option<String>, DbError> {
        let c = self.conn().await?;
        let row = c
            .client
            .query_opt(
                "SELECT kiosk_id FROM broker_audit WHERE action = 'relay' AND outcome = 'ok' \
                 AND openai_session_id = $1 LIMIT 1",
                &[&openai_session_id],
            )
            .await?;
        match row {
            Some(r) => Ok(r.try_get(0)?),
            None => Ok(None),
        }
    }

    /// Appends one audit row.
    pub async fn audit(&self, instance: &str, row: &AuditRow) -> Result<(), DbError> {
        let c = self.conn().await?;
        let status = i16::try_from(row.http_status).unwrap_or(i16::MAX);
        let latency = i32::try_from(row.latency_ms).unwrap_or(i32::MAX);
        let upstream = row
            .upstream_ms
            .map(|v| i32::try_from(v).unwrap_or(i32::MAX));
        c.client
            .execute(
                &c.audit,
                &[
                    &instance,
                    &row.kiosk_id,
                    &row.gym_id,
                    &row.action,
                    &row.outcome,
                    &row.reason,
                    &status,
                    &latency,
                    &upstream,
                    &row.kiosk_session_id,
                    &row.openai_session_id,
                ],
            )
            .await?;
        Ok(())
    }

    /// `SELECT 1` within `limit`: what `/healthz` reports.
    pub async fn ping(&self, limit: Duration) -> Result<(), DbError> {
        let ask = async {
            let c = self.conn().await?;
            c.client.simple_query("SELECT 1").await?;
            Ok::<(), DbError>(())
        };
        tokio::time::timeout(limit, ask)
            .await
            .map_err(|_| DbError::Query(format!("no answer within {} ms", limit.as_millis())))?
    }

    /// Deletes audit rows older than `days`; returns how many.
    pub async fn prune_audit(&self, days: u32) -> Result<u64, DbError> {
        let c = self.conn().await?;
        let days = f64::from(days);
        Ok(c.client
            .execute(
                "DELETE FROM broker_audit WHERE at < now() - make_interval(days => $1::float8::int)",
                &[&days],
            )
            .await?)
    }

    /// Gives `kiosk_id` a new token: with `overlap` the previous tokens stay valid that long
    /// (rotation), without they end now. Returns the token, shown once.
    pub async fn issue_token(
        &self,
        kiosk_id: &str,
        overlap: Option<Duration>,
    ) -> Result<String, DbError> {
        let (token, hash) =
            crate::token::generate().map_err(|e| DbError::Query(format!("no randomness: {e}")))?;
        let c = self.conn().await?;
        let known = c
            .client
            .query_opt("SELECT 1 FROM kiosks WHERE kiosk_id = $1", &[&kiosk_id])
            .await?;
        if known.is_none() {
            return Err(DbError::Query(format!(
                "no kiosk `{kiosk_id}` in the kiosks table: register it first with \
                 scripts/central-add-kiosk.sh"
            )));
        }
        c.client
            .execute(
                "INSERT INTO broker_kiosk_tokens (token_hash, kiosk_id) VALUES ($1, $2)",
                &[&hash.as_slice(), &kiosk_id],
            )
            .await?;
        // The new token first: if this fails, both work, never neither.
        let overlap_s = overlap.map_or(0.0, |d| d.as_secs_f64());
        c.client
            .execute(
                "UPDATE broker_kiosk_tokens SET expires_at = now() + make_interval(secs => $2)
                  WHERE kiosk_id = $1 AND token_hash <> $3
                    AND (expires_at IS NULL OR expires_at > now() + make_interval(secs => $2))",
                &[&kiosk_id, &overlap_s, &hash.as_slice()],
            )
            .await?;
        Ok(token)
    }

    /// Disables (or enables again) a kiosk; `false` when no such kiosk exists.
    pub async fn set_disabled(&self, kiosk_id: &str, disabled: bool) -> Result<bool, DbError> {
        let c = self.conn().await?;
        let n = c
            .client
            .execute(
                "UPDATE kiosks SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END
                  WHERE kiosk_id = $1",
                &[&kiosk_id, &disabled],
            )
            .await?;
        Ok(n == 1)
    }
}
