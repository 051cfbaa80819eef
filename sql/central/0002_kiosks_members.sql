-- Kiosks (one login role each) and the members their gyms serve.

CREATE TABLE IF NOT EXISTS kiosks (
    kiosk_id   text PRIMARY KEY CHECK (kiosk_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    gym_id     text NOT NULL CHECK (gym_id <> ''),
    -- The Postgres login role this kiosk connects as (scripts/central-add-kiosk.sh).
    login_role name UNIQUE,
    label      text,
    created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE kiosks ADD COLUMN IF NOT EXISTS login_role name;
ALTER TABLE kiosks ADD COLUMN IF NOT EXISTS label text;
ALTER TABLE kiosks ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX IF NOT EXISTS kiosks_gym_idx ON kiosks (gym_id);

CREATE TABLE IF NOT EXISTS members (
    member_id         text PRIMARY KEY,
    gym_id            text NOT NULL,
    -- The badge as the kiosk reads it after normalisation (badge.* config keys).
    badge             text NOT NULL CHECK (badge <> ''),
    first_name        text NOT NULL,
    language          text NOT NULL DEFAULT 'fr',
    membership_status text NOT NULL DEFAULT 'active'
        CHECK (membership_status IN ('active', 'expired', 'suspended')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- One member per badge and gym: the lookup can never be ambiguous.
    UNIQUE (gym_id, badge)
);
