-- GPT-Live sessions (OpenAI's per-second voice API) next to Realtime ones, in the same
-- openai_realtime_sessions row: the voice time billed and its cost, the delegated responses'
-- cost, and a total_cost_usd that includes both. Idempotent.
--
-- Events (crates/core/src/events.rs):
--  * live_usage: a CUMULATIVE voice figure of the session (voice_nusd for billed_seconds);
--    closed = true is the final one, from session.closed. A later figure replaces an earlier
--    one, so central keeps one figure, never a sum.
--  * delegation_usage: one delegated response's cost_nusd; these add up.
--  * session_ended.live: the kiosk's totals at the end; estimated = true when no
--    session.closed figure arrived (the voice cost is then the kiosk's elapsed-time estimate).
--
-- The voice figure kept is the lexicographic maximum of (rank, voice_nusd, billed_seconds,
-- upper_bound, estimated) over the session's events, rank 2 for a closed live_usage, 1 for
-- session_ended.live, 0 for any other live_usage: a closed figure first, then the kiosk's end
-- figure, then the largest report. A maximum is commutative, so any arrival order, any split
-- into batches, gives the same row; the event id keeps a retried event out (the derivation
-- sees only rows really inserted), so delegation costs are summed exactly once.

ALTER TABLE openai_realtime_sessions
    -- Which OpenAI API served the session: 'live' once any GPT-Live event (or a start with a
    -- gpt-live model) arrives.
    ADD COLUMN IF NOT EXISTS api text NOT NULL DEFAULT 'realtime'
        CONSTRAINT openai_realtime_sessions_api CHECK (api IN ('realtime', 'live')),
    -- The kept voice figure {rank, voice_nusd, billed_seconds, upper_bound, estimated} (see
    -- above); NULL for Realtime. The four columns after it are read out of it.
    ADD COLUMN IF NOT EXISTS live_voice_figure bigint[],
    -- GPT-Live voice seconds priced (at least the 15 s initialisation charge); NULL for Realtime.
    ADD COLUMN IF NOT EXISTS billed_seconds bigint,
    -- GPT-Live voice cost for billed_seconds (0 for Realtime, whose cost is in the token columns).
    ADD COLUMN IF NOT EXISTS duration_cost_usd numeric(20, 9) NOT NULL DEFAULT 0,
    -- The voice cost priced standby time at the active rate: the bill is at most this.
    ADD COLUMN IF NOT EXISTS cost_is_upper_bound boolean NOT NULL DEFAULT false,
    -- No session.closed figure: the voice cost is the kiosk's elapsed-time estimate.
    ADD COLUMN IF NOT EXISTS cost_is_estimated boolean NOT NULL DEFAULT false,
    -- Delegated (Responses API) responses of a GPT-Live session: their summed cost and number.
    ADD COLUMN IF NOT EXISTS delegation_cost_usd numeric(20, 9) NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS delegation_count integer NOT NULL DEFAULT 0;

-- total_cost_usd now adds the GPT-Live voice and delegation costs. A generated expression
-- cannot be altered: the column is dropped and added again (once: skipped when it already
-- has the new expression), with the one view that reads it. Every existing row has zero
-- GPT-Live cost, so every total keeps its value; the rewrite fires no trigger, and the
-- session_days rollup is recounted below anyway. No index names the column.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_attrdef d
        JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
        WHERE d.adrelid = 'public.openai_realtime_sessions'::regclass
          AND a.attname = 'total_cost_usd'
          AND pg_catalog.pg_get_expr(d.adbin, d.adrelid) LIKE '%delegation_cost_usd%')
    THEN
        DROP VIEW IF EXISTS public.dashboard_cost_per_gym_day;
        ALTER TABLE public.openai_realtime_sessions DROP COLUMN IF EXISTS total_cost_usd;
        ALTER TABLE public.openai_realtime_sessions
            ADD COLUMN total_cost_usd numeric(20, 9) GENERATED ALWAYS AS (
                input_audio_tokens_cost_usd + output_audio_tokens_cost_usd
                + input_text_tokens_cost_usd + output_text_tokens_cost_usd
                + transcription_cost_usd + duration_cost_usd + delegation_cost_usd) STORED;
    END IF;
END
$$;

-- As in 0006_dashboard_views.sql, column for column (re-running that file stays possible);
-- its total now includes GPT-Live sessions. The split per API is the view after it.
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

-- Spend per gym, UTC day of the session start and API: Realtime token costs, GPT-Live voice
-- seconds and costs, and how many GPT-Live figures are estimates or upper bounds.
CREATE OR REPLACE VIEW dashboard_cost_per_gym_day_by_api AS
SELECT s.gym_id,
       (coalesce(s.session_started_at, s.first_event_at) AT TIME ZONE 'UTC')::date AS day,
       s.api,
       count(*) AS sessions,
       coalesce(sum(s.billed_seconds), 0) AS billed_seconds,
       sum(s.input_audio_tokens_cost_usd + s.output_audio_tokens_cost_usd
           + s.input_text_tokens_cost_usd + s.output_text_tokens_cost_usd
           + s.transcription_cost_usd) AS token_cost_usd,
       sum(s.duration_cost_usd) AS duration_cost_usd,
       sum(s.delegation_cost_usd) AS delegation_cost_usd,
       sum(s.total_cost_usd) AS total_cost_usd,
       count(*) FILTER (WHERE s.cost_is_estimated) AS estimated_sessions,
       count(*) FILTER (WHERE s.cost_is_upper_bound) AS upper_bound_sessions
FROM openai_realtime_sessions s
GROUP BY 1, 2, 3;

REVOKE ALL ON dashboard_cost_per_gym_day, dashboard_cost_per_gym_day_by_api FROM PUBLIC;
REVOKE ALL ON dashboard_cost_per_gym_day, dashboard_cost_per_gym_day_by_api FROM kiosk_service;
GRANT SELECT ON dashboard_cost_per_gym_day, dashboard_cost_per_gym_day_by_api
    TO admin_service, monitoring_service;

-- The derivation of 0004_derived_tables.sql, with the two GPT-Live kinds and the end's live
-- totals (re-applying 0004 by hand needs this file re-applied after it).
CREATE OR REPLACE FUNCTION kiosk_events_derive() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO public.openai_realtime_sessions AS s (
        session_id, kiosk_id, gym_id, member_id, membership, model, api,
        session_started_at, connected_at, connect_ms, ended_at, end_reason, duration_ms,
        input_text_tokens, input_audio_tokens, input_image_tokens,
        cached_text_tokens, cached_audio_tokens, cached_image_tokens,
        output_text_tokens, output_audio_tokens,
        input_audio_tokens_cost_usd, output_audio_tokens_cost_usd,
        input_text_tokens_cost_usd, output_text_tokens_cost_usd, transcription_cost_usd,
        live_voice_figure, billed_seconds, duration_cost_usd, cost_is_upper_bound,
        cost_is_estimated, delegation_cost_usd, delegation_count,
        reported_total_cost_usd, response_count, event_count, first_event_at, last_event_at,
        updated_at)
    SELECT
        g.session_id, g.kiosk_id, g.gym_id, g.member_id, g.membership, g.model,
        CASE WHEN g.is_live THEN 'live' ELSE 'realtime' END,
        g.started_at, g.connected_at, g.connect_ms, g.ended_at, g.end_reason, g.duration_ms,
        g.input_text, g.input_audio, g.input_image, g.cached_text, g.cached_audio, g.cached_image,
        g.output_text, g.output_audio,
        g.input_audio_nusd * 0.000000001, g.output_audio_nusd * 0.000000001,
        g.input_text_nusd * 0.000000001, g.output_text_nusd * 0.000000001,
        g.transcription_nusd * 0.000000001,
        g.voice, g.voice[3], coalesce(g.voice[2], 0) * 0.000000001,
        coalesce(g.voice[4] = 1, false), coalesce(g.voice[5] = 1, false),
        g.delegation_nusd * 0.000000001, g.delegations,
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
                max(n.payload ->> 'model') FILTER (WHERE n.kind IN ('response_usage', 'live_usage'))) AS model,
            bool_or(n.kind IN ('live_usage', 'delegation_usage')
                    OR (n.kind = 'session_started'
                        AND starts_with(coalesce(n.payload ->> 'model', ''), 'gpt-live'))
                    OR (n.kind = 'session_ended' AND jsonb_typeof(n.payload -> 'live') = 'object')) AS is_live,
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
            -- The voice figure of highest (rank, value) in this batch; NULL without one.
            max(CASE
                WHEN n.kind = 'live_usage' THEN ARRAY[
                    CASE WHEN coalesce((n.payload ->> 'closed')::boolean, false) THEN 2 ELSE 0 END,
                    coalesce((n.payload ->> 'voice_nusd')::bigint, 0),
                    coalesce((n.payload ->> 'billed_seconds')::bigint, 0),
                    coalesce((n.payload ->> 'upper_bound')::boolean, false)::int,
                    0]
                WHEN n.kind = 'session_ended' AND jsonb_typeof(n.payload -> 'live') = 'object' THEN ARRAY[
                    1,
                    coalesce((n.payload -> 'live' ->> 'voice_nusd')::bigint, 0),
                    coalesce((n.payload -> 'live' ->> 'billed_seconds')::bigint, 0),
                    coalesce((n.payload -> 'live' ->> 'upper_bound')::boolean, false)::int,
                    coalesce((n.payload -> 'live' ->> 'estimated')::boolean, false)::int]
            END) AS voice,
            coalesce(sum((n.payload ->> 'cost_nusd')::bigint) FILTER (WHERE n.kind = 'delegation_usage'), 0) AS delegation_nusd,
            count(*) FILTER (WHERE n.kind = 'delegation_usage') AS delegations,
            max(
                (n.payload -> 'cost' ->> 'input_audio_nusd')::bigint
                + (n.payload -> 'cost' ->> 'output_audio_nusd')::bigint
                + (n.payload -> 'cost' ->> 'input_text_nusd')::bigint
                + (n.payload -> 'cost' ->> 'output_text_nusd')::bigint
                + (n.payload -> 'cost' ->> 'transcription_nusd')::bigint
                + coalesce((n.payload -> 'live' ->> 'voice_nusd')::bigint, 0)
                + coalesce((n.payload -> 'live' ->> 'delegation_nusd')::bigint, 0)
            ) FILTER (WHERE n.kind = 'session_ended') AS reported_nusd,
            count(*) FILTER (WHERE n.kind = 'response_usage') AS responses,
            count(*) AS events,
            min(n.occurred_at) AS first_at,
            max(n.occurred_at) AS last_at
        FROM new_rows n
        LEFT JOIN public.kiosks k ON k.kiosk_id = n.kiosk_id
        WHERE n.session_id IS NOT NULL
          AND n.kind IN ('session_started', 'session_connected', 'response_usage',
                         'transcription_usage', 'live_usage', 'delegation_usage',
                         'session_ended')
        GROUP BY n.session_id
    ) g
    ON CONFLICT (session_id) DO UPDATE SET
        kiosk_id = coalesce(s.kiosk_id, excluded.kiosk_id),
        gym_id = coalesce(s.gym_id, excluded.gym_id),
        member_id = coalesce(s.member_id, excluded.member_id),
        membership = coalesce(s.membership, excluded.membership),
        model = coalesce(s.model, excluded.model),
        api = CASE WHEN 'live' IN (s.api, excluded.api) THEN 'live' ELSE 'realtime' END,
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
        -- The larger figure by (rank, value), and the four columns read out of it.
        live_voice_figure = greatest(s.live_voice_figure, excluded.live_voice_figure),
        billed_seconds = (greatest(s.live_voice_figure, excluded.live_voice_figure))[3],
        duration_cost_usd =
            coalesce((greatest(s.live_voice_figure, excluded.live_voice_figure))[2], 0) * 0.000000001,
        cost_is_upper_bound =
            coalesce((greatest(s.live_voice_figure, excluded.live_voice_figure))[4] = 1, false),
        cost_is_estimated =
            coalesce((greatest(s.live_voice_figure, excluded.live_voice_figure))[5] = 1, false),
        delegation_cost_usd = s.delegation_cost_usd + excluded.delegation_cost_usd,
        delegation_count = s.delegation_count + excluded.delegation_count,
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

