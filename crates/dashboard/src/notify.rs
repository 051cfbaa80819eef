//! Critical incidents to webhooks, driven from central so any number of instances can run:
//!
//! 1. **Detect** ([`DETECT_SQL`], one statement): the conditions that hold now become open
//!    incidents, open incidents whose condition is gone are cleared, and each opening and
//!    clearing queues one delivery per webhook. The partial unique index on open incidents
//!    makes the opening happen once whichever instances run it at the same moment, and a
//!    clearing is an UPDATE of a still-open row, which only one of them wins.
//! 2. **Claim** ([`CLAIM_SQL`]): under a per-webhook advisory lock, due deliveries are leased
//!    to this instance with `FOR UPDATE SKIP LOCKED`, no more than the webhook's rate allows
//!    (sent and in-flight in the last minute, over all instances), and never a clearing before
//!    its opening was sent.
//! 3. **Send** with a few quick retries (`backon`); the outcome is recorded on the row. A
//!    webhook still failing is tried again later, the delay doubling per attempt, so nothing is
//!    lost while it is down; after [`MAX_ATTEMPTS`] the delivery is marked `failed`.
//!
//! A delivery is sent more than once only if the process dies between the webhook's answer
//! and the recording of it (the lease then expires); receivers can drop repeats by the
//! `X-Jarvis-Delivery` header.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde_json::json;
use tokio_postgres::Client;

use crate::config::{DashboardConfig, Webhook, WebhookFormat};
use crate::db::{Central, DbError};

/// After this many attempts a delivery is given up (`status = failed`).
pub const MAX_ATTEMPTS: i32 = 20;
/// A claim's lease: longer than the quick retries of one send can take.
const LEASE_S: f64 = 60.0;

