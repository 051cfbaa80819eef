-- The fleet dashboard (jarvis-dashboard): operator accounts and their sessions, the login
-- audit, notification incidents and their webhook deliveries, a daily heartbeat rollup for the
-- uptime figures, a daily session rollup for the period figures, and the indexes the page's
-- queries need. Idempotent.
--
-- The dashboard logs in as a member of dashboard_service, itself a member of
-- monitoring_service: it reads the fleet's rows only through monitoring_service's grants and
-- writes only its own tables below.

DO $$
BEGIN
    CREATE ROLE dashboard_service NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
GRANT monitoring_service TO dashboard_service;

-- Operators: argon2id PHC strings; gyms NULL = every gym.
CREATE TABLE IF NOT EXISTS dashboard_operators (
    operator      text PRIMARY KEY CHECK (operator ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}$'),
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2%'),
    gyms          text[],
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

-- Logged-in browsers: only the SHA-256 of the cookie's 32 random bytes is stored.
CREATE TABLE IF NOT EXISTS dashboard_sessions (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    operator   text NOT NULL REFERENCES dashboard_operators (operator) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS dashboard_sessions_expires_idx ON dashboard_sessions (expires_at);

-- Every login, failed login and logout.
CREATE TABLE IF NOT EXISTS dashboard_audit (
    audit_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    instance text NOT NULL,
    operator text NOT NULL,
    action   text NOT NULL CHECK (action IN ('login', 'logout')),
    outcome  text NOT NULL CHECK (outcome IN ('ok', 'refused')),
    -- unknown_operator, bad_password, disabled (refusals only).
    reason   text,
    remote   text
);
CREATE INDEX IF NOT EXISTS dashboard_audit_at_idx ON dashboard_audit (at);

-- A condition worth telling someone about, open until it stops being true. The partial unique
-- index is what makes detection safe with several instances: only one INSERT of an open
-- incident per (kind, subject) succeeds, and only that instance queues its deliveries.
CREATE TABLE IF NOT EXISTS dashboard_incidents (
    incident_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('kiosk_silent', 'gym_over_budget', 'store_recovered',
                                              'unpriced_usage', 'sync_stalled')),
    subject     text NOT NULL,
    gym_id      text,
    kiosk_id    text,
    detail      text NOT NULL,
    opened_at   timestamptz NOT NULL DEFAULT now(),
    cleared_at  timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS dashboard_incidents_open_idx
    ON dashboard_incidents (kind, subject) WHERE cleared_at IS NULL;

-- One row per incident, webhook and event: the outbox the senders claim from.
CREATE TABLE IF NOT EXISTS dashboard_deliveries (
    delivery_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id     bigint NOT NULL REFERENCES dashboard_incidents (incident_id) ON DELETE CASCADE,
    webhook         text NOT NULL,
    event           text NOT NULL CHECK (event IN ('open', 'clear')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,
    claimed_until   timestamptz,
    http_status     smallint,
    last_error      text,
    sent_at         timestamptz,
    UNIQUE (incident_id, webhook, event)
);
CREATE INDEX IF NOT EXISTS dashboard_deliveries_due_idx
    ON dashboard_deliveries (webhook, next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS dashboard_deliveries_sent_idx
    ON dashboard_deliveries (webhook, sent_at) WHERE status = 'sent';

-- Heartbeats per kiosk and UTC day, kept by a trigger: a 30-day uptime reads 30 rows per
-- kiosk instead of 43,200 heartbeats.
CREATE TABLE IF NOT EXISTS kiosk_heartbeat_days (
    kiosk_id text NOT NULL,
    day      date NOT NULL,
    beats    integer NOT NULL,
    PRIMARY KEY (kiosk_id, day)
);
CREATE INDEX IF NOT EXISTS kiosk_heartbeat_days_day_idx ON kiosk_heartbeat_days (day);

CREATE OR REPLACE FUNCTION kiosk_heartbeats_rollup() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO public.kiosk_heartbeat_days AS d (kiosk_id, day, beats)
    SELECT n.kiosk_id, (n.occurred_at AT TIME ZONE 'UTC')::date, count(*)
    FROM new_rows n
    GROUP BY 1, 2
    ON CONFLICT (kiosk_id, day) DO UPDATE SET beats = d.beats + excluded.beats;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION kiosk_heartbeats_rollup() FROM PUBLIC;
DROP TRIGGER IF EXISTS kiosk_heartbeats_rollup ON kiosk_heartbeats;
CREATE TRIGGER kiosk_heartbeats_rollup
    AFTER INSERT ON kiosk_heartbeats
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kiosk_heartbeats_rollup();
-- Heartbeats from before this migration (a day already rolled up is left as the trigger kept it).
INSERT INTO kiosk_heartbeat_days (kiosk_id, day, beats)
SELECT kiosk_id, (occurred_at AT TIME ZONE 'UTC')::date, count(*)
FROM kiosk_heartbeats
GROUP BY 1, 2
ON CONFLICT (kiosk_id, day) DO NOTHING;

-- Sessions per gym and UTC day of their start, kept by a row trigger (a session row is
-- inserted, then updated as its events arrive: each change moves its old contribution out and
-- the new one in). The page's period figures read 30 rows per gym instead of every session.
CREATE TABLE IF NOT EXISTS session_days (
    gym_id         text NOT NULL,
    day            date NOT NULL,
    sessions       bigint NOT NULL DEFAULT 0,
    connected      bigint NOT NULL DEFAULT 0,
    connect_ms_sum numeric NOT NULL DEFAULT 0,
    ended          bigint NOT NULL DEFAULT 0,
    cost_usd       numeric(20, 9) NOT NULL DEFAULT 0,
    -- End reason -> sessions ('not ended' for the others).
    reasons        jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (gym_id, day)
);
CREATE INDEX IF NOT EXISTS session_days_day_idx ON session_days (day);

CREATE OR REPLACE FUNCTION session_days_apply(r public.openai_realtime_sessions, sign integer)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reason text := CASE WHEN r.ended_at IS NULL THEN 'not ended' ELSE coalesce(r.end_reason, 'unknown') END;
BEGIN
    IF r.gym_id IS NULL OR coalesce(r.session_started_at, r.first_event_at) IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO public.session_days AS d (gym_id, day, sessions, connected, connect_ms_sum, ended,
                                          cost_usd, reasons)
    VALUES (r.gym_id, (coalesce(r.session_started_at, r.first_event_at) AT TIME ZONE 'UTC')::date,
            sign, sign * (r.connect_ms IS NOT NULL)::int, sign * coalesce(r.connect_ms, 0),
            sign * (r.ended_at IS NOT NULL)::int, sign * r.total_cost_usd,
            jsonb_build_object(reason, sign))
    ON CONFLICT (gym_id, day) DO UPDATE SET
        sessions = d.sessions + excluded.sessions,
        connected = d.connected + excluded.connected,
        connect_ms_sum = d.connect_ms_sum + excluded.connect_ms_sum,
        ended = d.ended + excluded.ended,
        cost_usd = d.cost_usd + excluded.cost_usd,
        reasons = d.reasons || jsonb_build_object(reason,
                      coalesce((d.reasons ->> reason)::bigint, 0) + sign);
END
$$;
REVOKE ALL ON FUNCTION session_days_apply(public.openai_realtime_sessions, integer) FROM PUBLIC;

CREATE OR REPLACE FUNCTION session_days_track() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM public.session_days_apply(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM public.session_days_apply(NEW, 1);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION session_days_track() FROM PUBLIC;
DROP TRIGGER IF EXISTS session_days_track ON openai_realtime_sessions;
CREATE TRIGGER session_days_track
    AFTER INSERT OR UPDATE OR DELETE ON openai_realtime_sessions
    FOR EACH ROW EXECUTE FUNCTION session_days_track();
-- Sessions from before this migration, once (a rollup already filled is left to its trigger).
INSERT INTO session_days (gym_id, day, sessions, connected, connect_ms_sum, ended, cost_usd, reasons)
SELECT g.gym_id, g.day, sum(g.n), sum(g.connected), sum(g.connect_ms_sum), sum(g.ended),
       sum(g.cost), jsonb_object_agg(g.reason, g.n)
FROM (
    SELECT s.gym_id, (coalesce(s.session_started_at, s.first_event_at) AT TIME ZONE 'UTC')::date AS day,
           CASE WHEN s.ended_at IS NULL THEN 'not ended' ELSE coalesce(s.end_reason, 'unknown') END AS reason,
           count(*) AS n, count(s.connect_ms) AS connected, coalesce(sum(s.connect_ms), 0) AS connect_ms_sum,
           count(s.ended_at) AS ended, sum(s.total_cost_usd) AS cost
    FROM openai_realtime_sessions s
    WHERE s.gym_id IS NOT NULL AND coalesce(s.session_started_at, s.first_event_at) IS NOT NULL
    GROUP BY 1, 2, 3) g
WHERE NOT EXISTS (SELECT 1 FROM session_days)
GROUP BY 1, 2
ON CONFLICT (gym_id, day) DO NOTHING;

-- The page's fleet-wide period queries and its "last alerts".
CREATE INDEX IF NOT EXISTS openai_realtime_sessions_started_idx
    ON openai_realtime_sessions (session_started_at);
CREATE INDEX IF NOT EXISTS kiosk_alerts_occurred_idx ON kiosk_alerts (occurred_at);

REVOKE ALL ON dashboard_operators, dashboard_sessions, dashboard_audit, dashboard_incidents,
    dashboard_deliveries, kiosk_heartbeat_days, session_days FROM PUBLIC;
REVOKE ALL ON dashboard_operators, dashboard_sessions, dashboard_audit, dashboard_incidents,
    dashboard_deliveries, kiosk_heartbeat_days, session_days
    FROM kiosk_service, admin_service, monitoring_service, dashboard_service;

-- admin_service manages operators (jarvis-dashboard operator add) and reads everything here.
GRANT SELECT, INSERT, UPDATE, DELETE ON dashboard_operators, dashboard_sessions TO admin_service;
GRANT SELECT ON dashboard_audit, dashboard_incidents, dashboard_deliveries, kiosk_heartbeat_days,
    session_days TO admin_service;
-- monitoring_service reads the rollup, the audit and the notifications.
GRANT SELECT ON kiosk_heartbeat_days, session_days, dashboard_audit, dashboard_incidents,
    dashboard_deliveries TO monitoring_service;
-- dashboard_service: its own state.
GRANT SELECT ON dashboard_operators TO dashboard_service;
GRANT SELECT, INSERT, DELETE ON dashboard_sessions TO dashboard_service;
GRANT SELECT, INSERT ON dashboard_audit TO dashboard_service;
GRANT SELECT, INSERT, UPDATE ON dashboard_incidents, dashboard_deliveries TO dashboard_service;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['dashboard_operators', 'dashboard_sessions', 'dashboard_audit',
                             'dashboard_incidents', 'dashboard_deliveries',
                             'kiosk_heartbeat_days', 'session_days'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP POLICY IF EXISTS admin_all ON %I', t);
        EXECUTE format('CREATE POLICY admin_all ON %I TO admin_service USING (true) WITH CHECK (true)', t);
        EXECUTE format('DROP POLICY IF EXISTS dashboard_all ON %I', t);
        EXECUTE format('CREATE POLICY dashboard_all ON %I TO dashboard_service USING (true) WITH CHECK (true)', t);
        EXECUTE format('DROP POLICY IF EXISTS monitoring_read ON %I', t);
        IF t NOT IN ('dashboard_operators', 'dashboard_sessions') THEN
            EXECUTE format('CREATE POLICY monitoring_read ON %I FOR SELECT TO monitoring_service USING (true)', t);
        END IF;
    END LOOP;
END
$$;
