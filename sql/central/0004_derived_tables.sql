-- Rows derived from kiosk_events inside the database: sessions with their cost, heartbeats,
-- alerts. One statement-level trigger reads only the rows an INSERT really inserted (its
-- transition table), so an event retried with ON CONFLICT DO NOTHING is never counted twice,
-- and every update is commutative (sums, COALESCE, min/max), so any arrival order gives the
-- same row: usage before start, end before usage, all in one batch or across many.

CREATE TABLE IF NOT EXISTS openai_realtime_sessions (
    session_id uuid PRIMARY KEY,
    session_started_at timestamptz
);
-- Column by column so a database created by an older, incomplete migration gets every one
-- (the production "Could not find the 'input_audio_tokens_cost_usd' column" error).
ALTER TABLE openai_realtime_sessions
    ADD COLUMN IF NOT EXISTS kiosk_id text,
    ADD COLUMN IF NOT EXISTS gym_id text,
    ADD COLUMN IF NOT EXISTS member_id text,
    ADD COLUMN IF NOT EXISTS membership text,
    ADD COLUMN IF NOT EXISTS connected_at timestamptz,
    ADD COLUMN IF NOT EXISTS connect_ms bigint,
    ADD COLUMN IF NOT EXISTS ended_at timestamptz,
    ADD COLUMN IF NOT EXISTS end_reason text,
    ADD COLUMN IF NOT EXISTS duration_ms bigint,
    ADD COLUMN IF NOT EXISTS model text,
    ADD COLUMN IF NOT EXISTS input_text_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS input_audio_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS input_image_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS cached_text_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS cached_audio_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS cached_image_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS output_text_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS output_audio_tokens bigint NOT NULL DEFAULT 0,
    -- The four seed cost columns: each the full cost of its category, cached input priced at
    -- the cached rate inside its input column, so the four add up to the model's cost.
    ADD COLUMN IF NOT EXISTS input_audio_tokens_cost_usd numeric(20, 9) NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS output_audio_tokens_cost_usd numeric(20, 9) NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS input_text_tokens_cost_usd numeric(20, 9) NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS output_text_tokens_cost_usd numeric(20, 9) NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS transcription_cost_usd numeric(20, 9) NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS total_cost_usd numeric(20, 9) GENERATED ALWAYS AS (
        input_audio_tokens_cost_usd + output_audio_tokens_cost_usd
        + input_text_tokens_cost_usd + output_text_tokens_cost_usd
        + transcription_cost_usd) STORED,
    -- The total the kiosk reported in session_ended, to reconcile with the summed usage.
    ADD COLUMN IF NOT EXISTS reported_total_cost_usd numeric(20, 9),
    ADD COLUMN IF NOT EXISTS response_count integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS event_count integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS first_event_at timestamptz,
    ADD COLUMN IF NOT EXISTS last_event_at timestamptz,
    ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX IF NOT EXISTS openai_realtime_sessions_kiosk_idx
    ON openai_realtime_sessions (kiosk_id, session_started_at);
CREATE INDEX IF NOT EXISTS openai_realtime_sessions_gym_idx
    ON openai_realtime_sessions (gym_id, session_started_at);

