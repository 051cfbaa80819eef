-- The append-only journal every kiosk writes to, and the identity function RLS relies on.
--
-- event_id is the kiosk's UUIDv7: a retried batch (INSERT ... ON CONFLICT (event_id) DO
-- NOTHING) can never duplicate a fact. seq is the kiosk's local outbox sequence: ordering
-- by it restores the recorded order within a session. It is indexed but not unique, so a
-- kiosk whose local store was rebuilt (seq restarts) keeps syncing.

CREATE TABLE IF NOT EXISTS kiosk_events (
    event_id    uuid PRIMARY KEY,
    kiosk_id    text NOT NULL REFERENCES kiosks (kiosk_id),
    session_id  uuid,
    seq         bigint NOT NULL CHECK (seq > 0),
    kind        text NOT NULL CHECK (kind ~ '^[a-z][a-z_]{0,62}$'),
    occurred_at timestamptz NOT NULL,
    -- The event body (src/events.rs EventPayload); money fields are integer nano-USD (*_nusd).
    payload     jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT kiosk_events_payload_kind CHECK (payload ->> 'kind' = kind)
);
CREATE INDEX IF NOT EXISTS kiosk_events_kiosk_seq_idx ON kiosk_events (kiosk_id, seq);
CREATE INDEX IF NOT EXISTS kiosk_events_session_idx ON kiosk_events (session_id, seq)
    WHERE session_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS kiosk_events_kiosk_received_idx ON kiosk_events (kiosk_id, received_at);

-- Append-only for everyone, owner's maintenance included unless the trigger is disabled.
CREATE OR REPLACE FUNCTION kiosk_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'kiosk_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE ALL ON FUNCTION kiosk_events_refuse_change() FROM PUBLIC;

DROP TRIGGER IF EXISTS kiosk_events_no_update_delete ON kiosk_events;
CREATE TRIGGER kiosk_events_no_update_delete
    BEFORE UPDATE OR DELETE ON kiosk_events
    FOR EACH ROW EXECUTE FUNCTION kiosk_events_refuse_change();
DROP TRIGGER IF EXISTS kiosk_events_no_truncate ON kiosk_events;
CREATE TRIGGER kiosk_events_no_truncate
    BEFORE TRUNCATE ON kiosk_events
    FOR EACH STATEMENT EXECUTE FUNCTION kiosk_events_refuse_change();

-- The kiosk the connected login role belongs to (NULL for any other role).
--
-- session_user, not current_user: inside SECURITY DEFINER current_user is the owner, and a
-- kiosk logs in as its own role (directly or through a pooler, which logs in as that role too).
CREATE OR REPLACE FUNCTION current_kiosk_id() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT k.kiosk_id FROM public.kiosks k WHERE k.login_role = session_user
$$;
REVOKE ALL ON FUNCTION current_kiosk_id() FROM PUBLIC;