/// Conditions → incidents → deliveries. `$1` time zone, `$2` silent after (s), `$3` sync
/// stalled after (s), `$4` gym daily budget (USD text), `$5` webhook names.
pub const DETECT_SQL: &str = "\
WITH d AS (
    SELECT date_trunc('day', now() AT TIME ZONE $1) AT TIME ZONE $1 AS start,
           (now() AT TIME ZONE $1)::date::text AS day
), hb AS (
    SELECT k.kiosk_id, k.gym_id, k.created_at, h.received_at, h.outbox_oldest_age_s
    FROM kiosks k
    LEFT JOIN LATERAL (
        SELECT x.received_at, x.outbox_oldest_age_s FROM kiosk_heartbeats x
        WHERE x.kiosk_id = k.kiosk_id ORDER BY x.occurred_at DESC LIMIT 1) h ON true
    WHERE k.disabled_at IS NULL
), c AS (
    SELECT 'kiosk_silent'::text AS kind, hb.kiosk_id AS subject, hb.gym_id, hb.kiosk_id,
           CASE WHEN hb.received_at IS NULL THEN format('kiosk %s (gym %s) has never sent a heartbeat', hb.kiosk_id, hb.gym_id)
                ELSE format('kiosk %s (gym %s) silent since %s', hb.kiosk_id, hb.gym_id,
                            to_char(hb.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS UTC')) END AS detail
    FROM hb
    WHERE coalesce(hb.received_at, hb.created_at) < now() - make_interval(secs => $2::bigint)
    UNION ALL
    SELECT 'sync_stalled', hb.kiosk_id, hb.gym_id, hb.kiosk_id,
           format('kiosk %s (gym %s): oldest unsynced event is %s s old', hb.kiosk_id, hb.gym_id, hb.outbox_oldest_age_s)
    FROM hb
    WHERE hb.outbox_oldest_age_s > $3::bigint
      AND hb.received_at >= now() - make_interval(secs => $2::bigint)
    UNION ALL
    SELECT 'gym_over_budget', g.gym_id || '/' || d.day, g.gym_id, NULL,
           format('gym %s spent %s USD today (%s), budget %s USD', g.gym_id, round(g.spend, 2), d.day, round($4::text::numeric, 2))
    FROM d, LATERAL (
        SELECT s.gym_id, sum(s.total_cost_usd) AS spend FROM openai_realtime_sessions s
        WHERE s.session_started_at >= d.start AND s.gym_id IS NOT NULL GROUP BY 1) g
    WHERE g.spend >= $4::text::numeric
    UNION ALL
    SELECT CASE WHEN a.code = 'store_recovered' THEN 'store_recovered' ELSE 'unpriced_usage' END,
           a.event_id::text, k.gym_id, a.kiosk_id,
           format('kiosk %s: %s: %s', a.kiosk_id, a.code, a.message)
    FROM kiosk_alerts a
    LEFT JOIN kiosks k ON k.kiosk_id = a.kiosk_id
    WHERE a.acknowledged_at IS NULL
      AND a.code IN ('store_recovered', 'unpriced_model', 'usage_overflow')
      AND a.occurred_at > now() - interval '7 days'
), opened AS (
    INSERT INTO dashboard_incidents (kind, subject, gym_id, kiosk_id, detail)
    SELECT c.kind, c.subject, c.gym_id, c.kiosk_id, c.detail FROM c
    ON CONFLICT (kind, subject) WHERE cleared_at IS NULL DO NOTHING
    RETURNING incident_id
), cleared AS (
    UPDATE dashboard_incidents i SET cleared_at = now()
    WHERE i.cleared_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM c WHERE c.kind = i.kind AND c.subject = i.subject)
    RETURNING incident_id
), queued AS (
    INSERT INTO dashboard_deliveries (incident_id, webhook, event)
    SELECT o.incident_id, w, 'open' FROM opened o, unnest($5::text[]) w
    UNION ALL
    SELECT x.incident_id, w, 'clear' FROM cleared x, unnest($5::text[]) w
    ON CONFLICT (incident_id, webhook, event) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM opened) AS opened, (SELECT count(*) FROM cleared) AS cleared,
       (SELECT count(*) FROM queued) AS queued";

/// Leases due deliveries of webhook `$1` to instance `$2`, at most `$3` per rolling minute.
pub const CLAIM_SQL: &str = "\
UPDATE dashboard_deliveries d
SET claimed_by = $2, claimed_until = now() + make_interval(secs => $4::float8),
    attempts = d.attempts + 1
FROM dashboard_incidents i
WHERE i.incident_id = d.incident_id
  AND d.delivery_id IN (
    SELECT p.delivery_id FROM dashboard_deliveries p
    WHERE p.webhook = $1 AND p.status = 'pending' AND p.next_attempt_at <= now()
      AND (p.claimed_until IS NULL OR p.claimed_until < now())
      AND NOT EXISTS (
          SELECT 1 FROM dashboard_deliveries e
          WHERE e.incident_id = p.incident_id AND e.webhook = p.webhook
            AND e.delivery_id < p.delivery_id AND e.status = 'pending')
    ORDER BY p.delivery_id
    LIMIT greatest(0, $3::bigint - (
        SELECT count(*) FROM dashboard_deliveries r
        WHERE r.webhook = $1
          AND ((r.status = 'sent' AND r.sent_at > now() - interval '1 minute')
               OR (r.status = 'pending' AND r.claimed_until > now()))))
    FOR UPDATE OF p SKIP LOCKED)
RETURNING d.delivery_id, d.event, d.attempts, i.incident_id, i.kind, i.subject,
          coalesce(i.gym_id, '') AS gym_id, coalesce(i.kiosk_id, '') AS kiosk_id, i.detail,
          to_char(i.opened_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS opened_at,
          to_char(i.cleared_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS cleared_at";

/// One delivery to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub delivery_id: i64,
    /// `open` or `clear`.
    pub event: String,
    pub attempts: i32,
    pub incident_id: i64,
    pub kind: String,
    pub subject: String,
    pub gym_id: String,
    pub kiosk_id: String,
    pub detail: String,
    pub opened_at: String,
    pub cleared_at: Option<String>,
}

/// The request body for `format`.
pub fn body(format: WebhookFormat, d: &Delivery) -> serde_json::Value {
    match format {
        WebhookFormat::Slack => {
            let head = if d.event == "clear" {
                format!(":white_check_mark: cleared: {}", d.kind)
            } else {
                format!(":rotating_light: {}", d.kind)
            };
            json!({ "text": format!("{head}: {}", d.detail) })
        }
        WebhookFormat::Json => json!({
            "event": d.event,
            "delivery_id": d.delivery_id,
            "incident_id": d.incident_id,
            "kind": d.kind,
            "subject": d.subject,
            "gym_id": d.gym_id,
            "kiosk_id": d.kiosk_id,
            "detail": d.detail,
            "opened_at": d.opened_at,
            "cleared_at": d.cleared_at,
        }),
    }
}

/// When a delivery that failed `attempts` times is tried again: `poll_s` doubled per attempt,
/// at most an hour.
pub fn retry_delay(poll_s: u64, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    Duration::from_secs(poll_s.max(1).saturating_mul(1u64 << exp).min(3600))
}

/// A webhook with its URL read.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub url: String,
    pub format: WebhookFormat,
    pub per_minute: u32,
}

impl Target {
    /// Reads `url_file` when set.
    pub fn from_config(w: &Webhook, i: usize) -> anyhow::Result<Target> {
        let url = match (&w.url, &w.url_file) {
            (Some(url), _) => url.clone(),
            (None, Some(file)) => file
                .read(&format!("webhooks[{i}].url_file"))?
                .expose()
                .trim()
                .to_owned(),
            (None, None) => anyhow::bail!("webhooks[{i}]: set url_file"),
        };
        Ok(Target {
            name: w.name.clone(),
            url,
            format: w.format,
            per_minute: w.per_minute,
        })
    }
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("webhook answered HTTP {0}")]
    Status(u16),
    #[error("webhook unreachable: {0}")]
    Transport(String),
}

