#!/usr/bin/env bash
# Runs the daemon's main job without hardware: the real binary in a scratch state directory,
# showing READY, `status` and `doctor`, then a clean stop.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages

echo "==> building"
cargo build --locked --quiet --bin jarvis-kiosk
BIN=$PWD/target/debug/jarvis-kiosk

T=$(mktemp -d /tmp/jarvis-demo.XXXXXX)
DAEMON_PID=
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null || true
  [ -n "${NOTIFY_PID:-}" ] && kill "$NOTIFY_PID" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

export JARVIS_KIOSK__STORAGE__PATH="$T/state/kiosk.db"
export JARVIS_KIOSK__HEALTH__RUNTIME_DIR="$T/run"
CONFIG=config/jarvis-kiosk.example.toml
mkdir -p "$T/state"

# A stand-in for systemd's notify socket, to show what the daemon tells systemd.
socat -u UNIX-RECV:"$T/notify.sock" OPEN:"$T/notify.log",creat,append &
NOTIFY_PID=$!
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.05; done

echo "==> starting: jarvis-kiosk --config $CONFIG run"
NOTIFY_SOCKET="$T/notify.sock" "$BIN" --config "$CONFIG" run 2> "$T/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 100); do grep -q READY=1 "$T/notify.log" 2>/dev/null && break; sleep 0.1; done
grep -q READY=1 "$T/notify.log" || { cat "$T/daemon.log"; echo "daemon never became READY" >&2; exit 1; }
echo "--- systemd notifications"
cat "$T/notify.log"
sleep 1.2

echo "--- jarvis-kiosk status"
"$BIN" --config "$CONFIG" status
echo "--- jarvis-kiosk doctor (FAIL lines are expected on a machine without the kiosk's hardware)"
"$BIN" --config "$CONFIG" doctor --quiet || true

echo "==> stopping with SIGTERM"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" && echo "daemon exited cleanly"
DAEMON_PID=
echo "--- daemon log"
cat "$T/daemon.log"