-- The daily session rollup of 0010_dashboard.sql also counts GPT-Live sessions and their
-- billed voice seconds (cost_usd is total_cost_usd, so it includes their cost).
ALTER TABLE session_days
    ADD COLUMN IF NOT EXISTS live_sessions bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS billed_seconds bigint NOT NULL DEFAULT 0;

-- As in 0010 plus the two columns (re-applying 0010 by hand needs this file re-applied after it).
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
                                          cost_usd, reasons, live_sessions, billed_seconds)
    VALUES (r.gym_id, (coalesce(r.session_started_at, r.first_event_at) AT TIME ZONE 'UTC')::date,
            sign, sign * (r.connect_ms IS NOT NULL)::int, sign * coalesce(r.connect_ms, 0),
            sign * (r.ended_at IS NOT NULL)::int, sign * r.total_cost_usd,
            jsonb_build_object(reason, sign), sign * (r.api = 'live')::int,
            sign * coalesce(r.billed_seconds, 0))
    ON CONFLICT (gym_id, day) DO UPDATE SET
        sessions = d.sessions + excluded.sessions,
        connected = d.connected + excluded.connected,
        connect_ms_sum = d.connect_ms_sum + excluded.connect_ms_sum,
        ended = d.ended + excluded.ended,
        cost_usd = d.cost_usd + excluded.cost_usd,
        reasons = d.reasons || jsonb_build_object(reason,
                      coalesce((d.reasons ->> reason)::bigint, 0) + sign),
        live_sessions = d.live_sessions + excluded.live_sessions,
        billed_seconds = d.billed_seconds + excluded.billed_seconds;