/// Detection and delivery for one instance.
pub struct Notifier {
    instance: String,
    cfg: DashboardConfig,
    targets: Vec<Target>,
    http: reqwest::Client,
    /// Its own connection: claims run in a transaction.
    conn: Option<Client>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub opened: i64,
    pub cleared: i64,
    pub sent: u32,
    pub failed: u32,
}

impl Notifier {
    pub fn new(cfg: &DashboardConfig, instance: &str) -> anyhow::Result<Notifier> {
        let targets = cfg
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, w)| Target::from_config(w, i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("jarvis-dashboard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Notifier {
            instance: instance.to_owned(),
            cfg: cfg.clone(),
            targets,
            http,
            conn: None,
        })
    }

    /// Runs rounds every `alerts.poll_s` until `stop` resolves; errors are logged and retried
    /// next round.
    pub async fn run(mut self, db: &Central, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let period = Duration::from_secs(self.cfg.alerts.poll_s);
        loop {
            match self.round(db).await {
                Ok(r) if r != Round::default() => tracing::info!(
                    opened = r.opened,
                    cleared = r.cleared,
                    sent = r.sent,
                    failed = r.failed,
                    "notifications"
                ),
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    tracing::warn!(error = %e, "notification round failed; retrying next round");
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(period) => {}
            }
        }
    }

    /// One detection and one claim-and-send per webhook.
    pub async fn round(&mut self, db: &Central) -> Result<Round, DbError> {
        if self.conn.as_ref().is_none_or(Client::is_closed) {
            self.conn = Some(db.dedicated().await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(DbError::Query("no connection".into()));
        };
        let names: Vec<String> = self.targets.iter().map(|t| t.name.clone()).collect();
        let budget = self.cfg.budgets.gym_daily_usd.0.to_decimal_string();
        let silent = i64::try_from(self.cfg.alerts.silent_after_s).unwrap_or(i64::MAX);
        let stalled = i64::try_from(self.cfg.alerts.sync_stalled_after_s).unwrap_or(i64::MAX);
        let row = conn
            .query_one(
                DETECT_SQL,
                &[
                    &self.cfg.budgets.timezone,
                    &silent,
                    &stalled,
                    &budget,
                    &names,
                ],
            )
            .await?;
        let mut round = Round {
            opened: row.try_get("opened")?,
            cleared: row.try_get("cleared")?,
            ..Round::default()
        };
        for target in &self.targets {
            let claimed = claim(conn, &self.instance, target).await?;
            for d in claimed {
                let outcome = send(&self.http, target, &d).await;
                record(conn, &self.instance, &d, &outcome, self.cfg.alerts.poll_s).await?;
                match outcome {
                    Ok(_) => round.sent += 1,
                    Err(_) => round.failed += 1,
                }
            }
        }
        Ok(round)
    }
}

