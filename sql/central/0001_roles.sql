-- Group roles of the central database (NOLOGIN): every login role is a member of one of them.
--
-- Roles are cluster-global while this file runs once per database, possibly in parallel
-- (one database per test), so creation tolerates both "already exists" (duplicate_object)
-- and the unique-index race of two concurrent CREATE ROLE (unique_violation).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['kiosk_service', 'admin_service', 'monitoring_service'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END
$$;
