-- Dashboard views for admin_service and monitoring_service (kiosks get none of them).
-- They run with the owner's rights, so access is granted per view, never to kiosk_service.

-- Sessions started in the last 2 hours with no session_ended yet, per kiosk. Older ones
-- without an end are lost ends (a kiosk that died mid-session), not live conversations.
CREATE OR REPLACE VIEW dashboard_active_sessions AS
SELECT k.kiosk_id, k.gym_id,
       count(s.session_id) AS active_sessions,
       min(s.session_started_at) AS oldest_started_at
FROM kiosks k
LEFT JOIN openai_realtime_sessions s
       ON s.kiosk_id = k.kiosk_id
      AND s.ended_at IS NULL
      AND s.session_started_at > now() - interval '2 hours'
GROUP BY k.kiosk_id, k.gym_id;

-- Spend per gym and UTC day of the session start.
CREATE OR REPLACE VIEW dashboard_cost_per_gym_day AS
SELECT s.gym_id,
       (coalesce(s.session_started_at, s.first_event_at) AT TIME ZONE 'UTC')::date AS day,
       count(*) AS sessions,
       sum(s.input_audio_tokens_cost_usd) AS input_audio_tokens_cost_usd,
       sum(s.output_audio_tokens_cost_usd) AS output_audio_tokens_cost_usd,
       sum(s.input_text_tokens_cost_usd) AS input_text_tokens_cost_usd,
       sum(s.output_text_tokens_cost_usd) AS output_text_tokens_cost_usd,
       sum(s.transcription_cost_usd) AS transcription_cost_usd,
       sum(s.total_cost_usd) AS total_cost_usd
FROM openai_realtime_sessions s
GROUP BY 1, 2;

-- Mean conversation length of ended sessions, per gym and UTC day.
CREATE OR REPLACE VIEW dashboard_mean_duration AS
SELECT s.gym_id,
       (s.session_started_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS ended_sessions,
       round(avg(s.duration_ms) / 1000.0, 1) AS mean_duration_s
FROM openai_realtime_sessions s
WHERE s.ended_at IS NOT NULL AND s.duration_ms IS NOT NULL
GROUP BY 1, 2;

-- Kiosks with no event (heartbeat or other) received in the last 5 minutes, or never.
CREATE OR REPLACE VIEW dashboard_kiosks_not_seen AS
SELECT k.kiosk_id, k.gym_id, last.received_at AS last_seen_at
FROM kiosks k
LEFT JOIN LATERAL (
    SELECT e.received_at FROM kiosk_events e
    WHERE e.kiosk_id = k.kiosk_id
    ORDER BY e.received_at DESC
    LIMIT 1
) last ON true
WHERE last.received_at IS NULL OR last.received_at < now() - interval '5 minutes';

-- Alerts not yet acknowledged, newest first.
CREATE OR REPLACE VIEW dashboard_open_alerts AS
SELECT a.event_id, a.kiosk_id, k.gym_id, a.session_id, a.code, a.severity, a.message,
       a.occurred_at, a.received_at
FROM kiosk_alerts a
LEFT JOIN kiosks k ON k.kiosk_id = a.kiosk_id
WHERE a.acknowledged_at IS NULL
ORDER BY a.occurred_at DESC;

REVOKE ALL ON dashboard_active_sessions, dashboard_cost_per_gym_day, dashboard_mean_duration,
    dashboard_kiosks_not_seen, dashboard_open_alerts FROM PUBLIC;
GRANT SELECT ON dashboard_active_sessions, dashboard_cost_per_gym_day, dashboard_mean_duration,
    dashboard_kiosks_not_seen, dashboard_open_alerts TO admin_service, monitoring_service;