END
$$;
REVOKE ALL ON FUNCTION session_days_apply(public.openai_realtime_sessions, integer) FROM PUBLIC;

-- The rollup recounted from the sessions, so it is exact whatever came before (the column
-- rewrite above, a rollup function re-applied by hand). One statement (a DO block, also when
-- the file is run by hand outside a transaction): the lock keeps the derivation from changing
-- a session meanwhile until the commit.
DO $$
BEGIN
    LOCK TABLE public.openai_realtime_sessions IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM public.session_days;
    INSERT INTO public.session_days (gym_id, day, sessions, connected, connect_ms_sum, ended,
                                     cost_usd, reasons, live_sessions, billed_seconds)
    SELECT g.gym_id, g.day, sum(g.n), sum(g.connected), sum(g.connect_ms_sum), sum(g.ended),
           sum(g.cost), jsonb_object_agg(g.reason, g.n), sum(g.live), sum(g.billed_seconds)
    FROM (
        SELECT s.gym_id, (coalesce(s.session_started_at, s.first_event_at) AT TIME ZONE 'UTC')::date AS day,
               CASE WHEN s.ended_at IS NULL THEN 'not ended' ELSE coalesce(s.end_reason, 'unknown') END AS reason,
               count(*) AS n, count(s.connect_ms) AS connected, coalesce(sum(s.connect_ms), 0) AS connect_ms_sum,
               count(s.ended_at) AS ended, sum(s.total_cost_usd) AS cost,
               count(*) FILTER (WHERE s.api = 'live') AS live,
               coalesce(sum(s.billed_seconds), 0) AS billed_seconds
        FROM public.openai_realtime_sessions s
        WHERE s.gym_id IS NOT NULL AND coalesce(s.session_started_at, s.first_event_at) IS NOT NULL
        GROUP BY 1, 2, 3) g
    GROUP BY 1, 2;
END
$$;
