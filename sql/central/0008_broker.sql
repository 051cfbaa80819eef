-- The session broker (jarvis-broker): kiosk tokens, kiosk enable/disable and the audit trail.
-- The broker is stateless: everything it decides from is here. It logs in as a member of
-- broker_service. Kiosks (kiosk_service) get nothing on these tables. Idempotent.

DO $$
BEGIN
    CREATE ROLE broker_service NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- A disabled kiosk gets no new session from the broker (NULL = enabled).
ALTER TABLE kiosks ADD COLUMN IF NOT EXISTS disabled_at timestamptz;

-- Kiosk bearer tokens, only as SHA-256 of the token (32 random bytes: no KDF needed).
-- expires_at NULL: valid until rotated; a rotation sets the previous tokens' expires_at to the
-- end of the overlap window, so old and new both work meanwhile.
CREATE TABLE IF NOT EXISTS broker_kiosk_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    kiosk_id   text NOT NULL REFERENCES kiosks (kiosk_id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);
CREATE INDEX IF NOT EXISTS broker_kiosk_tokens_kiosk_idx ON broker_kiosk_tokens (kiosk_id);

-- One row per mint, relay, close and refusal. kiosk_id is NULL for an unknown token.
CREATE TABLE IF NOT EXISTS broker_audit (
    audit_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                timestamptz NOT NULL DEFAULT now(),
    broker            text NOT NULL,
    kiosk_id          text,
    gym_id            text,
    action            text NOT NULL CHECK (action IN ('mint', 'relay', 'close')),
    outcome           text NOT NULL CHECK (outcome IN ('ok', 'refused', 'upstream_error')),
    -- The refusal code (kiosk_disabled, ...) or the upstream error's code/status.
    reason            text,
    http_status       smallint NOT NULL,
    latency_ms        integer NOT NULL,
    upstream_ms       integer,
    -- The kiosk's session id (X-Jarvis-Session-Id) and OpenAI's (sess_…) or call id (rtc_…).
    kiosk_session_id  uuid,
    openai_session_id text
);
-- The rate limit reads the last minute of a kiosk's successful mints (one index range scan).
CREATE INDEX IF NOT EXISTS broker_audit_recent_mints_idx
    ON broker_audit (kiosk_id, at) WHERE action = 'mint' AND outcome = 'ok';
-- Retention deletes by age.
CREATE INDEX IF NOT EXISTS broker_audit_at_idx ON broker_audit (at);

REVOKE ALL ON broker_kiosk_tokens, broker_audit FROM PUBLIC;
REVOKE ALL ON broker_kiosk_tokens, broker_audit FROM kiosk_service, admin_service,
    monitoring_service, broker_service;
REVOKE ALL ON kiosks, openai_realtime_sessions FROM broker_service;

-- broker_service: read what it decides from, append (and age out) the audit.
GRANT SELECT ON kiosks, openai_realtime_sessions, broker_kiosk_tokens TO broker_service;
GRANT SELECT, INSERT, DELETE ON broker_audit TO broker_service;
-- admin_service manages tokens and kiosks' enablement; it and monitoring_service read the audit.
GRANT SELECT, INSERT, UPDATE, DELETE ON broker_kiosk_tokens TO admin_service;
GRANT SELECT ON broker_audit TO admin_service, monitoring_service;

ALTER TABLE broker_kiosk_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE broker_audit ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['broker_kiosk_tokens', 'broker_audit'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS admin_all ON %I', t);
        EXECUTE format('CREATE POLICY admin_all ON %I TO admin_service USING (true) WITH CHECK (true)', t);
        EXECUTE format('DROP POLICY IF EXISTS broker_all ON %I', t);
        EXECUTE format('CREATE POLICY broker_all ON %I TO broker_service USING (true) WITH CHECK (true)', t);
    END LOOP;
END
$$;
DROP POLICY IF EXISTS monitoring_read ON broker_audit;
CREATE POLICY monitoring_read ON broker_audit FOR SELECT TO monitoring_service USING (true);
-- The broker reads every kiosk and session (RLS is on for those tables since 0005).
DROP POLICY IF EXISTS broker_read ON kiosks;
CREATE POLICY broker_read ON kiosks FOR SELECT TO broker_service USING (true);
DROP POLICY IF EXISTS broker_read ON openai_realtime_sessions;
CREATE POLICY broker_read ON openai_realtime_sessions FOR SELECT TO broker_service USING (true);
