-- The broker's GPT-Live relay (jarvis-broker, `POST /v1/live/sessions`). broker_audit already
-- allows the 'relay' action; these indexes keep the two queries the relay adds indexed:
--  * the rate limit counts a kiosk's session starts of the last minute, mints and Live relays
--    alike (the standing query), so its partial index covers both;
--  * a Live close looks up which kiosk a session was relayed for (a kiosk closes only its own).
-- Idempotent.

CREATE INDEX IF NOT EXISTS broker_audit_recent_sessions_idx
    ON broker_audit (kiosk_id, at) WHERE action IN ('mint', 'relay') AND outcome = 'ok';
-- Replaced by the index above (mints only).
DROP INDEX IF EXISTS broker_audit_recent_mints_idx;

CREATE INDEX IF NOT EXISTS broker_audit_relayed_session_idx
    ON broker_audit (openai_session_id) WHERE action = 'relay' AND outcome = 'ok';
