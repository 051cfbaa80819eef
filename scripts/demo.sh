#!/usr/bin/env bash
# The daemon's main job without hardware, end to end: the real `jarvis-kiosk run` against a
# virtual badge scanner (a pty), a virtual sound card (ALSA file plugin, paced in real time)
# and the local Realtime emulator over real WebRTC. A badge is scanned, a French question and
# "merci, au revoir" are spoken into the microphone, JARVIS answers and ends the session, and
# the session's log, its cost and `jarvis-kiosk status` are printed.
#
# `scripts/demo.sh --live` runs the same visit on GPT-Live (`openai.api = "live"`, billed per
# second; the emulator serves `/v1/live/sessions` too).
set -euo pipefail
API=realtime
case "${1:-}" in
  --live) API=live ;;
  "") ;;
  *) echo "usage: $0 [--live]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages

echo "==> building (first run: a few minutes)"
cargo build --locked --quiet -p jarvis-kiosk -p jarvis-realtime-emulator --bins
TARGET_DIR=$(cargo_target_dir)
BIN=$TARGET_DIR/debug/jarvis-kiosk
EMU=$TARGET_DIR/debug/jarvis-realtime-emulator

T=$(mktemp -d /tmp/jarvis-demo.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

echo "==> local Realtime emulator (scenario: tests/fixtures/scenarios/goodbye.toml, turns on voice activity)"
"$EMU" --listen 127.0.0.1:0 --continuous-audio --scenario tests/fixtures/scenarios/goodbye.toml > "$T/emulator.out" 2> "$T/emulator.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q 'listening on' "$T/emulator.out" 2>/dev/null && break; sleep 0.1; done
BASE_URL=$(sed -n 's/^listening on //p' "$T/emulator.out")
[ -n "$BASE_URL" ] || { cat "$T/emulator.log"; echo "emulator did not start" >&2; exit 1; }
echo "    $BASE_URL"

echo "==> virtual badge scanner: a pty at $T/ttyBADGE"
echo "==> virtual sound card: microphone = a FIFO fed in real time, speaker = a file"
virtual_kiosk "$T" "$BASE_URL" kiosk-demo-01
espeak-ng -v fr -s 150 -w "$T/question.wav" "Bonjour JARVIS, à quelle heure ferme la salle ce soir ?"
espeak-ng -v fr -s 150 -w "$T/bye.wav" "Merci, au revoir"
# S16 mono 48 kHz (96000 bytes/s): silence while the call connects and JARVIS greets, the
# question, time for the answer, the goodbye, then silence.
raw() { sox -q "$1" -t raw -e signed -b 16 -r 48000 -c 1 -; }
silence() { head -c $((96000 * $1)) /dev/zero; }
{ silence 3; raw "$T/question.wav"; silence 4; raw "$T/bye.wav"; silence 30; } > "$T/mic.raw"

socat -u UNIX-RECV:"$T/notify.sock" OPEN:"$T/notify.log",creat,append &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.05; done

echo "==> jarvis-kiosk run (openai.api = $API)"
JARVIS_KIOSK__OPENAI__API=$API \
ALSA_CONFIG_PATH=$PWD/tests/fixtures/asound-file.conf \
KIOSK_AUDIO_IN="$T/mic.fifo" \
KIOSK_AUDIO_OUT="|exec pv -q -L 192000 -B 4096 > $T/speaker.raw" \
NOTIFY_SOCKET="$T/notify.sock" RUST_LOG="info,str0m=warn" \
  "$BIN" --config "$T/config.toml" --log json run 2> "$T/daemon.log" &
DAEMON=$!
PIDS+=($DAEMON)
for _ in $(seq 200); do grep -q READY=1 "$T/notify.log" 2>/dev/null && break; sleep 0.1; done
grep -q READY=1 "$T/notify.log" || { cat "$T/daemon.log"; echo "daemon never became READY" >&2; exit 1; }
echo "    READY ($(sed -n 's/^STATUS=//p' "$T/notify.log" | head -n 1))"

echo "==> a member scans badge 0012345678, then speaks"
printf '0012345678\r\n' >&4
pv -q -L 96000 "$T/mic.raw" >&5 &
PIDS+=($!)

echo "==> jarvis-kiosk status, during the session (through the daemon's socket $T/run/status.sock)"
for _ in $(seq 300); do
  live=$("$BIN" --config "$T/config.toml" status 2>/dev/null | grep '^current session:' | grep -v '\$0.000000 so far' || true)
  [ -n "$live" ] && break
  sleep 0.1
done
echo "    ${live:-the session ended before status saw it}"

session=""
for _ in $(seq 600); do
  session=$("$BIN" --config "$T/config.toml" status --json \
    | jq -r '.recent_sessions[0] | select(.end_reason != null) | .session_id' 2>/dev/null || true)
  [ -n "$session" ] && break
  sleep 0.1
done
[ -n "$session" ] || { cat "$T/daemon.log"; echo "the session did not end within 60 s" >&2; exit 1; }

echo
echo "==> the session's log (what journalctl -u jarvis-kiosk SESSION_ID=$session shows under systemd)"
jq -r --arg s "$session" '
  select((.span.session_id // "") == $s)
  | [.timestamp[11:23], .level, .fields.message,
     (.fields | del(.message) | to_entries | map("\(.key)=\(.value)") | join(" "))]
  | join("  ")' "$T/daemon.log"

echo
echo "==> cost"
jq -r --arg s "$session" '
  select((.span.session_id // "") == $s and .fields.message == "session ended")
  | if .fields.backend == "live" then
      "session \($s): \(.fields.reason) after \(.fields.duration_s) s on GPT-Live, total \(.fields.cost_usd) (\(.fields.billed_seconds) s of voice \(.fields.voice_usd), delegation \(.fields.delegation_usd))"
    else
      "session \($s): \(.fields.reason) after \(.fields.duration_s) s, total \(.fields.cost_usd) (audio in \(.fields.input_audio_usd), audio out \(.fields.output_audio_usd), text in \(.fields.input_text_usd), text out \(.fields.output_text_usd), transcription \(.fields.transcription_usd))"
    end' "$T/daemon.log"

echo
echo "==> jarvis-kiosk status"
"$BIN" --config "$T/config.toml" status

echo
echo "==> stopping with SIGTERM"
kill -TERM "$DAEMON"
wait "$DAEMON" && echo "daemon exited cleanly"
