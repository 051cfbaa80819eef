# Shared by the scripts: install what is missing, find or start Postgres, set up a virtual kiosk.
# Source it; it defines functions only.

# Debian packages the build, the tests and the demo need.
JARVIS_PACKAGES=(
  build-essential pkg-config libasound2-dev libopus-dev libudev-dev
  alsa-utils espeak-ng sox libsox-fmt-all socat pv jq bc
  postgresql postgresql-client pgbouncer systemd util-linux procps
  golang-go golang-github-pion-webrtc.v3-dev   # the Pion interop peer (tests/interop/pion-peer)
  chromium chromium-driver                     # the dashboard's headless browser test
)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "need root or sudo to run: $*" >&2; return 1
  fi
}

# Installs the missing Debian packages (apt-get update only when something is missing).
ensure_packages() {
  local missing=()
  for p in "${JARVIS_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq || true   # a mirror mid-sync must not stop us; the install decides
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "==> installing Rust with rustup (Debian's rustc is too old for edition 2024)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl ca-certificates
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}

# Where cargo puts what it builds: target/ unless CARGO_TARGET_DIR (or cargo config) says otherwise.
cargo_target_dir() { cargo metadata --format-version 1 --no-deps --locked | jq -r .target_directory; }

pg_answers() { pg_isready -q -d "$1" 2>/dev/null && psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

# Exports DATABASE_URL: the caller's, else the local server on 127.0.0.1:5432, else a
# throwaway cluster of our own (stopped by the EXIT trap the caller installs via cleanup_postgres).
ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    pg_answers "$DATABASE_URL" || { echo "DATABASE_URL=$DATABASE_URL does not answer" >&2; return 1; }
    echo "==> Postgres: DATABASE_URL from the environment"
    return 0
  fi
  local local_url="postgres://postgres@127.0.0.1:5432/postgres"
  if pg_answers "$local_url"; then
    export DATABASE_URL="$local_url"
    echo "==> Postgres: local server on 127.0.0.1:5432"
    return 0
  fi
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bin" ] || { echo "no PostgreSQL server binaries found (package postgresql)" >&2; return 1; }
  JARVIS_PGDIR=$(mktemp -d /tmp/jarvis-pg.XXXXXX)
  chmod 755 "$JARVIS_PGDIR"
  local port=55432
  while pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; do port=$((port + 1)); done
  local run=()
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$JARVIS_PGDIR"; run=(runuser -u postgres --); fi
  echo "==> Postgres: starting a throwaway cluster in $JARVIS_PGDIR on 127.0.0.1:$port"
  "${run[@]}" "$bin/initdb" -D "$JARVIS_PGDIR/data" -A trust -U postgres >/dev/null
  "${run[@]}" "$bin/pg_ctl" -D "$JARVIS_PGDIR/data" -l "$JARVIS_PGDIR/log" -w \
    -o "-p $port -k $JARVIS_PGDIR -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
  JARVIS_PG_STOP=("${run[@]}" "$bin/pg_ctl" -D "$JARVIS_PGDIR/data" -m fast stop)
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

cleanup_postgres() {
  if [ -n "${JARVIS_PGDIR:-}" ]; then
    "${JARVIS_PG_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$JARVIS_PGDIR"
  fi
}

# A kiosk without hardware in directory $1, for `jarvis-kiosk run` with the file-backed sound
# card (ALSA_CONFIG_PATH=tests/fixtures/asound-file.conf, KIOSK_AUDIO_IN=$1/mic.fifo):
#   scanner     a pty at $1/ttyBADGE: what is written to fd 4 is scanned (socat's pid goes to PIDS)
#   microphone  the FIFO $1/mic.fifo, held open on fd 5: write S16 mono 48 kHz to fd 5
#   config      $1/config.toml: kiosk id $3, the Realtime API at $2 with the key file
#               $1/openai-key, state and status files under $1
virtual_kiosk() {
  local dir=$1 base_url=$2 kiosk_id=$3
  socat pty,raw,echo=0,link="$dir/ttyBADGE" pty,raw,echo=0,link="$dir/ttyFEED" &
  PIDS+=($!)
  for _ in $(seq 50); do [ -e "$dir/ttyFEED" ] && break; sleep 0.1; done
  exec 4>"$dir/ttyFEED"
  mkfifo "$dir/mic.fifo"
  exec 5<>"$dir/mic.fifo"   # held read-write: the daemon's opens never block, probes never cut the writer off
  echo "sk-not-a-real-key" > "$dir/openai-key"; chmod 600 "$dir/openai-key"
  cat > "$dir/config.toml" <<TOML
[kiosk]
id = "$kiosk_id"
[badge]
unknown_member = "guest"
[badge.serial]
path = "$dir/ttyBADGE"
[audio]
input_sample_rate = 48000
input_channels = 1
input_format = "i16"
output_sample_rate = 48000
output_channels = 2
period_frames = 960
[openai]
base_url = "$base_url"
api_key_file = "$dir/openai-key"
[storage]
path = "$dir/state/kiosk.db"
[health]
runtime_dir = "$dir/run"
TOML
}
