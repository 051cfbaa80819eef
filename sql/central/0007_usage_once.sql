-- One usage row per (session, response). The event id already makes a retried batch harmless;
-- this also makes the same response recorded twice under two event ids (a kiosk re-recording
-- usage after a restart or a salvaged store, a usage replayed by hand) count once, whatever the
-- event id. The kiosk inserts with ON CONFLICT DO NOTHING (no target), so such a duplicate is
-- skipped like a retried event, never refused: the derivation trigger only sees rows really
-- inserted. Idempotent.

CREATE UNIQUE INDEX IF NOT EXISTS kiosk_events_usage_once
    ON kiosk_events (session_id, (payload ->> 'response_id'))
    WHERE kind = 'response_usage';