async fn claim(conn: &mut Client, instance: &str, t: &Target) -> Result<Vec<Delivery>, DbError> {
    let tx = conn.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('jarvis-dashboard webhook ' || $1::text))",
        &[&t.name],
    )
    .await?;
    let rows = tx
        .query(
            CLAIM_SQL,
            &[&t.name, &instance, &i64::from(t.per_minute), &LEASE_S],
        )
        .await?;
    tx.commit().await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(Delivery {
                delivery_id: r.try_get("delivery_id")?,
                event: r.try_get("event")?,
                attempts: r.try_get("attempts")?,
                incident_id: r.try_get("incident_id")?,
                kind: r.try_get("kind")?,
                subject: r.try_get("subject")?,
                gym_id: r.try_get("gym_id")?,
                kiosk_id: r.try_get("kiosk_id")?,
                detail: r.try_get("detail")?,
                opened_at: r.try_get("opened_at")?,
                cleared_at: r.try_get("cleared_at")?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    out.sort_by_key(|d| d.delivery_id);
    Ok(out)
}

/// Posts one delivery, retrying quickly a few times; `Ok` holds the HTTP status.
async fn send(http: &reqwest::Client, t: &Target, d: &Delivery) -> Result<u16, SendError> {
    let payload = body(t.format, d);
    let attempt = || async {
        let resp = http
            .post(&t.url)
            .header("X-Jarvis-Delivery", d.delivery_id.to_string())
            .json(&payload)
            .send()
            .await
            .map_err(|e| SendError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            Ok(status)
        } else {
            Err(SendError::Status(status))
        }
    };
    attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(2))
                .with_max_times(2),
        )
        .await
}

async fn record(
    conn: &Client,
    instance: &str,
    d: &Delivery,
    outcome: &Result<u16, SendError>,
    poll_s: u64,
) -> Result<(), DbError> {
    match outcome {
        Ok(status) => {
            conn.execute(
                "UPDATE dashboard_deliveries SET status = 'sent', sent_at = now(), http_status = $3, \
                 last_error = NULL, claimed_by = NULL, claimed_until = NULL \
                 WHERE delivery_id = $1 AND claimed_by = $2",
                &[&d.delivery_id, &instance, &i16::try_from(*status).unwrap_or(0)],
            )
            .await?;
        }
        Err(e) => {
            let status = match e {
                SendError::Status(s) => i16::try_from(*s).ok(),
                SendError::Transport(_) => None,
            };
            let delay = retry_delay(poll_s, d.attempts).as_secs_f64();
            let give_up = d.attempts >= MAX_ATTEMPTS;
            tracing::warn!(delivery = d.delivery_id, attempts = d.attempts, error = %e, give_up, "webhook delivery failed");
            conn.execute(
                "UPDATE dashboard_deliveries SET status = CASE WHEN $5 THEN 'failed' ELSE 'pending' END, \
                 http_status = $3, last_error = $4, claimed_by = NULL, claimed_until = NULL, \
                 next_attempt_at = now() + make_interval(secs => $6::float8) \
                 WHERE delivery_id = $1 AND claimed_by = $2",
                &[&d.delivery_id, &instance, &status, &e.to_string(), &give_up, &delay],
            )
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn delivery(event: &str) -> Delivery {
        Delivery {
            delivery_id: 7,
            event: event.into(),
            attempts: 1,
            incident_id: 3,
            kind: "kiosk_silent".into(),
            subject: "k1".into(),
            gym_id: "g1".into(),
            kiosk_id: "k1".into(),
            detail: "kiosk k1 (gym g1) silent".into(),
            opened_at: "2026-01-01T00:00:00Z".into(),
            cleared_at: None,
        }
    }

    #[test]
    fn slack_and_json_bodies() {
        let s = body(WebhookFormat::Slack, &delivery("open"));
        assert_eq!(
            s["text"],
            ":rotating_light: kiosk_silent: kiosk k1 (gym g1) silent"
        );
        let c = body(WebhookFormat::Slack, &delivery("clear"));
        assert!(c["text"].as_str().unwrap().contains("cleared"));
        let j = body(WebhookFormat::Json, &delivery("open"));
        assert_eq!(j["event"], "open");
        assert_eq!(j["delivery_id"], 7);
        assert_eq!(j["kiosk_id"], "k1");
    }

    proptest! {
        #[test]
        fn retry_delay_grows_and_is_bounded(poll in 0u64..1000, a in -5i32..100) {
            let d = retry_delay(poll, a);
            prop_assert!(d >= Duration::from_secs(1));
            prop_assert!(d <= Duration::from_secs(3600));
            prop_assert!(retry_delay(poll, a.saturating_add(1)) >= d);
        }
    }
}
