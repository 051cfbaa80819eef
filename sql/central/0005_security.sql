-- Who may do what. A kiosk (login role, member of kiosk_service) may only:
--   * INSERT its own events into kiosk_events (RLS: kiosk_id = its kiosk) and read them back;
--   * read its own sessions;
--   * look up ONE member of its own gym by badge through kiosk_lookup_member().
-- It can UPDATE, DELETE or TRUNCATE nothing, and reads no member list, no other kiosk's rows.
-- admin_service manages kiosks, members and alerts; monitoring_service reads dashboards.

REVOKE ALL ON kiosks, members, kiosk_events, openai_realtime_sessions, kiosk_heartbeats,
    kiosk_alerts FROM PUBLIC;
REVOKE ALL ON kiosks, members, kiosk_events, openai_realtime_sessions, kiosk_heartbeats,
    kiosk_alerts FROM kiosk_service, admin_service, monitoring_service;

-- kiosk_service: received_at is the server's clock, so it is not in the INSERT column list.
GRANT INSERT (event_id, kiosk_id, session_id, seq, kind, occurred_at, payload)
    ON kiosk_events TO kiosk_service;
GRANT SELECT ON kiosk_events, openai_realtime_sessions TO kiosk_service;
GRANT EXECUTE ON FUNCTION current_kiosk_id() TO kiosk_service, admin_service, monitoring_service;

-- admin_service
GRANT SELECT, INSERT, UPDATE, DELETE ON kiosks, members TO admin_service;
GRANT SELECT ON kiosk_events, openai_realtime_sessions, kiosk_heartbeats, kiosk_alerts
    TO admin_service;
GRANT UPDATE (acknowledged_at, acknowledged_by) ON kiosk_alerts TO admin_service;

-- monitoring_service: everything but member data.
GRANT SELECT ON kiosks, kiosk_events, openai_realtime_sessions, kiosk_heartbeats, kiosk_alerts
    TO monitoring_service;

ALTER TABLE kiosks ENABLE ROW LEVEL SECURITY;
ALTER TABLE members ENABLE ROW LEVEL SECURITY;
ALTER TABLE kiosk_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE openai_realtime_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE kiosk_heartbeats ENABLE ROW LEVEL SECURITY;
ALTER TABLE kiosk_alerts ENABLE ROW LEVEL SECURITY;

-- Kiosk policies. (SELECT current_kiosk_id()) is an InitPlan: evaluated once per statement,
-- not once per row of a 500-event batch.
DROP POLICY IF EXISTS kiosk_events_insert_own ON kiosk_events;
CREATE POLICY kiosk_events_insert_own ON kiosk_events FOR INSERT TO kiosk_service
    WITH CHECK (kiosk_id = (SELECT current_kiosk_id()));
DROP POLICY IF EXISTS kiosk_events_select_own ON kiosk_events;
CREATE POLICY kiosk_events_select_own ON kiosk_events FOR SELECT TO kiosk_service
    USING (kiosk_id = (SELECT current_kiosk_id()));
DROP POLICY IF EXISTS sessions_select_own ON openai_realtime_sessions;
CREATE POLICY sessions_select_own ON openai_realtime_sessions FOR SELECT TO kiosk_service
    USING (kiosk_id = (SELECT current_kiosk_id()));

-- Admin and monitoring policies (privileges above still bound what each may do).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['kiosks', 'members', 'kiosk_events', 'openai_realtime_sessions',
                             'kiosk_heartbeats', 'kiosk_alerts'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS admin_all ON %I', t);
        EXECUTE format('CREATE POLICY admin_all ON %I TO admin_service USING (true) WITH CHECK (true)', t);
        EXECUTE format('DROP POLICY IF EXISTS monitoring_read ON %I', t);
        IF t <> 'members' THEN
            EXECUTE format('CREATE POLICY monitoring_read ON %I FOR SELECT TO monitoring_service USING (true)', t);
        END IF;
    END LOOP;
END
$$;

-- The one way a kiosk reads member data: at most one member, of its own gym, by exact badge.
-- SECURITY DEFINER with a fixed search_path (no object of the caller's can be substituted);
-- the caller's kiosk comes from its login role, never from an argument.
DROP FUNCTION IF EXISTS kiosk_lookup_member(text);
CREATE FUNCTION kiosk_lookup_member(p_badge text)
RETURNS TABLE (member_id text, first_name text, language text, membership_status text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT m.member_id, m.first_name, m.language, m.membership_status
    FROM public.members m
    JOIN public.kiosks k ON k.gym_id = m.gym_id
    WHERE k.login_role = session_user
      AND m.badge = p_badge
    LIMIT 1
$$;
REVOKE ALL ON FUNCTION kiosk_lookup_member(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kiosk_lookup_member(text) TO kiosk_service;
