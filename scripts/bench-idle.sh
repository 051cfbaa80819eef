#!/usr/bin/env bash
# Idle cost of the daemon: the release binary with its scanner and sound card open and no
# session, measured per thread from /proc over a window. Prints a table (numbers go in
# README.md). The virtual card's FIFO microphone and paced speaker are other processes (pv),
# so they are not counted; the device callback threads are listed apart, since on real
# hardware their cost is the driver's.
#   scripts/bench-idle.sh [seconds]   (default 20; JARVIS_KIOSK_BIN=path skips the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages
WINDOW=${1:-20}

BIN=${JARVIS_KIOSK_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --locked --quiet --release -p jarvis-kiosk
  BIN=$(cargo_target_dir)/release/jarvis-kiosk
fi

T=$(mktemp -d /tmp/jarvis-idle.XXXXXX)
PIDS=()
cleanup() {
  # The daemon first, while its microphone feed still runs (a capture blocked on a silent
  # FIFO would hold its shutdown), then the feeds, newest first.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; done
  exec 4>&- 5>&-
  for _ in $(seq 50); do
    kill -0 "${PIDS[@]}" 2>/dev/null || break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

virtual_kiosk "$T" "http://127.0.0.1:9" kiosk-idle
# Measure the shipped default: the device period the daemon picks itself (10 ms), not the
# 20 ms the demo and tests force.
sed -i '/^period_frames/d' "$T/config.toml"
pv -q -L 96000 /dev/zero >&5 &
PIDS+=($!)
ALSA_CONFIG_PATH=$PWD/tests/fixtures/asound-file.conf \
KIOSK_AUDIO_IN="$T/mic.fifo" \
KIOSK_AUDIO_OUT="|exec pv -q -L 192000 -B 4096 > /dev/null" \
RUST_LOG=warn \
  "$BIN" --config "$T/config.toml" run 2> "$T/daemon.log" &
DAEMON=$!
PIDS+=($DAEMON)
for _ in $(seq 200); do
  "$BIN" --config "$T/config.toml" status 2>/dev/null | grep -Eq '^ +audio +ok' && break
  sleep 0.1
done
# Let start-up work (store open, first heartbeat attempts) settle before measuring.
sleep 3

# Per-thread CPU ticks: "tid name ticks".
ticks() {
  for s in /proc/"$DAEMON"/task/*/stat; do
    awk '{ match($0, /\(.*\)/); name = substr($0, RSTART + 1, RLENGTH - 2);
           rest = substr($0, RSTART + RLENGTH + 1); split(rest, f, " ");
           gsub(/ /, "_", name); print FILENAME, name, f[12] + f[13] }' "$s" 2>/dev/null || true
  done | sed 's|/proc/[0-9]*/task/\([0-9]*\)/stat|\1|'
}
ticks | sort > "$T/before"
sleep "$WINDOW"
ticks | sort > "$T/after"
HZ=$(getconf CLK_TCK)

echo "idle daemon, $WINDOW s window, % of one core"
join "$T/before" "$T/after" | awk -v hz="$HZ" -v w="$WINDOW" '
  { d = $5 - $3; name = $2; pct = 100 * d / hz / w; by[name] += pct; total += pct;
    if (name ~ /alsa|cpal/) dev += pct }
  END {
    printf "| %-30s | %8s |\n", "thread", "CPU %";
    printf "|%s|%s|\n", "--------------------------------", "----------";
    for (n in by) printf "| %-30s | %8.2f |\n", n, by[n];
    printf "| %-30s | %8.2f |\n", "total", total;
    printf "| %-30s | %8.2f |\n", "total without device threads", total - dev;
  }'
