#!/usr/bin/env bash
# Outbox drain benchmark (release build): 100 000 buffered events into the local Postgres,
# directly and through PgBouncer in transaction pooling mode. Prints a table of events/s.
#
# Usage: scripts/bench-drain.sh [EVENTS]
# Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo bench --bench central_drain -- "${1:-100000}"