CREATE TABLE IF NOT EXISTS kiosk_heartbeats (
    event_id            uuid PRIMARY KEY,
    kiosk_id            text NOT NULL,
    occurred_at         timestamptz NOT NULL,
    received_at         timestamptz NOT NULL,
    version             text,
    uptime_s            bigint,
    outbox_backlog      bigint,
    outbox_oldest_age_s bigint,
    free_disk_bytes     bigint,
    breaker             text,
    -- The whole health snapshot (adapters, counters, gauges, last errors).
    health              jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS kiosk_heartbeats_kiosk_idx ON kiosk_heartbeats (kiosk_id, occurred_at);

CREATE TABLE IF NOT EXISTS kiosk_alerts (
    event_id        uuid PRIMARY KEY,
    kiosk_id        text NOT NULL,
    session_id      uuid,
    code            text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message         text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    -- Set by an operator (admin_service) once handled; NULL = open.
    acknowledged_at timestamptz,
    acknowledged_by text
);
CREATE INDEX IF NOT EXISTS kiosk_alerts_open_idx ON kiosk_alerts (kiosk_id, occurred_at)
    WHERE acknowledged_at IS NULL;

-- A JSON number as bigint, or NULL when absent or not a number (lenient: heartbeats only).
CREATE OR REPLACE FUNCTION jsonb_bigint_or_null(v jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN round(v::text::numeric)::bigint END
$$;

-- Money in events is integer nano-USD: the ::bigint casts refuse fractions and text
-- (SQLSTATE 22P02), so a malformed event fails its own insert and lands in the kiosk's dead
-- letters instead of being priced wrong.
CREATE OR REPLACE FUNCTION kiosk_events_derive() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO public.openai_realtime_sessions AS s (
        session_id, kiosk_id, gym_id, member_id, membership, model,
        session_started_at, connected_at, connect_ms, ended_at, end_reason, duration_ms,
        input_text_tokens, input_audio_tokens, input_image_tokens,
        cached_text_tokens, cached_audio_tokens, cached_image_tokens,
        output_text_tokens, output_audio_tokens,
        input_audio_tokens_cost_usd, output_audio_tokens_cost_usd,
        input_text_tokens_cost_usd, output_text_tokens_cost_usd, transcription_cost_usd,
        reported_total_cost_usd, response_count, event_count, first_event_at, last_event_at,
        updated_at)
    SELECT
        g.session_id, g.kiosk_id, g.gym_id, g.member_id, g.membership, g.model,
        g.started_at, g.connected_at, g.connect_ms, g.ended_at, g.end_reason, g.duration_ms,
        g.input_text, g.input_audio, g.input_image, g.cached_text, g.cached_audio, g.cached_image,
        g.output_text, g.output_audio,
        g.input_audio_nusd * 0.000000001, g.output_audio_nusd * 0.000000001,
        g.input_text_nusd * 0.000000001, g.output_text_nusd * 0.000000001,
        g.transcription_nusd * 0.000000001,
        g.reported_nusd * 0.000000001, g.responses, g.events, g.first_at, g.last_at, now()
    FROM (
        SELECT
            n.session_id,
            min(n.kiosk_id) AS kiosk_id,
            min(k.gym_id) AS gym_id,
            max(n.payload ->> 'member_id') FILTER (WHERE n.kind = 'session_started') AS member_id,
            max(n.payload ->> 'membership') FILTER (WHERE n.kind = 'session_started') AS membership,
            coalesce(
                max(n.payload ->> 'model') FILTER (WHERE n.kind = 'session_started'),
                max(n.payload ->> 'model') FILTER (WHERE n.kind = 'response_usage')) AS model,
            min(n.occurred_at) FILTER (WHERE n.kind = 'session_started') AS started_at,
            min(n.occurred_at) FILTER (WHERE n.kind = 'session_connected') AS connected_at,
            max((n.payload ->> 'connect_ms')::bigint)
                FILTER (WHERE n.kind = 'session_connected') AS connect_ms,
            max(n.occurred_at) FILTER (WHERE n.kind = 'session_ended') AS ended_at,
            max(n.payload ->> 'reason') FILTER (WHERE n.kind = 'session_ended') AS end_reason,
            max((n.payload ->> 'duration_ms')::bigint)
                FILTER (WHERE n.kind = 'session_ended') AS duration_ms,
            coalesce(sum((n.payload -> 'tokens' ->> 'input_text')::bigint) FILTER (WHERE n.kind = 'response_usage'), 0) AS input_text,
            coalesce(sum((n.payload -> 'tokens' ->> 'input_audio')::bigint) FILTER (WHERE n.kind = 'response_usage'), 0) AS input_audio,
            coalesce(sum((n.payload -> 'tokens' ->> 'input_image')::bigint) FILTER (WHERE n.kind = 'response_usage'), 0) AS input_image,
            coalesce(sum((n.payload -> 'tokens' ->> 'cached_text')::bigint) FILTER (WHERE n.kind = 'response_usage'), 0) AS cached_text,
            coalesce(sum((n.payload -> 'tokens' ->> 'cached_audio')::bigint) FILTER (WHERE n.kind = 'response_usage'), 0) AS cached_audio,
            coalesce(sum((n.payload -> 'tokens' ->> 'cached_image')::bigint) FILTER (WHERE n.kind = 'response_usage'), 0) AS cached_image,
            coalesce(sum((n.payload -> 'tokens' ->> 'output_text')::bigint) FILTER (WHERE n.kind = 'response_usage'), 0) AS output_text,
            coalesce(sum((n.payload -> 'tokens' ->> 'output_audio')::bigint) FILTER (WHERE n.kind = 'response_usage'), 0) AS output_audio,
            coalesce(sum((n.payload -> 'cost' ->> 'input_audio_nusd')::bigint) FILTER (WHERE n.kind IN ('response_usage', 'transcription_usage')), 0) AS input_audio_nusd,
            coalesce(sum((n.payload -> 'cost' ->> 'output_audio_nusd')::bigint) FILTER (WHERE n.kind IN ('response_usage', 'transcription_usage')), 0) AS output_audio_nusd,
            coalesce(sum((n.payload -> 'cost' ->> 'input_text_nusd')::bigint) FILTER (WHERE n.kind IN ('response_usage', 'transcription_usage')), 0) AS input_text_nusd,
            coalesce(sum((n.payload -> 'cost' ->> 'output_text_nusd')::bigint) FILTER (WHERE n.kind IN ('response_usage', 'transcription_usage')), 0) AS output_text_nusd,
            coalesce(sum((n.payload -> 'cost' ->> 'transcription_nusd')::bigint) FILTER (WHERE n.kind IN ('response_usage', 'transcription_usage')), 0) AS transcription_nusd,
            max(
                (n.payload -> 'cost' ->> 'input_audio_nusd')::bigint
                + (n.payload -> 'cost' ->> 'output_audio_nusd')::bigint
                + (n.payload -> 'cost' ->> 'input_text_nusd')::bigint
                + (n.payload -> 'cost' ->> 'output_text_nusd')::bigint
                + (n.payload -> 'cost' ->> 'transcription_nusd')::bigint
            ) FILTER (WHERE n.kind = 'session_ended') AS reported_nusd,
            count(*) FILTER (WHERE n.kind = 'response_usage') AS responses,
            count(*) AS events,
            min(n.occurred_at) AS first_at,
            max(n.occurred_at) AS last_at
        FROM new_rows n
        LEFT JOIN public.kiosks k ON k.kiosk_id = n.kiosk_id
        WHERE n.session_id IS NOT NULL
          AND n.kind IN ('session_started', 'session_connected', 'response_usage',
                         'transcription_usage', 'session_ended')
        GROUP BY n.session_id
    ) g
    ON CONFLICT (session_id) DO UPDATE SET
        kiosk_id = coalesce(s.kiosk_id, excluded.kiosk_id),
        gym_id = coalesce(s.gym_id, excluded.gym_id),
        member_id = coalesce(s.member_id, excluded.member_id),
        membership = coalesce(s.membership, excluded.membership),
        model = coalesce(s.model, excluded.model),
        session_started_at = coalesce(least(s.session_started_at, excluded.session_started_at),
                                      s.session_started_at, excluded.session_started_at),
        connected_at = coalesce(s.connected_at, excluded.connected_at),
        connect_ms = coalesce(s.connect_ms, excluded.connect_ms),
        ended_at = coalesce(s.ended_at, excluded.ended_at),
        end_reason = coalesce(s.end_reason, excluded.end_reason),
        duration_ms = coalesce(s.duration_ms, excluded.duration_ms),
        input_text_tokens = s.input_text_tokens + excluded.input_text_tokens,
        input_audio_tokens = s.input_audio_tokens + excluded.input_audio_tokens,
        input_image_tokens = s.input_image_tokens + excluded.input_image_tokens,
        cached_text_tokens = s.cached_text_tokens + excluded.cached_text_tokens,
        cached_audio_tokens = s.cached_audio_tokens + excluded.cached_audio_tokens,
        cached_image_tokens = s.cached_image_tokens + excluded.cached_image_tokens,
        output_text_tokens = s.output_text_tokens + excluded.output_text_tokens,
        output_audio_tokens = s.output_audio_tokens + excluded.output_audio_tokens,
        input_audio_tokens_cost_usd = s.input_audio_tokens_cost_usd + excluded.input_audio_tokens_cost_usd,
        output_audio_tokens_cost_usd = s.output_audio_tokens_cost_usd + excluded.output_audio_tokens_cost_usd,
        input_text_tokens_cost_usd = s.input_text_tokens_cost_usd + excluded.input_text_tokens_cost_usd,
        output_text_tokens_cost_usd = s.output_text_tokens_cost_usd + excluded.output_text_tokens_cost_usd,
        transcription_cost_usd = s.transcription_cost_usd + excluded.transcription_cost_usd,
        reported_total_cost_usd = coalesce(s.reported_total_cost_usd, excluded.reported_total_cost_usd),
        response_count = s.response_count + excluded.response_count,
        event_count = s.event_count + excluded.event_count,
        first_event_at = least(s.first_event_at, excluded.first_event_at),
        last_event_at = greatest(s.last_event_at, excluded.last_event_at),
        updated_at = now()
    -- A session belongs to the kiosk that first wrote it: another kiosk's events naming the
    -- same session id stay in its own journal and never touch this row.
    WHERE s.kiosk_id = excluded.kiosk_id;

    INSERT INTO public.kiosk_heartbeats (
        event_id, kiosk_id, occurred_at, received_at, version, uptime_s, outbox_backlog,
        outbox_oldest_age_s, free_disk_bytes, breaker, health)
    SELECT n.event_id, n.kiosk_id, n.occurred_at, n.received_at,
           n.payload -> 'health' ->> 'version',
           public.jsonb_bigint_or_null(n.payload -> 'health' -> 'uptime_s'),
           public.jsonb_bigint_or_null(n.payload -> 'health' -> 'outbox_backlog'),
           public.jsonb_bigint_or_null(n.payload -> 'health' -> 'outbox_oldest_age_s'),
           public.jsonb_bigint_or_null(n.payload -> 'health' -> 'free_disk_bytes'),
           n.payload -> 'health' ->> 'breaker',
           coalesce(n.payload -> 'health', '{}'::jsonb)
    FROM new_rows n
    WHERE n.kind = 'heartbeat'
    ON CONFLICT (event_id) DO NOTHING;

    INSERT INTO public.kiosk_alerts (
        event_id, kiosk_id, session_id, code, severity, message, occurred_at, received_at)
    SELECT n.event_id, n.kiosk_id, n.session_id,
           coalesce(n.payload ->> 'code', 'unknown'),
           CASE WHEN n.payload ->> 'severity' IN ('info', 'warning', 'critical')
                THEN n.payload ->> 'severity' ELSE 'warning' END,
           coalesce(n.payload ->> 'message', ''),
           n.occurred_at, n.received_at
    FROM new_rows n
    WHERE n.kind = 'alert'
    ON CONFLICT (event_id) DO NOTHING;

    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION kiosk_events_derive() FROM PUBLIC;

DROP TRIGGER IF EXISTS kiosk_events_derive ON kiosk_events;
CREATE TRIGGER kiosk_events_derive
    AFTER INSERT ON kiosk_events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kiosk_events_derive();
