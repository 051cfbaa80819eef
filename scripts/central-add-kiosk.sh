#!/usr/bin/env bash
# Registers a kiosk in the central database and gives it its own login role.
#
# Usage: scripts/central-add-kiosk.sh [--rotate] --password-file PATH DATABASE_URL KIOSK_ID [GYM_ID]
#
# DATABASE_URL: an admin connection (owner of the migrated schema, allowed to CREATE ROLE).
# GYM_ID: required the first time; later runs keep the kiosk's gym unless one is given.
#
# Idempotent. The role (kiosk_<id>, LOGIN, member of kiosk_service) is created or fixed up.
# The password: if PATH already holds one it is KEPT and set on the role again, so re-running
# never breaks a kiosk that is already installed; with --rotate (or no file yet) a new random
# one is generated and PATH is replaced atomically (mode 600) only after the database accepted it.
# The last line printed is the kiosk's connection URL without password: put it in `central.url`
# and copy PATH to the kiosk as `central.password_file`.
set -euo pipefail

usage() {
    echo "usage: $0 [--rotate] --password-file PATH DATABASE_URL KIOSK_ID [GYM_ID]" >&2
    exit 2
}

rotate=0
password_file=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --password-file) [[ $# -ge 2 ]] || usage; password_file="$2"; shift 2 ;;
        --rotate) rotate=1; shift ;;
        -h|--help) usage ;;
        --*) echo "unknown option: $1" >&2; usage ;;
        *) break ;;
    esac
done
[[ -n "$password_file" && ( $# -eq 2 || $# -eq 3 ) ]] || usage
url="$1"
kiosk_id="$2"
gym_id="${3:-}"

if ! [[ "$kiosk_id" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$ ]]; then
    echo "invalid KIOSK_ID '$kiosk_id': 1-63 characters of letters, digits, '_', '.', '-'" >&2
    exit 2
fi
case "$url" in
    postgres://*|postgresql://*) ;;
    *) echo "DATABASE_URL must be a postgres:// URL" >&2; exit 2 ;;
esac

# Role name: readable when the id already is a plain lower-case name, else a hash suffix keeps
# ids that differ only by case or punctuation apart (and within 63 bytes).
sanitized="$(printf '%s' "$kiosk_id" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_' '_')"
if [[ "$sanitized" == "$kiosk_id" && ${#sanitized} -le 57 ]]; then
    role="kiosk_${sanitized}"
else
    hash="$(printf '%s' "$kiosk_id" | sha256sum | cut -c1-8)"
    role="kiosk_${sanitized:0:48}_${hash}"
fi

dir="$(dirname -- "$password_file")"
[[ -d "$dir" ]] || { echo "directory $dir of --password-file does not exist" >&2; exit 1; }
tmp="$(umask 077 && mktemp "$dir/.kiosk-password.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
if [[ $rotate -eq 0 && -s "$password_file" ]]; then
    cat -- "$password_file" >"$tmp"
    action="kept the password in $password_file"
else
    od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$tmp"
    action="wrote a new password to $password_file"
fi

# Preflight, with a clear message for each way this can go wrong.
migrated="$(psql "$url" -X -q -A -t -v ON_ERROR_STOP=1 -c \
    "SELECT to_regclass('public.kiosks') IS NOT NULL AND to_regrole('kiosk_service') IS NOT NULL")" \
    || { echo "cannot query $url: see the psql error above" >&2; exit 1; }
if [[ "$migrated" != "t" ]]; then
    echo "the central schema is missing: run scripts/central-migrate.sh DATABASE_URL first" >&2
    exit 1
fi
problem="$(psql "$url" -X -q -A -t -v ON_ERROR_STOP=1 \
    -v kiosk_id="$kiosk_id" -v gym_id="$gym_id" -v role="$role" <<'SQL'
SELECT CASE
    WHEN EXISTS (SELECT 1 FROM kiosks WHERE login_role = :'role' AND kiosk_id <> :'kiosk_id')
        THEN 'role ' || :'role' || ' already belongs to another kiosk'
    WHEN :'gym_id' = '' AND NOT EXISTS (SELECT 1 FROM kiosks WHERE kiosk_id = :'kiosk_id')
        THEN 'GYM_ID is required to register a new kiosk'
    ELSE '' END;
SQL
)" || { echo "cannot query $url: see the psql error above" >&2; exit 1; }
if [[ -n "$problem" ]]; then
    echo "$problem" >&2
    exit 1
fi

# The password reaches psql through a file psql reads itself, never through argv.
psql "$url" -X -q -A -t -v ON_ERROR_STOP=1 --single-transaction \
    -v kiosk_id="$kiosk_id" -v gym_id="$gym_id" -v role="$role" -v pwfile="$tmp" <<'SQL' >/dev/null
SET client_min_messages = warning;
\set pw `cat :'pwfile'`
-- Roles are cluster-global: tolerate a concurrent creator.
SELECT format($f$DO $do$ BEGIN
    CREATE ROLE %I LOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $do$$f$, :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD %L',
              :'role', :'pw') \gexec
SELECT format('GRANT kiosk_service TO %I', :'role') \gexec
INSERT INTO kiosks (kiosk_id, gym_id, login_role)
VALUES (:'kiosk_id',
        coalesce(nullif(:'gym_id', ''), (SELECT gym_id FROM kiosks WHERE kiosk_id = :'kiosk_id')),
        :'role')
ON CONFLICT (kiosk_id) DO UPDATE
SET gym_id = coalesce(nullif(:'gym_id', ''), kiosks.gym_id),
    login_role = excluded.login_role;
SQL
mv -f -- "$tmp" "$password_file"
trap - EXIT
chmod 600 -- "$password_file"

# The kiosk's URL: the admin URL with the kiosk's role as user and no password.
rest="${url#*://}"
authority="${rest%%[/?]*}"
tail="${rest:${#authority}}"
hostport="${authority##*@}"
echo "registered kiosk $kiosk_id as role $role; $action" >&2
echo "postgres://${role}@${hostport}${tail}"
