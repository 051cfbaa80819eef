#!/usr/bin/env bash
# The daemon's CPU and memory during a ~60 s conversation: release binaries, virtual scanner
# and sound card paced in real time, the local Realtime emulator over WebRTC on loopback.
# Prints a table (budget: <= 5 % of one core, RSS <= 40 MB). BIN_DIR=... reuses built binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages
if [ -z "${BIN_DIR:-}" ]; then
  cargo build --release --locked --quiet -p jarvis-kiosk -p jarvis-realtime-emulator --bins
  BIN_DIR=$(cargo_target_dir)/release
fi

T=$(mktemp -d /tmp/jarvis-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT

"$BIN_DIR/jarvis-realtime-emulator" --listen 127.0.0.1:0 --scenario benches/fixtures/conversation_60s.toml \
  > "$T/emu.out" 2> "$T/emu.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q 'listening on' "$T/emu.out" 2>/dev/null && break; sleep 0.1; done
BASE_URL=$(sed -n 's/^listening on //p' "$T/emu.out")

virtual_kiosk "$T" "$BASE_URL" kiosk-bench
printf '[session]\nidle_timeout_s = 120\n' >> "$T/config.toml"
pv -q -L 96000 /dev/zero >&5 &
PIDS+=($!)
ALSA_CONFIG_PATH=$PWD/tests/fixtures/asound-file.conf KIOSK_AUDIO_IN="$T/mic.fifo" \
KIOSK_AUDIO_OUT="|exec pv -q -L 192000 -B 4096 > /dev/null" RUST_LOG=warn \
  "$BIN_DIR/jarvis-kiosk" --config "$T/config.toml" --log json run 2> "$T/daemon.log" &
DAEMON=$!
PIDS+=($DAEMON)
sleep 2

ticks() { awk '{print $14 + $15}' "/proc/$DAEMON/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$DAEMON/status"; }
idle_rss=$(rss_kb)
printf '0012345678\r\n' >&4
start_ticks=$(ticks); start=$(date +%s.%N); max_rss=0
ended=""
for _ in $(seq 150); do
  sleep 1
  r=$(rss_kb); [ "$r" -gt "$max_rss" ] && max_rss=$r
  ended=$("$BIN_DIR/jarvis-kiosk" --config "$T/config.toml" status --json \
    | jq -r '.recent_sessions[0] | select(.end_reason != null) | "\(.end_reason) \(.duration_ms) \(.connect_ms)"' 2>/dev/null || true)
  [ -n "$ended" ] && break
done
end_ticks=$(ticks); end=$(date +%s.%N)
[ -n "$ended" ] || { tail -20 "$T/daemon.log"; echo "the conversation did not end" >&2; exit 1; }
read -r reason duration_ms connect_ms <<< "$ended"
hz=$(getconf CLK_TCK)
cpu=$(echo "scale=2; ($end_ticks - $start_ticks) * 100 / $hz / ($end - $start)" | bc)
echo "| conversation | ended | scan -> connected | daemon CPU (one core) | RSS idle | RSS max | budget |"
echo "|---|---|---|---|---|---|---|"
printf '| %.1f s | %s | %s ms | %s %% | %.1f MB | %.1f MB | <= 5 %%, <= 40 MB |\n' \
  "$(echo "$duration_ms / 1000" | bc -l)" "$reason" "$connect_ms" "$cpu" \
  "$(echo "$idle_rss / 1024" | bc -l)" "$(echo "$max_rss / 1024" | bc -l)"
kill -TERM "$DAEMON"; wait "$DAEMON" || true
