#!/usr/bin/env bash
# Applies the central Postgres migrations (sql/central/NNNN_*.sql) in order.
#
# Usage: scripts/central-migrate.sh [--until NNNN] DATABASE_URL
#
# Each file runs in its own transaction together with its row in schema_migrations, under an
# advisory lock, so two migrators on one database never interleave and a failed file leaves
# nothing half-applied. Applied versions are skipped; every file is also idempotent, so
# re-applying one by hand is safe. --until stops after that version (staged roll-outs, tests).
# Environment: CENTRAL_SQL_DIR overrides the migrations directory.
set -euo pipefail

usage() {
    echo "usage: $0 [--until NNNN] DATABASE_URL" >&2
    exit 2
}

until_version=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --until) [[ $# -ge 2 ]] || usage; until_version="$2"; shift 2 ;;
        -h|--help) usage ;;
        --*) echo "unknown option: $1" >&2; usage ;;
        *) break ;;
    esac
done
[[ $# -eq 1 ]] || usage
url="$1"

command -v psql >/dev/null || { echo "psql not found: install postgresql-client" >&2; exit 1; }
dir="${CENTRAL_SQL_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../sql/central" && pwd)}"
shopt -s nullglob
files=("$dir"/[0-9][0-9][0-9][0-9]_*.sql)
[[ ${#files[@]} -gt 0 ]] || { echo "no migrations in $dir" >&2; exit 1; }

for file in "${files[@]}"; do
    base="$(basename "$file")"
    version="${base%%_*}"
    if [[ -n "$until_version" && "$version" > "$until_version" ]]; then
        break
    fi
    checksum="$(sha256sum "$file" | cut -d' ' -f1)"
    result="$(psql "$url" -X -q -A -t -v ON_ERROR_STOP=1 --single-transaction \
        -v version="$version" -v name="$base" -v checksum="$checksum" -v file="$file" <<'SQL'
SET client_min_messages = warning;
SELECT pg_advisory_xact_lock(727001);
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
SELECT NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = :'version') AS pending \gset
\if :pending
\i :file
INSERT INTO schema_migrations (version, name, checksum) VALUES (:'version', :'name', :'checksum');
SELECT 'applied';
\else
SELECT CASE WHEN checksum = :'checksum' THEN 'already applied'
            ELSE 'already applied (file changed since: re-apply it by hand if needed)' END
FROM schema_migrations WHERE version = :'version';
\endif
SQL
    )" || { echo "migration $base failed: nothing of it was applied" >&2; exit 1; }
    echo "$base: $(echo "$result" | tail -n 1)"
done
