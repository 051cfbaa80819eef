#!/usr/bin/env bash
# Fails when the crate graph breaks the architecture (ARCHITECTURE.md, "Crate map"):
#  1. jarvis-core links no async runtime, config loader, database, WebRTC, HTTP or audio crate;
#  2. each I/O crate is a direct dependency of its one owner among the kiosk's crates (the
#     broker, a separate binary, owns its own HTTP server, Postgres and OpenAI client);
#  3. the daemon does not link the Realtime emulator, and the broker links no device or
#     WebRTC crate.
# Normal dependencies only: tests and benches may use anything.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
tree() { cargo tree --locked -e normal -p "$1" --prefix none --format '{p}' | awk '{print $1}' | sort -u; }

core_forbidden=(tokio config rusqlite tokio-postgres postgres-protocol str0m reqwest hyper cpal alsa opus serialport evdev)
core_tree=$(tree jarvis-core)
for c in "${core_forbidden[@]}"; do
  if grep -qx "$c" <<<"$core_tree"; then
    echo "FAIL: jarvis-core depends on $c (cargo tree -e normal -i $c -p jarvis-core shows the path)"
    fail=1
  fi
done

# crate => the workspace members allowed to depend on it directly: its one owner in the
# daemon, plus jarvis-broker and jarvis-dashboard for what a separate server binary needs (the emulator, a test
# tool outside the daemon, is exempt).
declare -A owner=(
  [rusqlite]=jarvis-store
  [tokio-postgres]="jarvis-sync jarvis-broker jarvis-dashboard" [tokio-postgres-rustls]=jarvis-sync
  [str0m]=jarvis-realtime [reqwest]="jarvis-realtime jarvis-broker jarvis-dashboard"
  [cpal]=jarvis-audio [alsa]=jarvis-audio [opus]=jarvis-audio [rubato]=jarvis-audio
  [serialport]=jarvis-badge [evdev]=jarvis-badge
  [config]=jarvis-config
  [hyper]=jarvis-kiosk [axum]="jarvis-broker jarvis-dashboard"
  [prometheus-client]="jarvis-kiosk jarvis-broker" [sd-notify]=jarvis-kiosk
  [tracing-journald]="jarvis-kiosk jarvis-service"
)
direct=$(cargo metadata --locked --format-version 1 --no-deps | jq -r '
  .packages[] | .name as $p | .dependencies[] | select(.kind == null) | "\($p) \(.name)"')
while read -r pkg dep; do
  [ "$pkg" = jarvis-realtime-emulator ] && continue
  want=${owner[$dep]:-}
  if [ -n "$want" ] && ! grep -qw -- "$pkg" <<<"$want"; then
    echo "FAIL: $pkg depends on $dep directly; only $want may (route it through ${want%% *})"
    fail=1
  fi
done <<<"$direct"

if grep -qx jarvis-realtime-emulator <<<"$(tree jarvis-kiosk)"; then
  echo "FAIL: the jarvis-kiosk binary links the Realtime emulator (a test tool: dev-dependency only)"
  fail=1
fi

broker_tree=$(tree jarvis-broker)
for c in str0m cpal alsa opus serialport evdev jarvis-realtime jarvis-audio jarvis-badge jarvis-realtime-emulator; do
  if grep -qx "$c" <<<"$broker_tree"; then
    echo "FAIL: jarvis-broker links $c (the broker links none of the kiosk's device or WebRTC code)"
    fail=1
  fi
done
dashboard_tree=$(tree jarvis-dashboard)
for c in str0m cpal alsa opus serialport evdev jarvis-realtime jarvis-audio jarvis-badge jarvis-realtime-emulator jarvis-broker; do
  if grep -qx "$c" <<<"$dashboard_tree"; then
    echo "FAIL: jarvis-dashboard links $c (the dashboard links no kiosk device, WebRTC or broker code)"
    fail=1
  fi
done

[ "$fail" -eq 0 ] && echo "crate graph: ok (core is I/O-free, each I/O crate has its owners, no emulator in the daemon, no device code in the broker)"
exit "$fail"
